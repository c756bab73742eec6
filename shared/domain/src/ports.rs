//! Ports: the narrow capabilities handlers depend on. `switchboard-store` implements them on DynamoDB
//! and in memory, `switchboard-queue` on SQS; one contract-test suite runs against both stores.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::events::{InboundEvent, Notification, OutboundJob};
use crate::finance::ledger::{Counter, Grouping, Month};
use crate::finance::ratecard::RateCard;
use crate::finance::{Budget, BudgetScope, LedgerEntry, Totals};
use crate::ids::{AgentId, ContactId, ConversationId, IdempotencyKey, MessageId, WorkspaceId};
use crate::model::{Channel, Contact, Conversation, ConversationStatus, DeliveryEvent, Identity, Message};

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The item this write creates already exists (a provider message seen before, an idempotency
    /// key used before). The caller's retry is already done.
    #[error("already stored")]
    Duplicate,
    /// A concurrent writer got there first; re-read and try again.
    #[error("conflicting concurrent write")]
    Conflict,
    #[error("invalid pagination cursor")]
    BadCursor,
    /// Throttling, timeouts, service errors: worth retrying.
    #[error("store unavailable")]
    Unavailable(#[source] BoxError),
    /// The request itself was refused (validation, permissions): retrying will not help.
    #[error("store rejected the request")]
    Rejected(#[source] BoxError),
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
    /// The store refused what we asked to write as invalid for good (DynamoDB's `ValidationError`:
    /// an item over 400 KB, an attribute too large for an index). Neither contention nor an
    /// outage: retrying the same write fails the same way.
    #[error("the store refused the write: {0}")]
    Invalid(String),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Conflict)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable")]
    Unavailable(#[source] BoxError),
    #[error("queue rejected the message")]
    Rejected(#[source] BoxError),
}

/// Which workspace owns one of our channel addresses (a Twilio number, a mailbox).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelAccount {
    pub workspace: WorkspaceId,
    pub channel: Channel,
    pub address: String,
    pub display_name: Option<String>,
    /// Web chat: the page origins the widget key may be used from (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// WhatsApp: the WhatsApp Business Account the number belongs to (its templates are submitted
    /// there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_account_id: Option<String>,
    /// SMS: the Twilio Messaging Service replies from this number go out through (`MG…`): Twilio
    /// picks the sender from its pool, keeping each customer on the same one (sticky sender).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_service_sid: Option<String>,
}

impl ChannelAccount {
    pub fn new(workspace: WorkspaceId, channel: Channel, address: impl Into<String>) -> Self {
        Self {
            workspace,
            channel,
            address: address.into(),
            display_name: None,
            allowed_origins: Vec::new(),
            business_account_id: None,
            messaging_service_sid: None,
        }
    }
}

/// What Meta answered a template's submission or edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    pub meta_id: String,
    pub status: crate::channels::templates::TemplateStatus,
    /// The category Meta filed it under (it may differ from the one asked for).
    pub category: Option<crate::finance::pricing::WhatsappCategory>,
}

/// Meta's template management (Graph API): creating a template under a WhatsApp Business Account
/// and editing one it rejected or paused. Either way Meta reviews it and answers by webhook.
#[async_trait]
/// Meta's template management, as the business account that owns the templates: `via` is one of
/// the workspace's WhatsApp numbers in that account, whose access token is used (its workspace's
/// own, else the stack's).
pub trait TemplateSubmissions: Send + Sync {
    async fn create(
        &self,
        business_account_id: &str,
        via: &str,
        submission: &serde_json::Value,
    ) -> Result<Submitted, BotApiError>;
    async fn edit(&self, meta_id: &str, via: &str, submission: &serde_json::Value) -> Result<Submitted, BotApiError>;
}

#[async_trait]
pub trait ChannelDirectory: Send + Sync {
    async fn channel_account(&self, channel: Channel, address: &str) -> Result<Option<ChannelAccount>, StoreError>;
    /// Writes the account whoever held it (seeding a stack; admins go through
    /// [`connect_channel_account`](Self::connect_channel_account)).
    async fn put_channel_account(&self, account: &ChannelAccount) -> Result<(), StoreError>;
    /// Connects an address to its workspace, or updates its details when the workspace already
    /// holds it: `false` (and nothing written) when another workspace holds it.
    async fn connect_channel_account(&self, account: &ChannelAccount) -> Result<bool, StoreError>;
    /// Disconnects one of the workspace's addresses: the account it removed, `None` when the
    /// workspace did not hold it (another workspace's account is left alone).
    async fn disconnect_channel_account(
        &self,
        ws: &WorkspaceId,
        channel: Channel,
        address: &str,
    ) -> Result<Option<ChannelAccount>, StoreError>;
    /// Every channel account of a workspace (the contact form answers from its email address).
    async fn channel_accounts(&self, ws: &WorkspaceId) -> Result<Vec<ChannelAccount>, StoreError>;
}

/// The identity provider's directory of people who sign in (Cognito's user pool, or the local
/// OpenID provider): where an admin invites an agent, changes their role, or stops their sign-in.
/// Every call is scoped to a workspace: a person of another workspace is never found.
#[async_trait]
pub trait AgentDirectory: Send + Sync {
    /// Creates the person's sign-in in `ws` with `role` (the provider emails the invitation) and
    /// answers the agent id they will sign in as. Inviting an address already invited to `ws`
    /// answers the same id (`created: false`); one of another workspace is [`DirectoryError::Taken`].
    async fn invite(&self, ws: &WorkspaceId, invite: &Invite) -> Result<Invited, DirectoryError>;
    /// Allows or stops the agent's sign-in (stopping also ends their sessions at the provider);
    /// `false` when `ws` has no such agent.
    async fn set_enabled(&self, ws: &WorkspaceId, agent: &AgentId, enabled: bool) -> Result<bool, DirectoryError>;
    /// Gives the agent exactly `role` from their next sign-in; `false` when `ws` has no such agent.
    async fn set_role(
        &self,
        ws: &WorkspaceId,
        agent: &AgentId,
        role: crate::model::Role,
    ) -> Result<bool, DirectoryError>;
}

/// Who to invite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    pub email: crate::address::EmailAddress,
    pub name: Option<String>,
    pub role: crate::model::Role,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invited {
    pub agent: AgentId,
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("this address already signs in to another workspace")]
    Taken,
    #[error("the identity provider is unavailable")]
    Unavailable(#[source] BoxError),
    #[error("the identity provider refused the request: {0}")]
    Rejected(String),
}

/// Erasing a contact, step by step (`crate::erasure`). Every method is idempotent: a step that
/// failed half-way is run again.
#[async_trait]
pub trait ErasureStore: Send + Sync {
    /// The receipt of an erasure that finished.
    async fn erasure_receipt(
        &self,
        ws: &WorkspaceId,
        contact: ContactId,
    ) -> Result<Option<crate::erasure::Receipt>, StoreError>;
    /// Makes the contact unreachable: deletes its identities' pointers (proven and claimed, where
    /// they still name it), their consent records, its name-index entry and its
    /// current-conversation slot, and marks it `erasing` since `at`. (Its web chat visitors go
    /// at the end, [`ErasureStore::forget_visitor`].)
    async fn begin_erasure(&self, contact: &Contact, at: OffsetDateTime) -> Result<(), StoreError>;
    /// Deletes one conversation of `contact`: every item of it (messages, notes, audit trail), its
    /// place in the waiting queue, its messages' provider-id pointers and idempotency records, the
    /// contact's current-conversation slot if it still holds it; its ledger rows and cost counters
    /// move to the erased conversation (and the erased contact when `forget_contact`); the
    /// contact's pointer to it goes last.
    async fn erase_conversation(
        &self,
        ws: &WorkspaceId,
        contact: ContactId,
        conversation: ConversationId,
        trace: &crate::erasure::ConversationTrace,
        forget_contact: bool,
    ) -> Result<(), StoreError>;
    /// Up to `limit` resolved conversations last active before `before`, oldest first (retention).
    async fn expired_conversations(
        &self,
        ws: &WorkspaceId,
        before: OffsetDateTime,
        limit: u16,
    ) -> Result<Vec<Conversation>, StoreError>;
    /// Deletes a web chat visitor: their profile (name, the address they typed), their sockets.
    async fn forget_visitor(
        &self,
        ws: &WorkspaceId,
        visitor: &crate::channels::webchat::VisitorId,
    ) -> Result<(), StoreError>;
    /// Rewrites a workspace audit entry in place with its details replaced by `{"erased": true}`.
    async fn scrub_audit(&self, entry: &crate::audit::AuditEntry) -> Result<(), StoreError>;
    /// Deletes one entry of an endpoint's webhook delivery log.
    async fn delete_delivery(&self, ws: &WorkspaceId, endpoint: &str, msg_id: &str) -> Result<(), StoreError>;
    /// The last step: moves the contact's cost counters of `months` to the erased contact, deletes
    /// what is left of the contact, and writes the receipt with its audit entry, atomically with
    /// the contact item's removal.
    async fn finish_erasure(
        &self,
        ws: &WorkspaceId,
        contact: ContactId,
        months: &[Month],
        receipt: &crate::erasure::Receipt,
        audit: &crate::audit::AuditEntry,
    ) -> Result<(), StoreError>;
}

/// Deleting stored files (erasure).
#[async_trait]
pub trait FileRemover: Send + Sync {
    /// Deletes the file behind an `s3://` URL; a file already gone is fine.
    async fn delete_file(&self, url: &str) -> Result<(), StoreError>;
    /// Deletes every file under `prefix` in the media bucket; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> Result<usize, StoreError>;
}

/// A workspace's settings ([`crate::workspace::Settings`]); all defaults until an admin saves them.
#[async_trait]
pub trait WorkspaceStore: Send + Sync {
    async fn workspace_settings(&self, ws: &WorkspaceId) -> Result<crate::workspace::Settings, StoreError>;
    /// Saves the settings; a workspace with a retention period is listed for the daily run.
    async fn put_workspace_settings(
        &self,
        ws: &WorkspaceId,
        settings: &crate::workspace::Settings,
    ) -> Result<(), StoreError>;
    /// The workspaces with a retention period (the daily retention run's list).
    async fn retention_workspaces(&self) -> Result<Vec<WorkspaceId>, StoreError>;
}

/// Fixed-window rate limits: counts uses of a key per window, atomically.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one use of `key` at `at`, in the fixed `window` that holds it (windows start at
    /// multiples of `window` since the epoch; a count expires with its window): `true` when it was
    /// within `limit`, `false` when the limit was already reached (and nothing is counted).
    async fn take(
        &self,
        ws: &WorkspaceId,
        key: &str,
        at: OffsetDateTime,
        window: time::Duration,
        limit: u32,
    ) -> Result<bool, StoreError>;
}

