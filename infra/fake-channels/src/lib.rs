//! Fakes at the network edge for the JSON channel providers, for tests and the local stack.
//!
//! - [`FakeWhatsApp`] serves the Cloud API's `POST /{phone-number-id}/messages` as Meta documents
//!   it: a bearer access token, a JSON body with `messaging_product: whatsapp`, a `wamid` in the
//!   answer or a Graph error. Once told where the webhook is, it posts signed `sent` and
//!   `delivered` statuses for each accepted message, as Meta would.
//! - [`FakeMeta`] serves the Messenger Platform Send API (Messenger and Instagram) and posts
//!   signed deliveries and reads back.
//! - [`FakeTelegram`] serves `POST /bot{token}/sendMessage|sendPhoto|sendDocument`: the token in
//!   the path, `chat_id` required, `{"ok": true, "result": Message}` or Telegram's error shape.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// One request a fake received, as the provider would see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// The path after the API base (`/106540352242922/messages`, `/sendMessage`).
    pub path: String,
    pub body: Value,
    /// The id answered with, if accepted.
    pub id: Option<String>,
}

/// Answers queued by a test for the next requests: (HTTP status, body).
#[derive(Default)]
struct Script(Mutex<VecDeque<(u16, Value)>>);

impl Script {
    fn push(&self, n: usize, status: u16, body: Value) {
        let mut s = self.0.lock().expect("lock");
        for _ in 0..n {
            s.push_back((status, body.clone()));
        }
    }
    fn next(&self) -> Option<(u16, Value)> {
        self.0.lock().expect("lock").pop_front()
    }
}

fn reply(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Json(body)).into_response()
}

async fn serve(addr: SocketAddr, app: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

// ------------------------------------------------------------------------------------ WhatsApp

struct WhatsAppInner {
    /// This server's own base URL (media URLs point back at it).
    base: Mutex<String>,
    access_token: String,
    app_secret: String,
    received: Mutex<Vec<Sent>>,
    script: Script,
    /// Where to post status webhooks, once known.
    webhook: Mutex<Option<String>>,
    http: reqwest::Client,
    /// Templates submitted: Meta's id → (business account, the last body submitted).
    templates: Mutex<Vec<SubmittedTemplate>>,
    /// Numbers of other business accounts, each with that account's token (`add_number`).
    numbers: Mutex<HashMap<String, String>>,
    /// Every media lookup and download: (media id, the token it came with).
    media_fetches: Mutex<Vec<(String, String)>>,
}

impl WhatsAppInner {
    /// The bearer token of a request, if any.
    fn bearer(headers: &HeaderMap) -> Option<String> {
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned)
    }

    /// The token a number's requests must carry: its own business account's, else the stack's.
    fn token_of(&self, phone: &str) -> String {
        self.numbers.lock().expect("lock").get(phone).cloned().unwrap_or_else(|| self.access_token.clone())
    }

    /// The request's token if this Graph API knows it (media and templates belong to whichever
    /// business account holds them).
    fn known_bearer(&self, headers: &HeaderMap) -> Option<String> {
        let token = Self::bearer(headers)?;
        let known = token == self.access_token || self.numbers.lock().expect("lock").values().any(|t| *t == token);
        known.then_some(token)
    }
}

/// A template as the fake's Graph API holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmittedTemplate {
    pub id: String,
    pub business_account_id: String,
    pub name: String,
    pub language: String,
    /// The last create or edit body.
    pub body: Value,
    pub edits: usize,
    /// The access token it was created with.
    pub access_token: String,
}

#[derive(Clone)]
pub struct FakeWhatsApp {
    addr: SocketAddr,
    inner: Arc<WhatsAppInner>,
}

