//! The DynamoDB adapter: one table, keys from [`crate::keys`], every multi-item change in one
//! transaction, every race settled by a condition expression.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConsumedCapacity, Delete, KeysAndAttributes, Put, ReturnConsumedCapacity, ReturnValue,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use domain::channels::webchat::{VisitorConnection, VisitorId, VisitorProfile};
use domain::finance::ledger::{Counter, Grouping, Month};
use domain::finance::ratecard::RateCard;
use domain::finance::{Budget, BudgetScope, Dimension, EntryKind, LedgerEntry, Totals};
use domain::model::{Channel, Contact, Conversation, DeliveryEvent, DeliveryStatus, Identity, Message};
use domain::ports::*;
use domain::{AgentId, ContactId, ConversationId, IdempotencyKey, MessageId, WorkspaceId};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_attribute_value, to_item};
use time::OffsetDateTime;

use crate::error::{classify, corrupt};
use crate::keys::{self, Key};

mod erasure;
mod migrate;
mod roster;
mod settings;

pub use migrate::Migrated;

pub type Item = HashMap<String, AttributeValue>;

/// Idempotency records outlive any sane client retry window, then expire through the table's TTL.
const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Routing rules and teams remembered for a few seconds (`with_settings_cache`).
    settings: Option<std::sync::Arc<settings::SettingsCache>>,
}

/// Pointer items: small items whose only job is to make one fact unique.
#[derive(Serialize, Deserialize)]
struct IdentityPointer {
    contact_id: ContactId,
    /// The contact's current conversation when this identity last wrote: a hint (the contact's
    /// slot stays the truth), so threading reads the slot and the conversation in one batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    current_conversation_id: Option<ConversationId>,
}
#[derive(Serialize, Deserialize)]
struct ConversationPointer {
    conversation_id: ConversationId,
}
/// A contact's current-conversation slot: the conversation, or, once the contact was merged away,
/// no conversation but the contact it went to (so nothing can start one under it).
#[derive(Serialize, Deserialize)]
struct CurrentSlot {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    conversation_id: Option<ConversationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    merged_into: Option<ContactId>,
}
#[derive(Serialize, Deserialize)]
struct NameEntry {
    contact_id: ContactId,
}
#[derive(Serialize, Deserialize)]
struct NotePointer {
    conversation_id: ConversationId,
    note_id: String,
}
#[derive(Serialize, Deserialize)]
struct ProviderPointer {
    conversation_id: ConversationId,
    message_id: MessageId,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key_map(k: &Key) -> Item {
    HashMap::from([(keys::PK.to_owned(), s(&k.pk)), (keys::SK.to_owned(), s(&k.sk))])
}

fn item<T: Serialize>(k: &Key, entity: &str, value: &T) -> Result<Item, StoreError> {
    let mut it: Item = to_item(value).map_err(|e| corrupt(entity, e))?;
    it.extend(key_map(k));
    it.insert(keys::ENTITY.to_owned(), s(entity));
    Ok(it)
}

fn decode<T: DeserializeOwned>(what: &str, it: Item) -> Result<T, StoreError> {
    from_item(it).map_err(|e| corrupt(what, e))
}

fn conversation_item(c: &Conversation) -> Result<Item, StoreError> {
    let mut it = item(&keys::conversation(&c.workspace, c.id), "conversation", c)?;
    let sort = keys::activity_sort(c.last_activity_at, c.id);
    it.insert(keys::GSI1PK.into(), s(keys::status_partition(&c.workspace, c.status, c.id)));
    it.insert(keys::GSI1SK.into(), s(&sort));
    it.insert(keys::GSI2PK.into(), s(keys::assignee_partition(&c.workspace, c.assignee.as_ref(), c.status, c.id)));
    if let Some(team) = &c.team {
        it.insert(keys::GSI3PK.into(), s(keys::team_partition(&c.workspace, team, c.status, c.id)));
        it.insert(keys::GSI3SK.into(), s(&sort));
    }
    it.insert(keys::GSI2SK.into(), s(sort));
    Ok(it)
}

fn message_item(m: &Message) -> Result<Item, StoreError> {
    let mut it = item(&keys::message(&m.workspace, m.conversation_id, m.id), "message", m)?;
    // The rank makes "only forward" a condition DynamoDB checks atomically.
    it.insert("status_rank".into(), n(m.status.rank()));
    Ok(it)
}

/// An audit entry's item (entries are immutable: written once, under its ULID).
fn audit_item(e: &domain::audit::AuditEntry) -> Result<Item, StoreError> {
    item(&keys::audit(&e.workspace, e.conversation, &e.id), "audit", e)
}

fn build<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Rejected(format!("building {what}: {e}").into()))
}

fn put(table: &str, it: Item, condition: &str, values: Option<Item>) -> Result<TransactWriteItem, StoreError> {
    let p = build(
        "put",
        Put::builder()
            .table_name(table)
            .set_item(Some(it))
            .condition_expression(condition)
            .set_expression_attribute_values(values)
            .build(),
    )?;
    Ok(TransactWriteItem::builder().put(p).build())
}

const NOT_EXISTS: &str = "attribute_not_exists(PK)";

/// Items in one DynamoDB transaction at most.
const TRANSACTION_ITEMS: usize = 100;

/// An unconditional put inside a transaction.
fn put_always(table: &str, it: Item) -> Result<TransactWriteItem, StoreError> {
    let p = build("put", Put::builder().table_name(table).set_item(Some(it)).build())?;
    Ok(TransactWriteItem::builder().put(p).build())
}

/// A conditional single-item write's outcome: its output (its capacity metered) when written,
/// `None` when its condition failed; any other error classified.
fn conditional<O, E, R>(
    res: Result<O, SdkError<E, R>>,
    consumed: impl FnOnce(&O) -> Option<&ConsumedCapacity>,
) -> Result<Option<O>, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match res {
        Ok(out) => {
            metered(consumed(&out), true);
            Ok(Some(out))
        }
        Err(e)
            if e.as_service_error().and_then(ProvideErrorMetadata::code) == Some("ConditionalCheckFailedException") =>
        {
            Ok(None)
        }
        Err(e) => Err(classify(e)),
    }
}

/// Adds what DynamoDB reports a request consumed to the current message's meter.
fn metered(cc: Option<&ConsumedCapacity>, write: bool) {
    let Some(c) = cc else { return };
    let split = (c.read_capacity_units().unwrap_or(0.0), c.write_capacity_units().unwrap_or(0.0));
    let total = meter::units_milli(c.capacity_units().unwrap_or(0.0));
    let (read, written) = match split {
        (r, w) if r > 0.0 || w > 0.0 => (meter::units_milli(r), meter::units_milli(w)),
        _ if write => (0, total),
        _ => (total, 0),
    };
    meter::record(domain::finance::Usage {
        dynamodb_read_milli: read,
        dynamodb_write_milli: written,
        ..Default::default()
    });
}

/// One page of a Query.
struct QuerySpec<'a> {
    index: Option<&'a str>,
    key_condition: &'a str,
    values: Item,
    names: HashMap<String, String>,
    forward: bool,
    /// `None`: as many as one page holds.
    limit: Option<u16>,
    start: Option<Item>,
    consistent: bool,
}

/// The base table's items of partition `pk` whose sort key starts with `prefix`, oldest key first.
/// DynamoDB refuses an empty key value, so an empty prefix is a condition on the partition alone.
fn prefix_spec(pk: &str, prefix: &str) -> QuerySpec<'static> {
    let mut values = HashMap::from([(":pk".to_owned(), s(pk))]);
    let mut names = HashMap::from([("#pk".to_owned(), keys::PK.to_owned())]);
    let key_condition = if prefix.is_empty() {
        "#pk = :pk"
    } else {
        values.insert(":prefix".to_owned(), s(prefix));
        names.insert("#sk".to_owned(), keys::SK.to_owned());
        "#pk = :pk AND begins_with(#sk, :prefix)"
    };
    QuerySpec { index: None, key_condition, values, names, forward: true, limit: None, start: None, consistent: false }
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), settings: None }
    }

    /// Remembers each workspace's routing rules and teams for `ttl` (`dynamo/settings.rs`);
    /// a zero `ttl` remembers nothing.
    pub fn with_settings_cache(mut self, ttl: std::time::Duration) -> Self {
        self.settings = (!ttl.is_zero()).then(|| std::sync::Arc::new(settings::SettingsCache::new(ttl)));
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn get(&self, k: &Key) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_map(k)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(classify)?;
        metered(out.consumed_capacity(), false);
        Ok(out.item)
    }

    /// Up to 100 items in one strongly consistent BatchGetItem (what DynamoDB leaves unprocessed
    /// under load is asked for again), in the order of `keys`.
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        let mut wanted: Vec<Item> = keys.iter().map(key_map).collect();
        let mut found: Vec<Item> = Vec::with_capacity(keys.len());
        for attempt in 0..5u64 {
            if wanted.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut wanted)))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Rejected(Box::new(e)))?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(classify)?;
            out.consumed_capacity().iter().for_each(|c| metered(Some(c), false));
            found.extend(out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default());
            wanted = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)).map(|k| k.keys).unwrap_or_default();
        }
        if !wanted.is_empty() {
            return Err(StoreError::Unavailable("BatchGetItem left keys unprocessed".into()));
        }
        let is = |it: &Item, k: &Key| {
            it.get(keys::PK).and_then(|v| v.as_s().ok()) == Some(&k.pk)
                && it.get(keys::SK).and_then(|v| v.as_s().ok()) == Some(&k.sk)
        };
        Ok(keys.iter().map(|k| found.iter().position(|it| is(it, k)).map(|i| found.swap_remove(i))).collect())
    }

    async fn get_as<T: DeserializeOwned>(&self, what: &str, k: &Key) -> Result<Option<T>, StoreError> {
        self.get(k).await?.map(|it| decode(what, it)).transpose()
    }

    /// Runs a transaction; a cancelled one is `Duplicate` when the item at `duplicate_index` failed its
    /// condition (the write was already done), `Conflict` otherwise.
    async fn transact(&self, items: Vec<TransactWriteItem>, duplicate_index: Option<usize>) -> Result<(), StoreError> {
        let res = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match res {
            Ok(out) => {
                out.consumed_capacity().iter().for_each(|c| metered(Some(c), true));
                Ok(())
            }
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(tc)) => {
                    let failed: Vec<usize> = tc
                        .cancellation_reasons()
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.code().is_some_and(|c| c != "None"))
                        .map(|(i, _)| i)
                        .collect();
                    let codes: Vec<&str> = tc.cancellation_reasons().iter().filter_map(|r| r.code()).collect();
                    if codes.iter().any(|c| *c == "ThrottlingError" || *c == "ProvisionedThroughputExceeded") {
                        return Err(StoreError::Unavailable(Box::new(e)));
                    }
                    // An item over 400 KB (or otherwise invalid) cancels the transaction too: that
                    // is the request's fault, never contention to retry.
                    if let Some(r) = tc.cancellation_reasons().iter().find(|r| r.code() == Some("ValidationError")) {
                        return Err(StoreError::Invalid(r.message().unwrap_or("validation error").to_owned()));
                    }
                    if duplicate_index.is_some_and(|d| failed.contains(&d)) {
                        Err(StoreError::Duplicate)
                    } else {
                        Err(StoreError::Conflict)
                    }
                }
                _ => Err(classify(e)),
            },
        }
    }

    fn conversation_write(&self, w: &ConversationWrite) -> Result<Vec<TransactWriteItem>, StoreError> {
        Ok(match w {
            ConversationWrite::Create { conversation: c, replaces } => {
                let pointer = item(
                    &keys::current_conversation(&c.workspace, c.contact_id),
                    "current_conversation",
                    &ConversationPointer { conversation_id: c.id },
                )?;
                let slot = match replaces {
                    None => put(&self.table, pointer, NOT_EXISTS, None)?,
                    Some(old) => put(
                        &self.table,
                        pointer,
                        "attribute_not_exists(PK) OR conversation_id = :replaced",
                        Some(HashMap::from([(":replaced".to_owned(), s(old.to_string()))])),
                    )?,
                };
                let history = item(
                    &keys::contact_conversation(&c.workspace, c.contact_id, c.id),
                    "contact_conversation",
                    &ConversationPointer { conversation_id: c.id },
                )?;
                vec![
                    slot,
                    put(&self.table, conversation_item(c)?, NOT_EXISTS, None)?,
                    put_always(&self.table, history)?,
                ]
            }
            ConversationWrite::Update { conversation, expected_version } => vec![put(
                &self.table,
                conversation_item(conversation)?,
                "version = :expected",
                Some(HashMap::from([(":expected".to_owned(), n(expected_version))])),
            )?],
        })
    }

    /// One page: its items and, when more remain, the key to resume from.
    async fn query_page(&self, q: QuerySpec<'_>) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(q.index.map(str::to_owned))
            .key_condition_expression(q.key_condition)
            .set_expression_attribute_values(Some(q.values))
            .set_expression_attribute_names(Some(q.names))
            .scan_index_forward(q.forward)
            .set_limit(q.limit.map(|l| i32::from(l.max(1))))
            .set_exclusive_start_key(q.start)
            .consistent_read(q.consistent)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(classify)?;
        metered(out.consumed_capacity(), false);
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
    }
}

