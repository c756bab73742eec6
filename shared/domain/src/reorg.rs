//! Splitting and merging conversations, for when automatic threading got it wrong (seed 000:
//! "Allow agents to manually split or merge conversations").
//!
//! - **Split** from a chosen message: that message and every later one move to a new conversation
//!   of the same contact. The new conversation carries on the thread: if the source was the
//!   contact's current (unresolved) conversation, the new one takes its place, its owner, its share
//!   of the owner's capacity and its place in the routing queue, and the source is resolved with
//!   the earlier messages (the customer's next message lands in the new thread). A split of a
//!   resolved conversation makes a resolved one.
//! - **Merge** into another conversation of the same contact: every message moves into the
//!   target; the source is resolved and points at it (`merged_into`). If the source was the
//!   contact's current conversation, the target takes over its place, owner, capacity share and
//!   queue place (a resolved target is reopened by it). Tags are united, the higher priority kept.
//!
//! Messages move in chunks (a DynamoDB transaction holds at most 100 items), each chunk atomic: a
//! message is always in exactly one conversation, and its provider-id pointer moves with it, so
//! delivery callbacks still find it. Before the first chunk the source is marked
//! ([`Moving`]); a repeated request resumes from the mark, and a completed one is recognised
//! (`splits`, `merged_into`) and answers the same result without changing anything. The last
//! write (both conversations, the contact's current slot, the queue, the audit trail) is
//! conditional on the versions read after the last chunk, so a message that arrives meanwhile is
//! moved too before the move can finish.
//!
//! Not moved: internal notes and audit entries stay with the conversation they were written on,
//! and ledger entries keep the conversation a cost was first recorded for (they are immutable).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::audit::AuditEntry;
use crate::events::ConversationChange;
use crate::ids::{ConversationId, MessageId, WorkspaceId};
use crate::inbox::{may_manage, Actor, Refusal};
use crate::model::{Conversation, ConversationStatus, DeliveryStatus, Direction, Message, Route, Sender};
use crate::ports::{
    ConversationReader, NotificationQueue, Order, QueueChange, ReorgCommit, ReorgStore, RoutingCommit, RoutingStore,
    StoreError,
};
use crate::routing::service::{changed, ActError, RoutingError};
use crate::routing::Work;

/// What an agent asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reorg {
    /// Move `from` and every later message to a new conversation.
    Split { from: MessageId },
    /// Move every message into `into`.
    Merge { into: ConversationId },
}

/// The mark a source carries while its messages move.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Moving {
    pub to: ConversationId,
    /// For a split: the first message that moves (the later ones follow it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_message: Option<MessageId>,
    pub by: crate::ids::AgentId,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
}

impl Moving {
    /// Whether `m` is one of the messages this move takes (all of them for a merge).
    pub fn moves(&self, m: &Message) -> bool {
        self.from_message.is_none_or(|f| m.id >= f)
    }

    fn is(&self, req: &Reorg) -> bool {
        match req {
            Reorg::Split { from } => self.from_message == Some(*from),
            Reorg::Merge { into } => self.from_message.is_none() && self.to == *into,
        }
    }
}

/// One split made from a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SplitRecord {
    pub from_message: MessageId,
    pub into: ConversationId,
}

/// How to go on with a request, given the conversations as they are.
#[derive(Clone, Debug, PartialEq)]
pub enum Start {
    /// Done before (a retry): the conversation the messages went to.
    Done(ConversationId),
    /// A mark for this very request is there: resume moving.
    Resume(Moving),
    /// Mark the source (this is the marked conversation, version bumped) and move.
    Begin(Box<Conversation>, Moving),
}

