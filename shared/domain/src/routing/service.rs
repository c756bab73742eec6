//! Applying the routing brain: the one place that reads the state the policy needs, writes its
//! decision as one conditional transaction and announces it. Every trigger goes through here: a new
//! conversation (the inbound processor), an agent coming online (presence), capacity freed (resolve,
//! unassign, transfer), a rule change.

use time::OffsetDateTime;

use super::{route as decide, Decision, Reason, RoutingRules, WaitReason, Work};
use crate::audit::AuditEntry;
use crate::events::{ConversationChange, Notification};
use crate::ids::{AgentId, ConversationId, WorkspaceId};
use crate::inbox::{Actor, Command, Plan, Refusal};
use crate::model::Conversation;
use crate::ports::{
    AgentStore, ConversationReader, InboundStore, NotificationQueue, QueueChange, QueueError, RoutingCommit,
    RoutingStore, StoreError, Take,
};

#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl RoutingError {
    pub fn is_retryable(&self) -> bool {
        match self {
            RoutingError::Store(e) => e.is_retryable(),
            RoutingError::Queue(QueueError::Unavailable(_)) => true,
            RoutingError::Queue(QueueError::Rejected(_)) => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Routed {
    Assigned {
        agent: AgentId,
        reason: Reason,
    },
    Waiting(WaitReason),
    /// Already owned, already waiting, resolved, or gone: nothing to do.
    Unchanged,
}

/// Everything routing reads, as one bound.
pub trait RoutingPorts: ConversationReader + AgentStore + RoutingStore {}
impl<T: ConversationReader + AgentStore + RoutingStore + ?Sized> RoutingPorts for T {}

const ATTEMPTS: usize = 5;

/// The announcement of a change to `c` by `actor` (`previous`: the owner it moved away from).
pub(crate) fn changed(
    c: &Conversation,
    change: ConversationChange,
    actor: AgentId,
    previous: Option<AgentId>,
    load: Option<crate::events::AgentLoad>,
) -> Notification {
    Notification::ConversationChanged {
        workspace: c.workspace.clone(),
        conversation_id: c.id,
        change,
        actor,
        assignee: c.assignee.clone(),
        previous_assignee: previous,
        version: c.version,
        load,
    }
}

/// The agent's load once they take `weight` more.
fn load_after(agent: &super::AgentState, weight: u32) -> crate::events::AgentLoad {
    crate::events::AgentLoad { load: agent.load.saturating_add(weight), capacity: agent.capacity }
}

/// The conversation as owned by `agent` (or nobody), with the capacity bookkeeping that goes with it.
pub fn reassigned(c: &Conversation, agent: Option<(&AgentId, u32)>) -> Conversation {
    let mut next = c.clone();
    next.assignee = agent.map(|(a, _)| a.clone());
    next.assigned_weight = agent.map_or(0, |(_, w)| w);
    next.waiting_since = None;
    next.version += 1;
    next
}

/// The routing brain's assignment of `c` to `agent`: the agent's channel-weighted share taken
/// under the capacity the router read, the audit entry (by `system`, with `why`) and the queue change.
fn routed_assignment(
    c: &Conversation,
    work: &Work,
    agent: &super::AgentState,
    weights: &super::Weights,
    why: serde_json::Value,
    queue: QueueChange,
    now: OffsetDateTime,
) -> RoutingCommit {
    let weight = weights.of(work.channel);
    RoutingCommit {
        conversation: reassigned(c, Some((&agent.id, weight))),
        expected_version: c.version,
        take: Some(Take { agent: agent.id.clone(), weight, capacity: Some(agent.capacity), at: now }),
        give_back: None,
        queue,
        audit: Some(AuditEntry::new(c.workspace.clone(), Some(c.id), AuditEntry::system(), "assigned", why, now)),
    }
}

/// Routes one conversation that has no owner and is not yet waiting. Idempotent: called again (a
/// redelivered message) it finds the conversation owned or waiting and changes nothing.
pub async fn route_conversation<S: RoutingPorts + ?Sized>(
    store: &S,
    notify: &dyn NotificationQueue,
    ws: &WorkspaceId,
    id: ConversationId,
    now: OffsetDateTime,
) -> Result<Routed, RoutingError> {
    route_known(store, notify, ws, id, Known::default(), now).await
}

/// What the caller already holds of a conversation it just wrote, so routing does not read it
/// again: the conversation as committed and the rules it was classified with. Used in the first
/// round only; a conflict re-reads everything.
#[derive(Default)]
pub struct Known {
    pub conversation: Option<Conversation>,
    pub rules: Option<RoutingRules>,
}

/// [`route_conversation`], starting from what the caller knows.
pub async fn route_known<S: RoutingPorts + ?Sized>(
    store: &S,
    notify: &dyn NotificationQueue,
    ws: &WorkspaceId,
    id: ConversationId,
    mut known: Known,
    now: OffsetDateTime,
) -> Result<Routed, RoutingError> {
    for attempt in 0..ATTEMPTS {
        let c = match known.conversation.take().filter(|c| c.id == id) {
            Some(c) => c,
            None => match store.conversation(ws, id).await? {
                Some(c) => c,
                None => return Ok(Routed::Unchanged),
            },
        };
        if !c.status.is_unresolved() || c.assignee.is_some() || c.waiting_since.is_some() {
            return Ok(Routed::Unchanged);
        }
        let Some(work) = Work::of(&c, now) else { return Ok(Routed::Unchanged) };
        let rules = match known.rules.take() {
            Some(r) => r,
            None => store.routing_rules(ws).await?,
        };
        let teams = store.teams(ws).await?;
        let within = rules.within_hours(&teams, &work, now);
        let (agents, decision) = if within {
            sampled(store, ws, &work, &rules, super::sample_seed(id, attempt)).await?
        } else {
            (vec![], decide(&work, &[], &rules.weights, false))
        };
        let system = AuditEntry::system();
        let (commit, routed) = match decision {
            Decision::Assign { agent, reason } => {
                // The policy only names agents it was given.
                let Some(state) = agents.iter().find(|a| a.id == agent) else { continue };
                let why = serde_json::json!({ "agent": agent, "reason": reason });
                let commit = routed_assignment(&c, &work, state, &rules.weights, why, QueueChange::Keep, now);
                (commit, Routed::Assigned { agent, reason })
            }
            Decision::Wait(reason) => {
                let mut next = c.clone();
                next.waiting_since = Some(now);
                next.version += 1;
                let queued = Work { waiting_since: now, ..work };
                let audit = AuditEntry::new(
                    ws.clone(),
                    Some(id),
                    system,
                    "queued",
                    serde_json::json!({ "reason": reason }),
                    now,
                );
                let commit = RoutingCommit {
                    conversation: next,
                    expected_version: c.version,
                    take: None,
                    give_back: None,
                    queue: QueueChange::Add(queued),
                    audit: Some(audit),
                };
                (commit, Routed::Waiting(reason))
            }
        };
        let announced = commit.conversation.clone();
        let load =
            commit.take.as_ref().and_then(|t| agents.iter().find(|a| a.id == t.agent).map(|a| load_after(a, t.weight)));
        match store.commit_routing(commit).await {
            Ok(()) => {
                let change = match routed {
                    Routed::Assigned { .. } => ConversationChange::Assigned,
                    _ => ConversationChange::Queued,
                };
                notify.publish(&changed(&announced, change, AuditEntry::system(), None, load)).await?;
                return Ok(routed);
            }
            // The conversation moved on or the agent lost the room: read again and decide again.
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// The routing decision for `work`, asking the roster's candidates for their current state in
/// rounds (`super::sample_rounds`) until one can take it or every one has been asked; with the
/// states read. Reads the roster (profiles) once and only the asked agents' states.
async fn sampled<S: RoutingPorts + ?Sized>(
    store: &S,
    ws: &WorkspaceId,
    work: &Work,
    rules: &RoutingRules,
    seed: u64,
) -> Result<(Vec<super::AgentState>, Decision), StoreError> {
    let roster = store.roster(ws).await?;
    let asked = super::candidates(work, &roster, &rules.weights, seed);
    let mut read = Vec::new();
    for round in super::sample_rounds(&asked) {
        read.extend(store.agent_states(ws, round).await?);
        let decision = decide(work, &read, &rules.weights, true);
        if matches!(decision, Decision::Assign { .. }) {
            return Ok((read, decision));
        }
    }
    let decision = decide(work, &read, &rules.weights, true);
    Ok((read, decision))
}

/// Assigns waiting conversations, in queue order, to whoever can take them now (an agent came
/// online, capacity was freed, rules changed). Work a concurrent drain already took is skipped.
pub async fn drain_queue<S: RoutingPorts + ?Sized>(
    store: &S,
    notify: &dyn NotificationQueue,
    ws: &WorkspaceId,
    now: OffsetDateTime,
) -> Result<Vec<(ConversationId, AgentId)>, RoutingError> {
    let queue = store.waiting(ws).await?;
    if queue.is_empty() {
        return Ok(vec![]);
    }
    let rules = store.routing_rules(ws).await?;
    let teams = store.teams(ws).await?;
    let agents = store.agents(ws).await?;
    let (plan, _) = super::drain(&queue, &agents, &rules.weights, |w| rules.within_hours(&teams, w, now), now);
    let mut done = vec![];
    for (id, agent) in plan {
        let Some(c) = store.conversation(ws, id).await? else { continue };
        if c.assignee.is_some() || !c.status.is_unresolved() {
            // Someone took it by hand: it no longer waits.
            let mut stale = c.clone();
            stale.waiting_since = None;
            stale.version += 1;
            let commit = RoutingCommit {
                conversation: stale,
                expected_version: c.version,
                take: None,
                give_back: None,
                queue: QueueChange::Remove,
                audit: None,
            };
            let _ = store.commit_routing(commit).await;
            continue;
        }
        let Some(work) = Work::of(&c, now) else { continue };
        let Some(state) = agents.iter().find(|a| a.id == agent) else { continue };
        let why = serde_json::json!({ "agent": agent, "reason": "dequeued" });
        let commit = routed_assignment(&c, &work, state, &rules.weights, why, QueueChange::Remove, now);
        let next = commit.conversation.clone();
        let load = commit.take.as_ref().map(|t| load_after(state, t.weight));
        match store.commit_routing(commit).await {
            Ok(()) => {
                let event = changed(&next, ConversationChange::Assigned, AuditEntry::system(), None, load);
                notify.publish(&event).await?;
                done.push((id, agent));
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

/// Writes an inbox plan with its capacity bookkeeping: the old owner's share is given back
/// exactly, the new owner's taken, the waiting queue follows `waiting_since` (and the priority it
/// is ordered by). Returns the stored conversation.
pub async fn commit_change<S: RoutingPorts + ?Sized>(
    store: &S,
    notify: &dyn NotificationQueue,
    current: &Conversation,
    plan: Plan,
    audit: AuditEntry,
) -> Result<Conversation, RoutingError> {
    let next = plan.next;
    let previous = current.assignee.clone();
    let owner_changed = previous != next.assignee || !next.status.is_unresolved();
    let give_back = match (&previous, owner_changed) {
        (Some(a), true) if current.assigned_weight > 0 => Some((a.clone(), current.assigned_weight)),
        _ => None,
    };
    let queue = match (current.waiting_since, next.waiting_since) {
        (Some(_), None) => QueueChange::Remove,
        (None, Some(_)) => Work::of(&next, audit.at).map_or(QueueChange::Keep, QueueChange::Add),
        (Some(_), Some(_)) if next.priority != current.priority => {
            Work::of(&next, audit.at).map_or(QueueChange::Keep, QueueChange::Add)
        }
        _ => QueueChange::Keep,
    };
    let actor = audit.actor.clone();
    let commit = RoutingCommit {
        conversation: next.clone(),
        expected_version: current.version,
        take: plan.take,
        give_back,
        queue,
        audit: Some(audit),
    };
    store.commit_routing(commit).await?;
    let prev = if previous != next.assignee { previous } else { None };
    notify.publish(&changed(&next, plan.change, actor, prev, plan.load)).await?;
    Ok(next)
}

#[derive(Debug, thiserror::Error)]
pub enum ActError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("no conversation {0}")]
    NotFound(ConversationId),
    #[error(transparent)]
    Routing(#[from] RoutingError),
}

impl From<StoreError> for ActError {
    fn from(e: StoreError) -> Self {
        ActError::Routing(e.into())
    }
}

/// What an inbox action did.
#[derive(Clone, Debug, PartialEq)]
pub struct Acted {
    /// The conversation as stored afterwards (after any routing the action set off).
    pub conversation: Conversation,
    /// False when it was already so: a retried request changes nothing.
    pub changed: bool,
    /// Waiting conversations the freed capacity (or the requeued conversation) went to.
    pub assigned: Vec<(ConversationId, AgentId)>,
}

/// Applies one inbox command: reads, plans (permissions and capacity), writes atomically, announces,
/// and lets waiting work flow into freed capacity. Retries when a concurrent write got there first.
pub async fn act<S: RoutingPorts + InboundStore + ?Sized>(
    store: &S,
    notify: &dyn NotificationQueue,
    ws: &WorkspaceId,
    id: ConversationId,
    actor: &Actor,
    cmd: &Command,
    now: OffsetDateTime,
) -> Result<Acted, ActError> {
    for _ in 0..ATTEMPTS {
        let c = store.conversation(ws, id).await?.ok_or(ActError::NotFound(id))?;
        let rules = store.routing_rules(ws).await?;
        let target = match cmd {
            Command::Assign { to, .. } => store.agent_states(ws, std::slice::from_ref(to)).await?.into_iter().next(),
            _ => None,
        };
        let Some(mut plan) = crate::inbox::plan(&c, cmd, actor, target.as_ref(), &rules.weights, now)? else {
            return Ok(Acted { conversation: c, changed: false, assigned: vec![] });
        };
        if plan.next.status != c.status {
            // Resolved stops the service-level clocks, snoozed pauses them, reopened resumes them
            // (the caller starts the resumed clocks' timers).
            let setup = store.sla_setup(ws).await?;
            setup.clocks_for(&plan.next).status_changed(&mut plan.next, now);
        }
        if plan.next.status.is_unresolved() && !c.status.is_unresolved() {
            reopenable(store, &c).await?;
        }
        let drain = plan.drain;
        let audit = AuditEntry::new(ws.clone(), Some(id), actor.agent.clone(), plan.action, plan.details.clone(), now);
        match commit_change(store, notify, &c, plan, audit).await {
            Ok(next) => {
                if !drain {
                    return Ok(Acted { conversation: next, changed: true, assigned: vec![] });
                }
                // The action is stored and announced; the drain is the queue's business and runs
                // again on the next presence change or freed capacity if it fails here.
                let assigned = match drain_queue(store, notify, ws, now).await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "drain after an inbox action failed");
                        vec![]
                    }
                };
                let conversation = match assigned.iter().any(|(c, _)| *c == id) {
                    true => store.conversation(ws, id).await?.unwrap_or(next),
                    false => next,
                };
                return Ok(Acted { conversation, changed: true, assigned });
            }
            Err(RoutingError::Store(StoreError::Conflict)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ActError::Routing(StoreError::Conflict.into()))
}

/// A resolved conversation comes back only while it is still its contact's latest thread: after a
/// newer one started, new messages go there and reopening this one would split the customer.
async fn reopenable<S: InboundStore + ConversationReader + ?Sized>(
    store: &S,
    c: &Conversation,
) -> Result<(), ActError> {
    let Some(contact) = store.contact(&c.workspace, c.contact_id).await? else { return Ok(()) };
    match store.current_conversation(&c.workspace, &contact).await? {
        Some(current) if current.id != c.id => Err(Refusal::Conflict(format!(
            "the contact has a newer conversation {}: work there (or merge this one into it)",
            current.id
        ))
        .into()),
        _ => Ok(()),
    }
}

/// Sets an agent's presence and announces it; an agent coming online takes waiting work at once.
/// Returns the conversations assigned to anyone by the drain.
pub async fn set_presence<S: RoutingPorts + ?Sized>(
    store: &S,
    notify: &dyn NotificationQueue,
    ws: &WorkspaceId,
    agent: &AgentId,
    presence: super::Presence,
    now: OffsetDateTime,
) -> Result<Vec<(ConversationId, AgentId)>, RoutingError> {
    let rules = store.routing_rules(ws).await?;
    let set = store.set_presence(ws, agent, presence, rules.default_capacity, now).await?;
    let event = Notification::PresenceChanged {
        workspace: ws.clone(),
        agent: agent.clone(),
        presence,
        id: ulid::Ulid::new().to_string(),
        online: set.online_since.map(|since| crate::events::OnlinePeriod { since, until: now }),
    };
    notify.publish(&event).await?;
    if presence == super::Presence::Online {
        return drain_queue(store, notify, ws, now).await;
    }
    Ok(vec![])
}
