//! Service levels at work: a timer's stage fired (warning, then breach), checked against the
//! conversation as it is now, recorded, announced to the assignee and supervisors, and escalated by
//! the workspace's policy (raise the priority, re-route to the next best agent or to a team).
//!
//! The clocks themselves start and stop where the conversation changes — ingest (a customer
//! waits), the reply (an agent answered), the inbox actions (resolve, snooze, reopen) — by the pure
//! rules of `domain::sla`; this module only handles what a timer finds, and starting timers.

use domain::audit::AuditEntry;
use domain::events::{ConversationChange, Notification};
use domain::inbox::Plan;
use domain::model::Conversation;
use domain::ports::{NotificationQueue, StoreError};
use domain::routing::service::{commit_change, drain_queue, reassigned, RoutingError, RoutingPorts};
use domain::sla::{self, BreachAction, Fired, Stage, Timer};
use domain::timers::SlaTimers;
use time::OffsetDateTime;

use crate::Error;

/// Starts the timers of `c`'s running clocks (idempotent by name).
pub async fn start_timers(timers: &dyn SlaTimers, c: &Conversation) -> Result<usize, Error> {
    let running = sla::timers(c);
    for t in &running {
        timers.start_sla_timer(t).await.map_err(|e| Error::Unavailable(format!("SLA timer not started: {e}")))?;
    }
    Ok(running.len())
}

/// What a timer's stage did; `running` tells the state machine whether to wait for the breach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    pub fired: Fired,
    pub running: bool,
}

/// Attempts before a contended write is left to the state machine's retry.
const ATTEMPTS: u32 = 5;

/// A timer's `stage` fired at `now`.
pub async fn fire<S: RoutingPorts + ?Sized>(
    store: &S,
    notify: &dyn NotificationQueue,
    timer: &Timer,
    stage: Stage,
    now: OffsetDateTime,
) -> Result<Outcome, Error> {
    let ws = &timer.workspace;
    for attempt in 0..ATTEMPTS {
        crate::pause(attempt).await;
        let Some(current) = store.conversation(ws, timer.conversation_id).await? else {
            return Ok(Outcome { fired: Fired::Stale, running: false });
        };
        let mut next = current.clone();
        let fired = sla::fire(&mut next.sla, timer, stage, now);
        let Some(clock) = next.sla.clock(timer.slot).cloned() else {
            return Ok(Outcome { fired, running: false });
        };
        let (due_at, kind) = (clock.due_at.unwrap_or(timer.due_at), clock.kind);
        match fired {
            Fired::Stale => return Ok(Outcome { fired, running: false }),
            Fired::Early => return Err(Error::Unavailable(format!("SLA timer {} fired early", timer.name()))),
            Fired::Warned { first } => {
                if first {
                    let details = serde_json::json!({ "clock": kind, "due_at": rfc3339(due_at) });
                    match commit(store, notify, &current, next.clone(), "sla_warning", details, false, now).await {
                        Err(RoutingError::Store(StoreError::Conflict)) => continue,
                        other => other?,
                    };
                }
                let note = Notification::SlaWarning {
                    workspace: ws.clone(),
                    conversation_id: timer.conversation_id,
                    clock: kind,
                    clock_id: timer.clock_id,
                    due_at,
                    assignee: next.assignee.clone(),
                };
                notify.publish(&note).await?;
                tracing::info!(workspace = %ws, conversation = %timer.conversation_id, clock = kind.as_str(), "SLA warning");
                return Ok(Outcome { fired, running: true });
            }
            Fired::Breached { first } => {
                let policy = store.sla_policy(ws).await?;
                let reroutes = policy.on_breach.iter().any(|a| matches!(a, BreachAction::Reroute { .. }));
                if first {
                    let before = current.assignee.clone();
                    for action in &policy.on_breach {
                        match action {
                            BreachAction::RaisePriority => next.priority = sla::raised(next.priority),
                            BreachAction::Reroute { team } => {
                                let mut moved = reassigned(&next, None);
                                if let Some(t) = team {
                                    moved.team = Some(t.clone());
                                }
                                // The next best agent, not the one who let it breach.
                                moved.previous_owner = None;
                                moved.waiting_since = Some(current.waiting_since.unwrap_or(now));
                                next = moved;
                            }
                        }
                    }
                    let details = serde_json::json!({
                        "clock": kind, "due_at": rfc3339(due_at), "actions": policy.on_breach, "from": before,
                    });
                    match commit(store, notify, &current, next.clone(), "sla_breached", details, reroutes, now).await {
                        Err(RoutingError::Store(StoreError::Conflict)) => continue,
                        other => other?,
                    };
                }
                let note = Notification::SlaBreached {
                    workspace: ws.clone(),
                    conversation_id: timer.conversation_id,
                    clock: kind,
                    clock_id: timer.clock_id,
                    due_at,
                    assignee: next.assignee.clone(),
                    actions: policy.on_breach.clone(),
                };
                notify.publish(&note).await?;
                if reroutes {
                    // Re-routed work goes to whoever can take it now (again on a retry: idempotent).
                    drain_queue(store, notify, ws, now).await?;
                }
                tracing::warn!(workspace = %ws, conversation = %timer.conversation_id, clock = kind.as_str(), "SLA breached");
                return Ok(Outcome { fired, running: false });
            }
        }
    }
    Err(Error::Contended(format!("SLA timer {} still contended after {ATTEMPTS} attempts", timer.name())))
}

