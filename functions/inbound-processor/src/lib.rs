//! The inbound processor: for each canonical inbound event, in FIFO order, resolve the sender to a
//! contact, thread the message into the contact's current conversation (seed 000), and store the
//! message, the conversation update and the dedup record in one transaction. Then tell agents.
//!
//! Races are settled by the store's conditions: two first messages from one new person both try to
//! claim the identity and the conversation slot; one wins, the other re-reads and appends. A
//! redelivered event hits the dedup record and stores nothing twice.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use domain::channels::email::EmailThread;
use domain::consent::{
    Change as ConsentChange, Keyword, Record as ConsentRecord, Source as ConsentSource, Status as ConsentStatus,
};
use domain::events::{InboundEvent, InboundMessage, Notification, OutboundJob, StatusUpdate};
use domain::finance::ledger::Month;
use domain::finance::service::{check_budgets, RateCardCache};
use domain::finance::{estimate_message, Costing, Usage};
use domain::model::{Contact, Conversation, DeliveryEvent, DeliveryStatus, Direction, Message, Route, Sender};
use domain::ports::{
    ConversationWrite, IdempotencyRecord, InboundCommit, NotificationQueue, OutboundQueue, ReplyCommit, StoreError,
};
use domain::routing::service::{route_conversation, Routed, RoutingError};
use domain::routing::WaitReason;
use domain::threading::{thread_hinted, Threading};
use domain::{AgentId, Channel, ConversationId, IdempotencyKey, MessageId, WorkspaceId};
use kit::fifo::{parse_body, process_in_order, RecordError};
use lambda_runtime::Error;
use meter::{Invocation, Trigger};
use store::Store;

/// Attempts before giving up on a contended write and letting SQS redeliver the record.
const MAX_ATTEMPTS: u32 = 6;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub notifications: Arc<dyn NotificationQueue>,
    /// Automatic answers (HELP) go out through the sender like any reply.
    pub outbound: Arc<dyn OutboundQueue>,
    pub help_text: String,
    pub rates: RateCardCache,
    pub memory_mb: u64,
}

impl Deps {
    pub fn new(
        store: Arc<dyn Store>,
        notifications: Arc<dyn NotificationQueue>,
        outbound: Arc<dyn OutboundQueue>,
    ) -> Self {
        Self {
            store,
            notifications,
            outbound,
            help_text: domain::consent::DEFAULT_HELP_TEXT.to_owned(),
            rates: RateCardCache::default(),
            memory_mb: meter::memory_mb_from_env(),
        }
    }

    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let sqs = aws_sdk_sqs::Client::new(aws);
        let mut deps = Self::new(
            Arc::new(store::DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), config.required("TABLE_NAME")?)),
            Arc::new(queue::SqsQueue::new(sqs.clone(), config.required("NOTIFICATION_QUEUE_URL")?)),
            Arc::new(queue::SqsQueue::new(sqs, config.required("OUTBOUND_QUEUE_URL")?)),
        );
        if let Some(text) = config.optional("HELP_TEXT").filter(|t| !t.trim().is_empty()) {
            deps.help_text = text;
        }
        Ok(deps)
    }
}

pub async fn handle(deps: &Deps, event: SqsEvent) -> Result<SqsBatchResponse, Error> {
    let batch = event.records.len();
    Ok(process_in_order(event, |record| async move {
        let event: InboundEvent = parse_body(&record)?;
        let inv = Invocation::new(deps.memory_mb, batch, Trigger::SqsBatch);
        meter::measure(ingest_with(deps, event, &inv)).await.0.map(|_| ())
    })
    .await)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    Stored {
        conversation: ConversationId,
        message: MessageId,
        new_conversation: bool,
        /// The conversation had neither an owner nor a place in the queue when the message joined it.
        needs_routing: bool,
    },
    Duplicate {
        conversation: ConversationId,
        message: MessageId,
    },
    /// A delivery status: applied, or stale (it would not move the status forward), or about a
    /// message we do not know.
    Status {
        applied: bool,
    },
    /// A provider's consent change: applied, or already in the record.
    Consent {
        applied: bool,
    },
}

impl Ingested {
    /// The conversation a message is in (none for a status).
    pub fn conversation(&self) -> Option<ConversationId> {
        match self {
            Ingested::Stored { conversation, .. } | Ingested::Duplicate { conversation, .. } => Some(*conversation),
            Ingested::Status { .. } | Ingested::Consent { .. } => None,
        }
    }
}

/// Before a retry of a contended write: a concurrent writer just committed; a short pause lets us
/// read what it wrote.
async fn pause(attempt: u32) {
    if attempt > 0 {
        tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
    }
}

/// Routes the conversation, pausing between rounds while concurrent messages keep changing it
/// (the routing service re-reads and decides again within each round).
async fn route_contended(deps: &Deps, ws: &WorkspaceId, conversation: ConversationId) -> Result<Routed, RecordError> {
    for attempt in 0..MAX_ATTEMPTS {
        pause(attempt).await;
        let now = time::OffsetDateTime::now_utc();
        match route_conversation(&*deps.store, &*deps.notifications, ws, conversation, now).await {
            Err(RoutingError::Store(StoreError::Conflict)) => continue,
            other => return Ok(other?),
        }
    }
    Err(RecordError::Retryable(format!("routing still contended after {MAX_ATTEMPTS} rounds").into()))
}

pub async fn ingest(deps: &Deps, event: InboundEvent) -> Result<Ingested, RecordError> {
    ingest_with(deps, event, &Invocation::new(deps.memory_mb, 1, Trigger::SqsBatch)).await
}

