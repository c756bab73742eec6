//! Ingest: a canonical inbound event from any channel, in its FIFO order.
//!
//! A message: resolve the sender to a contact, thread it into the contact's current conversation
//! (seed 000; an email naming its conversation goes there), price it, and store the message, the
//! conversation update, consent and the dedup record in one transaction. Then announce it, link a
//! web chat visitor's email, check budgets, answer a HELP, route a conversation without an owner
//! and acknowledge outside business hours — each also on a redelivery, so a crash after the commit
//! cannot lose any of them, and each idempotent, so a redelivery does none of them twice.
//!
//! Races are settled by the store's conditions: two first messages from one new person both try to
//! claim the identity and the conversation slot; one wins, the other re-reads and appends. A
//! redelivered event hits the dedup record and stores nothing twice.

use domain::channels::email::EmailThread;
use domain::consent::{
    Change as ConsentChange, Keyword, Record as ConsentRecord, Source as ConsentSource, Status as ConsentStatus,
};
use domain::events::{ConsentUpdate, InboundEvent, InboundMessage, Notification};
use domain::finance::ledger::Month;
use domain::finance::service::{check_budgets, RateCardCache};
use domain::finance::{estimate_message, Costing, Usage};
use domain::model::{Contact, Conversation, Direction, Message, Route, Sender};
use domain::ports::{
    BudgetStore, ConsentStore, ConversationWrite, CostLedger, InboundCommit, NotificationQueue, OutboundQueue,
    RateCardStore, StoreError,
};
use domain::routing::service::{route_known, Known, Routed, RoutingPorts};
use domain::routing::WaitReason;
use domain::threading::{thread_hinted, Threading};
use domain::{AgentId, Channel, ConversationId, IdempotencyKey, MessageId, WorkspaceId};
use time::OffsetDateTime;

use crate::delivery::{self, StatusPorts};
use crate::reply::{self, Composed, Queued, ReplyPorts, ReplyRequest};
use crate::Error;

/// Attempts before giving up on a contended write and letting the queue redeliver the event.
pub const MAX_ATTEMPTS: u32 = 10;

/// `metadata.auto_reply` of the acknowledgement sent outside business hours.
pub const AUTO_REPLY_AFTER_HOURS: &str = "after_hours";

/// Everything ingesting needs from the store.
pub trait IngestPorts:
    StatusPorts
    + ReplyPorts
    + RoutingPorts
    + ConsentStore
    + RateCardStore
    + BudgetStore
    + CostLedger
    + domain::contacts::ContactPorts
{
}
impl<T> IngestPorts for T where
    T: StatusPorts
        + ReplyPorts
        + RoutingPorts
        + ConsentStore
        + RateCardStore
        + BudgetStore
        + CostLedger
        + domain::contacts::ContactPorts
        + ?Sized
{
}

/// The ports and settings of ingesting.
pub struct Ingest<'a, S: ?Sized> {
    pub store: &'a S,
    pub notifications: &'a dyn NotificationQueue,
    /// Automatic answers (HELP, after hours) go out through the sender like any reply.
    pub outbound: &'a dyn OutboundQueue,
    pub rates: &'a RateCardCache,
    pub budgets: &'a crate::cache::BudgetCache,
    pub help_text: &'a str,
    /// AWS usage spent on this event so far (the processor's meter), for the estimate.
    pub usage_so_far: &'a (dyn Fn() -> Usage + Send + Sync),
    pub clock: &'a (dyn Fn() -> OffsetDateTime + Send + Sync),
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

