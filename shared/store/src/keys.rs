//! The single-table key design. This module is the only place a key is formatted; every other module
//! asks it for keys. Every access pattern, as key conditions, is in docs/data-model.md (the one source).
//!
//! | item                 | PK                                   | SK                 |
//! |----------------------|--------------------------------------|--------------------|
//! | channel account      | `CHANNEL#<channel>#<address>`        | `CHANNEL`          |
//! | workspace's channel account | `WS#<ws>#CHANNELS`            | `<channel>#<address>` |
//! | rate-limit window    | `WS#<ws>#RATE#<key>`                 | `<window start, unix s>` |
//! | contact              | `WS#<ws>#CONTACT#<contact>`          | `CONTACT`          |
//! | contact's current conversation | `WS#<ws>#CONTACT#<contact>` | `CURRENT_CONV`     |
//! | identity → contact   | `WS#<ws>#IDENT#<kind>#<value>`       | `IDENT`            |
//! | contact by name key  | `WS#<ws>#NAME#<last name> <initial>` | `CONTACT#<contact>` |
//! | conversation         | `WS#<ws>#CONV#<conv>`                | `CONV`             |
//! | message              | `WS#<ws>#CONV#<conv>`                | `MSG#<message>`    |
//! | provider message id  | `WS#<ws>#PMSG#<provider>#<id>`       | `PMSG`             |
//! | idempotency key      | `WS#<ws>#IDEMP#<agent>#<key>`        | `IDEMP`            |
//! | note idempotency key | `WS#<ws>#IDEMP#<agent>#<key>`        | `NOTE`             |
//! | consent of an identity | `WS#<ws>#CONSENT#<kind>#<value>`   | `CONSENT`          |
//! | agent's routing state (load) | `WS#<ws>#AGENT#<agent>`      | `STATE`            |
//! | agent's profile in the roster (16 replicas) | `WS#<ws>#AGENTS#<replica 0-15>` | `<agent>` |
//! | routing rules        | `WS#<ws>#ROUTING`                    | `RULES`            |
//! | team                 | `WS#<ws>#ROUTING`                    | `TEAM#<team>`      |
//! | waiting conversation | `WS#<ws>#ROUTEQ#<shard>`             | `<conv>`           |
//! | agent connection (everyone's list) | `WS#<ws>#CONN#<replica 0-15>` | `<connection>` |
//! | supervisor's or admin's connection | `WS#<ws>#OVERSEERS#<replica 0-15>` | `<connection>` |
//! | agent's connection   | `WS#<ws>#AGENTCONN#<agent>`          | `<connection>`     |
//! | tab viewing or following a conversation | `WS#<ws>#CONV#<conv>` | `CONV#WATCH#<connection>` |
//! | connection → workspace | `CONN#<connection>`                | `CONN`             |
//! | web chat visitor's profile | `WS#<ws>#VISITOR#<visitor>`    | `PROFILE`          |
//! | web chat visitor's socket  | `WS#<ws>#VISITOR#<visitor>`    | `CONN#<connection>` |
//! | visitor socket by id | `VCONN#<connection>`                 | `VCONN`            |
//! | conversation audit entry | `WS#<ws>#CONV#<conv>`            | `AUDIT#<ulid>`     |
//! | workspace audit entry | `WS#<ws>#AUDIT`                     | `<ulid>`           |
//! | internal note        | `WS#<ws>#CONV#<conv>`                | `NOTE#<ulid>`      |
//! | contact's conversation | `WS#<ws>#CONTACT#<contact>`        | `CONV#<conv>`      |
//! | canned response      | `WS#<ws>#CANNED`                     | `<id>`             |
//! | canned response uses | `WS#<ws>#CANNEDUSE#<agent>`          | `<id>`             |
//! | WhatsApp template    | `WS#<ws>#WATEMPLATE`                 | `<name>#<language>` |
//! | template by Meta's id | `WATEMPLATEID#<meta id>`            | `WATEMPLATEID`     |
//! | webhook endpoint     | `WS#<ws>#HOOKS`                      | `<endpoint id>`    |
//! | webhook delivery     | `WS#<ws>#HOOK#<endpoint id>`         | `<msg id>` (ULID: newest last) |
//! | workspace with NPS on | `NPS#WORKSPACES`                    | `<ws>`             |
//! | analytics aggregate  | `WS#<ws>#STATS#<kind>#<shard>`       | `<yyyy-mm-ddThh>#<value>` |
//! | analytics fact marker | `WS#<ws>#FACT#<fact id>`            | `FACT` (TTL 3 days) |
//! | erasure receipt      | `WS#<ws>#ERASED`                     | `<contact>`        |
//! | workspace with retention | `RETENTION#WORKSPACES`           | `<ws>`             |
//!
//! | cost counter         | `WS#<ws>#COST#<yyyy-mm>#<shard>`     | see [`cost_counter`] |
//! | ledger entry         | `WS#<ws>#LEDGER#<yyyy-mm-dd>#<shard>` | `<message>#<kind>` |
//! | rate card version    | `WS#<ws>#RATECARD`                   | `V#<version, 10 digits>` |
//! | budget (16 replicas) | `WS#<ws>#BUDGET#<replica 0-15>`      | `<scope>`          |
//! | budget alert marker  | `WS#<ws>#ALERT#<yyyy-mm>`            | `<scope>#<percent>` |
//!
//! Conversations carry two index keys, both sorted by `<last activity ms, 13 digits>#<conv>`:
//! `GSI1PK = WS#<ws>#STATUS#<status>#<shard>` (index `ByStatus`) and
//! `GSI2PK = WS#<ws>#ASSIGNEE#<agent>#STATUS#<status>` or `WS#<ws>#ASSIGNEE#-#STATUS#<status>#<shard>`
//! (index `ByAssignee`); a conversation with a team also carries
//! `GSI3PK = WS#<ws>#TEAM#<team>#STATUS#<status>#<shard>` (sparse index `ByTeam`). The shard is
//! [`inbox_shard`]: the workspace-wide views are read by scatter-gather (see [`INBOX_SHARDS`]).

