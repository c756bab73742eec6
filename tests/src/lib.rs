//! Test harness: [`spawn_stack`] gives each test its own stack on the local AWS servers (unique table
//! and queues), its own gateway on an ephemeral port, its own fake Twilio and its own workspace and
//! number, so tests run in parallel. The servers come from `make test` (infra/scripts/test.sh).

use std::future::Future;
use std::time::Duration;

use domain::channels::twilio;
use domain::ports::{ChannelAccount, ChannelDirectory};
use domain::{AgentId, Channel, WorkspaceId};
use fake_channels::{FakeMeta, FakeTelegram, FakeWhatsApp};
use fake_twilio::{Callbacks, FakeTwilio};
use kit::auth::Role;
use switchboard_local::gateway::{Stack, StackOptions};
pub use switchboard_local::services::repo_root;
use switchboard_local::template::Template;

pub const ACCOUNT_SID: &str = "AC11111111111111111111111111111111";
pub const AUTH_TOKEN: &str = "e2e-twilio-auth-token";
pub const JWT_SECRET: &str = "e2e-jwt-secret";
pub const WHATSAPP_APP_SECRET: &str = "e2e-whatsapp-app-secret";
pub const WHATSAPP_VERIFY_TOKEN: &str = "e2e-whatsapp-verify-token";
pub const WHATSAPP_ACCESS_TOKEN: &str = "e2e-whatsapp-access-token";
pub const TELEGRAM_BOT_TOKEN: &str = "7111111111:e2e-telegram-bot-token";
pub const META_APP_SECRET: &str = "e2e-meta-app-secret";
pub const META_VERIFY_TOKEN: &str = "e2e-meta-verify-token";
pub const META_PAGE_TOKEN: &str = "e2e-meta-page-token";
pub const TELEGRAM_SECRET_TOKEN: &str = "e2e-telegram-secret-token";
/// The domain every test's support address is on (verified on moto's SES).
pub const EMAIL_DOMAIN: &str = "e2e.switchboard.test";

pub struct TestStack {
    pub stack: Stack,
    pub twilio: FakeTwilio,
    pub aws: aws_config::SdkConfig,
    pub store: store::DynamoStore,
    pub http: reqwest::Client,
    pub workspace: WorkspaceId,
    /// Our SMS number in this test's workspace.
    pub number: String,
    pub whatsapp: FakeWhatsApp,
    /// Our WhatsApp business number's id in this test's workspace.
    pub whatsapp_number_id: String,
    pub telegram: FakeTelegram,
    /// The Telegram bot id this test's workspace receives on (every test has its own).
    pub telegram_bot: String,
    /// The support address this test's workspace receives email on.
    pub email_address: String,
    pub meta: FakeMeta,
    /// This test's Facebook Page and Instagram account.
    pub messenger_page: String,
    pub instagram_account: String,
    /// The workspace's web chat widget key.
    pub webchat_key: String,
}

fn unique() -> String {
    ulid::Ulid::new().to_string().to_lowercase()
}

/// A random, valid US number, so parallel tests never share a channel account or a contact.
pub fn random_number() -> String {
    format!("+1415555{:04}", ulid::Ulid::new().random() % 10_000)
}

pub async fn aws() -> aws_config::SdkConfig {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok() && std::env::var("AWS_ENDPOINT_URL_SQS").is_ok(),
        "the end-to-end tests need the local AWS servers: run them with `make test` (infra/scripts/test.sh)"
    );
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