/// Checks a request against the source (and, for a merge, the target) and says how to go on.
pub fn start(
    actor: &Actor,
    source: &Conversation,
    target: Option<&Conversation>,
    req: &Reorg,
    now: OffsetDateTime,
) -> Result<Start, Refusal> {
    may_manage(source, actor)?;
    match req {
        Reorg::Split { from } => {
            if let Some(done) = source.splits.iter().find(|s| s.from_message == *from) {
                return Ok(Start::Done(done.into));
            }
            if let Some(into) = source.merged_into {
                return Err(Refusal::Conflict(format!("this conversation was merged into {into}: split that one")));
            }
        }
        Reorg::Merge { into } => {
            if source.merged_into == Some(*into) {
                return Ok(Start::Done(*into));
            }
            if let Some(other) = source.merged_into {
                return Err(Refusal::Conflict(format!("this conversation was already merged into {other}")));
            }
            let target = target.ok_or_else(|| Refusal::Invalid(format!("conversation {into} does not exist")))?;
            if target.id == source.id {
                return Err(Refusal::Invalid("a conversation cannot be merged into itself".into()));
            }
            if target.contact_id != source.contact_id {
                return Err(Refusal::Invalid(
                    "both conversations must belong to one contact (merge the contacts first)".into(),
                ));
            }
            if let Some(further) = target.merged_into {
                return Err(Refusal::Invalid(format!(
                    "conversation {into} was itself merged into {further}: merge into that one"
                )));
            }
            if target.moving.is_some() {
                return Err(Refusal::Conflict(format!("conversation {into} is being split or merged: try again")));
            }
            if source.status.is_unresolved() && target.status.is_unresolved() {
                return Err(Refusal::Conflict("both conversations are open: resolve one first".into()));
            }
            may_manage(target, actor)?;
        }
    }
    match &source.moving {
        Some(m) if m.is(req) => Ok(Start::Resume(m.clone())),
        Some(m) => Err(Refusal::Conflict(format!(
            "another split or merge (into {}) is in progress: repeat that request to finish it first",
            m.to
        ))),
        None => {
            let (to, from_message) = match req {
                Reorg::Split { from } => (ConversationId::new(), Some(*from)),
                Reorg::Merge { into } => (*into, None),
            };
            let moving = Moving { to, from_message, by: actor.agent.clone(), started_at: now };
            let mut marked = source.clone();
            marked.moving = Some(moving.clone());
            marked.version += 1;
            Ok(Start::Begin(Box::new(marked), moving))
        }
    }
}

/// Checks a split point before anything moves: the message is in the conversation and is not its
/// first (something must stay behind).
pub fn check_split_point(messages: &[Message], from: MessageId) -> Result<(), Refusal> {
    match messages.iter().position(|m| m.id == from) {
        None => Err(Refusal::Invalid(format!("message {from} is not in this conversation"))),
        Some(0) => Err(Refusal::Invalid(format!(
            "message {from} is the conversation's first: splitting there would leave nothing behind"
        ))),
        Some(_) => Ok(()),
    }
}

/// The source's messages that (still) have to move, oldest first. A message the sender has not
/// finished with cannot move yet: its outcome would be written where it no longer is.
pub fn to_move<'a>(moving: &Moving, messages: &'a [Message]) -> Result<Vec<&'a Message>, Refusal> {
    let out: Vec<&Message> = messages.iter().filter(|m| moving.moves(m)).collect();
    if let Some(busy) = out.iter().find(|m| matches!(m.status, DeliveryStatus::Queued | DeliveryStatus::Sending)) {
        return Err(Refusal::Conflict(format!("message {} is still being sent: try again in a moment", busy.id)));
    }
    Ok(out)
}

/// What a conversation's messages say about it: counts, the customer's last route, last activity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    pub message_count: u32,
    /// Customer messages after the last agent reply.
    pub unread_count: u32,
    pub last_inbound: Option<Route>,
    pub last_inbound_at: Option<OffsetDateTime>,
    pub channels: std::collections::BTreeMap<crate::model::Channel, crate::model::ChannelSeen>,
    pub last_activity_at: Option<OffsetDateTime>,
}

impl Tally {
    /// Over messages in conversation order.
    pub fn of<'a>(messages: impl IntoIterator<Item = &'a Message>) -> Tally {
        let mut t = Tally {
            message_count: 0,
            unread_count: 0,
            last_inbound: None,
            last_inbound_at: None,
            channels: Default::default(),
            last_activity_at: None,
        };
        for m in messages {
            t.message_count = t.message_count.saturating_add(1);
            t.last_activity_at = Some(t.last_activity_at.map_or(m.created_at, |a| a.max(m.created_at)));
            match (m.direction, &m.sender) {
                (Direction::Inbound, _) => {
                    t.unread_count = t.unread_count.saturating_add(1);
                    t.last_inbound = Some(m.route.clone());
                    t.last_inbound_at = Some(t.last_inbound_at.map_or(m.created_at, |a| a.max(m.created_at)));
                    let seen = crate::model::ChannelSeen { route: m.route.clone(), at: Some(m.created_at) };
                    match t.channels.get(&m.channel) {
                        Some(s) if s.at > Some(m.created_at) => {}
                        _ => {
                            t.channels.insert(m.channel, seen);
                        }
                    }
                }
                (Direction::Outbound, Sender::Agent { .. }) => t.unread_count = 0,
                (Direction::Outbound, _) => {}
            }
        }
        t
    }

    fn apply(&self, c: &mut Conversation) {
        c.message_count = self.message_count;
        c.unread_count = self.unread_count;
        c.last_inbound = self.last_inbound.clone();
        c.last_inbound_at = self.last_inbound_at;
        c.channels = self.channels.clone();
        c.last_activity_at = self.last_activity_at.unwrap_or(c.created_at).max(c.created_at);
    }
}

