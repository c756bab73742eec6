//! Reply exactly once: one code path for every message of ours — an agent's reply, the answer to a
//! HELP, the after-hours acknowledgement, and every future system message (a CSAT question, an SLA
//! notice).
//!
//! The algorithm: the idempotency record of (author, key) is looked up first; if it exists, the
//! request is a retry — it must be the same request, and the enqueue it may not have finished is
//! finished. Otherwise the caller composes the message from the conversation as it is now, and the
//! message, the conversation's update and the idempotency record commit in one transaction (its
//! condition catches a concurrent request with the same key, and a conversation that changed
//! meanwhile, which is re-read). Then the outbound job is enqueued and the record marked so. A
//! crash anywhere leaves a state the retry finishes; nothing is ever sent twice.

use std::future::Future;

use domain::channels::templates::WhatsAppTemplate;
use domain::events::OutboundJob;
use domain::finance::service::RateCardCache;
use domain::finance::{estimate_message, Costing, LedgerEntry, Usage};
use domain::model::{Channel, Conversation, Message, Route, Sender};
use domain::ports::{
    ConsentStore, ConversationReader, IdempotencyRecord, OutboundQueue, RateCardStore, ReplyCommit, ReplyStore,
    StoreError,
};
use domain::{AgentId, ConversationId, IdempotencyKey, WorkspaceId};
use time::OffsetDateTime;

use crate::Error;

/// Attempts at the commit while concurrent writers keep changing the conversation.
pub const MAX_ATTEMPTS: u32 = 6;

/// What queueing a reply needs from the store.
pub trait ReplyPorts: ReplyStore + ConversationReader {}
impl<T: ReplyStore + ConversationReader + ?Sized> ReplyPorts for T {}

/// Who asks, under which key, for what, in which conversation.
pub struct ReplyRequest<'a> {
    pub workspace: &'a WorkspaceId,
    /// The agent, or the reserved `system` agent for automatic messages.
    pub author: &'a AgentId,
    pub key: &'a IdempotencyKey,
    /// A digest of the request: the same key with another request is refused.
    pub request_hash: &'a str,
    pub conversation: ConversationId,
    /// The AWS usage the outbound job carries to the sender, given what the estimate counted.
    pub job_usage: &'a (dyn Fn(Usage) -> Usage + Send + Sync),
}

/// A composed reply: the message (queued, priced), its ledger entry, and what a replay answers.
pub struct Composed {
    pub message: Message,
    pub cost: Option<LedgerEntry>,
    pub response: serde_json::Value,
    /// The usage the estimate counted (the rest travels on the job).
    pub counted: Usage,
    /// A satisfaction survey this message asks: recorded on the conversation in the same commit.
    pub survey: Option<domain::csat::Survey>,
}

