//! Voicemail through Twilio Voice (`domain::channels::voice`). Every request is checked against
//! `X-Twilio-Signature` first (403 and nothing stored otherwise), with the auth token of the
//! Twilio account that owns the number called: the workspace's own where it connected one with
//! the number, else the stack's (`providers::accounts::TwilioNumbers`, as SMS). That account also
//! fetches the recording.
//!
//! - `POST /webhooks/twilio/voice` — a call to one of our numbers (a `voice` channel account):
//!   TwiML with the greeting (`VOICEMAIL_GREETING`), a beep and a recording; `<Reject/>` for a
//!   number no workspace answers on.
//! - `POST /webhooks/twilio/voice/done` — the recording ended: thanks, and hang up.
//! - `POST /webhooks/twilio/voice/recording` — the finished recording: the audio is fetched from
//!   Twilio (only from `TWILIO_API_BASE`, with the account's credentials) into the media bucket
//!   (`MEDIA_BUCKET`), then the voicemail is enqueued. A failed fetch answers 503 so Twilio
//!   retries; nothing is enqueued without its audio.
//! - `POST /webhooks/twilio/voice/transcription` — the transcript: enqueued as the same message
//!   (the recording's id), which it completes with its text.

use std::sync::Arc;

use domain::channels::{twilio, voice};
use domain::credentials::TwilioAccount;
use domain::events::InboundEvent;
use domain::finance::Usage;
use domain::model::Attachment;
use domain::ports::{ChannelDirectory, InboundQueue};
use domain::{Channel, PhoneNumber, WorkspaceId};
use kit::http::{public_url, respond, xml, ApiError};
use lambda_http::{Body, Error, Request, Response};
use meter::{Invocation, Trigger};
use providers::accounts::TwilioNumbers;
use providers::media::{Copied, MediaCopier, TwilioMedia};

pub const DEFAULT_GREETING: &str =
    "Thank you for calling. Nobody can take your call right now. Please leave a message after the tone.";
pub struct Deps {
    pub directory: Arc<dyn ChannelDirectory>,
    /// Each workspace's own greeting, when its admins set one (cached a minute).
    pub workspaces: Arc<dyn domain::ports::WorkspaceStore>,
    pub settings: app::cache::SettingsCache,
    pub queue: Arc<dyn InboundQueue>,
    /// Twilio accounts by number: a workspace's own where it connected one, else the stack's.
    pub numbers: Arc<TwilioNumbers>,
    /// Recordings are copied from Twilio's API (`api_base`, only from there) into the media
    /// bucket, with the account of the number called.
    pub copier: Arc<MediaCopier>,
    pub api_base: String,
    /// The public base URL Twilio calls (signatures and callback URLs); else the API's.
    pub public_base_url: Option<String>,
    pub greeting: String,
    pub memory_mb: u64,
}

impl Deps {
    /// `TABLE_NAME`, `INBOUND_QUEUE_URL`, `MEDIA_BUCKET`, `TWILIO_ACCOUNT_SID`,
    /// `TWILIO_AUTH_TOKEN` (a secret), optional `TWILIO_API_BASE`, `PUBLIC_BASE_URL`,
    /// `VOICEMAIL_GREETING`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let store =
            Arc::new(store::DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), config.required("TABLE_NAME")?));
        let sink =
            Arc::new(providers::s3::S3Files::new(aws_sdk_s3::Client::new(aws), config.required("MEDIA_BUCKET")?));
        let copier = MediaCopier::standard(sink)
            .map_err(|e| kit::ConfigError::Invalid { name: "http client".into(), reason: e.to_string() })?;
        Ok(Self {
            directory: Arc::new(app::cache::CachedDirectory::new(store.clone())),
            workspaces: store,
            settings: Default::default(),
            queue: Arc::new(queue::SqsQueue::new(aws_sdk_sqs::Client::new(aws), config.required("INBOUND_QUEUE_URL")?)),
            numbers: api::credentials::twilio_numbers(config, aws, api::credentials::vault(config, aws)).await?,
            copier,
            api_base: config.optional("TWILIO_API_BASE").unwrap_or_else(|| "https://api.twilio.com".into()),
            public_base_url: config.optional("PUBLIC_BASE_URL"),
            greeting: config
                .optional("VOICEMAIL_GREETING")
                .filter(|g| !g.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_GREETING.into()),
            memory_mb: meter::memory_mb_from_env(),
        })
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    let inv = Invocation::new(deps.memory_mb, 1, Trigger::HttpApi);
    Ok(respond(meter::measure(route(deps, &req, &inv)).await.0))
}