#[async_trait]
impl ChannelDirectory for DynamoStore {
    async fn channel_account(&self, channel: Channel, address: &str) -> Result<Option<ChannelAccount>, StoreError> {
        self.get_as("channel account", &keys::channel_account(channel, address)).await
    }

    async fn put_channel_account(&self, account: &ChannelAccount) -> Result<(), StoreError> {
        // The account, and its entry in the workspace's list, together.
        let it = item(&keys::channel_account(account.channel, &account.address), "channel_account", account)?;
        let listed = item(
            &keys::workspace_channel(&account.workspace, account.channel, &account.address),
            "workspace_channel",
            account,
        )?;
        self.transact(vec![put_always(&self.table, it)?, put_always(&self.table, listed)?], None).await
    }

    async fn connect_channel_account(&self, account: &ChannelAccount) -> Result<bool, StoreError> {
        // Ours or nobody's: the account item's condition decides, the list entry follows it.
        let ws = Some(HashMap::from([(":ws".to_owned(), s(account.workspace.as_str()))]));
        let it = item(&keys::channel_account(account.channel, &account.address), "channel_account", account)?;
        let listed = item(
            &keys::workspace_channel(&account.workspace, account.channel, &account.address),
            "workspace_channel",
            account,
        )?;
        let writes = vec![
            put(&self.table, it, "attribute_not_exists(PK) OR workspace = :ws", ws)?,
            put_always(&self.table, listed)?,
        ];
        match self.transact(writes, Some(0)).await {
            Ok(()) => Ok(true),
            Err(StoreError::Duplicate) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn disconnect_channel_account(
        &self,
        ws: &WorkspaceId,
        channel: Channel,
        address: &str,
    ) -> Result<Option<ChannelAccount>, StoreError> {
        let Some(account) = self.channel_account(channel, address).await? else { return Ok(None) };
        if &account.workspace != ws {
            return Ok(None);
        }
        let owned = build(
            "delete",
            Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key_map(&keys::channel_account(channel, address))))
                .condition_expression("workspace = :ws")
                .expression_attribute_values(":ws", s(ws.as_str()))
                .build(),
        )?;
        let writes = vec![
            TransactWriteItem::builder().delete(owned).build(),
            self.delete_item(&keys::workspace_channel(ws, channel, address))?,
        ];
        match self.transact(writes, Some(0)).await {
            Ok(()) => Ok(Some(account)),
            // Disconnected (or moved) since the read: nothing of ours is left to remove.
            Err(StoreError::Duplicate) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn channel_accounts(&self, ws: &WorkspaceId) -> Result<Vec<ChannelAccount>, StoreError> {
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let page: Page<ChannelAccount> =
                self.decoded_page("channel account", &keys::workspace_channels(ws), "", 100, cursor.as_ref()).await?;
            all.extend(page.items);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }
}

#[async_trait]
impl domain::ports::WorkspaceStore for DynamoStore {
    async fn workspace_settings(&self, ws: &WorkspaceId) -> Result<domain::workspace::Settings, StoreError> {
        Ok(self.get_as("workspace settings", &keys::workspace_settings(ws)).await?.unwrap_or_default())
    }

    async fn put_workspace_settings(
        &self,
        ws: &WorkspaceId,
        settings: &domain::workspace::Settings,
    ) -> Result<(), StoreError> {
        self.put_plain(item(&keys::workspace_settings(ws), "workspace_settings", settings)?).await?;
        let listed = keys::retention_registered(ws);
        if settings.retention_days.is_some() {
            self.put_plain(item(&listed, "retention_workspace", &NpsListing { workspace: ws.clone() })?).await
        } else {
            self.delete_plain(&listed).await
        }
    }

    async fn retention_workspaces(&self) -> Result<Vec<WorkspaceId>, StoreError> {
        let items = self.query_all(keys::RETENTION_REGISTRY, "").await?;
        items.into_iter().map(|it| decode::<NpsListing>("retention listing", it).map(|l| l.workspace)).collect()
    }
}

#[async_trait]
impl RateLimiter for DynamoStore {
    async fn take(
        &self,
        ws: &WorkspaceId,
        key: &str,
        at: OffsetDateTime,
        window: time::Duration,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let k = keys::rate_window(ws, key, at, window);
        let expires = keys::window_start(at, window) + window.whole_seconds() + 60;
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_map(&k)))
            .update_expression("ADD #n :one SET #ttl = :ttl, #entity = :entity")
            .condition_expression("attribute_not_exists(#n) OR #n < :limit")
            .expression_attribute_names("#n", "uses")
            .expression_attribute_names("#ttl", keys::TTL)
            .expression_attribute_names("#entity", keys::ENTITY)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            .expression_attribute_values(":ttl", n(expires))
            .expression_attribute_values(":entity", s("rate_window"))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        Ok(conditional(res, |out| out.consumed_capacity())?.is_some())
    }
}

#[async_trait]
impl InboundStore for DynamoStore {
    async fn provider_message(
        &self,
        ws: &WorkspaceId,
        provider: &str,
        id: &str,
    ) -> Result<Option<(ConversationId, MessageId)>, StoreError> {
        Ok(self
            .get_as::<ProviderPointer>("provider message", &keys::provider_message(ws, provider, id))
            .await?
            .map(|p| (p.conversation_id, p.message_id)))
    }

    async fn contact_by_identity(&self, ws: &WorkspaceId, identity: &Identity) -> Result<Option<Contact>, StoreError> {
        let Some(p) = self.get_as::<IdentityPointer>("identity", &keys::identity(ws, identity)).await? else {
            return Ok(None);
        };
        self.get_as("contact", &keys::contact(ws, p.contact_id)).await
    }

    async fn thread_of(&self, ws: &WorkspaceId, identity: &Identity) -> Result<Option<ThreadOf>, StoreError> {
        let Some(p) = self.get_as::<IdentityPointer>("identity", &keys::identity(ws, identity)).await? else {
            return Ok(None);
        };
        let slot_key = keys::current_conversation(ws, p.contact_id);
        let Some(hint) = p.current_conversation_id else {
            let slot: Option<CurrentSlot> = self.get_as("current conversation", &slot_key).await?;
            let current = match slot.and_then(|s| s.conversation_id) {
                Some(id) => self.get_as("conversation", &keys::conversation(ws, id)).await?,
                None => None,
            };
            return Ok(Some(ThreadOf { contact: p.contact_id, current, hint_fresh: false }));
        };
        // The slot and the hinted conversation in one request; the slot decides.
        let mut both = self.get_many(&[slot_key, keys::conversation(ws, hint)]).await?.into_iter();
        let slot: Option<CurrentSlot> =
            both.next().flatten().map(|it| decode("current conversation", it)).transpose()?;
        let hinted: Option<Conversation> = both.next().flatten().map(|it| decode("conversation", it)).transpose()?;
        let (current, hint_fresh) = match slot.and_then(|s| s.conversation_id) {
            Some(id) if id == hint => (hinted, true),
            Some(id) => (self.get_as("conversation", &keys::conversation(ws, id)).await?, false),
            None => (None, false),
        };
        Ok(Some(ThreadOf { contact: p.contact_id, current, hint_fresh }))
    }

    async fn current_conversation(
        &self,
        ws: &WorkspaceId,
        contact: &Contact,
    ) -> Result<Option<Conversation>, StoreError> {
        let Some(CurrentSlot { conversation_id: Some(id), .. }) =
            self.get_as("current conversation", &keys::current_conversation(ws, contact.id)).await?
        else {
            return Ok(None);
        };
        self.get_as("conversation", &keys::conversation(ws, id)).await
    }

    async fn complete_message(&self, m: &Message) -> Result<(), StoreError> {
        // One item: a conditional put, not a transaction (which costs twice the capacity).
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(message_item(m)?))
            .condition_expression("attribute_exists(PK)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        conditional(res, |out| out.consumed_capacity())?.map(drop).ok_or(StoreError::Conflict)
    }

    async fn commit_inbound(&self, c: InboundCommit) -> Result<(), StoreError> {
        let ws = &c.message.workspace;
        let mut items = vec![
            put(
                &self.table,
                item(
                    &keys::provider_message(ws, &c.provider, &c.provider_message_id),
                    "provider_message",
                    &ProviderPointer { conversation_id: c.message.conversation_id, message_id: c.message.id },
                )?,
                NOT_EXISTS,
                None,
            )?,
            put(&self.table, message_item(&c.message)?, NOT_EXISTS, None)?,
        ];
        let thread = OutreachCommit { new_contact: c.new_contact, conversation: c.conversation, hint: c.hint };
        items.extend(self.thread_items(ws, &thread, c.message.conversation_id)?);
        if let Some(record) = &c.consent {
            // Keyword messages of one identity are serialised by their FIFO group: no race to settle.
            let it = item(&keys::consent(ws, &record.identity), "consent", record)?;
            items.push(
                TransactWriteItem::builder()
                    .put(build("put", Put::builder().table_name(&self.table).set_item(Some(it)).build())?)
                    .build(),
            );
        }
        if let Some(entry) = &c.cost {
            items.extend(self.ledger_items(entry)?);
        }
        self.transact(items, Some(0)).await
    }

    async fn commit_outreach(&self, c: OutreachCommit) -> Result<(), StoreError> {
        let (ws, id) = match &c.conversation {
            ConversationWrite::Create { conversation, .. } | ConversationWrite::Update { conversation, .. } => {
                (conversation.workspace.clone(), conversation.id)
            }
        };
        let items = self.thread_items(&ws, &c, id)?;
        self.transact(items, None).await
    }
}

impl DynamoStore {
    /// The writes that thread a conversation to its contact: a new contact (its identities, the
    /// item, its name entry), the conversation, and the identity's hint at it. Every identity and
    /// contact is created only if still unclaimed, the hint only on an identity still linked.
    fn thread_items(
        &self,
        ws: &WorkspaceId,
        c: &OutreachCommit,
        conversation_id: ConversationId,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut items = vec![];
        let hinted = c.hint.as_ref().map(|_| conversation_id);
        if let Some(contact) = &c.new_contact {
            for identity in &contact.identities {
                let current_conversation_id = hinted.filter(|_| c.hint.as_ref() == Some(identity));
                let p = IdentityPointer { contact_id: contact.id, current_conversation_id };
                items.push(put(&self.table, item(&keys::identity(ws, identity), "identity", &p)?, NOT_EXISTS, None)?);
            }
            items.push(put(&self.table, item(&keys::contact(ws, contact.id), "contact", contact)?, NOT_EXISTS, None)?);
            if let Some(entry) = self.name_entry(contact)? {
                items.push(put_always(&self.table, entry)?);
            }
        }
        items.extend(self.conversation_write(&c.conversation)?);
        let new_identity = |i: &Identity| c.new_contact.as_ref().is_some_and(|n| n.identities.contains(i));
        if let Some(identity) = c.hint.as_ref().filter(|i| !new_identity(i)) {
            // The hint rides in the same transaction; an identity unlinked meanwhile conflicts.
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_map(&keys::identity(ws, identity))))
                .update_expression("SET current_conversation_id = :c")
                .condition_expression("attribute_exists(PK)")
                .expression_attribute_values(":c", s(conversation_id.to_string()))
                .build();
            items.push(TransactWriteItem::builder().update(build("update", update)?).build());
        }
        Ok(items)
    }
}

#[async_trait]
impl ConsentStore for DynamoStore {
    async fn consent(
        &self,
        ws: &WorkspaceId,
        identity: &Identity,
    ) -> Result<Option<domain::consent::Record>, StoreError> {
        self.get_as("consent", &keys::consent(ws, identity)).await
    }
    async fn put_consent(&self, ws: &WorkspaceId, record: &domain::consent::Record) -> Result<(), StoreError> {
        self.put_plain(item(&keys::consent(ws, &record.identity), "consent", record)?).await
    }
}

#[async_trait]
impl ConversationReader for DynamoStore {
    async fn conversation(&self, ws: &WorkspaceId, id: ConversationId) -> Result<Option<Conversation>, StoreError> {
        self.get_as("conversation", &keys::conversation(ws, id)).await
    }

    async fn contact(&self, ws: &WorkspaceId, id: ContactId) -> Result<Option<Contact>, StoreError> {
        self.get_as("contact", &keys::contact(ws, id)).await
    }