/// The outcome.
#[derive(Debug)]
pub enum Queued {
    /// Stored and enqueued (now or by an earlier attempt). `replayed`: this request was a retry.
    Queued { record: IdempotencyRecord, replayed: bool },
    /// The composer decided there is nothing to send (no channel to answer on).
    Skipped,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplyError<E> {
    /// The composer refused (a policy, a limit, consent, a budget): the caller's own error.
    #[error(transparent)]
    Refused(E),
    #[error("this Idempotency-Key was already used for a different request")]
    KeyReused,
    #[error("no conversation {0}")]
    NotFound(ConversationId),
    #[error(transparent)]
    App(#[from] Error),
}

impl<E> From<StoreError> for ReplyError<E> {
    fn from(e: StoreError) -> Self {
        ReplyError::App(e.into())
    }
}

/// Queues the reply `compose` makes of the conversation, exactly once per (author, key).
/// `compose` runs again after a conflict, on the conversation as re-read.
pub async fn queue_reply<S, F, Fut, E>(
    store: &S,
    outbound: &dyn OutboundQueue,
    req: ReplyRequest<'_>,
    now: impl Fn() -> OffsetDateTime,
    mut compose: F,
) -> Result<Queued, ReplyError<E>>
where
    S: ReplyPorts + ?Sized,
    F: FnMut(Conversation, OffsetDateTime) -> Fut,
    Fut: Future<Output = Result<Option<Composed>, E>>,
{
    for attempt in 0..MAX_ATTEMPTS {
        crate::pause(attempt).await;
        if let Some(record) = store.idempotency_record(req.workspace, req.author, req.key).await? {
            if record.request_hash != req.request_hash {
                return Err(ReplyError::KeyReused);
            }
            finish(store, outbound, &record, (req.job_usage)(Usage::default())).await?;
            return Ok(Queued::Queued { record, replayed: true });
        }
        let conversation =
            store.conversation(req.workspace, req.conversation).await?.ok_or(ReplyError::NotFound(req.conversation))?;
        let at = now();
        let expected_version = conversation.version;
        let mut next = conversation.clone();
        let Some(composed) = compose(conversation, at).await.map_err(ReplyError::Refused)? else {
            return Ok(Queued::Skipped);
        };
        let Composed { mut message, cost, response, counted, survey } = composed;
        // The message names its key, so erasing the conversation can find the key's record.
        message.metadata.insert(
            domain::erasure::META_IDEMPOTENCY.to_owned(),
            serde_json::json!({ "agent": req.author, "key": req.key }),
        );
        let record = IdempotencyRecord {
            workspace: req.workspace.clone(),
            agent: req.author.clone(),
            key: req.key.clone(),
            request_hash: req.request_hash.to_owned(),
            status_code: 202,
            response,
            conversation_id: req.conversation,
            message_id: message.id,
            enqueued: false,
            created_at: at,
        };
        match message.sender {
            // An automatic answer marks nothing read; a person's reply answers everything before it.
            Sender::System => next.record_auto_reply(at),
            _ => next.record_outbound(at),
        }
        if survey.is_some() {
            next.csat = survey;
        }
        let commit = ReplyCommit { conversation: next, expected_version, message, idempotency: record.clone(), cost };
        match store.commit_reply(commit).await {
            Ok(()) => {
                tracing::info!(workspace = %req.workspace, author = %req.author, conversation = %req.conversation,
                    message = %record.message_id, "reply stored");
                finish(store, outbound, &record, (req.job_usage)(counted)).await?;
                return Ok(Queued::Queued { record, replayed: false });
            }
            // Duplicate: a concurrent request with this key won; the next turn replays it.
            // Conflict: the conversation changed under us; the next turn re-reads it.
            Err(StoreError::Duplicate | StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ReplyError::App(Error::Contended(format!(
        "the conversation is still changing after {MAX_ATTEMPTS} attempts; retry with the same key"
    ))))
}

/// [`queue_reply`] for an automatic message of ours: the reserved `system` author, `key` (an
/// idempotency key's text) and `request_hash`, no usage carried to the sender.
#[allow(clippy::too_many_arguments)]
pub async fn queue_system<S, F, Fut>(
    store: &S,
    outbound: &dyn OutboundQueue,
    ws: &WorkspaceId,
    conversation: ConversationId,
    key: &str,
    request_hash: &str,
    now: impl Fn() -> OffsetDateTime,
    compose: F,
) -> Result<Queued, ReplyError<Error>>
where
    S: ReplyPorts + ?Sized,
    F: FnMut(Conversation, OffsetDateTime) -> Fut,
    Fut: Future<Output = Result<Option<Composed>, Error>>,
{
    let invalid = |e: domain::ParseError| ReplyError::App(Error::Invalid(e.to_string()));
    let system = AgentId::parse(domain::consent::SYSTEM_AGENT).map_err(invalid)?;
    let key = IdempotencyKey::parse(key).map_err(invalid)?;
    let req = ReplyRequest {
        workspace: ws,
        author: &system,
        key: &key,
        request_hash,
        conversation,
        job_usage: &|_| Usage::default(),
    };
    queue_reply(store, outbound, req, now, compose).await
}

/// An automatic message of ours (`Sender::System`, `metadata.auto_reply = kind`, its SMS
/// segments), composed and priced with the card in force at `now`; `counted` is the AWS usage the
/// estimate includes. A message that cannot be priced still goes (logged).
#[allow(clippy::too_many_arguments)]
pub async fn system_message<S: RateCardStore + ?Sized>(
    store: &S,
    rates: &RateCardCache,
    c: &Conversation,
    route: Route,
    kind: &str,
    text: &str,
    counted: Usage,
    template: Option<&WhatsAppTemplate>,
    now: OffsetDateTime,
) -> Result<Composed, Error> {
    let seg = domain::sms::segment(text);
    let mut metadata: std::collections::BTreeMap<String, serde_json::Value> = [
        ("auto_reply".to_owned(), serde_json::Value::from(kind)),
        ("sms_encoding".to_owned(), serde_json::to_value(seg.encoding).unwrap_or_default()),
        ("sms_segments".to_owned(), seg.segments.into()),
    ]
    .into();
    // A template (WhatsApp outside the window) is sent as registered and priced by its category.
    if let Some(t) = template {
        metadata.insert("whatsapp_category".to_owned(), serde_json::to_value(t.category).unwrap_or_default());
        metadata.insert("whatsapp_template".to_owned(), serde_json::Value::from(t.name.clone()));
    }
    let mut message = Message::queued_outbound(c.workspace.clone(), c.id, route, Sender::System, text, metadata, now);
    if let Some(t) = template {
        let send = domain::channels::whatsapp::TemplateSend::bare(t);
        message.rich = Some(serde_json::json!({ "template": send }));
    }
    let card = rates.card_at(store, &c.workspace, now).await?;
    let costing = Costing {
        card: &card,
        contact: c.contact_id,
        agent: None,
        team: None,
        usage: counted,
        whatsapp_window_open: template.is_none(),
        now,
    };
    let cost = price_automatic(&mut message, costing, kind);
    let response = serde_json::json!({ "message_id": message.id });
    Ok(Composed { message, cost, response, counted, survey: None })
}

/// Prices a message nobody typed just now (an automatic answer, a re-send) on the card in force:
/// its cost goes on the message, and the ledger entry to commit with it is returned. One that
/// cannot be priced still goes out (logged): the customer's message matters more than its estimate.
pub fn price_automatic(message: &mut Message, costing: Costing<'_>, kind: &str) -> Option<LedgerEntry> {
    match estimate_message(message, costing) {
        Ok((priced, entry)) => {
            message.cost = Some(priced);
            Some(entry)
        }
        Err(e) => {
            tracing::warn!(workspace = %message.workspace, error = %e, kind, "automatic message could not be priced");
            None
        }
    }
}

/// Where a message of ours that answers nothing (a survey) may go on `channel`, and whether a
/// free-form message is allowed there now (WhatsApp's, Messenger's and Instagram's 24-hour window
/// is open; elsewhere always).
pub struct Reach {
    pub route: Route,
    pub window_open: bool,
}

/// The customer wrote on `channel` and the address is neither opted out nor suppressed.
pub async fn unsolicited_reach<S: ConsentStore + ?Sized>(
    store: &S,
    c: &Conversation,
    channel: Channel,
    now: OffsetDateTime,
) -> Result<Option<Reach>, Error> {
    let Ok(route) = c.reply_route(Some(channel)) else { return Ok(None) };
    if let Some(identity) = domain::consent::identity_for(route.channel, &route.contact_address) {
        if store.consent(&c.workspace, &identity).await?.and_then(|r| r.refusal()).is_some() {
            return Ok(None);
        }
    }
    let window_open = c.free_form_open(route.channel, now);
    Ok(Some(Reach { route, window_open }))
}

/// [`unsolicited_reach`] for a free-form message: none outside the window.
pub async fn unsolicited_route<S: ConsentStore + ?Sized>(
    store: &S,
    c: &Conversation,
    channel: Channel,
    now: OffsetDateTime,
) -> Result<Option<Route>, Error> {
    let Some(reach) = unsolicited_reach(store, c, channel, now).await? else { return Ok(None) };
    if !reach.window_open {
        tracing::info!(workspace = %c.workspace, conversation = %c.id, channel = %reach.route.channel,
            "not sent: outside the 24-hour window (a template would be needed)");
        return Ok(None);
    }
    Ok(Some(reach.route))
}

/// Enqueues the outbound job unless the record says it already is, then marks it. A failure
/// leaves the record unmarked: the retry finishes it (the queue drops a double send by the job's
/// deduplication id, the sender's claim drops anything later).
async fn finish<S: ReplyPorts + ?Sized>(
    store: &S,
    outbound: &dyn OutboundQueue,
    record: &IdempotencyRecord,
    usage: Usage,
) -> Result<(), Error> {
    if !record.enqueued {
        let job = OutboundJob::send(record.workspace.clone(), record.conversation_id, record.message_id, usage);
        outbound.enqueue_outbound(&job).await?;
        store.mark_enqueued(&record.workspace, &record.agent, &record.key).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::model::Route;
    use queue::memory::MemoryQueue;
    use store::contract::seed_conversation;
    use store::MemoryStore;

    fn compose_text<'a>(
        text: &'static str,
        calls: &'a std::sync::atomic::AtomicU32,
    ) -> impl FnMut(Conversation, OffsetDateTime) -> std::future::Ready<Result<Option<Composed>, String>> + 'a {
        move |c: Conversation, now| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let route: Route = c.reply_route(None).unwrap();
            let sender = Sender::Agent { id: AgentId::parse("ada").unwrap() };
            let m = Message::queued_outbound(c.workspace.clone(), c.id, route, sender, text, Default::default(), now);
            let response = serde_json::json!({ "message_id": m.id });
            std::future::ready(Ok(Some(Composed {
                message: m,
                cost: None,
                response,
                counted: Usage::default(),
                survey: None,
            })))
        }
    }

    #[tokio::test]
    async fn a_retry_replays_and_finishes_a_key_reused_for_another_request_is_refused() {
        let store = MemoryStore::new();
        let q = MemoryQueue::new();
        let ws = WorkspaceId::parse("acme").unwrap();
        let (_, conv) = seed_conversation(&store, &ws, 42, OffsetDateTime::now_utc()).await;
        let ada = AgentId::parse("ada").unwrap();
        let key = IdempotencyKey::parse("k-1").unwrap();
        let usage = |_| Usage::default();
        let req = |hash: &'static str| ReplyRequest {
            workspace: &ws,
            author: &ada,
            key: &key,
            request_hash: hash,
            conversation: conv.id,
            job_usage: &usage,
        };
        let calls = std::sync::atomic::AtomicU32::new(0);
        // The enqueue fails: stored, not enqueued; the client's retry finishes it.
        q.fail(true);
        let first = queue_reply(&store, &q, req("h1"), OffsetDateTime::now_utc, compose_text("hi", &calls)).await;
        assert!(matches!(first, Err(ReplyError::App(ref e)) if e.is_retryable()), "{first:?}");
        q.fail(false);
        let again = queue_reply(&store, &q, req("h1"), OffsetDateTime::now_utc, compose_text("hi", &calls)).await;
        let Ok(Queued::Queued { record, replayed: true }) = again else { panic!("{again:?}") };
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "composed once");
        assert_eq!(q.sent().len(), 1, "enqueued once");
        assert_eq!(q.sent()[0].1, record.message_id.to_string());
        let third = queue_reply(&store, &q, req("h1"), OffsetDateTime::now_utc, compose_text("hi", &calls)).await;
        assert!(matches!(third, Ok(Queued::Queued { replayed: true, .. })));
        assert_eq!(q.sent().len(), 1, "a marked record is not enqueued again");
        let other = queue_reply(&store, &q, req("h2"), OffsetDateTime::now_utc, compose_text("bye", &calls)).await;
        assert!(matches!(other, Err(ReplyError::KeyReused)));
        let stored = store.messages(&ws, conv.id, domain::ports::Order::Oldest, 10, None).await.unwrap().items;
        assert_eq!(stored.iter().filter(|m| m.direction == domain::model::Direction::Outbound).count(), 1);
    }

