//! POST /conversations/{id}/messages/{message}/resend — an agent re-sends a reply that failed on
//! its channel (WhatsApp outside its window, an undeliverable SMS, a bounced email) on another
//! channel the customer has in this conversation: `{"channel": "sms"}`, or no body for the next
//! channel of the workspace's fallback policy (`PUT /workspace {"fallback": …}`).
//!
//! The re-send is an ordinary reply (consent, the channel's window and limits, priced) with the
//! failed message's text and files, naming it in `metadata.resend_of`, so the thread shows both.
//! Idempotent per failed message, whoever asks (the policy may have re-sent it already): the same
//! channel again answers the same re-send; another channel is 409. 422 when the message has not
//! failed, its content is particular to its channel (a reaction, buttons), or the customer cannot
//! be reached on that channel now.

use std::sync::Arc;

use app::fallback::{By, ResendError};
use domain::finance::service::RateCardCache;
use domain::model::Channel;
use domain::ports::OutboundQueue;
use domain::{ConversationId, MessageId};
use kit::auth::{Authenticator, INBOX};
use kit::http::{body_bytes, json, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;
use store::Store;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub outbound: Arc<dyn OutboundQueue>,
    pub auth: Authenticator,
    pub rates: RateCardCache,
}

impl Deps {
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let api = api::Deps::from_config(config, aws).await?;
        let sqs = aws_sdk_sqs::Client::new(aws);
        Ok(Self {
            store: api.store,
            outbound: Arc::new(queue::SqsQueue::new(sqs, config.required("OUTBOUND_QUEUE_URL")?)),
            auth: api.auth,
            rates: RateCardCache::default(),
        })
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = ResendMessageRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    /// The channel to re-send on (default: the workspace's fallback policy's next one).
    #[serde(default)]
    channel: Option<Channel>,
}

/// The re-send, queued for its channel.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Resent {
    pub message_id: MessageId,
    pub resend_of: MessageId,
    pub channel: Channel,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(resend(deps, &req).await))
}

#[utoipa::path(post, path = "/conversations/{id}/messages/{message}/resend", operation_id = "resendMessage", tag = "conversations",
    params(("id" = String, Path, description = "The conversation"), ("message" = String, Path, description = "The failed reply")),
    request_body(content = Option<Draft>, description = "Optional: the channel (default: the workspace's fallback policy)"),
    responses((status = 202, description = "Queued on the other channel (also for a repeat)", body = Resent),
              (status = 404, body = kit::http::ErrorBody),
              (status = 409, description = "Already re-sent on another channel", body = kit::http::ErrorBody),
              (status = 422, description = "Not failed, channel-specific content, or the customer cannot be reached there now", body = kit::http::ErrorBody)))]
async fn resend(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let conversation = path_param(req, "id", ConversationId::parse)?;
    let failed = path_param(req, "message", MessageId::parse)?;
    let raw = body_bytes(req);
    let draft: Draft = if raw.iter().all(u8::is_ascii_whitespace) {
        Draft::default()
    } else {
        serde_json::from_slice(raw).map_err(|e| ApiError::BadRequest(format!("body must be {{\"channel\"?}}: {e}")))?
    };
    let store: &dyn Store = &*deps.store;
    let by = By::Agent(who.agent.clone());
    let now = time::OffsetDateTime::now_utc;
    let resent = match draft.channel {
        Some(channel) => {
            let ids = (conversation, failed);
            app::fallback::resend(store, &*deps.outbound, &deps.rates, &who.workspace, ids, channel, by, now)
                .await
                .map(|id| (id, channel))
        }
        None => {
            let policy = store.workspace_settings(&who.workspace).await?.fallback;
            let m = store
                .message(&who.workspace, conversation, failed)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no message {failed} in conversation {conversation}")))?;
            let channel = app::fallback::policy_channel(store, &policy, &m, now()).await?.ok_or_else(|| {
                ApiError::Unprocessable(
                    "name a channel: the workspace's fallback policy names none the customer can be reached on".into(),
                )
            })?;
            app::fallback::resend_message(store, &*deps.outbound, &deps.rates, m, channel, by, now)
                .await
                .map(|id| (id, channel))
        }
    };
    match resent {
        Ok((message_id, channel)) => {
            tracing::info!(workspace = %who.workspace, by = %who.agent, message = %failed, resent = %message_id, %channel, "reply re-sent");
            Ok(json(202, &Resent { message_id, resend_of: failed, channel }))
        }
        Err(ResendError::NotFound(id)) => Err(ApiError::NotFound(format!("no message {id} in this conversation"))),
        Err(ResendError::AlreadyResent) => Err(ApiError::Conflict(
            "this reply was already re-sent on another channel (see the thread's resend_of)".into(),
        )),
        Err(ResendError::App(e)) => Err(e.into()),
        Err(e) => Err(ApiError::Unprocessable(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::ConversationReader;
    use domain::{Role, WorkspaceId};
    use kit::auth::bearer;
    use queue::memory::MemoryQueue;
    use store::contract::seed_conversation;
    use store::MemoryStore;

    async fn post(deps: &Deps, role: Role, conv: &str, msg: &str, body: &str) -> (u16, serde_json::Value) {
        let auth = bearer("s", "acme", "alice", role);
        let req = kit::apigw::test_request(
            "POST",
            "/conversations/{id}/messages/{message}/resend",
            &format!("/conversations/{conv}/messages/{msg}/resend"),
            &[("id", conv), ("message", msg)],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        let res = handle(deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    /// The re-send itself is tested in `app::fallback` and end to end; here, the route's answers.
    #[tokio::test]
    async fn the_route_answers_what_cannot_be_resent() {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(MemoryQueue::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        let (_, conv) = seed_conversation(store.as_ref(), &ws, 1, time::OffsetDateTime::now_utc()).await;
        let deps = Deps {
            store: store.clone(),
            outbound: queue.clone(),
            auth: Authenticator::new("s"),
            rates: RateCardCache::default(),
        };
        let c = conv.id.to_string();
        let unknown = MessageId::new().to_string();
        assert_eq!(post(&deps, Role::Finance, &c, &unknown, "").await.0, 403);
        assert_eq!(post(&deps, Role::Agent, &c, &unknown, r#"{"channel": "email"}"#).await.0, 404);
        assert_eq!(post(&deps, Role::Agent, &c, &unknown, "").await.0, 404);
        assert_eq!(post(&deps, Role::Agent, &c, "nope", "").await.0, 404, "an id that cannot exist");
        assert_eq!(post(&deps, Role::Agent, &c, &unknown, r#"{"channel": "pigeon"}"#).await.0, 400);
        // The customer's own message is not ours to re-send.
        let inbound = store.messages(&ws, conv.id, domain::ports::Order::Newest, 1, None).await.unwrap().items;
        let (status, body) = post(&deps, Role::Agent, &c, &inbound[0].id.to_string(), r#"{"channel": "email"}"#).await;
        assert_eq!(status, 422, "{body}");
        assert!(queue.sent().is_empty());
    }
}
