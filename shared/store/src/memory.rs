//! The in-memory store: the same semantics as DynamoDB (conditional creates, versioned updates,
//! all-or-nothing commits, forward-only statuses), held to them by the shared contract tests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use domain::channels::webchat::{VisitorConnection, VisitorId, VisitorProfile};
use domain::finance::ledger::{Counter, Grouping, Month};
use domain::finance::ratecard::RateCard;
use domain::finance::{Budget, BudgetScope, Dimension, EntryKind, LedgerEntry, Totals};
use domain::model::{Channel, Contact, Conversation, DeliveryEvent, DeliveryStatus, Identity, Message};
use domain::ports::*;
use domain::{AgentId, ContactId, ConversationId, IdempotencyKey, MessageId, WorkspaceId};
use time::OffsetDateTime;

use crate::keys::{self, Key};

#[derive(Default)]
struct State {
    channels: HashMap<Key, ChannelAccount>,
    identities: HashMap<Key, ContactId>,
    contacts: HashMap<Key, Contact>,
    current: HashMap<Key, ConversationId>,
    /// Current-conversation slots of contacts merged away: nothing starts a conversation there.
    retired: HashSet<Key>,
    /// Contacts by name key (probable-match candidates).
    names: BTreeMap<Key, ContactId>,
    conversations: HashMap<Key, Conversation>,
    /// Keyed by conversation partition, then message id (ULIDs sort by creation).
    messages: HashMap<String, BTreeMap<MessageId, Message>>,
    provider_messages: HashMap<Key, (ConversationId, MessageId)>,
    idempotency: HashMap<Key, IdempotencyRecord>,
    ledger: BTreeMap<Key, LedgerEntry>,
    counters: BTreeMap<Key, Counter>,
    rate_cards: BTreeMap<Key, RateCard>,
    budgets: BTreeMap<Key, Budget>,
    alerts: HashSet<Key>,
    consent: HashMap<Key, domain::consent::Record>,
    agents: BTreeMap<Key, domain::routing::AgentState>,
    /// Since when each agent has had their current presence (the agent item's `presence_since`).
    presence_since: BTreeMap<Key, time::OffsetDateTime>,
    routing_rules: HashMap<Key, domain::routing::RoutingRules>,
    sla_policies: HashMap<Key, domain::sla::Policy>,
    settings: HashMap<Key, domain::workspace::Settings>,
    privacy_policies: HashMap<Key, domain::redact::Policy>,
    teams: BTreeMap<Key, domain::routing::Team>,
    waiting: BTreeMap<Key, domain::routing::Work>,
    /// By the connection's pointer key.
    connections: BTreeMap<Key, domain::realtime::Connection>,
    audit: BTreeMap<Key, domain::audit::AuditEntry>,
    notes: BTreeMap<Key, domain::inbox::Note>,
    /// Note idempotency markers: the note's key (never its text).
    note_keys: HashMap<Key, Key>,
    contact_conversations: BTreeMap<Key, ConversationId>,
    canned: BTreeMap<Key, domain::canned::CannedResponse>,
    templates: BTreeMap<Key, domain::channels::templates::WhatsAppTemplate>,
    canned_uses: HashMap<Key, u32>,
    rates: HashMap<Key, u32>,
    visitor_profiles: HashMap<Key, VisitorProfile>,
    visitor_connections: BTreeMap<Key, VisitorConnection>,
    visitor_pointers: HashMap<Key, Key>,
    hook_endpoints: BTreeMap<Key, domain::hooks::Endpoint>,
    hook_deliveries: BTreeMap<Key, domain::hooks::Delivery>,
    stats: BTreeMap<Key, domain::analytics::Aggregate>,
    nps_workspaces: std::collections::BTreeSet<WorkspaceId>,
    fact_markers: HashSet<Key>,
    erasure_receipts: HashMap<Key, domain::erasure::Receipt>,
    retention_workspaces: std::collections::BTreeSet<WorkspaceId>,
}

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // A poisoned lock means a test already panicked; surfacing that panic is the right outcome.
        let mut guard = self.state.lock().expect("memory store lock poisoned");
        f(&mut guard)
    }
}

fn conversation_partition(ws: &WorkspaceId, conv: ConversationId) -> String {
    keys::conversation(ws, conv).pk
}

impl State {
    fn check_conversation_write(&self, w: &ConversationWrite) -> Result<(), StoreError> {
        match w {
            ConversationWrite::Create { conversation: c, replaces } => {
                let key = keys::current_conversation(&c.workspace, c.contact_id);
                if self.retired.contains(&key) {
                    return Err(StoreError::Conflict);
                }
                let slot = self.current.get(&key);
                let slot_free = match (slot, replaces) {
                    (None, _) => true,
                    (Some(held), Some(old)) => held == old,
                    (Some(_), None) => false,
                };
                if !slot_free || self.conversations.contains_key(&keys::conversation(&c.workspace, c.id)) {
                    return Err(StoreError::Conflict);
                }
            }
            ConversationWrite::Update { conversation: c, expected_version } => {
                match self.conversations.get(&keys::conversation(&c.workspace, c.id)) {
                    Some(stored) if stored.version == *expected_version => {}
                    _ => return Err(StoreError::Conflict),
                }
            }
        }
        Ok(())
    }

    fn apply_conversation_write(&mut self, w: ConversationWrite) {
        match w {
            ConversationWrite::Create { conversation: c, .. } => {
                self.current.insert(keys::current_conversation(&c.workspace, c.contact_id), c.id);
                self.contact_conversations.insert(keys::contact_conversation(&c.workspace, c.contact_id, c.id), c.id);
                self.conversations.insert(keys::conversation(&c.workspace, c.id), c);
            }
            ConversationWrite::Update { conversation: c, .. } => {
                self.conversations.insert(keys::conversation(&c.workspace, c.id), c);
            }
        }
    }

    /// An audit entry under its own workspace and conversation (entries are immutable).
    fn put_audit(&mut self, e: domain::audit::AuditEntry) {
        self.audit.insert(keys::audit(&e.workspace, e.conversation, &e.id), e);
    }

    fn index_name(&mut self, c: &Contact) {
        if let Some(key) = c.name.as_deref().and_then(domain::contacts::name_key) {
            self.names.insert(keys::contact_name(&c.workspace, &key, c.id), c.id);
        }
    }

    /// Whether the stored contact is at `expected` (a missing one never is).
    fn contact_at(&self, c: &Contact, expected: u64) -> bool {
        self.contacts.get(&keys::contact(&c.workspace, c.id)).is_some_and(|x| x.version == expected)
    }

    fn ledger_key(e: &LedgerEntry) -> Key {
        keys::ledger_entry(&e.workspace, e.day(), e.message_id, e.kind)
    }

    fn ledger_free(&self, e: Option<&LedgerEntry>) -> bool {
        e.is_none_or(|e| !self.ledger.contains_key(&Self::ledger_key(e)))
    }

    /// Writes the entry and adds it to its counters (the caller checked it is new).
    fn apply_ledger(&mut self, e: LedgerEntry) {
        let month = e.month();
        for d in e.dimensions() {
            let k = keys::cost_counter(&e.workspace, month, &d, e.message_id);
            self.counters.entry(k).or_insert_with(|| Counter { dimension: d, totals: Totals::default() }).totals +=
                e.totals;
        }
        self.ledger.insert(Self::ledger_key(&e), e);
    }

    fn message_mut(&mut self, ws: &WorkspaceId, conv: ConversationId, id: MessageId) -> Option<&mut Message> {
        self.messages.get_mut(&conversation_partition(ws, conv)).and_then(|m| m.get_mut(&id))
    }
}

/// The first `limit` of `rest` (already sorted and past the cursor), and the next cursor if more remain.
fn paginate<T>(rest: Vec<(String, T)>, limit: u16) -> (Vec<T>, Option<String>) {
    let limit = usize::from(limit.max(1));
    let more = rest.len() > limit;
    let page: Vec<(String, T)> = rest.into_iter().take(limit).collect();
    let next = if more { page.last().map(|(k, _)| k.clone()) } else { None };
    (page.into_iter().map(|(_, v)| v).collect(), next)
}