impl FakeWhatsApp {
    pub async fn start(access_token: &str, app_secret: &str) -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().expect("loopback"), access_token, app_secret).await
    }

    pub async fn start_on(addr: SocketAddr, access_token: &str, app_secret: &str) -> std::io::Result<Self> {
        let inner = Arc::new(WhatsAppInner {
            base: Mutex::new(String::new()),
            access_token: access_token.to_owned(),
            app_secret: app_secret.to_owned(),
            received: Mutex::new(vec![]),
            script: Script::default(),
            webhook: Mutex::new(None),
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client"),
            templates: Mutex::new(vec![]),
            numbers: Mutex::new(HashMap::new()),
            media_fetches: Mutex::new(vec![]),
        });
        let app = Router::new()
            .route("/{phone}/messages", post(whatsapp_send))
            .route("/{waba}/message_templates", post(template_create))
            .route("/{media}", axum::routing::get(whatsapp_media).post(template_edit))
            .route("/media-download/{media}", axum::routing::get(whatsapp_media_bytes))
            .with_state(inner.clone());
        let addr = serve(addr, app).await?;
        *inner.base.lock().expect("lock") = format!("http://{addr}");
        Ok(Self { addr, inner })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn received(&self) -> Vec<Sent> {
        self.inner.received.lock().expect("lock").clone()
    }
    pub fn script(&self, n: usize, status: u16, body: Value) {
        self.inner.script.push(n, status, body);
    }
    /// Post `sent` and `delivered` statuses of accepted messages to this webhook URL, signed.
    pub fn deliver_statuses_to(&self, webhook_url: &str) {
        *self.inner.webhook.lock().expect("lock") = Some(webhook_url.to_owned());
    }

    /// The templates submitted so far.
    pub fn templates(&self) -> Vec<SubmittedTemplate> {
        self.inner.templates.lock().expect("lock").clone()
    }

    /// Meta's review of a submitted template (`APPROVED`, `REJECTED` with a reason, `PAUSED`…),
    /// posted to the webhook signed, as the business account's `message_template_status_update`.
    pub async fn review_template(&self, name: &str, language: &str, event: &str, reason: &str) {
        let Some(t) = self.templates().into_iter().find(|t| t.name == name && t.language == language) else {
            panic!("no template {name} ({language}) was submitted");
        };
        let Some(url) = self.inner.webhook.lock().expect("lock").clone() else { return };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let payload = json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": t.business_account_id, "time": now, "changes": [{
                "field": "message_template_status_update",
                "value": { "event": event, "message_template_id": t.id.parse::<u64>().unwrap_or_default(),
                    "message_template_name": name, "message_template_language": language, "reason": reason,
                    "message_template_category": t.body["category"] } }] }]
        });
        post_graph_webhook(&self.inner.http, &url, &self.inner.app_secret, &payload).await;
    }

    /// A number of another business account: only that account's token sends from it or reads it.
    pub fn add_number(&self, phone_number_id: &str, access_token: &str) {
        self.inner.numbers.lock().expect("lock").insert(phone_number_id.to_owned(), access_token.to_owned());
    }

    /// Every media lookup and download so far: (media id, the access token it came with).
    pub fn media_fetches(&self) -> Vec<(String, String)> {
        self.inner.media_fetches.lock().expect("lock").clone()
    }

    /// Posts a status webhook for an accepted message, signed with the app secret.
    pub async fn post_status(&self, phone_number_id: &str, wamid: &str, to: &str, status: &str) {
        post_status(&self.inner, phone_number_id, wamid, to, status).await;
    }
}

/// The bytes behind every media id (a JPEG's first bytes, then filler).
pub const MEDIA_BYTES: &[u8] = b"\xff\xd8\xff\xe0\x00\x10JFIF fake whatsapp media";

