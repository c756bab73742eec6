//! Agents' WebSocket connections and who sees which event: the audience policy as a pure function,
//! so the notifier only fetches state and posts.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::events::{Activity, Notification};
use crate::ids::{AgentId, ConnectionId, ConversationId, WorkspaceId};
use crate::model::{Conversation, Message, Role};
use crate::routing::AgentState;

/// API Gateway closes a WebSocket after two hours whatever happens...
pub const MAX_CONNECTION_AGE: Duration = Duration::hours(2);
/// ...and after ten minutes without a frame; clients send a heartbeat well within that.
pub const IDLE_TIMEOUT: Duration = Duration::minutes(10);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Connection {
    pub id: ConnectionId,
    pub workspace: WorkspaceId,
    pub agent: AgentId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub connected_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// The conversation this tab shows (seed 001's soft lock: others see it, nobody is locked out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewing: Option<ConversationId>,
    /// Conversations this tab follows beyond what its role and assignments show it.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub subscriptions: BTreeSet<ConversationId>,
    /// When the token it opened with expires: the socket ends then (the agent reconnects with a
    /// fresh token, which also brings any change of role).
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<OffsetDateTime>,
}

impl Connection {
    /// When it ends at the latest: API Gateway's limits or its token's expiry. The item's TTL.
    pub fn expires_at(&self) -> OffsetDateTime {
        let gateway = (self.connected_at + MAX_CONNECTION_AGE).min(self.last_seen_at + IDLE_TIMEOUT);
        self.token_expires_at.map_or(gateway, |t| gateway.min(t))
    }
    pub fn is_stale(&self, now: OffsetDateTime) -> bool {
        now >= self.expires_at()
    }
}

/// The connections that should receive `event`. `conversation` is the event's conversation as
/// stored now (for its assignee and team); `agents` are the workspace's routing profiles (for teams).
///
/// - Only connections of the event's workspace, never stale ones, never the finance role's
///   (no inbox rights) except for budget alerts.
/// - Conversation events: supervisors and admins; the assignee (and, for a change of owner, the
///   previous one); for unassigned work, the agents of its team (everyone without a team); and
///   whoever views or subscribes to it. Typing and viewing skip the agent doing it.
/// - Presence: everyone with inbox rights. Budget alerts: finance, supervisors and admins. A
///   disabled webhook endpoint: supervisors and admins.
pub fn audience(
    event: &Notification,
    conversation: Option<&Conversation>,
    connections: &[Connection],
    agents: &[AgentState],
    now: OffsetDateTime,
) -> Vec<ConnectionId> {
    let ws = event.workspace();
    let live = connections.iter().filter(|c| &c.workspace == ws && !c.is_stale(now));
    let sees = |c: &Connection| -> bool {
        match event {
            Notification::BudgetThresholdReached { .. } => c.role == Role::Finance || c.role.oversees(),
            Notification::WebhookEndpointDisabled { .. } => c.role.oversees(),
            Notification::PresenceChanged { .. } => c.role != Role::Finance,
            _ => {
                if c.role == Role::Finance {
                    return false;
                }
                let Some(conv_id) = event.conversation() else { return false };
                if let Notification::AgentActivity { agent, .. } = event {
                    if &c.agent == agent {
                        return false;
                    }
                }
                if c.role.oversees() || c.viewing == Some(conv_id) || c.subscriptions.contains(&conv_id) {
                    return true;
                }
                if let Notification::ConversationChanged { previous_assignee: Some(prev), .. } = event {
                    if prev == &c.agent {
                        return true;
                    }
                }
                if let Notification::NoteAdded { mentions, .. } = event {
                    if mentions.contains(&c.agent) {
                        return true;
                    }
                }
                match conversation {
                    Some(conv) => match &conv.assignee {
                        Some(a) => a == &c.agent,
                        None => conv
                            .team
                            .as_ref()
                            .is_none_or(|t| agents.iter().any(|a| a.id == c.agent && a.teams.contains(t))),
                    },
                    None => false,
                }
            }
        }
    };
    live.filter(|c| sees(c)).map(|c| c.id.clone()).collect()
}

/// A list of connections the store keeps ready (`ports::ConnectionStore`): the audience of an
/// event is found in a few of them, so the notifier reads those instead of every connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reach {
    /// Every connection of the workspace.
    Everyone,
    /// Supervisors' and admins' connections.
    Overseers,
    /// One agent's connections.
    Agent(AgentId),
    /// The connections viewing or following a conversation.
    Watching(ConversationId),
}