    async fn conversations(&self, ws: &WorkspaceId, q: &ConversationQuery) -> Result<Page<Conversation>, StoreError> {
        let view = match &q.assignee {
            AssigneeFilter::Any => IndexView {
                index: keys::INDEX_BY_STATUS,
                pk_attr: keys::GSI1PK,
                sk_attr: keys::GSI1SK,
                partitions: keys::status_partitions(ws, q.status),
            },
            AssigneeFilter::Unassigned => IndexView {
                index: keys::INDEX_BY_ASSIGNEE,
                pk_attr: keys::GSI2PK,
                sk_attr: keys::GSI2SK,
                partitions: keys::assignee_partitions(ws, None, q.status),
            },
            AssigneeFilter::Agent(a) => IndexView {
                index: keys::INDEX_BY_ASSIGNEE,
                pk_attr: keys::GSI2PK,
                sk_attr: keys::GSI2SK,
                partitions: keys::assignee_partitions(ws, Some(a), q.status),
            },
            AssigneeFilter::Team(t) => IndexView {
                index: keys::INDEX_BY_TEAM,
                pk_attr: keys::GSI3PK,
                sk_attr: keys::GSI3SK,
                partitions: keys::team_partitions(ws, t, q.status),
            },
        };
        // Newest activity first: the next page holds what sorts before the cursor's conversation.
        let before = match &q.cursor {
            None => None,
            Some(c) => Some(keys::decode_activity_cursor(c).ok_or(StoreError::BadCursor)?.0),
        };
        let (items, more) = self.index_scatter(&view, before.map(|b| ("<", b)), false, q.limit).await?;
        let convs: Vec<Conversation> =
            items.into_iter().map(|it| decode("conversation", it)).collect::<Result<_, _>>()?;
        let next = match (more, convs.last()) {
            (true, Some(last)) => Some(keys::encode_cursor(&keys::activity_sort(last.last_activity_at, last.id))),
            _ => None,
        };
        Ok(Page { items: convs, next })
    }

    async fn messages(
        &self,
        ws: &WorkspaceId,
        id: ConversationId,
        order: Order,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Message>, StoreError> {
        let start = match cursor {
            None => None,
            Some(c) => {
                Some(key_map(&keys::message(ws, id, keys::decode_message_cursor(c).ok_or(StoreError::BadCursor)?)))
            }
        };
        let pk = keys::conversation(ws, id).pk;
        let (items, more) = self
            .query_page(QuerySpec {
                forward: order == Order::Oldest,
                limit: Some(limit),
                start,
                ..prefix_spec(&pk, keys::MESSAGE_PREFIX)
            })
            .await?;
        let more = more.is_some();
        let msgs: Vec<Message> = items.into_iter().map(|it| decode("message", it)).collect::<Result<_, _>>()?;
        let next = match (more, msgs.last()) {
            (true, Some(last)) => Some(keys::encode_cursor(&last.id.to_string())),
            _ => None,
        };
        Ok(Page { items: msgs, next })
    }

    async fn message(
        &self,
        ws: &WorkspaceId,
        conv: ConversationId,
        id: MessageId,
    ) -> Result<Option<Message>, StoreError> {
        self.get_as("message", &keys::message(ws, conv, id)).await
    }

    async fn conversation_with_message(
        &self,
        ws: &WorkspaceId,
        conv: ConversationId,
        id: MessageId,
    ) -> Result<(Option<Conversation>, Option<Message>), StoreError> {
        let mut both = self.get_many(&[keys::conversation(ws, conv), keys::message(ws, conv, id)]).await?.into_iter();
        let conversation = both.next().flatten().map(|it| decode("conversation", it)).transpose()?;
        let message = both.next().flatten().map(|it| decode("message", it)).transpose()?;
        Ok((conversation, message))
    }
}

#[async_trait]
impl ReplyStore for DynamoStore {
    async fn idempotency_record(
        &self,
        ws: &WorkspaceId,
        agent: &AgentId,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.get_as("idempotency record", &keys::idempotency(ws, agent, key)).await
    }

    async fn commit_reply(&self, c: ReplyCommit) -> Result<(), StoreError> {
        let r = &c.idempotency;
        let mut idem = item(&keys::idempotency(&r.workspace, &r.agent, &r.key), "idempotency", r)?;
        idem.insert(keys::TTL.into(), n(r.created_at.unix_timestamp() + IDEMPOTENCY_TTL_SECS));
        let mut items = vec![
            put(&self.table, idem, NOT_EXISTS, None)?,
            put(&self.table, message_item(&c.message)?, NOT_EXISTS, None)?,
            put(
                &self.table,
                conversation_item(&c.conversation)?,
                "version = :expected",
                Some(HashMap::from([(":expected".to_owned(), n(c.expected_version))])),
            )?,
        ];
        if let Some(entry) = &c.cost {
            items.extend(self.ledger_items(entry)?);
        }
        self.transact(items, Some(0)).await
    }

    async fn mark_enqueued(&self, ws: &WorkspaceId, agent: &AgentId, key: &IdempotencyKey) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_map(&keys::idempotency(ws, agent, key))))
            .update_expression("SET enqueued = :t")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(classify)?;
        metered(out.consumed_capacity(), true);
        Ok(())
    }
}

impl DynamoStore {
    /// Moves a message's status with a history entry, if `condition` holds. Returns the new item, or
    /// `None` when the condition failed.
    async fn set_status(
        &self,
        k: &Key,
        event: &DeliveryEvent,
        condition: &str,
        mut values: Item,
    ) -> Result<Option<Message>, StoreError> {
        let ev = to_attribute_value(event).map_err(|e| corrupt("delivery event", e))?;
        values.insert(":status".into(), s(event.status.as_str()));
        values.insert(":rank".into(), n(event.status.rank()));
        values.insert(":event".into(), AttributeValue::L(vec![ev]));
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_map(k)))
            .update_expression(
                "SET #status = :status, status_rank = :rank, status_history = list_append(status_history, :event)",
            )
            .condition_expression(format!("attribute_exists(PK) AND ({condition})"))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match conditional(res, |out| out.consumed_capacity())? {
            Some(out) => out.attributes.map(|a| decode("message", a)).transpose(),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl DeliveryStore for DynamoStore {
    async fn claim_for_send(
        &self,
        ws: &WorkspaceId,
        conv: ConversationId,
        id: MessageId,
        at: OffsetDateTime,
    ) -> Result<Claim, StoreError> {
        let k = keys::message(ws, conv, id);
        let ev = DeliveryEvent::new(DeliveryStatus::Sending, at);
        let cond = HashMap::from([(":queued".to_owned(), s(DeliveryStatus::Queued.as_str()))]);
        if let Some(m) = self.set_status(&k, &ev, "#status = :queued", cond).await? {
            return Ok(Claim::Claimed(m));
        }
        Ok(match self.get_as::<Message>("message", &k).await? {
            None => Claim::NotFound,
            Some(m) if m.status == DeliveryStatus::Sending && m.provider_message_id.is_none() => Claim::InFlight(m),
            Some(m) => Claim::Done(m),
        })
    }

    async fn release_claim(&self, ws: &WorkspaceId, conv: ConversationId, id: MessageId) -> Result<(), StoreError> {
        let ev = DeliveryEvent {
            status: DeliveryStatus::Queued,
            at: OffsetDateTime::now_utc(),
            error_code: None,
            error_message: None,
        };
        let cond = HashMap::from([(":sending".to_owned(), s(DeliveryStatus::Sending.as_str()))]);
        self.set_status(&keys::message(ws, conv, id), &ev, "#status = :sending", cond).await?;
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
        // The usage entry's share lands on the message in this same update: a transaction may
        // touch an item only once.
        let (expr, cost_values) = match usage {
            Some(e) => {
                (format!("SET provider = :p, provider_message_id = :id, {}", MESSAGE_COST_SET), message_cost_values(e))
            }
            None => ("SET provider = :p, provider_message_id = :id".to_owned(), HashMap::new()),
        };
        let mut values = cost_values;
        values.insert(":p".into(), s(provider));
        values.insert(":id".into(), s(provider_message_id));
        let condition =
            if usage.is_some() { "attribute_exists(PK) AND attribute_exists(cost)" } else { "attribute_exists(PK)" };
        let update = build(
            "update",
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_map(&keys::message(ws, conv, id))))
                .update_expression(expr)
                .condition_expression(condition)
                .set_expression_attribute_values(Some(values))
                .build(),
        )?;
        let pointer = item(
            &keys::provider_message(ws, provider, provider_message_id),
            "provider_message",
            &ProviderPointer { conversation_id: conv, message_id: id },
        )?;
        let p = build("put", Put::builder().table_name(&self.table).set_item(Some(pointer)).build())?;
        let mut items =
            vec![TransactWriteItem::builder().update(update).build(), TransactWriteItem::builder().put(p).build()];
        if let Some(e) = usage {
            items.extend(self.ledger_items(e)?);
        }
        // Index 2 is the usage entry: finding it written means this whole write was done before.
        self.transact(items, usage.map(|_| 2)).await
    }

    async fn advance_status(
        &self,
        ws: &WorkspaceId,
        conv: ConversationId,
        id: MessageId,
        event: &DeliveryEvent,
    ) -> Result<bool, StoreError> {
        Ok(self.set_status(&keys::message(ws, conv, id), event, "status_rank < :rank", HashMap::new()).await?.is_some())
    }
}

/// Adds an entry's share to the message's cost summary (`:p`, `:a`, `:x` from [`message_cost_values`]).
const MESSAGE_COST_SET: &str =
    "cost.provider_micros = cost.provider_micros + :cp, cost.aws_micros = cost.aws_micros + :ca";

fn message_cost_values(e: &LedgerEntry) -> Item {
    HashMap::from([(":cp".to_owned(), n(e.totals.provider_micros)), (":ca".to_owned(), n(e.totals.aws_micros))])
}

/// A view of an index over the shards of one sharded partition.
pub(crate) struct IndexView {
    index: &'static str,
    pk_attr: &'static str,
    sk_attr: &'static str,
    partitions: Vec<String>,
}

/// Pages of the shards of one sharded partition `(items, more follow)`, merged on `sk_attr` in the
/// direction read and cut to `limit`; `true` when more follow (a shard had more, or the cut left some).
fn merge_pages(pages: Vec<(Vec<Item>, bool)>, sk_attr: &str, forward: bool, limit: u16) -> (Vec<Item>, bool) {
    let mut more = pages.iter().any(|(_, more)| *more);
    let mut items: Vec<Item> = pages.into_iter().flat_map(|(items, _)| items).collect();
    let sk = |it: &Item| it.get(sk_attr).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    items.sort_by_cached_key(|it| sk(it));
    if !forward {
        items.reverse();
    }
    if items.len() > usize::from(limit) {
        items.truncate(usize::from(limit));
        more = true;
    }
    (items, more)
}

/// One page of `limit` across `shards` shards, merged on `sk_attr` in the direction read: each
/// shard is first asked (`page(shard, resume after, size)`, concurrently) for twice its even share
/// of the page; then only the shards whose last item read still sorts before the page's cut (they
/// may hold more of it) are asked for more, from where they stopped, until none is. Spread evenly,
/// a page of `n` over `s` shards reads about `2n` items in `s` Queries, not `s × n` items.
async fn adaptive_scatter<'a, F, Fut>(
    shards: usize,
    sk_attr: &str,
    forward: bool,
    limit: u16,
    page: F,
) -> Result<(Vec<Item>, bool), StoreError>
where
    F: Fn(usize, Option<Item>, u16) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<Item>, Option<Item>), StoreError>> + 'a,
{
    struct Shard {
        items: Vec<Item>,
        next: Option<Item>,
    }
    let sk = |it: &Item| it.get(sk_attr).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    let want = usize::from(limit.max(1));
    let share = u16::try_from((2 * want).div_ceil(shards.max(1)).clamp(1, want)).unwrap_or(limit);
    let first = futures::future::try_join_all((0..shards).map(|i| page(i, None, share))).await?;
    let mut read: Vec<Shard> = first.into_iter().map(|(items, next)| Shard { items, next }).collect();
    loop {
        let mut keys: Vec<String> = read.iter().flat_map(|s| s.items.iter().map(sk)).collect();
        keys.sort_unstable();
        if !forward {
            keys.reverse();
        }
        let cut = keys.get(want - 1).cloned();
        let behind: Vec<usize> = (0..read.len())
            .filter(|&i| {
                let last = read[i].items.last().map(sk);
                read[i].next.is_some()
                    && match (&cut, last) {
                        (Some(c), Some(l)) if forward => &l < c,
                        (Some(c), Some(l)) => &l > c,
                        _ => true,
                    }
            })
            .collect();
        if behind.is_empty() {
            break;
        }
        let size = share.saturating_mul(2).min(limit.max(1));
        let more = futures::future::try_join_all(behind.iter().map(|&i| page(i, read[i].next.clone(), size))).await?;
        for (i, (items, next)) in behind.into_iter().zip(more) {
            // A page that came back empty ends the shard (without a filter, none does).
            read[i].next = next.filter(|_| !items.is_empty());
            read[i].items.extend(items);
        }
    }
    let pages = read.into_iter().map(|s| (s.items, s.next.is_some())).collect();
    Ok(merge_pages(pages, sk_attr, forward, limit))
}