fn hand_over(from: &Conversation, to: &mut Conversation) {
    to.status = from.status;
    to.assignee = from.assignee.clone();
    to.assigned_weight = from.assigned_weight;
    to.waiting_since = from.waiting_since;
    to.snoozed_until = from.snoozed_until;
    to.previous_owner = from.previous_owner.clone();
}

fn retire(source: &mut Conversation) {
    source.status = ConversationStatus::Resolved;
    source.assigned_weight = 0;
    source.waiting_since = None;
    source.snoozed_until = None;
}

/// The last write of a move, once every message is where it belongs. `source` is the marked
/// source as read after the last chunk, with `left` its remaining messages; `target` the target
/// as read (`None` for a split: it is created) with `gathered` all of its messages now.
pub fn finish(
    source: &Conversation,
    left: &[Message],
    target: Option<&Conversation>,
    gathered: &[Message],
    moved: usize,
    now: OffsetDateTime,
) -> ReorgCommit {
    let moving = source.moving.clone().expect("finish is called on a marked source");
    let by = moving.by.clone();
    let was_current = source.status.is_unresolved();
    let mut next_source = source.clone();
    next_source.moving = None;
    next_source.version += 1;
    Tally::of(left).apply(&mut next_source);
    let (mut next_target, target_version, source_action, target_action, details) = match target {
        None => {
            let from = moving.from_message.expect("a split names its first message");
            let mut t = source.clone();
            t.id = moving.to;
            t.created_at = now;
            t.moving = None;
            t.splits = vec![];
            t.merged_into = None;
            t.split_from = Some(source.id);
            t.version = 0;
            if !was_current {
                // A split of history stays history.
                t.assigned_weight = 0;
                t.waiting_since = None;
            }
            next_source.splits.push(SplitRecord { from_message: from, into: moving.to });
            let details = serde_json::json!({ "source": source.id, "conversation": moving.to,
                "from_message": from, "moved": moved });
            (t, None, "split", "split_from", details)
        }
        Some(t) => {
            let read = t.version;
            let mut t = t.clone();
            t.version += 1;
            if was_current {
                hand_over(source, &mut t);
            }
            t.priority = t.priority.max(source.priority);
            t.tags = t.tags.union(&source.tags).cloned().collect::<BTreeSet<_>>();
            t.skills = t.skills.union(&source.skills).cloned().collect::<BTreeSet<_>>();
            if t.team.is_none() {
                t.team = source.team.clone();
            }
            next_source.merged_into = Some(t.id);
            let details = serde_json::json!({ "source": source.id, "conversation": t.id, "moved": moved });
            (t, Some(read), "merged", "merged_from", details)
        }
    };
    Tally::of(gathered).apply(&mut next_target);
    if was_current {
        retire(&mut next_source);
    }
    let queue = match (was_current, source.waiting_since) {
        (true, Some(_)) => Work::of(&next_target, now),
        _ => None,
    };
    let ws = source.workspace.clone();
    let audits = vec![
        AuditEntry::new(ws.clone(), Some(source.id), by.clone(), source_action, details.clone(), now),
        AuditEntry::new(ws, Some(next_target.id), by, target_action, details, now),
    ];
    ReorgCommit {
        source: next_source,
        source_version: source.version,
        target_version,
        target: next_target,
        moves_current: was_current,
        queue,
        audits,
    }
}

/// What a split or merge did.
#[derive(Clone, Debug, PartialEq)]
pub struct Reorganised {
    pub source: Conversation,
    /// The new conversation (split) or the merge target.
    pub conversation: Conversation,
    pub moved: usize,
    /// False when it had been done before (a retry).
    pub changed: bool,
}