use base64::Engine;
use domain::channels::webchat::VisitorId;
use domain::finance::ledger::{Counter, Grouping, Month};
use domain::finance::{BudgetScope, Dimension, EntryKind};
use domain::model::{Channel, ConversationStatus, Identity};
use domain::ports::{Cursor, StoreError};
use domain::{AgentId, ConnectionId, ContactId, ConversationId, IdempotencyKey, MessageId, TeamId, WorkspaceId};
use time::OffsetDateTime;

pub const PK: &str = "PK";
pub const SK: &str = "SK";
pub const GSI1PK: &str = "GSI1PK";
pub const GSI1SK: &str = "GSI1SK";
pub const GSI2PK: &str = "GSI2PK";
pub const GSI2SK: &str = "GSI2SK";
pub const ENTITY: &str = "entity";
pub const TTL: &str = "ttl";
pub const INDEX_BY_STATUS: &str = "ByStatus";
pub const INDEX_BY_ASSIGNEE: &str = "ByAssignee";
pub const GSI3PK: &str = "GSI3PK";
pub const GSI3SK: &str = "GSI3SK";
pub const INDEX_BY_TEAM: &str = "ByTeam";
pub const NOTE_PREFIX: &str = "NOTE#";
pub const CONTACT_CONVERSATION_PREFIX: &str = "CONV#";
pub const MESSAGE_PREFIX: &str = "MSG#";
pub const CONTACT_NAME_PREFIX: &str = "CONTACT#";

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

fn ws(ws: &WorkspaceId) -> String {
    format!("WS#{ws}")
}

pub fn channel_account(channel: Channel, address: &str) -> Key {
    Key { pk: format!("CHANNEL#{channel}#{address}"), sk: "CHANNEL".into() }
}

/// The workspace's settings, alone in their partition (read by the routes that use them, cached).
pub fn workspace_settings(w: &WorkspaceId) -> Key {
    Key { pk: format!("{}#SETTINGS", ws(w)), sk: "SETTINGS".into() }
}

pub fn workspace_channels(w: &WorkspaceId) -> String {
    format!("{}#CHANNELS", ws(w))
}

pub fn workspace_channel(w: &WorkspaceId, channel: Channel, address: &str) -> Key {
    Key { pk: workspace_channels(w), sk: format!("{channel}#{address}") }
}

/// The start of the fixed window of length `window` that holds `at` (unix seconds).
pub fn window_start(at: OffsetDateTime, window: time::Duration) -> i64 {
    let secs = at.unix_timestamp();
    secs - secs.rem_euclid(window.whole_seconds().max(1))
}

pub fn rate_window(w: &WorkspaceId, key: &str, at: OffsetDateTime, window: time::Duration) -> Key {
    Key { pk: format!("{}#RATE#{key}", ws(w)), sk: window_start(at, window).to_string() }
}

pub fn contact(w: &WorkspaceId, id: ContactId) -> Key {
    Key { pk: format!("{}#CONTACT#{id}", ws(w)), sk: "CONTACT".into() }
}

pub fn current_conversation(w: &WorkspaceId, contact: ContactId) -> Key {
    Key { pk: format!("{}#CONTACT#{contact}", ws(w)), sk: "CURRENT_CONV".into() }
}

/// An identity's item. A claimed (unverified) identity is another item than the proven one of the
/// same value: it can never find, or take over, the proven one's contact.
pub fn identity(w: &WorkspaceId, id: &Identity) -> Key {
    let claimed = if id.unverified { "~claimed" } else { "" };
    Key { pk: format!("{}#IDENT#{}{claimed}#{}", ws(w), id.kind.as_str(), id.value), sk: "IDENT".into() }
}

/// Contacts by their name's blocking key (`domain::contacts::name_key`): probable-match candidates.
pub fn contact_name_partition(w: &WorkspaceId, name_key: &str) -> String {
    format!("{}#NAME#{name_key}", ws(w))
}

pub fn contact_name(w: &WorkspaceId, name_key: &str, id: ContactId) -> Key {
    Key { pk: contact_name_partition(w, name_key), sk: format!("{CONTACT_NAME_PREFIX}{id}") }
}

/// A replica of the workspace's roster: every processor container reads it every few seconds, so
/// it is written whole to each of [`READ_REPLICAS`] (a profile or presence change: rare) and read
/// from one ([`any_replica`]).
pub fn roster_partition(w: &WorkspaceId, replica: u32) -> String {
    format!("{}#AGENTS#{replica}", ws(w))
}

/// An agent's routing state: profile and load, the item an assignment's take is conditional on.
/// Each agent in a partition of their own, so a workspace's assignments do not queue on one key.
pub fn agent(w: &WorkspaceId, id: &AgentId) -> Key {
    Key { pk: format!("{}{id}", agent_prefix(w)), sk: "STATE".into() }
}

/// What every agent's state partition of a workspace starts with (the in-memory store lists by it).
pub fn agent_prefix(w: &WorkspaceId) -> String {
    format!("{}#AGENT#", ws(w))
}

/// An agent's profile in a replica of the workspace's roster: the copy routing reads to find who
/// could take work, without the load (written only when the profile or presence changes).
pub fn roster_entry(w: &WorkspaceId, id: &AgentId, replica: u32) -> Key {
    Key { pk: roster_partition(w, replica), sk: id.to_string() }
}

pub fn routing_partition(w: &WorkspaceId) -> String {
    format!("{}#ROUTING", ws(w))
}

pub fn routing_rules(w: &WorkspaceId) -> Key {
    Key { pk: routing_partition(w), sk: RULES_SORT.into() }
}

/// The workspace's service-level policy, beside the routing rules and teams it counts hours from.
pub fn sla_policy(w: &WorkspaceId) -> Key {
    Key { pk: routing_partition(w), sk: SLA_SORT.into() }
}

pub const SLA_SORT: &str = "SLA";
pub const PRIVACY_SORT: &str = "PRIVACY";

/// The workspace's redaction policy, read with the SLA policy in one Query of the partition.
pub fn privacy_policy(w: &WorkspaceId) -> Key {
    Key { pk: routing_partition(w), sk: PRIVACY_SORT.into() }
}
pub const RULES_SORT: &str = "RULES";

