//! What travels on the queues. Each payload is versioned by its `type` tag so consumers can reject
//! what they do not understand as a permanent failure instead of retrying it forever.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::finance::ledger::Month;
use crate::finance::{BudgetScope, Currency, Micros, Usage};
use crate::ids::{AgentId, ConversationId, MessageId, WorkspaceId};
use crate::model::{Attachment, Channel, DeliveryEvent, DeliveryStatus, Direction, Identity};
use crate::routing::Presence;

/// An agent's weighted load against their capacity (hundredths of a conversation, as routing counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentLoad {
    pub load: u32,
    pub capacity: u32,
}

/// A stretch of time an agent was online.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OnlinePeriod {
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
}

/// A customer message, normalised by a channel adapter, on the inbound FIFO queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InboundMessage {
    pub workspace: WorkspaceId,
    pub channel: Channel,
    pub identity: Identity,
    pub contact_address: String,
    /// The contact address's country for phone channels (ISO 3166 alpha-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_country: Option<String>,
    pub our_address: String,
    pub contact_name: Option<String>,
    pub provider: String,
    pub provider_message_id: String,
    pub text: Option<String>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// Structured content (locations, shared contacts, button replies, reactions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rich: Option<serde_json::Value>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub provider_timestamp: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// AWS usage spent on the message before it reached the queue (the webhook).
    #[serde(default, skip_serializing_if = "Usage::is_empty")]
    pub usage: Usage,
    /// The conversation an email names itself (Reply-To token, In-Reply-To, References).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<crate::channels::email::EmailThread>,
    /// One part of a message that arrives in parts (a voicemail's recording and transcript, under
    /// one provider id): if the message is stored already, this fills in what it lacks (text,
    /// attachments, metadata) instead of being dropped as a duplicate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub completes: bool,
}