async fn route(deps: &Deps, req: &Request, inv: &Invocation) -> Result<Response<Body>, ApiError> {
    let url = public_url(req, deps.public_base_url.as_deref());
    let account = account(deps, req, &url).await?;
    let params = kit::twilio::verified_form(req, &account.auth_token, deps.public_base_url.as_deref())?;
    let path = url.split('?').next().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    match last {
        "voice" => call(deps, req, &params).await,
        "done" => Ok(xml(200, voice::GOODBYE)),
        "recording" => recording(deps, &account, &url, &params, inv).await,
        "transcription" => transcription(deps, &url, &params, inv).await,
        _ => Err(ApiError::NotFound("no such voice webhook".into())),
    }
}

/// The account that owns the number called, whose auth token signs the request: the number is
/// `to` in our callbacks' URLs (a recording's status callback names no `To`), else the form's `To`.
async fn account(deps: &Deps, req: &Request, url: &str) -> Result<Arc<TwilioAccount>, ApiError> {
    let to = match voice::parties(url) {
        Ok((_, to)) => to.as_str().to_owned(),
        Err(_) => twilio::parse_form(kit::http::body_bytes(req))
            .ok()
            .and_then(|form| form.into_iter().find(|(k, _)| k == "To").map(|(_, v)| v))
            .ok_or_else(|| ApiError::Forbidden("no To: not a Twilio call".into()))?,
    };
    deps.numbers
        .get(&to)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?
        .ok_or_else(|| ApiError::Forbidden("no Twilio account is configured for this number".into()))
}

async fn owner(deps: &Deps, our_number: &PhoneNumber) -> Result<Option<WorkspaceId>, ApiError> {
    Ok(deps.directory.channel_account(Channel::Voice, our_number.as_str()).await?.map(|a| a.workspace))
}

async fn call(deps: &Deps, req: &Request, params: &[(String, String)]) -> Result<Response<Body>, ApiError> {
    let call = voice::parse_call(params)?;
    let Some(ws) = owner(deps, &call.to).await? else {
        tracing::warn!(to = %call.to.as_str(), "a call to a number no workspace answers on; rejected");
        return Ok(xml(200, voice::REJECT));
    };
    let settings = deps.settings.get(&*deps.workspaces, &ws).await?;
    let greeting = settings.voicemail_greeting.as_deref().unwrap_or(&deps.greeting);
    // The callbacks go to this function's own public URL.
    let here = public_url(req, deps.public_base_url.as_deref());
    let base = here.split("/webhooks/").next().unwrap_or_default();
    tracing::info!(call = %call.call_sid, "voicemail call answered");
    Ok(xml(200, &voice::answer(greeting, base, &call)))
}

/// A callback's caller and our number (from its URL's query) and the workspace answering there.
async fn parties(deps: &Deps, url: &str) -> Result<(PhoneNumber, PhoneNumber, WorkspaceId), ApiError> {
    let (from, to) = voice::parties(url)?;
    match owner(deps, &to).await? {
        Some(ws) => Ok((from, to, ws)),
        None => Err(ApiError::NotFound("no workspace answers calls on this number".into())),
    }
}

/// What this request spent on the message so far, and its enqueue.
fn usage(inv: &Invocation) -> Usage {
    inv.usage_so_far() + Usage { sqs_requests_milli: 1000, ..Usage::default() }
}

fn enqueued() -> Response<Body> {
    xml(200, twilio::EMPTY_TWIML)
}