pub const TEAM_PREFIX: &str = "TEAM#";

pub fn team(w: &WorkspaceId, id: &TeamId) -> Key {
    Key { pk: routing_partition(w), sk: format!("{TEAM_PREFIX}{id}") }
}

/// The waiting queue takes a write when work waits and one when it is taken: in a storm, every
/// new conversation of a workspace. It is spread over the inbox shards (`WS#<ws>#ROUTEQ#<shard>`,
/// the conversation's [`inbox_shard`]), read whole and ordered in memory as before.
pub fn waiting_partitions(w: &WorkspaceId) -> Vec<String> {
    shards(&format!("{}#ROUTEQ", ws(w)))
}

pub fn waiting(w: &WorkspaceId, conv: ConversationId) -> Key {
    Key { pk: format!("{}#ROUTEQ#{}", ws(w), inbox_shard(conv)), sk: conv.to_string() }
}

/// Items read by nearly every message and written rarely are written whole to this many
/// partitions and read from one chosen at random ([`any_replica`]), so their reads spread: the
/// workspace's and the overseers' connection lists, and the budgets.
///
/// An agent's connection is kept where each audience finds it without reading everyone's
/// (`domain::realtime::audience`): in every replica of the workspace's list (presence, unassigned
/// work), in its agent's partition (what the agent is assigned or mentioned in), in every replica
/// of the overseers' list when a supervisor or admin holds it, and beside each conversation its tab
/// views or follows (writes are a tab opening, closing or changing what it shows: rare next to
/// messages).
pub const READ_REPLICAS: u32 = 16;

/// A replica of the workspace's connections: `WS#<ws>#CONN#<replica>`.
pub fn connections_partition(w: &WorkspaceId, replica: u32) -> String {
    format!("{}#CONN#{replica}", ws(w))
}

/// A replica of the supervisors' and admins' connections: `WS#<ws>#OVERSEERS#<replica>`.
pub fn overseers_partition(w: &WorkspaceId, replica: u32) -> String {
    format!("{}#OVERSEERS#{replica}", ws(w))
}

/// An agent's connections: `WS#<ws>#AGENTCONN#<agent>`.
pub fn agent_connections_partition(w: &WorkspaceId, agent: &AgentId) -> String {
    format!("{}#AGENTCONN#{agent}", ws(w))
}

/// The replica a read uses: any, spread at random.
pub fn any_replica() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    (h.finish() % u64::from(READ_REPLICAS)) as u32
}

/// A connection's item in a partition of connections (each placement's sort key is its id).
pub fn connection_in(pk: String, id: &ConnectionId) -> Key {
    Key { pk, sk: id.to_string() }
}

/// A tab viewing or following a conversation, beside it: `WS#<ws>#CONV#<conv>` /
/// `CONV#WATCH#<connection>` (sorts right after the conversation, before its messages).
pub const WATCHER_PREFIX: &str = "CONV#WATCH#";

pub fn watcher(w: &WorkspaceId, conv: ConversationId, id: &ConnectionId) -> Key {
    Key { pk: conversation(w, conv).pk, sk: format!("{WATCHER_PREFIX}{id}") }
}

/// API Gateway names a connection without its workspace: this item leads from one to the other.
pub fn connection_pointer(id: &ConnectionId) -> Key {
    Key { pk: format!("CONN#{id}"), sk: "CONN".into() }
}

pub fn visitor_partition(w: &WorkspaceId, v: &VisitorId) -> String {
    format!("{}#VISITOR#{v}", ws(w))
}

pub fn visitor_profile(w: &WorkspaceId, v: &VisitorId) -> Key {
    Key { pk: visitor_partition(w, v), sk: "PROFILE".into() }
}

pub const VISITOR_CONNECTION_PREFIX: &str = "CONN#";

pub fn visitor_connection(w: &WorkspaceId, v: &VisitorId, id: &ConnectionId) -> Key {
    Key { pk: visitor_partition(w, v), sk: format!("{VISITOR_CONNECTION_PREFIX}{id}") }
}

/// API Gateway names a visitor's socket by id only: this item holds the whole connection.
pub fn visitor_connection_pointer(id: &ConnectionId) -> Key {
    Key { pk: format!("VCONN#{id}"), sk: "VCONN".into() }
}

pub const AUDIT_PREFIX: &str = "AUDIT#";

/// Where an audit entry lives, and the sort-key prefix its trail is read with.
pub fn audit_partition(w: &WorkspaceId, conv: Option<ConversationId>) -> (String, &'static str) {
    match conv {
        Some(c) => (conversation(w, c).pk, AUDIT_PREFIX),
        None => (format!("{}#AUDIT", ws(w)), ""),
    }
}

pub fn audit(w: &WorkspaceId, conv: Option<ConversationId>, id: &str) -> Key {
    let (pk, prefix) = audit_partition(w, conv);
    Key { pk, sk: format!("{prefix}{id}") }
}

pub fn consent(w: &WorkspaceId, id: &Identity) -> Key {
    Key { pk: format!("{}#CONSENT#{}#{}", ws(w), id.kind.as_str(), id.value), sk: "CONSENT".into() }
}

pub fn conversation(w: &WorkspaceId, id: ConversationId) -> Key {
    Key { pk: format!("{}#CONV#{id}", ws(w)), sk: "CONV".into() }
}

pub fn message(w: &WorkspaceId, conv: ConversationId, id: MessageId) -> Key {
    Key { pk: format!("{}#CONV#{conv}", ws(w)), sk: format!("{MESSAGE_PREFIX}{id}") }
}

pub fn provider_message(w: &WorkspaceId, provider: &str, id: &str) -> Key {
    Key { pk: format!("{}#PMSG#{provider}#{id}", ws(w)), sk: "PMSG".into() }
}

pub fn idempotency(w: &WorkspaceId, agent: &AgentId, key: &IdempotencyKey) -> Key {
    Key { pk: format!("{}#IDEMP#{agent}#{}", ws(w), key.as_str()), sk: "IDEMP".into() }
}

