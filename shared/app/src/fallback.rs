//! Re-sending a failed reply on another of the customer's channels (`domain::fallback`): by an
//! agent (`POST /conversations/{id}/messages/{message}/resend`) or by the workspace's policy when
//! a reply fails (the sender's refusal, a provider's failed or undelivered status, a bounce).
//!
//! A re-send is an ordinary queued reply (consent, the channel's window and limits, priced), with
//! the failed message's text and files, naming it in `resend_of`. It is idempotent per failed
//! message whoever asks: its idempotency key is `resend-<message id>` under the system author, so
//! the policy and an agent, or two agents, never send it twice; asking for another channel once
//! it was re-sent is refused (`AlreadyResent`).

use domain::fallback::{self, NotResendable};
use domain::finance::service::RateCardCache;
use domain::finance::{Costing, Usage};
use domain::model::{Channel, Message, Sender};
use domain::ports::{ConsentStore, OutboundQueue, RateCardStore, WorkspaceStore};
use domain::{AgentId, ConversationId, MessageId, WorkspaceId};
use time::OffsetDateTime;

use crate::reply::{self, Composed, Queued, ReplyError, ReplyPorts};
use crate::Error;

pub trait FallbackPorts: ReplyPorts + ConsentStore + RateCardStore + WorkspaceStore {}
impl<T: ReplyPorts + ConsentStore + RateCardStore + WorkspaceStore + ?Sized> FallbackPorts for T {}

/// Who re-sends: an agent (the re-send is theirs) or the workspace's policy (the system's).
#[derive(Debug, Clone)]
pub enum By {
    Agent(AgentId),
    Policy,
}