impl<S: IngestPorts + ?Sized> Ingest<'_, S> {
    /// Ingests one event.
    pub async fn event(&self, event: InboundEvent) -> Result<Ingested, Error> {
        match event {
            InboundEvent::Message(m) => self.message(m).await,
            InboundEvent::Status(s) => {
                let applied = delivery::apply_provider_status(self.store, self.notifications, &s).await?;
                Ok(Ingested::Status { applied })
            }
            InboundEvent::Consent(c) => self.consent(c).await,
            InboundEvent::ReadUpTo(r) => {
                let applied = delivery::apply_read(self.store, self.notifications, &r).await?;
                Ok(Ingested::Status { applied })
            }
        }
    }

    /// Applies a provider's consent change (an email suppression). A redelivery finds the change
    /// already in the history and writes nothing.
    async fn consent(&self, c: ConsentUpdate) -> Result<Ingested, Error> {
        let current = self.store.consent(&c.workspace, &c.identity).await?;
        if current.as_ref().is_some_and(|r| r.history.contains(&c.change)) {
            return Ok(Ingested::Consent { applied: false });
        }
        let record = ConsentRecord::apply(current, &c.identity, c.change);
        self.store.put_consent(&c.workspace, &record).await?;
        tracing::info!(workspace = %c.workspace, kind = c.identity.kind.as_str(), status = ?record.status,
            "consent changed by the provider");
        Ok(Ingested::Consent { applied: true })
    }

    async fn message(&self, m: InboundMessage) -> Result<Ingested, Error> {
        for attempt in 0..MAX_ATTEMPTS {
            crate::pause(attempt).await;
            let (outcome, known) = match self.store_message(&m).await {
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
                Ok(stored) => stored,
            };
            let (conversation, message) = match outcome {
                Ingested::Stored { conversation, message, .. } | Ingested::Duplicate { conversation, message } => {
                    (conversation, message)
                }
                Ingested::Status { .. } | Ingested::Consent { .. } => return Ok(outcome),
            };
            self.after_commit(&m, outcome, conversation, known).await?;
            match outcome {
                Ingested::Stored { new_conversation, .. } => tracing::info!(
                    workspace = %m.workspace, %conversation, %message, channel = %m.channel, new_conversation,
                    "inbound message stored"
                ),
                _ => tracing::info!(workspace = %m.workspace, provider_message_id = %m.provider_message_id,
                    "duplicate delivery ignored"),
            }
            return Ok(outcome);
        }
        Err(Error::Contended(format!("still contended after {MAX_ATTEMPTS} attempts")))
    }

    /// What follows a stored message, also on a redelivery (each step is idempotent).
    async fn after_commit(
        &self,
        m: &InboundMessage,
        outcome: Ingested,
        conversation: ConversationId,
        known: Known,
    ) -> Result<(), Error> {
        let Some(message) = (match outcome {
            Ingested::Stored { message, .. } | Ingested::Duplicate { message, .. } => Some(message),
            _ => None,
        }) else {
            return Ok(());
        };
        // Published after the commit, and again on a redelivery (the queue drops the copy by its
        // dedup id): a crash between commit and publish cannot lose the notification.
        let note = Notification::MessageCreated {
            workspace: m.workspace.clone(),
            conversation_id: conversation,
            message_id: message,
            direction: Direction::Inbound,
            channel: m.channel,
        };
        self.notifications.publish(&note).await?;
        self.link_visitor_email(m).await?;
        if let Ingested::Stored { .. } = outcome {
            self.alert_budgets(&m.workspace, Month::of(m.received_at), m.channel).await;
        }
        let help = domain::consent::governed(m.channel)
            && m.text.as_deref().and_then(domain::consent::keyword) == Some(Keyword::Help);
        if help {
            let key = format!("help-{}-{}", m.provider, m.provider_message_id);
            self.auto_reply(m, conversation, domain::consent::AUTO_REPLY_HELP, self.help_text, &key).await?;
        }
        // One routing brain: a conversation without an owner is routed (or queued) now; a
        // follow-up in an owned or waiting conversation skips the re-read.
        let route = !matches!(outcome, Ingested::Stored { needs_routing: false, .. });
        let after_hours = known.rules.as_ref().map(|r| r.after_hours_message.clone());
        let routed = if route { self.route(&m.workspace, conversation, known).await? } else { Routed::Unchanged };
        if routed == Routed::Waiting(WaitReason::OutsideBusinessHours) {
            // Seed 001: outside business hours the customer hears when to expect an answer.
            let text = match after_hours {
                Some(text) => text,
                None => self.store.routing_rules(&m.workspace).await?.after_hours_message,
            };
            let key = format!("after-hours-{conversation}");
            self.auto_reply(m, conversation, AUTO_REPLY_AFTER_HOURS, &text, &key).await?;
        }
        Ok(())
    }

    /// Routes the conversation, pausing between rounds while concurrent messages keep changing it
    /// (the routing service re-reads and decides again within each round). The first round starts
    /// from what the commit wrote (no re-read of the conversation or the rules).
    async fn route(&self, ws: &WorkspaceId, conversation: ConversationId, known: Known) -> Result<Routed, Error> {
        let mut known = Some(known);
        for attempt in 0..MAX_ATTEMPTS {
            crate::pause(attempt).await;
            let start = known.take().unwrap_or_default();
            match route_known(self.store, self.notifications, ws, conversation, start, (self.clock)()).await {
                Err(domain::routing::service::RoutingError::Store(StoreError::Conflict)) => continue,
                other => return Ok(other?),
            }
        }
        Err(Error::Contended(format!("routing still contended after {MAX_ATTEMPTS} rounds")))
    }

    /// A web chat visitor who gave an email (before or after their first message): it is linked to
    /// their contact when no other contact holds it (linking twice is a no-op).
    async fn link_visitor_email(&self, m: &InboundMessage) -> Result<(), Error> {
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
        let Some(contact) = self.store.contact_by_identity(&m.workspace, &m.identity).await? else { return Ok(()) };
        if contact.identities.iter().any(|i| i.kind == domain::model::IdentityKind::Email) {
            return Ok(());
        }
        let linked = webchat::link_email(self.store, &m.workspace, contact.id, &email, m.received_at).await?;
        tracing::info!(workspace = %m.workspace, contact = %contact.id, ?linked, "web chat visitor's email");
        Ok(())
    }

    /// An automatic answer (`kind` in `metadata.auto_reply`), queued exactly once under the reserved
    /// `system` author with `key`: the same path as an agent's reply. A HELP is answered even to
    /// an opted-out number (the sender honours that exception).
    async fn auto_reply(
        &self,
        m: &InboundMessage,
        conversation: ConversationId,
        kind: &str,
        text: &str,
        key: &str,
    ) -> Result<(), Error> {
        let invalid = |e: domain::ParseError| Error::Invalid(e.to_string());
        let system = AgentId::parse(domain::consent::SYSTEM_AGENT).map_err(invalid)?;
        let hash = format!("{kind}:{key}");
        let key = IdempotencyKey::parse(key).map_err(invalid)?;
        let req = ReplyRequest {
            workspace: &m.workspace,
            author: &system,
            key: &key,
            request_hash: &hash,
            conversation,
            job_usage: &|_| Usage::default(),
        };
        let compose =
            |c: Conversation, now: OffsetDateTime| async move { self.compose_auto_reply(m, &c, kind, text, now).await };
        match reply::queue_reply(self.store, self.outbound, req, self.clock, compose).await {
            Ok(Queued::Queued { .. } | Queued::Skipped) => Ok(()),
            Err(reply::ReplyError::App(e) | reply::ReplyError::Refused(e)) => Err(e),
            Err(reply::ReplyError::NotFound(id)) => Err(Error::Invalid(format!("conversation {id} vanished"))),
            Err(reply::ReplyError::KeyReused) => Ok(()),
        }
    }

    async fn compose_auto_reply(
        &self,
        m: &InboundMessage,
        conversation: &Conversation,
        kind: &str,
        text: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Composed>, Error> {
        let Ok(route) = conversation.reply_route(Some(m.channel)) else { return Ok(None) };
        let ws = &m.workspace;
        let seg = domain::sms::segment(text);
        let metadata = [
            ("auto_reply".to_owned(), serde_json::Value::from(kind)),
            ("sms_encoding".to_owned(), serde_json::to_value(seg.encoding).unwrap_or_default()),
            ("sms_segments".to_owned(), seg.segments.into()),
        ]
        .into();
        let mut message =
            Message::queued_outbound(ws.clone(), conversation.id, route, Sender::System, text, metadata, now);
        let card = self.rates.card_at(self.store, ws, now).await?;
        let counted = (self.usage_so_far)();
        let costing = Costing {
            card: &card,
            contact: conversation.contact_id,
            agent: None,
            team: None,
            usage: counted,
            whatsapp_window_open: true,
            now,
        };
        let cost = match estimate_message(&message, costing) {
            Ok((c, entry)) => {
                message.cost = Some(c);
                Some(entry)
            }
            Err(e) => {
                tracing::warn!(workspace = %ws, error = %e, kind, "automatic answer could not be priced");
                None
            }
        };
        let response = serde_json::json!({ "message_id": message.id });
        Ok(Some(Composed { message, cost, response, counted }))
    }

    /// Budget alerts are level-triggered: a failed check is caught up by the next message's, so it
    /// is logged rather than failing a message that is already stored.
    async fn alert_budgets(&self, ws: &WorkspaceId, month: Month, channel: Channel) {
        let checked = match self.budgets.budgets(self.store, ws).await {
            Ok(budgets) => check_budgets(self.store, self.store, self.notifications, &budgets, ws, month, channel)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = checked {
            tracing::warn!(workspace = %ws, error = %e, "budget check failed; the next cost write retries it");
        }
    }

    /// The conversation an email names: its Reply-To token first, then the first of the messages it
    /// answers that we stored; a merged conversation is followed to where it went.
    async fn hinted_conversation(
        &self,
        ws: &WorkspaceId,
        hint: &EmailThread,
    ) -> Result<Option<Conversation>, StoreError> {
        let store = self.store;
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
    async fn complete(&self, m: &InboundMessage, conv: ConversationId, id: MessageId) -> Result<(), StoreError> {
        let ws = &m.workspace;
        let Some(mut stored) = self.store.message(ws, conv, id).await? else { return Ok(()) };
        let filled = stored.complete_with(m);
        if filled.is_empty() {
            return Ok(());
        }
        self.store.complete_message(&stored).await?;
        let note = Notification::MessageUpdated {
            workspace: ws.clone(),
            conversation_id: conv,
            message_id: id,
            filled: filled.join(","),
        };
        if let Err(e) = self.notifications.publish(&note).await {
            // Stored: agents see it on their next read; the redelivery would fill nothing to announce.
            tracing::warn!(workspace = %ws, message = %id, error = %e, "could not announce a completed message");
        }
        tracing::info!(workspace = %ws, message = %id, filled = %filled.join(","), "message completed");
        Ok(())
    }

    /// Stores one message (or recognises it as stored): the single conditional write of ingest.
    async fn store_message(&self, m: &InboundMessage) -> Result<(Ingested, Known), StoreError> {
        let store = self.store;
        let ws = &m.workspace;
        // A message in parts (a voicemail) looks itself up first: a later part completes it. Any
        // other duplicate is caught by the commit's condition on its dedup item, not a read.
        if m.completes {
            if let Some((conversation, message)) =
                store.provider_message(ws, &m.provider, &m.provider_message_id).await?
            {
                self.complete(m, conversation, message).await?;
                return Ok((Ingested::Duplicate { conversation, message }, Known::default()));
            }
        }
        let (contact_id, current, new_contact, hint_fresh) = match store.thread_of(ws, &m.identity).await? {
            Some(t) => (t.contact, t.current, None, t.hint_fresh),
            None => {
                let c = Contact::new(ws.clone(), m.identity.clone(), m.contact_name.clone(), m.received_at);
                (c.id, None, Some(c), false)
            }
        };
        let at = m.provider_timestamp.unwrap_or(m.received_at);
        let route = Route {
            channel: m.channel,
            contact_address: m.contact_address.clone(),
            our_address: m.our_address.clone(),
            contact_country: m.contact_country.clone(),
        };
        // An email that names its conversation (Reply-To token, In-Reply-To, References) goes
        // there, if it is the sender's own.
        let hinted = match (&new_contact, &m.thread) {
            (None, Some(hint)) => self.hinted_conversation(ws, hint).await?,
            _ => None,
        };
        let target = match thread_hinted(current.as_ref(), hinted.as_ref(), contact_id) {
            Threading::Append(id) => [hinted, current.clone()].into_iter().flatten().find(|c| c.id == id),
            Threading::StartNew => None,
        };
        let mut classified_with = None;
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
                let mut c = Conversation::start_for(ws.clone(), contact_id, at);
                c.record_inbound(route.clone(), at);
                // Team and skills are decided once, from the channel and the first message.
                let rules = store.routing_rules(ws).await?;
                rules.classify(&mut c, m.channel, m.text.as_deref().unwrap_or(""));
                classified_with = Some(rules);
                c.previous_owner = previous.as_ref().and_then(|p| p.assignee.clone());
                let id = c.id;
                (ConversationWrite::Create { conversation: c, replaces: previous.map(|p| p.id) }, id, true, None, true)
            }
        };
        let mut message = Message::received(m, conversation_id, contact_id, route);
        // A whole-message keyword (STOP, START, HELP) on SMS or WhatsApp: consent changes in the
        // same transaction as the message; the message is tagged so agents see why.
        let keyword = if domain::consent::governed(m.channel) {
            m.text.as_deref().and_then(domain::consent::keyword)
        } else {
            None
        };
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
        // Priced with the card in force when the message arrived; the AWS share is everything spent
        // on it so far: the webhook (carried on the event) and this processor up to this write.
        let card = self.rates.card_at(store, ws, m.received_at).await?;
        let costing = Costing {
            card: &card,
            contact: contact_id,
            agent: assignee,
            team: None,
            usage: m.usage + (self.usage_so_far)(),
            whatsapp_window_open: true,
            now: (self.clock)(),
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
        // What routing may start from, once this commits: the conversation as written.
        let written = match &write {
            ConversationWrite::Create { conversation, .. } | ConversationWrite::Update { conversation, .. } => {
                needs_routing.then(|| conversation.clone())
            }
        };
        let known = Known { conversation: written, rules: classified_with };
        // The identity's hint follows the contact's current conversation: written when a new one
        // starts, or when the read found it missing or stale (once; then it is fresh again).
        let hint = (new_conversation || !hint_fresh).then(|| m.identity.clone());
        let commit = InboundCommit {
            hint,
            consent,
            new_contact,
            conversation: write,
            message,
            provider: m.provider.clone(),
            provider_message_id: m.provider_message_id.clone(),
            cost: ledger,
        };
        match store.commit_inbound(commit).await {
            Ok(()) => Ok((
                Ingested::Stored {
                    conversation: conversation_id,
                    message: message_id,
                    new_conversation,
                    needs_routing,
                },
                known,
            )),
            Err(StoreError::Duplicate) => {
                // A concurrent delivery of the same provider message won: report what it stored.
                match store.provider_message(ws, &m.provider, &m.provider_message_id).await? {
                    Some((conversation, message)) => {
                        Ok((Ingested::Duplicate { conversation, message }, Known::default()))
                    }
                    None => Err(StoreError::Conflict),
                }
            }
            Err(e) => Err(e),
        }
    }
}