pub enum ConversationWrite {
    /// A new conversation becomes the contact's current one. `replaces` names the resolved
    /// conversation that held the slot, if any; the write fails if the slot holds anything else.
    Create { conversation: Conversation, replaces: Option<ConversationId> },
    /// Write `conversation` only if the stored version is still `expected_version`.
    Update { conversation: Conversation, expected_version: u64 },
}

/// Everything one inbound message changes, written atomically.
pub struct InboundCommit {
    /// A contact first seen with this message (created only if its identity is still unclaimed).
    pub new_contact: Option<Contact>,
    pub conversation: ConversationWrite,
    pub message: Message,
    /// The provider's id for the message: stored once; a second commit with it is `Duplicate`.
    pub provider: String,
    pub provider_message_id: String,
    /// The message's cost estimate, added to the ledger in the same transaction.
    pub cost: Option<LedgerEntry>,
    /// The sender's consent record, when the message changed it (STOP, START).
    pub consent: Option<crate::consent::Record>,
    /// Point this identity's current-conversation hint at the message's conversation (a new
    /// conversation, or a hint [`InboundStore::thread_of`] found missing or stale), so the next
    /// message from it is threaded in the fewest reads.
    pub hint: Option<Identity>,
}

/// What an agent starting a conversation changes, written atomically (see
/// [`crate::threading::open_outreach`]): a contact first written to, and the conversation.
pub struct OutreachCommit {
    /// A contact first seen now (created only if its identity is still unclaimed).
    pub new_contact: Option<Contact>,
    pub conversation: ConversationWrite,
    /// Point this identity's current-conversation hint at the conversation (as an inbound commit does).
    pub hint: Option<Identity>,
}

