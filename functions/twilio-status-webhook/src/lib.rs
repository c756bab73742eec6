//! Twilio's message status callback. The sender sets each message's StatusCallback to
//! `/webhooks/twilio/status?ws=<workspace>&conv=<conversation>&msg=<message>`; the signature covers
//! that URL, so the ids are as trustworthy as the signature. A status only ever moves forward: a late
//! `sent` after `delivered` is acknowledged and ignored.

use std::sync::Arc;

use app::delivery;
use domain::channels::twilio;
use domain::finance::service::RateCardCache;
use domain::ports::{NotificationQueue, OutboundQueue};
use domain::{Channel, ConversationId, MessageId, ParseError, WorkspaceId};
use kit::http::{query_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use store::Store;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub notifications: Arc<dyn NotificationQueue>,
    /// Price lookups for finished messages go to the outbound sender.
    pub outbound: Arc<dyn OutboundQueue>,
    /// Twilio accounts by number: the callback is signed by the account that owns `From`.
    pub numbers: Arc<providers::accounts::TwilioNumbers>,
    pub public_base_url: Option<String>,
    pub rates: RateCardCache,
}

impl Deps {
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let sqs = aws_sdk_sqs::Client::new(aws);
        Ok(Self {
            store: Arc::new(store::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.required("TABLE_NAME")?,
            )),
            notifications: Arc::new(queue::SqsQueue::new(sqs.clone(), config.required("NOTIFICATION_QUEUE_URL")?)),
            outbound: Arc::new(queue::SqsQueue::new(sqs, config.required("OUTBOUND_QUEUE_URL")?)),
            numbers: api::credentials::twilio_numbers(config, aws, api::credentials::vault(config, aws)).await?,
            public_base_url: config.optional("PUBLIC_BASE_URL"),
            rates: RateCardCache::default(),
        })
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(receive(deps, &req).await))
}

fn id_param<T>(
    req: &Request,
    name: &'static str,
    parse: impl Fn(&str) -> Result<T, ParseError>,
) -> Result<T, ApiError> {
    let raw = query_param(req, name).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "the status callback URL lacks its {name} parameter (it is set by Switchboard's sender)"
        ))
    })?;
    Ok(parse(&raw)?)
}

#[utoipa::path(post, path = "/webhooks/twilio/status", operation_id = "twilioStatusWebhook", tag = "provider webhooks",
    params(("ws" = String, Query, description = "Set by the sender"), ("conv" = String, Query), ("msg" = String, Query)),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Twilio's form, signed in X-Twilio-Signature"),
    responses((status = 200, description = "Applied, or stale and ignored"), (status = 403, description = "The provider's signature does not verify: nothing stored", body = kit::http::ErrorBody)))]