impl Reach {
    /// Whether `c` is in this list (what each store's list must hold).
    pub fn holds(&self, c: &Connection) -> bool {
        match self {
            Reach::Everyone => true,
            Reach::Overseers => c.role.oversees(),
            Reach::Agent(a) => &c.agent == a,
            Reach::Watching(conv) => c.viewing == Some(*conv) || c.subscriptions.contains(conv),
        }
    }
}

/// The lists that together hold every connection [`audience`] can choose for `event` (and
/// `conversation` as stored now). Assigned work is found through its owner, the overseers and its
/// watchers; only what every agent may see (unassigned work, presence, budget alerts) needs the
/// whole workspace.
pub fn reach(event: &Notification, conversation: Option<&Conversation>) -> Vec<Reach> {
    match event {
        Notification::BudgetThresholdReached { .. } | Notification::PresenceChanged { .. } => vec![Reach::Everyone],
        Notification::WebhookEndpointDisabled { .. } => vec![Reach::Overseers],
        _ => {
            let Some(conv) = event.conversation() else { return vec![] };
            if conversation.is_some_and(|c| c.assignee.is_none()) {
                return vec![Reach::Everyone];
            }
            let mut out = vec![Reach::Overseers, Reach::Watching(conv)];
            out.extend(conversation.and_then(|c| c.assignee.clone()).map(Reach::Agent));
            if let Notification::ConversationChanged { previous_assignee: Some(prev), .. } = event {
                out.push(Reach::Agent(prev.clone()));
            }
            if let Notification::NoteAdded { mentions, .. } = event {
                out.extend(mentions.iter().cloned().map(Reach::Agent));
            }
            out.sort();
            out.dedup();
            out
        }
    }
}

/// What a socket receives: the event, and the state it refers to so the screen updates without a
/// second request.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AgentPush)]
pub struct Push<'a> {
    pub event: &'a Notification,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation: Option<&'a Conversation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a Message>,
}

/// What an agent's socket may send (API Gateway routes on `action`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientAction {
    Presence {
        status: crate::routing::Presence,
    },
    Heartbeat {},
    Typing {
        conversation_id: ConversationId,
        #[serde(default = "yes")]
        typing: bool,
    },
    /// `conversation_id: null` stops viewing.
    Viewing {
        conversation_id: Option<ConversationId>,
    },
    Subscribe {
        conversation_id: ConversationId,
    },
    Unsubscribe {
        conversation_id: ConversationId,
    },
}

fn yes() -> bool {
    true
}