#[async_trait]
impl ChannelDirectory for MemoryStore {
    async fn channel_account(&self, channel: Channel, address: &str) -> Result<Option<ChannelAccount>, StoreError> {
        Ok(self.with(|s| s.channels.get(&keys::channel_account(channel, address)).cloned()))
    }
    async fn put_channel_account(&self, account: &ChannelAccount) -> Result<(), StoreError> {
        self.with(|s| s.channels.insert(keys::channel_account(account.channel, &account.address), account.clone()));
        Ok(())
    }
    async fn connect_channel_account(&self, account: &ChannelAccount) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            let k = keys::channel_account(account.channel, &account.address);
            if s.channels.get(&k).is_some_and(|held| held.workspace != account.workspace) {
                return false;
            }
            s.channels.insert(k, account.clone());
            true
        }))
    }
    async fn disconnect_channel_account(
        &self,
        ws: &WorkspaceId,
        channel: Channel,
        address: &str,
    ) -> Result<Option<ChannelAccount>, StoreError> {
        Ok(self.with(|s| {
            let k = keys::channel_account(channel, address);
            match s.channels.get(&k) {
                Some(held) if &held.workspace == ws => s.channels.remove(&k),
                _ => None,
            }
        }))
    }
    async fn channel_accounts(&self, ws: &WorkspaceId) -> Result<Vec<ChannelAccount>, StoreError> {
        let mut all: Vec<ChannelAccount> =
            self.with(|s| s.channels.values().filter(|a| &a.workspace == ws).cloned().collect());
        all.sort_by(|a, b| (a.channel.as_str(), &a.address).cmp(&(b.channel.as_str(), &b.address)));
        Ok(all)
    }
}

#[async_trait]
impl domain::ports::WorkspaceStore for MemoryStore {
    async fn workspace_settings(&self, ws: &WorkspaceId) -> Result<domain::workspace::Settings, StoreError> {
        Ok(self.with(|s| s.settings.get(&keys::workspace_settings(ws)).cloned().unwrap_or_default()))
    }
    async fn put_workspace_settings(
        &self,
        ws: &WorkspaceId,
        settings: &domain::workspace::Settings,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            s.settings.insert(keys::workspace_settings(ws), settings.clone());
            if settings.retention_days.is_some() {
                s.retention_workspaces.insert(ws.clone());
            } else {
                s.retention_workspaces.remove(ws);
            }
        });
        Ok(())
    }
    async fn retention_workspaces(&self) -> Result<Vec<WorkspaceId>, StoreError> {
        Ok(self.with(|s| s.retention_workspaces.iter().cloned().collect()))
    }
}

#[async_trait]
impl RateLimiter for MemoryStore {
    async fn take(
        &self,
        ws: &WorkspaceId,
        key: &str,
        at: OffsetDateTime,
        window: time::Duration,
        limit: u32,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| {
            let n = s.rates.entry(keys::rate_window(ws, key, at, window)).or_insert(0);
            if *n >= limit {
                return false;
            }
            *n += 1;
            true
        }))
    }
}

#[async_trait]
impl InboundStore for MemoryStore {
    async fn provider_message(
        &self,
        ws: &WorkspaceId,
        provider: &str,
        id: &str,
    ) -> Result<Option<(ConversationId, MessageId)>, StoreError> {
        Ok(self.with(|s| s.provider_messages.get(&keys::provider_message(ws, provider, id)).copied()))
    }

    async fn contact_by_identity(&self, ws: &WorkspaceId, identity: &Identity) -> Result<Option<Contact>, StoreError> {
        Ok(self.with(|s| {
            let id = s.identities.get(&keys::identity(ws, identity))?;
            s.contacts.get(&keys::contact(ws, *id)).cloned()
        }))
    }

    async fn current_conversation(
        &self,
        ws: &WorkspaceId,
        contact: &Contact,
    ) -> Result<Option<Conversation>, StoreError> {
        Ok(self.with(|s| {
            let id = s.current.get(&keys::current_conversation(ws, contact.id))?;
            s.conversations.get(&keys::conversation(ws, *id)).cloned()
        }))
    }

    async fn complete_message(&self, m: &Message) -> Result<(), StoreError> {
        fits_an_item(m)?;
        self.with(|s| match s.message_mut(&m.workspace, m.conversation_id, m.id) {
            Some(stored) => {
                *stored = m.clone();
                Ok(())
            }
            None => Err(StoreError::Conflict),
        })
    }

    async fn commit_inbound(&self, c: InboundCommit) -> Result<(), StoreError> {
        fits_an_item(&c.message)?;
        self.with(|s| {
            let ws = c.message.workspace.clone();
            let pkey = keys::provider_message(&ws, &c.provider, &c.provider_message_id);
            if s.provider_messages.contains_key(&pkey) {
                return Err(StoreError::Duplicate);
            }
            if let Some(contact) = &c.new_contact {
                let taken = contact.identities.iter().any(|i| s.identities.contains_key(&keys::identity(&ws, i)))
                    || s.contacts.contains_key(&keys::contact(&ws, contact.id));
                if taken {
                    return Err(StoreError::Conflict);
                }
            }
            s.check_conversation_write(&c.conversation)?;
            let part = conversation_partition(&ws, c.message.conversation_id);
            if s.messages.get(&part).is_some_and(|m| m.contains_key(&c.message.id)) || !s.ledger_free(c.cost.as_ref()) {
                return Err(StoreError::Conflict);
            }
            if let Some(e) = c.cost {
                s.apply_ledger(e);
            }
            if let Some(r) = c.consent {
                s.consent.insert(keys::consent(&ws, &r.identity), r);
            }
            s.provider_messages.insert(pkey, (c.message.conversation_id, c.message.id));
            if let Some(contact) = c.new_contact {
                for i in &contact.identities {
                    s.identities.insert(keys::identity(&ws, i), contact.id);
                }
                s.index_name(&contact);
                s.contacts.insert(keys::contact(&ws, contact.id), contact);
            }
            s.apply_conversation_write(c.conversation);
            s.messages.entry(part).or_default().insert(c.message.id, c.message);
            Ok(())
        })
    }

    async fn commit_outreach(&self, c: OutreachCommit) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(contact) = &c.new_contact {
                let ws = &contact.workspace;
                let taken = contact.identities.iter().any(|i| s.identities.contains_key(&keys::identity(ws, i)))
                    || s.contacts.contains_key(&keys::contact(ws, contact.id));
                if taken {
                    return Err(StoreError::Conflict);
                }
            }
            s.check_conversation_write(&c.conversation)?;
            if let Some(contact) = c.new_contact {
                for i in &contact.identities {
                    s.identities.insert(keys::identity(&contact.workspace, i), contact.id);
                }
                s.index_name(&contact);
                s.contacts.insert(keys::contact(&contact.workspace, contact.id), contact);
            }
            s.apply_conversation_write(c.conversation);
            Ok(())
        })
    }
}

#[async_trait]
impl ConversationReader for MemoryStore {
    async fn conversation(&self, ws: &WorkspaceId, id: ConversationId) -> Result<Option<Conversation>, StoreError> {
        Ok(self.with(|s| s.conversations.get(&keys::conversation(ws, id)).cloned()))
    }

    async fn contact(&self, ws: &WorkspaceId, id: ContactId) -> Result<Option<Contact>, StoreError> {
        Ok(self.with(|s| s.contacts.get(&keys::contact(ws, id)).cloned()))
    }

    async fn conversations(&self, ws: &WorkspaceId, q: &ConversationQuery) -> Result<Page<Conversation>, StoreError> {
        let after = match &q.cursor {
            None => None,
            Some(c) => Some(keys::decode_activity_cursor(c).ok_or(StoreError::BadCursor)?.0),
        };
        let mut matching: Vec<(String, Conversation)> = self.with(|s| {
            s.conversations
                .values()
                .filter(|c| &c.workspace == ws && c.status == q.status)
                .filter(|c| match &q.assignee {
                    AssigneeFilter::Any => true,
                    AssigneeFilter::Unassigned => c.assignee.is_none(),
                    AssigneeFilter::Agent(a) => c.assignee.as_ref() == Some(a),
                    AssigneeFilter::Team(t) => c.team.as_ref() == Some(t),
                })
                .map(|c| (keys::activity_sort(c.last_activity_at, c.id), c.clone()))
                .collect()
        });
        matching.sort_by(|a, b| b.0.cmp(&a.0));
        // A cursor names a position, not an item: resume strictly after that sort key even if the
        // item itself has since moved.
        let rest: Vec<(String, Conversation)> = match &after {
            None => matching,
            Some(a) => matching.into_iter().filter(|(k, _)| k < a).collect(),
        };
        let (items, next) = paginate(rest, q.limit);
        Ok(Page { items, next: next.map(|k| keys::encode_cursor(&k)) })
    }