/// The threading read of an inbound message: who holds the identity and their current
/// conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadOf {
    pub contact: ContactId,
    /// The contact's unresolved conversation, if any.
    pub current: Option<Conversation>,
    /// Whether the identity's hint named that conversation (nothing to write next commit).
    pub hint_fresh: bool,
}

#[async_trait]
pub trait InboundStore: Send + Sync {
    /// The message a provider id was stored as, if it was.
    async fn provider_message(
        &self,
        ws: &WorkspaceId,
        provider: &str,
        id: &str,
    ) -> Result<Option<(ConversationId, MessageId)>, StoreError>;
    async fn contact_by_identity(&self, ws: &WorkspaceId, identity: &Identity) -> Result<Option<Contact>, StoreError>;
    /// The contact holding `identity` and its current conversation, in as few reads as the store
    /// can (DynamoDB: the identity item, then the contact's slot and the hinted conversation in
    /// one batch). The same answer as [`Self::contact_by_identity`] and
    /// [`Self::current_conversation`] together.
    async fn thread_of(&self, ws: &WorkspaceId, identity: &Identity) -> Result<Option<ThreadOf>, StoreError> {
        let Some(contact) = self.contact_by_identity(ws, identity).await? else { return Ok(None) };
        let current = self.current_conversation(ws, &contact).await?;
        Ok(Some(ThreadOf { contact: contact.id, current, hint_fresh: true }))
    }
    /// The contact's unresolved conversation, if any (there is at most one).
    async fn current_conversation(
        &self,
        ws: &WorkspaceId,
        contact: &Contact,
    ) -> Result<Option<Conversation>, StoreError>;
    /// `Conflict` when the contact identity, the open-conversation slot or the conversation version was
    /// taken concurrently; `Duplicate` when the provider message was already stored.
    async fn commit_inbound(&self, commit: InboundCommit) -> Result<(), StoreError>;
    /// `Conflict` when the contact identity, the open-conversation slot or the conversation version
    /// was taken concurrently (read again and retry).
    async fn commit_outreach(&self, commit: OutreachCommit) -> Result<(), StoreError>;
    /// Rewrites a stored inbound message with parts that arrived later (a voicemail's transcript).
    /// Only the sender's FIFO group writes its inbound messages, so there is no race to settle;
    /// `Conflict` when the message is not there.
    async fn complete_message(&self, message: &Message) -> Result<(), StoreError>;
}

/// Opaque continuation token of a paginated list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cursor(pub String);

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

