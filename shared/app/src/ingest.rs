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
use domain::model::{Contact, Conversation, DeliveryStatus, Direction, Message, Route};
use domain::ports::{
    BudgetStore, ConsentStore, ConversationWrite, CostLedger, InboundCommit, NotificationQueue, OutboundQueue,
    RateCardStore, StoreError,
};
use domain::routing::service::{route_known, Known, Routed, RoutingPorts};
use domain::routing::WaitReason;
use domain::sla::Timer;
use domain::threading::{thread_hinted, Threading};
use domain::{Channel, ConversationId, MessageId, WorkspaceId};
use time::OffsetDateTime;

use crate::delivery::{self, StatusPorts};
use crate::reply::{self, Composed, Queued, ReplyPorts};
use crate::Error;

/// Events held back to be published after another (`release`, in the order they came). Routing's
/// events are held this way; as when routing published them itself, a crash between its write and
/// the publish loses the assignment's event (the redelivery finds the conversation routed), never
/// the assignment: the message's own event, published again, carries the conversation with its owner.
#[derive(Default)]
struct HeldNotifications(std::sync::Mutex<Vec<Notification>>);

#[async_trait::async_trait]
impl NotificationQueue for HeldNotifications {
    async fn publish(&self, event: &Notification) -> Result<(), domain::ports::QueueError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(event.clone());
        Ok(())
    }
}

impl HeldNotifications {
    async fn release(self, to: &dyn NotificationQueue) -> Result<(), domain::ports::QueueError> {
        for event in self.0.into_inner().unwrap_or_else(|p| p.into_inner()) {
            to.publish(&event).await?;
        }
        Ok(())
    }
}

/// Attempts before giving up on a contended write and letting the queue redeliver the event.
pub const MAX_ATTEMPTS: u32 = 10;

/// The tag on a conversation started by a sender who only claimed their identity (a form, a widget,
/// mail that failed authentication): agents see it, and the contact's merge suggestions name who
/// holds the proven identity.
pub const TAG_UNVERIFIED_SENDER: &str = "unverified-sender";

/// `metadata.redacted`: what was masked in a message's text (`card`, `iban`, a pattern's name).
pub const META_REDACTED: &str = domain::redact::META_KEY;

/// `metadata.sender_unverified` on a message from such a sender.
pub const META_SENDER_UNVERIFIED: &str = "sender_unverified";

/// `metadata.csat_score` of a customer's message that answered a satisfaction survey.
pub const META_CSAT_SCORE: &str = "csat_score";

/// `metadata.nps_score` of a customer's message that answered the NPS question.
pub const META_NPS_SCORE: &str = "nps_score";

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
    + domain::ports::WorkspaceStore
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
        + domain::ports::WorkspaceStore
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
    /// Service levels, read when a customer message starts a clock.
    pub sla: &'a crate::cache::SlaCache,
    /// One timer per clock that starts (Step Functions in AWS).
    pub timers: &'a dyn domain::timers::SlaTimers,
    /// The answer to HELP when the workspace has not set its own (the stack's `HelpText`).
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
        /// The message answered a satisfaction survey with this score.
        answered: Option<u8>,
        /// The message answered its contact's NPS question.
        nps: Option<NpsAnswer>,
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