pub async fn spawn_stack() -> TestStack {
    let aws = aws().await;
    let template = Template::load(&repo_root().join("template.yaml")).expect("template.yaml");
    let twilio = FakeTwilio::start(ACCOUNT_SID, AUTH_TOKEN, Callbacks::SentThenDelivered).await.expect("fake Twilio");
    let whatsapp = FakeWhatsApp::start(WHATSAPP_ACCESS_TOKEN, WHATSAPP_APP_SECRET).await.expect("fake WhatsApp");
    let telegram = FakeTelegram::start(TELEGRAM_BOT_TOKEN).await.expect("fake Telegram");
    let messenger_page = format!("1098{:011}", ulid::Ulid::new().random() % 100_000_000_000);
    let instagram_account = format!("178414{:011}", ulid::Ulid::new().random() % 100_000_000_000);
    let page_tokens = [(messenger_page.as_str(), META_PAGE_TOKEN), (instagram_account.as_str(), META_PAGE_TOKEN)];
    let meta = FakeMeta::start(&page_tokens, META_APP_SECRET).await.expect("fake Meta");
    let meta_base = meta.base_url();
    let meta_env = switchboard_local::MetaEnv {
        base_url: &meta_base,
        app_secret: META_APP_SECRET,
        verify_token: META_VERIFY_TOKEN,
        page_tokens: &page_tokens,
    };
    let mut extra_env = switchboard_local::channel_env(
        &whatsapp.base_url(),
        (WHATSAPP_APP_SECRET, WHATSAPP_VERIFY_TOKEN, WHATSAPP_ACCESS_TOKEN),
        &telegram.base_url(),
        (TELEGRAM_BOT_TOKEN, TELEGRAM_SECRET_TOKEN),
        &meta_env,
    );
    // Outbound webhooks retry after 1 s, 1 s, 2 s here (the specification's 5 s … 10 h in AWS).
    extra_env.push(("WEBHOOK_RETRY_SCHEDULE".into(), "1s,1s,2s".into()));
    let opts = StackOptions {
        extra_env,
        stack_name: format!("t{}", unique()),
        email_domains: vec![EMAIL_DOMAIN.into()],
        http_addr: "127.0.0.1:0".parse().unwrap(),
        twilio_api_base: twilio.base_url(),
        twilio_account_sid: ACCOUNT_SID.into(),
        twilio_auth_token: AUTH_TOKEN.into(),
        jwt_secret: JWT_SECRET.into(),
        oidc_issuer: std::env::var(switchboard_local::services::OIDC_ISSUER_ENV).ok(),
        send_retry_base_ms: 10,
        poll_wait_secs: 1,
        pollers_per_queue: 2,
        batching_windows: false,
        ws_idle: std::time::Duration::from_secs(600),
        ws_max_age: std::time::Duration::from_secs(7200),
        console_origins: vec![],
    };
    let stack = Stack::start(&template, opts, &aws).await.expect("local stack");
    let store = store::DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), stack.provisioned.table.clone());
    let workspace = WorkspaceId::parse(&format!("ws-{}", unique())).unwrap();
    let number = random_number();
    store.put_channel_account(&ChannelAccount::new(workspace.clone(), Channel::Sms, number.clone())).await.unwrap();
    let whatsapp_number_id = format!("1065{:011}", ulid::Ulid::new().random() % 100_000_000_000);
    let telegram_bot = format!("71{:08}", ulid::Ulid::new().random() % 100_000_000);
    let email_address = format!("support-{}@{EMAIL_DOMAIN}", unique());
    let webchat_key = format!("wk_{}", unique());
    for (channel, address) in [
        (Channel::Voice, &number),
        (Channel::Whatsapp, &whatsapp_number_id),
        (Channel::Telegram, &telegram_bot),
        (Channel::Email, &email_address),
        (Channel::Messenger, &messenger_page),
        (Channel::Instagram, &instagram_account),
        (Channel::Webchat, &webchat_key),
    ] {
        store
            .put_channel_account(&ChannelAccount {
                display_name: (channel == Channel::Email).then(|| "Acme Support".to_owned()),
                ..ChannelAccount::new(workspace.clone(), channel, address.clone())
            })
            .await
            .unwrap();
    }
    // The test's bot is the workspace's own (its token in the workspace's secret, as the admin API
    // keeps it), with the suite's secret token: the stack's bot answers for its own id only.
    let bot_token = format!("{telegram_bot}:e2e-telegram-bot-token");
    telegram.add_bot(&bot_token);
    let secret = domain::credentials::CredentialKey::telegram(&telegram_bot)
        .secret_name(&format!("{}/credentials/", stack.provisioned.stack));
    aws_sdk_secretsmanager::Client::new(&aws)
        .create_secret()
        .name(secret)
        .secret_string(domain::credentials::telegram_secret(&bot_token, TELEGRAM_SECRET_TOKEN))
        .send()
        .await
        .expect("the test bot's secret");
    whatsapp.deliver_statuses_to(&format!("{}/webhooks/whatsapp", stack.base_url));
    meta.deliver_statuses_to(&format!("{}/webhooks/meta", stack.base_url));
    TestStack {
        stack,
        twilio,
        aws,
        store,
        http: reqwest::Client::new(),
        workspace,
        number,
        whatsapp,
        whatsapp_number_id,
        telegram,
        telegram_bot,
        email_address,
        meta,
        messenger_page,
        instagram_account,
        webchat_key,
    }
}