/// An item's sort key (empty if it has none).
fn sort_key(it: &Item) -> &str {
    it.get(keys::SK).and_then(|v| v.as_s().ok()).map_or("", String::as_str)
}

/// A counter as stored: its dimension and its totals as top-level numbers (so `ADD` can update them).
#[derive(Deserialize)]
struct CounterItem {
    #[serde(rename = "SK")]
    sk: String,
    dimension: Dimension,
    #[serde(default)]
    messages: i64,
    #[serde(default)]
    provider_micros: i64,
    #[serde(default)]
    aws_micros: i64,
    #[serde(default)]
    actual_micros: i64,
    #[serde(default)]
    reconciled: i64,
}

impl CounterItem {
    fn into_shard(self) -> (String, Counter) {
        let totals = self.totals();
        (self.sk, Counter { dimension: self.dimension, totals })
    }

    fn totals(&self) -> Totals {
        Totals {
            messages: self.messages,
            provider_micros: self.provider_micros,
            aws_micros: self.aws_micros,
            actual_micros: self.actual_micros,
            reconciled: self.reconciled,
        }
    }
}

const ALERT_TTL_SECS: i64 = 400 * 24 * 3600;

impl DynamoStore {
    /// The entry (created once) and an `ADD` to each of its counters, for a transaction.
    fn ledger_items(&self, e: &LedgerEntry) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut items = vec![put(
            &self.table,
            item(&keys::ledger_entry(&e.workspace, e.day(), e.message_id, e.kind), "ledger_entry", e)?,
            NOT_EXISTS,
            None,
        )?];
        let month = e.month();
        for d in e.dimensions() {
            let k = keys::cost_counter(&e.workspace, month, &d, e.message_id);
            items.push(self.counter_add(&k, &d, s(e.currency.as_str()), e.totals)?);
        }
        Ok(items)
    }

    /// A transaction update adding `t` to the counter at `k` (created with its dimension and
    /// currency on first use).
    fn counter_add(
        &self,
        k: &Key,
        d: &Dimension,
        currency: AttributeValue,
        t: Totals,
    ) -> Result<TransactWriteItem, StoreError> {
        let dim = to_attribute_value(d).map_err(|err| corrupt("dimension", err))?;
        let update = build(
            "counter update",
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_map(k)))
                .update_expression(
                    "SET dimension = if_not_exists(dimension, :dim), entity = :entity, currency = if_not_exists(currency, :cur) \
                     ADD messages :m, provider_micros :p, aws_micros :a, actual_micros :x, reconciled :r",
                )
                .expression_attribute_values(":dim", dim)
                .expression_attribute_values(":entity", s("cost_counter"))
                .expression_attribute_values(":cur", currency)
                .expression_attribute_values(":m", n(t.messages))
                .expression_attribute_values(":p", n(t.provider_micros))
                .expression_attribute_values(":a", n(t.aws_micros))
                .expression_attribute_values(":x", n(t.actual_micros))
                .expression_attribute_values(":r", n(t.reconciled))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Every item of a partition whose sort key starts with `prefix`, following pages, read
    /// consistently (budgets and spend must see the latest writes).
    async fn query_all(&self, pk: &str, prefix: &str) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let (items, last) =
                self.query_page(QuerySpec { start, consistent: true, ..prefix_spec(pk, prefix) }).await?;
            out.extend(items);
            match last {
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
        }
    }

    /// Every item of the shards `pks` under `prefix` (read concurrently), in sort-key order.
    async fn query_all_shards(&self, pks: &[String], prefix: &str) -> Result<Vec<Item>, StoreError> {
        let shards = futures::future::try_join_all(pks.iter().map(|pk| self.query_all(pk, prefix))).await?;
        let mut items: Vec<Item> = shards.into_iter().flatten().collect();
        items.sort_by(|a, b| sort_key(a).cmp(sort_key(b)));
        Ok(items)
    }

    /// One page of an index view: the shards' items whose index sort key is `bound.0` `bound.1`
    /// (if bounded), merged on the index sort key in the direction asked and cut to `limit`;
    /// `true` when more follow. Read as [`Self::scatter_page`] reads a partition's shards.
    pub(crate) async fn index_scatter(
        &self,
        view: &IndexView,
        bound: Option<(&str, String)>,
        forward: bool,
        limit: u16,
    ) -> Result<(Vec<Item>, bool), StoreError> {
        let condition = match &bound {
            None => "#pk = :pk".to_owned(),
            Some((op, _)) => format!("#pk = :pk AND #sk {op} :bound"),
        };
        let page = |shard: usize, start: Option<Item>, size: u16| {
            let pk = &view.partitions[shard];
            let mut values = HashMap::from([(":pk".to_owned(), s(pk))]);
            let mut names = HashMap::from([("#pk".to_owned(), view.pk_attr.to_owned())]);
            if let Some((_, b)) = &bound {
                values.insert(":bound".to_owned(), s(b));
                names.insert("#sk".to_owned(), view.sk_attr.to_owned());
            }
            self.query_page(QuerySpec {
                index: Some(view.index),
                key_condition: &condition,
                values,
                names,
                forward,
                limit: Some(size),
                start,
                consistent: false,
            })
        };
        adaptive_scatter(view.partitions.len(), view.sk_attr, forward, limit, page).await
    }

    /// One page across the shards `pks` of a sharded partition, after `after` (a sort key),
    /// merged in sort-key order and cut to `limit`; `true` when more follow ([`adaptive_scatter`]).
    async fn scatter_page(
        &self,
        pks: &[String],
        prefix: &str,
        limit: u16,
        after: Option<String>,
        forward: bool,
    ) -> Result<(Vec<Item>, bool), StoreError> {
        let page = |shard: usize, start: Option<Item>, size: u16| {
            let pk: &str = &pks[shard];
            let start = start.or_else(|| after.clone().map(|sk| key_map(&Key { pk: pk.to_owned(), sk })));
            self.query_page(QuerySpec { limit: Some(size), start, forward, ..prefix_spec(pk, prefix) })
        };
        adaptive_scatter(pks.len(), keys::SK, forward, limit, page).await
    }

    /// One page of a partition's items under `prefix`, decoded, with the cursor to the next.
    async fn decoded_page<T: DeserializeOwned>(
        &self,
        what: &str,
        pk: &str,
        prefix: &str,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<T>, StoreError> {
        self.decoded_page_in(what, pk, prefix, limit, cursor, true).await
    }

    /// [`Self::decoded_page`] in either direction.
    async fn decoded_page_in<T: DeserializeOwned>(
        &self,
        what: &str,
        pk: &str,
        prefix: &str,
        limit: u16,
        cursor: Option<&Cursor>,
        forward: bool,
    ) -> Result<Page<T>, StoreError> {
        self.decoded_shards_page(what, std::slice::from_ref(&pk.to_owned()), prefix, limit, cursor, forward).await
    }

    /// [`Self::decoded_page_in`] across the shards `pks` of a sharded partition, merged in
    /// sort-key order.
    async fn decoded_shards_page<T: DeserializeOwned>(
        &self,
        what: &str,
        pks: &[String],
        prefix: &str,
        limit: u16,
        cursor: Option<&Cursor>,
        forward: bool,
    ) -> Result<Page<T>, StoreError> {
        let after = keys::sort_cursor_after(cursor, prefix)?;
        let (items, more) = self.scatter_page(pks, prefix, limit, after, forward).await?;
        let mut last_sk = None;
        let mut decoded = Vec::with_capacity(items.len());
        for it in items {
            last_sk = it.get(keys::SK).and_then(|v| v.as_s().ok()).cloned();
            decoded.push(decode::<T>(what, it)?);
        }
        let next = if more { last_sk.map(|sk| keys::encode_cursor(&sk)) } else { None };
        Ok(Page { items: decoded, next })
    }

    /// A conditional create: `false` when the item already existed.
    async fn put_plain(&self, it: Item) -> Result<(), StoreError> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(it))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(classify)?;
        metered(out.consumed_capacity(), true);
        Ok(())
    }

    /// Deletes one item, whether or not it exists.
    async fn delete_plain(&self, k: &Key) -> Result<(), StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_map(k)))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(classify)?;
        metered(out.consumed_capacity(), true);
        Ok(())
    }

    /// The contact's entry in its name-key partition, if its name has a key.
    fn name_entry(&self, c: &Contact) -> Result<Option<Item>, StoreError> {
        let Some(key) = c.name.as_deref().and_then(domain::contacts::name_key) else { return Ok(None) };
        Ok(Some(item(&keys::contact_name(&c.workspace, &key, c.id), "contact_name", &NameEntry { contact_id: c.id })?))
    }

    /// A current-conversation slot, written only if it still holds `held` (or nothing).
    fn slot_put(&self, it: Item, held: Option<ConversationId>) -> Result<TransactWriteItem, StoreError> {
        match held {
            None => put(&self.table, it, NOT_EXISTS, None),
            Some(h) => put(
                &self.table,
                it,
                "conversation_id = :held",
                Some(HashMap::from([(":held".to_owned(), s(h.to_string()))])),
            ),
        }
    }

    /// The contact, written only if its stored version is `expected`.
    fn versioned_contact(&self, c: &Contact, expected: u64) -> Result<TransactWriteItem, StoreError> {
        // Contacts written before versions existed have no attribute: version 0.
        put(
            &self.table,
            item(&keys::contact(&c.workspace, c.id), "contact", c)?,
            "attribute_exists(PK) AND (version = :expected OR (attribute_not_exists(version) AND :expected = :zero))",
            Some(HashMap::from([(":expected".to_owned(), n(expected)), (":zero".to_owned(), n(0))])),
        )
    }

    fn delete_item(&self, k: &Key) -> Result<TransactWriteItem, StoreError> {
        let d = build("delete", Delete::builder().table_name(&self.table).set_key(Some(key_map(k))).build())?;
        Ok(TransactWriteItem::builder().delete(d).build())
    }

    /// A transaction update of one agent's item (`expression` on `#load`, and `#presence`,
    /// `#capacity`, `#last` where named) under `condition`.
    fn load_update(
        &self,
        ws: &WorkspaceId,
        agent: &AgentId,
        expression: &str,
        condition: &str,
        values: Item,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut names = HashMap::from([("#load".to_owned(), "load".to_owned())]);
        for (alias, name) in [("#presence", "presence"), ("#capacity", "capacity"), ("#last", "last_assigned_at")] {
            if expression.contains(alias) || condition.contains(alias) {
                names.insert(alias.to_owned(), name.to_owned());
            }
        }
        let u = build(
            "load update",
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_map(&keys::agent(ws, agent))))
                .update_expression(expression)
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().update(u).build())
    }

    async fn create(&self, it: Item) -> Result<bool, StoreError> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(it))
            .condition_expression(NOT_EXISTS)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        Ok(conditional(res, |out| out.consumed_capacity())?.is_some())
    }
}