/// `GET /{media-id}`: Meta's media lookup (any numeric id exists; `404…` ids do not), with any
/// business account's token; `GET /{phone-number-id}` of an added number: the number, with its
/// own account's token only.
async fn whatsapp_media(
    State(inner): State<Arc<WhatsAppInner>>,
    Path(media): Path<String>,
    headers: HeaderMap,
) -> Response {
    let token = WhatsAppInner::bearer(&headers).unwrap_or_default();
    if inner.numbers.lock().expect("lock").contains_key(&media) {
        if token != inner.token_of(&media) {
            return graph_error(400, 100, "Unsupported get request. Object does not exist or missing permissions");
        }
        return reply(200, json!({ "id": media }));
    }
    let Some(token) = inner.known_bearer(&headers) else { return invalid_token() };
    inner.media_fetches.lock().expect("lock").push((media.clone(), token));
    if !media.bytes().all(|b| b.is_ascii_digit()) || media.starts_with("404") {
        return graph_error(400, 100, "Unsupported get request. Object with ID does not exist");
    }
    let base = inner.base.lock().expect("lock").clone();
    reply(
        200,
        json!({ "messaging_product": "whatsapp", "url": format!("{base}/media-download/{media}"),
            "mime_type": "image/jpeg", "sha256": "fake", "file_size": MEDIA_BYTES.len(), "id": media }),
    )
}

async fn whatsapp_media_bytes(
    State(inner): State<Arc<WhatsAppInner>>,
    Path(media): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = inner.known_bearer(&headers) else { return invalid_token() };
    inner.media_fetches.lock().expect("lock").push((media, token));
    ([("content-type", "image/jpeg")], MEDIA_BYTES).into_response()
}

/// Meta's answer to a token it does not accept.
fn invalid_token() -> Response {
    graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
}

fn graph_error(status: u16, code: i64, message: &str) -> Response {
    reply(
        status,
        json!({ "error": { "message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AFake" } }),
    )
}

async fn whatsapp_send(
    State(inner): State<Arc<WhatsAppInner>>,
    Path(phone): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    // A number sends only with its own business account's token.
    if WhatsAppInner::bearer(&headers) != Some(inner.token_of(&phone)) {
        return invalid_token();
    }
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return graph_error(400, 100, "Invalid parameter: the body is not JSON");
    };
    let mut sent = Sent { path: format!("/{phone}/messages"), body: body.clone(), id: None };
    if let Some((status, answer)) = inner.script.next() {
        inner.received.lock().expect("lock").push(sent);
        return reply(status, answer);
    }
    let to = body["to"].as_str().unwrap_or_default().to_owned();
    let kind = body["type"].as_str().unwrap_or_default().to_owned();
    let valid = body["messaging_product"] == "whatsapp"
        && !to.is_empty()
        && to.bytes().all(|b| b.is_ascii_digit())
        && body.get(&kind).is_some();
    if !valid {
        inner.received.lock().expect("lock").push(sent);
        return graph_error(400, 100, "Invalid parameter");
    }
    let wamid = format!("wamid.{}", ulid::Ulid::new());
    sent.id = Some(wamid.clone());
    inner.received.lock().expect("lock").push(sent);
    if inner.webhook.lock().expect("lock").is_some() {
        let inner = inner.clone();
        let (phone, wamid, to) = (phone.clone(), wamid.clone(), to.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            post_status(&inner, &phone, &wamid, &to, "sent").await;
            post_status(&inner, &phone, &wamid, &to, "delivered").await;
        });
    }
    reply(
        200,
        json!({ "messaging_product": "whatsapp", "contacts": [{ "input": to, "wa_id": to }], "messages": [{ "id": wamid }] }),
    )
}

/// `POST /{waba-id}/message_templates`: Meta's checks (a name, a language, a category, a BODY
/// component; examples for variables), a duplicate refused, `{"id", "status": "PENDING", "category"}`.
async fn template_create(
    State(inner): State<Arc<WhatsAppInner>>,
    Path(waba): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let Some(token) = inner.known_bearer(&headers) else { return invalid_token() };
    let (Some(name), Some(language), Some(category)) =
        (body["name"].as_str(), body["language"].as_str(), body["category"].as_str())
    else {
        return graph_error(400, 100, "Invalid parameter: name, language and category are required");
    };
    if let Err(why) = template_components_ok(&body) {
        return graph_error(400, 100, &format!("Invalid parameter: {why}"));
    }
    let mut templates = inner.templates.lock().expect("lock");
    if templates.iter().any(|t| t.business_account_id == waba && t.name == name && t.language == language) {
        return graph_error(400, 100, "Message template already exists in this language");
    }
    let id =
        format!("{}", 1_700_000_000_000_000u64 + templates.len() as u64 + u64::from(ulid::Ulid::new().random() as u16));
    templates.push(SubmittedTemplate {
        id: id.clone(),
        business_account_id: waba,
        name: name.to_owned(),
        language: language.to_owned(),
        body: body.clone(),
        edits: 0,
        access_token: token,
    });
    reply(200, json!({ "id": id, "status": "PENDING", "category": category }))
}