fn rfc3339(t: OffsetDateTime) -> Option<String> {
    t.format(&time::format_description::well_known::Rfc3339).ok()
}

/// One conditional write of `next` over `current` (its version the one after `current`'s) with its
/// audit entry (by `system`), announced as a conversation change; `requeue` when it went back to
/// the routing queue.
#[allow(clippy::too_many_arguments)]
async fn commit<S: RoutingPorts + ?Sized>(
    store: &S,
    notify: &dyn NotificationQueue,
    current: &Conversation,
    mut next: Conversation,
    action: &'static str,
    details: serde_json::Value,
    requeue: bool,
    now: OffsetDateTime,
) -> Result<Conversation, RoutingError> {
    next.version = current.version + 1;
    let ws = current.workspace.clone();
    let audit = AuditEntry::new(ws, Some(current.id), AuditEntry::system(), action, details.clone(), now);
    let change = if requeue { ConversationChange::Unassigned } else { ConversationChange::Updated };
    let plan = Plan { next, take: None, change, action, details, drain: requeue, load: None };
    commit_change(store, notify, current, plan, audit).await
}

/// An agent went away or went offline at `now`: the check that, after the policy's grace period,
/// hands their waiting customers to someone online. Whether one was started (the policy may say never).
pub async fn agent_left<S: domain::ports::RoutingStore + ?Sized>(
    store: &S,
    timers: &dyn SlaTimers,
    ws: &domain::WorkspaceId,
    agent: &domain::AgentId,
    now: OffsetDateTime,
) -> Result<bool, Error> {
    let policy = store.sla_policy(ws).await?;
    let Some(check) = sla::AwayCheck::after(&policy, ws.clone(), agent.clone(), now) else { return Ok(false) };
    timers.start_away_check(&check).await.map_err(|e| Error::Unavailable(format!("away check not started: {e}")))?;
    Ok(true)
}

/// The grace period after an agent left is over: if they are still not online, each of their open
/// conversations in which a customer waits for an answer goes back to routing (and to whoever is
/// online and has room). Conversations they already answered stay theirs. The number re-routed.
pub async fn away_check<S: RoutingPorts + ?Sized>(
    store: &S,
    notify: &dyn NotificationQueue,
    check: &sla::AwayCheck,
    now: OffsetDateTime,
) -> Result<usize, Error> {
    use domain::ports::{AssigneeFilter, ConversationQuery};
    use domain::routing::Presence;
    let ws = &check.workspace;
    let back = store
        .agent_states(ws, std::slice::from_ref(&check.agent))
        .await?
        .into_iter()
        .next()
        .is_none_or(|a| a.presence == Presence::Online);
    if back {
        return Ok(0);
    }
    let mut q = ConversationQuery {
        status: domain::model::ConversationStatus::Open,
        assignee: AssigneeFilter::Agent(check.agent.clone()),
        limit: 100,
        cursor: None,
    };
    let mut waiting = vec![];
    loop {
        let page = store.conversations(ws, &q).await?;
        waiting.extend(page.items.into_iter().filter(sla::customer_waiting).map(|c| c.id));
        match page.next {
            Some(next) => q.cursor = Some(next),
            None => break,
        }
    }
    let mut moved = 0;
    for id in waiting {
        for attempt in 0..ATTEMPTS {
            crate::pause(attempt).await;
            let Some(current) = store.conversation(ws, id).await? else { break };
            if current.assignee.as_ref() != Some(&check.agent) || !sla::customer_waiting(&current) {
                break;
            }
            let mut next = reassigned(&current, None);
            next.waiting_since = Some(now);
            // Continuity: if they are back before anyone else takes it, it is theirs again.
            next.previous_owner = Some(check.agent.clone());
            let details = serde_json::json!({ "from": check.agent, "away_since": rfc3339(check.since) });
            match commit(store, notify, &current, next, "rerouted_away", details, true, now).await {
                Err(RoutingError::Store(StoreError::Conflict)) => continue,
                other => {
                    other?;
                    moved += 1;
                    break;
                }
            }
        }
    }
    if moved > 0 {
        drain_queue(store, notify, ws, now).await?;
    }
    tracing::info!(workspace = %ws, agent = %check.agent, moved, "away check");
    Ok(moved)
}
