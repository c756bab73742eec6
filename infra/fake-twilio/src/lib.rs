//! A fake Twilio at the network edge, for tests and the local stack. It serves
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` the way Twilio documents it: HTTP Basic
//! auth with the account SID and auth token, form parameters, a 201 Message resource or a Twilio
//! error body. Twilio's magic test numbers fail as Twilio's test credentials do. Accepted messages
//! can get signed status callbacks (`sent`, then `delivered`), exactly as Twilio would post them.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use domain::channels::twilio::compute_signature;

/// One request the fake accepted or refused, as Twilio received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub account_sid: String,
    pub form: Vec<(String, String)>,
    /// The SID we answered with, if we accepted it.
    pub sid: Option<String>,
}

impl Received {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callbacks {
    /// Post nothing back (tests drive callbacks themselves).
    None,
    /// Post `sent` then `delivered` to the message's StatusCallback, signed.
    SentThenDelivered,
}

struct Inner {
    account_sid: String,
    auth_token: String,
    /// Further accounts (a workspace's own Twilio account): sid → auth token.
    accounts: Mutex<HashMap<String, String>>,
    callbacks: Callbacks,
    received: Mutex<Vec<Received>>,
    /// Scripted answers for the next requests: (HTTP status, body).
    scripted: Mutex<VecDeque<(u16, serde_json::Value)>>,
    /// Prices set by tests (`None`: not rated yet); otherwise 0.0079 per segment.
    prices: Mutex<HashMap<String, Option<String>>>,
    /// Messaging Services: sid → their sender pool.
    services: Mutex<HashMap<String, Vec<String>>>,
    http: reqwest::Client,
}

#[derive(Clone)]
pub struct FakeTwilio {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

impl FakeTwilio {
    /// Starts on an ephemeral loopback port.
    pub async fn start(account_sid: &str, auth_token: &str, callbacks: Callbacks) -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().expect("loopback address"), account_sid, auth_token, callbacks).await
    }

    pub async fn start_on(
        addr: SocketAddr,
        account_sid: &str,
        auth_token: &str,
        callbacks: Callbacks,
    ) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            accounts: Mutex::default(),
            callbacks,
            received: Mutex::new(vec![]),
            scripted: Mutex::new(VecDeque::new()),
            prices: Mutex::new(HashMap::new()),
            services: Mutex::new(HashMap::new()),
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client"),
        });
        let app = Router::new()
            .route("/2010-04-01/Accounts/{account}/Messages.json", post(create_message).get(list_messages))
            .route("/2010-04-01/Accounts/{file}", get(fetch_account))
            .route("/2010-04-01/Accounts/{account}/Messages/{sid}", get(fetch_message))
            .route("/2010-04-01/Accounts/{account}/Recordings/{file}", get(fetch_recording))
            .route("/2010-04-01/Accounts/{account}/Messages/{sid}/Media/{media}", get(fetch_media))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, inner })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().expect("lock").clone()
    }

    /// The next `n` requests get this answer instead of being accepted.
    pub fn script(&self, n: usize, status: u16, body: serde_json::Value) {
        let mut s = self.inner.scripted.lock().expect("lock");
        for _ in 0..n {
            s.push_back((status, body.clone()));
        }
    }
}

impl FakeTwilio {
    /// What a message's fetched resource reports as `price` (`None`: not rated yet, `null`).
    pub fn set_price(&self, sid: &str, price: Option<&str>) {
        self.inner.prices.lock().expect("lock").insert(sid.to_owned(), price.map(str::to_owned));
    }
}

/// The audio of any recording (`RE….mp3`): a few bytes that start like an MP3, behind the
/// account's credentials, as Twilio serves recordings.
pub const RECORDING_BYTES: &[u8] = b"ID3\x04\x00\x00\x00\x00\x00\x00fake voicemail audio";

async fn fetch_recording(
    State(inner): State<Arc<Inner>>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorised(&inner, &headers, &account) {
        return answer(twilio_error(401, 20003, "Authenticate"));
    }
    if !file.starts_with("RE") || !file.ends_with(".mp3") {
        return answer(twilio_error(404, 20404, "The requested resource was not found"));
    }
    ([("content-type", "audio/mpeg")], RECORDING_BYTES).into_response()
}

/// The bytes of any MMS media (`ME…`): a few bytes that start like a JPEG.
pub const MEDIA_BYTES: &[u8] = b"\xff\xd8\xff\xe0fake mms photo";
/// A media sid starting with this is served 12 MB long (over the 10 MB cap an MMS copy keeps).
pub const BIG_MEDIA_PREFIX: &str = "MEbig";

async fn fetch_media(
    State(inner): State<Arc<Inner>>,
    Path((account, _sid, media)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorised(&inner, &headers, &account) {
        return answer(twilio_error(401, 20003, "Authenticate"));
    }
    if !media.starts_with("ME") {
        return answer(twilio_error(404, 20404, "The requested resource was not found"));
    }
    if media.starts_with(BIG_MEDIA_PREFIX) {
        return ([("content-type", "video/mp4")], vec![0u8; 12 * 1024 * 1024]).into_response();
    }
    ([("content-type", "image/jpeg")], MEDIA_BYTES).into_response()
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json`: the Message resource with its price,
/// negative as Twilio reports charges.
async fn fetch_message(
    State(inner): State<Arc<Inner>>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorised(&inner, &headers, &account) {
        return answer(twilio_error(401, 20003, "Authenticate"));
    }
    let sid = file.strip_suffix(".json").unwrap_or(&file).to_owned();
    let Some(sent) = inner.received.lock().expect("lock").iter().find(|r| r.sid.as_deref() == Some(&sid)).cloned()
    else {
        return answer(twilio_error(404, 20404, &format!("The requested resource /Messages/{sid}.json was not found")));
    };
    (StatusCode::OK, Json(resource(&inner, &account, &sent))).into_response()
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Messages.json?To=…`: the messages sent, newest first,
/// optionally to one number (Twilio's list filter), as Twilio pages them.
async fn list_messages(
    State(inner): State<Arc<Inner>>,
    Path(account): Path<String>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorised(&inner, &headers, &account) {
        return answer(twilio_error(401, 20003, "Authenticate"));
    }
    let received = inner.received.lock().expect("lock").clone();
    let messages: Vec<serde_json::Value> = received
        .iter()
        .rev()
        .filter(|r| r.sid.is_some())
        .filter(|r| query.get("To").is_none_or(|to| r.get("To") == Some(to.as_str())))
        .map(|r| resource(&inner, &account, r))
        .collect();
    let page =
        serde_json::json!({ "messages": messages, "page": 0, "page_size": messages.len(), "next_page_uri": null });
    (StatusCode::OK, Json(page)).into_response()
}

/// A sent message as Twilio's Message resource, with its price (negative, as Twilio reports charges).
fn resource(inner: &Inner, account: &str, sent: &Received) -> serde_json::Value {
    let sid = sent.sid.clone().unwrap_or_default();
    let segments = domain::sms::segment(sent.get("Body").unwrap_or_default()).segments;
    let default_price = format!("-{}", domain::finance::money::format_micros(i64::from(segments) * 7_900));
    let price = inner.prices.lock().expect("lock").get(&sid).cloned().unwrap_or(Some(default_price));
    serde_json::json!({
        "account_sid": account,
        "body": sent.get("Body"),
        "from": sent.get("From"),
        "to": sent.get("To"),
        "num_segments": segments.to_string(),
        "price": price,
        "price_unit": "USD",
        "sid": sid,
        "status": "delivered",
    })
}

/// A Twilio error as an HTTP answer.
fn answer((status, body): (u16, serde_json::Value)) -> Response {
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Json(body)).into_response()
}

fn twilio_error(status: u16, code: u32, message: &str) -> (u16, serde_json::Value) {
    (
        status,
        serde_json::json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
    )
}

/// Twilio's magic "To" numbers for test credentials, and the errors they produce.
fn magic_number_error(to: &str) -> Option<(u16, serde_json::Value)> {
    Some(match to {
        "+15005550001" => twilio_error(400, 21211, &format!("The 'To' number {to} is not a valid phone number.")),
        "+15005550002" => twilio_error(400, 21612, "The 'To' phone number is not currently reachable via SMS."),
        "+15005550003" => twilio_error(400, 21408, "Permission to send an SMS has not been enabled for the region."),
        "+15005550004" => twilio_error(400, 21610, "Attempt to send to unsubscribed recipient"),
        "+15005550009" => twilio_error(400, 21614, "'To' number is not a valid mobile number"),
        _ => return None,
    })
}

fn authorised(inner: &Inner, headers: &HeaderMap, account: &str) -> bool {
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else { return false };
    let Some(b64) = auth.strip_prefix("Basic ") else { return false };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else { return false };
    let Some(token) = inner.token_of(account) else { return false };
    raw == format!("{account}:{token}").as_bytes()
}

impl Inner {
    /// The auth token of an account the fake knows.
    fn token_of(&self, account: &str) -> Option<String> {
        if account == self.account_sid {
            return Some(self.auth_token.clone());
        }
        self.accounts.lock().expect("lock").get(account).cloned()
    }
}

/// `GET /2010-04-01/Accounts/{AccountSid}.json`: the account, when the credentials are its own.
async fn fetch_account(State(inner): State<Arc<Inner>>, Path(file): Path<String>, headers: HeaderMap) -> Response {
    let account = file.strip_suffix(".json").unwrap_or(&file).to_owned();
    if !authorised(&inner, &headers, &account) {
        return answer(twilio_error(401, 20003, "Authenticate"));
    }
    let resource =
        serde_json::json!({ "sid": account, "status": "active", "type": "Full", "friendly_name": "Fake account" });
    (StatusCode::OK, Json(resource)).into_response()
}

async fn create_message(
    State(inner): State<Arc<Inner>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !authorised(&inner, &headers, &account) {
        return answer(twilio_error(401, 20003, "Authenticate"));
    }
    let form: Vec<(String, String)> = domain::channels::twilio::parse_form(body.as_bytes()).unwrap_or_default();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut record = Received { account_sid: account.clone(), form: form.clone(), sid: None };
    let scripted = inner.scripted.lock().expect("lock").pop_front();
    let outcome = if let Some(s) = scripted {
        Err(s)
    } else if get("To").is_none() {
        Err(twilio_error(400, 21604, "A 'To' phone number is required."))
    } else if get("From").is_none() && get("MessagingServiceSid").is_none() {
        Err(twilio_error(400, 21603, "A 'From' phone number is required."))
    } else if let Some(e) = get("To").as_deref().and_then(magic_number_error) {
        Err(e)
    } else if get("Body").is_none() && get("MediaUrl").is_none() {
        Err(twilio_error(400, 21602, "Message body is required."))
    } else if let Some(service) = get("MessagingServiceSid").filter(|_| get("From").is_none()) {
        // The service picks the sender: sticky per recipient.
        let pool = inner.services.lock().expect("lock").get(&service).cloned().unwrap_or_default();
        if pool.is_empty() {
            Err(twilio_error(400, 21701, "The Messaging Service Sid is invalid."))
        } else {
            let to = get("To").unwrap_or_default();
            let pick = to.bytes().map(usize::from).sum::<usize>() % pool.len();
            record.form.push(("From".to_owned(), pool[pick].clone()));
            Ok(())
        }
    } else {
        Ok(())
    };
    match outcome {
        Err(e) => {
            inner.received.lock().expect("lock").push(record);
            answer(e)
        }
        Ok(()) => {
            // Twilio SIDs are two letters and 32 hex digits.
            let sid = format!("SM{:032x}", ulid::Ulid::new().0);
            record.sid = Some(sid.clone());
            let accepted = record.clone();
            inner.received.lock().expect("lock").push(record);
            let body_text = get("Body").unwrap_or_default();
            let from = accepted.get("From").map(str::to_owned);
            let resource = serde_json::json!({
                "account_sid": account,
                "api_version": "2010-04-01",
                "body": body_text,
                "direction": "outbound-api",
                "error_code": null,
                "error_message": null,
                "from": from,
                "messaging_service_sid": get("MessagingServiceSid"),
                "num_media": "0",
                "num_segments": "1",
                "price": null,
                "price_unit": "USD",
                "sid": sid,
                "status": "queued",
                "to": get("To"),
                "uri": format!("/2010-04-01/Accounts/{account}/Messages/{sid}.json"),
            });
            if inner.callbacks == Callbacks::SentThenDelivered {
                let inner = inner.clone();
                tokio::spawn(async move {
                    for status in ["sent", "delivered"] {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let token = inner.token_of(&accepted.account_sid).unwrap_or_default();
                        post_callback(&inner.http, &token, &accepted, status).await;
                    }
                });
            }
            (StatusCode::CREATED, Json(resource)).into_response()
        }
    }
}

/// Posts a status callback for an accepted message, signed exactly as Twilio signs webhooks.
async fn post_callback(http: &reqwest::Client, token: &str, message: &Received, status: &str) {
    let (Some(url), Some(sid)) = (message.get("StatusCallback"), message.sid.as_deref()) else { return };
    let form: Vec<(String, String)> = [
        ("AccountSid", message.account_sid.as_str()),
        ("ApiVersion", "2010-04-01"),
        ("From", message.get("From").unwrap_or_default()),
        ("MessageSid", sid),
        ("MessageStatus", status),
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("To", message.get("To").unwrap_or_default()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let signature = compute_signature(token, url, &form);
    let res = http
        .post(url)
        .header("x-twilio-signature", signature)
        .header("user-agent", "TwilioProxy/1.1")
        .form(&form)
        .send()
        .await;
    match res {
        Err(e) => tracing::warn!(error = %e, "fake Twilio could not deliver a status callback"),
        Ok(r) if !r.status().is_success() => tracing::warn!(status = %r.status(), %url, "status callback refused"),
        Ok(_) => {}
    }
}

impl FakeTwilio {
    /// Posts a signed status callback for an accepted message, as Twilio would (tests use this to
    /// deliver callbacks late, twice or out of order).
    pub async fn send_status_callback(&self, received: &Received, status: &str) {
        let token = self.inner.token_of(&received.account_sid).unwrap_or_default();
        post_callback(&self.inner.http, &token, received, status).await;
    }

    /// Another Twilio account (a workspace's own), accepted from now on.
    pub fn add_account(&self, account_sid: &str, auth_token: &str) {
        self.inner.accounts.lock().expect("lock").insert(account_sid.to_owned(), auth_token.to_owned());
    }

    /// A Messaging Service with its sender pool: a send naming it goes out from one of them,
    /// always the same one for the same recipient (Twilio's sticky sender).
    pub fn add_messaging_service(&self, sid: &str, senders: &[&str]) {
        let pool = senders.iter().map(|s| (*s).to_owned()).collect();
        self.inner.services.lock().expect("lock").insert(sid.to_owned(), pool);
    }
}
