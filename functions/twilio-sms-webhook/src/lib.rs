//! Twilio's incoming-message webhook. It does one thing: check the request really comes from Twilio,
//! normalise it into a canonical inbound event, copy an MMS's media from Twilio into the media
//! bucket, and put it on the inbound FIFO queue. Twilio gets its 200 (empty TwiML) only once the
//! event is safely enqueued; anything else makes it retry.

use api::webhook::Inbound;
use domain::channels::twilio::{self, Twilio};
use domain::ports::MediaResolver;
use std::sync::Arc;

use domain::credentials::TwilioAccount;
use kit::http::{body_bytes, respond, xml, ApiError};
use kit::webhook::Received;
use lambda_http::{Body, Error, Request, Response};
use providers::accounts::TwilioNumbers;
use providers::media::MediaCopier;
use providers::media::TwilioMedia;

pub struct Deps {
    /// What every request shares (the adapter is the receiving number's account, set per request).
    pub inbound: Inbound<()>,
    /// Twilio accounts by number: a workspace's own where it connected one, else the stack's.
    pub numbers: Arc<TwilioNumbers>,
    /// MMS media copied from Twilio (`MEDIA_BUCKET` set); without it they keep Twilio's URLs.
    pub copier: Option<Arc<MediaCopier>>,
    pub api_base: String,
}

impl Deps {
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self {
            inbound: Inbound::from_config((), config, aws)?,
            numbers: api::credentials::twilio_numbers(config, aws, api::credentials::vault(config, aws)).await?,
            copier: api::webhook::media_copier(config, aws)?,
            api_base: config.optional("TWILIO_API_BASE").unwrap_or_else(|| "https://api.twilio.com".into()),
        })
    }
}

/// The account that owns the receiving number (`To`), whose auth token signs the request.
async fn account(deps: &Deps, req: &Request) -> Result<Arc<TwilioAccount>, ApiError> {
    let form = twilio::parse_form(body_bytes(req)).map_err(|_| ApiError::Forbidden("not Twilio's form".into()))?;
    let to = form
        .iter()
        .find(|(k, _)| k == "To")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| ApiError::Forbidden("no To: not a Twilio message".into()))?;
    deps.numbers
        .get(to)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?
        .ok_or_else(|| ApiError::Forbidden("no Twilio account is configured for this number".into()))
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(receive(deps, &req).await))
}

#[utoipa::path(post, path = "/webhooks/twilio/sms", operation_id = "twilioSmsWebhook", tag = "provider webhooks",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Twilio's form, signed in X-Twilio-Signature"),
    responses((status = 200, description = "TwiML", body = String, content_type = "text/xml"), (status = 403, description = "The provider's signature does not verify: nothing stored", body = kit::http::ErrorBody)))]
async fn receive(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let account = account(deps, req).await?;
    let inbound = deps.inbound.with_adapter(Twilio {
        account_sid: account.account_sid.clone(),
        auth_token: account.auth_token.clone(),
        // The status-callback base is the sender's business.
        public_base_url: String::new(),
        messaging_service_sid: None,
    });
    let media = deps.copier.as_ref().map(|copier| TwilioMedia {
        copier: copier.clone(),
        api_base: deps.api_base.clone(),
        account_sid: account.account_sid.clone(),
        auth_token: account.auth_token.clone(),
    });
    let media = media.as_ref().map(|m| m as &dyn MediaResolver);
    match inbound.receive_with(req, media).await? {
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

    async fn deps() -> (Deps, Arc<MemoryQueue>) {
        let store = Arc::new(MemoryStore::new());
        store
            .put_channel_account(&ChannelAccount::new(
                WorkspaceId::parse("demo").unwrap(),
                Channel::Sms,
                "+14155550100",
            ))
            .await
            .unwrap();
        let q = Arc::new(MemoryQueue::new());
        let stack = TwilioAccount { account_sid: "ACtest".into(), auth_token: TOKEN.into() };
        (
            Deps {
                inbound: Inbound {
                    adapter: (),
                    directory: store,
                    queue: q.clone(),
                    public_base_url: None,
                    memory_mb: 128,
                },
                numbers: Arc::new(providers::accounts::twilio_numbers(None, Some(stack))),
                copier: None,
                api_base: String::new(),
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