#[async_trait]
impl CostLedger for DynamoStore {
    async fn record_cost(&self, e: &LedgerEntry) -> Result<(), StoreError> {
        let mut items = self.ledger_items(e)?;
        if e.kind != EntryKind::Estimate {
            let mut values = message_cost_values(e);
            let mut expr = format!("SET {MESSAGE_COST_SET}");
            if e.kind == EntryKind::Actual {
                expr.push_str(", cost.actual_micros = :cx");
                values.insert(":cx".into(), n(e.totals.actual_micros));
            }
            let update = build(
                "message cost update",
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_map(&keys::message(&e.workspace, e.conversation_id, e.message_id))))
                    .update_expression(expr)
                    .condition_expression("attribute_exists(cost)")
                    .set_expression_attribute_values(Some(values))
                    .build(),
            )?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        self.transact(items, Some(0)).await
    }

    async fn counters(
        &self,
        ws: &WorkspaceId,
        month: Month,
        grouping: Grouping,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Counter>, StoreError> {
        let pks = keys::cost_partitions(ws, month);
        let prefix = keys::counter_prefix(grouping);
        let decode_all = |items: Vec<Item>| -> Result<Vec<CounterItem>, StoreError> {
            items.into_iter().map(|it| decode("cost counter", it)).collect()
        };
        if matches!(grouping, Grouping::Conversation | Grouping::Contact) {
            // One item per conversation or contact, spread over the shards: pages merge in key order.
            let after = keys::sort_cursor_after(cursor, prefix)?;
            let (items, more) = self.scatter_page(&pks, prefix, limit, after, true).await?;
            let merged = keys::merge_shards(decode_all(items)?.into_iter().map(CounterItem::into_shard));
            let next = match (more, merged.last()) {
                (true, Some((sk, _))) => Some(keys::encode_cursor(sk)),
                _ => None,
            };
            return Ok(Page { items: merged.into_iter().map(|(_, c)| c).collect(), next });
        }
        // Sharded groupings hold a handful of items: read them whole so shards always merge.
        let merged = keys::merge_shards(
            decode_all(self.query_all_shards(&pks, prefix).await?)?.into_iter().map(CounterItem::into_shard),
        );
        Ok(Page { items: merged.into_iter().map(|(_, c)| c).collect(), next: None })
    }

    async fn spend(&self, ws: &WorkspaceId, month: Month, scope: BudgetScope) -> Result<Totals, StoreError> {
        let items = self.query_all_shards(&keys::cost_partitions(ws, month), &keys::budget_scope_prefix(scope)).await?;
        let mut t = Totals::default();
        for it in items {
            t += decode::<CounterItem>("cost counter", it)?.totals();
        }
        Ok(t)
    }

    async fn entries(
        &self,
        ws: &WorkspaceId,
        day: time::Date,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<LedgerEntry>, StoreError> {
        self.decoded_shards_page("ledger entry", &keys::ledger_partitions(ws, day), "", limit, cursor, true).await
    }
}

#[async_trait]
impl RateCardStore for DynamoStore {
    async fn rate_cards(&self, ws: &WorkspaceId) -> Result<Vec<RateCard>, StoreError> {
        let items = self.query_all(&keys::rate_card_partition(ws), "V#").await?;
        items.into_iter().map(|it| decode("rate card", it)).collect()
    }

    async fn create_rate_card(&self, ws: &WorkspaceId, card: &RateCard) -> Result<(), StoreError> {
        let it = item(&keys::rate_card(ws, card.version), "rate_card", card)?;
        if self.create(it).await? {
            Ok(())
        } else {
            Err(StoreError::Duplicate)
        }
    }
}

#[async_trait]
impl BudgetStore for DynamoStore {
    async fn budgets(&self, ws: &WorkspaceId) -> Result<Vec<Budget>, StoreError> {
        let items = self.query_all(&keys::budget_partition(ws, keys::any_replica()), "").await?;
        items.into_iter().map(|it| decode("budget", it)).collect()
    }

    async fn put_budget(&self, ws: &WorkspaceId, budget: &Budget) -> Result<(), StoreError> {
        // Every replica, in one transaction: whichever a read takes holds the same budgets.
        let items = (0..keys::READ_REPLICAS)
            .map(|r| put_always(&self.table, item(&keys::budget(ws, budget.scope, r), "budget", budget)?))
            .collect::<Result<Vec<_>, _>>()?;
        self.transact(items, None).await
    }

    async fn claim_alert(
        &self,
        ws: &WorkspaceId,
        month: Month,
        scope: BudgetScope,
        threshold: u8,
    ) -> Result<bool, StoreError> {
        let mut it = key_map(&keys::budget_alert(ws, month, scope, threshold));
        it.insert(keys::ENTITY.into(), s("budget_alert"));
        it.insert(keys::TTL.into(), n(OffsetDateTime::now_utc().unix_timestamp() + ALERT_TTL_SECS));
        self.create(it).await
    }

    async fn release_alert(
        &self,
        ws: &WorkspaceId,
        month: Month,
        scope: BudgetScope,
        threshold: u8,
    ) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_map(&keys::budget_alert(ws, month, scope, threshold))))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn alerted(&self, ws: &WorkspaceId, month: Month) -> Result<Vec<(BudgetScope, u8)>, StoreError> {
        let items = self.query_all(&keys::alert_partition(ws, month), "").await?;
        Ok(items
            .iter()
            .filter_map(|it| it.get(keys::SK).and_then(|v| v.as_s().ok()))
            .filter_map(|sk| keys::parse_budget_alert(sk))
            .collect())
    }
}

#[async_trait]
impl AgentStore for DynamoStore {
    async fn put_agent(&self, ws: &WorkspaceId, a: &domain::routing::AgentState) -> Result<(), StoreError> {
        let teams = to_attribute_value(&a.teams).map_err(|e| corrupt("teams", e))?;
        let skills = to_attribute_value(&a.skills).map_err(|e| corrupt("skills", e))?;
        let presence = to_attribute_value(a.presence).map_err(|e| corrupt("presence", e))?;
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_map(&keys::agent(ws, &a.id))))
            // Every name aliased: several (capacity, …) are DynamoDB reserved words.
            .update_expression(
                "SET #id = :id, #entity = :entity, #presence = :presence, #teams = :teams, #skills = :skills, \
                 #capacity = :capacity, #load = if_not_exists(#load, :zero), #rev = if_not_exists(#rev, :zero) + :one",
            )
            .expression_attribute_names("#id", "id")
            .expression_attribute_names("#entity", keys::ENTITY)
            .expression_attribute_names("#presence", "presence")
            .expression_attribute_names("#teams", "teams")
            .expression_attribute_names("#skills", "skills")
            .expression_attribute_names("#capacity", "capacity")
            .expression_attribute_names("#load", "load")
            .expression_attribute_names("#rev", roster::REV)
            .expression_attribute_values(":id", s(a.id.as_str()))
            .expression_attribute_values(":entity", s("agent"))
            .expression_attribute_values(":presence", presence)
            .expression_attribute_values(":teams", teams)
            .expression_attribute_values(":skills", skills)
            .expression_attribute_values(":capacity", n(a.capacity))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew);
        let out = self.update_agent_state(ws, &a.id, update).await?;
        let now = out.attributes.unwrap_or_default();
        let rev = roster::revision(&now);
        let state: domain::routing::AgentState = decode("agent", now)?;
        self.write_roster_entry(ws, &state, rev).await
    }

    async fn agents(&self, ws: &WorkspaceId) -> Result<Vec<domain::routing::AgentState>, StoreError> {
        self.all_agents(ws).await
    }

    async fn roster(&self, ws: &WorkspaceId) -> Result<Vec<domain::routing::AgentState>, StoreError> {
        match &self.settings {
            Some(c) => c.remembered(&c.roster, ws, || self.roster_fresh(ws)).await,
            None => self.roster_fresh(ws).await,
        }
    }

    async fn agent_states(
        &self,
        ws: &WorkspaceId,
        ids: &[AgentId],
    ) -> Result<Vec<domain::routing::AgentState>, StoreError> {
        self.states_of(ws, ids).await
    }
}

fn rfc3339(t: OffsetDateTime) -> Result<String, StoreError> {
    t.format(&time::format_description::well_known::Rfc3339).map_err(|e| corrupt("time", e))
}

#[async_trait]
impl RoutingStore for DynamoStore {
    async fn routing_rules(&self, ws: &WorkspaceId) -> Result<domain::routing::RoutingRules, StoreError> {
        let read = || async { Ok(self.get_as("routing rules", &keys::routing_rules(ws)).await?.unwrap_or_default()) };
        match &self.settings {
            Some(c) => c.remembered(&c.rules, ws, read).await,
            None => read().await,
        }
    }

    async fn put_routing_rules(
        &self,
        ws: &WorkspaceId,
        rules: &domain::routing::RoutingRules,
    ) -> Result<(), StoreError> {
        self.put_plain(item(&keys::routing_rules(ws), "routing_rules", rules)?).await?;
        if let Some(c) = &self.settings {
            c.forget(&c.rules, ws);
        }
        let listed = keys::nps_registered(ws);
        if rules.nps.enabled {
            self.put_plain(item(&listed, "nps_workspace", &NpsListing { workspace: ws.clone() })?).await
        } else {
            self.delete_plain(&listed).await
        }
    }

    async fn nps_workspaces(&self) -> Result<Vec<WorkspaceId>, StoreError> {
        let items = self.query_all(keys::NPS_REGISTRY, "").await?;
        items.into_iter().map(|it| decode::<NpsListing>("NPS listing", it).map(|l| l.workspace)).collect()
    }

    async fn teams(&self, ws: &WorkspaceId) -> Result<Vec<domain::routing::Team>, StoreError> {
        let read = || async {
            let items = self.query_all(&keys::routing_partition(ws), keys::TEAM_PREFIX).await?;
            items.into_iter().map(|it| decode("team", it)).collect()
        };
        match &self.settings {
            Some(c) => c.remembered(&c.teams, ws, read).await,
            None => read().await,
        }
    }

    async fn put_team(&self, ws: &WorkspaceId, team: &domain::routing::Team) -> Result<(), StoreError> {
        self.put_plain(item(&keys::team(ws, &team.id), "team", team)?).await?;
        if let Some(c) = &self.settings {
            c.forget(&c.teams, ws);
        }
        Ok(())
    }

    async fn sla_policy(&self, ws: &WorkspaceId) -> Result<domain::sla::Policy, StoreError> {
        Ok(self.get_as("SLA policy", &keys::sla_policy(ws)).await?.unwrap_or_default())
    }

    async fn put_sla_policy(&self, ws: &WorkspaceId, policy: &domain::sla::Policy) -> Result<(), StoreError> {
        self.put_plain(item(&keys::sla_policy(ws), "sla_policy", policy)?).await
    }

    async fn privacy_policy(&self, ws: &WorkspaceId) -> Result<domain::redact::Policy, StoreError> {
        Ok(self.get_as("privacy policy", &keys::privacy_policy(ws)).await?.unwrap_or_default())
    }

    async fn put_privacy_policy(&self, ws: &WorkspaceId, policy: &domain::redact::Policy) -> Result<(), StoreError> {
        self.put_plain(item(&keys::privacy_policy(ws), "privacy_policy", policy)?).await
    }

    async fn sla_setup(&self, ws: &WorkspaceId) -> Result<domain::sla::Setup, StoreError> {
        let mut setup = domain::sla::Setup::default();
        for it in self.query_all(&keys::routing_partition(ws), "").await? {
            let sk = it.get(keys::SK).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            if sk == keys::SLA_SORT {
                setup.policy = decode("SLA policy", it)?;
            } else if sk == keys::PRIVACY_SORT {
                setup.privacy = decode("privacy policy", it)?;
            } else if sk == keys::RULES_SORT {
                setup.hours = decode::<domain::routing::RoutingRules>("routing rules", it)?.hours;
            } else if sk.starts_with(keys::TEAM_PREFIX) {
                let team: domain::routing::Team = decode("team", it)?;
                setup.team_hours.extend(team.hours.map(|h| (team.id, h)));
            }
        }
        Ok(setup)
    }

    async fn waiting(&self, ws: &WorkspaceId) -> Result<Vec<domain::routing::Work>, StoreError> {
        let items = self.query_all_shards(&keys::waiting_partitions(ws), "").await?;
        items.into_iter().map(|it| decode("waiting work", it)).collect()
    }

    async fn commit_routing(&self, c: RoutingCommit) -> Result<(), StoreError> {
        let ws = c.conversation.workspace.clone();
        let mut items = vec![put(
            &self.table,
            conversation_item(&c.conversation)?,
            "version = :expected",
            Some(HashMap::from([(":expected".to_owned(), n(c.expected_version))])),
        )?];
        if let (Some(t), Some((g, _))) = (&c.take, &c.give_back) {
            if &t.agent == g {
                return Err(StoreError::Rejected(
                    "one commit cannot give back and take the same agent's capacity".into(),
                ));
            }
        }
        if let Some(t) = &c.take {
            let mut values = HashMap::from([(":w".to_owned(), n(t.weight)), (":at".to_owned(), s(rfc3339(t.at)?))]);
            let condition = match t.capacity {
                Some(cap) => {
                    let Some(limit) = cap.checked_sub(t.weight) else { return Err(StoreError::Conflict) };
                    values.insert(":online".into(), s("online"));
                    values.insert(":cap".into(), n(cap));
                    values.insert(":limit".into(), n(limit));
                    "#presence = :online AND #capacity = :cap AND #load <= :limit"
                }
                None => "attribute_exists(PK)",
            };
            items.push(self.load_update(&ws, &t.agent, "SET #load = #load + :w, #last = :at", condition, values)?);
        }
        if let Some((agent, weight)) = &c.give_back {
            // Never below zero: give back at most what the agent holds (a condition cannot clamp).
            let key = keys::agent(&ws, agent);
            let state = || self.get_as::<domain::routing::AgentState>("agent", &key);
            let held = match state().await? {
                Some(a) => a.load,
                // Held under a legacy roster entry: adopted first, so the load it holds is given back.
                None if self.adopt(&ws, agent).await? => state().await?.map_or(0, |a| a.load),
                None => 0,
            };
            let w = (*weight).min(held);
            if w > 0 {
                let values = HashMap::from([(":w".to_owned(), n(w))]);
                items.push(self.load_update(&ws, agent, "SET #load = #load - :w", "#load >= :w", values)?);
            }
        }
        let wk = keys::waiting(&ws, c.conversation.id);
        match &c.queue {
            QueueChange::Keep => {}
            QueueChange::Add(w) => items.push(put_always(&self.table, item(&wk, "waiting", w)?)?),
            QueueChange::Remove => items.push(self.delete_item(&wk)?),
        }
        if let Some(e) = &c.audit {
            items.push(put(&self.table, audit_item(e)?, NOT_EXISTS, None)?);
        }
        self.transact(items, None).await
    }