    async fn messages(
        &self,
        ws: &WorkspaceId,
        id: ConversationId,
        order: Order,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Message>, StoreError> {
        let after = match cursor {
            None => None,
            Some(c) => Some(keys::decode_message_cursor(c).ok_or(StoreError::BadCursor)?),
        };
        let mut all: Vec<(String, Message)> = self.with(|s| {
            s.messages
                .get(&conversation_partition(ws, id))
                .map(|m| m.values().map(|v| (v.id.to_string(), v.clone())).collect())
                .unwrap_or_default()
        });
        if order == Order::Newest {
            all.reverse();
        }
        let rest: Vec<(String, Message)> = match after {
            None => all,
            Some(a) => {
                all.into_iter().filter(|(_, m)| if order == Order::Oldest { m.id > a } else { m.id < a }).collect()
            }
        };
        let (items, next) = paginate(rest, limit);
        Ok(Page { items, next: next.map(|k| keys::encode_cursor(&k)) })
    }

    async fn message(
        &self,
        ws: &WorkspaceId,
        conv: ConversationId,
        id: MessageId,
    ) -> Result<Option<Message>, StoreError> {
        Ok(self.with(|s| s.messages.get(&conversation_partition(ws, conv)).and_then(|m| m.get(&id)).cloned()))
    }
}

#[async_trait]
impl ReplyStore for MemoryStore {
    async fn idempotency_record(
        &self,
        ws: &WorkspaceId,
        agent: &AgentId,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self.with(|s| s.idempotency.get(&keys::idempotency(ws, agent, key)).cloned()))
    }

    async fn commit_reply(&self, c: ReplyCommit) -> Result<(), StoreError> {
        fits_an_item(&c.message)?;
        self.with(|s| {
            let r = &c.idempotency;
            let ikey = keys::idempotency(&r.workspace, &r.agent, &r.key);
            if s.idempotency.contains_key(&ikey) {
                return Err(StoreError::Duplicate);
            }
            let write =
                ConversationWrite::Update { conversation: c.conversation, expected_version: c.expected_version };
            s.check_conversation_write(&write)?;
            let part = conversation_partition(&c.message.workspace, c.message.conversation_id);
            if s.messages.get(&part).is_some_and(|m| m.contains_key(&c.message.id)) || !s.ledger_free(c.cost.as_ref()) {
                return Err(StoreError::Conflict);
            }
            if let Some(e) = c.cost {
                s.apply_ledger(e);
            }
            s.idempotency.insert(ikey, c.idempotency);
            s.apply_conversation_write(write);
            s.messages.entry(part).or_default().insert(c.message.id, c.message);
            Ok(())
        })
    }

    async fn mark_enqueued(&self, ws: &WorkspaceId, agent: &AgentId, key: &IdempotencyKey) -> Result<(), StoreError> {
        self.with(|s| match s.idempotency.get_mut(&keys::idempotency(ws, agent, key)) {
            Some(r) => {
                r.enqueued = true;
                Ok(())
            }
            None => Err(StoreError::Conflict),
        })
    }
}

fn push_status(m: &mut Message, event: DeliveryEvent) {
    m.status = event.status;
    m.status_history.push(event);
}

#[async_trait]
impl DeliveryStore for MemoryStore {
    async fn claim_for_send(
        &self,
        ws: &WorkspaceId,
        conv: ConversationId,
        id: MessageId,
        at: OffsetDateTime,
    ) -> Result<Claim, StoreError> {
        Ok(self.with(|s| match s.message_mut(ws, conv, id) {
            None => Claim::NotFound,
            Some(m) if m.status == DeliveryStatus::Queued => {
                push_status(m, DeliveryEvent::new(DeliveryStatus::Sending, at));
                Claim::Claimed(m.clone())
            }
            Some(m) if m.status == DeliveryStatus::Sending && m.provider_message_id.is_none() => {
                Claim::InFlight(m.clone())
            }
            Some(m) => Claim::Done(m.clone()),
        }))
    }

    async fn release_claim(&self, ws: &WorkspaceId, conv: ConversationId, id: MessageId) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(m) = s.message_mut(ws, conv, id).filter(|m| m.status == DeliveryStatus::Sending) {
                let at = OffsetDateTime::now_utc();
                push_status(m, DeliveryEvent::new(DeliveryStatus::Queued, at));
            }
        });
        Ok(())
    }

    async fn record_provider_id(
        &self,
        ws: &WorkspaceId,
        conv: ConversationId,
        id: MessageId,
        provider: &str,
        provider_message_id: &str,
        usage: Option<&LedgerEntry>,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            if !s.ledger_free(usage) {
                return Err(StoreError::Duplicate);
            }
            let m = s.message_mut(ws, conv, id).ok_or(StoreError::Conflict)?;
            if let Some(e) = usage {
                let cost = m.cost.as_mut().ok_or(StoreError::Conflict)?;
                cost.provider_micros += e.totals.provider_micros;
                cost.aws_micros += e.totals.aws_micros;
            }
            m.provider = Some(provider.to_owned());
            m.provider_message_id = Some(provider_message_id.to_owned());
            if let Some(e) = usage {
                s.apply_ledger(e.clone());
            }
            s.provider_messages.insert(keys::provider_message(ws, provider, provider_message_id), (conv, id));
            Ok(())
        })
    }

    async fn advance_status(
        &self,
        ws: &WorkspaceId,
        conv: ConversationId,
        id: MessageId,
        event: &DeliveryEvent,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.message_mut(ws, conv, id) {
            Some(m) if m.status.can_advance_to(event.status) => {
                push_status(m, event.clone());
                true
            }
            _ => false,
        }))
    }
}

/// Counters of the partitions `pks` whose sort key starts with `prefix`, shards merged, in key
/// order, those after the group key `after` only.
fn merged_counters(s: &State, pks: &[String], prefix: &str, after: Option<&str>) -> Vec<(String, Counter)> {
    let mut shards: Vec<(String, Counter)> = s
        .counters
        .iter()
        .filter(|(k, _)| pks.contains(&k.pk) && k.sk.starts_with(prefix))
        .map(|(k, c)| (k.sk.clone(), c.clone()))
        .collect();
    shards.sort_by(|a, b| a.0.cmp(&b.0));
    keys::merge_shards(shards).into_iter().filter(|(group, _)| after.is_none_or(|a| group.as_str() > a)).collect()
}

#[async_trait]
impl CostLedger for MemoryStore {
    async fn record_cost(&self, e: &LedgerEntry) -> Result<(), StoreError> {
        self.with(|s| {
            if !s.ledger_free(Some(e)) {
                return Err(StoreError::Duplicate);
            }
            if e.kind != EntryKind::Estimate {
                let m = s.message_mut(&e.workspace, e.conversation_id, e.message_id).ok_or(StoreError::Conflict)?;
                let cost = m.cost.as_mut().ok_or(StoreError::Conflict)?;
                cost.provider_micros += e.totals.provider_micros;
                cost.aws_micros += e.totals.aws_micros;
                if e.kind == EntryKind::Actual {
                    cost.actual_micros = Some(e.totals.actual_micros);
                }
            }
            s.apply_ledger(e.clone());
            Ok(())
        })
    }