/// Twilio's inbound SMS parameters.
pub fn sms_form(sid: &str, from: &str, to: &str, body: &str) -> Vec<(String, String)> {
    [
        ("ToCountry", "US"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("Body", body),
        ("FromCountry", "US"),
        ("To", to),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

pub fn new_sid() -> String {
    format!("SM{:032x}", ulid::Ulid::new().0)
}

impl TestStack {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.stack.base_url)
    }

    pub fn token(&self) -> String {
        self.token_for(&self.workspace)
    }

    /// A token for this workspace with another role (finance, supervisor, admin).
    pub fn token_as(&self, agent: &str, role: Role) -> String {
        kit::auth::issue_token(
            JWT_SECRET,
            &self.workspace,
            &AgentId::parse(agent).unwrap(),
            None,
            role,
            time::Duration::hours(1),
        )
    }

    pub async fn send_as(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("gateway reachable");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub fn token_for(&self, ws: &WorkspaceId) -> String {
        kit::auth::issue_token(
            JWT_SECRET,
            ws,
            &AgentId::parse("alice").unwrap(),
            Some("Alice"),
            Role::Agent,
            time::Duration::hours(1),
        )
    }

    /// Posts a webhook form signed as Twilio would sign it for this URL.
    pub async fn post_signed(&self, path: &str, form: &[(String, String)], token: &str) -> reqwest::Response {
        let url = self.url(path);
        let signature = twilio::compute_signature(token, &url, form);
        self.http.post(url).header("x-twilio-signature", signature).form(form).send().await.expect("gateway reachable")
    }

    /// A customer's SMS to this test's number.
    pub async fn text_in(&self, sid: &str, from: &str, body: &str) -> reqwest::Response {
        self.post_signed("/webhooks/twilio/sms", &sms_form(sid, from, &self.number, body), AUTH_TOKEN).await
    }

    /// Posts a WhatsApp webhook payload signed as Meta signs it (over the exact bytes sent).
    pub async fn whatsapp_in(&self, payload: &serde_json::Value) -> reqwest::Response {
        self.graph_in("/webhooks/whatsapp", payload, WHATSAPP_APP_SECRET).await
    }

    /// Posts a Graph webhook payload to `path`, signed with `app_secret` over the exact bytes sent.
    async fn graph_in(&self, path: &str, payload: &serde_json::Value, app_secret: &str) -> reqwest::Response {
        let body = payload.to_string();
        let signature = domain::channels::whatsapp::compute_signature(app_secret, body.as_bytes());
        self.http
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await
            .expect("gateway reachable")
    }

    /// Posts a Messenger or Instagram webhook payload, signed with the Meta app secret (or `secret`).
    pub async fn meta_in_signed(&self, payload: &serde_json::Value, secret: &str) -> reqwest::Response {
        self.graph_in("/webhooks/meta", payload, secret).await
    }

    pub async fn meta_in(&self, payload: &serde_json::Value) -> reqwest::Response {
        self.meta_in_signed(payload, META_APP_SECRET).await
    }

    /// A customer's text to this test's Page (`object: page`) or Instagram account, as Meta posts it.
    pub fn meta_text(&self, channel: Channel, mid: &str, from: &str, text: &str) -> serde_json::Value {
        let (object, ours) = match channel {
            Channel::Instagram => ("instagram", &self.instagram_account),
            _ => ("page", &self.messenger_page),
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        serde_json::json!({
            "object": object,
            "entry": [{ "id": ours, "time": now as i64, "messaging": [{
                "sender": { "id": from }, "recipient": { "id": ours }, "timestamp": now as i64,
                "message": { "mid": mid, "text": text }
            }]}]
        })
    }

    /// A customer's WhatsApp text to this test's business number, as Meta posts it.
    pub fn whatsapp_text(&self, wamid: &str, from_digits: &str, name: &str, text: &str) -> serde_json::Value {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "102290129340398", "changes": [{ "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550783881", "phone_number_id": self.whatsapp_number_id },
                "contacts": [{ "profile": { "name": name }, "wa_id": from_digits }],
                "messages": [{ "from": from_digits, "id": wamid, "timestamp": now.to_string(), "type": "text",
                    "text": { "body": text } }]
            }}]}]
        })
    }

    /// Posts a Telegram update to this test's bot with the secret token.
    pub async fn telegram_in(&self, update: &serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/webhooks/telegram/{}", self.telegram_bot)))
            .header("x-telegram-bot-api-secret-token", TELEGRAM_SECRET_TOKEN)
            .json(update)
            .send()
            .await
            .expect("gateway reachable")
    }

    /// A customer's email arriving through SES (played by the gateway's receipt rule): the raw
    /// message is stored in the mail bucket and inbound-email invoked. Returns SES's id for it.
    pub async fn email_in(&self, raw: &str, to: &str) -> String {
        self.email_in_with(raw, to, "").await
    }

    /// Mail SES could not authenticate: SPF, DKIM and DMARC fail (forged From).
    pub async fn email_in_spoofed(&self, raw: &str, to: &str) -> String {
        self.email_in_with(raw, to, "&auth=fail").await
    }

    async fn email_in_with(&self, raw: &str, to: &str, extra: &str) -> String {
        let url = format!(
            "{}?to={}{extra}",
            self.url("/_local/ses/receive"),
            url::form_urlencoded::byte_serialize(to.as_bytes()).collect::<String>()
        );
        let res = self.http.post(url).body(raw.to_owned()).send().await.expect("gateway reachable");
        assert_eq!(res.status(), 200, "SES receiving failed");
        let out: serde_json::Value = res.json().await.unwrap();
        out["ses_message_id"].as_str().unwrap().to_owned()
    }

    /// What SES (moto) sent to `to`: raw MIME messages, oldest first.
    pub async fn emails_sent_to(&self, to: &str) -> Vec<String> {
        let data = self.moto_state().await;
        data["ses"]["RawMessage"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["destinations"].as_array().is_some_and(|d| d.iter().any(|x| x.as_str() == Some(to))))
            .filter_map(|m| m["raw_data"].as_str().map(str::to_owned))
            .collect()
    }

    /// moto's whole state (`/moto-api/data.json`, its only way to show what SES sent). moto builds it
    /// by walking every backend while other tests write to them, and then sometimes answers a 500
    /// page instead of JSON ("dictionary changed size during iteration"): a failed read is retried
    /// a few times before it is an error, so a test never fails on moto's race.
    pub async fn moto_state(&self) -> serde_json::Value {
        let moto = std::env::var("AWS_ENDPOINT_URL_SESV2").expect("SES endpoint");
        let mut last = String::new();
        for attempt in 0..20u64 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 * attempt.min(6))).await;
            }
            let res = match self.http.get(format!("{moto}/moto-api/data.json")).send().await {
                Ok(res) => res,
                Err(e) => {
                    last = format!("unreachable: {e}");
                    continue;
                }
            };
            let status = res.status();
            match res.bytes().await.map(|b| serde_json::from_slice::<serde_json::Value>(&b)) {
                Ok(Ok(data)) if status.is_success() => return data,
                Ok(Ok(_)) => last = format!("HTTP {status}"),
                Ok(Err(e)) => last = format!("HTTP {status}, not JSON: {e}"),
                Err(e) => last = format!("HTTP {status}, body cut: {e}"),
            }
        }
        panic!("moto's state could not be read after 20 attempts: {last}")
    }

    /// Invokes one of this stack's functions the way an AWS service would (Lambda's Invoke API).
    pub async fn invoke(&self, binary: &str, payload: &serde_json::Value) -> serde_json::Value {
        let name = format!("{}--{binary}", self.stack.provisioned.stack);
        let res = self
            .http
            .post(self.url(&format!("/2015-03-31/functions/{name}/invocations")))
            .json(payload)
            .send()
            .await
            .expect("gateway reachable");
        assert!(res.headers().get("x-amz-function-error").is_none(), "{binary} failed");
        res.json().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.get_as(path, &self.token()).await
    }

    pub async fn get_as(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let res = self.http.get(self.url(path)).bearer_auth(token).send().await.expect("gateway reachable");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn reply(&self, conversation: &str, key: &str, text: &str) -> (u16, serde_json::Value) {
        let res = self
            .http
            .post(self.url(&format!("/conversations/{conversation}/messages")))
            .bearer_auth(self.token())
            .header("idempotency-key", key)
            .json(&serde_json::json!({ "text": text }))
            .send()
            .await
            .expect("gateway reachable");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// An agent's message with any body (`{"text"}`, `{"template"}`, `{"interactive"}`…).
    pub async fn send_message(
        &self,
        conversation: &str,
        key: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let res = self
            .http
            .post(self.url(&format!("/conversations/{conversation}/messages")))
            .bearer_auth(self.token())
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .expect("gateway reachable");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// The workspace's open conversations, as the API lists them.
    pub async fn conversations(&self) -> Vec<serde_json::Value> {
        let (status, body) = self.get("/conversations?limit=100").await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().cloned().unwrap_or_default()
    }

    pub async fn messages(&self, conversation: &str) -> Vec<serde_json::Value> {
        let (status, body) = self.get(&format!("/conversations/{conversation}/messages?limit=100")).await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().cloned().unwrap_or_default()
    }

    pub fn queue_url(&self, logical_id: &str) -> String {
        self.stack.provisioned.queue_urls[logical_id].clone()
    }

    pub fn state_machine_arn(&self, logical_id: &str) -> String {
        self.stack.provisioned.state_machine_arns[logical_id].clone()
    }
}

/// Polls `check` until it returns `Some`, for up to 60 seconds (queues are asynchronous; a loaded
/// two-core CI machine running several stacks at once is slow, and this is liveness, not speed).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An agent's WebSocket, as a browser tab would hold it.
pub struct AgentSocket {
    stream: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    /// Frames read while waiting for another one, kept for later `expect`s.
    seen: Vec<serde_json::Value>,
}

/// How a connection attempt ended: the socket, or the HTTP status the handshake was refused with.
pub async fn connect_socket(url: &str, token: &str, via_subprotocol: bool) -> Result<AgentSocket, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let target = if via_subprotocol { url.to_owned() } else { format!("{url}?token={token}") };
    let mut req = target.into_client_request().expect("ws request");
    if via_subprotocol {
        let offer = format!("{}, {token}", kit::ws::SUBPROTOCOL);
        req.headers_mut().insert("sec-websocket-protocol", offer.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((stream, _)) => Ok(AgentSocket { stream, seen: vec![] }),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

/// A web chat visitor's socket, as the widget opens it: `?key=` and the token as a subprotocol.
pub async fn connect_visitor(url: &str, key: &str, token: &str) -> Result<AgentSocket, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("{url}?key={key}").into_client_request().expect("ws request");
    let offer = format!("{}, {token}", domain::channels::webchat::SUBPROTOCOL);
    req.headers_mut().insert("sec-websocket-protocol", offer.parse().expect("header"));
    match tokio_tungstenite::connect_async(req).await {
        Ok((stream, _)) => Ok(AgentSocket { stream, seen: vec![] }),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

impl AgentSocket {
    pub async fn send(&mut self, frame: serde_json::Value) {
        use futures::SinkExt;
        self.stream
            .send(tokio_tungstenite::tungstenite::Message::Text(frame.to_string().into()))
            .await
            .expect("ws send");
    }

    /// The first frame (already seen or arriving within 45 s) that `matches`; panics otherwise.
    pub async fn expect(&mut self, what: &str, matches: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        use futures::StreamExt;
        if let Some(i) = self.seen.iter().position(&matches) {
            return self.seen.remove(i);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next()).await;
            let frame = match next {
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                    serde_json::from_str::<serde_json::Value>(&t).expect("frames are JSON")
                }
                Ok(Some(Ok(_))) => continue,
                Ok(other) => panic!("socket ended while waiting for {what}: {other:?}"),
                Err(_) => panic!("no {what} within 15 s; saw {:#?}", self.seen),
            };
            if matches(&frame) {
                return frame;
            }
            self.seen.push(frame);
        }
    }

    /// Sends an action and waits for its answer (action routes are two-way).
    pub async fn act(&mut self, frame: serde_json::Value) -> serde_json::Value {
        let action = frame["action"].as_str().expect("action").to_owned();
        self.send(frame).await;
        self.expect(&format!("the answer to {action}"), |f| {
            f.get("action").and_then(|a| a.as_str()) == Some(action.as_str()) || f.get("error").is_some()
        })
        .await
    }

    /// Everything received so far and within `wait`, without matching.
    pub async fn drain(&mut self, wait: Duration) -> Vec<serde_json::Value> {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, self.stream.next()).await {
            if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                self.seen.push(serde_json::from_str(&t).expect("frames are JSON"));
            }
        }
        std::mem::take(&mut self.seen)
    }
}

/// Frame matchers.
pub fn is_event(kind: &'static str) -> impl Fn(&serde_json::Value) -> bool {
    move |f| f["event"]["type"] == kind
}