/// The note an agent's idempotency key made (beside the reply record a key can also hold).
pub fn note_idempotency(w: &WorkspaceId, agent: &AgentId, key: &IdempotencyKey) -> Key {
    Key { pk: idempotency(w, agent, key).pk, sk: "NOTE".into() }
}

/// Every message of a workspace adds to its month's counters and its day's ledger: partitions hot
/// by nature. Both are written across this many partitions (`<partition>#<shard>`) and read by
/// scatter-gather, merged in key order. Sized from the partition-heat simulation
/// (docs/benchmarks.md): at 100 messages a second per workspace the hottest cost shard stays under
/// half of a partition's 1,000 WCU.
pub const COST_SHARDS: u32 = 8;

/// A day's ledger: one entry per priced event (~4.6 WCU per inbound message with its replies and
/// deliveries), so one workspace's 10,000 msg/s need ~92 partitions at half their limit. Read only
/// by the ledger's listing (exports, reconciliation): one small Query per shard per page.
pub const LEDGER_SHARDS: u32 = 128;

/// The ledger's shard count before it was raised to [`LEDGER_SHARDS`]; `migrate-table` moves
/// entries from where it put them.
pub const LEDGER_SHARDS_BEFORE: u32 = 4;

/// A stable shard of a string (FNV-1a): the same entity always lands in the same shard.
pub fn shard_of_str(key: &str, shards: u32) -> u32 {
    let hash = domain::ids::fnv1a(0, key.as_bytes());
    (hash % u64::from(shards.max(1))) as u32
}

/// A message's shard: the random half of its ULID spreads messages evenly.
pub fn shard_of_message(message: MessageId, shards: u32) -> u32 {
    (u128::from(message.ulid()) % u128::from(shards.max(1))) as u32
}

/// One shard of a workspace's month of cost counters.
pub fn cost_partition(w: &WorkspaceId, month: Month, shard: u32) -> String {
    format!("{}#COST#{month}#{shard}", ws(w))
}

/// Every shard of a month's cost counters, for a scatter-gather read.
pub fn cost_partitions(w: &WorkspaceId, month: Month) -> Vec<String> {
    (0..COST_SHARDS).map(|shard| cost_partition(w, month, shard)).collect()
}

/// The prefix every counter of a grouping starts with.
pub fn counter_prefix(g: Grouping) -> &'static str {
    match g {
        Grouping::Total => "TOTAL#",
        Grouping::Channel => "CHANNEL#",
        Grouping::Team => "TEAM#",
        Grouping::Agent => "AGENT#",
        Grouping::Conversation => "CONV#",
        Grouping::Contact => "CONTACT#",
    }
}

/// The counters a budget scope reads (every shard, both directions).
pub fn budget_scope_prefix(scope: BudgetScope) -> String {
    match scope {
        BudgetScope::Workspace => counter_prefix(Grouping::Total).to_owned(),
        BudgetScope::Channel(c) => format!("{}{c}#", counter_prefix(Grouping::Channel)),
    }
}

/// A counter's key. Workspace-wide groupings are one item per shard, the shard picked from the
/// message id and named in both keys: `TOTAL#<shard>`, `CHANNEL#<channel>#<direction>#<shard>`,
/// `TEAM#<team or ->#<shard>`, `AGENT#<agent or ->#<shard>`. A conversation's or contact's counter
/// is one item, `CONV#<conversation>` or `CONTACT#<contact>`, in the shard its id hashes to.
pub fn cost_counter(w: &WorkspaceId, month: Month, d: &Dimension, message: MessageId) -> Key {
    let shard = shard_of_message(message, COST_SHARDS);
    let p = counter_prefix(d.grouping());
    let (sk, shard) = match d {
        Dimension::Total => (format!("{p}{shard}"), shard),
        Dimension::Channel { channel, direction } => {
            let dir = serde_json::to_value(direction).ok().and_then(|v| v.as_str().map(str::to_owned));
            (format!("{p}{channel}#{}#{shard}", dir.unwrap_or_default()), shard)
        }
        Dimension::Team { team } => (format!("{p}{}#{shard}", team.as_deref().unwrap_or("-")), shard),
        Dimension::Agent { agent } => {
            (format!("{p}{}#{shard}", agent.as_ref().map(AgentId::as_str).unwrap_or("-")), shard)
        }
        Dimension::Conversation { conversation } => {
            let id = conversation.to_string();
            (format!("{p}{id}"), shard_of_str(&id, COST_SHARDS))
        }
        Dimension::Contact { contact } => {
            let id = contact.to_string();
            (format!("{p}{id}"), shard_of_str(&id, COST_SHARDS))
        }
    };
    Key { pk: cost_partition(w, month, shard), sk }
}

/// Counter sort keys without their shard: the key under which shards merge.
pub fn counter_group_key(sk: &str) -> &str {
    if sk.starts_with("CONV#") || sk.starts_with("CONTACT#") {
        return sk;
    }
    sk.rsplit_once('#').map_or(sk, |(head, _)| head)
}

/// One shard of a workspace's day of ledger entries.
pub fn ledger_partition(w: &WorkspaceId, day: time::Date, shard: u32) -> String {
    format!("{}#LEDGER#{day}#{shard}", ws(w))
}

/// Every shard of a day's ledger, for a scatter-gather read.
pub fn ledger_partitions(w: &WorkspaceId, day: time::Date) -> Vec<String> {
    (0..LEDGER_SHARDS).map(|shard| ledger_partition(w, day, shard)).collect()
}

/// The shards that may hold one message's ledger rows of `day`: its shard, and the shard of the
/// design before (where rows stay until `migrate-table` moves them) when that differs.
pub fn ledger_message_partitions(w: &WorkspaceId, day: time::Date, message: MessageId) -> Vec<String> {
    let (now, before) = (shard_of_message(message, LEDGER_SHARDS), shard_of_message(message, LEDGER_SHARDS_BEFORE));
    let mut out = vec![ledger_partition(w, day, now)];
    if before != now {
        out.push(ledger_partition(w, day, before));
    }
    out
}

/// The sort-key prefix of every ledger row of one message (one per entry kind).
pub fn ledger_message_prefix(message: MessageId) -> String {
    format!("{message}#")
}