async fn recording(
    deps: &Deps,
    account: &TwilioAccount,
    url: &str,
    params: &[(String, String)],
    inv: &Invocation,
) -> Result<Response<Body>, ApiError> {
    let Some(rec) = voice::parse_recording(params)? else { return Ok(enqueued()) };
    let (from, to, ws) = parties(deps, url).await?;
    let recordings = TwilioMedia {
        copier: deps.copier.clone(),
        api_base: deps.api_base.clone(),
        account_sid: account.account_sid.clone(),
        auth_token: account.auth_token.clone(),
    };
    let audio = match recordings.copy_recording(&ws, &rec.url, &rec.recording_sid).await? {
        None => return Err(ApiError::BadRequest("the recording is not on the configured Twilio API".into())),
        Some(Copied::Stored { url, size, .. }) => recording_attachment(url, Some(size), &rec.recording_sid),
        // Over the cap, or gone: the voicemail still reaches the inbox, naming Twilio's recording.
        Some(Copied::TooLarge { size }) => {
            tracing::warn!(workspace = %ws, recording = %rec.recording_sid, size, "recording over the cap; Twilio's URL kept");
            recording_attachment(format!("{}.mp3", rec.url), Some(size), &rec.recording_sid)
        }
        Some(Copied::Gone { status }) => {
            tracing::warn!(workspace = %ws, recording = %rec.recording_sid, status, "recording not fetched; Twilio's URL kept");
            recording_attachment(format!("{}.mp3", rec.url), None, &rec.recording_sid)
        }
    };
    let size = audio.size_bytes.unwrap_or(0);
    let now = time::OffsetDateTime::now_utc();
    let m = voice::voicemail(
        ws.clone(),
        &from,
        &to,
        &rec.recording_sid,
        &rec.call_sid,
        None,
        Some(audio),
        rec.duration_secs,
        now,
        usage(inv),
    );
    deps.queue.enqueue_inbound(&InboundEvent::Message(m)).await?;
    tracing::info!(workspace = %ws, recording = %rec.recording_sid, bytes = size, "voicemail recording enqueued");
    Ok(enqueued())
}

fn recording_attachment(url: String, size: Option<u64>, recording_sid: &str) -> Attachment {
    Attachment {
        content_type: "audio/mpeg".into(),
        size_bytes: size,
        url,
        filename: Some(format!("voicemail-{recording_sid}.mp3")),
    }
}

async fn transcription(
    deps: &Deps,
    url: &str,
    params: &[(String, String)],
    inv: &Invocation,
) -> Result<Response<Body>, ApiError> {
    let (from, to) = voice::parties(url)?;
    let Some(t) = voice::parse_transcription(params)? else { return Ok(enqueued()) };
    let Some(ws) = owner(deps, &to).await? else {
        return Err(ApiError::NotFound("no workspace answers calls on this number".into()));
    };
    let now = time::OffsetDateTime::now_utc();
    let usage = inv.usage_so_far() + Usage { sqs_requests_milli: 1000, ..Usage::default() };
    let m =
        voice::voicemail(ws.clone(), &from, &to, &t.recording_sid, &t.call_sid, Some(t.text), None, None, now, usage);
    deps.queue.enqueue_inbound(&InboundEvent::Message(m)).await?;
    tracing::info!(workspace = %ws, recording = %t.recording_sid, "voicemail transcript enqueued");
    Ok(enqueued())
}

/// `POST /webhooks/twilio/voice` (served by [`handle`]), for the API's OpenAPI document.
#[utoipa::path(post, path = "/webhooks/twilio/voice", operation_id = "voiceCall", tag = "provider webhooks",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Twilio's form, signed in X-Twilio-Signature"),
    responses((status = 200, description = "TwiML: the greeting, a beep and a recording (or Reject)", body = String, content_type = "text/xml"), (status = 403, description = "The provider's signature does not verify: nothing stored", body = kit::http::ErrorBody)))]
#[allow(dead_code)]
fn voice_call() {}