impl ClientAction {
    pub fn activity(&self) -> Option<(ConversationId, Activity)> {
        match self {
            ClientAction::Typing { conversation_id, typing } => {
                Some((*conversation_id, if *typing { Activity::Typing } else { Activity::StoppedTyping }))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ConversationChange;
    use crate::ids::TeamId;
    use crate::model::Contact;
    use crate::routing::Presence;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-21 10:00 UTC);

    fn ws(s: &str) -> WorkspaceId {
        WorkspaceId::parse(s).unwrap()
    }
    fn agent(s: &str) -> AgentId {
        AgentId::parse(s).unwrap()
    }
    fn conn(id: &str, w: &str, a: &str, role: Role) -> Connection {
        Connection {
            id: ConnectionId::parse(id).unwrap(),
            workspace: ws(w),
            agent: agent(a),
            name: None,
            role,
            connected_at: NOW - Duration::minutes(5),
            last_seen_at: NOW - Duration::minutes(1),
            viewing: None,
            subscriptions: BTreeSet::new(),
            token_expires_at: None,
        }
    }
    fn conversation(assignee: Option<&str>, team: Option<&str>) -> Conversation {
        let contact = Contact::new(
            ws("acme"),
            crate::model::Identity {
                kind: crate::model::IdentityKind::Phone,
                value: "+14155552671".into(),
                unverified: false,
            },
            None,
            NOW,
        );
        let mut c = Conversation::start(ws("acme"), &contact, NOW);
        c.assignee = assignee.map(agent);
        c.team = team.map(|t| TeamId::parse(t).unwrap());
        c
    }
    fn created(c: &Conversation) -> Notification {
        Notification::MessageCreated {
            workspace: ws("acme"),
            conversation_id: c.id,
            message_id: crate::MessageId::new(),
            direction: crate::model::Direction::Inbound,
            channel: crate::model::Channel::Sms,
            opened: false,
        }
    }
    /// Bob, online, of the billing team.
    fn billing_team() -> Vec<AgentState> {
        vec![AgentState {
            id: agent("bob"),
            presence: Presence::Online,
            teams: BTreeSet::from([TeamId::parse("billing").unwrap()]),
            skills: BTreeSet::new(),
            capacity: 500,
            load: 0,
            last_assigned_at: None,
        }]
    }
    fn ids(v: Vec<ConnectionId>) -> Vec<String> {
        let mut v: Vec<String> = v.into_iter().map(|c| c.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn assigned_work_reaches_its_owner_in_every_tab_and_supervisors_only() {
        let c = conversation(Some("ann"), None);
        let conns = vec![
            conn("ann1", "acme", "ann", Role::Agent),
            conn("ann2", "acme", "ann", Role::Agent),
            conn("bob1", "acme", "bob", Role::Agent),
            conn("sup1", "acme", "sue", Role::Supervisor),
            conn("fin1", "acme", "fay", Role::Finance),
            conn("oth1", "other", "ann", Role::Admin),
        ];
        assert_eq!(ids(audience(&created(&c), Some(&c), &conns, &[], NOW)), ["ann1", "ann2", "sup1"]);
    }

    #[test]
    fn unassigned_work_reaches_its_team_and_viewers() {
        let c = conversation(None, Some("billing"));
        let mut bob = conn("bob1", "acme", "bob", Role::Agent);
        let mut cat = conn("cat1", "acme", "cat", Role::Agent);
        let dan = conn("dan1", "acme", "dan", Role::Agent);
        cat.viewing = Some(c.id);
        bob.subscriptions.clear();
        let agents = billing_team();
        assert_eq!(ids(audience(&created(&c), Some(&c), &[bob, cat, dan.clone()], &agents, NOW)), ["bob1", "cat1"]);
        // Without a team, everyone sees unassigned work.
        let open = conversation(None, None);
        assert_eq!(ids(audience(&created(&open), Some(&open), &[dan], &agents, NOW)), ["dan1"]);
    }

    #[test]
    fn typing_skips_the_typist_and_a_transfer_tells_the_previous_owner() {
        let c = conversation(Some("bob"), None);
        let conns = vec![conn("ann1", "acme", "ann", Role::Agent), conn("bob1", "acme", "bob", Role::Agent)];
        let typing = Notification::AgentActivity {
            workspace: ws("acme"),
            conversation_id: c.id,
            agent: agent("bob"),
            name: None,
            activity: Activity::Typing,
            id: "x".into(),
        };
        assert!(audience(&typing, Some(&c), &conns, &[], NOW).is_empty());
        let moved = Notification::ConversationChanged {
            workspace: ws("acme"),
            conversation_id: c.id,
            change: ConversationChange::Assigned,
            actor: agent("sue"),
            assignee: Some(agent("bob")),
            previous_assignee: Some(agent("ann")),
            version: 3,
            load: None,
        };
        assert_eq!(ids(audience(&moved, Some(&c), &conns, &[], NOW)), ["ann1", "bob1"]);
    }

    #[test]
    fn a_note_reaches_the_owner_and_whoever_it_mentions() {
        let c = conversation(Some("bob"), None);
        let conns = vec![
            conn("ann1", "acme", "ann", Role::Agent),
            conn("bob1", "acme", "bob", Role::Agent),
            conn("cat1", "acme", "cat", Role::Agent),
            conn("fin1", "acme", "fay", Role::Finance),
        ];
        let note = Notification::NoteAdded {
            workspace: ws("acme"),
            conversation_id: c.id,
            note_id: "n1".into(),
            author: agent("ann"),
            mentions: vec![agent("cat"), agent("fay")],
        };
        assert_eq!(ids(audience(&note, Some(&c), &conns, &[], NOW)), ["bob1", "cat1"]);
    }

    #[test]
    fn stale_connections_get_nothing() {
        let c = conversation(Some("ann"), None);
        let mut idle = conn("ann1", "acme", "ann", Role::Agent);
        idle.last_seen_at = NOW - IDLE_TIMEOUT;
        let mut old = conn("ann2", "acme", "ann", Role::Agent);
        old.connected_at = NOW - MAX_CONNECTION_AGE;
        old.last_seen_at = NOW;
        assert!(audience(&created(&c), Some(&c), &[idle, old], &[], NOW).is_empty());
    }

    #[test]
    fn client_actions_parse_strictly() {
        let a: ClientAction = serde_json::from_str(r#"{"action":"presence","status":"away"}"#).unwrap();
        assert_eq!(a, ClientAction::Presence { status: Presence::Away });
        assert!(serde_json::from_str::<ClientAction>(r#"{"action":"presence","status":"asleep"}"#).is_err());
        assert!(serde_json::from_str::<ClientAction>(r#"{"action":"typing"}"#).is_err());
        let v: ClientAction = serde_json::from_str(r#"{"action":"viewing","conversation_id":null}"#).unwrap();
        assert_eq!(v, ClientAction::Viewing { conversation_id: None });
    }

    mod reach_property {
        use super::*;
        use proptest::prelude::*;

        fn any_connection() -> impl Strategy<Value = Connection> {
            let roles = prop::sample::select(vec![Role::Agent, Role::Supervisor, Role::Admin, Role::Finance]);
            (
                0..40u32,
                0..4usize,
                roles,
                prop::option::of(0..3usize),
                prop::collection::btree_set(0..3usize, 0..3),
                any::<bool>(),
            )
                .prop_map(|(n, a, role, viewing, follows, stale)| {
                    let mut c = conn(
                        &format!("c{n}"),
                        if n % 7 == 0 { "other" } else { "acme" },
                        ["ann", "bob", "cat", "dan"][a],
                        role,
                    );
                    c.viewing = viewing.map(conv_id);
                    c.subscriptions = follows.into_iter().map(conv_id).collect();
                    if stale {
                        c.last_seen_at = NOW - IDLE_TIMEOUT;
                    }
                    c
                })
        }

        /// Three conversations, the same ids in every case.
        fn conv_id(i: usize) -> ConversationId {
            ConversationId::parse(
                ["01J00000000000000000000001", "01J00000000000000000000002", "01J00000000000000000000003"][i],
            )
            .unwrap()
        }

        fn any_event() -> impl Strategy<Value = (Notification, Option<Conversation>)> {
            let who = || prop::option::of(prop::sample::select(vec!["ann", "bob", "cat", "dan"]));
            (0..6usize, 0..3usize, who(), who(), prop::option::of(prop::sample::select(vec!["billing"])), any::<bool>())
                .prop_map(|(kind, i, assignee, other, team, stored)| {
                    let mut c = conversation(assignee, team);
                    c.id = conv_id(i);
                    let event = match kind {
                        0 => created(&c),
                        1 => Notification::ConversationChanged {
                            workspace: ws("acme"),
                            conversation_id: c.id,
                            change: ConversationChange::Assigned,
                            actor: agent("sue"),
                            assignee: c.assignee.clone(),
                            previous_assignee: other.map(agent),
                            version: 2,
                            load: None,
                        },
                        2 => Notification::NoteAdded {
                            workspace: ws("acme"),
                            conversation_id: c.id,
                            note_id: "n".into(),
                            author: agent("ann"),
                            mentions: other.map(agent).into_iter().collect(),
                        },
                        3 => Notification::AgentActivity {
                            workspace: ws("acme"),
                            conversation_id: c.id,
                            agent: agent(other.unwrap_or("ann")),
                            name: None,
                            activity: Activity::Viewing,
                            id: "a".into(),
                        },
                        4 => Notification::PresenceChanged {
                            workspace: ws("acme"),
                            agent: agent("ann"),
                            presence: Presence::Away,
                            id: "p".into(),
                            online: None,
                        },
                        _ => Notification::WebhookEndpointDisabled {
                            workspace: ws("acme"),
                            endpoint_id: "e".into(),
                            url: "https://example.com/hook".into(),
                            failing_since: NOW,
                        },
                    };
                    (event, stored.then_some(c))
                })
        }

        proptest! {
            /// Reading only the lists `reach` names chooses the same connections as reading all.
            #[test]
            fn the_reached_lists_hold_the_whole_audience(
                conns in prop::collection::vec(any_connection(), 0..25),
                (event, conversation) in any_event(),
            ) {
                let agents = billing_team();
                let lists = reach(&event, conversation.as_ref());
                let read: Vec<Connection> = conns.iter().filter(|c| lists.iter().any(|l| l.holds(c))).cloned().collect();
                let all = ids(audience(&event, conversation.as_ref(), &conns, &agents, NOW));
                prop_assert_eq!(ids(audience(&event, conversation.as_ref(), &read, &agents, NOW)), all);
            }
        }
    }
}