/// Keys of the design before partitions were sharded, and where `migrate-table` moves each item.
pub mod legacy {
    use super::*;

    /// `WS#<ws>#<kind>#<period>`, unsharded: the period of it, if `pk` is one.
    fn unsharded<'a>(pk: &'a str, kind: &str) -> Option<&'a str> {
        let parts: Vec<&str> = pk.split('#').collect();
        match parts.as_slice() {
            ["WS", _, k, period] if *k == kind => Some(period),
            _ => None,
        }
    }

    /// A counter of a month's single cost partition (`WS#<ws>#COST#<yyyy-mm>`): its sharded key.
    /// The workspace-wide groupings' sort keys already end in their shard (8 then and now).
    pub fn cost_counter(pk: &str, sk: &str) -> Option<Key> {
        unsharded(pk, "COST")?;
        let shard = if sk.starts_with("CONV#") || sk.starts_with("CONTACT#") {
            shard_of_str(sk.split_once('#')?.1, COST_SHARDS)
        } else {
            sk.rsplit_once('#')?.1.parse::<u32>().ok()? % COST_SHARDS
        };
        Some(Key { pk: format!("{pk}#{shard}"), sk: sk.to_owned() })
    }

    /// The partition the design before sharding wrote where a sharded one is written now (`None`:
    /// `pk` is not a shard). The partition-heat simulation folds shards with it for its "before".
    pub fn partition(pk: &str) -> Option<String> {
        let (head, shard) = pk.rsplit_once('#')?;
        shard.parse::<u32>().ok()?;
        let parts: Vec<&str> = head.split('#').collect();
        let sharded = matches!(
            parts.as_slice(),
            ["WS", _, "COST", _]
                | ["WS", _, "LEDGER", _]
                | ["WS", _, "STATS", _]
                | ["WS", _, "ROUTEQ"]
                | ["WS", _, "CONN"]
                | ["WS", _, "BUDGET"]
                | ["WS", _, "AGENTS"]
                | ["WS", _, "STATUS", _]
                | ["WS", _, "ASSIGNEE", "-", "STATUS", _]
                | ["WS", _, "TEAM", _, "STATUS", _]
        );
        sharded.then(|| head.to_owned())
    }

    /// An hourly aggregate of a kind's single partition (`WS#<ws>#STATS#<kind>`): its key in shard 0,
    /// where it merges with what the new code has added there.
    pub fn stats(pk: &str, sk: &str) -> Option<Key> {
        unsharded(pk, "STATS")?;
        Some(Key { pk: format!("{pk}#0"), sk: sk.to_owned() })
    }

    /// `WS#<ws>#<kind>`, one partition of a workspace: the workspace of it, if `pk` is one.
    fn single<'a>(pk: &'a str, kind: &str) -> Option<&'a str> {
        match pk.split('#').collect::<Vec<_>>().as_slice() {
            ["WS", ws, k] if *k == kind => Some(ws),
            _ => None,
        }
    }

    /// The workspace whose single budget partition (`WS#<ws>#BUDGET`) `pk` is.
    pub fn budget_list(pk: &str) -> Option<WorkspaceId> {
        WorkspaceId::parse(single(pk, "BUDGET")?).ok()
    }

    /// The workspace whose single roster partition (`WS#<ws>#AGENTS`) `pk` is: before the roster
    /// was split, its entries were the agents' whole routing state, load included.
    pub fn roster(pk: &str) -> Option<WorkspaceId> {
        WorkspaceId::parse(single(pk, "AGENTS")?).ok()
    }

    /// The single roster partition of a workspace, where legacy entries are.
    pub fn roster_partition(w: &WorkspaceId) -> String {
        format!("{}#AGENTS", ws(w))
    }

    /// An agent's legacy entry: their whole routing state, before the roster was split.
    pub fn roster_entry(w: &WorkspaceId, id: &AgentId) -> Key {
        Key { pk: roster_partition(w), sk: id.to_string() }
    }

    /// Whether `pk` is a workspace's single list of connections (`WS#<ws>#CONN`).
    pub fn connection_list(pk: &str) -> bool {
        single(pk, "CONN").is_some()
    }

    /// A conversation waiting in the single queue partition (`WS#<ws>#ROUTEQ`): its sharded key.
    pub fn waiting(pk: &str, sk: &str) -> Option<Key> {
        single(pk, "ROUTEQ")?;
        let conv = ConversationId::parse(sk).ok()?;
        Some(Key { pk: format!("{pk}#{}", inbox_shard(conv)), sk: sk.to_owned() })
    }

    /// An entry of a day's single ledger partition (`WS#<ws>#LEDGER#<yyyy-mm-dd>`), or of a shard
    /// that is not its shard now (the [`LEDGER_SHARDS_BEFORE`] design): its key now.
    pub fn ledger_entry(pk: &str, sk: &str) -> Option<Key> {
        let message = MessageId::parse(sk.split_once('#')?.0).ok()?;
        let day = match pk.split('#').collect::<Vec<_>>().as_slice() {
            ["WS", _, "LEDGER", _] => pk,
            ["WS", _, "LEDGER", _, shard] if shard.parse() != Ok(shard_of_message(message, LEDGER_SHARDS)) => {
                pk.rsplit_once('#')?.0
            }
            _ => return None,
        };
        Some(Key { pk: format!("{day}#{}", shard_of_message(message, LEDGER_SHARDS)), sk: sk.to_owned() })
    }
}

pub const RETENTION_REGISTRY: &str = "RETENTION#WORKSPACES";

/// A workspace's listing for the daily retention run.
pub fn retention_registered(w: &WorkspaceId) -> Key {
    Key { pk: RETENTION_REGISTRY.to_owned(), sk: w.to_string() }
}

/// The receipt an erasure leaves (`domain::erasure::Receipt`).
pub fn erasure_receipt(w: &WorkspaceId, contact: ContactId) -> Key {
    Key { pk: format!("{}#ERASED", ws(w)), sk: contact.to_string() }
}

pub fn ledger_entry(w: &WorkspaceId, day: time::Date, message: MessageId, kind: EntryKind) -> Key {
    Key {
        pk: ledger_partition(w, day, shard_of_message(message, LEDGER_SHARDS)),
        sk: format!("{message}#{}", kind.as_str()),
    }
}