async fn ingest_with(deps: &Deps, event: InboundEvent, inv: &Invocation) -> Result<Ingested, RecordError> {
    match event {
        InboundEvent::Message(m) => ingest_message(deps, m, inv).await,
        InboundEvent::Status(s) => apply_status(deps, &s).await,
        InboundEvent::Consent(c) => apply_consent(deps, c).await,
        InboundEvent::ReadUpTo(r) => apply_read(deps, &r).await,
    }
}

/// A read watermark (Messenger): every message we sent the reader on that channel before it, in
/// their current conversation, becomes `read` (the newest 100 messages are looked at: older ones
/// were read by an earlier watermark). Nothing to mark is not an error.
async fn apply_read(deps: &Deps, r: &domain::events::ReadUpTo) -> Result<Ingested, RecordError> {
    use domain::model::{DeliveryEvent, DeliveryStatus, Direction};
    let ws = &r.workspace;
    let Some(contact) = deps.store.contact_by_identity(ws, &r.reader).await? else {
        return Ok(Ingested::Status { applied: false });
    };
    let Some(conversation) = deps.store.current_conversation(ws, &contact).await? else {
        return Ok(Ingested::Status { applied: false });
    };
    let page = deps.store.messages(ws, conversation.id, domain::ports::Order::Newest, 100, None).await?;
    let event = DeliveryEvent { status: DeliveryStatus::Read, at: r.up_to, error_code: None, error_message: None };
    let mut applied = false;
    for m in page.items.iter().filter(|m| {
        m.direction == Direction::Outbound
            && m.channel == r.channel
            && m.created_at <= r.up_to
            && matches!(m.status, DeliveryStatus::Sent | DeliveryStatus::Delivered)
    }) {
        if deps.store.advance_status(ws, conversation.id, m.id, &event).await? {
            applied = true;
            let note = Notification::DeliveryStatusChanged {
                workspace: ws.clone(),
                conversation_id: conversation.id,
                message_id: m.id,
                status: DeliveryStatus::Read,
            };
            deps.notifications.publish(&note).await?;
        }
    }
    tracing::info!(workspace = %ws, conversation = %conversation.id, applied, "read watermark");
    Ok(Ingested::Status { applied })
}

/// Applies a provider's consent change (an email suppression). A redelivery finds the change
/// already in the history and writes nothing.
async fn apply_consent(deps: &Deps, c: domain::events::ConsentUpdate) -> Result<Ingested, RecordError> {
    let current = deps.store.consent(&c.workspace, &c.identity).await?;
    if current.as_ref().is_some_and(|r| r.history.contains(&c.change)) {
        return Ok(Ingested::Consent { applied: false });
    }
    let record = ConsentRecord::apply(current, &c.identity, c.change);
    deps.store.put_consent(&c.workspace, &record).await?;
    tracing::info!(workspace = %c.workspace, kind = c.identity.kind.as_str(), status = ?record.status, "consent changed by the provider");
    Ok(Ingested::Consent { applied: true })
}

/// Pauses before each look-up of the message a status is about: the provider can report `sent` a
/// moment before the sender has recorded the provider's id.
const STATUS_LOOKUP_PAUSES_MS: [u64; 4] = [0, 250, 750, 1500];

/// Moves an outbound message's delivery status forward (never back) and tells agents. A status
/// about a message we never sent (one sent from the provider's own app) is acknowledged and
/// dropped after a short wait, never retried through the queue: that would hold up the person's
/// FIFO group, and a later status supersedes a lost one anyway.
async fn apply_status(deps: &Deps, s: &StatusUpdate) -> Result<Ingested, RecordError> {
    let ws = &s.workspace;
    let mut found = None;
    for pause in STATUS_LOOKUP_PAUSES_MS {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        found = deps.store.provider_message(ws, &s.provider, &s.provider_message_id).await?;
        if found.is_some() {
            break;
        }
    }
    let Some((conversation_id, message_id)) = found else {
        tracing::warn!(workspace = %ws, provider = %s.provider, provider_message_id = %s.provider_message_id,
            status = s.event.status.as_str(), "status for a message Switchboard did not send; dropped");
        return Ok(Ingested::Status { applied: false });
    };
    let applied = deps.store.advance_status(ws, conversation_id, message_id, &s.event).await?;
    // Published also when stale-or-repeated: a redelivery after a crash between the write and the
    // publish still announces it (the queue drops the copy by its dedup id).
    if applied || deps.store.message(ws, conversation_id, message_id).await?.is_some_and(|m| m.status == s.event.status)
    {
        let note = Notification::DeliveryStatusChanged {
            workspace: ws.clone(),
            conversation_id,
            message_id,
            status: s.event.status,
        };
        deps.notifications.publish(&note).await?;
    }
    tracing::info!(workspace = %ws, message = %message_id, status = s.event.status.as_str(), applied, "delivery status");
    Ok(Ingested::Status { applied })
}