/// An answer to a contact's NPS question, kept on the contact after the message commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NpsAnswer {
    pub score: u8,
    pub contact: domain::ContactId,
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
                let (applied, message) = delivery::apply_provider_status(self.store, self.notifications, &s).await?;
                // A failure the workspace's policy re-sends elsewhere; also on a redelivery of the
                // status (the re-send is idempotent), so a crash in between loses nothing.
                if let (Some(m), DeliveryStatus::Failed | DeliveryStatus::Undelivered) = (message, s.event.status) {
                    crate::fallback::after_failure(self.store, self.outbound, self.rates, &s.workspace, m, self.clock)
                        .await?;
                }
                Ok(Ingested::Status { applied })
            }
            InboundEvent::Consent(c) => self.consent(c).await,
            InboundEvent::ReadUpTo(r) => {
                let applied = delivery::apply_read(self.store, self.notifications, &r).await?;
                Ok(Ingested::Status { applied })
            }
        }
    }

    /// A message a person sent from the provider's own inbox (Meta Business Suite, the Instagram
    /// app): recorded in the customer's open conversation as an outbound message already sent,
    /// answering them as an agent's reply would. Stored once (its provider id); with no open
    /// conversation there is no thread to show it in, and it is skipped (logged).
    async fn echo(&self, m: &InboundMessage) -> Result<Ingested, Error> {
        let ws = &m.workspace;
        let at = m.provider_timestamp.unwrap_or(m.received_at);
        for attempt in 0..MAX_ATTEMPTS {
            crate::pause(attempt).await;
            let Some(mut c) = self.store.thread_of(ws, &m.identity).await?.and_then(|t| t.current) else {
                tracing::info!(workspace = %ws, channel = %m.channel, "a message sent from the provider's inbox to someone with no open conversation: not recorded");
                return Ok(Ingested::Status { applied: false });
            };
            let expected_version = c.version;
            c.record_outbound(at);
            let route = Route {
                channel: m.channel,
                contact_address: m.contact_address.clone(),
                our_address: m.our_address.clone(),
                contact_country: m.contact_country.clone(),
            };
            let mut message = Message::queued_outbound(
                ws.clone(),
                c.id,
                route,
                domain::model::Sender::System,
                m.text.as_deref().unwrap_or_default(),
                m.metadata.clone(),
                at,
            );
            if m.text.is_none() {
                message.text = None;
            }
            message.attachments = m.attachments.clone();
            message.rich = m.rich.clone();
            message.provider = Some(m.provider.clone());
            message.provider_message_id = Some(m.provider_message_id.clone());
            message.provider_timestamp = m.provider_timestamp;
            message.status = DeliveryStatus::Sent;
            message.status_history.push(domain::model::DeliveryEvent::new(DeliveryStatus::Sent, at));
            let (conversation, id) = (c.id, message.id);
            let commit = domain::ports::InboundCommit {
                new_contact: None,
                conversation: domain::ports::ConversationWrite::Update { conversation: c, expected_version },
                message,
                provider: m.provider.clone(),
                provider_message_id: m.provider_message_id.clone(),
                cost: None,
                consent: None,
                hint: None,
            };
            match self.store.commit_inbound(commit).await {
                Err(StoreError::Conflict) => continue,
                // Stored already (a redelivery, or one of our own sends).
                Err(StoreError::Duplicate) => return Ok(Ingested::Status { applied: false }),
                Err(e) => return Err(e.into()),
                Ok(()) => {
                    let note = Notification::MessageCreated {
                        workspace: ws.clone(),
                        conversation_id: conversation,
                        message_id: id,
                        direction: Direction::Outbound,
                        channel: m.channel,
                        opened: false,
                    };
                    self.notifications.publish(&note).await?;
                    tracing::info!(workspace = %ws, %conversation, message = %id, channel = %m.channel, "a message sent from the provider's inbox recorded");
                    let stored = Ingested::Stored {
                        conversation,
                        message: id,
                        new_conversation: false,
                        needs_routing: false,
                        answered: None,
                        nps: None,
                    };
                    return Ok(stored);
                }
            }
        }
        Err(Error::Contended(format!("still contended after {MAX_ATTEMPTS} attempts")))
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
        if m.metadata.contains_key(domain::channels::meta::SENT_FROM_META_INBOX) {
            return self.echo(&m).await;
        }
        for attempt in 0..MAX_ATTEMPTS {
            crate::pause(attempt).await;
            let (outcome, known, timers) = match self.store_message(&m).await {
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
            self.after_commit(&m, outcome, conversation, known, timers).await?;
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
        timers: Vec<Timer>,
    ) -> Result<(), Error> {
        let Some(message) = (match outcome {
            Ingested::Stored { message, .. } | Ingested::Duplicate { message, .. } => Some(message),
            _ => None,
        }) else {
            return Ok(());
        };
        // One routing brain: a conversation without an owner is routed (or queued) now; a
        // follow-up in an owned or waiting conversation skips the re-read. Routing comes before
        // the message's event, whose audience then is the new owner rather than every agent; its
        // own events are held and follow the message's, in the order they always had.
        let route = !matches!(outcome, Ingested::Stored { needs_routing: false, .. });
        let after_hours = known.rules.as_ref().map(|r| r.after_hours_message.clone());
        let held = HeldNotifications::default();
        let routed =
            if route { self.route(&held, &m.workspace, conversation, known).await? } else { Routed::Unchanged };
        // Published after the commit, and again on a redelivery (the queue drops the copy by its
        // dedup id): a crash between commit and publish cannot lose the notification.
        let note = Notification::MessageCreated {
            workspace: m.workspace.clone(),
            conversation_id: conversation,
            message_id: message,
            direction: Direction::Inbound,
            channel: m.channel,
            opened: matches!(outcome, Ingested::Stored { new_conversation: true, .. }),
        };
        self.notifications.publish(&note).await?;
        held.release(self.notifications).await?;
        if let Ingested::Stored { nps: Some(NpsAnswer { score, contact }), .. } = outcome {
            // The answer is kept on the contact (the message is in the conversation asked in).
            let at = m.provider_timestamp.unwrap_or(m.received_at);
            crate::nps::update_contact(self.store, &m.workspace, contact, |c| {
                if let Some(s) = c.nps.as_mut().filter(|s| s.score.is_none()) {
                    s.score = Some(score);
                    s.answered_at = Some(at);
                }
            })
            .await?;
        }
        if let Ingested::Stored { answered: Some(score), .. } = outcome {
            let rated = Notification::CsatReceived {
                workspace: m.workspace.clone(),
                conversation_id: conversation,
                score,
                channel: m.channel,
                comment: None,
            };
            self.notifications.publish(&rated).await?;
        }
        // The clocks this message started get their timers; a redelivery starts the timers of every
        // running clock again (idempotent by name), so a crash before this line loses none.
        match outcome {
            Ingested::Duplicate { .. } => {
                if let Some(c) = self.store.conversation(&m.workspace, conversation).await? {
                    crate::sla::start_timers(self.timers, &c).await?;
                }
            }
            _ => {
                for t in &timers {
                    self.timers
                        .start_sla_timer(t)
                        .await
                        .map_err(|e| Error::Unavailable(format!("SLA timer not started: {e}")))?;
                }
            }
        }
        self.link_visitor_email(m).await?;
        if let Ingested::Stored { .. } = outcome {
            self.alert_budgets(&m.workspace, Month::of(m.received_at), m.channel).await;
        }
        let help = domain::consent::governed(m.channel)
            && m.text.as_deref().and_then(domain::consent::keyword) == Some(Keyword::Help);
        if help {
            let key = format!("help-{}-{}", m.provider, m.provider_message_id);
            // Read only for the rare HELP: the common path pays nothing for the setting.
            let settings = self.store.workspace_settings(&m.workspace).await?;
            let text = settings.help_text.as_deref().unwrap_or(self.help_text);
            self.auto_reply(m, conversation, domain::consent::AUTO_REPLY_HELP, text, &key).await?;
        }
        // Never an automatic answer to an address the sender only claimed (it may be anyone's).
        if routed == Routed::Waiting(WaitReason::OutsideBusinessHours) && !m.identity.unverified {
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
    async fn route(
        &self,
        notify: &dyn NotificationQueue,
        ws: &WorkspaceId,
        conversation: ConversationId,
        known: Known,
    ) -> Result<Routed, Error> {
        let mut known = Some(known);
        for attempt in 0..MAX_ATTEMPTS {
            crate::pause(attempt).await;
            let start = known.take().unwrap_or_default();
            match route_known(self.store, notify, ws, conversation, start, (self.clock)()).await {
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
        let proven = m.metadata.get(webchat::META_VISITOR_EMAIL_PROVEN).and_then(|v| v.as_bool()) == Some(true);
        if proven {
            // They opened the link mailed to it: the address is theirs (linked proven, or their
            // contact merged into the customer who holds it).
            if !contact.identities.contains(&domain::model::Identity::email(&email)) {
                let system = domain::audit::AuditEntry::system();
                match webchat::link_proven(self.store, &m.workspace, contact.id, &email, &system, m.received_at).await {
                    Ok(outcome) => {
                        tracing::info!(workspace = %m.workspace, contact = %contact.id, ?outcome, "web chat visitor's proven email");
                    }
                    Err(domain::contacts::ContactError::Store(e)) => return Err(Error::Store(e)),
                    // The message is stored either way; a refusal (too many identities) is for an agent.
                    Err(why) => {
                        tracing::warn!(workspace = %m.workspace, contact = %contact.id, %why, "proven email not linked")
                    }
                }
            }
            return Ok(());
        }
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
        let hash = format!("{kind}:{key}");
        let compose =
            |c: Conversation, now: OffsetDateTime| async move { self.compose_auto_reply(m, &c, kind, text, now).await };
        match reply::queue_system(
            self.store,
            self.outbound,
            &m.workspace,
            conversation,
            key,
            &hash,
            self.clock,
            compose,
        )
        .await
        {
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
        let counted = (self.usage_so_far)();
        let composed =
            reply::system_message(self.store, self.rates, conversation, route, kind, text, counted, None, now).await?;
        Ok(Some(composed))
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

    /// A customer message waits for an answer: the service-level clocks that should run and do not
    /// start (by the workspace's policy, in the conversation's hours). The timers of the clocks
    /// started, to start once the write is stored.
    fn start_clocks(
        setup: &domain::sla::Setup,
        c: &mut Conversation,
        channel: Channel,
        at: OffsetDateTime,
    ) -> Vec<Timer> {
        let running = |k: &Option<domain::sla::Clock>| k.as_ref().is_some_and(domain::sla::Clock::is_running);
        if running(&c.sla.response) && running(&c.sla.resolution) {
            return vec![];
        }
        let before = c.sla.last_clock_id;
        setup.clocks_for(c).customer_wrote(c, channel, at);
        domain::sla::timers(c).into_iter().filter(|t| t.clock_id > before).collect()
    }

    /// Stores one message (or recognises it as stored): the single conditional write of ingest.
    async fn store_message(&self, m: &InboundMessage) -> Result<(Ingested, Known, Vec<Timer>), StoreError> {
        let store = self.store;
        let ws = &m.workspace;
        // A message in parts (a voicemail) looks itself up first: a later part completes it. Any
        // other duplicate is caught by the commit's condition on its dedup item, not a read.
        if m.completes {
            if let Some((conversation, message)) =
                store.provider_message(ws, &m.provider, &m.provider_message_id).await?
            {
                self.complete(m, conversation, message).await?;
                return Ok((Ingested::Duplicate { conversation, message }, Known::default(), vec![]));
            }
        }
        // The workspace's settings (service levels, redaction), from the container's cache.
        let settings = self.sla.settings(store, ws).await?;
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
        // A survey answer (`domain::csat`): the whole message is a score and a survey waits for
        // it — in the current conversation, or the one it replaced if nobody wrote to the customer
        // since. It joins the surveyed conversation without reopening it.
        let answer = match (m.text.as_deref().and_then(domain::csat::parse_score), current.as_ref(), &hinted) {
            (Some(score), Some(cur), None) => match domain::csat::answer_target(cur, m.channel, at) {
                Some(domain::csat::AnswerTarget::This) => Some((cur.clone(), score)),
                Some(domain::csat::AnswerTarget::Replaced(id)) => store
                    .conversation(ws, id)
                    .await?
                    .filter(|c| c.csat.as_ref().is_some_and(|s| s.awaits(m.channel, at)))
                    .map(|c| (c, score)),
                None => None,
            },
            _ => None,
        };
        // An NPS answer (`domain::nps`): a whole 0–10 message while the contact's question waits
        // on this channel; it joins the conversation the question was asked in. (The contact is
        // read only for such messages.)
        let nps_answer = match (&answer, m.text.as_deref().and_then(domain::nps::parse_score), &new_contact, &hinted) {
            (None, Some(score), None, None) => {
                let waiting =
                    store.contact(ws, contact_id).await?.and_then(|c| c.nps).filter(|s| s.awaits(m.channel, at));
                match waiting {
                    Some(s) => store.conversation(ws, s.conversation_id).await?.map(|c| (c, score)),
                    None => None,
                }
            }
            _ => None,
        };
        let answered = answer.as_ref().map(|(_, score)| *score);
        let nps = nps_answer.as_ref().map(|(_, score)| NpsAnswer { score: *score, contact: contact_id });
        let target = match (answer.or(nps_answer), thread_hinted(current.as_ref(), hinted.as_ref(), contact_id)) {
            (Some((c, _)), _) => Some(c),
            (None, Threading::Append(id)) => [hinted, current.clone()].into_iter().flatten().find(|c| c.id == id),
            (None, Threading::StartNew) => None,
        };
        let mut classified_with = None;
        let mut timers = vec![];
        let (write, conversation_id, new_conversation, assignee, needs_routing) = match target {
            Some(mut c) if answered.is_some() || nps.is_some() => {
                let expected_version = c.version;
                match answered {
                    Some(score) => domain::csat::record_answer(&mut c, score, at),
                    None => domain::csat::record_survey_answer(&mut c, at),
                }
                let (id, assignee) = (c.id, c.assignee.clone());
                (ConversationWrite::Update { conversation: c, expected_version }, id, false, assignee, false)
            }
            Some(mut c) => {
                let expected_version = c.version;
                c.record_inbound(route.clone(), at);
                timers = Self::start_clocks(&settings.setup, &mut c, m.channel, at);
                let (id, assignee) = (c.id, c.assignee.clone());
                let needs_routing = assignee.is_none() && c.waiting_since.is_none();
                (ConversationWrite::Update { conversation: c, expected_version }, id, false, assignee, needs_routing)
            }
            None => {
                let previous = current;
                let mut c = Conversation::start_for(ws.clone(), contact_id, at);
                c.record_inbound(route.clone(), at);
                if m.identity.unverified {
                    // Its own conversation, flagged: the sender only claimed who they are.
                    c.tags.insert(TAG_UNVERIFIED_SENDER.to_owned());
                }
                // Team and skills are decided once, from the channel and the first message.
                let rules = store.routing_rules(ws).await?;
                rules.classify(&mut c, m.channel, m.text.as_deref().unwrap_or(""));
                classified_with = Some(rules);
                timers = Self::start_clocks(&settings.setup, &mut c, m.channel, at);
                c.previous_owner = previous.as_ref().and_then(|p| p.assignee.clone());
                // A survey the replaced conversation still waits for may yet be answered there.
                c.pending_survey = previous
                    .as_ref()
                    .filter(|p| p.csat.as_ref().is_some_and(|s| s.awaits(m.channel, at)))
                    .map(|p| p.id);
                let id = c.id;
                (ConversationWrite::Create { conversation: c, replaces: previous.map(|p| p.id) }, id, true, None, true)
            }
        };
        let mut message = Message::received(m, conversation_id, contact_id, route);
        if let Some(score) = answered {
            message.metadata.insert(META_CSAT_SCORE.to_owned(), score.into());
        }
        if let Some(a) = nps {
            message.metadata.insert(META_NPS_SCORE.to_owned(), a.score.into());
        }
        // What customers should never have typed (cards, IBANs, the workspace's patterns) is masked
        // before anything is stored.
        if let Some(text) = &message.text {
            if let Some(r) = settings.redactor.redact(text) {
                message.text = Some(r.text);
                message.metadata.insert(META_REDACTED.to_owned(), r.kinds.into());
            }
        }
        if m.identity.unverified {
            message.metadata.insert(META_SENDER_UNVERIFIED.to_owned(), true.into());
        }
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
        // (An answer goes to the surveyed conversation, which may not be the current one.)
        let hint =
            (answered.is_none() && nps.is_none() && (new_conversation || !hint_fresh)).then(|| m.identity.clone());
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
                    answered,
                    nps,
                },
                known,
                timers,
            )),
            Err(StoreError::Duplicate) => {
                // A concurrent delivery of the same provider message won: report what it stored.
                match store.provider_message(ws, &m.provider, &m.provider_message_id).await? {
                    Some((conversation, message)) => {
                        Ok((Ingested::Duplicate { conversation, message }, Known::default(), vec![]))
                    }
                    None => Err(StoreError::Conflict),
                }
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::events::InboundMessage;
    use domain::finance::Usage;
    use domain::ports::{ConversationReader, InboundStore, Order};
    use domain::{Identity, PhoneNumber};
    use queue::memory::MemoryQueue;
    use std::sync::Arc;
    use store::MemoryStore;

    /// What the inbound processor holds per container, on the in-memory store and queue.
    struct Deps {
        store: Arc<MemoryStore>,
        queue: Arc<MemoryQueue>,
        rates: RateCardCache,
        budgets: crate::cache::BudgetCache,
        sla: crate::cache::SlaCache,
        timers: Arc<timers::RecordingTimers>,
    }

    fn deps() -> (Deps, Arc<MemoryStore>, Arc<MemoryQueue>) {
        let s = Arc::new(MemoryStore::new());
        let q = Arc::new(MemoryQueue::new());
        let d = Deps {
            store: s.clone(),
            queue: q.clone(),
            rates: Default::default(),
            budgets: Default::default(),
            sla: Default::default(),
            timers: Default::default(),
        };
        (d, s, q)
    }

    async fn ingest(d: &Deps, event: InboundEvent) -> Result<Ingested, Error> {
        let use_case = Ingest {
            store: &*d.store,
            notifications: &*d.queue,
            outbound: &*d.queue,
            rates: &d.rates,
            budgets: &d.budgets,
            sla: &d.sla,
            timers: &*d.timers,
            help_text: domain::consent::DEFAULT_HELP_TEXT,
            usage_so_far: &Usage::default,
            clock: &OffsetDateTime::now_utc,
        };
        use_case.event(event).await
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
            received_at: OffsetDateTime::now_utc(),
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
        assert_eq!(answer.sender, domain::model::Sender::System);
        assert!(answer.cost.is_some(), "priced like any message");
        assert_eq!(conv.unread_count, 2, "an automatic answer marks nothing read");
    }

    #[tokio::test]
    async fn help_answers_with_the_workspace_text_when_its_admins_set_one() {
        use domain::ports::WorkspaceStore;
        let (deps, store, _q) = deps();
        let own = "Acme support, Mon-Fri 9-5. Reply STOP to opt out.";
        let settings = domain::workspace::Settings { help_text: Some(own.into()), ..Default::default() };
        store.put_workspace_settings(&ws(), &settings).await.unwrap();
        let from = "+14155552672";
        ingest(&deps, inbound("SM00000000000000000000000000000021", from, "HELP")).await.unwrap();
        let conv = conversation_of(&store, from).await;
        let msgs = store.messages(&ws(), conv.id, Order::Oldest, 10, None).await.unwrap().items;
        let answer = msgs.iter().find(|m| m.direction == Direction::Outbound).expect("the answer");
        assert_eq!(answer.text.as_deref(), Some(own));
    }

    async fn conversation_of(store: &MemoryStore, from: &str) -> Conversation {
        let p = PhoneNumber::parse(from).unwrap();
        let contact = store.contact_by_identity(&ws(), &Identity::phone(&p)).await.unwrap().unwrap();
        store.current_conversation(&ws(), &contact).await.unwrap().unwrap()
    }

    /// Resolves the sender's current conversation and asks its survey as the notifier does.
    async fn resolve_and_ask(deps: &Deps, store: &MemoryStore, from: &str) -> Conversation {
        let conv = conversation_of(store, from).await;
        let mut resolved = conv.clone();
        resolved.status = domain::ConversationStatus::Resolved;
        store::contract::replace_conversation(store, &conv, resolved).await;
        let links = crate::csat::Links { base_url: "https://api.example.com".into(), key: b"k".to_vec() };
        let asker = crate::csat::Asker { store, outbound: &*deps.queue, rates: &deps.rates, links: &links };
        let now = OffsetDateTime::now_utc();
        assert_eq!(asker.ask(&ws(), conv.id, now).await.unwrap(), crate::csat::Asked::Asked(domain::Channel::Sms));
        assert_eq!(asker.ask(&ws(), conv.id, now).await.unwrap(), crate::csat::Asked::Skipped, "asked once");
        store.conversation(&ws(), conv.id).await.unwrap().unwrap()
    }

    fn rated(q: &MemoryQueue) -> Vec<(ConversationId, u8)> {
        q.sent()
            .into_iter()
            .filter(|(_, _, b)| b["type"] == "csat_received")
            .map(|(_, _, b)| {
                (
                    ConversationId::parse(b["conversation_id"].as_str().unwrap()).unwrap(),
                    b["score"].as_u64().unwrap() as u8,
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn a_score_answers_the_survey_without_reopening_and_other_text_is_an_ordinary_message() {
        let (deps, store, q) = deps();
        let from = "+14155552690";
        ingest(&deps, inbound("SM00000000000000000000000000000071", from, "My parcel is late")).await.unwrap();
        let surveyed = resolve_and_ask(&deps, &store, from).await;
        let survey = surveyed.csat.clone().expect("the survey is on the conversation");
        assert_eq!(survey.channel, domain::Channel::Sms);
        let question = store.message(&ws(), surveyed.id, survey.message_id).await.unwrap().unwrap();
        assert_eq!(question.text.as_deref(), Some(domain::csat::DEFAULT_QUESTION));
        assert!(question.cost.is_some(), "priced like any message");
        assert_eq!(question.metadata["auto_reply"], "csat");

        let out = ingest(&deps, inbound("SM00000000000000000000000000000072", from, "4")).await.unwrap();
        assert!(
            matches!(out, Ingested::Stored { answered: Some(4), new_conversation: false, needs_routing: false, .. }),
            "{out:?}"
        );
        let after = store.conversation(&ws(), surveyed.id).await.unwrap().unwrap();
        assert_eq!(after.status, domain::ConversationStatus::Resolved, "an answer does not reopen");
        assert_eq!(after.csat.as_ref().and_then(|s| s.score), Some(4));
        assert_eq!(rated(&q), [(surveyed.id, 4)]);
        let msgs = store.messages(&ws(), surveyed.id, Order::Oldest, 10, None).await.unwrap().items;
        assert_eq!(msgs.last().unwrap().metadata[META_CSAT_SCORE], 4, "the answer is kept, tagged");

        // Answered: the next "5" and any other text are ordinary messages in a new conversation.
        ingest(&deps, inbound("SM00000000000000000000000000000073", from, "5")).await.unwrap();
        let next = conversation_of(&store, from).await;
        assert_ne!(next.id, surveyed.id);
        assert_eq!(rated(&q).len(), 1);
    }

    #[tokio::test]
    async fn a_late_score_reaches_the_surveyed_conversation_unless_someone_wrote_in_the_new_one() {
        let (deps, store, q) = deps();
        let from = "+14155552691";
        ingest(&deps, inbound("SM00000000000000000000000000000081", from, "Where is my refund?")).await.unwrap();
        let surveyed = resolve_and_ask(&deps, &store, from).await;
        // Not a score: never swallowed; it opens a new conversation that remembers the survey.
        ingest(&deps, inbound("SM00000000000000000000000000000082", from, "4 items are missing")).await.unwrap();
        let newer = conversation_of(&store, from).await;
        assert_ne!(newer.id, surveyed.id);
        assert_eq!(newer.pending_survey, Some(surveyed.id));
        // Nobody has written to the customer in the new one yet: "3" is the survey's answer.
        ingest(&deps, inbound("SM00000000000000000000000000000083", from, "3")).await.unwrap();
        assert_eq!(rated(&q), [(surveyed.id, 3)]);
        let old = store.conversation(&ws(), surveyed.id).await.unwrap().unwrap();
        assert_eq!(old.csat.and_then(|s| s.score), Some(3));
        assert_eq!(conversation_of(&store, from).await.id, newer.id, "the new conversation stays current");
    }

    #[tokio::test]
    async fn the_nps_run_asks_the_segment_once_per_cadence_and_a_0_to_10_answer_lands_on_the_contact() {
        use domain::ports::RoutingStore;
        let (deps, store, q) = deps();
        let mut rules = domain::routing::RoutingRules::default();
        rules.csat.enabled = false;
        rules.nps.enabled = true;
        store.put_routing_rules(&ws(), &rules).await.unwrap();
        let (done, busy) = ("+14155552692", "+14155552693");
        ingest(&deps, inbound("SM00000000000000000000000000000091", done, "Thanks for the help")).await.unwrap();
        ingest(&deps, inbound("SM00000000000000000000000000000092", busy, "Still waiting")).await.unwrap();
        let conv = conversation_of(&store, done).await;
        let mut resolved = conv.clone();
        resolved.status = domain::ConversationStatus::Resolved;
        store::contract::replace_conversation(&*store, &conv, resolved).await;
        let runner = crate::nps::Runner { store: &*store, outbound: &*deps.queue, rates: &deps.rates };
        let now = OffsetDateTime::now_utc();
        let ran = runner.run_all(now).await.unwrap();
        assert_eq!(ran[&ws()], crate::nps::Ran { segment: 1, asked: 1 }, "the open conversation is not in the segment");
        assert_eq!(runner.run(&ws(), now).await.unwrap().asked, 0, "once per cadence");
        let questions: Vec<_> =
            q.sent().into_iter().filter(|(_, _, b)| b.get("task").is_some_and(|t| t == "send")).collect();
        assert_eq!(questions.len(), 1);

        let out = ingest(&deps, inbound("SM00000000000000000000000000000093", done, "9")).await.unwrap();
        assert!(
            matches!(out, Ingested::Stored { nps: Some(NpsAnswer { score: 9, .. }), new_conversation: false, .. }),
            "{out:?}"
        );
        let p = PhoneNumber::parse(done).unwrap();
        let contact = store.contact_by_identity(&ws(), &Identity::phone(&p)).await.unwrap().unwrap();
        assert_eq!(contact.nps.as_ref().and_then(|s| s.score), Some(9));
        let after = store.conversation(&ws(), conv.id).await.unwrap().unwrap();
        assert_eq!(after.status, domain::ConversationStatus::Resolved, "not reopened");
        // Answered: a later number is an ordinary message.
        ingest(&deps, inbound("SM00000000000000000000000000000094", done, "10")).await.unwrap();
        assert_ne!(conversation_of(&store, done).await.id, conv.id);
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
            id: domain::AgentId::parse(id).unwrap(),
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
        assert_eq!(billing.assignee.as_ref().map(domain::AgentId::as_str), Some("bob"), "the skill decides");
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
    async fn follow_ups_join_the_open_conversation_and_duplicates_store_nothing() {
        let (deps, s, _) = deps();
        let a = ingest(&deps, inbound("SM00000000000000000000000000000001", "+14155552671", "one")).await.unwrap();
        let b = ingest(&deps, inbound("SM00000000000000000000000000000002", "+14155552671", "two")).await.unwrap();
        let again = ingest(&deps, inbound("SM00000000000000000000000000000001", "+14155552671", "one")).await.unwrap();
        let (
            Ingested::Stored {
                conversation: c1,
                message: m1,
                new_conversation: true,
                needs_routing: true,
                answered: None,
                nps: None,
            },
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

    #[tokio::test]
    async fn a_message_sent_from_the_providers_inbox_joins_the_thread_as_ours_once() {
        let (deps, s, _) = deps();
        let echo = || {
            let InboundEvent::Message(mut m) = inbound("SM000000000000000000000000000000e1", "+14155552671", "On it!")
            else {
                unreachable!()
            };
            m.metadata.insert(domain::channels::meta::SENT_FROM_META_INBOX.into(), serde_json::Value::Bool(true));
            InboundEvent::Message(m)
        };
        // Nobody is talking to them: nothing to record it in.
        assert_eq!(ingest(&deps, echo()).await.unwrap(), Ingested::Status { applied: false });
        let Ingested::Stored { conversation, .. } =
            ingest(&deps, inbound("SM00000000000000000000000000000001", "+14155552671", "Help?")).await.unwrap()
        else {
            panic!("stored")
        };
        assert!(matches!(ingest(&deps, echo()).await.unwrap(), Ingested::Stored { new_conversation: false, .. }));
        assert_eq!(ingest(&deps, echo()).await.unwrap(), Ingested::Status { applied: false }, "stored once");
        let msgs = s.messages(&ws(), conversation, Order::Oldest, 10, None).await.unwrap().items;
        assert_eq!(msgs.len(), 2);
        assert_eq!((msgs[1].direction, msgs[1].status), (Direction::Outbound, DeliveryStatus::Sent));
        assert_eq!(msgs[1].text.as_deref(), Some("On it!"));
        let c = s.conversation(&ws(), conversation).await.unwrap().unwrap();
        assert_eq!(c.unread_count, 0, "answered from the provider's inbox");
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
                at: OffsetDateTime::now_utc(),
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
    async fn a_notification_outage_is_retried_and_the_retry_does_not_store_twice() {
        let (deps, s, q) = deps();
        q.fail(true);
        let ev = inbound("SM00000000000000000000000000000003", "+14155552671", "one");
        assert!(matches!(ingest(&deps, ev.clone()).await, Err(e) if e.is_retryable()));
        q.fail(false);
        let Ingested::Duplicate { conversation, .. } = ingest(&deps, ev).await.unwrap() else {
            panic!("duplicate expected")
        };
        assert_eq!(s.messages(&ws(), conversation, Order::Oldest, 10, None).await.unwrap().items.len(), 1);
        let created = q.sent().iter().filter(|(_, _, b)| b["type"] == "message_created").count();
        assert_eq!(created, 1, "the retry announced it");
    }

    #[tokio::test]
    async fn a_waiting_customer_starts_one_timer_per_clock_and_follow_ups_start_none() {
        let (d, s, _) = deps();
        let from = "+14155552690";
        let first = ingest(&d, inbound("SM00000000000000000000000000000091", from, "hello?")).await.unwrap();
        let conv = first.conversation().unwrap();
        let started = d.timers.sla_started();
        assert_eq!(started.len(), 2, "first response and resolution");
        let c = s.conversation(&ws(), conv).await.unwrap().unwrap();
        let r = c.sla.response.as_ref().unwrap();
        assert_eq!(r.kind, domain::sla::ClockKind::FirstResponse);
        assert_eq!(r.target_secs, 3600, "SMS: an hour by default");
        ingest(&d, inbound("SM00000000000000000000000000000092", from, "anyone?")).await.unwrap();
        assert_eq!(d.timers.sla_started().len(), 2, "a follow-up while waiting starts nothing");
        // A redelivery starts the running clocks' timers again (the same names: one timer each).
        ingest(&d, inbound("SM00000000000000000000000000000091", from, "hello?")).await.unwrap();
        assert_eq!(d.timers.sla_started().len(), 2);
        // Timers that cannot start fail the event, so the queue redelivers it.
        d.timers.fail(true);
        let other = ingest(&d, inbound("SM00000000000000000000000000000093", "+14155552691", "hi")).await;
        assert!(matches!(other, Err(e) if e.is_retryable()));
    }

    #[tokio::test]
    async fn a_claimed_address_never_reaches_the_customers_thread() {
        let (d, s, _) = deps();
        let email = domain::EmailAddress::parse("ann@example.com").unwrap();
        let message = |id: &str, identity: Identity| {
            let InboundEvent::Message(mut m) = inbound(id, "+14155552699", "hi") else { unreachable!() };
            m.channel = Channel::Email;
            m.contact_address = email.as_str().to_owned();
            m.our_address = "support@acme.example".into();
            m.identity = identity;
            InboundEvent::Message(m)
        };
        let real = ingest(&d, message("<real-1@example.com>", Identity::email(&email))).await.unwrap();
        let forged = ingest(&d, message("form-1", Identity::email(&email).claimed())).await.unwrap();
        let (real_conv, forged_conv) = (real.conversation().unwrap(), forged.conversation().unwrap());
        assert_ne!(real_conv, forged_conv, "its own conversation");
        assert_eq!(s.messages(&ws(), real_conv, Order::Oldest, 10, None).await.unwrap().items.len(), 1);
        let flagged = s.conversation(&ws(), forged_conv).await.unwrap().unwrap();
        assert!(flagged.tags.contains(TAG_UNVERIFIED_SENDER));
        assert_ne!(flagged.contact_id, s.conversation(&ws(), real_conv).await.unwrap().unwrap().contact_id);
        let m = &s.messages(&ws(), forged_conv, Order::Oldest, 10, None).await.unwrap().items[0];
        assert_eq!(m.metadata[META_SENDER_UNVERIFIED], true);
        // The forger's contact is told who holds the proven address: an agent's merge to make.
        let (_, suggested) = domain::contacts::suggest(&*s, &ws(), flagged.contact_id).await.unwrap();
        assert_eq!(suggested[0].1.id, s.conversation(&ws(), real_conv).await.unwrap().unwrap().contact_id);
        // And the real customer's next mail still goes to their own thread.
        let next = ingest(&d, message("<real-2@example.com>", Identity::email(&email))).await.unwrap();
        assert_eq!(next.conversation(), Some(real_conv));
    }

    #[tokio::test]
    async fn card_numbers_are_masked_before_anything_is_stored() {
        let (d, s, _) = deps();
        let out = ingest(
            &d,
            inbound("SM00000000000000000000000000000071", "+14155552677", "card 4111 1111 1111 1111 thanks"),
        )
        .await
        .unwrap();
        let m = &s.messages(&ws(), out.conversation().unwrap(), Order::Oldest, 1, None).await.unwrap().items[0];
        assert_eq!(m.text.as_deref(), Some("card [card ••••1111] thanks"));
        assert_eq!(m.metadata[META_REDACTED], serde_json::json!(["card"]));
    }
}