    async fn set_presence(
        &self,
        ws: &WorkspaceId,
        agent: &AgentId,
        presence: domain::routing::Presence,
        default_capacity: u32,
        now: OffsetDateTime,
    ) -> Result<PresenceSet, StoreError> {
        let value = to_attribute_value(presence).map_err(|e| corrupt("presence", e))?;
        // The item as it was (ALL_OLD): it tells which period this call ends. The item as it is now
        // follows from it and the expression below, without a second read.
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_map(&keys::agent(ws, agent))))
            .update_expression(
                "SET #presence = :presence, #since = :now, #id = :id, #entity = :entity, \
                 #capacity = if_not_exists(#capacity, :cap), #load = if_not_exists(#load, :zero), \
                 #teams = if_not_exists(#teams, :none), #skills = if_not_exists(#skills, :none), \
                 #rev = if_not_exists(#rev, :zero) + :one",
            )
            .expression_attribute_names("#presence", "presence")
            .expression_attribute_names("#since", "presence_since")
            .expression_attribute_names("#id", "id")
            .expression_attribute_names("#entity", keys::ENTITY)
            .expression_attribute_names("#capacity", "capacity")
            .expression_attribute_names("#load", "load")
            .expression_attribute_names("#teams", "teams")
            .expression_attribute_names("#skills", "skills")
            .expression_attribute_values(":presence", value)
            .expression_attribute_values(":now", s(rfc3339(now)?))
            .expression_attribute_values(":id", s(agent.as_str()))
            .expression_attribute_values(":entity", s("agent"))
            .expression_attribute_values(":cap", n(default_capacity))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":none", AttributeValue::L(vec![]))
            .expression_attribute_names("#rev", roster::REV)
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllOld);
        let out = self.update_agent_state(ws, agent, update).await?;
        let rev = out.attributes.as_ref().map_or(0, roster::revision) + 1;
        let old = match out.attributes.filter(|a| !a.is_empty()) {
            Some(item) => {
                let since = item
                    .get("presence_since")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok());
                Some((decode::<domain::routing::AgentState>("agent", item)?, since))
            }
            None => None,
        };
        let online_since =
            old.as_ref().filter(|(a, _)| a.presence == domain::routing::Presence::Online).and_then(|(_, since)| *since);
        let state = match old {
            Some((was, _)) => domain::routing::AgentState { presence, ..was },
            None => domain::routing::AgentState::first_seen(agent.clone(), presence, default_capacity),
        };
        self.write_roster_entry(ws, &state, rev).await?;
        Ok(PresenceSet { state, online_since })
    }
}

fn connection_item(k: &Key, c: &domain::realtime::Connection) -> Result<Item, StoreError> {
    let mut it = item(k, "connection", c)?;
    // DynamoDB deletes it within days of this; readers check staleness themselves.
    it.insert(keys::TTL.into(), n(c.expires_at().unix_timestamp()));
    Ok(it)
}

/// Every item a connection is kept in (`keys::READ_REPLICAS`): its pointer, the workspace's
/// list, its agent's, the overseers' for a supervisor or admin, and beside each conversation its
/// tab views or follows.
fn connection_placements(c: &domain::realtime::Connection) -> Vec<Key> {
    let (ws, id) = (&c.workspace, &c.id);
    let mut out =
        vec![keys::connection_pointer(id), keys::connection_in(keys::agent_connections_partition(ws, &c.agent), id)];
    for r in 0..keys::READ_REPLICAS {
        out.push(keys::connection_in(keys::connections_partition(ws, r), id));
        if c.role.oversees() {
            out.push(keys::connection_in(keys::overseers_partition(ws, r), id));
        }
    }
    let watched: std::collections::BTreeSet<ConversationId> =
        c.viewing.iter().chain(&c.subscriptions).copied().collect();
    out.extend(watched.into_iter().map(|conv| keys::watcher(ws, conv, id)));
    out
}

impl DynamoStore {
    /// Writes in transactions of at most 100 items (a tab following many conversations takes more).
    async fn transact_chunks(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            self.transact(items.by_ref().take(TRANSACTION_ITEMS).collect(), None).await?;
        }
        Ok(())
    }

    async fn connections_in(&self, pk: &str) -> Result<Vec<domain::realtime::Connection>, StoreError> {
        self.query_all(pk, "").await?.into_iter().map(|it| decode("connection", it)).collect()
    }
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn put_connection(&self, c: &domain::realtime::Connection) -> Result<(), StoreError> {
        // Every placement holds the whole connection: each audience's read is one Query. What the
        // tab no longer shows (its previous version's placements) is deleted in the same write.
        let previous: Option<domain::realtime::Connection> =
            self.get_as("connection", &keys::connection_pointer(&c.id)).await?;
        let now = connection_placements(c);
        let mut items =
            now.iter().map(|k| put_always(&self.table, connection_item(k, c)?)).collect::<Result<Vec<_>, _>>()?;
        for gone in previous.iter().flat_map(connection_placements).filter(|k| !now.contains(k)) {
            items.push(self.delete_item(&gone)?);
        }
        self.transact_chunks(items).await
    }

    async fn connection(&self, id: &domain::ConnectionId) -> Result<Option<domain::realtime::Connection>, StoreError> {
        self.get_as("connection", &keys::connection_pointer(id)).await
    }

    async fn connections(&self, ws: &WorkspaceId) -> Result<Vec<domain::realtime::Connection>, StoreError> {
        self.connections_in(&keys::connections_partition(ws, keys::any_replica())).await
    }

    async fn agent_connections(
        &self,
        ws: &WorkspaceId,
        agent: &AgentId,
    ) -> Result<Vec<domain::realtime::Connection>, StoreError> {
        self.connections_in(&keys::agent_connections_partition(ws, agent)).await
    }

    async fn overseer_connections(&self, ws: &WorkspaceId) -> Result<Vec<domain::realtime::Connection>, StoreError> {
        self.connections_in(&keys::overseers_partition(ws, keys::any_replica())).await
    }

    async fn watching(
        &self,
        ws: &WorkspaceId,
        conversation: ConversationId,
    ) -> Result<Vec<domain::realtime::Connection>, StoreError> {
        let pk = keys::conversation(ws, conversation).pk;
        self.query_all(&pk, keys::WATCHER_PREFIX).await?.into_iter().map(|it| decode("connection", it)).collect()
    }

    async fn delete_connection(&self, ws: &WorkspaceId, id: &domain::ConnectionId) -> Result<(), StoreError> {
        let found: Option<domain::realtime::Connection> =
            self.get_as("connection", &keys::connection_pointer(id)).await?;
        // A connection of the design before is moved by `migrate-table`, not looked for here (a
        // delete of an absent item costs a write like any other).
        let gone = match found.filter(|c| &c.workspace == ws) {
            Some(c) => connection_placements(&c),
            None => vec![keys::connection_pointer(id)],
        };
        let items = gone.iter().map(|k| self.delete_item(k)).collect::<Result<Vec<_>, _>>()?;
        self.transact_chunks(items).await
    }
}

#[async_trait]
impl AuditLog for DynamoStore {
    async fn record_audit(&self, e: &domain::audit::AuditEntry) -> Result<(), StoreError> {
        self.create(audit_item(e)?).await.map(drop)
    }

    async fn audit_trail(
        &self,
        ws: &WorkspaceId,
        conversation: Option<ConversationId>,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<domain::audit::AuditEntry>, StoreError> {
        let (pk, prefix) = keys::audit_partition(ws, conversation);
        self.decoded_page("audit entry", &pk, prefix, limit, cursor).await
    }
}

#[async_trait]
impl NoteStore for DynamoStore {
    async fn add_note(
        &self,
        note: &domain::inbox::Note,
        audit: &domain::audit::AuditEntry,
        key: &IdempotencyKey,
    ) -> Result<(), StoreError> {
        // The marker names the note, never holds its text (an erased conversation leaves nothing
        // behind), and expires like the replies' keys.
        let pointer = NotePointer { conversation_id: note.conversation_id, note_id: note.id.clone() };
        let mut marker = item(&keys::note_idempotency(&note.workspace, &note.author, key), "note_key", &pointer)?;
        marker.insert(keys::TTL.into(), n(note.created_at.unix_timestamp() + IDEMPOTENCY_TTL_SECS));
        let note_item = item(&keys::note(&note.workspace, note.conversation_id, &note.id), "note", note)?;
        let items = vec![
            put(&self.table, marker, NOT_EXISTS, None)?,
            put(&self.table, note_item, NOT_EXISTS, None)?,
            put(&self.table, audit_item(audit)?, NOT_EXISTS, None)?,
        ];
        self.transact(items, Some(0)).await
    }

    async fn note_by_key(
        &self,
        ws: &WorkspaceId,
        author: &AgentId,
        key: &IdempotencyKey,
    ) -> Result<Option<domain::inbox::Note>, StoreError> {
        let Some(p) = self.get_as::<NotePointer>("note key", &keys::note_idempotency(ws, author, key)).await? else {
            return Ok(None);
        };
        self.get_as("note", &keys::note(ws, p.conversation_id, &p.note_id)).await
    }

    async fn notes(
        &self,
        ws: &WorkspaceId,
        conv: ConversationId,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<domain::inbox::Note>, StoreError> {
        self.decoded_page("note", &keys::conversation(ws, conv).pk, keys::NOTE_PREFIX, limit, cursor).await
    }
}

#[async_trait]
impl ContactHistory for DynamoStore {
    async fn contact_conversations(
        &self,
        ws: &WorkspaceId,
        contact: ContactId,
        limit: u16,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Conversation>, StoreError> {
        let pk = keys::contact(ws, contact).pk;
        let pointers: Page<ConversationPointer> =
            self.decoded_page("contact conversation", &pk, keys::CONTACT_CONVERSATION_PREFIX, limit, cursor).await?;
        let wanted: Vec<Key> = pointers.items.iter().map(|p| keys::conversation(ws, p.conversation_id)).collect();
        let reads = wanted.iter().map(|k| self.get_as::<Conversation>("conversation", k));
        let found = futures::future::try_join_all(reads).await?;
        Ok(Page { items: found.into_iter().flatten().collect(), next: pointers.next })
    }
}

#[derive(Deserialize)]
struct CannedUse {
    #[serde(rename = "SK")]
    id: String,
    uses: u32,
}

#[async_trait]
impl TemplateStore for DynamoStore {
    async fn whatsapp_templates(
        &self,
        ws: &WorkspaceId,
    ) -> Result<Vec<domain::channels::templates::WhatsAppTemplate>, StoreError> {
        let items = self.query_all(&keys::whatsapp_template_partition(ws), "").await?;
        items.into_iter().map(|it| decode("WhatsApp template", it)).collect()
    }

    async fn whatsapp_template(
        &self,
        ws: &WorkspaceId,
        name: &str,
        language: &str,
    ) -> Result<Option<domain::channels::templates::WhatsAppTemplate>, StoreError> {
        self.get_as("WhatsApp template", &keys::whatsapp_template(ws, name, language)).await
    }

    async fn put_whatsapp_template(
        &self,
        ws: &WorkspaceId,
        t: &domain::channels::templates::WhatsAppTemplate,
    ) -> Result<(), StoreError> {
        if let Some(id) = &t.meta_id {
            let pointer = TemplatePointer { workspace: ws.clone(), name: t.name.clone(), language: t.language.clone() };
            self.put_plain(item(&keys::whatsapp_template_by_meta_id(id), "whatsapp_template_id", &pointer)?).await?;
        }
        self.put_plain(item(&keys::whatsapp_template(ws, &t.name, &t.language), "whatsapp_template", t)?).await
    }

    async fn whatsapp_template_by_meta_id(
        &self,
        meta_id: &str,
    ) -> Result<Option<(WorkspaceId, domain::channels::templates::WhatsAppTemplate)>, StoreError> {
        let Some(p) = self
            .get_as::<TemplatePointer>("WhatsApp template id", &keys::whatsapp_template_by_meta_id(meta_id))
            .await?
        else {
            return Ok(None);
        };
        let t = self.whatsapp_template(&p.workspace, &p.name, &p.language).await?;
        Ok(t.filter(|t| t.meta_id.as_deref() == Some(meta_id)).map(|t| (p.workspace, t)))
    }

    async fn replace_whatsapp_template(
        &self,
        ws: &WorkspaceId,
        t: &domain::channels::templates::WhatsAppTemplate,
        reviewed_at: Option<time::OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let it = item(&keys::whatsapp_template(ws, &t.name, &t.language), "whatsapp_template", t)?;
        let req = self.client.put_item().table_name(&self.table).set_item(Some(it));
        let req = match reviewed_at {
            None => req.condition_expression("attribute_exists(PK) AND attribute_not_exists(reviewed_at)"),
            Some(at) => {
                req.condition_expression("attribute_exists(PK) AND reviewed_at = :r").expression_attribute_values(
                    ":r",
                    s(at.format(&time::format_description::well_known::Rfc3339).map_err(|e| corrupt("template", e))?),
                )
            }
        };
        let res = req.return_consumed_capacity(ReturnConsumedCapacity::Total).send().await;
        Ok(conditional(res, |o| o.consumed_capacity())?.is_some())
    }
}

/// Where Meta's id of a template points.
#[derive(Serialize, Deserialize)]
struct TemplatePointer {
    workspace: WorkspaceId,
    name: String,
    language: String,
}

#[async_trait]
impl CannedStore for DynamoStore {
    async fn canned_responses(&self, ws: &WorkspaceId) -> Result<Vec<domain::canned::CannedResponse>, StoreError> {
        let items = self.query_all(&keys::canned_partition(ws), "").await?;
        items.into_iter().map(|it| decode("canned response", it)).collect()
    }