    async fn counters(
        &self,
        ws: &WorkspaceId,
        month: Month,
        grouping: Grouping,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Counter>, StoreError> {
        let prefix = keys::counter_prefix(grouping);
        let after = keys::sort_cursor_after(cursor, prefix)?;
        let all = self.with(|s| merged_counters(s, &keys::cost_partitions(ws, month), prefix, after.as_deref()));
        if !matches!(grouping, Grouping::Conversation | Grouping::Contact) {
            return Ok(Page { items: all.into_iter().map(|(_, c)| c).collect(), next: None });
        }
        let (items, next) = paginate(all, limit);
        Ok(Page { items, next: next.map(|sk| keys::encode_cursor(&sk)) })
    }

    async fn spend(&self, ws: &WorkspaceId, month: Month, scope: BudgetScope) -> Result<Totals, StoreError> {
        let prefix = keys::budget_scope_prefix(scope);
        Ok(self.with(|s| {
            merged_counters(s, &keys::cost_partitions(ws, month), &prefix, None)
                .into_iter()
                .fold(Totals::default(), |t, (_, c)| t + c.totals)
        }))
    }

    async fn entries(
        &self,
        ws: &WorkspaceId,
        day: time::Date,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<LedgerEntry>, StoreError> {
        let pks = keys::ledger_partitions(ws, day);
        self.with(|s| sharded_prefix_page(&s.ledger, &pks, "", limit, cursor))
    }
}

#[async_trait]
impl RateCardStore for MemoryStore {
    async fn rate_cards(&self, ws: &WorkspaceId) -> Result<Vec<RateCard>, StoreError> {
        let pk = keys::rate_card_partition(ws);
        Ok(self.with(|s| s.rate_cards.iter().filter(|(k, _)| k.pk == pk).map(|(_, c)| c.clone()).collect()))
    }

    async fn create_rate_card(&self, ws: &WorkspaceId, card: &RateCard) -> Result<(), StoreError> {
        self.with(|s| {
            let k = keys::rate_card(ws, card.version);
            if s.rate_cards.contains_key(&k) {
                return Err(StoreError::Duplicate);
            }
            s.rate_cards.insert(k, card.clone());
            Ok(())
        })
    }
}

#[async_trait]
impl BudgetStore for MemoryStore {
    async fn budgets(&self, ws: &WorkspaceId) -> Result<Vec<Budget>, StoreError> {
        let pk = keys::budget_partition(ws, 0);
        Ok(self.with(|s| s.budgets.iter().filter(|(k, _)| k.pk == pk).map(|(_, b)| b.clone()).collect()))
    }

    async fn put_budget(&self, ws: &WorkspaceId, budget: &Budget) -> Result<(), StoreError> {
        self.with(|s| s.budgets.insert(keys::budget(ws, budget.scope, 0), budget.clone()));
        Ok(())
    }

    async fn claim_alert(
        &self,
        ws: &WorkspaceId,
        month: Month,
        scope: BudgetScope,
        threshold: u8,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.alerts.insert(keys::budget_alert(ws, month, scope, threshold))))
    }

    async fn release_alert(
        &self,
        ws: &WorkspaceId,
        month: Month,
        scope: BudgetScope,
        threshold: u8,
    ) -> Result<(), StoreError> {
        self.with(|s| s.alerts.remove(&keys::budget_alert(ws, month, scope, threshold)));
        Ok(())
    }

    async fn alerted(&self, ws: &WorkspaceId, month: Month) -> Result<Vec<(BudgetScope, u8)>, StoreError> {
        let pk = keys::alert_partition(ws, month);
        Ok(self
            .with(|s| s.alerts.iter().filter(|k| k.pk == pk).filter_map(|k| keys::parse_budget_alert(&k.sk)).collect()))
    }
}

#[async_trait]
impl ConsentStore for MemoryStore {
    async fn consent(
        &self,
        ws: &WorkspaceId,
        identity: &Identity,
    ) -> Result<Option<domain::consent::Record>, StoreError> {
        Ok(self.with(|s| s.consent.get(&keys::consent(ws, identity)).cloned()))
    }
    async fn put_consent(&self, ws: &WorkspaceId, record: &domain::consent::Record) -> Result<(), StoreError> {
        self.with(|s| s.consent.insert(keys::consent(ws, &record.identity), record.clone()));
        Ok(())
    }
}

#[async_trait]
impl AgentStore for MemoryStore {
    async fn put_agent(&self, ws: &WorkspaceId, a: &domain::routing::AgentState) -> Result<(), StoreError> {
        self.with(|s| {
            let k = keys::agent(ws, &a.id);
            let (load, last) = s.agents.get(&k).map_or((0, None), |old| (old.load, old.last_assigned_at));
            s.agents.insert(k, domain::routing::AgentState { load, last_assigned_at: last, ..a.clone() });
        });
        Ok(())
    }

    async fn agents(&self, ws: &WorkspaceId) -> Result<Vec<domain::routing::AgentState>, StoreError> {
        let prefix = keys::agent_prefix(ws);
        Ok(self.with(|s| s.agents.iter().filter(|(k, _)| k.pk.starts_with(&prefix)).map(|(_, a)| a.clone()).collect()))
    }
}

#[async_trait]
impl RoutingStore for MemoryStore {
    async fn routing_rules(&self, ws: &WorkspaceId) -> Result<domain::routing::RoutingRules, StoreError> {
        Ok(self.with(|s| s.routing_rules.get(&keys::routing_rules(ws)).cloned().unwrap_or_default()))
    }

    async fn put_routing_rules(
        &self,
        ws: &WorkspaceId,
        rules: &domain::routing::RoutingRules,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            s.routing_rules.insert(keys::routing_rules(ws), rules.clone());
            if rules.nps.enabled {
                s.nps_workspaces.insert(ws.clone());
            } else {
                s.nps_workspaces.remove(ws);
            }
        });
        Ok(())
    }

    async fn nps_workspaces(&self) -> Result<Vec<WorkspaceId>, StoreError> {
        Ok(self.with(|s| s.nps_workspaces.iter().cloned().collect()))
    }

    async fn teams(&self, ws: &WorkspaceId) -> Result<Vec<domain::routing::Team>, StoreError> {
        let pk = keys::routing_partition(ws);
        Ok(self.with(|s| s.teams.iter().filter(|(k, _)| k.pk == pk).map(|(_, t)| t.clone()).collect()))
    }

    async fn put_team(&self, ws: &WorkspaceId, team: &domain::routing::Team) -> Result<(), StoreError> {
        self.with(|s| s.teams.insert(keys::team(ws, &team.id), team.clone()));
        Ok(())
    }

    async fn sla_policy(&self, ws: &WorkspaceId) -> Result<domain::sla::Policy, StoreError> {
        Ok(self.with(|s| s.sla_policies.get(&keys::sla_policy(ws)).cloned().unwrap_or_default()))
    }

    async fn put_sla_policy(&self, ws: &WorkspaceId, policy: &domain::sla::Policy) -> Result<(), StoreError> {
        self.with(|s| s.sla_policies.insert(keys::sla_policy(ws), policy.clone()));
        Ok(())
    }

    async fn privacy_policy(&self, ws: &WorkspaceId) -> Result<domain::redact::Policy, StoreError> {
        Ok(self.with(|s| s.privacy_policies.get(&keys::privacy_policy(ws)).cloned().unwrap_or_default()))
    }

    async fn put_privacy_policy(&self, ws: &WorkspaceId, policy: &domain::redact::Policy) -> Result<(), StoreError> {
        self.with(|s| s.privacy_policies.insert(keys::privacy_policy(ws), policy.clone()));
        Ok(())
    }

    async fn sla_setup(&self, ws: &WorkspaceId) -> Result<domain::sla::Setup, StoreError> {
        let team_hours = self.teams(ws).await?.into_iter().filter_map(|t| Some((t.id, t.hours?))).collect();
        Ok(domain::sla::Setup {
            policy: self.sla_policy(ws).await?,
            privacy: self.privacy_policy(ws).await?,
            hours: self.routing_rules(ws).await?.hours,
            team_hours,
        })
    }

    async fn waiting(&self, ws: &WorkspaceId) -> Result<Vec<domain::routing::Work>, StoreError> {
        let pks = keys::waiting_partitions(ws);
        Ok(self.with(|s| s.waiting.iter().filter(|(k, _)| pks.contains(&k.pk)).map(|(_, w)| w.clone()).collect()))
    }

    async fn commit_routing(&self, c: RoutingCommit) -> Result<(), StoreError> {
        let ws = c.conversation.workspace.clone();
        let ck = keys::conversation(&ws, c.conversation.id);
        self.with(|s| {
            // Every condition first, then every write: all or nothing, like the transaction.
            match s.conversations.get(&ck) {
                Some(stored) if stored.version == c.expected_version => {}
                _ => return Err(StoreError::Conflict),
            }
            if let Some(t) = &c.take {
                let Some(a) = s.agents.get(&keys::agent(&ws, &t.agent)) else {
                    return Err(StoreError::Conflict);
                };
                if let Some(cap) = t.capacity {
                    let room = a.presence == domain::routing::Presence::Online
                        && a.capacity == cap
                        && a.load + t.weight <= cap;
                    if !room {
                        return Err(StoreError::Conflict);
                    }
                }
            }
            if let Some((agent, w)) = &c.give_back {
                if let Some(a) = s.agents.get_mut(&keys::agent(&ws, agent)) {
                    a.load = a.load.saturating_sub(*w);
                }
            }
            if let Some(t) = &c.take {
                if let Some(a) = s.agents.get_mut(&keys::agent(&ws, &t.agent)) {
                    a.load += t.weight;
                    a.last_assigned_at = Some(t.at);
                }
            }
            let wk = keys::waiting(&ws, c.conversation.id);
            match &c.queue {
                QueueChange::Keep => {}
                QueueChange::Add(w) => {
                    s.waiting.insert(wk, w.clone());
                }
                QueueChange::Remove => {
                    s.waiting.remove(&wk);
                }
            }
            if let Some(e) = &c.audit {
                s.put_audit(e.clone());
            }
            s.conversations.insert(ck, c.conversation);
            Ok(())
        })
    }

    async fn set_presence(
        &self,
        ws: &WorkspaceId,
        agent: &AgentId,
        presence: domain::routing::Presence,
        default_capacity: u32,
        now: time::OffsetDateTime,
    ) -> Result<PresenceSet, StoreError> {
        Ok(self.with(|s| {
            let key = keys::agent(ws, agent);
            let was_online = s.agents.get(&key).is_some_and(|a| a.presence == domain::routing::Presence::Online);
            let since = s.presence_since.insert(key.clone(), now);
            let online_since = since.filter(|_| was_online);
            let a = s
                .agents
                .entry(key)
                .or_insert_with(|| domain::routing::AgentState::first_seen(agent.clone(), presence, default_capacity));
            a.presence = presence;
            PresenceSet { state: a.clone(), online_since }
        }))
    }
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn put_connection(&self, c: &domain::realtime::Connection) -> Result<(), StoreError> {
        self.with(|s| s.connections.insert(keys::connection_pointer(&c.id), c.clone()));
        Ok(())
    }

    async fn connection(&self, id: &domain::ConnectionId) -> Result<Option<domain::realtime::Connection>, StoreError> {
        Ok(self.with(|s| s.connections.get(&keys::connection_pointer(id)).cloned()))
    }

    async fn connections(&self, ws: &WorkspaceId) -> Result<Vec<domain::realtime::Connection>, StoreError> {
        Ok(self.connections_where(ws, |_| true))
    }

    async fn agent_connections(
        &self,
        ws: &WorkspaceId,
        agent: &domain::AgentId,
    ) -> Result<Vec<domain::realtime::Connection>, StoreError> {
        Ok(self.connections_where(ws, |c| &c.agent == agent))
    }

    async fn overseer_connections(&self, ws: &WorkspaceId) -> Result<Vec<domain::realtime::Connection>, StoreError> {
        Ok(self.connections_where(ws, |c| c.role.oversees()))
    }

    async fn watching(
        &self,
        ws: &WorkspaceId,
        conversation: ConversationId,
    ) -> Result<Vec<domain::realtime::Connection>, StoreError> {
        Ok(self.connections_where(ws, |c| c.viewing == Some(conversation) || c.subscriptions.contains(&conversation)))
    }

    async fn delete_connection(&self, ws: &WorkspaceId, id: &domain::ConnectionId) -> Result<(), StoreError> {
        self.with(|s| {
            let k = keys::connection_pointer(id);
            if s.connections.get(&k).is_some_and(|c| &c.workspace == ws) {
                s.connections.remove(&k);
            }
        });
        Ok(())
    }
}

