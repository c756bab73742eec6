//! POST /webhooks/form/{workspace} — the website contact form (`domain::channels::form`): JSON or
//! form-encoded `name`, `email`, `phone`, `subject`, `message`. Validated (400 with the reason),
//! rate limited per sender address (`FORM_RATE_LIMIT` per hour, default 5: 429 after that), a
//! filled-in honeypot answered like success and dropped, then enqueued as an email-channel message
//! to the workspace's support address, so the reply goes out by email. 202 only once enqueued.
//! Public (no token): anyone may post; `Access-Control-Allow-Origin: *` lets a website's script
//! post form-encoded bodies.

use std::sync::Arc;

use domain::channels::form::{self, Parsed};
use domain::events::InboundEvent;
use domain::finance::Usage;
use domain::ports::{ChannelDirectory, InboundQueue, RateLimiter};
use domain::{Channel, WorkspaceId};
use kit::http::{body_bytes, json, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use meter::{Invocation, Trigger};

/// The window the per-address limit counts in.
pub const RATE_WINDOW: time::Duration = time::Duration::hours(1);

pub struct Deps {
    pub directory: Arc<dyn ChannelDirectory>,
    pub limiter: Arc<dyn RateLimiter>,
    pub queue: Arc<dyn InboundQueue>,
    /// Submissions per sender address (and per network address) per hour.
    pub per_address_per_hour: u32,
    /// Submissions per workspace per hour, whoever sends them: a botnet's many addresses cannot
    /// flood a workspace's inbox (or its mail reputation).
    pub per_workspace_per_hour: u32,
    pub memory_mb: u64,
}

impl Deps {
    /// `TABLE_NAME`, `INBOUND_QUEUE_URL`, optional `FORM_RATE_LIMIT` (per address, 5) and
    /// `FORM_WORKSPACE_RATE_LIMIT` (per workspace, 200).
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let store =
            Arc::new(store::DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), config.required("TABLE_NAME")?));
        Ok(Self {
            directory: store.clone(),
            limiter: store,
            queue: Arc::new(queue::SqsQueue::new(aws_sdk_sqs::Client::new(aws), config.required("INBOUND_QUEUE_URL")?)),
            per_address_per_hour: config.parse("FORM_RATE_LIMIT", 5u32)?,
            per_workspace_per_hour: config.parse("FORM_WORKSPACE_RATE_LIMIT", 200u32)?,
            memory_mb: meter::memory_mb_from_env(),
        })
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    let inv = Invocation::new(deps.memory_mb, 1, Trigger::HttpApi);
    let mut res = respond(meter::measure(submit(deps, &req, &inv)).await.0);
    res.headers_mut().insert("access-control-allow-origin", lambda_http::http::HeaderValue::from_static("*"));
    Ok(res)
}

fn received() -> Response<Body> {
    json(202, &serde_json::json!({ "status": "received" }))
}

#[utoipa::path(post, path = "/webhooks/form/{workspace}", operation_id = "contactForm", tag = "public",
    params(("workspace" = String, Path, description = "The workspace")),
    request_body(content = Object, description = "JSON or form-encoded: name, email, phone, subject, message"),
    responses((status = 202, description = "Received", body = Object), (status = 404, body = kit::http::ErrorBody), (status = 429, body = kit::http::ErrorBody)))]
