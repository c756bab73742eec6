//! Twilio's incoming-message webhook. It does one thing: check the request really comes from Twilio,
//! normalise it into a canonical inbound event, and put it on the inbound FIFO queue. Twilio gets its
//! 200 (empty TwiML) only once the event is safely enqueued; anything else makes it retry.

use std::sync::Arc;

use domain::channels::twilio;
use domain::events::InboundEvent;
use domain::finance::Usage;
use domain::ports::{ChannelDirectory, InboundQueue};
use domain::Channel;
use kit::http::{respond, xml, ApiError};
use lambda_http::{Body, Error, Request, Response};
use meter::{Invocation, Trigger};

pub struct Deps {
    pub directory: Arc<dyn ChannelDirectory>,
    pub queue: Arc<dyn InboundQueue>,
    pub auth_token: String,
    /// The public base URL Twilio calls (custom domain, local gateway); else the API's domain name.
    pub public_base_url: Option<String>,
    /// This function's memory, for its share of the message's AWS cost.
    pub memory_mb: u64,
}

impl Deps {
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let table = config.required("TABLE_NAME")?;
        let queue_url = config.required("INBOUND_QUEUE_URL")?;
        Ok(Self {
            directory: Arc::new(store::DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), table)),
            queue: Arc::new(queue::SqsQueue::new(aws_sdk_sqs::Client::new(aws), queue_url)),
            auth_token: config.secret("TWILIO_AUTH_TOKEN", aws).await?,
            public_base_url: config.optional("PUBLIC_BASE_URL"),
            memory_mb: meter::memory_mb_from_env(),
        })
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    let inv = Invocation::new(deps.memory_mb, 1, Trigger::HttpApi);
    Ok(respond(meter::measure(receive(deps, &req, &inv)).await.0))
}

async fn receive(deps: &Deps, req: &Request, inv: &Invocation) -> Result<Response<Body>, ApiError> {
    let params = kit::twilio::verified_form(req, &deps.auth_token, deps.public_base_url.as_deref())?;
    let sms = twilio::parse_inbound(&params)?;
    let Some(account) = deps.directory.channel_account(Channel::Sms, sms.to.as_str()).await? else {
        tracing::warn!(to = %sms.to, message_sid = %sms.message_sid, "no workspace owns the receiving number");
        return Err(ApiError::NotFound(format!("no workspace receives SMS on {}", sms.to)));
    };
    let sid = sms.message_sid.clone();
    let mut message = sms.into_event(account.workspace.clone(), time::OffsetDateTime::now_utc());
    // What this webhook spent travels with the message (plus the send that enqueues it).
    message.usage = inv.usage_so_far() + Usage { sqs_requests_milli: 1000, ..Usage::default() };
    let event = InboundEvent::Message(message);
    deps.queue.enqueue_inbound(&event).await?;
    tracing::info!(workspace = %account.workspace, message_sid = %sid, "inbound SMS enqueued");
    Ok(xml(200, twilio::EMPTY_TWIML))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::ChannelAccount;
    use domain::WorkspaceId;
    use queue::memory::MemoryQueue;
    use store::MemoryStore;

    /// The fixture is a real API Gateway HTTP API event, signed with this token for its domain name.
    const FIXTURE: &str = include_str!("../../../events/twilio-sms-webhook/inbound-sms.json");
    const TOKEN: &str = "test-auth-token";

    async fn deps() -> (Deps, Arc<MemoryQueue>) {
        let store = Arc::new(MemoryStore::new());
        store
            .put_channel_account(&ChannelAccount {
                workspace: WorkspaceId::parse("demo").unwrap(),
                channel: Channel::Sms,
                address: "+14155550100".into(),
                display_name: None,
            })
            .await
            .unwrap();
        let q = Arc::new(MemoryQueue::new());
        (
            Deps {
                directory: store,
                queue: q.clone(),
                auth_token: TOKEN.into(),
                public_base_url: None,
                memory_mb: 128,
            },
            q,
        )
    }

    fn request(mutate: impl FnOnce(&mut serde_json::Value)) -> Request {
        let mut v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        mutate(&mut v);
        lambda_http::request::from_str(&v.to_string()).expect("API Gateway v2 event")
    }

    #[tokio::test]
    async fn a_signed_sms_is_enqueued_and_acknowledged_with_empty_twiml() {
        let (deps, q) = deps().await;
        let res = handle(&deps, request(|_| {})).await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(matches!(res.body(), Body::Text(t) if t.contains("<Response></Response>")));
        let sent = q.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, "demo:phone:+14155552671");
        assert_eq!(sent[0].1, "twilio:SM1f0e8ae6ade43cb3c0ce4525424e404f");
        assert_eq!(sent[0].2["workspace"], "demo");
        assert_eq!(sent[0].2["channel"], "sms");
    }

    #[tokio::test]
    async fn forged_or_missing_signatures_are_refused_and_nothing_is_enqueued() {
        let (deps, q) = deps().await;
        let forged = request(|v| v["headers"]["x-twilio-signature"] = "bm90IGEgc2lnbmF0dXJl".into());
        assert_eq!(handle(&deps, forged).await.unwrap().status(), 403);
        let missing = request(|v| {
            v["headers"].as_object_mut().unwrap().remove("x-twilio-signature");
        });
        assert_eq!(handle(&deps, missing).await.unwrap().status(), 403);
        assert!(q.sent().is_empty());
    }

    #[tokio::test]
    async fn an_unknown_receiving_number_is_404() {
        let (mut deps, q) = deps().await;
        deps.directory = Arc::new(MemoryStore::new());
        assert_eq!(handle(&deps, request(|_| {})).await.unwrap().status(), 404);
        assert!(q.sent().is_empty());
    }

    #[tokio::test]
    async fn a_queue_outage_is_a_5xx_so_twilio_retries() {
        let (deps, q) = deps().await;
        q.fail(true);
        assert_eq!(handle(&deps, request(|_| {})).await.unwrap().status(), 503);
    }
}