impl MemoryStore {
    /// A workspace's connections that `keep`, in id order (as a partition lists them).
    fn connections_where(
        &self,
        ws: &WorkspaceId,
        keep: impl Fn(&domain::realtime::Connection) -> bool,
    ) -> Vec<domain::realtime::Connection> {
        self.with(|s| {
            let mut found: Vec<_> = s.connections.values().filter(|c| &c.workspace == ws && keep(c)).cloned().collect();
            found.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
            found
        })
    }
}

#[async_trait]
impl AuditLog for MemoryStore {
    async fn record_audit(&self, e: &domain::audit::AuditEntry) -> Result<(), StoreError> {
        self.with(|s| s.put_audit(e.clone()));
        Ok(())
    }

    async fn audit_trail(
        &self,
        ws: &WorkspaceId,
        conversation: Option<ConversationId>,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<domain::audit::AuditEntry>, StoreError> {
        let (pk, prefix) = keys::audit_partition(ws, conversation);
        self.with(|s| prefix_page(&s.audit, &pk, prefix, limit, cursor))
    }
}

/// The items of partition `pk` under `prefix` after the cursor, in key order, one page.
fn prefix_page<T: Clone>(
    map: &BTreeMap<Key, T>,
    pk: &str,
    prefix: &str,
    limit: u16,
    cursor: Option<&Cursor>,
) -> Result<Page<T>, StoreError> {
    sharded_prefix_page(map, &[pk.to_owned()], prefix, limit, cursor)
}

/// [`prefix_page`] over the shards of one sharded partition, merged in sort-key order.
fn sharded_prefix_page<T: Clone>(
    map: &BTreeMap<Key, T>,
    pks: &[String],
    prefix: &str,
    limit: u16,
    cursor: Option<&Cursor>,
) -> Result<Page<T>, StoreError> {
    let after = keys::sort_cursor_after(cursor, prefix)?;
    let mut rest: Vec<(String, T)> = map
        .iter()
        .filter(|(k, _)| pks.contains(&k.pk) && k.sk.starts_with(prefix) && after.as_ref().is_none_or(|a| k.sk > *a))
        .map(|(k, v)| (k.sk.clone(), v.clone()))
        .collect();
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    let (items, next) = paginate(rest, limit);
    Ok(Page { items, next: next.map(|sk| keys::encode_cursor(&sk)) })
}

#[async_trait]
impl NoteStore for MemoryStore {
    async fn add_note(
        &self,
        note: &domain::inbox::Note,
        audit: &domain::audit::AuditEntry,
        key: &IdempotencyKey,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            let marker = keys::note_idempotency(&note.workspace, &note.author, key);
            let k = keys::note(&note.workspace, note.conversation_id, &note.id);
            if s.note_keys.contains_key(&marker) {
                return Err(StoreError::Duplicate);
            }
            if s.notes.contains_key(&k) {
                return Err(StoreError::Conflict);
            }
            s.note_keys.insert(marker, k.clone());
            s.notes.insert(k, note.clone());
            s.put_audit(audit.clone());
            Ok(())
        })
    }

    async fn note_by_key(
        &self,
        ws: &WorkspaceId,
        author: &AgentId,
        key: &IdempotencyKey,
    ) -> Result<Option<domain::inbox::Note>, StoreError> {
        Ok(self
            .with(|s| s.note_keys.get(&keys::note_idempotency(ws, author, key)).and_then(|k| s.notes.get(k)).cloned()))
    }

    async fn notes(
        &self,
        ws: &WorkspaceId,
        conv: ConversationId,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<domain::inbox::Note>, StoreError> {
        self.with(|s| prefix_page(&s.notes, &keys::conversation(ws, conv).pk, keys::NOTE_PREFIX, limit, cursor))
    }
}

#[async_trait]
impl ContactHistory for MemoryStore {
    async fn contact_conversations(
        &self,
        ws: &WorkspaceId,
        contact: ContactId,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Conversation>, StoreError> {
        self.with(|s| {
            let pk = keys::contact(ws, contact).pk;
            let ids = prefix_page(&s.contact_conversations, &pk, keys::CONTACT_CONVERSATION_PREFIX, limit, cursor)?;
            let items =
                ids.items.iter().filter_map(|id| s.conversations.get(&keys::conversation(ws, *id)).cloned()).collect();
            Ok(Page { items, next: ids.next })
        })
    }
}

#[async_trait]
impl TemplateStore for MemoryStore {
    async fn whatsapp_templates(
        &self,
        ws: &WorkspaceId,
    ) -> Result<Vec<domain::channels::templates::WhatsAppTemplate>, StoreError> {
        let pk = keys::whatsapp_template_partition(ws);
        Ok(self.with(|s| s.templates.iter().filter(|(k, _)| k.pk == pk).map(|(_, t)| t.clone()).collect()))
    }

    async fn whatsapp_template(
        &self,
        ws: &WorkspaceId,
        name: &str,
        language: &str,
    ) -> Result<Option<domain::channels::templates::WhatsAppTemplate>, StoreError> {
        Ok(self.with(|s| s.templates.get(&keys::whatsapp_template(ws, name, language)).cloned()))
    }