/// Which of a status's conversations a view lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AssigneeFilter {
    Any,
    Unassigned,
    Agent(AgentId),
    /// The team's conversations, whoever owns them.
    Team(crate::ids::TeamId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationQuery {
    pub status: ConversationStatus,
    pub assignee: AssigneeFilter,
    pub limit: u16,
    pub cursor: Option<Cursor>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Oldest,
    Newest,
}

#[async_trait]
pub trait ConversationReader: Send + Sync {
    async fn conversation(&self, ws: &WorkspaceId, id: ConversationId) -> Result<Option<Conversation>, StoreError>;
    async fn contact(&self, ws: &WorkspaceId, id: crate::ids::ContactId) -> Result<Option<Contact>, StoreError>;
    /// By status (and assignee), most recent activity first.
    async fn conversations(&self, ws: &WorkspaceId, q: &ConversationQuery) -> Result<Page<Conversation>, StoreError>;
    async fn messages(
        &self,
        ws: &WorkspaceId,
        id: ConversationId,
        order: Order,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Message>, StoreError>;
    async fn message(
        &self,
        ws: &WorkspaceId,
        conv: ConversationId,
        id: MessageId,
    ) -> Result<Option<Message>, StoreError>;
    /// A conversation and one of its messages, in as few requests as the store can (DynamoDB: one
    /// BatchGetItem). What an agent's screen is pushed for a new message or a status.
    async fn conversation_with_message(
        &self,
        ws: &WorkspaceId,
        conv: ConversationId,
        id: MessageId,
    ) -> Result<(Option<Conversation>, Option<Message>), StoreError> {
        Ok((self.conversation(ws, conv).await?, self.message(ws, conv, id).await?))
    }
}

/// The first answer to an idempotent request, replayed to every retry with the same key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IdempotencyRecord {
    pub workspace: WorkspaceId,
    pub agent: AgentId,
    pub key: IdempotencyKey,
    /// SHA-256 of the request (route + body): the same key with a different request is refused.
    pub request_hash: String,
    pub status_code: u16,
    pub response: serde_json::Value,
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    /// False until the outbound job is on the queue; a retry finishing the enqueue sets it.
    pub enqueued: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

pub struct ReplyCommit {
    pub conversation: Conversation,
    pub expected_version: u64,
    pub message: Message,
    pub idempotency: IdempotencyRecord,
    /// The reply's cost estimate, added to the ledger in the same transaction.
    pub cost: Option<LedgerEntry>,
}

#[async_trait]
pub trait ReplyStore: Send + Sync {
    async fn idempotency_record(
        &self,
        ws: &WorkspaceId,
        agent: &AgentId,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
    /// `Duplicate` when the key was used concurrently, `Conflict` when the conversation changed.
    async fn commit_reply(&self, commit: ReplyCommit) -> Result<(), StoreError>;
    async fn mark_enqueued(&self, ws: &WorkspaceId, agent: &AgentId, key: &IdempotencyKey) -> Result<(), StoreError>;
}

#[derive(Debug)]
pub enum Claim {
    /// The message was `queued` and is now `sending`: this caller sends it.
    Claimed(Message),
    /// Another attempt is (or was, before a crash) sending it and no provider answer was recorded:
    /// its outcome is unknown.
    InFlight(Message),
    /// Accepted by the provider, sent or failed: nothing to do.
    Done(Message),
    NotFound,
}

#[async_trait]
pub trait DeliveryStore: Send + Sync {
    async fn claim_for_send(
        &self,
        ws: &WorkspaceId,
        conv: ConversationId,
        id: MessageId,
        at: OffsetDateTime,
    ) -> Result<Claim, StoreError>;
    /// Undo a claim after a failure that provably sent nothing, so the next attempt may send.
    async fn release_claim(&self, ws: &WorkspaceId, conv: ConversationId, id: MessageId) -> Result<(), StoreError>;
    async fn record_provider_id(
        &self,
        ws: &WorkspaceId,
        conv: ConversationId,
        id: MessageId,
        provider: &str,
        provider_message_id: &str,
        usage: Option<&LedgerEntry>,
    ) -> Result<(), StoreError>;
    /// Applies the event only if it moves the status forward; `Ok(false)` when it was stale.
    async fn advance_status(
        &self,
        ws: &WorkspaceId,
        conv: ConversationId,
        id: MessageId,
        event: &DeliveryEvent,
    ) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait InboundQueue: Send + Sync {
    async fn enqueue_inbound(&self, event: &InboundEvent) -> Result<(), QueueError>;
}

#[async_trait]
pub trait OutboundQueue: Send + Sync {
    async fn enqueue_outbound(&self, job: &OutboundJob) -> Result<(), QueueError>;
}

#[async_trait]
pub trait NotificationQueue: Send + Sync {
    async fn publish(&self, event: &Notification) -> Result<(), QueueError>;
}

/// The cost ledger: immutable entries and the monthly counters they add to, always together.
#[async_trait]
pub trait CostLedger: Send + Sync {
    /// Writes a later entry of a message (usage, actual price, failed fee), adds it to its counters
    /// and to the message's cost summary, atomically. `Duplicate` when it was already written.
    async fn record_cost(&self, entry: &LedgerEntry) -> Result<(), StoreError>;
    /// A month's counters of one grouping (shards merged), in key order.
    async fn counters(
        &self,
        ws: &WorkspaceId,
        month: Month,
        grouping: Grouping,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Counter>, StoreError>;
    /// What a budget scope spent in a month.
    async fn spend(&self, ws: &WorkspaceId, month: Month, scope: BudgetScope) -> Result<Totals, StoreError>;
    /// The entries of messages created on one day, in message order.
    async fn entries(
        &self,
        ws: &WorkspaceId,
        day: time::Date,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<LedgerEntry>, StoreError>;
}

/// A workspace's own rate-card versions (the built-in card is not stored).
#[async_trait]
pub trait RateCardStore: Send + Sync {
    async fn rate_cards(&self, ws: &WorkspaceId) -> Result<Vec<RateCard>, StoreError>;
    /// `Duplicate` when that version number exists: versions never change in place.
    async fn create_rate_card(&self, ws: &WorkspaceId, card: &RateCard) -> Result<(), StoreError>;
}

#[async_trait]
pub trait BudgetStore: Send + Sync {
    async fn budgets(&self, ws: &WorkspaceId) -> Result<Vec<Budget>, StoreError>;
    async fn put_budget(&self, ws: &WorkspaceId, budget: &Budget) -> Result<(), StoreError>;
    /// Marks a threshold alerted for the month: `true` only for the first caller.
    async fn claim_alert(
        &self,
        ws: &WorkspaceId,
        month: Month,
        scope: BudgetScope,
        threshold: u8,
    ) -> Result<bool, StoreError>;
    /// Undoes a claim whose alert could not be published, so a later check alerts again.
    async fn release_alert(
        &self,
        ws: &WorkspaceId,
        month: Month,
        scope: BudgetScope,
        threshold: u8,
    ) -> Result<(), StoreError>;
    /// The thresholds already alerted this month.
    async fn alerted(&self, ws: &WorkspaceId, month: Month) -> Result<Vec<(BudgetScope, u8)>, StoreError>;
}

#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// An identity's consent record, if it ever changed.
    async fn consent(
        &self,
        ws: &WorkspaceId,
        identity: &Identity,
    ) -> Result<Option<crate::consent::Record>, StoreError>;
    /// Writes an identity's record after a change that comes with no message (a provider's
    /// suppression). Changes to one identity are serialised by its FIFO group.
    async fn put_consent(&self, ws: &WorkspaceId, record: &crate::consent::Record) -> Result<(), StoreError>;
}

/// Agents' routing state: profile (presence, teams, skills, capacity) and current weighted load.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Creates or updates an agent's profile; their current load is kept (0 for a new agent).
    async fn put_agent(&self, ws: &WorkspaceId, agent: &crate::routing::AgentState) -> Result<(), StoreError>;
    /// Every agent's whole routing state, load included, read fresh.
    async fn agents(&self, ws: &WorkspaceId) -> Result<Vec<crate::routing::AgentState>, StoreError>;

    /// Every agent's profile (presence, teams, skills, capacity) for choosing whom to ask: the load
    /// in it is not to be trusted (0 where the store keeps loads apart), and it may be a few seconds
    /// old where the store remembers it. Routing reads the chosen candidates' state with
    /// [`AgentStore::agent_states`]; the take is conditional on that.
    async fn roster(&self, ws: &WorkspaceId) -> Result<Vec<crate::routing::AgentState>, StoreError> {
        self.agents(ws).await
    }

    /// The current routing state of the named agents (those the store knows), in no set order.
    async fn agent_states(
        &self,
        ws: &WorkspaceId,
        ids: &[AgentId],
    ) -> Result<Vec<crate::routing::AgentState>, StoreError> {
        Ok(self.agents(ws).await?.into_iter().filter(|a| ids.contains(&a.id)).collect())
    }
}

/// An agent's presence after [`RoutingStore::set_presence`], with the online period it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceSet {
    pub state: crate::routing::AgentState,
    /// When the agent had been online since, if the call ended an online period.
    pub online_since: Option<OffsetDateTime>,
}

/// Capacity an assignment takes from an agent. With `capacity` (what the router read) the write
/// fails (`Conflict`) unless the agent is still online with room under it; without, it only needs
/// the agent to exist (a supervisor's assignment may exceed capacity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Take {
    pub agent: AgentId,
    pub weight: u32,
    pub capacity: Option<u32>,
    /// Recorded as the agent's last assignment (routing's tie-break).
    pub at: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueChange {
    Keep,
    /// The conversation waits in the routing queue.
    Add(crate::routing::Work),
    /// The conversation leaves the routing queue.
    Remove,
}

/// One routing or inbox change, written atomically: the conversation (versioned), the capacity
/// taken from its new owner and given back by its old one, its place in the waiting queue and the
/// audit entry.
pub struct RoutingCommit {
    pub conversation: Conversation,
    pub expected_version: u64,
    pub take: Option<Take>,
    /// Capacity given back (agent, weight); never takes a load below zero.
    pub give_back: Option<(AgentId, u32)>,
    pub queue: QueueChange,
    pub audit: Option<crate::audit::AuditEntry>,
}

#[async_trait]
pub trait RoutingStore: Send + Sync {
    /// The workspace's rules (the defaults when none were saved).
    async fn routing_rules(&self, ws: &WorkspaceId) -> Result<crate::routing::RoutingRules, StoreError>;
    /// Saves the rules; a workspace whose rules enable NPS is listed for the NPS run.
    async fn put_routing_rules(&self, ws: &WorkspaceId, rules: &crate::routing::RoutingRules)
        -> Result<(), StoreError>;
    /// The workspaces whose rules enable NPS.
    async fn nps_workspaces(&self) -> Result<Vec<WorkspaceId>, StoreError>;
    async fn teams(&self, ws: &WorkspaceId) -> Result<Vec<crate::routing::Team>, StoreError>;
    async fn put_team(&self, ws: &WorkspaceId, team: &crate::routing::Team) -> Result<(), StoreError>;
    /// The workspace's service levels (the defaults when none were saved).
    async fn sla_policy(&self, ws: &WorkspaceId) -> Result<crate::sla::Policy, StoreError>;
    async fn put_sla_policy(&self, ws: &WorkspaceId, policy: &crate::sla::Policy) -> Result<(), StoreError>;
    /// The service levels with the hours they count in (routing rules' and teams') and the
    /// redaction policy, in one read.
    async fn sla_setup(&self, ws: &WorkspaceId) -> Result<crate::sla::Setup, StoreError>;
    /// What inbound text has masked (cards and IBANs by default).
    async fn privacy_policy(&self, ws: &WorkspaceId) -> Result<crate::redact::Policy, StoreError>;
    async fn put_privacy_policy(&self, ws: &WorkspaceId, policy: &crate::redact::Policy) -> Result<(), StoreError>;
    /// The waiting queue (unordered; `routing::queue_order` orders it).
    async fn waiting(&self, ws: &WorkspaceId) -> Result<Vec<crate::routing::Work>, StoreError>;
    /// `Conflict` when the conversation changed or the agent lost the capacity or presence.
    async fn commit_routing(&self, commit: RoutingCommit) -> Result<(), StoreError>;
    /// Sets an agent's presence as of `now`, creating a profile with `default_capacity` for a new
    /// agent. Every call starts a new presence period; the one it ends is returned when it was
    /// online (analytics counts online time from it).
    async fn set_presence(
        &self,
        ws: &WorkspaceId,
        agent: &AgentId,
        presence: crate::routing::Presence,
        default_capacity: u32,
        now: OffsetDateTime,
    ) -> Result<PresenceSet, StoreError>;
}

/// Agents' open WebSocket connections.
#[async_trait]
///
/// Every read returns stale connections too (callers check [`Connection::is_stale`]). Besides the
/// whole workspace, a connection is found by each audience it can be in (its agent, the overseers,
/// the conversations its tab views or follows), so an event about one conversation reads only
/// the connections that may see it.
pub trait ConnectionStore: Send + Sync {
    /// Creates or replaces a connection (heartbeat, viewing and subscriptions rewrite it): it is
    /// then found by every audience it is in now, and no longer by one it has left.
    async fn put_connection(&self, c: &crate::realtime::Connection) -> Result<(), StoreError>;
    /// By id alone, as API Gateway names it on `$disconnect` and messages.
    async fn connection(&self, id: &crate::ConnectionId) -> Result<Option<crate::realtime::Connection>, StoreError>;
    /// A workspace's connections.
    async fn connections(&self, ws: &WorkspaceId) -> Result<Vec<crate::realtime::Connection>, StoreError>;
    /// An agent's connections (its tabs).
    async fn agent_connections(
        &self,
        ws: &WorkspaceId,
        agent: &crate::AgentId,
    ) -> Result<Vec<crate::realtime::Connection>, StoreError>;
    /// The connections of supervisors and admins ([`crate::model::Role::oversees`]).
    async fn overseer_connections(&self, ws: &WorkspaceId) -> Result<Vec<crate::realtime::Connection>, StoreError>;
    /// The connections whose tab views or follows `conversation`.
    async fn watching(
        &self,
        ws: &WorkspaceId,
        conversation: ConversationId,
    ) -> Result<Vec<crate::realtime::Connection>, StoreError>;
    async fn delete_connection(&self, ws: &WorkspaceId, id: &crate::ConnectionId) -> Result<(), StoreError>;
}

/// Web chat visitors: what they told us and their open sockets.
#[async_trait]
pub trait VisitorStore: Send + Sync {
    async fn visitor_profile(
        &self,
        ws: &WorkspaceId,
        visitor: &crate::channels::webchat::VisitorId,
    ) -> Result<Option<crate::channels::webchat::VisitorProfile>, StoreError>;
    async fn put_visitor_profile(&self, profile: &crate::channels::webchat::VisitorProfile) -> Result<(), StoreError>;
    /// Stores a socket (with a TTL at API Gateway's two-hour limit).
    async fn put_visitor_connection(&self, c: &crate::channels::webchat::VisitorConnection) -> Result<(), StoreError>;
    /// A socket by its id (API Gateway names only the id).
    async fn visitor_connection(
        &self,
        id: &crate::ConnectionId,
    ) -> Result<Option<crate::channels::webchat::VisitorConnection>, StoreError>;
    /// A visitor's open sockets (tabs), oldest first.
    async fn visitor_connections(
        &self,
        ws: &WorkspaceId,
        visitor: &crate::channels::webchat::VisitorId,
    ) -> Result<Vec<crate::channels::webchat::VisitorConnection>, StoreError>;
    /// Forgets a socket (already gone is fine).
    async fn delete_visitor_connection(
        &self,
        c: &crate::channels::webchat::VisitorConnection,
    ) -> Result<(), StoreError>;
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Writes an entry that is not part of a routing commit (rules, agents, teams).
    async fn record_audit(&self, entry: &crate::audit::AuditEntry) -> Result<(), StoreError>;
    /// A conversation's trail (or the workspace's, for `None`), oldest first.
    async fn audit_trail(
        &self,
        ws: &WorkspaceId,
        conversation: Option<ConversationId>,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<crate::audit::AuditEntry>, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The connection is closed (API Gateway's 410): forget it.
    #[error("connection gone")]
    Gone,
    #[error("push failed")]
    Failed(#[source] BoxError),
}

/// Posts a frame to one WebSocket connection (API Gateway's `@connections` management API).
#[async_trait]
pub trait ConnectionPusher: Send + Sync {
    async fn push(&self, id: &crate::ConnectionId, frame: &[u8]) -> Result<(), PushError>;
    /// Closes the socket (its sign-in expired). Gone already is fine.
    async fn close(&self, _id: &crate::ConnectionId) -> Result<(), PushError> {
        Ok(())
    }
}

/// Internal notes: stored beside a conversation's messages but never among them, so nothing that
/// sends to customers can read one.
#[async_trait]
pub trait NoteStore: Send + Sync {
    /// The note, its audit entry and its author's idempotency key, together; `Duplicate` when the
    /// key was used before (read the note it made with [`NoteStore::note_by_key`]).
    async fn add_note(
        &self,
        note: &crate::inbox::Note,
        audit: &crate::audit::AuditEntry,
        key: &IdempotencyKey,
    ) -> Result<(), StoreError>;
    /// The note an author's idempotency key made, if it was used.
    async fn note_by_key(
        &self,
        ws: &WorkspaceId,
        author: &AgentId,
        key: &IdempotencyKey,
    ) -> Result<Option<crate::inbox::Note>, StoreError>;
    /// A conversation's notes, oldest first.
    async fn notes(
        &self,
        ws: &WorkspaceId,
        conv: ConversationId,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<crate::inbox::Note>, StoreError>;
}

#[async_trait]
pub trait ContactHistory: Send + Sync {
    /// A contact's conversations, oldest first: their whole history across channels.
    async fn contact_conversations(
        &self,
        ws: &WorkspaceId,
        contact: crate::ids::ContactId,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Conversation>, StoreError>;
}

/// The workspace's WhatsApp template registry.
#[async_trait]
pub trait TemplateStore: Send + Sync {
    async fn whatsapp_templates(
        &self,
        ws: &WorkspaceId,
    ) -> Result<Vec<crate::channels::templates::WhatsAppTemplate>, StoreError>;
    async fn whatsapp_template(
        &self,
        ws: &WorkspaceId,
        name: &str,
        language: &str,
    ) -> Result<Option<crate::channels::templates::WhatsAppTemplate>, StoreError>;
    async fn put_whatsapp_template(
        &self,
        ws: &WorkspaceId,
        template: &crate::channels::templates::WhatsAppTemplate,
    ) -> Result<(), StoreError>;
    /// The template Meta knows by `meta_id` (one submitted through the API), with its workspace.
    async fn whatsapp_template_by_meta_id(
        &self,
        meta_id: &str,
    ) -> Result<Option<(WorkspaceId, crate::channels::templates::WhatsAppTemplate)>, StoreError>;
    /// Writes `template` over the stored one only if that one was last reviewed at `reviewed_at`
    /// (`None`: never reviewed): `false`, nothing written, when another review came first.
    async fn replace_whatsapp_template(
        &self,
        ws: &WorkspaceId,
        template: &crate::channels::templates::WhatsAppTemplate,
        reviewed_at: Option<time::OffsetDateTime>,
    ) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait CannedStore: Send + Sync {
    async fn canned_responses(&self, ws: &WorkspaceId) -> Result<Vec<crate::canned::CannedResponse>, StoreError>;
    async fn canned_response(
        &self,
        ws: &WorkspaceId,
        id: &str,
    ) -> Result<Option<crate::canned::CannedResponse>, StoreError>;
    /// Creates or replaces one response.
    async fn put_canned_response(
        &self,
        ws: &WorkspaceId,
        response: &crate::canned::CannedResponse,
    ) -> Result<(), StoreError>;
    /// Deletes one response (its per-agent use counts stay: nothing lists them without it).
    async fn delete_canned_response(&self, ws: &WorkspaceId, id: &str) -> Result<(), StoreError>;
    /// Counts one use of a response by an agent: the search ranks by it.
    async fn record_canned_use(&self, ws: &WorkspaceId, agent: &AgentId, id: &str) -> Result<(), StoreError>;
    async fn canned_usage(
        &self,
        ws: &WorkspaceId,
        agent: &AgentId,
    ) -> Result<std::collections::HashMap<String, u32>, StoreError>;
}

/// How many messages one [`ReorgStore::move_messages`] call moves at most (each is up to three
/// items of one DynamoDB transaction, which holds 100).
pub const MOVE_CHUNK: usize = 25;

/// The last write of a split or merge (see `reorg`), atomically: both conversations (the target
/// created for a split), the contact's current-conversation slot when the source held it, the
/// routing-queue place and the audit entries.
#[derive(Clone, Debug, PartialEq)]
pub struct ReorgCommit {
    pub source: Conversation,
    pub source_version: u64,
    pub target: Conversation,
    /// `None`: the target is new (a split) and is created, with its contact-history pointer.
    pub target_version: Option<u64>,
    /// The contact's current-conversation slot moves from the source to the target (it must still
    /// name the source).
    pub moves_current: bool,
    /// The source waited for an agent: its queue entry is replaced by this one, the target's.
    pub queue: Option<crate::routing::Work>,
    pub audits: Vec<crate::audit::AuditEntry>,
}

#[async_trait]
pub trait ReorgStore: Send + Sync {
    /// Moves up to [`MOVE_CHUNK`] messages, each from its `conversation_id` to `to`, with their
    /// provider-id pointers, atomically. `Conflict` when one of them changed (a delivery callback)
    /// or moved since it was read: read again and retry.
    async fn move_messages(&self, ws: &WorkspaceId, to: ConversationId, messages: &[Message])
        -> Result<(), StoreError>;
    /// `Conflict` when either conversation or the slot changed since it was read.
    async fn commit_reorg(&self, commit: ReorgCommit) -> Result<(), StoreError>;
}

/// Copies media a provider only names (WhatsApp media ids) into our file store, rewriting the
/// attachments to point at the copies. A provider outage is `Unavailable` (the webhook answers 5xx
/// and the provider retries); media the provider no longer has stay as they were named.
#[async_trait]
pub trait MediaResolver: Send + Sync {
    /// `account`: our address the media came to (a WhatsApp phone number id), whose credentials
    /// may be the ones that fetch it.
    async fn resolve(
        &self,
        ws: &WorkspaceId,
        account: &str,
        attachments: &mut [crate::model::Attachment],
    ) -> Result<(), StoreError>;
}

/// Files (email attachments, raw messages, media): stored under a key, named by a URL
/// (`s3://bucket/key`) on messages.
#[async_trait]
pub trait FileStore: Send + Sync {
    /// Stores `bytes` under `key` (the same key and bytes again is harmless) and returns its URL.
    async fn put_file(&self, key: &str, content_type: &str, bytes: Vec<u8>) -> Result<String, StoreError>;
    /// The bytes behind a URL this store returned; `None` when there is no such file.
    async fn get_file(&self, url: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Files a browser uploads straight to the bucket (web chat): a presigned PUT, then a check
/// that the file is there.
#[async_trait]
pub trait Uploads: Send + Sync {
    /// A URL that accepts one PUT of exactly `size` bytes of `content_type` at `key` until `ttl`
    /// runs out.
    async fn upload_url(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        ttl: time::Duration,
    ) -> Result<String, StoreError>;
    /// The uploaded file at `key` (its `s3://` URL, size and type), `None` when nothing was put.
    async fn uploaded(&self, key: &str) -> Result<Option<Uploaded>, StoreError>;
    /// A URL that lets its holder download the file at `key` until `ttl` runs out (an export).
    async fn download_url(&self, key: &str, ttl: time::Duration) -> Result<String, StoreError>;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uploaded {
    pub url: String,
    pub size: u64,
    pub content_type: String,
}

/// Why a send produced no answer from the provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Nothing reached the provider (connection refused, DNS): safe to retry.
    #[error("not sent: {0}")]
    NotSent(String),
    /// The request may have reached the provider: retrying could send twice.
    #[error("no answer: {0}")]
    Ambiguous(String),
}

/// Sends a raw MIME message (SES v2 in AWS).
#[async_trait]
pub trait EmailTransport: Send + Sync {
    async fn send_raw(
        &self,
        from: &str,
        to: &str,
        raw: Vec<u8>,
    ) -> Result<crate::channels::SendOutcome, TransportError>;
}

/// The providers' messaging APIs (Twilio, WhatsApp, Messenger and Instagram, Telegram): a
/// channel's adapter renders a message into a request, this performs it and lets the adapter read
/// the answer.
#[async_trait]
pub trait ProviderApi: Send + Sync {
    /// The adapter that sends from `account` (our address: a number, a bot id…) on `channel`: the
    /// workspace's own credentials for that account where it has connected them, else the stack's;
    /// `Ok(None)` when neither is configured. An error is the secret store being unavailable
    /// (retry later).
    async fn adapter(
        &self,
        channel: Channel,
        account: &str,
    ) -> Result<Option<Arc<dyn crate::channels::ChannelAdapter>>, VaultError>;
    /// Performs a request `adapter` rendered, on `channel`'s API; `adapter` reads the answer.
    async fn perform(
        &self,
        channel: Channel,
        adapter: &dyn crate::channels::ChannelAdapter,
        request: &crate::channels::ProviderRequest,
    ) -> Result<crate::channels::SendOutcome, TransportError>;
}

/// Why a provider's price for a message is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    /// The provider is down or throttling: a later attempt may succeed.
    #[error("{0}")]
    Retryable(String),
    /// The provider refused the lookup, or answered something unreadable.
    #[error("{0}")]
    Permanent(String),
}

/// The price a provider rated a sent message at (Twilio rates messages some time after they finish).
#[async_trait]
pub trait PriceLookup: Send + Sync {
    /// `None` while the provider has not rated the message; `from` is our address it went from
    /// (the account that owns it is asked).
    async fn price(
        &self,
        from: &str,
        provider_message_id: &str,
    ) -> Result<Option<(crate::finance::Micros, crate::finance::Currency)>, PriceError>;
}

/// How many conversations one [`ContactStore::move_conversations`] call moves at most (three items
/// of one DynamoDB transaction each).
pub const CONTACT_MOVE_CHUNK: usize = 30;

/// The first write of a contact merge (see `contacts`), atomically: both contacts (each only if
/// unchanged since read), every identity pointer of the source repointed, the current-conversation
/// slots, the name index and the audit entry.
#[derive(Clone, Debug, PartialEq)]
pub struct ContactMergeCommit {
    pub merge: crate::contacts::ContactMerge,
    pub source_version: u64,
    pub target_version: u64,
    pub audit: crate::audit::AuditEntry,
}

/// Identities, merges and probable matches of contacts.
#[async_trait]
pub trait ContactStore: Send + Sync {
    /// The contact an identity belongs to, if any.
    async fn identity_owner(&self, ws: &WorkspaceId, identity: &Identity) -> Result<Option<ContactId>, StoreError>;
    /// Writes `contact` (which holds `identity`) and the identity's pointer, with the audit entry.
    /// `Duplicate`: the identity belongs to a contact already; `Conflict`: the contact changed.
    async fn link_identity(
        &self,
        contact: &Contact,
        expected_version: u64,
        identity: &Identity,
        audit: &crate::audit::AuditEntry,
    ) -> Result<(), StoreError>;
    /// Writes `contact` (which no longer holds `identity`) and deletes the identity's pointer.
    /// `Conflict`: the contact changed or the pointer names another contact.
    async fn unlink_identity(
        &self,
        contact: &Contact,
        expected_version: u64,
        identity: &Identity,
        audit: &crate::audit::AuditEntry,
    ) -> Result<(), StoreError>;
    /// `Conflict` when either contact, a pointer or a slot changed since read.
    async fn commit_contact_merge(&self, commit: ContactMergeCommit) -> Result<(), StoreError>;
    /// Moves up to [`CONTACT_MOVE_CHUNK`] conversations, each exactly as read, from their contact
    /// to `to` (the conversation and the contact-history pointers), atomically.
    async fn move_conversations(
        &self,
        ws: &WorkspaceId,
        to: ContactId,
        conversations: &[Conversation],
    ) -> Result<(), StoreError>;
    /// Contacts whose name has this blocking key (`contacts::name_key`), at most `limit`.
    async fn contacts_named(&self, ws: &WorkspaceId, name_key: &str, limit: u16) -> Result<Vec<Contact>, StoreError>;
    /// Writes the contact if it is still at `expected_version` (`Conflict` otherwise); identities
    /// and their pointers are not touched (use `link_identity` for those).
    async fn update_contact(&self, contact: &Contact, expected_version: u64) -> Result<(), StoreError>;
}

/// A workspace's outbound webhook endpoints and their delivery log.
#[async_trait]
pub trait HookStore: Send + Sync {
    async fn endpoints(&self, ws: &WorkspaceId) -> Result<Vec<crate::hooks::Endpoint>, StoreError>;
    /// Read consistently: a delivery's failure path decides on the latest state.
    async fn endpoint(&self, ws: &WorkspaceId, id: &str) -> Result<Option<crate::hooks::Endpoint>, StoreError>;
    /// Creates the endpoint (`expected_version: None`; `Duplicate` if it exists) or replaces the one
    /// stored at that version (`Conflict` if another write came first).
    async fn put_endpoint(
        &self,
        endpoint: &crate::hooks::Endpoint,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError>;
    /// Deletes the endpoint (its log expires on its own).
    async fn delete_endpoint(&self, ws: &WorkspaceId, id: &str) -> Result<(), StoreError>;
    /// Appends one attempt to a delivery's log entry (created by the first) and sets its state.
    async fn record_attempt(
        &self,
        job: &crate::hooks::DeliveryJob,
        attempt: &crate::hooks::Attempt,
        state: crate::hooks::DeliveryState,
        next_attempt_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError>;
    /// An endpoint's deliveries, newest first.
    async fn deliveries(
        &self,
        ws: &WorkspaceId,
        endpoint: &str,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<crate::hooks::Delivery>, StoreError>;
    async fn delivery(
        &self,
        ws: &WorkspaceId,
        endpoint: &str,
        msg_id: &str,
    ) -> Result<Option<crate::hooks::Delivery>, StoreError>;
}

/// The webhook delivery queue (SQS standard: a failing endpoint holds up no one else's events).
#[async_trait]
pub trait HookQueue: Send + Sync {
    async fn enqueue_deliveries(&self, jobs: &[crate::hooks::DeliveryJob]) -> Result<(), QueueError>;
    /// The received message `receipt` comes back after `delay` (SQS: its visibility timeout).
    async fn retry_after(&self, receipt: &str, delay: time::Duration) -> Result<(), QueueError>;
}

/// Sends one signed delivery to an endpoint and reports what came back.
#[async_trait]
pub trait HookTransport: Send + Sync {
    async fn post(&self, url: &str, signed: &crate::hooks::Signed, body: &str) -> HookResponse;
}

/// What one POST got: the status, or why there was none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookResponse {
    pub status: Option<u16>,
    pub latency_ms: u32,
    pub error: Option<String>,
}

/// Analytics aggregates: one item per workspace × hour × dimension, and a marker per fact applied.
#[async_trait]
pub trait AnalyticsStore: Send + Sync {
    /// Applies facts to the aggregates of each of their dimensions, with a marker per fact, one
    /// transaction per chunk: facts applied before (their marker exists) are skipped. Returns how
    /// many were applied. `Conflict`: an aggregate or a marker changed meanwhile (apply again).
    async fn apply_facts(&self, facts: &[crate::analytics::Fact]) -> Result<usize, StoreError>;
    /// The hourly aggregates of one dimension kind (`channel`, `agent`, `team`) from the hour
    /// `from` to the hour `to`, inclusive: `(hour, dimension, aggregate)`.
    async fn aggregates(
        &self,
        ws: &WorkspaceId,
        kind: &str,
        from_hour: &str,
        to_hour: &str,
    ) -> Result<Vec<(String, String, crate::analytics::Aggregate)>, StoreError>;
}

/// The analytics queue (SQS standard; latency is fine, every event is counted once downstream).
#[async_trait]
pub trait AnalyticsQueue: Send + Sync {
    async fn enqueue_analytics(&self, events: &[crate::analytics::AnalyticsEvent]) -> Result<(), QueueError>;
}

/// Why the secret store could not answer (Secrets Manager throttling or down): retry later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the secret store is unavailable: {0}")]
pub struct VaultError(pub String);

/// Each workspace's provider credentials, one secret per provider account
/// ([`crate::credentials::CredentialKey`]). Values are opaque strings (JSON) and never logged.
#[async_trait]
pub trait CredentialVault: Send + Sync {
    async fn get(&self, key: &crate::credentials::CredentialKey) -> Result<Option<String>, VaultError>;
    /// Creates or replaces the secret, tagged with the workspace that connected it.
    async fn put(
        &self,
        key: &crate::credentials::CredentialKey,
        workspace: &WorkspaceId,
        value: &str,
    ) -> Result<(), VaultError>;
    /// Deletes the secret at once (a disconnected account's credentials are not kept).
    async fn delete(&self, key: &crate::credentials::CredentialKey) -> Result<(), VaultError>;
}

/// Why Telegram did not take a webhook registration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotApiError {
    /// Telegram refused it (a revoked or wrong token, an unreachable URL): the admin must act.
    #[error("{0}")]
    Refused(String),
    /// Telegram is down or throttling: try again.
    #[error("{0}")]
    Unavailable(String),
}

/// Telegram's webhook registration for a workspace's bot (`setWebhook`, `deleteWebhook`).
#[async_trait]
pub trait TelegramWebhooks: Send + Sync {
    async fn set_webhook(&self, bot_token: &str, url: &str, secret_token: &str) -> Result<(), BotApiError>;
    async fn delete_webhook(&self, bot_token: &str) -> Result<(), BotApiError>;
}

/// Asks Twilio whether account credentials a workspace gives are good (`GET /Accounts/{sid}`).
#[async_trait]
pub trait TwilioAccountCheck: Send + Sync {
    /// `Refused` when Twilio does not accept them; `Unavailable` when it could not be asked.
    async fn check(&self, account: &crate::credentials::TwilioAccount) -> Result<(), BotApiError>;
}

/// Asks Meta whether a Page access token is that Page's (`GET /{page-id}` with it).
#[async_trait]
pub trait PageTokenCheck: Send + Sync {
    async fn check(&self, page_id: &str, page_token: &str) -> Result<(), BotApiError>;
}