/// `POST /webhooks/twilio/voice/done` (served by [`handle`]), for the API's OpenAPI document.
#[utoipa::path(post, path = "/webhooks/twilio/voice/done", operation_id = "voiceDone", tag = "provider webhooks",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Twilio's form, signed in X-Twilio-Signature"),
    responses((status = 200, description = "TwiML: thanks, and hang up", body = String, content_type = "text/xml"), (status = 403, description = "The provider's signature does not verify: nothing stored", body = kit::http::ErrorBody)))]
#[allow(dead_code)]
fn voice_done() {}

/// `POST /webhooks/twilio/voice/recording` (served by [`handle`]), for the API's OpenAPI document.
#[utoipa::path(post, path = "/webhooks/twilio/voice/recording", operation_id = "voiceRecording", tag = "provider webhooks",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Twilio's form, signed in X-Twilio-Signature"),
    responses((status = 200, description = "The recording is stored and the voicemail enqueued", body = String, content_type = "text/xml"), (status = 403, description = "The provider's signature does not verify: nothing stored", body = kit::http::ErrorBody)))]
#[allow(dead_code)]
fn voice_recording() {}

/// `POST /webhooks/twilio/voice/transcription` (served by [`handle`]), for the API's OpenAPI document.
#[utoipa::path(post, path = "/webhooks/twilio/voice/transcription", operation_id = "voiceTranscription", tag = "provider webhooks",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Twilio's form, signed in X-Twilio-Signature"),
    responses((status = 200, description = "The transcript is enqueued", body = String, content_type = "text/xml"), (status = 403, description = "The provider's signature does not verify: nothing stored", body = kit::http::ErrorBody)))]