    async fn put_whatsapp_template(
        &self,
        ws: &WorkspaceId,
        t: &domain::channels::templates::WhatsAppTemplate,
    ) -> Result<(), StoreError> {
        self.with(|s| s.templates.insert(keys::whatsapp_template(ws, &t.name, &t.language), t.clone()));
        Ok(())
    }

    async fn whatsapp_template_by_meta_id(
        &self,
        meta_id: &str,
    ) -> Result<Option<(WorkspaceId, domain::channels::templates::WhatsAppTemplate)>, StoreError> {
        Ok(self.with(|s| {
            s.templates.iter().find(|(_, t)| t.meta_id.as_deref() == Some(meta_id)).and_then(|(k, t)| {
                let ws = k.pk.strip_prefix("WS#")?.strip_suffix("#WATEMPLATE")?;
                Some((WorkspaceId::parse(ws).ok()?, t.clone()))
            })
        }))
    }

    async fn replace_whatsapp_template(
        &self,
        ws: &WorkspaceId,
        t: &domain::channels::templates::WhatsAppTemplate,
        reviewed_at: Option<time::OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let k = keys::whatsapp_template(ws, &t.name, &t.language);
        Ok(self.with(|s| match s.templates.get(&k) {
            Some(held) if held.reviewed_at == reviewed_at => {
                s.templates.insert(k, t.clone());
                true
            }
            _ => false,
        }))
    }
}

#[async_trait]
impl CannedStore for MemoryStore {
    async fn canned_responses(&self, ws: &WorkspaceId) -> Result<Vec<domain::canned::CannedResponse>, StoreError> {
        let pk = keys::canned_partition(ws);
        Ok(self.with(|s| s.canned.iter().filter(|(k, _)| k.pk == pk).map(|(_, r)| r.clone()).collect()))
    }

    async fn canned_response(
        &self,
        ws: &WorkspaceId,
        id: &str,
    ) -> Result<Option<domain::canned::CannedResponse>, StoreError> {
        Ok(self.with(|s| s.canned.get(&keys::canned_response(ws, id)).cloned()))
    }

    async fn put_canned_response(
        &self,
        ws: &WorkspaceId,
        r: &domain::canned::CannedResponse,
    ) -> Result<(), StoreError> {
        self.with(|s| s.canned.insert(keys::canned_response(ws, &r.id), r.clone()));
        Ok(())
    }

    async fn delete_canned_response(&self, ws: &WorkspaceId, id: &str) -> Result<(), StoreError> {
        self.with(|s| s.canned.remove(&keys::canned_response(ws, id)));
        Ok(())
    }

    async fn record_canned_use(&self, ws: &WorkspaceId, agent: &AgentId, id: &str) -> Result<(), StoreError> {
        self.with(|s| *s.canned_uses.entry(keys::canned_use(ws, agent, id)).or_default() += 1);
        Ok(())
    }

    async fn canned_usage(&self, ws: &WorkspaceId, agent: &AgentId) -> Result<HashMap<String, u32>, StoreError> {
        let pk = keys::canned_use_partition(ws, agent);
        Ok(self.with(|s| s.canned_uses.iter().filter(|(k, _)| k.pk == pk).map(|(k, n)| (k.sk.clone(), *n)).collect()))
    }
}

#[async_trait]
impl ReorgStore for MemoryStore {
    async fn move_messages(
        &self,
        ws: &WorkspaceId,
        to: ConversationId,
        messages: &[Message],
    ) -> Result<(), StoreError> {
        if messages.len() > MOVE_CHUNK {
            return Err(StoreError::Rejected(format!("at most {MOVE_CHUNK} messages move at once").into()));
        }
        self.with(|s| {
            // Each message exactly as read, or nothing moves.
            for m in messages {
                let stored = s.messages.get(&conversation_partition(ws, m.conversation_id)).and_then(|p| p.get(&m.id));
                if stored != Some(m) {
                    return Err(StoreError::Conflict);
                }
            }
            for m in messages {
                if let Some(p) = s.messages.get_mut(&conversation_partition(ws, m.conversation_id)) {
                    p.remove(&m.id);
                }
                let mut moved = m.clone();
                moved.conversation_id = to;
                if let (Some(provider), Some(pid)) = (&m.provider, &m.provider_message_id) {
                    s.provider_messages.insert(keys::provider_message(ws, provider, pid), (to, m.id));
                }
                s.messages.entry(conversation_partition(ws, to)).or_default().insert(m.id, moved);
            }
            Ok(())
        })
    }

    async fn commit_reorg(&self, c: ReorgCommit) -> Result<(), StoreError> {
        let ws = c.source.workspace.clone();
        let sk = keys::conversation(&ws, c.source.id);
        let tk = keys::conversation(&ws, c.target.id);
        let slot = keys::current_conversation(&ws, c.source.contact_id);
        self.with(|s| {
            if s.conversations.get(&sk).map(|x| x.version) != Some(c.source_version) {
                return Err(StoreError::Conflict);
            }
            if s.conversations.get(&tk).map(|x| x.version) != c.target_version {
                return Err(StoreError::Conflict);
            }
            if c.moves_current && s.current.get(&slot) != Some(&c.source.id) {
                return Err(StoreError::Conflict);
            }
            if c.moves_current {
                s.current.insert(slot, c.target.id);
            }
            if c.target_version.is_none() {
                let history = keys::contact_conversation(&ws, c.target.contact_id, c.target.id);
                s.contact_conversations.insert(history, c.target.id);
            }
            if let Some(w) = &c.queue {
                s.waiting.remove(&keys::waiting(&ws, c.source.id));
                s.waiting.insert(keys::waiting(&ws, c.target.id), w.clone());
            }
            for e in &c.audits {
                s.put_audit(e.clone());
            }
            s.conversations.insert(sk, c.source);
            s.conversations.insert(tk, c.target);
            Ok(())
        })
    }
}

#[async_trait]
impl ContactStore for MemoryStore {
    async fn identity_owner(&self, ws: &WorkspaceId, identity: &Identity) -> Result<Option<ContactId>, StoreError> {
        Ok(self.with(|s| s.identities.get(&keys::identity(ws, identity)).copied()))
    }

    async fn link_identity(
        &self,
        contact: &Contact,
        expected_version: u64,
        identity: &Identity,
        audit: &domain::audit::AuditEntry,
    ) -> Result<(), StoreError> {
        let ws = &contact.workspace;
        self.with(|s| {
            let pointer = keys::identity(ws, identity);
            if s.identities.contains_key(&pointer) {
                return Err(StoreError::Duplicate);
            }
            if !s.contact_at(contact, expected_version) {
                return Err(StoreError::Conflict);
            }
            s.identities.insert(pointer, contact.id);
            s.contacts.insert(keys::contact(ws, contact.id), contact.clone());
            s.put_audit(audit.clone());
            Ok(())
        })
    }

    async fn unlink_identity(
        &self,
        contact: &Contact,
        expected_version: u64,
        identity: &Identity,
        audit: &domain::audit::AuditEntry,
    ) -> Result<(), StoreError> {
        let ws = &contact.workspace;
        self.with(|s| {
            let pointer = keys::identity(ws, identity);
            if s.identities.get(&pointer) != Some(&contact.id) || !s.contact_at(contact, expected_version) {
                return Err(StoreError::Conflict);
            }
            s.identities.remove(&pointer);
            s.contacts.insert(keys::contact(ws, contact.id), contact.clone());
            s.put_audit(audit.clone());
            Ok(())
        })
    }