impl InboundMessage {
    /// FIFO group: one sender identity in one workspace. Messages from one person stay in order;
    /// different people are processed in parallel.
    pub fn group_id(&self) -> String {
        format!("{}:{}:{}", self.workspace, self.identity.kind.as_str(), self.identity.value)
    }
    /// FIFO deduplication: the provider's own id, so a webhook retried within five minutes is dropped
    /// by SQS itself (and anything later by the store's dedup item).
    pub fn dedup_id(&self) -> String {
        if self.completes {
            // Each part of a message in parts is its own queue message (a retry of one is not).
            let part = match (self.text.is_some(), self.attachments.is_empty()) {
                (true, true) => "text",
                (false, false) => "files",
                (true, false) => "text+files",
                (false, true) => "meta",
            };
            return format!("{}:{}:{part}", self.provider, self.provider_message_id);
        }
        format!("{}:{}", self.provider, self.provider_message_id)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// One event at a time, parsed from and written to a queue: boxing the message would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum InboundEvent {
    Message(InboundMessage),
    /// A provider's delivery status for one of our messages (WhatsApp and Telegram report them on
    /// the same webhook as messages; Twilio's status callbacks are applied by their own function).
    Status(StatusUpdate),
    /// A consent change that comes with no message: the provider suppressed an address (an email
    /// hard bounce or complaint).
    Consent(ConsentUpdate),
    /// The customer read everything we sent them on a channel up to a time (Messenger's read
    /// watermark, which names no message).
    ReadUpTo(ReadUpTo),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReadUpTo {
    pub workspace: WorkspaceId,
    pub channel: Channel,
    pub reader: Identity,
    #[serde(with = "time::serde::rfc3339")]
    pub up_to: OffsetDateTime,
}

impl ReadUpTo {
    pub fn group_id(&self) -> String {
        format!("{}:{}:{}", self.workspace, self.reader.kind.as_str(), self.reader.value)
    }
    pub fn dedup_id(&self) -> String {
        let ms = self.up_to.unix_timestamp_nanos() / 1_000_000;
        format!("read:{}:{}:{ms}", self.channel, self.reader.value)
    }
}

/// A change to an identity's consent record, applied in that person's FIFO group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsentUpdate {
    pub workspace: WorkspaceId,
    pub identity: Identity,
    pub change: crate::consent::Change,
}

impl ConsentUpdate {
    pub fn group_id(&self) -> String {
        format!("{}:{}:{}", self.workspace, self.identity.kind.as_str(), self.identity.value)
    }
    /// One change per source event (a redelivered bounce changes nothing twice).
    pub fn dedup_id(&self) -> String {
        let source = match &self.change.source {
            crate::consent::Source::Provider { provider, provider_message_id, reason } => {
                format!("{provider}:{provider_message_id}:{reason}")
            }
            other => format!("{other:?}"),
        };
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{}:{}:{source}", self.identity.kind.as_str(), self.identity.value));
        format!("consent:{}", hex::encode(&digest[..16]))
    }
}

impl InboundEvent {
    pub fn workspace(&self) -> &WorkspaceId {
        match self {
            InboundEvent::Message(m) => &m.workspace,
            InboundEvent::Status(s) => &s.workspace,
            InboundEvent::Consent(c) => &c.workspace,
            InboundEvent::ReadUpTo(r) => &r.workspace,
        }
    }
    pub fn group_id(&self) -> String {
        match self {
            InboundEvent::Message(m) => m.group_id(),
            InboundEvent::Status(s) => s.group_id(),
            InboundEvent::Consent(c) => c.group_id(),
            InboundEvent::ReadUpTo(r) => r.group_id(),
        }
    }
    pub fn dedup_id(&self) -> String {
        match self {
            InboundEvent::Message(m) => m.dedup_id(),
            InboundEvent::Status(s) => s.dedup_id(),
            InboundEvent::Consent(c) => c.dedup_id(),
            InboundEvent::ReadUpTo(r) => r.dedup_id(),
        }
    }
}

/// A delivery status for one of our outbound messages, found by the provider's id for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusUpdate {
    pub workspace: WorkspaceId,
    pub channel: Channel,
    pub provider: String,
    pub provider_message_id: String,
    pub recipient: Identity,
    pub event: DeliveryEvent,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, serde_json::Value>,
}

impl StatusUpdate {
    /// The recipient's group: a status queues behind that person's own messages.
    pub fn group_id(&self) -> String {
        format!("{}:{}:{}", self.workspace, self.recipient.kind.as_str(), self.recipient.value)
    }
    pub fn dedup_id(&self) -> String {
        format!("{}:{}:{}", self.provider, self.provider_message_id, self.event.status.as_str())
    }
}

/// What the outbound sender does with a message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutboundTask {
    /// Send a queued reply.
    #[default]
    Send,
    /// Ask the provider what a finished message cost and reconcile it with the estimate.
    FetchPrice,
}

/// Work for the outbound sender: a reply stored as queued, or a price to fetch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutboundJob {
    pub workspace: WorkspaceId,
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    #[serde(default)]
    pub task: OutboundTask,
    /// AWS usage spent on the message before this job (the API request that created it).
    #[serde(default, skip_serializing_if = "Usage::is_empty")]
    pub usage: Usage,
}

impl OutboundJob {
    pub fn send(workspace: WorkspaceId, conversation_id: ConversationId, message_id: MessageId, usage: Usage) -> Self {
        Self { workspace, conversation_id, message_id, task: OutboundTask::Send, usage }
    }
    pub fn fetch_price(workspace: WorkspaceId, conversation_id: ConversationId, message_id: MessageId) -> Self {
        Self { workspace, conversation_id, message_id, task: OutboundTask::FetchPrice, usage: Usage::default() }
    }
    /// Sends: one group per conversation, so replies in one conversation leave in the order agents
    /// sent them. Price lookups: one group per message, so a price not yet known (retried later)
    /// never holds up a conversation's replies.
    pub fn group_id(&self) -> String {
        match self.task {
            OutboundTask::Send => format!("{}:{}", self.workspace, self.conversation_id),
            OutboundTask::FetchPrice => format!("{}:price:{}", self.workspace, self.message_id),
        }
    }
    pub fn dedup_id(&self) -> String {
        match self.task {
            OutboundTask::Send => self.message_id.to_string(),
            OutboundTask::FetchPrice => format!("price:{}", self.message_id),
        }
    }
}

