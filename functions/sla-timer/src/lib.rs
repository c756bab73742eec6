//! The service-level timers' task. Two state machines invoke it:
//! - `SlaTimerStateMachine`, at a clock's warning time and again at its due time, with the
//!   [`Timer`] the clock started and the stage. `app::sla::fire` checks the conversation as it is
//!   now — a clock answered, resolved, paused or restarted since is left alone — then records,
//!   announces and escalates. The answer's `running` tells the state machine whether to wait for
//!   the breach.
//! - `AwayTimerStateMachine`, a grace period after an agent went away or offline, with the
//!   [`AwayCheck`]: `app::sla::away_check` hands their waiting customers to someone online unless
//!   they are back.
//!
//! An error (the table or the queue unavailable, a contended write) fails the invocation, and the
//! state machine retries.

use domain::sla::{AwayCheck, Stage, Timer};
use lambda_runtime::Error;

pub use api::Live as Deps;

/// What a state machine asks.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum Task {
    Fire(Fire),
    Away(AwayCheck),
}

/// The task's input: the timer (the execution's input) and which stage fired.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct Fire {
    pub timer: Timer,
    pub stage: Stage,
}

/// How early a stage may fire and still be honoured by waiting out the rest (Step Functions'
/// timestamps are whole seconds).
const EARLY_TOLERANCE: time::Duration = time::Duration::seconds(60);

pub async fn handle(deps: &Deps, task: Task) -> Result<serde_json::Value, Error> {
    match task {
        Task::Fire(fire) => Ok(serde_json::to_value(fire_stage(deps, fire).await?)?),
        Task::Away(check) => {
            wait_until(check.check_at).await?;
            let now = time::OffsetDateTime::now_utc().max(check.check_at);
            let moved = app::sla::away_check(&*deps.store, &*deps.notifications, &check, now).await?;
            Ok(serde_json::json!({ "rerouted": moved }))
        }
    }
}

/// Waits out a call that came a little early; refuses one far too early (the state machine retries).
async fn wait_until(at: time::OffsetDateTime) -> Result<(), Error> {
    let early = at - time::OffsetDateTime::now_utc();
    if early > EARLY_TOLERANCE {
        return Err(format!("timer fired {early} early").into());
    }
    if early.is_positive() {
        tokio::time::sleep(early.unsigned_abs()).await;
    }
    Ok(())
}

