//! Delivery: a status of one of our messages moved forward (never back) and announced to agents,
//! with one publish policy whoever reports it — the sender (accepted, failed), Twilio's signed
//! status callback, and WhatsApp, Telegram and Meta statuses arriving through the inbound queue.
//!
//! The policy: announce when the status moved; when it did not, announce again only if the stored
//! message already carries this very status (a redelivery after a crash between the write and the
//! publish). The notification queue's deduplication id drops the true duplicate, so an announcement
//! is never lost and never shown twice.

use std::time::Duration;

use domain::events::{Notification, OutboundJob, ReadUpTo, StatusUpdate};
use domain::finance::service::RateCardCache;
use domain::finance::{follow_up_entry, pricing, EntryKind, Totals};
use domain::model::{Channel, DeliveryEvent, DeliveryStatus, Direction};
use domain::ports::{
    ConversationReader, CostLedger, DeliveryStore, InboundStore, NotificationQueue, Order, OutboundQueue,
    RateCardStore, StoreError,
};
use domain::{ConversationId, MessageId, WorkspaceId};

use crate::Error;

/// What moving a status needs from the store.
pub trait DeliveryPorts: DeliveryStore + ConversationReader {}
impl<T: DeliveryStore + ConversationReader + ?Sized> DeliveryPorts for T {}

/// Moves message `id`'s status forward with `event` and announces it by the policy above; a move
/// to an outcome counts in the channel's delivery metrics ([`record_outcome`]). Returns whether
/// the status moved.
pub async fn advance<S: DeliveryPorts + ?Sized>(
    store: &S,
    notifications: &dyn NotificationQueue,
    ws: &WorkspaceId,
    (conversation_id, message_id): (ConversationId, MessageId),
    channel: Channel,
    event: &DeliveryEvent,
) -> Result<bool, Error> {
    let applied = store.advance_status(ws, conversation_id, message_id, event).await?;
    if applied {
        record_outcome(channel, event.status);
    }
    let announce =
        applied || store.message(ws, conversation_id, message_id).await?.is_some_and(|m| m.status == event.status);
    if announce {
        let note = Notification::DeliveryStatusChanged {
            workspace: ws.clone(),
            conversation_id,
            message_id,
            status: event.status,
        };
        notifications.publish(&note).await?;
    }
    Ok(applied)
}

/// The delivery metrics, per channel (dimension [`METRIC_CHANNEL`]): messages the provider took,
/// confirmed delivered, and failed (rejected, undeliverable, bounced). CloudWatch receives them in
/// the embedded metric format (`kit::telemetry`); the operations dashboard charts them and the
/// failure rate `failed / (delivered + failed)`.
pub const METRIC_SENT: &str = "Sent";
pub const METRIC_DELIVERED: &str = "Delivered";
pub const METRIC_FAILED: &str = "DeliveryFailed";
pub const METRIC_CHANNEL: &str = "Channel";

/// Counts a status that moved in its channel's metric, if it is one the metrics follow.
pub fn record_outcome(channel: Channel, status: DeliveryStatus) {
    let name = match status {
        DeliveryStatus::Sent => METRIC_SENT,
        DeliveryStatus::Delivered => METRIC_DELIVERED,
        DeliveryStatus::Failed | DeliveryStatus::Undelivered => METRIC_FAILED,
        _ => return,
    };
    metrics::counter!(name, METRIC_CHANNEL => channel.as_str()).increment(1);
}

/// Pauses before each look-up of the message a provider's status is about: the provider can report
/// `sent` a moment before the sender has recorded the provider's id. Short on purpose: this runs
/// inside a FIFO batch (batch × these pauses must stay far below the function's timeout), and a
/// later status supersedes a lost one anyway.
pub const STATUS_LOOKUP_PAUSES_MS: [u64; 3] = [0, 150, 350];

/// What a provider's status (by its own message id) needs from the store.
pub trait StatusPorts: DeliveryPorts + InboundStore {}
impl<T: DeliveryPorts + InboundStore + ?Sized> StatusPorts for T {}