    async fn commit_contact_merge(&self, c: ContactMergeCommit) -> Result<(), StoreError> {
        let m = c.merge;
        let ws = m.target.workspace.clone();
        self.with(|s| {
            if !s.contact_at(&m.source, c.source_version) || !s.contact_at(&m.target, c.target_version) {
                return Err(StoreError::Conflict);
            }
            if m.identities.iter().any(|i| s.identities.get(&keys::identity(&ws, i)) != Some(&m.source.id)) {
                return Err(StoreError::Conflict);
            }
            let source_slot = keys::current_conversation(&ws, m.source.id);
            let target_slot = keys::current_conversation(&ws, m.target.id);
            if s.retired.contains(&source_slot) || s.current.get(&source_slot).copied() != m.source_slot {
                return Err(StoreError::Conflict);
            }
            let hand = matches!(m.slot, domain::contacts::SlotMove::Hand(_));
            if hand && (s.current.get(&target_slot).copied() != m.target_slot || s.retired.contains(&target_slot)) {
                return Err(StoreError::Conflict);
            }
            for i in &m.identities {
                s.identities.insert(keys::identity(&ws, i), m.target.id);
            }
            s.current.remove(&source_slot);
            s.retired.insert(source_slot);
            if let domain::contacts::SlotMove::Hand(conv) = m.slot {
                s.current.insert(target_slot, conv);
            }
            if let Some(key) = m.source.name.as_deref().and_then(domain::contacts::name_key) {
                s.names.remove(&keys::contact_name(&ws, &key, m.source.id));
            }
            s.index_name(&m.target);
            s.put_audit(c.audit);
            s.contacts.insert(keys::contact(&ws, m.source.id), m.source);
            s.contacts.insert(keys::contact(&ws, m.target.id), m.target);
            Ok(())
        })
    }

    async fn move_conversations(
        &self,
        ws: &WorkspaceId,
        to: ContactId,
        conversations: &[Conversation],
    ) -> Result<(), StoreError> {
        if conversations.len() > CONTACT_MOVE_CHUNK {
            return Err(StoreError::Rejected(
                format!("at most {CONTACT_MOVE_CHUNK} conversations move at once").into(),
            ));
        }
        self.with(|s| {
            for c in conversations {
                if s.conversations.get(&keys::conversation(ws, c.id)).map(|x| x.version) != Some(c.version) {
                    return Err(StoreError::Conflict);
                }
            }
            for c in conversations {
                let mut moved = c.clone();
                moved.contact_id = to;
                moved.version += 1;
                s.contact_conversations.remove(&keys::contact_conversation(ws, c.contact_id, c.id));
                s.contact_conversations.insert(keys::contact_conversation(ws, to, c.id), c.id);
                s.conversations.insert(keys::conversation(ws, c.id), moved);
            }
            Ok(())
        })
    }

    async fn contacts_named(&self, ws: &WorkspaceId, name_key: &str, limit: u16) -> Result<Vec<Contact>, StoreError> {
        let pk = keys::contact_name_partition(ws, name_key);
        Ok(self.with(|s| {
            s.names
                .iter()
                .filter(|(k, _)| k.pk == pk)
                .take(usize::from(limit))
                .filter_map(|(_, id)| s.contacts.get(&keys::contact(ws, *id)).cloned())
                .collect()
        }))
    }

    async fn update_contact(&self, c: &Contact, expected_version: u64) -> Result<(), StoreError> {
        self.with(|s| {
            let k = keys::contact(&c.workspace, c.id);
            match s.contacts.get(&k) {
                Some(stored) if stored.version == expected_version => {
                    s.contacts.insert(k, c.clone());
                    Ok(())
                }
                _ => Err(StoreError::Conflict),
            }
        })
    }
}

#[async_trait]
impl VisitorStore for MemoryStore {
    async fn visitor_profile(
        &self,
        ws: &WorkspaceId,
        visitor: &VisitorId,
    ) -> Result<Option<VisitorProfile>, StoreError> {
        Ok(self.with(|s| s.visitor_profiles.get(&keys::visitor_profile(ws, visitor)).cloned()))
    }

    async fn put_visitor_profile(&self, p: &VisitorProfile) -> Result<(), StoreError> {
        self.with(|s| s.visitor_profiles.insert(keys::visitor_profile(&p.workspace, &p.visitor), p.clone()));
        Ok(())
    }

    async fn put_visitor_connection(&self, c: &VisitorConnection) -> Result<(), StoreError> {
        let k = keys::visitor_connection(&c.workspace, &c.visitor, &c.id);
        self.with(|s| {
            s.visitor_pointers.insert(keys::visitor_connection_pointer(&c.id), k.clone());
            s.visitor_connections.insert(k, c.clone());
        });
        Ok(())
    }

    async fn visitor_connection(&self, id: &domain::ConnectionId) -> Result<Option<VisitorConnection>, StoreError> {
        Ok(self.with(|s| {
            let k = s.visitor_pointers.get(&keys::visitor_connection_pointer(id))?;
            s.visitor_connections.get(k).cloned()
        }))
    }

    async fn visitor_connections(
        &self,
        ws: &WorkspaceId,
        visitor: &VisitorId,
    ) -> Result<Vec<VisitorConnection>, StoreError> {
        let pk = keys::visitor_partition(ws, visitor);
        let mut out: Vec<VisitorConnection> =
            self.with(|s| s.visitor_connections.iter().filter(|(k, _)| k.pk == pk).map(|(_, c)| c.clone()).collect());
        out.sort_by_key(|c| c.connected_at);
        Ok(out)
    }

    async fn delete_visitor_connection(&self, c: &VisitorConnection) -> Result<(), StoreError> {
        self.with(|s| {
            s.visitor_pointers.remove(&keys::visitor_connection_pointer(&c.id));
            s.visitor_connections.remove(&keys::visitor_connection(&c.workspace, &c.visitor, &c.id));
        });
        Ok(())
    }
}

/// DynamoDB's item limit, as the in-memory twin enforces it on messages (the only items whose
/// size comes from outside): JSON is close to, and never much under, DynamoDB's own measure.
const MAX_ITEM_BYTES: usize = 400 * 1024;

fn fits_an_item(m: &Message) -> Result<(), StoreError> {
    let size = serde_json::to_vec(m).map(|v| v.len()).unwrap_or(0);
    if size > MAX_ITEM_BYTES {
        return Err(StoreError::Invalid(format!("Item size has exceeded the maximum allowed size ({size} bytes)")));
    }
    Ok(())
}

#[async_trait]
impl HookStore for MemoryStore {
    async fn endpoints(&self, ws: &WorkspaceId) -> Result<Vec<domain::hooks::Endpoint>, StoreError> {
        let pk = keys::hook_partition(ws);
        Ok(self.with(|s| s.hook_endpoints.iter().filter(|(k, _)| k.pk == pk).map(|(_, e)| e.clone()).collect()))
    }

    async fn endpoint(&self, ws: &WorkspaceId, id: &str) -> Result<Option<domain::hooks::Endpoint>, StoreError> {
        Ok(self.with(|s| s.hook_endpoints.get(&keys::hook_endpoint(ws, id)).cloned()))
    }

    async fn put_endpoint(&self, e: &domain::hooks::Endpoint, expected: Option<u64>) -> Result<(), StoreError> {
        self.with(|s| {
            let k = keys::hook_endpoint(&e.workspace, &e.id);
            match (s.hook_endpoints.get(&k), expected) {
                (Some(_), None) => return Err(StoreError::Duplicate),
                (Some(old), Some(v)) if old.version != v => return Err(StoreError::Conflict),
                (None, Some(_)) => return Err(StoreError::Conflict),
                _ => {}
            }
            s.hook_endpoints.insert(k, e.clone());
            Ok(())
        })
    }

    async fn delete_endpoint(&self, ws: &WorkspaceId, id: &str) -> Result<(), StoreError> {
        self.with(|s| s.hook_endpoints.remove(&keys::hook_endpoint(ws, id)));
        Ok(())
    }

    async fn record_attempt(
        &self,
        job: &domain::hooks::DeliveryJob,
        attempt: &domain::hooks::Attempt,
        state: domain::hooks::DeliveryState,
        next_attempt_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            let k = keys::hook_delivery(&job.workspace, &job.endpoint_id, &job.msg_id);
            let d = s.hook_deliveries.entry(k).or_insert_with(|| domain::hooks::Delivery {
                msg_id: job.msg_id.clone(),
                endpoint_id: job.endpoint_id.clone(),
                workspace: job.workspace.clone(),
                event: job.event,
                state,
                attempts: vec![],
                next_attempt_at: None,
                body: job.body.clone(),
            });
            d.attempts.push(attempt.clone());
            d.state = state;
            d.next_attempt_at = next_attempt_at;
        });
        Ok(())
    }

    async fn deliveries(
        &self,
        ws: &WorkspaceId,
        endpoint: &str,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<domain::hooks::Delivery>, StoreError> {
        let pk = keys::hook_delivery_partition(ws, endpoint);
        let before = keys::sort_cursor_after(cursor, "")?;
        self.with(|s| {
            let rest: Vec<(String, domain::hooks::Delivery)> = s
                .hook_deliveries
                .iter()
                .rev()
                .filter(|(k, _)| k.pk == pk && before.as_ref().is_none_or(|b| k.sk < *b))
                .map(|(k, v)| (k.sk.clone(), v.clone()))
                .collect();
            let (items, next) = paginate(rest, limit);
            Ok(Page { items, next: next.map(|sk| keys::encode_cursor(&sk)) })
        })
    }

    async fn delivery(
        &self,
        ws: &WorkspaceId,
        endpoint: &str,
        msg_id: &str,
    ) -> Result<Option<domain::hooks::Delivery>, StoreError> {
        Ok(self.with(|s| s.hook_deliveries.get(&keys::hook_delivery(ws, endpoint, msg_id)).cloned()))
    }
}