async fn receive(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    // The account that sent the message (from our number) signs its callbacks.
    let unsigned = twilio::parse_form(kit::http::body_bytes(req))?;
    let from = unsigned.iter().find(|(k, _)| k == "From").map(|(_, v)| v.as_str()).unwrap_or_default();
    let account = deps
        .numbers
        .get(from)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?
        .ok_or_else(|| ApiError::Forbidden("no Twilio account is configured for this number".into()))?;
    let params = kit::twilio::verified_form(req, &account.auth_token, deps.public_base_url.as_deref())?;
    let ws = id_param(req, "ws", WorkspaceId::parse)?;
    let conv = id_param(req, "conv", ConversationId::parse)?;
    let msg = id_param(req, "msg", MessageId::parse)?;
    let callback = twilio::parse_status_callback(&params, time::OffsetDateTime::now_utc())?;
    let status = callback.event.status;
    // The same delivery use case as every other provider's status. A failed announcement answers
    // 503: Twilio retries the callback, which finds the status stored and announces it then.
    // Twilio's status callbacks are for SMS and MMS (voice has none).
    let applied =
        delivery::advance(&*deps.store, &*deps.notifications, &ws, (conv, msg), Channel::Sms, &callback.event).await?;
    tracing::info!(workspace = %ws, message = %msg, message_sid = %callback.message_sid, status = status.as_str(), applied,
        "delivery status callback");
    if delivery::is_final(status) {
        let now = time::OffsetDateTime::now_utc();
        delivery::settle(&*deps.store, &*deps.outbound, &deps.rates, &ws, (conv, msg), twilio::PROVIDER, now).await?;
    }
    Ok(Response::builder().status(200).body(Body::Empty).expect("static response"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::model::DeliveryStatus;
    use domain::ports::ConversationReader;
    use queue::memory::MemoryQueue;
    use store::contract::seed_queued_reply;
    use store::MemoryStore;

    const TOKEN: &str = "test-auth-token";

    fn deps(store: Arc<MemoryStore>, q: Arc<MemoryQueue>) -> Deps {
        Deps {
            store,
            notifications: q.clone(),
            outbound: q,
            numbers: Arc::new(providers::accounts::twilio_numbers(
                None,
                Some(domain::credentials::TwilioAccount { account_sid: "ACtest".into(), auth_token: TOKEN.into() }),
            )),
            public_base_url: None,
            rates: RateCardCache::default(),
        }
    }

    fn signed(query: &str, form: &[(&str, &str)]) -> Request {
        let path = if query.is_empty() {
            "/webhooks/twilio/status".to_owned()
        } else {
            format!("/webhooks/twilio/status?{query}")
        };
        let url = format!("https://api.test{path}");
        let params: Vec<(String, String)> = form.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        let sig = twilio::compute_signature(TOKEN, &url, &params);
        let body = form.iter().map(|(k, v)| format!("{k}={}", v.replace('+', "%2B"))).collect::<Vec<_>>().join("&");
        kit::apigw::test_request(
            "POST",
            "/webhooks/twilio/status",
            &path,
            &[],
            &[("content-type", "application/x-www-form-urlencoded"), ("x-twilio-signature", &sig)],
            Some(body.as_bytes()),
        )
    }

    #[tokio::test]
    async fn callbacks_move_status_forward_only_and_forgeries_change_nothing() {
        let store = Arc::new(MemoryStore::new());
        let q = Arc::new(MemoryQueue::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        let (conv, out) = seed_queued_reply(store.as_ref(), &ws, "+14155552671", None, None).await;
        let deps = deps(store.clone(), q.clone());
        let query = format!("ws=acme&conv={}&msg={}", conv.id, out.id);
        let sid = "SM1f0e8ae6ade43cb3c0ce4525424e404f";
        let status_of = || async { store.message(&ws, conv.id, out.id).await.unwrap().unwrap().status };

        let res = handle(&deps, signed(&query, &[("MessageSid", sid), ("MessageStatus", "delivered")])).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(status_of().await, DeliveryStatus::Delivered);
        let late = handle(&deps, signed(&query, &[("MessageSid", sid), ("MessageStatus", "sent")])).await.unwrap();
        assert_eq!(late.status(), 200);
        assert_eq!(status_of().await, DeliveryStatus::Delivered);
        assert_eq!(q.sent().len(), 1, "only the applied change is announced");

        let mut forged = signed(&query, &[("MessageSid", sid), ("MessageStatus", "read")]);
        forged.headers_mut().insert("x-twilio-signature", "AAAA".parse().unwrap());
        assert_eq!(handle(&deps, forged).await.unwrap().status(), 403);
        assert_eq!(status_of().await, DeliveryStatus::Delivered);

        let no_ids = signed("", &[("MessageSid", sid), ("MessageStatus", "read")]);
        assert_eq!(handle(&deps, no_ids).await.unwrap().status(), 400);
    }

    const FIXTURE: &str = include_str!("../../../events/twilio-status-webhook/status-delivered.json");

    #[tokio::test]
    async fn the_fixture_callback_delivers_its_message() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("demo").unwrap();
        let conv = ConversationId::parse("01JD3XQ7Z9K2M4N6P8R0S2T4V6").unwrap();
        let msg = MessageId::parse("01JD3XR1A3C5E7G9J1K3M5N7P9").unwrap();
        seed_queued_reply(store.as_ref(), &ws, "+14155552671", Some(conv), Some(msg)).await;
        let q = Arc::new(MemoryQueue::new());
        let deps = deps(store.clone(), q.clone());
        let req = lambda_http::request::from_str(FIXTURE).unwrap();
        assert_eq!(handle(&deps, req).await.unwrap().status(), 200);
        assert_eq!(store.message(&ws, conv, msg).await.unwrap().unwrap().status, DeliveryStatus::Delivered);
        assert_eq!(q.sent().len(), 1);
    }
}
