//! Inbox actions (seed 001): what a signed-in user may do to a conversation and exactly what it
//! changes. Pure: `routing::service::act` reads the conversation, asks [`plan`], and commits the plan
//! with its capacity bookkeeping in one transaction.
//!
//! Permissions, decided here once:
//! - finance users have no inbox rights;
//! - assigning, transferring, unassigning, resolving, reopening and snoozing belong to the
//!   conversation's owner, to anyone while it is unowned, and to supervisors and admins always
//!   ("only supervisors and admins reassign others' work");
//! - priority, tags and internal notes are collaboration: any agent of the workspace;
//! - an agent's assignment must fit the target's capacity and the target must be online; a
//!   supervisor's may exceed capacity (the target still has to be an agent of the workspace).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::events::ConversationChange;
use crate::ids::AgentId;
use crate::model::{Conversation, ConversationStatus, Priority, Role};
use crate::ports::Take;
use crate::routing::{AgentState, Presence, Weights};

/// Who acts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub agent: AgentId,
    pub role: Role,
}

pub const MAX_NOTE_CHARS: usize = 5000;
pub const MAX_TAGS: usize = 30;
pub const MAX_TAG_CHARS: usize = 50;
/// The furthest a conversation can be snoozed.
pub const MAX_SNOOZE: time::Duration = time::Duration::days(90);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Assign an unowned conversation, or transfer an owned one, with an optional note for the
    /// new owner (kept in the audit trail).
    Assign {
        to: AgentId,
        note: Option<String>,
    },
    /// Give the conversation back to routing.
    Unassign {
        note: Option<String>,
    },
    Resolve,
    /// Reopen a resolved conversation, or wake a snoozed one.
    Reopen,
    Snooze {
        until: OffsetDateTime,
    },
    SetPriority(Priority),
    Tag {
        add: BTreeSet<String>,
        remove: BTreeSet<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The actor's role does not allow it (403).
    #[error("{0}")]
    Forbidden(String),
    /// The request names something impossible (422).
    #[error("{0}")]
    Invalid(String),
    /// The conversation or the target agent is not in a state that allows it now (409).
    #[error("{0}")]
    Conflict(String),
}

/// The change to write.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub next: Conversation,
    /// Capacity the new owner takes.
    pub take: Option<Take>,
    pub change: ConversationChange,
    /// The audit action and its details.
    pub action: &'static str,
    pub details: serde_json::Value,
    /// Waiting work may now be assigned: someone's capacity was freed, or this conversation joined
    /// the waiting queue (unassigned, reopened without an owner).
    pub drain: bool,
    /// On an assignment, the new owner's load with it (analytics' utilisation).
    pub load: Option<crate::events::AgentLoad>,
}

/// Normalises one tag: trimmed, lower-cased, 1-50 characters of letters, digits, `-`, `_`, `:`,
/// `/` or spaces.
pub fn normalize_tag(raw: &str) -> Result<String, Refusal> {
    let t = raw.trim().to_lowercase();
    let ok_char = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | ':' | '/' | ' ');
    if t.is_empty() || t.chars().count() > MAX_TAG_CHARS || !t.chars().all(ok_char) {
        return Err(Refusal::Invalid(format!(
            "tag {raw:?}: expected 1-{MAX_TAG_CHARS} letters, digits, spaces or - _ : /"
        )));
    }
    Ok(t)
}

fn check_note(note: &Option<String>) -> Result<Option<String>, Refusal> {
    match note.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(n) if n.chars().count() > MAX_NOTE_CHARS => {
            Err(Refusal::Invalid(format!("a note is at most {MAX_NOTE_CHARS} characters")))
        }
        Some(n) => Ok(Some(n.to_owned())),
    }
}