    #[tokio::test]
    async fn a_refusal_stores_nothing_and_a_missing_conversation_is_not_found() {
        let store = MemoryStore::new();
        let q = MemoryQueue::new();
        let ws = WorkspaceId::parse("acme").unwrap();
        let (_, conv) = seed_conversation(&store, &ws, 43, OffsetDateTime::now_utc()).await;
        let ada = AgentId::parse("ada").unwrap();
        let key = IdempotencyKey::parse("k-2").unwrap();
        let usage = |_| Usage::default();
        let req = |conversation| ReplyRequest {
            workspace: &ws,
            author: &ada,
            key: &key,
            request_hash: "h",
            conversation,
            job_usage: &usage,
        };
        let refuse = |_c, _now| std::future::ready(Err::<Option<Composed>, _>("opted out".to_owned()));
        let res = queue_reply(&store, &q, req(conv.id), OffsetDateTime::now_utc, refuse).await;
        assert!(matches!(res, Err(ReplyError::Refused(ref why)) if why == "opted out"));
        assert!(store.idempotency_record(&ws, &ada, &key).await.unwrap().is_none());
        let res = queue_reply(&store, &q, req(ConversationId::new()), OffsetDateTime::now_utc, refuse).await;
        assert!(matches!(res, Err(ReplyError::NotFound(_))));
        assert!(q.sent().is_empty());
    }
}