async fn fire_stage(deps: &Deps, fire: Fire) -> Result<app::sla::Outcome, Error> {
    let at = match fire.stage {
        Stage::Warning => fire.timer.warn_at,
        Stage::Breach => fire.timer.due_at,
    };
    wait_until(at).await?;
    let now = time::OffsetDateTime::now_utc().max(at);
    let outcome = app::sla::fire(&*deps.store, &*deps.notifications, &fire.timer, fire.stage, now).await?;
    tracing::info!(workspace = %fire.timer.workspace, conversation = %fire.timer.conversation_id,
        timer = %fire.timer.name(), ?outcome, "SLA timer fired");
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::model::{Channel, Priority};
    use domain::ports::{AuditLog, ConversationReader, RoutingStore};
    use domain::routing::Presence;
    use domain::sla::{BreachAction, Fired, Policy, Rule, Targets};
    use domain::{AgentId, WorkspaceId};
    use queue::memory::MemoryQueue;
    use std::sync::Arc;
    use store::contract::{seed_agent, seed_conversation};
    use store::MemoryStore;

    /// A conversation whose first-response clock started `ago` seconds ago with a 10 s target.
    async fn waiting(store: &MemoryStore, ws: &WorkspaceId, ago: i64) -> (domain::model::Conversation, Timer) {
        let now = time::OffsetDateTime::now_utc();
        let n = (now.unix_timestamp_nanos() % 9000) as u32;
        let (_, c) = seed_conversation(store, ws, n, now).await;
        let policy = Policy {
            rules: vec![Rule {
                channel: Some(Channel::Sms),
                priority: None,
                targets: Targets { first_response_secs: Some(10), next_response_secs: None, resolution_secs: None },
            }],
            counting: domain::sla::Counting::Calendar,
            on_breach: vec![BreachAction::RaisePriority, BreachAction::Reroute { team: None }],
            ..Policy::default()
        };
        store.put_sla_policy(ws, &policy).await.unwrap();
        let mut next = c.clone();
        let clocks = domain::sla::Clocks { policy: &policy, calendar: domain::sla::Calendar::Always };
        clocks.customer_wrote(&mut next, Channel::Sms, now - time::Duration::seconds(ago));
        let next = store::contract::replace_conversation(store, &c, next).await;
        let timer = domain::sla::timers(&next).into_iter().next().unwrap();
        (next, timer)
    }

    #[tokio::test]
    async fn a_warning_then_a_breach_that_raises_the_priority_and_reroutes_once() {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(MemoryQueue::new());
        let deps = Deps { store: store.clone(), notifications: queue.clone() };
        let ws = WorkspaceId::parse("acme").unwrap();
        seed_agent(&*store, &ws, "ann", 500, Presence::Online).await;
        let (c, timer) = waiting(&store, &ws, 11).await;
        let fire = |stage| Fire { timer: timer.clone(), stage };
        let warned = fire_stage(&deps, fire(Stage::Warning)).await.unwrap();
        assert_eq!((warned.fired, warned.running), (Fired::Warned { first: true }, true));
        let breached = fire_stage(&deps, fire(Stage::Breach)).await.unwrap();
        assert_eq!((breached.fired, breached.running), (Fired::Breached { first: true }, false));
        // A retry of the breach announces again (deduplicated by the queue) and changes nothing.
        let again = fire_stage(&deps, fire(Stage::Breach)).await.unwrap();
        assert_eq!(again.fired, Fired::Breached { first: false });
        let stored = store.conversation(&ws, c.id).await.unwrap().unwrap();
        assert_eq!(stored.priority, Priority::High, "raised once");
        assert_eq!(stored.sla.breaches, 1);
        assert_eq!(stored.assignee, Some(AgentId::parse("ann").unwrap()), "re-routed to the one online agent");
        let types: Vec<String> = queue.sent().iter().map(|(_, _, b)| b["type"].as_str().unwrap().to_owned()).collect();
        assert!(types.contains(&"sla_warning".to_owned()) && types.contains(&"sla_breached".to_owned()), "{types:?}");
        let audit = store.audit_trail(&ws, Some(c.id), 10, None).await.unwrap().items;
        let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
        assert!(actions.contains(&"sla_warning") && actions.contains(&"sla_breached"), "{actions:?}");
    }

    #[tokio::test]
    async fn an_answered_or_changed_clock_is_left_alone_and_an_early_call_fails() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps { store: store.clone(), notifications: Arc::new(MemoryQueue::new()) };
        let ws = WorkspaceId::parse("acme").unwrap();
        let (c, timer) = waiting(&store, &ws, 0).await;
        // Far too early: refused, so the state machine retries later.
        let mut early = timer.clone();
        early.warn_at = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        assert!(fire_stage(&deps, Fire { timer: early, stage: Stage::Warning }).await.is_err());
        // Another clock id (the clock restarted since): stale, the execution ends.
        let mut other = timer.clone();
        other.clock_id += 7;
        other.warn_at = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
        let out = fire_stage(&deps, Fire { timer: other, stage: Stage::Warning }).await.unwrap();
        assert_eq!((out.fired, out.running), (Fired::Stale, false));
        assert_eq!(store.conversation(&ws, c.id).await.unwrap().unwrap().version, c.version, "nothing written");
    }

    #[test]
    fn the_task_input_reads_as_step_functions_passes_it() {
        let json = serde_json::json!({
            "timer": {
                "workspace": "acme", "conversation_id": "01JD3XQ7Z9K2M4N6P8R0S2T4V6", "slot": "response",
                "clock_id": 3, "warn_at": "2026-11-23T09:48:00Z", "due_at": "2026-11-23T10:00:00Z",
                "warned": { "running": true }
            },
            "stage": "breach"
        });
        let Task::Fire(fire) = serde_json::from_value(json).unwrap() else { panic!("a stage") };
        assert_eq!((fire.stage, fire.timer.clock_id), (Stage::Breach, 3));
        let away = serde_json::json!({
            "workspace": "acme", "agent": "ann", "since": "2026-11-23T09:00:00Z", "check_at": "2026-11-23T09:05:00Z"
        });
        assert!(matches!(serde_json::from_value(away).unwrap(), Task::Away(_)));
    }

    #[tokio::test]
    async fn an_agent_still_away_loses_only_the_conversations_where_a_customer_waits() {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(MemoryQueue::new());
        let deps = Deps { store: store.clone(), notifications: queue.clone() };
        let ws = WorkspaceId::parse("acme").unwrap();
        let ann = AgentId::parse("ann").unwrap();
        seed_agent(&*store, &ws, "ann", 500, Presence::Online).await;
        let (waiting_conv, _) = waiting(&store, &ws, 0).await;
        let (answered, _) = waiting(&store, &ws, 0).await;
        for c in [&waiting_conv, &answered] {
            let mut owned = store.conversation(&ws, c.id).await.unwrap().unwrap();
            let v = owned.version;
            owned.assignee = Some(ann.clone());
            owned.assigned_weight = 100;
            if c.id == answered.id {
                owned.record_outbound(time::OffsetDateTime::now_utc());
            }
            owned.version = v + 1;
            store
                .commit_routing(domain::ports::RoutingCommit {
                    conversation: owned,
                    expected_version: v,
                    take: None,
                    give_back: None,
                    queue: domain::ports::QueueChange::Keep,
                    audit: None,
                })
                .await
                .unwrap();
        }
        let check = |at| AwayCheck { workspace: ws.clone(), agent: ann.clone(), since: at, check_at: at };
        let now = time::OffsetDateTime::now_utc();
        // Back online before the grace period ended: nothing moves.
        let out = handle(&deps, Task::Away(check(now))).await.unwrap();
        assert_eq!(out["rerouted"], 0);
        store.set_presence(&ws, &ann, Presence::Away, 500, time::OffsetDateTime::now_utc()).await.unwrap();
        seed_agent(&*store, &ws, "bob", 500, Presence::Online).await;
        let out = handle(&deps, Task::Away(check(now))).await.unwrap();
        assert_eq!(out["rerouted"], 1);
        let moved = store.conversation(&ws, waiting_conv.id).await.unwrap().unwrap();
        assert_eq!(moved.assignee, Some(AgentId::parse("bob").unwrap()), "to the agent online");
        let kept = store.conversation(&ws, answered.id).await.unwrap().unwrap();
        assert_eq!(kept.assignee, Some(ann.clone()), "answered: stays with ann");
        let audit = store.audit_trail(&ws, Some(waiting_conv.id), 10, None).await.unwrap().items;
        assert!(audit.iter().any(|e| e.action == "rerouted_away"));
    }
}