pub fn rate_card_partition(w: &WorkspaceId) -> String {
    format!("{}#RATECARD", ws(w))
}

pub fn rate_card(w: &WorkspaceId, version: u32) -> Key {
    Key { pk: rate_card_partition(w), sk: format!("V#{version:010}") }
}

/// A replica of the workspace's budgets: `WS#<ws>#BUDGET#<replica>`. A reply's hard stop reads
/// them fresh (a budget raised lets replies through at once), so every reply reads them; finance
/// writes them a few times a month. Each budget is written to all [`READ_REPLICAS`]
/// replicas, and a read takes one at random ([`any_replica`]).
pub fn budget_partition(w: &WorkspaceId, replica: u32) -> String {
    format!("{}#BUDGET#{replica}", ws(w))
}

pub fn budget(w: &WorkspaceId, scope: BudgetScope, replica: u32) -> Key {
    Key { pk: budget_partition(w, replica), sk: scope.as_str().to_owned() }
}

pub fn alert_partition(w: &WorkspaceId, month: Month) -> String {
    format!("{}#ALERT#{month}", ws(w))
}

pub fn budget_alert(w: &WorkspaceId, month: Month, scope: BudgetScope, percent: u8) -> Key {
    Key { pk: alert_partition(w, month), sk: format!("{}#{percent}", scope.as_str()) }
}

/// The scope and threshold an alert marker's sort key names.
pub fn parse_budget_alert(sk: &str) -> Option<(BudgetScope, u8)> {
    let (scope, pct) = sk.rsplit_once('#')?;
    Some((BudgetScope::parse(scope).ok()?, pct.parse().ok()?))
}

/// Where a plain sort-key cursor (counters, ledger entries) resumes: `BadCursor` unless it decodes
/// to a sort key within `prefix`.
pub fn sort_cursor_after(cursor: Option<&Cursor>, prefix: &str) -> Result<Option<String>, StoreError> {
    let Some(c) = cursor else { return Ok(None) };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&c.0).map_err(|_| StoreError::BadCursor)?;
    match String::from_utf8(raw) {
        Ok(sk) if sk.starts_with(prefix) => Ok(Some(sk)),
        _ => Err(StoreError::BadCursor),
    }
}

/// Counter shards `(sort key, counter)` in key order, merged into one counter per group key (the
/// sort key without its shard), still in order.
pub fn merge_shards(shards: impl IntoIterator<Item = (String, Counter)>) -> Vec<(String, Counter)> {
    let mut out: Vec<(String, Counter)> = Vec::new();
    for (sk, c) in shards {
        let group = counter_group_key(&sk).to_owned();
        match out.iter_mut().find(|(g, _)| *g == group) {
            Some((_, merged)) => merged.totals += c.totals,
            None => out.push((group, c)),
        }
    }
    out
}

/// The workspace-wide inbox views (by status, the unassigned, a team's) take a write from every
/// message of every conversation in them: each is spread over this many index partitions, a
/// conversation always in the one its id hashes to, and listed by scatter-gather merged on the
/// activity sort key. An agent's own view is bounded by the agent's capacity and stays whole.
pub const INBOX_SHARDS: u32 = 4;

/// The inbox shard of a conversation.
pub fn inbox_shard(conv: ConversationId) -> u32 {
    shard_of_str(&conv.to_string(), INBOX_SHARDS)
}

fn shards(partition: &str) -> Vec<String> {
    (0..INBOX_SHARDS).map(|shard| format!("{partition}#{shard}")).collect()
}

/// The `ByStatus` partition of one conversation: `WS#<ws>#STATUS#<status>#<shard>`.
pub fn status_partition(w: &WorkspaceId, status: ConversationStatus, conv: ConversationId) -> String {
    format!("{}#STATUS#{}#{}", ws(w), status.as_str(), inbox_shard(conv))
}

/// Every shard of a status view.
pub fn status_partitions(w: &WorkspaceId, status: ConversationStatus) -> Vec<String> {
    shards(&format!("{}#STATUS#{}", ws(w), status.as_str()))
}

/// The `ByAssignee` partition of one conversation: an agent's `WS#<ws>#ASSIGNEE#<agent>#STATUS#<status>`,
/// or the unassigned view's shard `WS#<ws>#ASSIGNEE#-#STATUS#<status>#<shard>`.
pub fn assignee_partition(
    w: &WorkspaceId,
    assignee: Option<&AgentId>,
    status: ConversationStatus,
    conv: ConversationId,
) -> String {
    match assignee {
        Some(a) => format!("{}#ASSIGNEE#{a}#STATUS#{}", ws(w), status.as_str()),
        None => format!("{}#ASSIGNEE#-#STATUS#{}#{}", ws(w), status.as_str(), inbox_shard(conv)),
    }
}

/// The partitions of an assignee view: an agent's one, or every shard of the unassigned view.
pub fn assignee_partitions(w: &WorkspaceId, assignee: Option<&AgentId>, status: ConversationStatus) -> Vec<String> {
    match assignee {
        Some(a) => vec![format!("{}#ASSIGNEE#{a}#STATUS#{}", ws(w), status.as_str())],
        None => shards(&format!("{}#ASSIGNEE#-#STATUS#{}", ws(w), status.as_str())),
    }
}

/// The `ByTeam` partition of one conversation: `WS#<ws>#TEAM#<team>#STATUS#<status>#<shard>`.
pub fn team_partition(w: &WorkspaceId, team: &TeamId, status: ConversationStatus, conv: ConversationId) -> String {
    format!("{}#TEAM#{team}#STATUS#{}#{}", ws(w), status.as_str(), inbox_shard(conv))
}

/// Every shard of a team's view.
pub fn team_partitions(w: &WorkspaceId, team: &TeamId, status: ConversationStatus) -> Vec<String> {
    shards(&format!("{}#TEAM#{team}#STATUS#{}", ws(w), status.as_str()))
}

pub fn note(w: &WorkspaceId, conv: ConversationId, id: &str) -> Key {
    Key { pk: conversation(w, conv).pk, sk: format!("{NOTE_PREFIX}{id}") }
}