async fn submit(deps: &Deps, req: &Request, inv: &Invocation) -> Result<Response<Body>, ApiError> {
    let not_found = || ApiError::NotFound("no contact form here".into());
    let ws = path_param(req, "workspace", WorkspaceId::parse).map_err(|_| not_found())?;
    let is_json = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("application/json"));
    let submission = match form::parse(body_bytes(req), is_json)? {
        Parsed::Bot => {
            tracing::info!(workspace = %ws, "contact form honeypot filled in; dropped");
            return Ok(received());
        }
        Parsed::Submission(s) => s,
    };
    let accounts = deps.directory.channel_accounts(&ws).await?;
    let Some(support) = accounts.into_iter().find(|a| a.channel == Channel::Email) else {
        return Err(not_found());
    };
    let now = time::OffsetDateTime::now_utc();
    // Per source address first (the email is the sender's to choose), then per email address.
    let ip = kit::http::source_ip(req).unwrap_or_else(|| "unknown".into());
    if !deps.limiter.take(&ws, &format!("form-ip:{ip}"), now, RATE_WINDOW, deps.per_address_per_hour).await? {
        return Err(ApiError::TooManyRequests(format!(
            "at most {} messages an hour from one network address; please try again later",
            deps.per_address_per_hour
        )));
    }
    // A digest: the table never holds the address in a rate-limit key (an erasure could not find it).
    let key = format!("form:{}", submission.email.digest());
    if !deps.limiter.take(&ws, &key, now, RATE_WINDOW, deps.per_address_per_hour).await? {
        return Err(ApiError::TooManyRequests(format!(
            "at most {} messages an hour from one address; please try again later",
            deps.per_address_per_hour
        )));
    }
    if !deps.limiter.take(&ws, "form-workspace", now, RATE_WINDOW, deps.per_workspace_per_hour).await? {
        return Err(ApiError::TooManyRequests(
            "this form is receiving too many messages right now; please try again later".into(),
        ));
    }
    let usage = inv.usage_so_far() + Usage { sqs_requests_milli: 1000, ..Usage::default() };
    let message = submission.into_inbound(ws.clone(), &support.address, now, usage);
    deps.queue.enqueue_inbound(&InboundEvent::Message(message)).await?;
    tracing::info!(workspace = %ws, "contact form message enqueued");
    Ok(received())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::ChannelAccount;
    use queue::memory::MemoryQueue;
    use store::MemoryStore;

    const FIXTURE: &str = include_str!("../../../events/contact-form/submission.json");

    async fn deps() -> (Deps, Arc<MemoryQueue>) {
        let store = Arc::new(MemoryStore::new());
        let account =
            ChannelAccount::new(WorkspaceId::parse("demo").unwrap(), Channel::Email, "support@demo.switchboard.test");
        store.put_channel_account(&account).await.unwrap();
        let q = Arc::new(MemoryQueue::new());
        let deps = Deps {
            directory: store.clone(),
            limiter: store,
            queue: q.clone(),
            per_address_per_hour: 2,
            per_workspace_per_hour: 100,
            memory_mb: 128,
        };
        (deps, q)
    }

    fn request(ws: &str, content_type: &str, body: &str) -> Request {
        kit::apigw::test_request(
            "POST",
            "/webhooks/form/{workspace}",
            &format!("/webhooks/form/{ws}"),
            &[("workspace", ws)],
            &[("content-type", content_type)],
            Some(body.as_bytes()),
        )
    }

    #[tokio::test]
    async fn a_submission_becomes_an_email_message_to_the_support_address() {
        let (deps, q) = deps().await;
        let body = "name=Ana+Silva&email=ana%40example.com&subject=Refund&message=I+was+charged+twice.";
        let res = handle(&deps, request("demo", "application/x-www-form-urlencoded", body)).await.unwrap();
        assert_eq!(res.status(), 202);
        assert_eq!(res.headers()["access-control-allow-origin"], "*");
        let sent = q.sent();
        assert_eq!(sent.len(), 1);
        let (group, _, m) = &sent[0];
        assert_eq!(group, "demo:email:ana@example.com");
        assert_eq!(
            (m["channel"].as_str(), m["our_address"].as_str()),
            (Some("email"), Some("support@demo.switchboard.test"))
        );
        assert_eq!(m["metadata"]["email_subject"], "Refund");
        assert_eq!(m["text"], "I was charged twice.");
    }

    #[tokio::test]
    async fn bots_bad_input_floods_and_unknown_forms_are_turned_away() {
        let (deps, q) = deps().await;
        let bot = "email=a%40b.co&message=hi&website=http%3A%2F%2Fspam.example";
        assert_eq!(
            handle(&deps, request("demo", "application/x-www-form-urlencoded", bot)).await.unwrap().status(),
            202
        );
        assert!(q.sent().is_empty(), "the honeypot stores nothing");
        let res = handle(&deps, request("demo", "application/json", r#"{"message":"hi"}"#)).await.unwrap();
        assert_eq!(res.status(), 400);
        assert!(kit::apigw::json_of(&res)["error"]["message"].as_str().unwrap().contains("email"));
        let ok = r#"{"email":"a@b.co","message":"one"}"#;
        for _ in 0..2 {
            assert_eq!(handle(&deps, request("demo", "application/json", ok)).await.unwrap().status(), 202);
        }
        let third = r#"{"email":"a@b.co","message":"three"}"#;
        assert_eq!(handle(&deps, request("demo", "application/json", third)).await.unwrap().status(), 429);
        assert_eq!(handle(&deps, request("nowhere", "application/json", ok)).await.unwrap().status(), 404);
        assert_eq!(handle(&deps, request("NOT A WS", "application/json", ok)).await.unwrap().status(), 404);
    }

    #[tokio::test]
    async fn a_workspace_takes_at_most_its_hourly_share_whoever_sends() {
        let (mut deps, q) = deps().await;
        (deps.per_address_per_hour, deps.per_workspace_per_hour) = (100, 3);
        for i in 0..3 {
            let body = format!(r#"{{"email":"sender{i}@example.com","message":"hi"}}"#);
            assert_eq!(handle(&deps, request("demo", "application/json", &body)).await.unwrap().status(), 202);
        }
        let body = r#"{"email":"sender9@example.com","message":"hi"}"#;
        let res = handle(&deps, request("demo", "application/json", body)).await.unwrap();
        assert_eq!(res.status(), 429);
        assert!(kit::apigw::json_of(&res)["error"]["message"].as_str().unwrap().contains("too many"));
        assert_eq!(q.sent().len(), 3);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let (deps, q) = deps().await;
        let res = handle(&deps, lambda_http::request::from_str(FIXTURE).unwrap()).await.unwrap();
        assert_eq!(res.status(), 202, "{:?}", res.body());
        assert_eq!(q.sent().len(), 1);
    }
}