/// A provider's status about its message id. A status about a message we never sent (one sent from
/// the provider's own app) is acknowledged and dropped after a short wait, never retried through
/// the queue: that would hold up the person's FIFO group. Returns whether the status moved, and
/// the message it is about when we sent it.
pub async fn apply_provider_status<S: StatusPorts + ?Sized>(
    store: &S,
    notifications: &dyn NotificationQueue,
    s: &StatusUpdate,
) -> Result<(bool, Option<(ConversationId, MessageId)>), Error> {
    let ws = &s.workspace;
    let mut found = None;
    for pause in STATUS_LOOKUP_PAUSES_MS {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        found = store.provider_message(ws, &s.provider, &s.provider_message_id).await?;
        if found.is_some() {
            break;
        }
    }
    let Some((conversation_id, message_id)) = found else {
        tracing::warn!(workspace = %ws, provider = %s.provider, provider_message_id = %s.provider_message_id,
            status = s.event.status.as_str(), "status for a message Switchboard did not send; dropped");
        return Ok((false, None));
    };
    let applied = advance(store, notifications, ws, (conversation_id, message_id), s.channel, &s.event).await?;
    tracing::info!(workspace = %ws, message = %message_id, status = s.event.status.as_str(), applied, "delivery status");
    Ok((applied, Some((conversation_id, message_id))))
}

/// A read watermark (Messenger): every message we sent the reader on that channel before it, in
/// their current conversation, becomes `read` (the newest 100 are looked at: older ones were read
/// by an earlier watermark). Nothing to mark is not an error. Returns whether anything moved.
pub async fn apply_read<S: StatusPorts + ?Sized>(
    store: &S,
    notifications: &dyn NotificationQueue,
    r: &ReadUpTo,
) -> Result<bool, Error> {
    let ws = &r.workspace;
    let Some(contact) = store.contact_by_identity(ws, &r.reader).await? else { return Ok(false) };
    let Some(conversation) = store.current_conversation(ws, &contact).await? else { return Ok(false) };
    let page = store.messages(ws, conversation.id, Order::Newest, 100, None).await?;
    let event = DeliveryEvent::new(DeliveryStatus::Read, r.up_to);
    let mut applied = false;
    for m in page.items.iter().filter(|m| {
        m.direction == Direction::Outbound
            && m.channel == r.channel
            && m.created_at <= r.up_to
            && matches!(m.status, DeliveryStatus::Sent | DeliveryStatus::Delivered)
    }) {
        applied |= advance(store, notifications, ws, (conversation.id, m.id), m.channel, &event).await?;
    }
    tracing::info!(workspace = %ws, conversation = %conversation.id, applied, "read watermark");
    Ok(applied)
}

/// What settling a finished message's cost needs.
pub trait SettlePorts: ConversationReader + CostLedger + RateCardStore {}
impl<T: ConversationReader + CostLedger + RateCardStore + ?Sized> SettlePorts for T {}