pub fn contact_conversation(w: &WorkspaceId, contact_id: ContactId, conv: ConversationId) -> Key {
    Key { pk: contact(w, contact_id).pk, sk: format!("{CONTACT_CONVERSATION_PREFIX}{conv}") }
}

pub fn canned_partition(w: &WorkspaceId) -> String {
    format!("{}#CANNED", ws(w))
}

pub fn canned_response(w: &WorkspaceId, id: &str) -> Key {
    Key { pk: canned_partition(w), sk: id.to_owned() }
}

pub fn canned_use_partition(w: &WorkspaceId, agent: &AgentId) -> String {
    format!("{}#CANNEDUSE#{agent}", ws(w))
}

pub fn canned_use(w: &WorkspaceId, agent: &AgentId, id: &str) -> Key {
    Key { pk: canned_use_partition(w, agent), sk: id.to_owned() }
}

pub fn whatsapp_template_partition(w: &WorkspaceId) -> String {
    format!("{}#WATEMPLATE", ws(w))
}

pub fn whatsapp_template(w: &WorkspaceId, name: &str, language: &str) -> Key {
    Key { pk: whatsapp_template_partition(w), sk: format!("{name}#{language}") }
}

/// Which workspace's template Meta's id names (Meta's template reviews carry only its id, name and
/// language, under the business account).
pub fn whatsapp_template_by_meta_id(meta_id: &str) -> Key {
    Key { pk: format!("WATEMPLATEID#{meta_id}"), sk: "WATEMPLATEID".into() }
}

pub fn hook_partition(w: &WorkspaceId) -> String {
    format!("{}#HOOKS", ws(w))
}

pub fn hook_endpoint(w: &WorkspaceId, id: &str) -> Key {
    Key { pk: hook_partition(w), sk: id.to_owned() }
}

pub fn hook_delivery_partition(w: &WorkspaceId, endpoint: &str) -> String {
    format!("{}#HOOK#{endpoint}", ws(w))
}

pub fn hook_delivery(w: &WorkspaceId, endpoint: &str, msg_id: &str) -> Key {
    Key { pk: hook_delivery_partition(w, endpoint), sk: msg_id.to_owned() }
}

/// Hourly aggregates take a write from every fact of a workspace: each kind's partition is spread
/// over this many shards, each holding partial aggregates merged on read.
pub const STATS_SHARDS: u32 = 8;

/// Agents' aggregates: every fact with an agent changes its agent's aggregate, and a batch's facts
/// are mostly of different agents, so batching does not fold them: they need more partitions, and
/// each agent's aggregates stay in the shard their id hashes to (one agent's pace is small; a
/// batch's shard would put every agent of a batch in one partition at once).
pub const AGENT_STATS_SHARDS: u32 = 64;

/// How many shards `kind`'s aggregates are spread over. Raising either count needs no migration:
/// a read merges every shard, and what the lower count wrote is in shards the higher one reads.
pub fn stats_shards(kind: &str) -> u32 {
    if kind == "agent" {
        AGENT_STATS_SHARDS
    } else {
        STATS_SHARDS
    }
}

/// One shard of one dimension kind's hourly aggregates (`channel`, `agent`, `team`).
pub fn stats_partition(w: &WorkspaceId, kind: &str, shard: u32) -> String {
    format!("{}#STATS#{kind}#{shard}", ws(w))
}

/// Every shard of one dimension kind's aggregates.
pub fn stats_partitions(w: &WorkspaceId, kind: &str) -> Vec<String> {
    (0..stats_shards(kind)).map(|shard| stats_partition(w, kind, shard)).collect()
}

/// The shard a batch of facts adds to, named by one of its fact ids (any shard is right: facts
/// are sums, counted once by their markers).
pub fn stats_shard(fact_id: &str) -> u32 {
    shard_of_str(fact_id, u32::MAX)
}

/// Partial aggregates `(sort key, aggregate)` of a kind's shards merged per hour and value, in
/// sort-key order, as `(hour, "kind:value", aggregate)`.
pub fn merge_stats_shards(
    kind: &str,
    shards: impl IntoIterator<Item = (String, domain::analytics::Aggregate)>,
) -> Vec<(String, String, domain::analytics::Aggregate)> {
    let mut merged: std::collections::BTreeMap<String, domain::analytics::Aggregate> = Default::default();
    for (sk, a) in shards {
        merged.entry(sk).or_default().merge(&a);
    }
    merged
        .into_iter()
        .filter_map(|(sk, a)| {
            let (hour, value) = sk.split_once('#')?;
            Some((hour.to_owned(), format!("{kind}:{value}"), a))
        })
        .collect()
}

/// One hour of one dimension (`channel:sms`) in one shard: the kind names the partition, the value
/// ends the key.
/// `shard` is any [`stats_shard`]: each kind takes it modulo its own count; an agent's aggregates
/// are in their own id's shard instead.
pub fn stats(w: &WorkspaceId, hour: &str, dimension: &str, shard: u32) -> Key {
    let (kind, value) = dimension.split_once(':').unwrap_or((dimension, ""));
    let shard = match kind {
        "agent" => shard_of_str(value, AGENT_STATS_SHARDS),
        _ => shard % stats_shards(kind),
    };
    Key { pk: stats_partition(w, kind, shard), sk: format!("{hour}#{value}") }
}

pub const NPS_REGISTRY: &str = "NPS#WORKSPACES";

/// The listing of a workspace whose rules enable NPS (the daily run reads the partition).
pub fn nps_registered(w: &WorkspaceId) -> Key {
    Key { pk: NPS_REGISTRY.to_owned(), sk: w.to_string() }
}

pub fn fact_marker(w: &WorkspaceId, id: &str) -> Key {
    Key { pk: format!("{}#FACT#{id}", ws(w)), sk: "FACT".to_owned() }
}

/// Sort key of a conversation in every view: activity time, then id for a stable tie-break.
pub fn activity_sort(last_activity: OffsetDateTime, id: ConversationId) -> String {
    let ms = (last_activity.unix_timestamp_nanos() / 1_000_000).max(0);
    format!("{ms:013}#{id}")
}