    async fn canned_response(
        &self,
        ws: &WorkspaceId,
        id: &str,
    ) -> Result<Option<domain::canned::CannedResponse>, StoreError> {
        self.get_as("canned response", &keys::canned_response(ws, id)).await
    }

    async fn put_canned_response(
        &self,
        ws: &WorkspaceId,
        r: &domain::canned::CannedResponse,
    ) -> Result<(), StoreError> {
        self.put_plain(item(&keys::canned_response(ws, &r.id), "canned_response", r)?).await
    }

    async fn delete_canned_response(&self, ws: &WorkspaceId, id: &str) -> Result<(), StoreError> {
        self.delete_plain(&keys::canned_response(ws, id)).await
    }

    async fn record_canned_use(&self, ws: &WorkspaceId, agent: &AgentId, id: &str) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_map(&keys::canned_use(ws, agent, id))))
            .update_expression("ADD uses :one SET entity = :entity")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":entity", s("canned_use"))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(classify)?;
        metered(out.consumed_capacity(), true);
        Ok(())
    }

    async fn canned_usage(&self, ws: &WorkspaceId, agent: &AgentId) -> Result<HashMap<String, u32>, StoreError> {
        let items = self.query_all(&keys::canned_use_partition(ws, agent), "").await?;
        items.into_iter().map(|it| decode::<CannedUse>("canned use", it).map(|u| (u.id, u.uses))).collect()
    }
}

#[async_trait]
impl ReorgStore for DynamoStore {
    async fn move_messages(
        &self,
        ws: &WorkspaceId,
        to: ConversationId,
        messages: &[Message],
    ) -> Result<(), StoreError> {
        if messages.len() > MOVE_CHUNK {
            return Err(StoreError::Rejected(format!("at most {MOVE_CHUNK} messages move at once").into()));
        }
        let mut items = vec![];
        for m in messages {
            // The old item goes only if it is still as read: a status or cost written since would
            // otherwise be lost with it.
            let mut values = HashMap::from([
                (":rank".to_owned(), n(m.status.rank())),
                (":history".to_owned(), n(m.status_history.len())),
            ]);
            let cost = match &m.cost {
                Some(c) => {
                    values.insert(":cp".into(), n(c.provider_micros));
                    values.insert(":ca".into(), n(c.aws_micros));
                    "cost.provider_micros = :cp AND cost.aws_micros = :ca"
                }
                None => "attribute_not_exists(cost)",
            };
            let d = build(
                "delete",
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_map(&keys::message(ws, m.conversation_id, m.id))))
                    .condition_expression(format!(
                        "attribute_exists(PK) AND status_rank = :rank AND size(status_history) = :history AND {cost}"
                    ))
                    .set_expression_attribute_values(Some(values))
                    .build(),
            )?;
            items.push(TransactWriteItem::builder().delete(d).build());
            let mut moved = m.clone();
            moved.conversation_id = to;
            items.push(put(&self.table, message_item(&moved)?, NOT_EXISTS, None)?);
            if let (Some(provider), Some(pid)) = (&m.provider, &m.provider_message_id) {
                let pointer = item(
                    &keys::provider_message(ws, provider, pid),
                    "provider_message",
                    &ProviderPointer { conversation_id: to, message_id: m.id },
                )?;
                items.push(put_always(&self.table, pointer)?);
            }
        }
        if items.is_empty() {
            return Ok(());
        }
        self.transact(items, None).await
    }

    async fn commit_reorg(&self, c: ReorgCommit) -> Result<(), StoreError> {
        let ws = c.source.workspace.clone();
        let versioned = |conv: &Conversation, expected: u64| {
            put(
                &self.table,
                conversation_item(conv)?,
                "version = :expected",
                Some(HashMap::from([(":expected".to_owned(), n(expected))])),
            )
        };
        let mut items = vec![versioned(&c.source, c.source_version)?];
        match c.target_version {
            Some(v) => items.push(versioned(&c.target, v)?),
            None => {
                items.push(put(&self.table, conversation_item(&c.target)?, NOT_EXISTS, None)?);
                let history = item(
                    &keys::contact_conversation(&ws, c.target.contact_id, c.target.id),
                    "contact_conversation",
                    &ConversationPointer { conversation_id: c.target.id },
                )?;
                items.push(put_always(&self.table, history)?);
            }
        }
        if c.moves_current {
            let pointer = item(
                &keys::current_conversation(&ws, c.source.contact_id),
                "current_conversation",
                &ConversationPointer { conversation_id: c.target.id },
            )?;
            let held = HashMap::from([(":source".to_owned(), s(c.source.id.to_string()))]);
            items.push(put(&self.table, pointer, "conversation_id = :source", Some(held))?);
        }
        if let Some(w) = &c.queue {
            items.push(self.delete_item(&keys::waiting(&ws, c.source.id))?);
            items.push(put_always(&self.table, item(&keys::waiting(&ws, c.target.id), "waiting", w)?)?);
        }
        for e in &c.audits {
            items.push(put(&self.table, audit_item(e)?, NOT_EXISTS, None)?);
        }
        self.transact(items, None).await
    }
}

#[async_trait]
impl ContactStore for DynamoStore {
    async fn identity_owner(&self, ws: &WorkspaceId, identity: &Identity) -> Result<Option<ContactId>, StoreError> {
        Ok(self.get_as::<IdentityPointer>("identity", &keys::identity(ws, identity)).await?.map(|p| p.contact_id))
    }

    async fn link_identity(
        &self,
        contact: &Contact,
        expected_version: u64,
        identity: &Identity,
        audit: &domain::audit::AuditEntry,
    ) -> Result<(), StoreError> {
        let ws = &contact.workspace;
        let pointer = item(
            &keys::identity(ws, identity),
            "identity",
            &IdentityPointer { contact_id: contact.id, current_conversation_id: None },
        )?;
        let items = vec![
            put(&self.table, pointer, NOT_EXISTS, None)?,
            self.versioned_contact(contact, expected_version)?,
            put(&self.table, audit_item(audit)?, NOT_EXISTS, None)?,
        ];
        self.transact(items, Some(0)).await
    }

    async fn unlink_identity(
        &self,
        contact: &Contact,
        expected_version: u64,
        identity: &Identity,
        audit: &domain::audit::AuditEntry,
    ) -> Result<(), StoreError> {
        let ws = &contact.workspace;
        let d = build(
            "delete",
            Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key_map(&keys::identity(ws, identity))))
                .condition_expression("contact_id = :contact")
                .expression_attribute_values(":contact", s(contact.id.to_string()))
                .build(),
        )?;
        let items = vec![
            TransactWriteItem::builder().delete(d).build(),
            self.versioned_contact(contact, expected_version)?,
            put(&self.table, audit_item(audit)?, NOT_EXISTS, None)?,
        ];
        self.transact(items, None).await
    }

    async fn commit_contact_merge(&self, c: ContactMergeCommit) -> Result<(), StoreError> {
        let m = &c.merge;
        let ws = &m.target.workspace;
        let mut items = vec![
            self.versioned_contact(&m.source, c.source_version)?,
            self.versioned_contact(&m.target, c.target_version)?,
        ];
        let from = HashMap::from([(":source".to_owned(), s(m.source.id.to_string()))]);
        for identity in &m.identities {
            let pointer = item(
                &keys::identity(ws, identity),
                "identity",
                &IdentityPointer { contact_id: m.target.id, current_conversation_id: None },
            )?;
            items.push(put(&self.table, pointer, "contact_id = :source", Some(from.clone()))?);
        }
        // The source's slot is retired; it must still hold what the plan read.
        let retired = item(
            &keys::current_conversation(ws, m.source.id),
            "current_conversation",
            &CurrentSlot { conversation_id: None, merged_into: Some(m.target.id) },
        )?;
        items.push(self.slot_put(retired, m.source_slot)?);
        if let domain::contacts::SlotMove::Hand(conv) = m.slot {
            let slot = item(
                &keys::current_conversation(ws, m.target.id),
                "current_conversation",
                &CurrentSlot { conversation_id: Some(conv), merged_into: None },
            )?;
            items.push(self.slot_put(slot, m.target_slot)?);
        }
        if let Some(key) = m.source.name.as_deref().and_then(domain::contacts::name_key) {
            items.push(self.delete_item(&keys::contact_name(ws, &key, m.source.id))?);
        }
        if let Some(entry) = self.name_entry(&m.target)? {
            items.push(put_always(&self.table, entry)?);
        }
        items.push(put(&self.table, audit_item(&c.audit)?, NOT_EXISTS, None)?);
        self.transact(items, None).await
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
        let mut items = Vec::with_capacity(conversations.len() * 3);
        for c in conversations {
            let mut moved = c.clone();
            moved.contact_id = to;
            moved.version += 1;
            items.push(put(
                &self.table,
                conversation_item(&moved)?,
                "version = :expected",
                Some(HashMap::from([(":expected".to_owned(), n(c.version))])),
            )?);
            items.push(self.delete_item(&keys::contact_conversation(ws, c.contact_id, c.id))?);
            let history = item(
                &keys::contact_conversation(ws, to, c.id),
                "contact_conversation",
                &ConversationPointer { conversation_id: c.id },
            )?;
            items.push(put_always(&self.table, history)?);
        }
        if items.is_empty() {
            return Ok(());
        }
        self.transact(items, None).await
    }

    async fn contacts_named(&self, ws: &WorkspaceId, name_key: &str, limit: u16) -> Result<Vec<Contact>, StoreError> {
        let entries: Page<NameEntry> = self
            .decoded_page(
                "contact name",
                &keys::contact_name_partition(ws, name_key),
                keys::CONTACT_NAME_PREFIX,
                limit,
                None,
            )
            .await?;
        let wanted: Vec<Key> = entries.items.iter().map(|e| keys::contact(ws, e.contact_id)).collect();
        let reads = wanted.iter().map(|k| self.get_as::<Contact>("contact", k));
        Ok(futures::future::try_join_all(reads).await?.into_iter().flatten().collect())
    }

    async fn update_contact(&self, c: &Contact, expected_version: u64) -> Result<(), StoreError> {
        let put = self.versioned_contact(c, expected_version)?;
        self.transact(vec![put], None).await
    }
}

fn visitor_connection_item(k: &Key, c: &VisitorConnection) -> Result<Item, StoreError> {
    let mut it = item(k, "visitor_connection", c)?;
    it.insert(keys::TTL.into(), n(c.expires_at().unix_timestamp()));
    Ok(it)
}

#[async_trait]
impl VisitorStore for DynamoStore {
    async fn visitor_profile(
        &self,
        ws: &WorkspaceId,
        visitor: &VisitorId,
    ) -> Result<Option<VisitorProfile>, StoreError> {
        self.get_as("visitor profile", &keys::visitor_profile(ws, visitor)).await
    }

    async fn put_visitor_profile(&self, p: &VisitorProfile) -> Result<(), StoreError> {
        self.put_plain(item(&keys::visitor_profile(&p.workspace, &p.visitor), "visitor_profile", p)?).await
    }

    async fn put_visitor_connection(&self, c: &VisitorConnection) -> Result<(), StoreError> {
        // Both items hold the whole connection: a lookup by id is one read.
        let items = vec![
            put_always(&self.table, visitor_connection_item(&keys::visitor_connection_pointer(&c.id), c)?)?,
            put_always(
                &self.table,
                visitor_connection_item(&keys::visitor_connection(&c.workspace, &c.visitor, &c.id), c)?,
            )?,
        ];
        self.transact(items, None).await
    }

    async fn visitor_connection(&self, id: &domain::ConnectionId) -> Result<Option<VisitorConnection>, StoreError> {
        self.get_as("visitor connection", &keys::visitor_connection_pointer(id)).await
    }

    async fn visitor_connections(
        &self,
        ws: &WorkspaceId,
        visitor: &VisitorId,
    ) -> Result<Vec<VisitorConnection>, StoreError> {
        let items = self.query_all(&keys::visitor_partition(ws, visitor), keys::VISITOR_CONNECTION_PREFIX).await?;
        let mut out: Vec<VisitorConnection> =
            items.into_iter().map(|it| decode("visitor connection", it)).collect::<Result<_, _>>()?;
        out.sort_by_key(|c| c.connected_at);
        Ok(out)
    }