/// `POST /{template-id}`: an edit (new components, Meta reviews it again): `{"success": true}`.
async fn template_edit(
    State(inner): State<Arc<WhatsAppInner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if inner.known_bearer(&headers).is_none() {
        return invalid_token();
    }
    if body.get("name").is_some() || body.get("language").is_some() {
        return graph_error(400, 100, "Invalid parameter: a template's name and language cannot be edited");
    }
    if let Err(why) = template_components_ok(&body) {
        return graph_error(400, 100, &format!("Invalid parameter: {why}"));
    }
    let mut templates = inner.templates.lock().expect("lock");
    let Some(t) = templates.iter_mut().find(|t| t.id == id) else {
        return graph_error(400, 100, "Unsupported post request. Object with ID does not exist");
    };
    t.body["components"] = body["components"].clone();
    t.edits += 1;
    reply(200, json!({ "success": true }))
}

/// A body component, and an example for each of its variables.
fn template_components_ok(body: &Value) -> Result<(), &'static str> {
    let components = body["components"].as_array().ok_or("components is required")?;
    let component = components.iter().find(|c| c["type"] == "BODY").ok_or("a BODY component is required")?;
    let text = component["text"].as_str().unwrap_or_default();
    if text.contains("{{") && component["example"]["body_text"].as_array().is_none_or(|e| e.is_empty()) {
        return Err("the body has variables: example.body_text is required");
    }
    Ok(())
}

async fn post_status(inner: &WhatsAppInner, phone: &str, wamid: &str, to: &str, status: &str) {
    let Some(url) = inner.webhook.lock().expect("lock").clone() else { return };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let payload = json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "0", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550000000", "phone_number_id": phone },
            "statuses": [{ "id": wamid, "status": status, "timestamp": now.to_string(), "recipient_id": to,
                "pricing": { "billable": true, "pricing_model": "PMP", "category": "service", "type": "regular" } }]
        }}]}]
    });
    post_graph_webhook(&inner.http, &url, &inner.app_secret, &payload).await;
}

/// Posts a Graph webhook payload signed as Meta signs it (`X-Hub-Signature-256` over the bytes).
async fn post_graph_webhook(http: &reqwest::Client, url: &str, app_secret: &str, payload: &Value) {
    let body = payload.to_string();
    let signature = domain::channels::whatsapp::compute_signature(app_secret, body.as_bytes());
    let res = http
        .post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await;
    if let Err(e) = res {
        tracing::warn!(error = %e, "a fake Meta API could not post its webhook");
    }
}

// ------------------------------------------------------------------------------- Messenger / IG

struct MetaInner {
    /// Page (or Instagram account) id → its Page access token.
    page_tokens: Mutex<std::collections::HashMap<String, String>>,
    app_secret: String,
    received: Mutex<Vec<Sent>>,
    script: Script,
    webhook: Mutex<Option<String>>,
    http: reqwest::Client,
}

/// The Messenger Platform Send API as Meta documents it: `POST /{page-or-ig-id}/messages` with
/// that Page's access token, `recipient.id`, a `messaging_type` (`MESSAGE_TAG` needs a `tag`) and
/// `message.text` or `message.attachment`; `{"recipient_id", "message_id"}` or a Graph error. Once
/// told where the webhook is, it posts a signed delivery and a read for each accepted message
/// (Messenger: `delivery.mids` and a read watermark; Instagram: a read naming the message).
pub struct FakeMeta {
    addr: SocketAddr,
    inner: Arc<MetaInner>,
}