#[async_trait]
impl AnalyticsStore for MemoryStore {
    async fn apply_facts(&self, facts: &[domain::analytics::Fact]) -> Result<usize, StoreError> {
        self.with(|s| {
            let mut applied = 0;
            for fact in facts {
                if !s.fact_markers.insert(keys::fact_marker(&fact.workspace, &fact.id)) {
                    continue;
                }
                let hour = domain::analytics::hour_of(fact.at);
                for d in domain::analytics::dimensions(fact) {
                    let shard = keys::stats_shard(&fact.id);
                    let a = s.stats.entry(keys::stats(&fact.workspace, &hour, &d, shard)).or_default();
                    a.apply(fact);
                    a.version += 1;
                }
                applied += 1;
            }
            Ok(applied)
        })
    }

    async fn aggregates(
        &self,
        ws: &WorkspaceId,
        kind: &str,
        from_hour: &str,
        to_hour: &str,
    ) -> Result<Vec<(String, String, domain::analytics::Aggregate)>, StoreError> {
        let pks = keys::stats_partitions(ws, kind);
        let (lo, hi) = (from_hour.to_owned(), format!("{to_hour}#\u{10ffff}"));
        Ok(self.with(|s| {
            let shards = s.stats.iter().filter(|(k, _)| pks.contains(&k.pk) && k.sk >= lo && k.sk <= hi);
            keys::merge_stats_shards(kind, shards.map(|(k, a)| (k.sk.clone(), a.clone())))
        }))
    }
}

impl State {
    fn forget_visitor(&mut self, ws: &WorkspaceId, v: &VisitorId) {
        self.visitor_profiles.remove(&keys::visitor_profile(ws, v));
        let partition = keys::visitor_partition(ws, v);
        self.visitor_connections.retain(|k, _| k.pk != partition);
        self.visitor_pointers.retain(|_, k| k.pk != partition);
    }

    /// Moves a per-conversation or per-contact counter's totals to another (the erased id's).
    fn move_counter(&mut self, ws: &WorkspaceId, month: Month, from: &Dimension, to: &Dimension) {
        let from_key = keys::cost_counter(ws, month, from, MessageId::ERASED);
        let Some(c) = self.counters.remove(&from_key) else { return };
        let to_key = keys::cost_counter(ws, month, to, MessageId::ERASED);
        self.counters
            .entry(to_key)
            .or_insert_with(|| Counter { dimension: to.clone(), totals: Totals::default() })
            .totals += c.totals;
    }
}

#[async_trait]
impl ErasureStore for MemoryStore {
    async fn erasure_receipt(
        &self,
        ws: &WorkspaceId,
        contact: ContactId,
    ) -> Result<Option<domain::erasure::Receipt>, StoreError> {
        Ok(self.with(|s| s.erasure_receipts.get(&keys::erasure_receipt(ws, contact)).cloned()))
    }

    async fn begin_erasure(&self, c: &Contact, at: OffsetDateTime) -> Result<(), StoreError> {
        let ws = &c.workspace;
        self.with(|s| {
            for identity in &c.identities {
                let k = keys::identity(ws, identity);
                if s.identities.get(&k) == Some(&c.id) {
                    s.identities.remove(&k);
                }
                s.consent.remove(&keys::consent(ws, &identity.clone().proven()));
            }
            if let Some(name) = c.name.as_deref().and_then(domain::contacts::name_key) {
                s.names.remove(&keys::contact_name(ws, &name, c.id));
            }
            s.current.remove(&keys::current_conversation(ws, c.id));
            s.retired.remove(&keys::current_conversation(ws, c.id));
            if let Some(stored) = s.contacts.get_mut(&keys::contact(ws, c.id)) {
                stored.erasing.get_or_insert(at);
            }
        });
        Ok(())
    }

    async fn erase_conversation(
        &self,
        ws: &WorkspaceId,
        contact: ContactId,
        conversation: ConversationId,
        trace: &domain::erasure::ConversationTrace,
        forget_contact: bool,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            for (message, at) in &trace.messages {
                let pks = keys::ledger_message_partitions(ws, at.to_offset(time::UtcOffset::UTC).date(), *message);
                let prefix = keys::ledger_message_prefix(*message);
                for (_, e) in s.ledger.iter_mut().filter(|(k, _)| pks.contains(&k.pk) && k.sk.starts_with(&prefix)) {
                    domain::erasure::anonymise(e, forget_contact);
                }
            }
            for month in trace.months() {
                s.move_counter(
                    ws,
                    month,
                    &Dimension::Conversation { conversation },
                    &Dimension::Conversation { conversation: ConversationId::ERASED },
                );
            }
            for (provider, id) in &trace.provider_ids {
                s.provider_messages.remove(&keys::provider_message(ws, provider, id));
            }
            for (agent, key) in &trace.idempotency {
                s.idempotency.remove(&keys::idempotency(ws, agent, key));
            }
            s.waiting.remove(&keys::waiting(ws, conversation));
            let slot = keys::current_conversation(ws, contact);
            if s.current.get(&slot) == Some(&conversation) {
                s.current.remove(&slot);
            }
            let partition = conversation_partition(ws, conversation);
            s.messages.remove(&partition);
            s.notes.retain(|k, _| k.pk != partition);
            s.audit.retain(|k, _| k.pk != partition);
            s.conversations.remove(&keys::conversation(ws, conversation));
            s.contact_conversations.remove(&keys::contact_conversation(ws, contact, conversation));
        });
        Ok(())
    }

    async fn expired_conversations(
        &self,
        ws: &WorkspaceId,
        before: OffsetDateTime,
        limit: u16,
    ) -> Result<Vec<Conversation>, StoreError> {
        let mut due: Vec<Conversation> = self.with(|s| {
            s.conversations
                .values()
                .filter(|c| {
                    &c.workspace == ws
                        && c.status == domain::model::ConversationStatus::Resolved
                        && c.last_activity_at < before
                })
                .cloned()
                .collect()
        });
        due.sort_by_key(|c| (c.last_activity_at, c.id));
        due.truncate(usize::from(limit));
        Ok(due)
    }

    async fn forget_visitor(&self, ws: &WorkspaceId, visitor: &VisitorId) -> Result<(), StoreError> {
        self.with(|s| s.forget_visitor(ws, visitor));
        Ok(())
    }

    async fn scrub_audit(&self, entry: &domain::audit::AuditEntry) -> Result<(), StoreError> {
        let mut scrubbed = entry.clone();
        scrubbed.details = serde_json::json!({ "erased": true });
        self.with(|s| s.put_audit(scrubbed));
        Ok(())
    }

    async fn delete_delivery(&self, ws: &WorkspaceId, endpoint: &str, msg_id: &str) -> Result<(), StoreError> {
        self.with(|s| s.hook_deliveries.remove(&keys::hook_delivery(ws, endpoint, msg_id)));
        Ok(())
    }

    async fn finish_erasure(
        &self,
        ws: &WorkspaceId,
        contact: ContactId,
        months: &[Month],
        receipt: &domain::erasure::Receipt,
        audit: &domain::audit::AuditEntry,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            for month in months {
                s.move_counter(
                    ws,
                    *month,
                    &Dimension::Contact { contact },
                    &Dimension::Contact { contact: ContactId::ERASED },
                );
            }
            let partition = keys::contact(ws, contact).pk;
            s.contact_conversations.retain(|k, _| k.pk != partition);
            s.current.remove(&keys::current_conversation(ws, contact));
            if s.contacts.remove(&keys::contact(ws, contact)).is_none() {
                return Err(StoreError::Conflict);
            }
            s.erasure_receipts.insert(keys::erasure_receipt(ws, contact), receipt.clone());
            s.put_audit(audit.clone());
            Ok(())
        })
    }
}
