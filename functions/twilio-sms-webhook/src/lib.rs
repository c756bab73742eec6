//! Twilio's incoming-message webhook. It does one thing: check the request really comes from Twilio,
//! normalise it into a canonical inbound event, copy an MMS's media from Twilio into the media
//! bucket, and put it on the inbound FIFO queue. Twilio gets its 200 (empty TwiML) only once the
//! event is safely enqueued; anything else makes it retry.

use api::webhook::Inbound;
use domain::channels::twilio::{self, Twilio};
use domain::ports::MediaResolver;
use kit::http::{respond, xml, ApiError};
use kit::webhook::Received;
use lambda_http::{Body, Error, Request, Response};
use providers::media::TwilioMedia;

pub struct Deps {
    pub inbound: Inbound<Twilio>,
    /// MMS media copied from Twilio (`MEDIA_BUCKET` set); without it they keep Twilio's URLs.
    pub media: Option<TwilioMedia>,
}

impl Deps {
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        // The webhook only verifies and parses: the account and the status-callback base are the
        // sender's business, so they are not required here.
        let adapter = Twilio {
            account_sid: config.optional("TWILIO_ACCOUNT_SID").unwrap_or_default(),
            auth_token: config.secret("TWILIO_AUTH_TOKEN", aws).await?,
            public_base_url: config.optional("PUBLIC_BASE_URL").unwrap_or_default(),
        };
        let media = api::webhook::media_copier(config, aws)?.map(|copier| TwilioMedia {
            copier,
            api_base: config.optional("TWILIO_API_BASE").unwrap_or_else(|| "https://api.twilio.com".into()),
            account_sid: adapter.account_sid.clone(),
            auth_token: adapter.auth_token.clone(),
        });
        Ok(Self { inbound: Inbound::from_config(adapter, config, aws)?, media })
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(receive(deps, &req).await))
}

#[utoipa::path(post, path = "/webhooks/twilio/sms", operation_id = "twilioSmsWebhook", tag = "provider webhooks",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Twilio's form, signed in X-Twilio-Signature"),
    responses((status = 200, description = "TwiML", body = String, content_type = "text/xml"), (status = 403, description = "The provider's signature does not verify: nothing stored", body = kit::http::ErrorBody)))]
async fn receive(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let media = deps.media.as_ref().map(|m| m as &dyn MediaResolver);
    match deps.inbound.receive_with(req, media).await? {
        // Twilio sends one message per request: a number no workspace owns is a 404, so the
        // misconfiguration shows in Twilio's debugger.
        Received::Enqueued { unclaimed: 1.., .. } => {
            Err(ApiError::NotFound("no workspace receives SMS on this number".into()))
        }
        _ => Ok(xml(200, twilio::EMPTY_TWIML)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{ChannelAccount, ChannelDirectory};
    use domain::Channel;
    use domain::WorkspaceId;
    use queue::memory::MemoryQueue;
    use store::MemoryStore;

    /// The fixture is a real API Gateway HTTP API event, signed with this token for its domain name.
    const FIXTURE: &str = include_str!("../../../events/twilio-sms-webhook/inbound-sms.json");
    const TOKEN: &str = "test-auth-token";

    use std::sync::Arc;

    async fn deps() -> (Deps, Arc<MemoryQueue>) {
        let store = Arc::new(MemoryStore::new());
        store
            .put_channel_account(&ChannelAccount {
                workspace: WorkspaceId::parse("demo").unwrap(),
                channel: Channel::Sms,
                address: "+14155550100".into(),
                display_name: None,
                allowed_origins: Vec::new(),
            })
            .await
            .unwrap();
        let q = Arc::new(MemoryQueue::new());
        (
            Deps {
                inbound: Inbound {
                    adapter: Twilio {
                        account_sid: String::new(),
                        auth_token: TOKEN.into(),
                        public_base_url: String::new(),
                    },
                    directory: store,
                    queue: q.clone(),
                    public_base_url: None,
                    memory_mb: 128,
                },
                media: None,
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
        deps.inbound.directory = Arc::new(MemoryStore::new());
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