async fn ingest_message(deps: &Deps, m: InboundMessage, inv: &Invocation) -> Result<Ingested, RecordError> {
    for attempt in 0..MAX_ATTEMPTS {
        pause(attempt).await;
        match try_ingest(deps, &m, inv).await {
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
            Ok(outcome) => {
                let (conversation, message) = match outcome {
                    Ingested::Stored { conversation, message, .. } | Ingested::Duplicate { conversation, message } => {
                        (conversation, message)
                    }
                    // try_ingest stores messages only.
                    Ingested::Status { .. } | Ingested::Consent { .. } => return Ok(outcome),
                };
                // Published after the commit, and again on a redelivery (the queue drops the copy by
                // its dedup id): a crash between commit and publish cannot lose the notification.
                let note = Notification::MessageCreated {
                    workspace: m.workspace.clone(),
                    conversation_id: conversation,
                    message_id: message,
                    direction: Direction::Inbound,
                    channel: m.channel,
                };
                deps.notifications.publish(&note).await?;
                link_visitor_email(deps, &m).await?;
                if let Ingested::Stored { .. } = outcome {
                    alert_budgets(deps, &m.workspace, Month::of(m.received_at), m.channel).await;
                }
                // Also on a redelivery: the answer is idempotent, so a crash after the commit
                // cannot leave a HELP unanswered.
                let help = domain::consent::governed(m.channel)
                    && m.text.as_deref().and_then(domain::consent::keyword) == Some(Keyword::Help);
                if help {
                    let key = format!("help-{}-{}", m.provider, m.provider_message_id);
                    let reply = AutoReply { kind: domain::consent::AUTO_REPLY_HELP, text: &deps.help_text, key: &key };
                    auto_reply(deps, &m, conversation, reply, inv).await?;
                }
                // One routing brain: a conversation without an owner is routed (or queued) now;
                // also on a redelivery, so a crash after the commit cannot leave it unrouted. A
                // follow-up in an owned or waiting conversation skips the re-read.
                let route = !matches!(outcome, Ingested::Stored { needs_routing: false, .. });
                let routed =
                    if route { route_contended(deps, &m.workspace, conversation).await? } else { Routed::Unchanged };
                if routed == Routed::Waiting(WaitReason::OutsideBusinessHours) {
                    // Seed 001: outside business hours the customer hears when to expect an answer.
                    let text = deps.store.routing_rules(&m.workspace).await?.after_hours_message;
                    let key = format!("after-hours-{conversation}");
                    let reply = AutoReply { kind: AUTO_REPLY_AFTER_HOURS, text: &text, key: &key };
                    auto_reply(deps, &m, conversation, reply, inv).await?;
                }
                match outcome {
                    Ingested::Stored { new_conversation, .. } => tracing::info!(
                        workspace = %m.workspace, %conversation, %message, channel = %m.channel, new_conversation,
                        "inbound message stored"
                    ),
                    Ingested::Duplicate { .. } | Ingested::Status { .. } | Ingested::Consent { .. } => tracing::info!(
                        workspace = %m.workspace, provider_message_id = %m.provider_message_id,
                        "duplicate delivery ignored"
                    ),
                }
                return Ok(outcome);
            }
        }
    }
    Err(RecordError::Retryable(format!("still contended after {MAX_ATTEMPTS} attempts").into()))
}

/// A web chat visitor who gave an email (before or after their first message): it is linked to
/// their contact when no other contact holds it (also on a redelivery: linking twice is a no-op).
async fn link_visitor_email(deps: &Deps, m: &InboundMessage) -> Result<(), RecordError> {
    use domain::channels::webchat;
    if m.channel != Channel::Webchat {
        return Ok(());
    }
    let Some(email) = m
        .metadata
        .get(webchat::META_VISITOR_EMAIL)
        .and_then(|v| v.as_str())
        .and_then(|e| domain::EmailAddress::parse(e).ok())
    else {
        return Ok(());
    };
    let Some(contact) = deps.store.contact_by_identity(&m.workspace, &m.identity).await? else { return Ok(()) };
    if contact.identities.iter().any(|i| i.kind == domain::model::IdentityKind::Email) {
        return Ok(());
    }
    let linked = webchat::link_email(&*deps.store, &m.workspace, contact.id, &email, m.received_at).await?;
    tracing::info!(workspace = %m.workspace, contact = %contact.id, ?linked, "web chat visitor's email");
    Ok(())
}

/// Answers a HELP with the help text, exactly once: the answer is a reply recorded under the reserved
/// `system` agent with an idempotency key made of the provider's message id, so a redelivery finds
/// it (and finishes its enqueue) instead of writing another. It goes out even to an opted-out
/// number: HELP is always answered.
/// `metadata.auto_reply` of the acknowledgement sent outside business hours.
pub const AUTO_REPLY_AFTER_HOURS: &str = "after_hours";

/// An automatic answer: what it is (`metadata.auto_reply`), its text, and the idempotency key
/// that makes it go out once.
struct AutoReply<'a> {
    kind: &'a str,
    text: &'a str,
    key: &'a str,
}