#[derive(Debug, thiserror::Error)]
pub enum ResendError {
    #[error("no message {0} in this conversation")]
    NotFound(MessageId),
    #[error(transparent)]
    NotResendable(#[from] NotResendable),
    #[error("the customer cannot be reached on {0} now: the conversation has no {0} address, they opted out, or the channel's window is closed")]
    Unreachable(Channel),
    #[error("this message was already re-sent on another channel")]
    AlreadyResent,
    #[error("the re-send breaks {0}'s limits: {1}")]
    Limits(Channel, String),
    #[error(transparent)]
    App(#[from] Error),
}

impl From<domain::ports::StoreError> for ResendError {
    fn from(e: domain::ports::StoreError) -> Self {
        ResendError::App(e.into())
    }
}

/// The re-send's message id.
pub type Resent = MessageId;

/// Re-sends `failed` on `channel`.
#[allow(clippy::too_many_arguments)]
pub async fn resend<S: FallbackPorts + ?Sized>(
    store: &S,
    outbound: &dyn OutboundQueue,
    rates: &RateCardCache,
    ws: &WorkspaceId,
    (conversation, failed): (ConversationId, MessageId),
    channel: Channel,
    by: By,
    now: impl Fn() -> OffsetDateTime,
) -> Result<Resent, ResendError> {
    let m = store.message(ws, conversation, failed).await?.ok_or(ResendError::NotFound(failed))?;
    resend_message(store, outbound, rates, m, channel, by, now).await
}

/// [`resend`] of a message already read.
pub async fn resend_message<S: FallbackPorts + ?Sized>(
    store: &S,
    outbound: &dyn OutboundQueue,
    rates: &RateCardCache,
    m: Message,
    channel: Channel,
    by: By,
    now: impl Fn() -> OffsetDateTime,
) -> Result<Resent, ResendError> {
    let (ws, conversation, failed) = (&m.workspace, m.conversation_id, m.id);
    fallback::check(&m, channel)?;
    let key = format!("resend-{failed}");
    // The channel is the request: the same channel again replays, another one is refused.
    let refused = std::sync::Mutex::new(None);
    let compose = |c: domain::Conversation, at: OffsetDateTime| {
        let (m, by, refused) = (&m, &by, &refused);
        async move {
            match compose(store, rates, &c, m, channel, by, at).await {
                Ok(composed) => Ok(Some(composed)),
                Err(e) => {
                    *refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    Ok(None)
                }
            }
        }
    };
    let queued = reply::queue_system(store, outbound, ws, conversation, &key, channel.as_str(), now, compose).await;
    match queued {
        Ok(Queued::Queued { record, .. }) => Ok(record.message_id),
        Ok(Queued::Skipped) => {
            Err(refused.into_inner().unwrap_or_else(|p| p.into_inner()).unwrap_or(ResendError::Unreachable(channel)))
        }
        Err(ReplyError::KeyReused) => Err(ResendError::AlreadyResent),
        Err(ReplyError::NotFound(_)) => Err(ResendError::NotFound(failed)),
        Err(ReplyError::App(e)) => Err(e.into()),
        Err(ReplyError::Refused(e)) => Err(e.into()),
    }
}

async fn compose<S: FallbackPorts + ?Sized>(
    store: &S,
    rates: &RateCardCache,
    c: &domain::Conversation,
    failed: &Message,
    channel: Channel,
    by: &By,
    now: OffsetDateTime,
) -> Result<Composed, ResendError> {
    let route = reply::unsolicited_route(store, c, channel, now).await?.ok_or(ResendError::Unreachable(channel))?;
    let text = failed.text.clone().unwrap_or_default();
    let checked =
        domain::channels::constraints::check(channel, &text, &failed.attachments, domain::workspace::MAX_SMS_SEGMENTS)
            .map_err(|v| ResendError::Limits(channel, v.to_string()))?;
    let mut metadata = fallback::resend_metadata(failed);
    if let Some(s) = checked.sms {
        metadata.insert("sms_encoding".into(), serde_json::to_value(s.encoding).unwrap_or_default());
        metadata.insert("sms_segments".into(), s.segments.into());
    }
    let sender = match by {
        By::Agent(id) => Sender::Agent { id: id.clone() },
        By::Policy => {
            metadata.insert("auto_reply".into(), "fallback".into());
            Sender::System
        }
    };
    let mut message = Message::queued_outbound(c.workspace.clone(), c.id, route, sender, &text, metadata, now);
    message.attachments = failed.attachments.clone();
    let card = rates.card_at(store, &c.workspace, now).await?;
    let agent = match by {
        By::Agent(id) => Some(id.clone()),
        By::Policy => None,
    };
    let costing = Costing {
        card: &card,
        contact: c.contact_id,
        agent,
        team: None,
        usage: Usage::default(),
        whatsapp_window_open: true,
        now,
    };
    let cost = reply::price_automatic(&mut message, costing, "fallback");
    let response = serde_json::json!({ "message": message });
    Ok(Composed { message, cost, response, counted: Usage::default(), survey: None })
}

/// The channel `policy` re-sends `m` on now, if any (reads its conversation).
pub async fn policy_channel<S: FallbackPorts + ?Sized>(
    store: &S,
    policy: &fallback::Policy,
    m: &Message,
    now: OffsetDateTime,
) -> Result<Option<Channel>, Error> {
    if policy.is_empty() {
        return Ok(None);
    }
    let Some(c) = store.conversation(&m.workspace, m.conversation_id).await? else { return Ok(None) };
    Ok(fallback::next_channel(policy, m, |ch| fallback::routable(&c, ch, now)))
}

/// After a reply failed: the workspace's policy re-sends it on the next channel, if it names one
/// the customer can be reached on. Never fails the caller for a refusal (logged); store and queue
/// errors are returned for the caller's retry (the re-send is idempotent).
pub async fn after_failure<S: FallbackPorts + ?Sized>(
    store: &S,
    outbound: &dyn OutboundQueue,
    rates: &RateCardCache,
    ws: &WorkspaceId,
    (conversation, failed): (ConversationId, MessageId),
    now: impl Fn() -> OffsetDateTime + Copy,
) -> Result<Option<Resent>, Error> {
    let policy = store.workspace_settings(ws).await?.fallback;
    if policy.is_empty() {
        return Ok(None);
    }
    let Some(m) = store.message(ws, conversation, failed).await? else { return Ok(None) };
    let Some(channel) = policy_channel(store, &policy, &m, now()).await? else {
        tracing::info!(workspace = %ws, message = %failed, channel = %m.channel, "failed reply: no fallback channel reachable");
        return Ok(None);
    };
    match resend_message(store, outbound, rates, m, channel, By::Policy, now).await {
        Ok(id) => {
            tracing::info!(workspace = %ws, message = %failed, resent = %id, channel = %channel, "failed reply re-sent by the workspace's policy");
            Ok(Some(id))
        }
        Err(ResendError::App(e)) => Err(e),
        Err(e) => {
            tracing::info!(workspace = %ws, message = %failed, channel = %channel, reason = %e, "failed reply not re-sent");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::model::{DeliveryEvent, DeliveryStatus, Route};
    use domain::ports::{ConversationReader, DeliveryStore, Order, WorkspaceStore};
    use queue::memory::MemoryQueue;
    use store::contract::{replace_conversation, seed_conversation};
    use store::MemoryStore;

    /// A conversation where the customer wrote by SMS and by email, and a system reply by SMS that
    /// failed.
    async fn world() -> (MemoryStore, MemoryQueue, WorkspaceId, domain::Conversation, MessageId) {
        let store = MemoryStore::new();
        let queue = MemoryQueue::new();
        let ws = WorkspaceId::parse("acme").unwrap();
        let now = OffsetDateTime::now_utc();
        let (_, conv) = seed_conversation(&store, &ws, 1, now).await;
        let mut next = conv.clone();
        let email = Route {
            channel: Channel::Email,
            contact_address: "rui@example.com".into(),
            our_address: "support@acme.example".into(),
            contact_country: None,
        };
        next.record_inbound(email, now);
        next.record_inbound(conv.reply_route(None).unwrap(), now);
        replace_conversation(&store, &conv, next).await;
        let conv = store.conversation(&ws, conv.id).await.unwrap().unwrap();
        let rates = RateCardCache::default();
        let route = conv.reply_route(Some(Channel::Sms)).unwrap();
        let compose = |c: domain::Conversation, at| {
            let (store, rates, route) = (&store, &rates, route.clone());
            async move {
                reply::system_message(
                    store,
                    rates,
                    &c,
                    route,
                    "test",
                    "Your parcel is at the depot",
                    Usage::default(),
                    None,
                    at,
                )
                .await
                .map(Some)
            }
        };
        let queued =
            reply::queue_system(&store, &queue, &ws, conv.id, "seed-reply", "h", OffsetDateTime::now_utc, compose)
                .await;
        let Ok(Queued::Queued { record, .. }) = queued else { panic!("seeded") };
        let failed = DeliveryEvent::failed("30003", "Unreachable destination handset", now);
        assert!(store.advance_status(&ws, conv.id, record.message_id, &failed).await.unwrap());
        (store, queue, ws, conv, record.message_id)
    }

    #[tokio::test]
    async fn the_policy_resends_a_failed_sms_by_email_once() {
        let (store, queue, ws, conv, failed) = world().await;
        let rates = RateCardCache::default();
        let ids = (conv.id, failed);
        // No policy: nothing happens.
        assert_eq!(after_failure(&store, &queue, &rates, &ws, ids, OffsetDateTime::now_utc).await.unwrap(), None);
        let mut settings = store.workspace_settings(&ws).await.unwrap();
        settings.fallback = fallback::Policy::from([(Channel::Sms, vec![Channel::Whatsapp, Channel::Email])]);
        store.put_workspace_settings(&ws, &settings).await.unwrap();
        // WhatsApp is not in this conversation: email is the next reachable channel.
        let resent = after_failure(&store, &queue, &rates, &ws, ids, OffsetDateTime::now_utc).await.unwrap().unwrap();
        let m = store.message(&ws, conv.id, resent).await.unwrap().unwrap();
        assert_eq!((m.channel, m.text.as_deref()), (Channel::Email, Some("Your parcel is at the depot")));
        assert_eq!(m.metadata[fallback::RESEND_OF], failed.to_string());
        assert_eq!(m.metadata[fallback::TRIED], serde_json::json!(["sms"]));
        assert_eq!(m.status, DeliveryStatus::Queued);
        // Redelivered, or an agent asking for the same: one re-send.
        let again = after_failure(&store, &queue, &rates, &ws, ids, OffsetDateTime::now_utc).await.unwrap();
        assert_eq!(again, Some(resent));
        let by_hand = resend(
            &store,
            &queue,
            &rates,
            &ws,
            ids,
            Channel::Email,
            By::Agent(AgentId::parse("ann").unwrap()),
            OffsetDateTime::now_utc,
        )
        .await;
        assert_eq!(by_hand.unwrap(), resent);
        let outbound: Vec<_> = store.messages(&ws, conv.id, Order::Oldest, 20, None).await.unwrap().items;
        assert_eq!(outbound.iter().filter(|m| m.metadata.contains_key(fallback::RESEND_OF)).count(), 1);
        // Another channel once re-sent: refused.
        let other =
            resend(&store, &queue, &rates, &ws, ids, Channel::Whatsapp, By::Policy, OffsetDateTime::now_utc).await;
        assert!(matches!(other, Err(ResendError::AlreadyResent | ResendError::Unreachable(_))), "{other:?}");
    }

    #[tokio::test]
    async fn an_agent_cannot_resend_where_the_customer_cannot_be_reached() {
        let (store, queue, ws, conv, failed) = world().await;
        let rates = RateCardCache::default();
        let ann = By::Agent(AgentId::parse("ann").unwrap());
        let r = resend(
            &store,
            &queue,
            &rates,
            &ws,
            (conv.id, failed),
            Channel::Telegram,
            ann.clone(),
            OffsetDateTime::now_utc,
        )
        .await;
        assert!(matches!(r, Err(ResendError::Unreachable(Channel::Telegram))), "{r:?}");
        let r =
            resend(&store, &queue, &rates, &ws, (conv.id, failed), Channel::Sms, ann, OffsetDateTime::now_utc).await;
        assert!(matches!(r, Err(ResendError::NotResendable(NotResendable::AlreadyTried(Channel::Sms)))), "{r:?}");
    }
}