/// Everything a move reads and writes.
pub trait ReorgPorts: ConversationReader + RoutingStore + ReorgStore {}
impl<T: ConversationReader + RoutingStore + ReorgStore + ?Sized> ReorgPorts for T {}

const ATTEMPTS: usize = 8;
const PAGE: u16 = 100;

async fn all_messages<S: ConversationReader + ?Sized>(
    store: &S,
    ws: &WorkspaceId,
    id: ConversationId,
) -> Result<Vec<Message>, StoreError> {
    let mut out = vec![];
    let mut cursor = None;
    loop {
        let page = store.messages(ws, id, Order::Oldest, PAGE, cursor.as_ref()).await?;
        out.extend(page.items);
        match page.next {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

fn not_found(id: ConversationId) -> ActError {
    ActError::NotFound(id)
}

/// Splits or merges for `actor` (see the module documentation), retrying while concurrent writes
/// (a customer message, a delivery callback) get in between.
pub async fn reorganise<S: ReorgPorts + ?Sized>(
    store: &S,
    notify: &dyn NotificationQueue,
    ws: &WorkspaceId,
    id: ConversationId,
    actor: &Actor,
    req: &Reorg,
    now: OffsetDateTime,
) -> Result<Reorganised, ActError> {
    let mut moved = 0;
    for _ in 0..ATTEMPTS {
        let source = store.conversation(ws, id).await?.ok_or_else(|| not_found(id))?;
        let target = match req {
            Reorg::Merge { into } => store.conversation(ws, *into).await?,
            Reorg::Split { .. } => None,
        };
        // Messages listed after the source was read stay valid through the mark: the mark's write
        // (and the final one) fails if a message arrived after that read.
        let (marked, messages) = match start(actor, &source, target.as_ref(), req, now)? {
            Start::Done(to) => {
                let conversation = store.conversation(ws, to).await?.ok_or_else(|| not_found(to))?;
                return Ok(Reorganised { source, conversation, moved: 0, changed: false });
            }
            Start::Resume(_) => {
                let messages = all_messages(store, ws, id).await?;
                (source, messages)
            }
            Start::Begin(marked, _) => {
                let messages = all_messages(store, ws, id).await?;
                if let Reorg::Split { from } = req {
                    check_split_point(&messages, *from)?;
                }
                let mark = RoutingCommit {
                    conversation: (*marked).clone(),
                    expected_version: source.version,
                    take: None,
                    give_back: None,
                    queue: QueueChange::Keep,
                    audit: None,
                };
                match store.commit_routing(mark).await {
                    Ok(()) => (*marked, messages),
                    Err(StoreError::Conflict) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let moving = marked.moving.clone().expect("marked above or found marked");
        let movable: Vec<Message> = to_move(&moving, &messages)?.into_iter().cloned().collect();
        let mut conflicted = false;
        for chunk in movable.chunks(crate::ports::MOVE_CHUNK) {
            match store.move_messages(ws, moving.to, chunk).await {
                Ok(()) => moved += chunk.len(),
                // A callback changed one of them meanwhile: read again and move the rest.
                Err(StoreError::Conflict) => {
                    conflicted = true;
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if conflicted {
            continue;
        }
        let left: Vec<Message> = messages.into_iter().filter(|m| !moving.moves(m)).collect();
        // The target as read before the moves: moving messages does not touch its item, and the
        // final write fails if anything else did.
        let gathered = all_messages(store, ws, moving.to).await?;
        let commit = finish(&marked, &left, target.as_ref(), &gathered, moved, now);
        match store.commit_reorg(commit.clone()).await {
            Ok(()) => {
                announce(notify, &commit, req, actor).await.map_err(RoutingError::from)?;
                return Ok(Reorganised { source: commit.source, conversation: commit.target, moved, changed: true });
            }
            // Something arrived or changed after the last read: move what is new, then finish.
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

async fn announce(
    notify: &dyn NotificationQueue,
    c: &ReorgCommit,
    req: &Reorg,
    actor: &Actor,
) -> Result<(), crate::ports::QueueError> {
    let source_change = match req {
        Reorg::Split { .. } => ConversationChange::Split,
        Reorg::Merge { .. } => ConversationChange::Merged,
    };
    for (conv, change) in [(&c.source, source_change), (&c.target, ConversationChange::Updated)] {
        notify.publish(&changed(conv, change, actor.agent.clone(), None, None)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AgentId, ContactId};
    use crate::model::{Channel, DeliveryEvent, Priority, Role};
    use std::collections::BTreeMap;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-22 10:00 UTC);

    fn agent(id: &str) -> AgentId {
        AgentId::parse(id).unwrap()
    }

    fn by(id: &str, role: Role) -> Actor {
        Actor { agent: agent(id), role }
    }

    fn route(channel: Channel) -> Route {
        Route {
            channel,
            contact_address: "+15550001111".into(),
            our_address: "+15550002222".into(),
            contact_country: None,
        }
    }

    fn conv(contact: ContactId, owner: Option<&str>, status: ConversationStatus) -> Conversation {
        let ws = WorkspaceId::parse("acme").unwrap();
        let phone = crate::model::Identity {
            kind: crate::model::IdentityKind::Phone,
            value: "+15550001111".into(),
            unverified: false,
        };
        let mut who = crate::model::Contact::new(ws.clone(), phone, None, NOW);
        who.id = contact;
        let mut c = Conversation::start(ws, &who, NOW);
        c.status = status;
        c.assignee = owner.map(agent);
        c.assigned_weight = if owner.is_some() && status.is_unresolved() { 100 } else { 0 };
        c.version = 4;
        c
    }

    fn msg(c: &Conversation, direction: Direction, sender: Sender, minutes: i64, status: DeliveryStatus) -> Message {
        let at = NOW + time::Duration::minutes(minutes);
        Message {
            id: MessageId::from_ulid(ulid::Ulid::from_parts(at.unix_timestamp() as u64 * 1000, minutes as u128)),
            workspace: c.workspace.clone(),
            conversation_id: c.id,
            direction,
            channel: Channel::Sms,
            route: route(if minutes > 5 { Channel::Whatsapp } else { Channel::Sms }),
            sender,
            text: Some(format!("message at +{minutes} min")),
            rich: None,
            attachments: vec![],
            provider: None,
            provider_message_id: None,
            provider_timestamp: None,
            created_at: at,
            status,
            status_history: vec![DeliveryEvent::new(status, at)],
            metadata: BTreeMap::new(),
            cost: None,
        }
    }

    fn inbound(c: &Conversation, minutes: i64) -> Message {
        msg(c, Direction::Inbound, Sender::Contact { id: c.contact_id }, minutes, DeliveryStatus::Received)
    }

    fn reply(c: &Conversation, minutes: i64, status: DeliveryStatus) -> Message {
        msg(c, Direction::Outbound, Sender::Agent { id: agent("alice") }, minutes, status)
    }

    #[test]
    fn only_the_owner_or_a_supervisor_reorganises_and_merges_stay_within_one_contact() {
        let contact = ContactId::new();
        let source = conv(contact, Some("alice"), ConversationStatus::Open);
        let old = conv(contact, Some("bob"), ConversationStatus::Resolved);
        let split = Reorg::Split { from: MessageId::new() };
        assert!(matches!(start(&by("bob", Role::Agent), &source, None, &split, NOW), Err(Refusal::Forbidden(_))));
        assert!(matches!(start(&by("alice", Role::Agent), &source, None, &split, NOW), Ok(Start::Begin(..))));
        assert!(matches!(start(&by("sue", Role::Supervisor), &source, None, &split, NOW), Ok(Start::Begin(..))));
        // Merging into bob's old conversation needs bob or a supervisor.
        let merge = Reorg::Merge { into: old.id };
        let alice = by("alice", Role::Agent);
        assert!(matches!(start(&alice, &source, Some(&old), &merge, NOW), Err(Refusal::Forbidden(_))));
        assert!(matches!(start(&by("sue", Role::Admin), &source, Some(&old), &merge, NOW), Ok(Start::Begin(..))));
        let stranger = conv(ContactId::new(), None, ConversationStatus::Resolved);
        let into_stranger = Reorg::Merge { into: stranger.id };
        assert!(matches!(start(&alice, &source, Some(&stranger), &into_stranger, NOW), Err(Refusal::Invalid(_))));
        let itself = Reorg::Merge { into: source.id };
        assert!(matches!(start(&alice, &source, Some(&source), &itself, NOW), Err(Refusal::Invalid(_))));
        assert!(matches!(start(&alice, &source, None, &merge, NOW), Err(Refusal::Invalid(_))), "missing target");
        let open_too = conv(contact, None, ConversationStatus::Open);
        let into_open = Reorg::Merge { into: open_too.id };
        assert!(matches!(start(&alice, &source, Some(&open_too), &into_open, NOW), Err(Refusal::Conflict(_))));
    }

    #[test]
    fn a_started_move_resumes_a_finished_one_is_recognised_and_another_waits() {
        let contact = ContactId::new();
        let alice = by("alice", Role::Agent);
        let source = conv(contact, Some("alice"), ConversationStatus::Open);
        let from = MessageId::new();
        let split = Reorg::Split { from };
        let Ok(Start::Begin(marked, moving)) = start(&alice, &source, None, &split, NOW) else { panic!() };
        assert_eq!(marked.version, source.version + 1);
        assert_eq!(marked.moving.as_ref(), Some(&moving));
        assert_eq!(start(&alice, &marked, None, &split, NOW), Ok(Start::Resume(moving.clone())));
        let other = Reorg::Split { from: MessageId::new() };
        assert!(matches!(start(&alice, &marked, None, &other, NOW), Err(Refusal::Conflict(_))));
        let mut done = source.clone();
        done.splits.push(SplitRecord { from_message: from, into: moving.to });
        assert_eq!(start(&alice, &done, None, &split, NOW), Ok(Start::Done(moving.to)));
        let target = conv(contact, None, ConversationStatus::Resolved);
        let mut merged = source.clone();
        merged.merged_into = Some(target.id);
        let merge = Reorg::Merge { into: target.id };
        assert_eq!(start(&alice, &merged, Some(&target), &merge, NOW), Ok(Start::Done(target.id)));
        let elsewhere = Reorg::Merge { into: ConversationId::new() };
        assert!(matches!(start(&alice, &merged, Some(&target), &elsewhere, NOW), Err(Refusal::Conflict(_))));
    }

    #[test]
    fn a_split_point_must_leave_something_behind_and_sending_messages_wait() {
        let c = conv(ContactId::new(), None, ConversationStatus::Open);
        let msgs = vec![inbound(&c, 0), reply(&c, 1, DeliveryStatus::Delivered), inbound(&c, 2)];
        assert!(check_split_point(&msgs, msgs[1].id).is_ok());
        assert!(matches!(check_split_point(&msgs, msgs[0].id), Err(Refusal::Invalid(_))));
        assert!(matches!(check_split_point(&msgs, MessageId::new()), Err(Refusal::Invalid(_))));
        let moving =
            Moving { to: ConversationId::new(), from_message: Some(msgs[1].id), by: agent("a"), started_at: NOW };
        let ids: Vec<MessageId> = to_move(&moving, &msgs).unwrap().iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![msgs[1].id, msgs[2].id]);
        // Resuming after the split point itself already moved still takes everything after it.
        let ids: Vec<MessageId> = to_move(&moving, &msgs[2..]).unwrap().iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![msgs[2].id]);
        let sending = vec![inbound(&c, 0), reply(&c, 1, DeliveryStatus::Sending)];
        let merge = Moving { from_message: None, ..moving };
        assert!(matches!(to_move(&merge, &sending), Err(Refusal::Conflict(_))));
        assert_eq!(to_move(&merge, &msgs).unwrap().len(), 3);
    }

    #[test]
    fn a_tally_counts_unread_after_the_last_agent_reply_and_keeps_the_last_route() {
        let c = conv(ContactId::new(), None, ConversationStatus::Open);
        let auto = msg(&c, Direction::Outbound, Sender::System, 8, DeliveryStatus::Sent);
        let msgs = vec![inbound(&c, 0), reply(&c, 1, DeliveryStatus::Read), inbound(&c, 6), auto, inbound(&c, 9)];
        let t = Tally::of(&msgs);
        assert_eq!(t.message_count, 5);
        assert_eq!(t.unread_count, 2, "an automatic answer reads nothing");
        assert_eq!(t.last_inbound.map(|r| r.channel), Some(Channel::Whatsapp));
        assert_eq!(t.last_inbound_at, Some(NOW + time::Duration::minutes(9)));
        assert_eq!(t.last_activity_at, Some(NOW + time::Duration::minutes(9)));
        assert_eq!(Tally::of(&[]).message_count, 0);
    }

    #[test]
    fn a_split_of_the_current_conversation_hands_the_thread_to_the_new_one() {
        let mut source = conv(ContactId::new(), None, ConversationStatus::Open);
        source.waiting_since = Some(NOW);
        source.priority = Priority::High;
        source.tags.insert("billing".into());
        let msgs = [inbound(&source, 0), reply(&source, 1, DeliveryStatus::Read), inbound(&source, 6)];
        let alice = by("alice", Role::Agent);
        let split = Reorg::Split { from: msgs[2].id };
        let Ok(Start::Begin(marked, moving)) = start(&alice, &source, None, &split, NOW) else { panic!() };
        let moved: Vec<Message> =
            msgs[2..].iter().map(|m| Message { conversation_id: moving.to, ..m.clone() }).collect();
        let c = &finish(&marked, &msgs[..2], None, &moved, 1, NOW);
        assert_eq!(
            (c.source.status, c.source.waiting_since, c.source.message_count),
            (ConversationStatus::Resolved, None, 2)
        );
        assert_eq!(c.source.unread_count, 0);
        assert_eq!(c.source.moving, None);
        assert_eq!(c.source.splits, vec![SplitRecord { from_message: msgs[2].id, into: moving.to }]);
        assert_eq!(c.source_version, marked.version);
        assert_eq!(c.source.version, marked.version + 1);
        assert_eq!(c.target.id, moving.to);
        assert_eq!(c.target.split_from, Some(source.id));
        assert_eq!(
            (c.target.status, c.target.waiting_since, c.target.priority),
            (ConversationStatus::Open, Some(NOW), Priority::High)
        );
        assert_eq!((c.target.message_count, c.target.unread_count), (1, 1));
        assert!(c.target.tags.contains("billing"));
        assert_eq!(c.target_version, None, "created");
        assert!(c.moves_current);
        assert_eq!(c.queue.as_ref().map(|w| w.conversation), Some(moving.to));
        let actions: Vec<&str> = c.audits.iter().map(|a| a.action.as_str()).collect();
        assert_eq!(actions, vec!["split", "split_from"]);
        assert_eq!(c.audits[1].conversation, Some(moving.to));
    }

    #[test]
    fn a_merge_moves_the_owner_and_capacity_share_into_a_resolved_target() {
        let contact = ContactId::new();
        let mut source = conv(contact, Some("alice"), ConversationStatus::Open);
        source.tags.insert("vip".into());
        let mut target = conv(contact, Some("bob"), ConversationStatus::Resolved);
        target.tags.insert("refund".into());
        target.priority = Priority::Urgent;
        let sue = by("sue", Role::Supervisor);
        let merge = Reorg::Merge { into: target.id };
        let Ok(Start::Begin(marked, _)) = start(&sue, &source, Some(&target), &merge, NOW) else { panic!() };
        let all = vec![inbound(&target, 0), reply(&target, 1, DeliveryStatus::Read), inbound(&target, 7)];
        let c = &finish(&marked, &[], Some(&target), &all, 1, NOW);
        assert_eq!(c.source.merged_into, Some(target.id));
        assert_eq!(
            (c.source.status, c.source.assigned_weight, c.source.message_count),
            (ConversationStatus::Resolved, 0, 0)
        );
        assert_eq!(c.target.status, ConversationStatus::Open);
        assert_eq!((c.target.assignee.clone(), c.target.assigned_weight), (Some(agent("alice")), 100));
        assert_eq!(c.target.priority, Priority::Urgent);
        assert_eq!(c.target.tags.iter().map(String::as_str).collect::<Vec<_>>(), vec!["refund", "vip"]);
        assert_eq!((c.target.message_count, c.target.unread_count), (3, 1));
        assert_eq!(c.target_version, Some(target.version));
        assert_eq!(c.target.version, target.version + 1);
        assert!(c.moves_current);
        assert_eq!(c.queue, None, "it was not waiting");
        // Merging history into the open conversation leaves the open one as it is.
        let open = conv(contact, Some("bob"), ConversationStatus::Open);
        let history = conv(contact, Some("alice"), ConversationStatus::Resolved);
        let into_open = Reorg::Merge { into: open.id };
        let Ok(Start::Begin(marked, _)) = start(&sue, &history, Some(&open), &into_open, NOW) else { panic!() };
        let c = finish(&marked, &[], Some(&open), &[inbound(&open, 0)], 0, NOW);
        assert!(!c.moves_current);
        assert_eq!((c.target.assignee, c.target.assigned_weight), (Some(agent("bob")), 100));
        assert_eq!(c.source.assignee, Some(agent("alice")), "history keeps who resolved it");
    }
}