impl FakeMeta {
    pub async fn start(page_tokens: &[(&str, &str)], app_secret: &str) -> std::io::Result<Self> {
        let inner = Arc::new(MetaInner {
            page_tokens: Mutex::new(page_tokens.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
            app_secret: app_secret.to_owned(),
            received: Mutex::new(vec![]),
            script: Script::default(),
            webhook: Mutex::new(None),
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client"),
        });
        // Its CDN too: attachment links in webhooks point here (signed links, no token).
        let app = Router::new()
            .route("/{id}/messages", post(meta_send))
            .route("/{id}", axum::routing::get(meta_node))
            .route("/cdn/{name}", axum::routing::get(|| async { ([("content-type", "image/jpeg")], MEDIA_BYTES) }))
            .with_state(inner.clone());
        Ok(Self { addr: serve("127.0.0.1:0".parse().expect("loopback"), app).await?, inner })
    }
    /// Another Page (a workspace's own) with its Page access token.
    pub fn add_page(&self, page_id: &str, page_token: &str) {
        self.inner.page_tokens.lock().expect("lock").insert(page_id.to_owned(), page_token.to_owned());
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn received(&self) -> Vec<Sent> {
        self.inner.received.lock().expect("lock").clone()
    }
    pub fn script(&self, n: usize, status: u16, body: Value) {
        self.inner.script.push(n, status, body);
    }
    pub fn deliver_statuses_to(&self, webhook_url: &str) {
        *self.inner.webhook.lock().expect("lock") = Some(webhook_url.to_owned());
    }
    /// A signed-looking CDN link to an attachment this fake serves ([`MEDIA_BYTES`], a JPEG).
    pub fn cdn_url(&self, name: &str) -> String {
        format!("http://{}/cdn/{name}?_nc_cat=1&oh=00_signature", self.addr)
    }
}

/// `GET /{page-id}?fields=id,name` with the Page's token: the Page node, or Graph's 190 error.
async fn meta_node(State(inner): State<Arc<MetaInner>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_none() || inner.page_tokens.lock().expect("lock").get(&id).map(String::as_str) != bearer {
        return invalid_token();
    }
    reply(200, json!({ "id": id, "name": "Fake Page" }))
}

async fn meta_send(
    State(inner): State<Arc<MetaInner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_none() || inner.page_tokens.lock().expect("lock").get(&id).map(String::as_str) != bearer {
        return invalid_token();
    }
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return graph_error(400, 100, "Invalid parameter: the body is not JSON");
    };
    let mut sent = Sent { path: format!("/{id}/messages"), body: body.clone(), id: None };
    if let Some((status, answer)) = inner.script.next() {
        inner.received.lock().expect("lock").push(sent);
        return reply(status, answer);
    }
    let to = body["recipient"]["id"].as_str().unwrap_or_default().to_owned();
    let kind_ok = match body["messaging_type"].as_str() {
        Some("RESPONSE" | "UPDATE") => body.get("tag").is_none(),
        Some("MESSAGE_TAG") => body["tag"].is_string(),
        _ => false,
    };
    let message_ok = body["message"]["text"].is_string() != body["message"]["attachment"].is_object();
    if to.is_empty() || !kind_ok || !message_ok {
        inner.received.lock().expect("lock").push(sent);
        return graph_error(400, 100, "Invalid parameter");
    }
    let mid = format!("m_{}", ulid::Ulid::new());
    sent.id = Some(mid.clone());
    inner.received.lock().expect("lock").push(sent);
    if inner.webhook.lock().expect("lock").is_some() {
        let inner = inner.clone();
        let (id, mid, to) = (id.clone(), mid.clone(), to.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            meta_receipts(&inner, &id, &mid, &to).await;
        });
    }
    reply(200, json!({ "recipient_id": to, "message_id": mid }))
}