/// Owner, anyone while unowned, supervisors and admins always.
pub(crate) fn may_manage(c: &Conversation, actor: &Actor) -> Result<(), Refusal> {
    match &c.assignee {
        _ if actor.role.oversees() => Ok(()),
        None => Ok(()),
        Some(owner) if owner == &actor.agent => Ok(()),
        Some(owner) => Err(Refusal::Forbidden(format!(
            "this conversation belongs to {owner}: only they, a supervisor or an admin can do that"
        ))),
    }
}

fn weight_of(c: &Conversation, weights: &Weights) -> u32 {
    c.last_inbound.as_ref().map_or(weights.messaging, |r| weights.of(r.channel))
}

fn bumped(c: &Conversation) -> Conversation {
    let mut next = c.clone();
    next.version += 1;
    next
}

/// What `cmd` by `actor` changes in `current`; `Ok(None)` when it is already so (a retried request
/// changes nothing). `target` is the profile of the agent an `Assign` names, if there is one.
pub fn plan(
    current: &Conversation,
    cmd: &Command,
    actor: &Actor,
    target: Option<&AgentState>,
    weights: &Weights,
    now: OffsetDateTime,
) -> Result<Option<Plan>, Refusal> {
    if actor.role == Role::Finance {
        return Err(Refusal::Forbidden("finance users have no inbox rights".into()));
    }
    let resolved = current.status == ConversationStatus::Resolved;
    let owner = current.assignee.clone();
    let plan = match cmd {
        Command::Assign { to, note } => {
            let note = check_note(note)?;
            if owner.as_ref() == Some(to) {
                return Ok(None);
            }
            if resolved {
                return Err(Refusal::Conflict("the conversation is resolved: reopen it first".into()));
            }
            may_manage(current, actor).map_err(|_| {
                Refusal::Forbidden(format!(
                    "this conversation belongs to {}: only a supervisor or an admin can reassign it",
                    owner.as_ref().map(AgentId::as_str).unwrap_or_default()
                ))
            })?;
            let Some(agent) = target.filter(|a| &a.id == to) else {
                return Err(Refusal::Invalid(format!("no agent {to} in this workspace")));
            };
            let weight = weight_of(current, weights);
            let capacity = if actor.role.oversees() {
                None
            } else {
                if agent.presence != Presence::Online {
                    return Err(Refusal::Conflict(format!(
                        "{to} is not online; a supervisor can assign to them anyway"
                    )));
                }
                if agent.load + weight > agent.capacity {
                    return Err(Refusal::Conflict(format!(
                        "{to} has no room (load {} of {} hundredths); a supervisor can assign anyway",
                        agent.load, agent.capacity
                    )));
                }
                Some(agent.capacity)
            };
            let next = crate::routing::service::reassigned(current, Some((to, weight)));
            Plan {
                next,
                take: Some(Take { agent: to.clone(), weight, capacity, at: now }),
                change: ConversationChange::Assigned,
                action: if owner.is_some() { "transferred" } else { "assigned" },
                details: serde_json::json!({ "to": to, "from": owner, "note": note }),
                drain: owner.is_some(),
                load: Some(crate::events::AgentLoad {
                    load: agent.load.saturating_add(weight),
                    capacity: agent.capacity,
                }),
            }
        }
        Command::Unassign { note } => {
            let note = check_note(note)?;
            let Some(from) = owner else { return Ok(None) };
            may_manage(current, actor)?;
            let mut next = crate::routing::service::reassigned(current, None);
            // Back in the queue in the same write, so it can never be left unowned and unqueued.
            next.waiting_since = (!resolved).then_some(now);
            Plan {
                next,
                take: None,
                change: ConversationChange::Unassigned,
                action: "unassigned",
                details: serde_json::json!({ "from": from, "note": note }),
                drain: true,
                load: None,
            }
        }
        Command::Resolve => {
            if resolved {
                return Ok(None);
            }
            may_manage(current, actor)?;
            let mut next = bumped(current);
            next.status = ConversationStatus::Resolved;
            next.snoozed_until = None;
            next.waiting_since = None;
            next.assigned_weight = 0;
            Plan {
                next,
                take: None,
                change: ConversationChange::Resolved,
                action: "resolved",
                details: serde_json::json!({ "assignee": owner }),
                drain: owner.is_some(),
                load: None,
            }
        }
        Command::Reopen => {
            if !matches!(current.status, ConversationStatus::Resolved | ConversationStatus::Snoozed) {
                return Ok(None);
            }
            may_manage(current, actor)?;
            let mut next = bumped(current);
            next.status = ConversationStatus::Open;
            next.snoozed_until = None;
            // A resolved conversation's owner takes it back (they knew it; no capacity check: it was
            // theirs); without an owner it is routed.
            let take = match (&owner, resolved) {
                (Some(a), true) => {
                    let weight = weight_of(current, weights);
                    next.assigned_weight = weight;
                    Some(Take { agent: a.clone(), weight, capacity: None, at: now })
                }
                _ => None,
            };
            if owner.is_none() && current.waiting_since.is_none() {
                next.waiting_since = Some(now);
            }
            Plan {
                next,
                take,
                change: ConversationChange::Reopened,
                action: "reopened",
                details: serde_json::json!({ "from": current.status.as_str() }),
                drain: owner.is_none(),
                load: None,
            }
        }
        Command::Snooze { until } => {
            if resolved {
                return Err(Refusal::Conflict("the conversation is resolved: nothing to snooze".into()));
            }
            if *until <= now || *until > now + MAX_SNOOZE {
                return Err(Refusal::Invalid("snooze until a time in the next 90 days".into()));
            }
            may_manage(current, actor)?;
            if current.status == ConversationStatus::Snoozed && current.snoozed_until == Some(*until) {
                return Ok(None);
            }
            let mut next = bumped(current);
            next.status = ConversationStatus::Snoozed;
            next.snoozed_until = Some(*until);
            Plan {
                next,
                take: None,
                change: ConversationChange::Snoozed,
                action: "snoozed",
                details: serde_json::json!({ "until": until.format(&time::format_description::well_known::Rfc3339).ok() }),
                drain: false,
                load: None,
            }
        }
        Command::SetPriority(p) => {
            if current.priority == *p {
                return Ok(None);
            }
            let mut next = bumped(current);
            next.priority = *p;
            Plan {
                next,
                take: None,
                change: ConversationChange::Updated,
                action: "priority_changed",
                details: serde_json::json!({ "from": current.priority, "to": p }),
                drain: false,
                load: None,
            }
        }
        Command::Tag { add, remove } => {
            let add = add.iter().map(|t| normalize_tag(t)).collect::<Result<BTreeSet<_>, _>>()?;
            let remove = remove.iter().map(|t| normalize_tag(t)).collect::<Result<BTreeSet<_>, _>>()?;
            if let Some(both) = add.intersection(&remove).next() {
                return Err(Refusal::Invalid(format!("tag {both:?} is both added and removed")));
            }
            let tags: BTreeSet<String> =
                current.tags.iter().filter(|t| !remove.contains(*t)).chain(&add).cloned().collect();
            if tags.len() > MAX_TAGS {
                return Err(Refusal::Invalid(format!("a conversation has at most {MAX_TAGS} tags")));
            }
            if tags == current.tags {
                return Ok(None);
            }
            let mut next = bumped(current);
            next.tags = tags;
            Plan {
                next,
                take: None,
                change: ConversationChange::Updated,
                action: "tags_changed",
                details: serde_json::json!({ "added": add, "removed": remove }),
                drain: false,
                load: None,
            }
        }
    };
    Ok(Some(plan))
}

