//! The single-table key design. This module is the only place a key is formatted; every other module
//! asks it for keys. See the README's access-pattern table.
//!
//! | item                 | PK                                   | SK                 |
//! |----------------------|--------------------------------------|--------------------|
//! | channel account      | `CHANNEL#<channel>#<address>`        | `CHANNEL`          |
//! | contact              | `WS#<ws>#CONTACT#<contact>`          | `CONTACT`          |
//! | contact's current conversation | `WS#<ws>#CONTACT#<contact>` | `CURRENT_CONV`     |
//! | identity → contact   | `WS#<ws>#IDENT#<kind>#<value>`       | `IDENT`            |
//! | conversation         | `WS#<ws>#CONV#<conv>`                | `CONV`             |
//! | message              | `WS#<ws>#CONV#<conv>`                | `MSG#<message>`    |
//! | provider message id  | `WS#<ws>#PMSG#<provider>#<id>`       | `PMSG`             |
//! | idempotency key      | `WS#<ws>#IDEMP#<agent>#<key>`        | `IDEMP`            |
//!
//! Conversations carry two index keys, both sorted by `<last activity ms, 13 digits>#<conv>`:
//! `GSI1PK = WS#<ws>#STATUS#<status>` (index `ByStatus`) and
//! `GSI2PK = WS#<ws>#ASSIGNEE#<agent or ->#STATUS#<status>` (index `ByAssignee`).

use base64::Engine;
use domain::model::{Channel, ConversationStatus, Identity};
use domain::ports::Cursor;
use domain::{AgentId, ContactId, ConversationId, IdempotencyKey, MessageId, WorkspaceId};
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
pub const MESSAGE_PREFIX: &str = "MSG#";

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

pub fn contact(w: &WorkspaceId, id: ContactId) -> Key {
    Key { pk: format!("{}#CONTACT#{id}", ws(w)), sk: "CONTACT".into() }
}

pub fn current_conversation(w: &WorkspaceId, contact: ContactId) -> Key {
    Key { pk: format!("{}#CONTACT#{contact}", ws(w)), sk: "CURRENT_CONV".into() }
}

pub fn identity(w: &WorkspaceId, id: &Identity) -> Key {
    Key { pk: format!("{}#IDENT#{}#{}", ws(w), id.kind.as_str(), id.value), sk: "IDENT".into() }
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

pub fn status_partition(w: &WorkspaceId, status: ConversationStatus) -> String {
    format!("{}#STATUS#{}", ws(w), status.as_str())
}

pub fn assignee_partition(w: &WorkspaceId, assignee: Option<&AgentId>, status: ConversationStatus) -> String {
    let who = assignee.map(AgentId::as_str).unwrap_or("-");
    format!("{}#ASSIGNEE#{who}#STATUS#{}", ws(w), status.as_str())
}

/// Sort key of a conversation in both views: activity time, then id for a stable tie-break.
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