/// Cursors carry only sort-key values, never partition keys: the store rebuilds the full start key
/// from the caller's own workspace, so a cursor cannot reach into another tenant's data.
pub fn encode_cursor(sort: &str) -> Cursor {
    Cursor(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sort))
}

pub fn decode_activity_cursor(c: &Cursor) -> Option<(String, ConversationId)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&c.0).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (ms, id) = s.split_once('#')?;
    if ms.len() != 13 || !ms.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id = ConversationId::parse(id).ok()?;
    Some((s.clone(), id))
}

pub fn decode_message_cursor(c: &Cursor) -> Option<MessageId> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&c.0).ok()?;
    MessageId::parse(std::str::from_utf8(&raw).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_tenant_scoped_and_distinct() {
        let a = WorkspaceId::parse("a").unwrap();
        let b = WorkspaceId::parse("b").unwrap();
        let conv = ConversationId::new();
        assert_ne!(conversation(&a, conv), conversation(&b, conv));
        assert!(conversation(&a, conv).pk.starts_with("WS#a#"));
        // Messages share their conversation's partition: one query reads a thread.
        let m = message(&a, conv, MessageId::new());
        assert_eq!(m.pk, conversation(&a, conv).pk);
        assert!(m.sk.starts_with(MESSAGE_PREFIX));
    }

    #[test]
    fn activity_sort_orders_by_time_then_id() {
        let t1 = time::macros::datetime!(2026-01-01 0:00 UTC);
        let t2 = t1 + time::Duration::milliseconds(1);
        let (a, b) = (ConversationId::new(), ConversationId::new());
        let (x, y) = if a < b { (a, b) } else { (b, a) };
        assert!(activity_sort(t1, y) < activity_sort(t2, x));
        assert!(activity_sort(t1, x) < activity_sort(t1, y));
    }

    #[test]
    fn legacy_keys_move_to_the_shard_todays_writes_use() {
        let w = WorkspaceId::parse("acme").unwrap();
        let month = Month::of(time::macros::datetime!(2026-12-07 12:00 UTC));
        let message = MessageId::new();
        let conversation = ConversationId::new();
        for d in [
            Dimension::Total,
            Dimension::Team { team: None },
            Dimension::Conversation { conversation },
            Dimension::Agent { agent: Some(AgentId::parse("ann").unwrap()) },
        ] {
            let now = cost_counter(&w, month, &d, message);
            let old_pk = now.pk.rsplit_once('#').unwrap().0.to_owned();
            assert_eq!(legacy::cost_counter(&old_pk, &now.sk), Some(now.clone()), "{d:?}");
            // A sharded key is not legacy.
            assert_eq!(legacy::cost_counter(&now.pk, &now.sk), None);
        }
        let day = time::macros::date!(2026 - 12 - 07);
        let now = ledger_entry(&w, day, message, EntryKind::Estimate);
        assert_eq!(legacy::ledger_entry(&format!("WS#acme#LEDGER#{day}"), &now.sk), Some(now.clone()));
        assert_eq!(legacy::ledger_entry(&now.pk, &now.sk), None);
        // Entries of the four-shard ledger move to their shard of 128 (those already there stay).
        for _ in 0..64 {
            let m = MessageId::new();
            let now = ledger_entry(&w, day, m, EntryKind::Actual);
            let before = format!("WS#acme#LEDGER#{day}#{}", shard_of_message(m, LEDGER_SHARDS_BEFORE));
            let moved = legacy::ledger_entry(&before, &now.sk);
            assert_eq!(moved.is_some(), before != now.pk);
            assert!(moved.is_none_or(|k| k == now));
        }
        let queued = waiting(&w, ConversationId::new());
        assert_eq!(legacy::waiting("WS#acme#ROUTEQ", &queued.sk), Some(queued.clone()));
        assert_eq!(legacy::waiting(&queued.pk, &queued.sk), None);
        // Every sharded partition folds back to the one key the earlier design wrote.
        let conv = ConversationId::new();
        let open = ConversationStatus::Open;
        let team = TeamId::parse("billing").unwrap();
        for (now, then) in [
            (ledger_partition(&w, day, 3), format!("WS#acme#LEDGER#{day}")),
            (cost_partition(&w, month, 7), format!("WS#acme#COST#{month}")),
            (status_partition(&w, open, conv), "WS#acme#STATUS#open".to_owned()),
            (assignee_partition(&w, None, open, conv), "WS#acme#ASSIGNEE#-#STATUS#open".to_owned()),
            (team_partition(&w, &team, open, conv), "WS#acme#TEAM#billing#STATUS#open".to_owned()),
            (waiting(&w, conv).pk, "WS#acme#ROUTEQ".to_owned()),
        ] {
            assert_eq!(legacy::partition(&now), Some(then));
        }
        let ann = AgentId::parse("ann").unwrap();
        assert_eq!(legacy::partition(&assignee_partition(&w, Some(&ann), open, conv)), None);
        assert_eq!(legacy::partition(&super::conversation(&w, conv).pk), None);
    }

    #[test]
    fn shards_spread_and_stay_put() {
        let mut seen = std::collections::BTreeMap::<u32, u32>::new();
        for _ in 0..4000 {
            let c = ConversationId::new();
            assert_eq!(inbox_shard(c), inbox_shard(c));
            *seen.entry(inbox_shard(c)).or_default() += 1;
        }
        assert_eq!(seen.len() as u32, INBOX_SHARDS);
        // Even within 15 % of the mean.
        assert!(seen.values().all(|n| (850..=1150).contains(n)), "{seen:?}");
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = ConversationId::new();
        let s = activity_sort(OffsetDateTime::UNIX_EPOCH + time::Duration::days(20000), id);
        let c = encode_cursor(&s);
        assert_eq!(decode_activity_cursor(&c), Some((s, id)));
        assert_eq!(decode_activity_cursor(&Cursor("not base64!".into())), None);
        assert_eq!(decode_activity_cursor(&encode_cursor("WS#other#CONV#x")), None);
        let m = MessageId::new();
        assert_eq!(decode_message_cursor(&encode_cursor(&m.to_string())), Some(m));
    }
}