async fn auto_reply(
    deps: &Deps,
    m: &InboundMessage,
    conversation_id: ConversationId,
    reply: AutoReply<'_>,
    inv: &Invocation,
) -> Result<(), RecordError> {
    let ws = &m.workspace;
    let permanent = |e: domain::ParseError| RecordError::Permanent(Box::new(e));
    let system = AgentId::parse(domain::consent::SYSTEM_AGENT).map_err(permanent)?;
    let key = IdempotencyKey::parse(reply.key).map_err(permanent)?;
    for _ in 0..MAX_ATTEMPTS {
        if let Some(record) = deps.store.idempotency_record(ws, &system, &key).await? {
            if !record.enqueued {
                let job = OutboundJob::send(ws.clone(), record.conversation_id, record.message_id, Usage::default());
                deps.outbound.enqueue_outbound(&job).await?;
                deps.store.mark_enqueued(ws, &system, &key).await?;
            }
            return Ok(());
        }
        let Some(conversation) = deps.store.conversation(ws, conversation_id).await? else {
            return Err(RecordError::Permanent(format!("conversation {conversation_id} vanished").into()));
        };
        let Ok(route) = conversation.reply_route(Some(m.channel)) else { return Ok(()) };
        let now = time::OffsetDateTime::now_utc();
        let seg = domain::sms::segment(reply.text);
        let metadata = [
            ("auto_reply".to_owned(), serde_json::Value::from(reply.kind)),
            ("sms_encoding".to_owned(), serde_json::to_value(seg.encoding).unwrap_or_default()),
            ("sms_segments".to_owned(), seg.segments.into()),
        ]
        .into();
        let mut message =
            Message::queued_outbound(ws.clone(), conversation_id, route, Sender::System, reply.text, metadata, now);
        let card = deps.rates.card_at(&*deps.store, ws, now).await?;
        let costing = Costing {
            card: &card,
            contact: conversation.contact_id,
            agent: None,
            team: None,
            usage: inv.usage_so_far(),
            whatsapp_window_open: true,
        };
        let cost = match estimate_message(&message, costing) {
            Ok((c, entry)) => {
                message.cost = Some(c);
                Some(entry)
            }
            Err(e) => {
                tracing::warn!(workspace = %ws, error = %e, kind = reply.kind, "automatic answer could not be priced");
                None
            }
        };
        let record = IdempotencyRecord {
            workspace: ws.clone(),
            agent: system.clone(),
            key: key.clone(),
            request_hash: format!("{}:{}", reply.kind, reply.key),
            status_code: 202,
            response: serde_json::json!({ "message_id": message.id }),
            conversation_id,
            message_id: message.id,
            enqueued: false,
            created_at: now,
        };
        let expected_version = conversation.version;
        let mut next = conversation;
        next.record_auto_reply(now);
        match deps
            .store
            .commit_reply(ReplyCommit { conversation: next, expected_version, message, idempotency: record, cost })
            .await
        {
            // Committed: the next turn finds the record and enqueues. Duplicate: a concurrent
            // delivery answered. Conflict: the conversation moved; re-read.
            Ok(()) | Err(StoreError::Duplicate | StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(RecordError::Retryable(format!("the {} answer is still contended", reply.kind).into()))
}

/// Budget alerts are level-triggered: a failed check is caught up by the next message's, so it is
/// logged rather than failing a message that is already stored.
async fn alert_budgets(deps: &Deps, ws: &WorkspaceId, month: Month, channel: Channel) {
    let store: &dyn Store = &*deps.store;
    let checked = match store.budgets(ws).await {
        Ok(budgets) => check_budgets(store, store, &*deps.notifications, &budgets, ws, month, channel).await.map(drop),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = checked {
        tracing::warn!(workspace = %ws, error = %e, "budget check failed; the next cost write retries it");
    }
}

/// The conversation an email names: its Reply-To token first, then the first of the messages it
/// answers that we stored; a merged conversation is followed to where it went.
async fn hinted_conversation(
    store: &dyn Store,
    ws: &WorkspaceId,
    hint: &EmailThread,
) -> Result<Option<Conversation>, StoreError> {
    let mut id = hint.conversation();
    if id.is_none() {
        for (provider, provider_id) in hint.lookups() {
            if let Some((conversation, _)) = store.provider_message(ws, provider, &provider_id).await? {
                id = Some(conversation);
                break;
            }
        }
    }
    let mut found = match id {
        Some(id) => store.conversation(ws, id).await?,
        None => None,
    };
    // Merges can chain (a into b, b into c); a few hops is every real case.
    for _ in 0..4 {
        match found.as_ref().and_then(|c| c.merged_into) {
            Some(next) => found = store.conversation(ws, next).await?,
            None => break,
        }
    }
    Ok(found)
}

/// Fills a stored message in with a later part of it (a voicemail's transcript or audio): text
/// where it has none, attachments it lacks, metadata keys it lacks. A repeat fills nothing.
async fn complete(deps: &Deps, m: &InboundMessage, conv: ConversationId, id: MessageId) -> Result<(), StoreError> {
    let ws = &m.workspace;
    let Some(mut stored) = deps.store.message(ws, conv, id).await? else { return Ok(()) };
    let mut filled = vec![];
    if stored.text.is_none() && m.text.is_some() {
        stored.text.clone_from(&m.text);
        filled.push("text");
    }
    let missing: Vec<_> =
        m.attachments.iter().filter(|a| !stored.attachments.iter().any(|s| s.url == a.url)).cloned().collect();
    if !missing.is_empty() {
        stored.attachments.extend(missing);
        filled.push("attachments");
    }
    for (k, v) in &m.metadata {
        stored.metadata.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if filled.is_empty() {
        return Ok(());
    }
    deps.store.complete_message(&stored).await?;
    let note = Notification::MessageUpdated {
        workspace: ws.clone(),
        conversation_id: conv,
        message_id: id,
        filled: filled.join(","),
    };
    if let Err(e) = deps.notifications.publish(&note).await {
        // Stored: agents see it on their next read; the redelivery would fill nothing to announce.
        tracing::warn!(workspace = %ws, message = %id, error = %e, "could not announce a completed message");
    }
    tracing::info!(workspace = %ws, message = %id, filled = %filled.join(","), "message completed");
    Ok(())
}

async fn try_ingest(deps: &Deps, m: &InboundMessage, inv: &Invocation) -> Result<Ingested, StoreError> {
    let store = &deps.store;
    let ws = &m.workspace;
    if let Some((conversation, message)) = store.provider_message(ws, &m.provider, &m.provider_message_id).await? {
        if m.completes {
            complete(deps, m, conversation, message).await?;
        }
        return Ok(Ingested::Duplicate { conversation, message });
    }
    let (contact, new_contact) = match store.contact_by_identity(ws, &m.identity).await? {
        Some(c) => (c, None),
        None => {
            let c = Contact::new(ws.clone(), m.identity.clone(), m.contact_name.clone(), m.received_at);
            (c.clone(), Some(c))
        }
    };
    let current = match new_contact {
        Some(_) => None,
        None => store.current_conversation(ws, &contact).await?,
    };
    let at = m.provider_timestamp.unwrap_or(m.received_at);
    let route = Route {
        channel: m.channel,
        contact_address: m.contact_address.clone(),
        our_address: m.our_address.clone(),
        contact_country: m.contact_country.clone(),
    };
    // An email that names its conversation (Reply-To token, In-Reply-To, References) goes there,
    // if it is the sender's own.
    let hinted = match (&new_contact, &m.thread) {
        (None, Some(hint)) => hinted_conversation(&**store, ws, hint).await?,
        _ => None,
    };
    let target = match thread_hinted(current.as_ref(), hinted.as_ref(), contact.id) {
        Threading::Append(id) => [hinted, current.clone()].into_iter().flatten().find(|c| c.id == id),
        Threading::StartNew => None,
    };
    let (write, conversation_id, new_conversation, assignee, needs_routing) = match target {
        Some(mut c) => {
            let expected_version = c.version;
            c.record_inbound(route.clone(), at);
            let (id, assignee) = (c.id, c.assignee.clone());
            let needs_routing = assignee.is_none() && c.waiting_since.is_none();
            (ConversationWrite::Update { conversation: c, expected_version }, id, false, assignee, needs_routing)
        }
        None => {
            let previous = current;
            let mut c = Conversation::start(ws.clone(), &contact, at);
            c.record_inbound(route.clone(), at);
            // Team and skills are decided once, from the channel and the first message.
            store.routing_rules(ws).await?.classify(&mut c, m.channel, m.text.as_deref().unwrap_or(""));
            c.previous_owner = previous.as_ref().and_then(|p| p.assignee.clone());
            let id = c.id;
            (ConversationWrite::Create { conversation: c, replaces: previous.map(|p| p.id) }, id, true, None, true)
        }
    };
    let mut message = Message {
        id: MessageId::new(),
        workspace: ws.clone(),
        conversation_id,
        direction: Direction::Inbound,
        channel: m.channel,
        route,
        sender: Sender::Contact { id: contact.id },
        text: m.text.clone(),
        rich: m.rich.clone(),
        attachments: m.attachments.clone(),
        provider: Some(m.provider.clone()),
        provider_message_id: Some(m.provider_message_id.clone()),
        provider_timestamp: m.provider_timestamp,
        created_at: m.received_at,
        status: DeliveryStatus::Received,
        status_history: vec![DeliveryEvent {
            status: DeliveryStatus::Received,
            at: m.received_at,
            error_code: None,
            error_message: None,
        }],
        metadata: m.metadata.clone(),
        cost: None,
    };
    // A whole-message keyword (STOP, START, HELP) on SMS or WhatsApp: consent changes in the same
    // transaction as the message; the message is tagged so agents see why.
    let keyword =
        if domain::consent::governed(m.channel) { m.text.as_deref().and_then(domain::consent::keyword) } else { None };
    if let Some(k) = keyword {
        message.metadata.insert("consent_keyword".into(), serde_json::to_value(k).unwrap_or_default());
    }
    let consent = match keyword {
        Some(k @ (Keyword::OptOut | Keyword::OptIn)) => {
            let status = if k == Keyword::OptOut { ConsentStatus::OptedOut } else { ConsentStatus::OptedIn };
            let change = ConsentChange {
                status,
                at: m.received_at,
                source: ConsentSource::Keyword {
                    text: m.text.clone().unwrap_or_default(),
                    channel: m.channel,
                    provider_message_id: m.provider_message_id.clone(),
                },
            };
            Some(ConsentRecord::apply(store.consent(ws, &m.identity).await?, &m.identity, change))
        }
        _ => None,
    };
    // Priced with the card in force when the message arrived; the AWS share is everything spent on
    // it so far: the webhook (carried on the event) and this processor up to this write.
    let card = deps.rates.card_at(&**store, ws, m.received_at).await?;
    let costing = Costing {
        card: &card,
        contact: contact.id,
        agent: assignee,
        team: None,
        usage: m.usage + inv.usage_so_far(),
        whatsapp_window_open: true,
    };
    let ledger = match estimate_message(&message, costing) {
        Ok((cost, entry)) => {
            message.cost = Some(cost);
            Some(entry)
        }
        Err(e) => {
            tracing::warn!(workspace = %ws, error = %e, "inbound message could not be priced");
            None
        }
    };
    let message_id = message.id;
    let commit = InboundCommit {
        consent,
        new_contact,
        conversation: write,
        message,
        provider: m.provider.clone(),
        provider_message_id: m.provider_message_id.clone(),
        cost: ledger,
    };
    match store.commit_inbound(commit).await {
        Ok(()) => {
            Ok(Ingested::Stored { conversation: conversation_id, message: message_id, new_conversation, needs_routing })
        }
        Err(StoreError::Duplicate) => {
            // A concurrent delivery of the same provider message won: report what it stored.
            match store.provider_message(ws, &m.provider, &m.provider_message_id).await? {
                Some((conversation, message)) => Ok(Ingested::Duplicate { conversation, message }),
                None => Err(StoreError::Conflict),
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::sqs::SqsMessage;
    use domain::ports::{ConsentStore, ConversationReader, InboundStore, Order};
    use domain::{Identity, PhoneNumber, WorkspaceId};
    use queue::memory::MemoryQueue;
    use store::MemoryStore;

    const FIXTURE: &str = include_str!("../../../events/inbound-processor/sqs-inbound-sms.json");

    fn deps() -> (Deps, Arc<MemoryStore>, Arc<MemoryQueue>) {
        let s = Arc::new(MemoryStore::new());
        let q = Arc::new(MemoryQueue::new());
        (Deps::new(s.clone(), q.clone(), q.clone()), s, q)
    }

    fn inbound(sid: &str, from: &str, text: &str) -> InboundEvent {
        let p = PhoneNumber::parse(from).unwrap();
        InboundEvent::Message(InboundMessage {
            workspace: WorkspaceId::parse("demo").unwrap(),
            contact_country: Some("US".into()),
            channel: domain::Channel::Sms,
            identity: Identity::phone(&p),
            contact_address: p.to_string(),
            our_address: "+14155550100".into(),
            contact_name: None,
            provider: "twilio".into(),
            provider_message_id: sid.into(),
            text: Some(text.into()),
            attachments: vec![],
            rich: None,
            provider_timestamp: None,
            received_at: time::OffsetDateTime::now_utc(),
            metadata: Default::default(),
            usage: Default::default(),
            thread: None,
            completes: false,
        })
    }

    fn ws() -> WorkspaceId {
        WorkspaceId::parse("demo").unwrap()
    }

    #[tokio::test]
    async fn help_is_answered_once_even_when_opted_out_and_redelivered() {
        let (deps, store, q) = deps();
        let from = "+14155552671";
        ingest(&deps, inbound("SM00000000000000000000000000000011", from, "STOP")).await.unwrap();
        let help = inbound("SM00000000000000000000000000000012", from, "Help");
        ingest(&deps, help.clone()).await.unwrap();
        ingest(&deps, help).await.unwrap(); // redelivered
        let sends: Vec<_> =
            q.sent().into_iter().filter(|(_, _, b)| b.get("task").is_some_and(|t| t == "send")).collect();
        assert_eq!(sends.len(), 1, "one answer, enqueued once: {sends:?}");
        let ws = WorkspaceId::parse("demo").unwrap();
        let conv = store
            .conversations(
                &ws,
                &domain::ports::ConversationQuery {
                    status: domain::ConversationStatus::Open,
                    assignee: domain::ports::AssigneeFilter::Any,
                    limit: 10,
                    cursor: None,
                },
            )
            .await
            .unwrap()
            .items
            .remove(0);
        let msgs = store.messages(&ws, conv.id, Order::Oldest, 10, None).await.unwrap().items;
        let answer = msgs.iter().find(|m| m.direction == Direction::Outbound).expect("the answer");
        assert_eq!(answer.text.as_deref(), Some(domain::consent::DEFAULT_HELP_TEXT));
        assert_eq!(answer.sender, Sender::System);
        assert!(answer.cost.is_some(), "priced like any message");
        assert_eq!(conv.unread_count, 2, "an automatic answer marks nothing read");
    }

    async fn conversation_of(store: &MemoryStore, from: &str) -> Conversation {
        let p = PhoneNumber::parse(from).unwrap();
        let contact = store.contact_by_identity(&ws(), &Identity::phone(&p)).await.unwrap().unwrap();
        store.current_conversation(&ws(), &contact).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn new_conversations_are_routed_by_skill_and_wait_when_nobody_qualifies() {
        use domain::ports::{AgentStore, AuditLog, RoutingStore};
        use domain::routing::{AgentState, Presence, RoutingRules};
        let (deps, store, q) = deps();
        let mut rules = RoutingRules::default();
        rules.skills.keywords.insert("refund".into(), "billing".into());
        store.put_routing_rules(&ws(), &rules).await.unwrap();
        let agent = |id: &str, skills: &[&str]| AgentState {
            id: AgentId::parse(id).unwrap(),
            presence: Presence::Online,
            teams: Default::default(),
            skills: skills.iter().map(|s| (*s).to_owned()).collect(),
            capacity: 100,
            load: 0,
            last_assigned_at: None,
        };
        store.put_agent(&ws(), &agent("ann", &[])).await.unwrap();
        store.put_agent(&ws(), &agent("bob", &["billing"])).await.unwrap();
        ingest(&deps, inbound("SM00000000000000000000000000000021", "+14155552671", "I want a refund")).await.unwrap();
        let billing = conversation_of(&store, "+14155552671").await;
        assert_eq!(billing.assignee.as_ref().map(AgentId::as_str), Some("bob"), "the skill decides");
        assert!(billing.skills.contains("billing"));
        // A follow-up keeps its owner and changes nothing in routing.
        ingest(&deps, inbound("SM00000000000000000000000000000022", "+14155552671", "hello?")).await.unwrap();
        assert_eq!(conversation_of(&store, "+14155552671").await.assignee, billing.assignee);
        ingest(&deps, inbound("SM00000000000000000000000000000023", "+14155552672", "hi")).await.unwrap();
        assert_eq!(conversation_of(&store, "+14155552672").await.assignee.unwrap().as_str(), "ann");
        // Both are full now: the third waits in the queue.
        ingest(&deps, inbound("SM00000000000000000000000000000024", "+14155552673", "hi")).await.unwrap();
        let waiting = conversation_of(&store, "+14155552673").await;
        assert_eq!((waiting.assignee.clone(), waiting.waiting_since.is_some()), (None, true));
        assert_eq!(store.waiting(&ws()).await.unwrap().len(), 1);
        let changes: Vec<String> = q
            .sent()
            .into_iter()
            .filter(|(_, _, b)| b["type"] == "conversation_changed")
            .map(|(_, _, b)| b["change"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(changes, ["assigned", "assigned", "queued"]);
        let trail = store.audit_trail(&ws(), Some(billing.id), 10, None).await.unwrap().items;
        assert_eq!(trail[0].action, "assigned");
    }

    #[tokio::test]
    async fn outside_business_hours_the_customer_is_acknowledged_once() {
        use domain::ports::RoutingStore;
        use domain::routing::{BusinessHours, RoutingRules};
        let (deps, store, q) = deps();
        // Open on no day at all: always outside hours.
        let rules = RoutingRules {
            hours: Some(BusinessHours {
                time_zone: "UTC".into(),
                weekly: Default::default(),
                holidays: Default::default(),
            }),
            ..RoutingRules::default()
        };
        store.put_routing_rules(&ws(), &rules).await.unwrap();
        let first = inbound("SM00000000000000000000000000000031", "+14155552671", "hello");
        ingest(&deps, first.clone()).await.unwrap();
        ingest(&deps, first).await.unwrap();
        ingest(&deps, inbound("SM00000000000000000000000000000032", "+14155552671", "anyone?")).await.unwrap();
        let conv = conversation_of(&store, "+14155552671").await;
        let msgs = store.messages(&ws(), conv.id, Order::Oldest, 10, None).await.unwrap().items;
        let acks: Vec<_> = msgs.iter().filter(|m| m.direction == Direction::Outbound).collect();
        assert_eq!(acks.len(), 1);
        assert_eq!(acks[0].text.as_deref(), Some(domain::routing::DEFAULT_AFTER_HOURS_MESSAGE));
        assert_eq!(acks[0].metadata["auto_reply"], AUTO_REPLY_AFTER_HOURS);
        assert_eq!(q.sent().iter().filter(|(_, _, b)| b.get("task").is_some_and(|t| t == "send")).count(), 1);
        assert!(conv.waiting_since.is_some() && conv.assignee.is_none());
    }

    #[tokio::test]
    async fn the_fixture_batch_is_stored_and_announced() {
        let (deps, s, q) = deps();
        let event: SqsEvent = serde_json::from_str(FIXTURE).unwrap();
        let res = handle(&deps, event).await.unwrap();
        assert!(res.batch_item_failures.is_empty());
        let p = PhoneNumber::parse("+14155552671").unwrap();
        let contact = s.contact_by_identity(&ws(), &Identity::phone(&p)).await.unwrap().unwrap();
        let conv = s.current_conversation(&ws(), &contact).await.unwrap().unwrap();
        assert_eq!(conv.unread_count, 1);
        let types: Vec<String> = q.sent().iter().map(|(_, _, b)| b["type"].as_str().unwrap().to_owned()).collect();
        // Nobody is online in a fresh workspace: the conversation waits for the first agent.
        assert_eq!(types, ["message_created", "conversation_changed"]);
    }

    #[tokio::test]
    async fn follow_ups_join_the_open_conversation_and_duplicates_store_nothing() {
        let (deps, s, _) = deps();
        let a = ingest(&deps, inbound("SM00000000000000000000000000000001", "+14155552671", "one")).await.unwrap();
        let b = ingest(&deps, inbound("SM00000000000000000000000000000002", "+14155552671", "two")).await.unwrap();
        let again = ingest(&deps, inbound("SM00000000000000000000000000000001", "+14155552671", "one")).await.unwrap();
        let (
            Ingested::Stored { conversation: c1, message: m1, new_conversation: true, needs_routing: true },
            Ingested::Stored { conversation: c2, new_conversation: false, .. },
        ) = (a, b)
        else {
            panic!("unexpected outcomes {a:?} {b:?}");
        };
        assert_eq!(c1, c2);
        assert_eq!(again, Ingested::Duplicate { conversation: c1, message: m1 });
        let msgs = s.messages(&ws(), c1, Order::Oldest, 10, None).await.unwrap().items;
        assert_eq!(msgs.iter().map(|m| m.text.clone().unwrap()).collect::<Vec<_>>(), vec!["one", "two"]);
    }

    fn email(message_id: &str, from: &str, thread: domain::channels::email::EmailThread) -> InboundEvent {
        let InboundEvent::Message(mut m) = inbound("SM00000000000000000000000000000099", "+14155552671", "x") else {
            unreachable!()
        };
        let address = domain::EmailAddress::parse(from).unwrap();
        m.channel = domain::Channel::Email;
        m.identity = Identity::email(&address);
        m.contact_address = address.to_string();
        m.contact_country = None;
        m.our_address = "support@acme.example".into();
        m.provider = domain::channels::email::PROVIDER.into();
        m.provider_message_id = message_id.into();
        m.thread = Some(thread);
        InboundEvent::Message(m)
    }

    async fn resolve(s: &MemoryStore, id: ConversationId) {
        let mut c = s.conversation(&ws(), id).await.unwrap().unwrap();
        let expected_version = c.version;
        c.status = domain::model::ConversationStatus::Resolved;
        c.version += 1;
        let commit = domain::ports::RoutingCommit {
            conversation: c,
            expected_version,
            take: None,
            give_back: None,
            queue: domain::ports::QueueChange::Keep,
            audit: None,
        };
        domain::ports::RoutingStore::commit_routing(s, commit).await.unwrap();
    }

    #[tokio::test]
    async fn an_email_answering_a_resolved_thread_reopens_it_and_a_foreign_token_is_ignored() {
        use domain::channels::email::EmailThread;
        let (deps, s, _) = deps();
        let first = ingest(&deps, email("m1@example.com", "ann@example.com", EmailThread::default())).await.unwrap();
        let conversation = first.conversation().unwrap();
        resolve(&s, conversation).await;
        // In-Reply-To her own first message: the resolved conversation reopens.
        let hint = EmailThread { token: None, references: vec!["m1@example.com".into()] };
        let again = ingest(&deps, email("m2@example.com", "ann@example.com", hint)).await.unwrap();
        assert_eq!(again.conversation(), Some(conversation));
        let c = s.conversation(&ws(), conversation).await.unwrap().unwrap();
        assert_eq!(c.status, domain::model::ConversationStatus::Open);
        // Without a hint, a resolved conversation is not continued.
        resolve(&s, conversation).await;
        let fresh = ingest(&deps, email("m3@example.com", "ann@example.com", EmailThread::default())).await.unwrap();
        assert_ne!(fresh.conversation(), Some(conversation));
        // The plus-address token names the old one: it wins over the current conversation.
        let token = EmailThread { token: Some(conversation.to_string().to_lowercase()), references: vec![] };
        let by_token = ingest(&deps, email("m4@example.com", "ann@example.com", token.clone())).await.unwrap();
        assert_eq!(by_token.conversation(), Some(conversation));
        // Bob cannot write into Ann's conversation with her token.
        let bob = ingest(&deps, email("m5@example.com", "bob@example.com", token)).await.unwrap();
        assert_ne!(bob.conversation(), Some(conversation));
    }

    #[tokio::test]
    async fn a_provider_suppression_is_applied_once() {
        use domain::consent::{Change, Source, Status};
        let (deps, s, _) = deps();
        let identity = Identity::email(&domain::EmailAddress::parse("ann@example.com").unwrap());
        let update = domain::events::ConsentUpdate {
            workspace: ws(),
            identity: identity.clone(),
            change: Change {
                status: Status::OptedOut,
                at: time::OffsetDateTime::now_utc(),
                source: Source::Provider {
                    provider: "ses".into(),
                    reason: "complaint".into(),
                    provider_message_id: "m1".into(),
                },
            },
        };
        let ev = InboundEvent::Consent(update);
        assert_eq!(ingest(&deps, ev.clone()).await.unwrap(), Ingested::Consent { applied: true });
        assert_eq!(
            ingest(&deps, ev).await.unwrap(),
            Ingested::Consent { applied: false },
            "a redelivery changes nothing"
        );
        let record = s.consent(&ws(), &identity).await.unwrap().unwrap();
        assert_eq!((record.status, record.history.len()), (Status::OptedOut, 1));
        assert!(record.refusal().unwrap().contains("complaint reported by ses"));
    }

    #[tokio::test]
    async fn concurrent_first_messages_from_one_person_make_one_contact_and_one_conversation() {
        let (deps, s, _) = deps();
        let results = futures::future::join_all((0..10).map(|i| {
            let deps = &deps;
            async move { ingest(deps, inbound(&format!("SM{i:032}"), "+14155559999", "hi")).await.unwrap() }
        }))
        .await;
        let convs: std::collections::HashSet<_> = results.iter().filter_map(Ingested::conversation).collect();
        assert_eq!(convs.len(), 1);
        let conv = *convs.iter().next().unwrap();
        assert_eq!(s.messages(&ws(), conv, Order::Oldest, 50, None).await.unwrap().items.len(), 10);
        assert_eq!(s.conversation(&ws(), conv).await.unwrap().unwrap().unread_count, 10);
    }

    #[tokio::test]
    async fn a_garbage_record_fails_with_everything_after_it() {
        let (deps, _, _) = deps();
        let mut event: SqsEvent = serde_json::from_str(FIXTURE).unwrap();
        let mut bad = SqsMessage::default();
        bad.message_id = Some("bad".into());
        bad.body = Some("{not json".into());
        let good = event.records[0].clone();
        event.records = vec![bad, good];
        let res = handle(&deps, event).await.unwrap();
        assert_eq!(res.batch_item_failures.len(), 2);
    }

    #[tokio::test]
    async fn a_notification_outage_is_retried_and_the_retry_does_not_store_twice() {
        let (deps, s, q) = deps();
        q.fail(true);
        let ev = inbound("SM00000000000000000000000000000003", "+14155552671", "one");
        assert!(matches!(ingest(&deps, ev.clone()).await, Err(RecordError::Retryable(_))));
        q.fail(false);
        let Ingested::Duplicate { conversation, .. } = ingest(&deps, ev).await.unwrap() else {
            panic!("duplicate expected")
        };
        assert_eq!(s.messages(&ws(), conversation, Order::Oldest, 10, None).await.unwrap().items.len(), 1);
        let created = q.sent().iter().filter(|(_, _, b)| b["type"] == "message_created").count();
        assert_eq!(created, 1, "the retry announced it");
    }
}