    async fn delete_visitor_connection(&self, c: &VisitorConnection) -> Result<(), StoreError> {
        let items = vec![
            self.delete_item(&keys::visitor_connection_pointer(&c.id))?,
            self.delete_item(&keys::visitor_connection(&c.workspace, &c.visitor, &c.id))?,
        ];
        self.transact(items, None).await
    }
}

#[async_trait]
impl HookStore for DynamoStore {
    async fn endpoints(&self, ws: &WorkspaceId) -> Result<Vec<domain::hooks::Endpoint>, StoreError> {
        let items = self.query_all(&keys::hook_partition(ws), "").await?;
        items.into_iter().map(|it| decode("webhook endpoint", it)).collect()
    }

    async fn endpoint(&self, ws: &WorkspaceId, id: &str) -> Result<Option<domain::hooks::Endpoint>, StoreError> {
        self.get_as("webhook endpoint", &keys::hook_endpoint(ws, id)).await
    }

    async fn put_endpoint(&self, e: &domain::hooks::Endpoint, expected: Option<u64>) -> Result<(), StoreError> {
        let it = item(&keys::hook_endpoint(&e.workspace, &e.id), "webhook_endpoint", e)?;
        let req = self.client.put_item().table_name(&self.table).set_item(Some(it));
        let req = match expected {
            None => req.condition_expression(NOT_EXISTS),
            Some(v) => req
                .condition_expression("attribute_exists(PK) AND version = :v")
                .expression_attribute_values(":v", n(v)),
        };
        let res = req.return_consumed_capacity(ReturnConsumedCapacity::Total).send().await;
        match conditional(res, |o| o.consumed_capacity())? {
            Some(_) => Ok(()),
            None if expected.is_none() => Err(StoreError::Duplicate),
            None => Err(StoreError::Conflict),
        }
    }

    async fn delete_endpoint(&self, ws: &WorkspaceId, id: &str) -> Result<(), StoreError> {
        self.delete_plain(&keys::hook_endpoint(ws, id)).await
    }

    async fn record_attempt(
        &self,
        job: &domain::hooks::DeliveryJob,
        attempt: &domain::hooks::Attempt,
        state: domain::hooks::DeliveryState,
        next_attempt_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        let value = |what: &str, v: &dyn erased::Ser| -> Result<AttributeValue, StoreError> {
            v.attribute().map_err(|e| corrupt(what, e))
        };
        let expires = (attempt.at + domain::hooks::LOG_RETENTION).unix_timestamp();
        let mut values = HashMap::from([
            (":entity".to_owned(), s("webhook_delivery")),
            (":msg".to_owned(), s(&job.msg_id)),
            (":ep".to_owned(), s(&job.endpoint_id)),
            (":ws".to_owned(), s(job.workspace.as_str())),
            (":event".to_owned(), value("webhook event", &job.event)?),
            (":body".to_owned(), s(&job.body)),
            (":attempt".to_owned(), AttributeValue::L(vec![value("webhook attempt", attempt)?])),
            (":none".to_owned(), AttributeValue::L(vec![])),
            (":state".to_owned(), value("webhook state", &state)?),
            (":ttl".to_owned(), n(expires)),
        ]);
        let mut set = "#entity = :entity, msg_id = :msg, endpoint_id = :ep, workspace = :ws, #event = :event, \
                       body = if_not_exists(body, :body), attempts = list_append(if_not_exists(attempts, :none), :attempt), \
                       #state = :state, #ttl = :ttl"
            .to_owned();
        let remove = match next_attempt_at {
            Some(at) => {
                let at = at
                    .format(&time::format_description::well_known::Rfc3339)
                    .map_err(|e| corrupt("webhook next attempt", e))?;
                values.insert(":next".to_owned(), s(at));
                set.push_str(", next_attempt_at = :next");
                ""
            }
            None => " REMOVE next_attempt_at",
        };
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_map(&keys::hook_delivery(&job.workspace, &job.endpoint_id, &job.msg_id))))
            .update_expression(format!("SET {set}{remove}"))
            .expression_attribute_names("#entity", keys::ENTITY)
            .expression_attribute_names("#event", "event")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#ttl", "ttl")
            .set_expression_attribute_values(Some(values))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(classify)?;
        metered(out.consumed_capacity(), true);
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
        self.decoded_page_in("webhook delivery", &pk, "", limit, cursor, false).await
    }

    async fn delivery(
        &self,
        ws: &WorkspaceId,
        endpoint: &str,
        msg_id: &str,
    ) -> Result<Option<domain::hooks::Delivery>, StoreError> {
        self.get_as("webhook delivery", &keys::hook_delivery(ws, endpoint, msg_id)).await
    }
}

/// Serializing one value to an attribute behind a `dyn` (the update names several types).
mod erased {
    use aws_sdk_dynamodb::types::AttributeValue;

    pub trait Ser {
        fn attribute(&self) -> Result<AttributeValue, serde_dynamo::Error>;
    }

    impl<T: serde::Serialize> Ser for T {
        fn attribute(&self) -> Result<AttributeValue, serde_dynamo::Error> {
            super::to_attribute_value(self)
        }
    }
}

#[derive(Serialize, Deserialize)]
struct NpsListing {
    workspace: WorkspaceId,
}

#[derive(Serialize)]
struct FactMarker {
    ttl: i64,
}

/// How long a fact's marker is kept: far longer than the analytics queue keeps a message.
const FACT_MARKER_TTL_SECS: i64 = 3 * 24 * 3600;

/// A batch of facts cut into transactions: as many facts each as their markers and the distinct
/// aggregates they change fit in one (a fact of a channel and hour already in the chunk adds a
/// marker only, so a full batch of one channel's messages is one transaction, not four).
fn fact_chunks(facts: &[domain::analytics::Fact]) -> Vec<&[domain::analytics::Fact]> {
    use domain::analytics::{dimensions, hour_of};
    let mut out = vec![];
    let (mut start, mut aggregates) = (0, std::collections::HashSet::new());
    for (i, f) in facts.iter().enumerate() {
        let new: Vec<(String, String)> =
            dimensions(f).into_iter().map(|d| (hour_of(f.at), d)).filter(|k| !aggregates.contains(k)).collect();
        if (i - start) + 1 + aggregates.len() + new.len() > TRANSACTION_ITEMS {
            out.push(&facts[start..i]);
            start = i;
            aggregates.clear();
            aggregates.extend(dimensions(f).into_iter().map(|d| (hour_of(f.at), d)));
        } else {
            aggregates.extend(new);
        }
    }
    if start < facts.len() {
        out.push(&facts[start..]);
    }
    out
}

impl DynamoStore {
    /// Applies one of [`fact_chunks`]: one read of their markers and aggregates,
    /// one transaction writing the new facts' markers and every aggregate they change.
    async fn apply_fact_chunk(&self, facts: &[domain::analytics::Fact]) -> Result<usize, StoreError> {
        use domain::analytics::{dimensions, hour_of, Aggregate};
        // A fact repeated within the batch is one fact (and BatchGetItem refuses repeated keys).
        let mut unique: Vec<&domain::analytics::Fact> = vec![];
        for f in facts {
            if !unique.iter().any(|g| g.workspace == f.workspace && g.id == f.id) {
                unique.push(f);
            }
        }
        let markers: Vec<Key> = unique.iter().map(|f| keys::fact_marker(&f.workspace, &f.id)).collect();
        let seen = self.get_many(&markers).await?;
        let fresh: Vec<&domain::analytics::Fact> =
            unique.into_iter().zip(seen).filter(|(_, marker)| marker.is_none()).map(|(f, _)| f).collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        // The whole chunk adds to one shard of each aggregate (named by its first fact).
        let shard = keys::stats_shard(&fresh[0].id);
        let mut agg_keys: Vec<Key> = vec![];
        for f in &fresh {
            for d in dimensions(f) {
                let k = keys::stats(&f.workspace, &hour_of(f.at), &d, shard);
                if !agg_keys.contains(&k) {
                    agg_keys.push(k);
                }
            }
        }
        let stored = self.get_many(&agg_keys).await?;
        let mut aggs: Vec<(Key, Aggregate, Option<u64>)> = Vec::with_capacity(agg_keys.len());
        for (k, it) in agg_keys.into_iter().zip(stored) {
            let (a, v) = match it {
                Some(it) => {
                    let a: Aggregate = decode("analytics aggregate", it)?;
                    let v = a.version;
                    (a, Some(v))
                }
                None => (Aggregate::default(), None),
            };
            aggs.push((k, a, v));
        }
        let ttl = OffsetDateTime::now_utc().unix_timestamp() + FACT_MARKER_TTL_SECS;
        let mut items = Vec::with_capacity(fresh.len() + aggs.len());
        for f in &fresh {
            let marker = item(&keys::fact_marker(&f.workspace, &f.id), "fact", &FactMarker { ttl })?;
            items.push(put(&self.table, marker, NOT_EXISTS, None)?);
            for d in dimensions(f) {
                let k = keys::stats(&f.workspace, &hour_of(f.at), &d, shard);
                if let Some((_, a, _)) = aggs.iter_mut().find(|(key, _, _)| *key == k) {
                    a.apply(f);
                }
            }
        }
        for (k, mut a, expected) in aggs {
            a.version += 1;
            let it = item(&k, "stats", &a)?;
            items.push(match expected {
                None => put(&self.table, it, NOT_EXISTS, None)?,
                Some(v) => put(&self.table, it, "version = :v", Some(HashMap::from([(":v".to_owned(), n(v))])))?,
            });
        }
        self.transact(items, None).await?;
        Ok(fresh.len())
    }
}

#[async_trait]
impl AnalyticsStore for DynamoStore {
    async fn apply_facts(&self, facts: &[domain::analytics::Fact]) -> Result<usize, StoreError> {
        let mut applied = 0;
        // One transaction holds at most 100 items: each fact's marker and the aggregates they change.
        for chunk in fact_chunks(facts) {
            applied += self.apply_fact_chunk(chunk).await?;
        }
        Ok(applied)
    }

    async fn aggregates(
        &self,
        ws: &WorkspaceId,
        kind: &str,
        from_hour: &str,
        to_hour: &str,
    ) -> Result<Vec<(String, String, domain::analytics::Aggregate)>, StoreError> {
        let shards = futures::future::try_join_all(
            keys::stats_partitions(ws, kind).into_iter().map(|pk| self.stats_shard(pk, from_hour, to_hour)),
        )
        .await?;
        Ok(keys::merge_stats_shards(kind, shards.into_iter().flatten()))
    }
}

impl DynamoStore {
    /// One shard's aggregates of the hours `from_hour..=to_hour`, by sort key.
    async fn stats_shard(
        &self,
        pk: String,
        from_hour: &str,
        to_hour: &str,
    ) -> Result<Vec<(String, domain::analytics::Aggregate)>, StoreError> {
        let mut out = vec![];
        let mut start = None;
        loop {
            let spec = QuerySpec {
                index: None,
                key_condition: "#pk = :pk AND #sk BETWEEN :lo AND :hi",
                values: HashMap::from([
                    (":pk".to_owned(), s(&pk)),
                    (":lo".to_owned(), s(from_hour)),
                    (":hi".to_owned(), s(format!("{to_hour}#\u{10ffff}"))),
                ]),
                names: HashMap::from([
                    ("#pk".to_owned(), keys::PK.to_owned()),
                    ("#sk".to_owned(), keys::SK.to_owned()),
                ]),
                forward: true,
                limit: None,
                start,
                consistent: false,
            };
            let (items, last) = self.query_page(spec).await?;
            for it in items {
                let sk = sort_key(&it).to_owned();
                out.push((sk, decode("analytics aggregate", it)?));
            }
            match last {
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
        }
    }
}

#[cfg(test)]
mod fact_chunk_tests {
    use domain::analytics::{Fact, FactKind};

    fn fact(i: usize, agent: Option<usize>) -> Fact {
        Fact {
            id: format!("in:{i}"),
            workspace: domain::WorkspaceId::parse("acme").unwrap(),
            at: time::OffsetDateTime::UNIX_EPOCH,
            channel: Some(domain::model::Channel::Sms),
            agent: agent.map(|a| format!("agent-{a}")),
            team: None,
            kind: FactKind::MessageIn,
        }
    }

    #[test]
    fn a_batch_is_cut_into_as_few_transactions_as_fit() {
        // One channel and hour: a marker each and one aggregate.
        let same: Vec<Fact> = (0..150).map(|i| fact(i, None)).collect();
        let sizes: Vec<usize> = super::fact_chunks(&same).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [99, 51]);
        // Every fact of a different agent: a marker and an aggregate each, the channel's once.
        let agents: Vec<Fact> = (0..100).map(|i| fact(i, Some(i))).collect();
        let chunks = super::fact_chunks(&agents);
        assert_eq!(chunks.iter().map(|c| c.len()).collect::<Vec<_>>(), [49, 49, 2]);
        assert_eq!(chunks.concat(), agents, "every fact once, in order");
    }
}