async fn meta_receipts(inner: &MetaInner, ours: &str, mid: &str, to: &str) {
    let Some(url) = inner.webhook.lock().expect("lock").clone() else { return };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    // Instagram account ids are 17 digits starting 178; Pages are anything else here.
    let instagram = ours.starts_with("178");
    let items = if instagram {
        vec![json!({ "sender": { "id": to }, "recipient": { "id": ours }, "timestamp": now, "read": { "mid": mid } })]
    } else {
        vec![
            json!({ "sender": { "id": to }, "recipient": { "id": ours }, "delivery": { "mids": [mid], "watermark": now } }),
            json!({ "sender": { "id": to }, "recipient": { "id": ours }, "timestamp": now + 1, "read": { "watermark": now + 1 } }),
        ]
    };
    for item in items {
        let payload = json!({
            "object": if instagram { "instagram" } else { "page" },
            "entry": [{ "id": ours, "time": now, "messaging": [item] }],
        });
        post_graph_webhook(&inner.http, &url, &inner.app_secret, &payload).await;
    }
}

// ------------------------------------------------------------------------------------ Telegram

struct TelegramInner {
    bot_token: String,
    /// Tokens of further bots (a workspace's own, connected through the admin API).
    more_tokens: Mutex<Vec<String>>,
    /// `setWebhook` per bot id: (url, secret_token); removed by `deleteWebhook`.
    webhooks: Mutex<std::collections::HashMap<String, (String, String)>>,
    /// Which bot each received request was for (ids, in `received` order).
    senders: Mutex<Vec<String>>,
    received: Mutex<Vec<Sent>>,
    script: Script,
    next_id: AtomicI64,
}

#[derive(Clone)]
pub struct FakeTelegram {
    addr: SocketAddr,
    inner: Arc<TelegramInner>,
}

impl FakeTelegram {
    pub async fn start(bot_token: &str) -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().expect("loopback"), bot_token).await
    }

    pub async fn start_on(addr: SocketAddr, bot_token: &str) -> std::io::Result<Self> {
        let inner = Arc::new(TelegramInner {
            bot_token: bot_token.to_owned(),
            more_tokens: Mutex::new(vec![]),
            webhooks: Mutex::default(),
            senders: Mutex::new(vec![]),
            received: Mutex::new(vec![]),
            script: Script::default(),
            next_id: AtomicI64::new(100),
        });
        let app = Router::new()
            .route("/{bot}/{method}", post(telegram_call).get(telegram_get_file))
            .route("/file/{bot}/{*path}", axum::routing::get(telegram_download))
            .with_state(inner.clone());
        Ok(Self { addr: serve(addr, app).await?, inner })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn received(&self) -> Vec<Sent> {
        self.inner.received.lock().expect("lock").clone()
    }
    /// What was sent as the bot `bot_id`.
    pub fn received_by(&self, bot_id: &str) -> Vec<Sent> {
        let senders = self.inner.senders.lock().expect("lock").clone();
        let received = self.inner.received.lock().expect("lock").clone();
        received.into_iter().zip(senders).filter(|(_, s)| s == bot_id).map(|(r, _)| r).collect()
    }
    pub fn script(&self, n: usize, status: u16, body: Value) {
        self.inner.script.push(n, status, body);
    }
    /// Another bot Telegram knows (BotFather made it): its token is accepted from now on.
    pub fn add_bot(&self, bot_token: &str) {
        self.inner.more_tokens.lock().expect("lock").push(bot_token.to_owned());
    }
    /// The webhook registered for `bot_id`: (url, secret_token).
    pub fn webhook(&self, bot_id: &str) -> Option<(String, String)> {
        self.inner.webhooks.lock().expect("lock").get(bot_id).cloned()
    }
}

impl TelegramInner {
    /// The bot a `bot<token>` path segment authenticates, if Telegram knows the token.
    fn bot_of(&self, segment: &str) -> Option<String> {
        let token = segment.strip_prefix("bot")?;
        let known = token == self.bot_token || self.more_tokens.lock().expect("lock").iter().any(|t| t == token);
        known.then(|| token.split(':').next().unwrap_or_default().to_owned())
    }
}