/// Once a message has finished (delivered, undelivered or failed), its cost can settle: a failed
/// message owes the provider's failed-message fee (where the rate card has one), and the
/// provider's rated price is looked up by the sender. Both are idempotent, so they run on every
/// final status (not only the one that moved it): a provider's retry of a callback we failed to
/// answer finishes them.
pub async fn settle<S: SettlePorts + ?Sized>(
    store: &S,
    outbound: &dyn OutboundQueue,
    rates: &RateCardCache,
    ws: &WorkspaceId,
    (conversation_id, message_id): (ConversationId, MessageId),
    default_provider: &str,
    now: time::OffsetDateTime,
) -> Result<(), Error> {
    let Some(m) = store.message(ws, conversation_id, message_id).await? else { return Ok(()) };
    if m.status == DeliveryStatus::Failed {
        let card = rates.card_at(store, ws, m.created_at).await?;
        let country = m.route.contact_country.clone();
        let provider = m.provider.as_deref().unwrap_or(default_provider);
        if let Some(fee) = pricing::failed_fee(&card, provider, country.as_deref()) {
            let totals = Totals { provider_micros: fee.amount_micros, ..Totals::default() };
            if let Some(entry) = follow_up_entry(&m, EntryKind::FailedFee, totals, vec![fee], None, now) {
                match store.record_cost(&entry).await {
                    Ok(()) | Err(StoreError::Duplicate) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    if m.provider_message_id.is_some() && m.cost.as_ref().is_some_and(|c| c.actual_micros.is_none()) {
        outbound.enqueue_outbound(&OutboundJob::fetch_price(ws.clone(), conversation_id, message_id)).await?;
    }
    Ok(())
}

/// Whether a status is final: nothing but `read` can follow it.
pub fn is_final(status: DeliveryStatus) -> bool {
    matches!(status, DeliveryStatus::Delivered | DeliveryStatus::Undelivered | DeliveryStatus::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use queue::memory::MemoryQueue;
    use store::contract::seed_queued_reply;
    use store::MemoryStore;
    use time::OffsetDateTime;

    fn changes(q: &MemoryQueue) -> Vec<String> {
        q.sent()
            .into_iter()
            .filter(|(_, _, b)| b["type"] == "delivery_status_changed")
            .map(|(_, _, b)| b["status"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn one_publish_policy_moved_announced_stale_silent_repeat_reannounced() {
        let store = MemoryStore::new();
        let q = MemoryQueue::new();
        let ws = WorkspaceId::parse("acme").unwrap();
        let (conv, out) = seed_queued_reply(&store, &ws, "+14155552671", None, None).await;
        let at = OffsetDateTime::now_utc();
        let delivered = DeliveryEvent::new(DeliveryStatus::Delivered, at);
        assert!(advance(&store, &q, &ws, (conv.id, out.id), Channel::Sms, &delivered).await.unwrap());
        assert_eq!(changes(&q), ["delivered"]);
        // A late `sent` moves nothing and tells nobody.
        let sent = DeliveryEvent::new(DeliveryStatus::Sent, at);
        assert!(!advance(&store, &q, &ws, (conv.id, out.id), Channel::Sms, &sent).await.unwrap());
        assert_eq!(changes(&q), ["delivered"]);
        // The same `delivered` again (a redelivery after a crash before the publish) is announced
        // again; the queue's dedup id drops the copy (the memory queue keeps both to show it).
        let q2 = MemoryQueue::new();
        assert!(!advance(&store, &q2, &ws, (conv.id, out.id), Channel::Sms, &delivered).await.unwrap());
        assert_eq!(changes(&q2), ["delivered"]);
    }

    #[tokio::test]
    async fn an_announcement_that_fails_is_an_error_so_the_reporter_retries() {
        let store = MemoryStore::new();
        let q = MemoryQueue::new();
        let ws = WorkspaceId::parse("acme").unwrap();
        let (conv, out) = seed_queued_reply(&store, &ws, "+14155552671", None, None).await;
        let failed = DeliveryEvent::failed("30003", "Unreachable destination handset", OffsetDateTime::now_utc());
        q.fail(true);
        let err = advance(&store, &q, &ws, (conv.id, out.id), Channel::Sms, &failed).await.unwrap_err();
        assert!(err.is_retryable());
        q.fail(false);
        // The retry finds the status stored and announces it.
        assert!(!advance(&store, &q, &ws, (conv.id, out.id), Channel::Sms, &failed).await.unwrap());
        assert_eq!(changes(&q), ["failed"]);
        let m = store.message(&ws, conv.id, out.id).await.unwrap().unwrap();
        assert_eq!(m.last_error().and_then(|e| e.error_code.as_deref()), Some("30003"));
    }

    #[tokio::test]
    async fn a_status_for_a_message_we_never_sent_is_dropped_quickly() {
        let store = MemoryStore::new();
        let q = MemoryQueue::new();
        let s = StatusUpdate {
            workspace: WorkspaceId::parse("acme").unwrap(),
            channel: domain::Channel::Whatsapp,
            provider: "meta".into(),
            provider_message_id: "wamid.unknown".into(),
            recipient: domain::Identity::phone(&domain::PhoneNumber::parse("+14155552671").unwrap()),
            event: DeliveryEvent::new(DeliveryStatus::Delivered, OffsetDateTime::now_utc()),
            metadata: Default::default(),
        };
        assert!(!apply_provider_status(&store, &q, &s).await.unwrap().0);
        assert!(q.sent().is_empty());
        // The whole wait is bounded by the pauses (a FIFO batch of ten stays far below a timeout).
        let budget: u64 = STATUS_LOOKUP_PAUSES_MS.iter().sum();
        assert!(budget <= 500, "{budget} ms of pauses per unknown status");
    }
}