/// Events for agents' screens and integrations, on the notification FIFO queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notification {
    MessageCreated {
        workspace: WorkspaceId,
        conversation_id: ConversationId,
        message_id: MessageId,
        direction: Direction,
        channel: Channel,
        /// The message opened its conversation (outbound webhooks announce `conversation.created`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        opened: bool,
    },
    DeliveryStatusChanged {
        workspace: WorkspaceId,
        conversation_id: ConversationId,
        message_id: MessageId,
        status: DeliveryStatus,
    },
    /// A stored message was completed (a voicemail's transcript or audio arrived): `filled` names
    /// what (`text`, `attachments`).
    MessageUpdated { workspace: WorkspaceId, conversation_id: ConversationId, message_id: MessageId, filled: String },
    /// A budget's spend reached one of its thresholds this month: for supervisors and for outbound
    /// webhooks. Emitted once per (month, scope, threshold).
    BudgetThresholdReached {
        workspace: WorkspaceId,
        month: Month,
        scope: BudgetScope,
        threshold_percent: u8,
        spent_micros: Micros,
        limit_micros: Micros,
        currency: Currency,
        hard_stop: bool,
    },
    /// A conversation's owner, status, priority, tags or notes changed.
    ConversationChanged {
        workspace: WorkspaceId,
        conversation_id: ConversationId,
        change: ConversationChange,
        actor: AgentId,
        assignee: Option<AgentId>,
        /// The owner before a transfer or unassignment: their screens drop it.
        previous_assignee: Option<AgentId>,
        version: u64,
        /// On an assignment: the new owner's load against their capacity, the assignment included
        /// (analytics' utilisation).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        load: Option<AgentLoad>,
    },
    /// An agent is typing in, or viewing, a conversation (seed 001's soft lock).
    AgentActivity {
        workspace: WorkspaceId,
        conversation_id: ConversationId,
        agent: AgentId,
        name: Option<String>,
        activity: Activity,
        /// Unique per event: repeated typing is not a duplicate.
        id: String,
    },
    /// The customer is typing (web chat visitors tell us; no other channel does).
    ContactTyping {
        workspace: WorkspaceId,
        conversation_id: ConversationId,
        typing: bool,
        /// Unique per event: repeated typing is not a duplicate.
        id: String,
    },
    PresenceChanged {
        workspace: WorkspaceId,
        agent: AgentId,
        presence: Presence,
        id: String,
        /// The online period this change ended, if the agent was online (analytics' online time).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        online: Option<OnlinePeriod>,
    },
    /// A service-level clock passed its warning threshold: the assignee and supervisors see what is
    /// about to breach.
    SlaWarning {
        workspace: WorkspaceId,
        conversation_id: ConversationId,
        clock: crate::sla::ClockKind,
        clock_id: u32,
        #[serde(with = "time::serde::rfc3339")]
        due_at: OffsetDateTime,
        assignee: Option<AgentId>,
    },
    /// A service-level clock passed its due time; `actions` names what the policy did about it.
    SlaBreached {
        workspace: WorkspaceId,
        conversation_id: ConversationId,
        clock: crate::sla::ClockKind,
        clock_id: u32,
        #[serde(with = "time::serde::rfc3339")]
        due_at: OffsetDateTime,
        assignee: Option<AgentId>,
        actions: Vec<crate::sla::BreachAction>,
    },
    /// A customer rated a conversation: a reply that is a score, or an email rating link (the
    /// comment the rating page offers comes as a second event, with `comment`).
    CsatReceived {
        workspace: WorkspaceId,
        conversation_id: ConversationId,
        score: u8,
        channel: Channel,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// An outbound webhook endpoint failed for a day without a success and was disabled: for
    /// supervisors and admins (and the audit trail).
    WebhookEndpointDisabled {
        workspace: WorkspaceId,
        endpoint_id: String,
        url: String,
        #[serde(with = "time::serde::rfc3339")]
        failing_since: OffsetDateTime,
    },
    /// An internal note was added: for the workspace's agents only, never the customer.
    NoteAdded {
        workspace: WorkspaceId,
        conversation_id: ConversationId,
        note_id: String,
        author: AgentId,
        mentions: Vec<AgentId>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationChange {
    Assigned,
    Queued,
    Unassigned,
    Resolved,
    Reopened,
    Snoozed,
    Updated,
    /// Later messages moved to a new conversation (this is the one they left).
    Split,
    /// Its messages moved into another conversation of the contact.
    Merged,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    Typing,
    StoppedTyping,
    Viewing,
    StoppedViewing,
}

impl Notification {
    pub fn workspace(&self) -> &WorkspaceId {
        match self {
            Notification::MessageCreated { workspace, .. }
            | Notification::DeliveryStatusChanged { workspace, .. }
            | Notification::MessageUpdated { workspace, .. }
            | Notification::SlaWarning { workspace, .. }
            | Notification::SlaBreached { workspace, .. }
            | Notification::BudgetThresholdReached { workspace, .. }
            | Notification::ConversationChanged { workspace, .. }
            | Notification::AgentActivity { workspace, .. }
            | Notification::ContactTyping { workspace, .. }
            | Notification::PresenceChanged { workspace, .. }
            | Notification::WebhookEndpointDisabled { workspace, .. }
            | Notification::CsatReceived { workspace, .. }
            | Notification::NoteAdded { workspace, .. } => workspace,
        }
    }
    /// The conversation the event is about, if any.
    pub fn conversation(&self) -> Option<ConversationId> {
        match self {
            Notification::MessageCreated { conversation_id, .. }
            | Notification::DeliveryStatusChanged { conversation_id, .. }
            | Notification::MessageUpdated { conversation_id, .. }
            | Notification::ConversationChanged { conversation_id, .. }
            | Notification::AgentActivity { conversation_id, .. }
            | Notification::ContactTyping { conversation_id, .. }
            | Notification::SlaWarning { conversation_id, .. }
            | Notification::SlaBreached { conversation_id, .. }
            | Notification::CsatReceived { conversation_id, .. }
            | Notification::NoteAdded { conversation_id, .. } => Some(*conversation_id),
            Notification::BudgetThresholdReached { .. }
            | Notification::PresenceChanged { .. }
            | Notification::WebhookEndpointDisabled { .. } => None,
        }
    }
    pub fn group_id(&self) -> String {
        match self {
            Notification::MessageCreated { workspace, conversation_id, .. }
            | Notification::DeliveryStatusChanged { workspace, conversation_id, .. }
            | Notification::MessageUpdated { workspace, conversation_id, .. }
            | Notification::ConversationChanged { workspace, conversation_id, .. }
            | Notification::AgentActivity { workspace, conversation_id, .. }
            | Notification::ContactTyping { workspace, conversation_id, .. }
            | Notification::SlaWarning { workspace, conversation_id, .. }
            | Notification::SlaBreached { workspace, conversation_id, .. }
            | Notification::CsatReceived { workspace, conversation_id, .. }
            | Notification::NoteAdded { workspace, conversation_id, .. } => {
                format!("{workspace}:{conversation_id}")
            }
            Notification::BudgetThresholdReached { workspace, .. } => format!("{workspace}:budget"),
            Notification::WebhookEndpointDisabled { workspace, endpoint_id, .. } => {
                format!("{workspace}:{endpoint_id}")
            }
            Notification::PresenceChanged { workspace, agent, .. } => format!("{workspace}:presence:{agent}"),
        }
    }
    pub fn dedup_id(&self) -> String {
        match self {
            Notification::MessageCreated { message_id, .. } => format!("created:{message_id}"),
            Notification::DeliveryStatusChanged { message_id, status, .. } => {
                format!("status:{message_id}:{}", status.as_str())
            }
            Notification::MessageUpdated { message_id, filled, .. } => format!("updated:{message_id}:{filled}"),
            Notification::BudgetThresholdReached { month, scope, threshold_percent, .. } => {
                format!("budget:{month}:{}:{threshold_percent}", scope.as_str())
            }
            Notification::ConversationChanged { conversation_id, version, .. } => {
                format!("changed:{conversation_id}:{version}")
            }
            Notification::AgentActivity { id, .. }
            | Notification::ContactTyping { id, .. }
            | Notification::PresenceChanged { id, .. } => format!("live:{id}"),
            Notification::NoteAdded { note_id, .. } => format!("note:{note_id}"),
            Notification::CsatReceived { conversation_id, comment, .. } => {
                format!("csat:{conversation_id}{}", if comment.is_some() { ":comment" } else { "" })
            }
            Notification::WebhookEndpointDisabled { endpoint_id, failing_since, .. } => {
                format!("hook-off:{endpoint_id}:{}", failing_since.unix_timestamp())
            }
            Notification::SlaWarning { conversation_id, clock_id, .. } => format!("sla:{conversation_id}:{clock_id}:w"),
            Notification::SlaBreached { conversation_id, clock_id, .. } => {
                format!("sla:{conversation_id}:{clock_id}:b")
            }
        }
    }
}

/// The longest group or deduplication id SQS FIFO accepts.
pub const FIFO_ID_MAX: usize = 128;

/// A valid SQS FIFO `MessageGroupId` / `MessageDeduplicationId` for `raw`: 1 to 128 printable ASCII
/// characters without space. An id that already is one is kept as it is (readable in the console);
/// any other (a long or non-ASCII email address, a space) becomes `h:` and the SHA-256 of it, so
/// equal inputs still share a group and different inputs never collide — truncating would merge
/// two people into one group, or drop a message as another's duplicate.
pub fn fifo_id(raw: &str) -> String {
    use sha2::Digest;
    let valid = !raw.is_empty() && raw.len() <= FIFO_ID_MAX && raw.bytes().all(|b| b.is_ascii_graphic());
    if valid && !raw.starts_with("h:") {
        return raw.to_owned();
    }
    format!("h:{}", hex::encode(sha2::Sha256::digest(raw.as_bytes())))
}

#[cfg(test)]
mod fifo_id_tests {
    use super::*;
    use proptest::prelude::*;

    fn valid(id: &str) -> bool {
        (1..=FIFO_ID_MAX).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
    }

    #[test]
    fn readable_ids_are_kept_and_others_hashed() {
        assert_eq!(fifo_id("demo:phone:+14155552671"), "demo:phone:+14155552671");
        let long = format!("demo:email:{}@example.com", "a".repeat(150));
        assert!(valid(&fifo_id(&long)) && fifo_id(&long).starts_with("h:"));
        assert!(valid(&fifo_id("demo:email:jörg@bücher.example")));
        assert!(valid(&fifo_id("")));
        assert_ne!(fifo_id("a b"), fifo_id("a_b"), "no two inputs share an id");
    }

    proptest! {
        #[test]
        fn always_valid_stable_and_distinct(a in "\\PC{0,300}", b in "\\PC{0,300}") {
            prop_assert!(valid(&fifo_id(&a)));
            prop_assert_eq!(fifo_id(&a), fifo_id(&a));
            if a != b {
                prop_assert_ne!(fifo_id(&a), fifo_id(&b));
            }
        }
    }
}