#[allow(dead_code)]
fn voice_transcription() {}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use domain::ports::ChannelAccount;
    use queue::memory::MemoryQueue;
    use store::MemoryStore;

    const TOKEN: &str = "test-auth-token";
    const OWN_NUMBER: &str = "+14155550111";
    const OWN_SID: &str = "AC0123456789abcdef0123456789abcdef";
    const OWN_TOKEN: &str = "fedcba9876543210fedcba9876543210";
    const BASE: &str = "https://voice.example";

    struct World {
        deps: Deps,
        queue: Arc<MemoryQueue>,
        files: Arc<providers::memory::MemoryFiles>,
        twilio: String,
    }

    /// A stand-in for Twilio's recordings endpoint: the audio behind basic auth.
    async fn fake_recordings() -> String {
        use base64::Engine;
        // Each account's recordings with that account's basic auth only.
        let app = axum::Router::new().route(
            "/2010-04-01/Accounts/{account}/Recordings/{file}",
            get(
                |axum::extract::Path((account, _file)): axum::extract::Path<(String, String)>,
                 headers: axum::http::HeaderMap| async move {
                    let token = if account == OWN_SID { OWN_TOKEN } else { TOKEN };
                    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{account}:{token}"));
                    let ok = headers
                        .get("authorization")
                        .is_some_and(|v| v.to_str().unwrap_or_default() == format!("Basic {basic}"));
                    match (ok, account.as_str()) {
                        (true, OWN_SID) => {
                            (axum::http::StatusCode::OK, format!("ID3-fake-mp3 for {OWN_SID}").into_bytes())
                        }
                        (true, _) => (axum::http::StatusCode::OK, b"ID3-fake-mp3".to_vec()),
                        (false, _) => (axum::http::StatusCode::UNAUTHORIZED, vec![]),
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    async fn world() -> World {
        let store = Arc::new(MemoryStore::new());
        let account = ChannelAccount::new(WorkspaceId::parse("demo").unwrap(), Channel::Voice, "+14155550100");
        store.put_channel_account(&account).await.unwrap();
        let queue = Arc::new(MemoryQueue::new());
        let files = Arc::new(providers::memory::MemoryFiles::default());
        let twilio = fake_recordings().await;
        // A second workspace number with its own Twilio account.
        let vault = Arc::new(providers::memory::MemoryVault::default());
        let own = ChannelAccount::new(WorkspaceId::parse("demo").unwrap(), Channel::Voice, OWN_NUMBER);
        store.put_channel_account(&own).await.unwrap();
        let own_account = TwilioAccount { account_sid: OWN_SID.into(), auth_token: OWN_TOKEN.into() };
        domain::ports::CredentialVault::put(
            &*vault,
            &domain::credentials::CredentialKey::twilio(OWN_NUMBER),
            &own.workspace,
            &own_account.secret(),
        )
        .await
        .unwrap();
        let deps = Deps {
            directory: store.clone(),
            workspaces: store,
            settings: Default::default(),
            queue: queue.clone(),
            numbers: Arc::new(providers::accounts::twilio_numbers(
                Some(vault.clone()),
                Some(TwilioAccount { account_sid: "AC1".into(), auth_token: TOKEN.into() }),
            )),
            copier: MediaCopier::standard(files.clone()).unwrap(),
            api_base: twilio.clone(),
            public_base_url: Some(BASE.into()),
            greeting: "Hi.".into(),
            memory_mb: 128,
        };
        World { deps, queue, files, twilio }
    }

    fn signed(path_and_query: &str, form: &[(&str, &str)]) -> Request {
        signed_with(TOKEN, path_and_query, form)
    }

    fn signed_with(token: &str, path_and_query: &str, form: &[(&str, &str)]) -> Request {
        let params: Vec<(String, String)> = form.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let signature = twilio::compute_signature(token, &format!("{BASE}{path_and_query}"), &params);
        let body = serde_urlencoded::to_string(&params).unwrap();
        let path = path_and_query.split('?').next().unwrap_or_default();
        kit::apigw::test_request(
            "POST",
            path,
            path_and_query,
            &[],
            &[("x-twilio-signature", &signature), ("content-type", "application/x-www-form-urlencoded")],
            Some(body.as_bytes()),
        )
    }

    #[tokio::test]
    async fn a_call_is_answered_with_a_recording_and_an_unknown_number_is_rejected() {
        let w = world().await;
        let call = [("CallSid", "CA1"), ("From", "+14155552671"), ("To", "+14155550100"), ("CallStatus", "ringing")];
        let res = handle(&w.deps, signed("/webhooks/twilio/voice", &call)).await.unwrap();
        assert_eq!(res.status(), 200);
        let Body::Text(twiml) = res.body() else { panic!() };
        assert!(twiml.contains("<Record"), "{twiml}");
        assert!(twiml.contains("https://voice.example/webhooks/twilio/voice/recording?from=%2B14155552671"), "{twiml}");
        let elsewhere = [("CallSid", "CA2"), ("From", "+14155552671"), ("To", "+14155550199")];
        let res = handle(&w.deps, signed("/webhooks/twilio/voice", &elsewhere)).await.unwrap();
        assert!(matches!(res.body(), Body::Text(t) if t.contains("<Reject/>")));
        let mut forged = signed("/webhooks/twilio/voice", &call);
        forged.headers_mut().insert("x-twilio-signature", "bm9wZQ==".parse().unwrap());
        assert_eq!(handle(&w.deps, forged).await.unwrap().status(), 403);
        assert!(w.queue.sent().is_empty());
    }

    #[tokio::test]
    async fn the_recording_goes_to_s3_and_the_transcript_follows_as_the_same_message() {
        let w = world().await;
        let q = "?from=%2B14155552671&to=%2B14155550100";
        let rec_url = format!("{}/2010-04-01/Accounts/AC1/Recordings/RE1", w.twilio);
        let rec = [
            ("AccountSid", "AC1"),
            ("CallSid", "CA1"),
            ("RecordingSid", "RE1"),
            ("RecordingStatus", "completed"),
            ("RecordingDuration", "12"),
            ("RecordingUrl", rec_url.as_str()),
        ];
        let res = handle(&w.deps, signed(&format!("/webhooks/twilio/voice/recording{q}"), &rec)).await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.body());
        let text = [
            ("AccountSid", "AC1"),
            ("CallSid", "CA1"),
            ("RecordingSid", "RE1"),
            ("TranscriptionStatus", "completed"),
            ("TranscriptionText", "Please call me back about my invoice."),
        ];
        let res = handle(&w.deps, signed(&format!("/webhooks/twilio/voice/transcription{q}"), &text)).await.unwrap();
        assert_eq!(res.status(), 200);
        let sent = w.queue.sent();
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().all(|(g, _, m)| g == "demo:phone:+14155552671" && m["provider_message_id"] == "RE1"));
        assert!(sent.iter().all(|(_, _, m)| m["completes"] == true && m["channel"] == "voice"));
        let audio = &sent[0].2["attachments"][0];
        assert_eq!(audio["content_type"], "audio/mpeg");
        let (_, bytes) = w.files.file(audio["url"].as_str().unwrap()).expect("the audio is stored");
        assert_eq!(bytes, b"ID3-fake-mp3");
        assert_eq!(sent[1].2["text"], "Please call me back about my invoice.");
    }

    #[tokio::test]
    async fn the_fixture_requests_are_served() {
        let mut w = world().await;
        // The fixtures are signed for their API Gateway domain.
        w.deps.public_base_url = None;
        let call =
            lambda_http::request::from_str(include_str!("../../../events/twilio-voice-webhook/call.json")).unwrap();
        let res = handle(&w.deps, call).await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.body());
        assert!(matches!(res.body(), Body::Text(t) if t.contains("<Record")));
        let t = include_str!("../../../events/twilio-voice-webhook/transcription.json");
        let res = handle(&w.deps, lambda_http::request::from_str(t).unwrap()).await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.body());
        assert_eq!(w.queue.sent()[0].2["text"], "Hi, this is Ana about order 1234, please call me back.");
    }

    #[tokio::test]
    async fn a_number_on_the_workspaces_own_account_verifies_and_fetches_with_it() {
        let w = world().await;
        let call = [("CallSid", "CA9"), ("From", "+14155552671"), ("To", OWN_NUMBER), ("CallStatus", "ringing")];
        // Signed by the stack's account: not this number's.
        assert_eq!(handle(&w.deps, signed("/webhooks/twilio/voice", &call)).await.unwrap().status(), 403);
        let res = handle(&w.deps, signed_with(OWN_TOKEN, "/webhooks/twilio/voice", &call)).await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(matches!(res.body(), Body::Text(t) if t.contains("<Record")));
        // Its recording's callback names no To: the number comes from our callback URL.
        let q = format!("?from=%2B14155552671&to={}", OWN_NUMBER.replace('+', "%2B"));
        let rec_url = format!("{}/2010-04-01/Accounts/{OWN_SID}/Recordings/RE9", w.twilio);
        let rec = [
            ("AccountSid", OWN_SID),
            ("CallSid", "CA9"),
            ("RecordingSid", "RE9"),
            ("RecordingStatus", "completed"),
            ("RecordingUrl", rec_url.as_str()),
        ];
        let path = format!("/webhooks/twilio/voice/recording{q}");
        assert_eq!(handle(&w.deps, signed(&path, &rec)).await.unwrap().status(), 403);
        let res = handle(&w.deps, signed_with(OWN_TOKEN, &path, &rec)).await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.body());
        let sent = w.queue.sent();
        let (_, bytes) = w.files.file(sent[0].2["attachments"][0]["url"].as_str().unwrap()).expect("stored");
        assert_eq!(bytes, format!("ID3-fake-mp3 for {OWN_SID}").as_bytes(), "fetched with the number's own account");
    }

    #[tokio::test]
    async fn recordings_only_come_from_twilio() {
        let w = world().await;
        let q = "?from=%2B14155552671&to=%2B14155550100";
        let rec = [
            ("CallSid", "CA1"),
            ("RecordingSid", "RE1"),
            ("RecordingStatus", "completed"),
            ("RecordingUrl", "http://169.254.169.254/latest/meta-data"),
        ];
        let res = handle(&w.deps, signed(&format!("/webhooks/twilio/voice/recording{q}"), &rec)).await.unwrap();
        assert_eq!(res.status(), 400);
        assert!(w.queue.sent().is_empty());
    }
}