/// The bytes behind every Telegram file.
pub const TELEGRAM_FILE_BYTES: &[u8] = b"\xff\xd8\xff\xe0 fake telegram photo";

/// `GET /bot<token>/getFile?file_id=…`: every id is a photo at `photos/<id>.jpg`.
async fn telegram_get_file(
    State(inner): State<Arc<TelegramInner>>,
    Path((bot, method)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    if inner.bot_of(&bot).is_none() {
        return telegram_error(401, "Unauthorized");
    }
    let Some(id) = q.get("file_id").filter(|_| method == "getFile") else {
        return telegram_error(400, "Bad Request: file_id is required");
    };
    reply(
        200,
        json!({ "ok": true, "result": { "file_id": id, "file_unique_id": format!("u{}", id.len()),
            "file_size": TELEGRAM_FILE_BYTES.len(), "file_path": format!("photos/{id}.jpg") } }),
    )
}

async fn telegram_download(
    State(inner): State<Arc<TelegramInner>>,
    Path((bot, _path)): Path<(String, String)>,
) -> Response {
    if inner.bot_of(&bot).is_none() {
        return telegram_error(401, "Unauthorized");
    }
    ([("content-type", "image/jpeg")], TELEGRAM_FILE_BYTES).into_response()
}

fn telegram_error(status: u16, description: &str) -> Response {
    reply(status, json!({ "ok": false, "error_code": status, "description": description }))
}

async fn telegram_call(
    State(inner): State<Arc<TelegramInner>>,
    Path((bot, method)): Path<(String, String)>,
    body: String,
) -> Response {
    if inner.bot_of(&bot).is_none() {
        return telegram_error(401, "Unauthorized");
    }
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return telegram_error(400, "Bad Request: the body is not JSON");
    };
    let bot_id = inner.bot_of(&bot).unwrap_or_default();
    match method.as_str() {
        "setWebhook" => {
            let (Some(url), Some(secret)) = (body["url"].as_str(), body["secret_token"].as_str()) else {
                return telegram_error(400, "Bad Request: url and secret_token are required here");
            };
            if !url.starts_with("http") || secret.is_empty() || secret.len() > 256 {
                return telegram_error(400, "Bad Request: bad webhook");
            }
            inner.webhooks.lock().expect("lock").insert(bot_id, (url.to_owned(), secret.to_owned()));
            return reply(200, json!({ "ok": true, "result": true, "description": "Webhook was set" }));
        }
        "deleteWebhook" => {
            inner.webhooks.lock().expect("lock").remove(&bot_id);
            return reply(200, json!({ "ok": true, "result": true, "description": "Webhook was deleted" }));
        }
        _ => {}
    }
    inner.senders.lock().expect("lock").push(bot_id.clone());
    let mut sent = Sent { path: format!("/{method}"), body: body.clone(), id: None };
    if let Some((status, answer)) = inner.script.next() {
        inner.received.lock().expect("lock").push(sent);
        return reply(status, answer);
    }
    let field = match method.as_str() {
        "sendMessage" => "text",
        "sendPhoto" => "photo",
        "sendDocument" => "document",
        _ => {
            inner.received.lock().expect("lock").push(sent);
            return telegram_error(404, "Not Found: method not found");
        }
    };
    let chat: Option<i64> = match &body["chat_id"] {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    };
    let (Some(chat), Some(_)) = (chat, body[field].as_str()) else {
        inner.received.lock().expect("lock").push(sent);
        return telegram_error(400, "Bad Request: chat_id and the content are required");
    };
    let id = inner.next_id.fetch_add(1, Ordering::SeqCst);
    sent.id = Some(format!("{chat}:{id}"));
    inner.received.lock().expect("lock").push(sent);
    let bot_id: i64 = bot_id.parse().unwrap_or(0);
    reply(
        200,
        json!({ "ok": true, "result": {
            "message_id": id, "from": { "id": bot_id, "is_bot": true, "first_name": "Switchboard" },
            "chat": { "id": chat, "type": "private" }, "date": 1, field: body[field] } }),
    )
}