/// An internal note: written by an agent on a conversation, seen only by the workspace's agents.
/// Notes are not messages: nothing that sends to customers can ever read them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Note {
    /// A ULID: notes sort by time.
    pub id: String,
    pub workspace: crate::ids::WorkspaceId,
    pub conversation_id: crate::ids::ConversationId,
    pub author: AgentId,
    pub text: String,
    /// Agents named with `@agent` in the text.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub mentions: BTreeSet<AgentId>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Note {
    pub fn new(
        workspace: crate::ids::WorkspaceId,
        conversation_id: crate::ids::ConversationId,
        author: AgentId,
        text: &str,
        now: OffsetDateTime,
    ) -> Result<Note, Refusal> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > MAX_NOTE_CHARS {
            return Err(Refusal::Invalid(format!("a note is 1-{MAX_NOTE_CHARS} characters")));
        }
        let mentions = text
            .split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | ';' | '!' | '?' | '(' | ')'))
            .filter_map(|w| w.strip_prefix('@'))
            .filter_map(|w| AgentId::parse(w).ok())
            .collect();
        Ok(Note {
            id: crate::ids::ordered_ulid(now).to_string(),
            workspace,
            conversation_id,
            author,
            text: text.to_owned(),
            mentions,
            created_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ContactId, ConversationId, WorkspaceId};
    use crate::model::{Channel, Route};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-22 10:00 UTC);

    fn agent(id: &str) -> AgentId {
        AgentId::parse(id).unwrap()
    }

    fn conv(owner: Option<&str>, status: ConversationStatus) -> Conversation {
        Conversation {
            id: ConversationId::new(),
            workspace: WorkspaceId::parse("acme").unwrap(),
            contact_id: ContactId::new(),
            status,
            assignee: owner.map(agent),
            priority: Priority::Normal,
            last_inbound: Some(Route {
                channel: Channel::Webchat,
                contact_address: "v1".into(),
                our_address: "site".into(),
                contact_country: None,
            }),
            last_inbound_at: Some(NOW),
            channels: Default::default(),
            last_activity_at: NOW,
            created_at: NOW,
            unread_count: 0,
            message_count: 1,
            team: None,
            skills: BTreeSet::new(),
            tags: BTreeSet::new(),
            previous_owner: None,
            assigned_weight: if owner.is_some() { 150 } else { 0 },
            waiting_since: None,
            snoozed_until: None,
            moving: None,
            merged_into: None,
            split_from: None,
            splits: vec![],
            sla: Default::default(),
            csat: None,
            pending_survey: None,
            version: 3,
        }
    }

    fn state(id: &str, presence: Presence, load: u32) -> AgentState {
        AgentState {
            id: agent(id),
            presence,
            teams: BTreeSet::new(),
            skills: BTreeSet::new(),
            capacity: 300,
            load,
            last_assigned_at: None,
        }
    }

    fn by(id: &str, role: Role) -> Actor {
        Actor { agent: agent(id), role }
    }

    fn assign(to: &str) -> Command {
        Command::Assign { to: agent(to), note: Some("VIP, was promised a refund".into()) }
    }

    #[test]
    fn an_agent_claims_unowned_work_within_the_targets_capacity() {
        let c = conv(None, ConversationStatus::Open);
        let bob = state("bob", Presence::Online, 100);
        let p =
            plan(&c, &assign("bob"), &by("alice", Role::Agent), Some(&bob), &Weights::default(), NOW).unwrap().unwrap();
        assert_eq!(p.next.assignee, Some(agent("bob")));
        assert_eq!(p.next.assigned_weight, 150, "live chat weighs 1.5");
        assert_eq!(p.take.as_ref().unwrap().capacity, Some(300), "checked against the capacity read");
        assert_eq!(p.action, "assigned");
        assert_eq!(p.next.version, 4);
        assert!(!p.drain);

        let full = state("bob", Presence::Online, 200);
        let e = plan(&c, &assign("bob"), &by("alice", Role::Agent), Some(&full), &Weights::default(), NOW);
        assert!(matches!(e, Err(Refusal::Conflict(m)) if m.contains("no room")));
        let away = state("bob", Presence::Away, 0);
        let e = plan(&c, &assign("bob"), &by("alice", Role::Agent), Some(&away), &Weights::default(), NOW);
        assert!(matches!(e, Err(Refusal::Conflict(m)) if m.contains("not online")));
        let e = plan(&c, &assign("zed"), &by("alice", Role::Agent), None, &Weights::default(), NOW);
        assert!(matches!(e, Err(Refusal::Invalid(_))));
    }

    #[test]
    fn only_the_owner_or_a_supervisor_moves_owned_work_and_supervisors_may_exceed_capacity() {
        let c = conv(Some("alice"), ConversationStatus::Open);
        let full = state("bob", Presence::Away, 300);
        let e = plan(&c, &assign("bob"), &by("carol", Role::Agent), Some(&full), &Weights::default(), NOW);
        assert!(matches!(e, Err(Refusal::Forbidden(_))));
        let e = plan(&c, &Command::Resolve, &by("carol", Role::Agent), None, &Weights::default(), NOW);
        assert!(matches!(e, Err(Refusal::Forbidden(_))));
        let p = plan(&c, &assign("bob"), &by("sam", Role::Supervisor), Some(&full), &Weights::default(), NOW)
            .unwrap()
            .unwrap();
        assert_eq!(p.action, "transferred");
        assert_eq!(p.take.unwrap().capacity, None);
        assert!(p.drain, "alice's share comes back");
        assert_eq!(p.details["from"], "alice");
        assert_eq!(p.details["note"], "VIP, was promised a refund");
        let u = plan(&c, &Command::Unassign { note: None }, &by("alice", Role::Agent), None, &Weights::default(), NOW)
            .unwrap()
            .unwrap();
        assert_eq!((u.next.assignee.clone(), u.next.assigned_weight), (None, 0));
        assert_eq!(u.next.waiting_since, Some(NOW), "straight back into the queue, in the same write");
        let e = plan(&c, &Command::Resolve, &by("fin", Role::Finance), None, &Weights::default(), NOW);
        assert!(matches!(e, Err(Refusal::Forbidden(_))));
    }

    #[test]
    fn repeated_commands_change_nothing() {
        let c = conv(Some("alice"), ConversationStatus::Open);
        let alice = state("alice", Presence::Online, 150);
        let me = by("alice", Role::Agent);
        let w = Weights::default();
        assert_eq!(plan(&c, &assign("alice"), &me, Some(&alice), &w, NOW), Ok(None));
        assert_eq!(plan(&c, &Command::Reopen, &me, None, &w, NOW), Ok(None));
        assert_eq!(plan(&c, &Command::SetPriority(Priority::Normal), &me, None, &w, NOW), Ok(None));
        let resolved = plan(&c, &Command::Resolve, &me, None, &w, NOW).unwrap().unwrap().next;
        assert_eq!(plan(&resolved, &Command::Resolve, &me, None, &w, NOW), Ok(None));
        let unowned = conv(None, ConversationStatus::Open);
        assert_eq!(plan(&unowned, &Command::Unassign { note: None }, &me, None, &w, NOW), Ok(None));
    }

    #[test]
    fn resolve_frees_the_share_and_reopen_gives_it_back_to_the_owner() {
        let c = conv(Some("alice"), ConversationStatus::Snoozed);
        let me = by("alice", Role::Agent);
        let w = Weights::default();
        let p = plan(&c, &Command::Resolve, &me, None, &w, NOW).unwrap().unwrap();
        assert_eq!(p.next.status, ConversationStatus::Resolved);
        assert_eq!(p.next.assignee, Some(agent("alice")), "who handled it is kept for reports");
        assert_eq!(p.next.assigned_weight, 0);
        assert!(p.drain);
        let r = plan(&p.next, &Command::Reopen, &me, None, &w, NOW).unwrap().unwrap();
        assert_eq!(r.next.status, ConversationStatus::Open);
        assert_eq!(r.take.unwrap().weight, 150);
        assert_eq!(r.next.assigned_weight, 150);
        assert!(!r.drain && r.next.waiting_since.is_none());
        let unowned = conv(None, ConversationStatus::Resolved);
        let r = plan(&unowned, &Command::Reopen, &me, None, &w, NOW).unwrap().unwrap();
        assert!(r.drain && r.take.is_none());
        assert_eq!(r.next.waiting_since, Some(NOW), "an unowned reopened conversation waits for routing");
        let e = plan(&p.next, &assign("bob"), &me, Some(&state("bob", Presence::Online, 0)), &w, NOW);
        assert!(matches!(e, Err(Refusal::Conflict(_))));
    }

    #[test]
    fn snooze_wants_a_future_time_within_ninety_days() {
        let c = conv(Some("alice"), ConversationStatus::Open);
        let me = by("alice", Role::Agent);
        let w = Weights::default();
        for bad in [NOW, NOW - time::Duration::minutes(1), NOW + time::Duration::days(91)] {
            let e = plan(&c, &Command::Snooze { until: bad }, &me, None, &w, NOW);
            assert!(matches!(e, Err(Refusal::Invalid(_))), "{bad}");
        }
        let until = NOW + time::Duration::hours(4);
        let p = plan(&c, &Command::Snooze { until }, &me, None, &w, NOW).unwrap().unwrap();
        assert_eq!((p.next.status, p.next.snoozed_until), (ConversationStatus::Snoozed, Some(until)));
        assert_eq!(p.next.assigned_weight, 150, "a snoozed conversation is still its owner's");
        assert_eq!(plan(&p.next, &Command::Snooze { until }, &me, None, &w, NOW), Ok(None));
        let woke = plan(&p.next, &Command::Reopen, &me, None, &w, NOW).unwrap().unwrap();
        assert_eq!((woke.next.status, woke.next.snoozed_until, woke.take), (ConversationStatus::Open, None, None));
    }

    #[test]
    fn tags_are_normalised_bounded_and_anyone_may_set_them() {
        let c = conv(Some("alice"), ConversationStatus::Open);
        let carol = by("carol", Role::Agent);
        let w = Weights::default();
        let add = ["  Refund ", "vip"].map(String::from).into();
        let p = plan(&c, &Command::Tag { add, remove: BTreeSet::new() }, &carol, None, &w, NOW).unwrap().unwrap();
        assert_eq!(p.next.tags, ["refund", "vip"].map(String::from).into());
        let remove = ["VIP".to_owned()].into();
        let q = plan(&p.next, &Command::Tag { add: BTreeSet::new(), remove }, &carol, None, &w, NOW).unwrap().unwrap();
        assert_eq!(q.next.tags, ["refund".to_owned()].into());
        for bad in ["", "a#b", &"x".repeat(51)] {
            let add = [bad.to_owned()].into();
            let e = plan(&c, &Command::Tag { add, remove: BTreeSet::new() }, &carol, None, &w, NOW);
            assert!(matches!(e, Err(Refusal::Invalid(_))), "{bad:?}");
        }
        let many = (0..31).map(|i| format!("t{i}")).collect();
        let e = plan(&c, &Command::Tag { add: many, remove: BTreeSet::new() }, &carol, None, &w, NOW);
        assert!(matches!(e, Err(Refusal::Invalid(_))));
    }

    #[test]
    fn notes_are_bounded_and_know_their_mentions() {
        let ws = WorkspaceId::parse("acme").unwrap();
        let id = ConversationId::new();
        let n = Note::new(ws.clone(), id, agent("alice"), " @bob can you check this? cc @carol.", NOW).unwrap();
        assert_eq!(n.mentions, [agent("bob"), agent("carol")].into());
        assert!(Note::new(ws.clone(), id, agent("alice"), "   ", NOW).is_err());
        assert!(Note::new(ws, id, agent("alice"), &"x".repeat(5001), NOW).is_err());
    }
}
