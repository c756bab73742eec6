//! The snooze timer's task (template.yaml `SnoozeTimerStateMachine`): at `snoozed_until` Step
//! Functions invokes this with the [`SnoozeWake`] the PATCH route started the timer with. A
//! conversation still snoozed until that very time is reopened by `system` — back to its owner's
//! inbox, or into the routing queue when it has none — and announced to the agents; anything else
//! (reopened, resolved, snoozed again until another time, gone) is left alone. An error (the table
//! or the queue unavailable) fails the invocation, and the state machine's retry policy tries again.

use domain::timers::SnoozeWake;
use lambda_runtime::Error;

pub use api::Timed as Deps;

/// How early a timer may fire and still be honoured by waiting out the rest (Step Functions'
/// timestamps are whole seconds; an earlier call fails, and the state machine retries later).
const EARLY_TOLERANCE: time::Duration = time::Duration::seconds(60);

pub async fn handle(deps: &Deps, wake: SnoozeWake) -> Result<serde_json::Value, Error> {
    let early = wake.snoozed_until - time::OffsetDateTime::now_utc();
    if early > EARLY_TOLERANCE {
        return Err(format!("timer fired {early} early").into());
    }
    if early.is_positive() {
        tokio::time::sleep(early.unsigned_abs()).await;
    }
    let now = time::OffsetDateTime::now_utc();
    let (woke, reopened) = domain::timers::wake(&*deps.store, &*deps.notifications, &wake, now).await?;
    if let Some(c) = reopened {
        // The clocks the snooze paused run again.
        app::sla::start_timers(&*deps.sla_timers, &c).await?;
    }
    tracing::info!(workspace = %wake.workspace, conversation = %wake.conversation_id, ?woke, "snooze timer fired");
    Ok(serde_json::json!({ "conversation_id": wake.conversation_id, "woke": woke }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::inbox::{Actor, Command};
    use domain::timers::Woke;

    /// `Woke` as the task's output names it.
    fn outcome(v: &serde_json::Value) -> Option<Woke> {
        match v.get("woke")?.as_str()? {
            "reopened" => Some(Woke::Reopened),
            "unchanged" => Some(Woke::Unchanged),
            _ => None,
        }
    }
    use domain::model::ConversationStatus;
    use domain::ports::{AuditLog, ConversationReader, RoutingStore};
    use domain::routing::Presence;
    use domain::{AgentId, Role, WorkspaceId};
    use queue::memory::MemoryQueue;
    use std::sync::Arc;
    use store::contract::{seed_agent, seed_conversation};
    use store::MemoryStore;

    #[tokio::test]
    async fn a_conversation_still_snoozed_until_that_time_wakes_once_and_others_are_left_alone() {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(MemoryQueue::new());
        let deps = Deps {
            store: store.clone(),
            notifications: queue.clone(),
            sla_timers: Arc::new(timers::RecordingTimers::default()),
        };
        let ws = WorkspaceId::parse("acme").unwrap();
        let now = time::OffsetDateTime::now_utc();
        seed_agent(store.as_ref(), &ws, "alice", 500, Presence::Online).await;
        let (_, c) = seed_conversation(store.as_ref(), &ws, 1, now).await;
        domain::routing::service::route_conversation(&*store, &*queue, &ws, c.id, now).await.unwrap();
        let alice = Actor { agent: AgentId::parse("alice").unwrap(), role: Role::Agent };
        let until = now + time::Duration::milliseconds(300);
        let snooze = Command::Snooze { until };
        domain::routing::service::act(&*store, &*queue, &ws, c.id, &alice, &snooze, now).await.unwrap();

        // An earlier timer (the conversation was snoozed again since) changes nothing.
        let stale = SnoozeWake {
            workspace: ws.clone(),
            conversation_id: c.id,
            snoozed_until: until - time::Duration::minutes(5),
        };
        assert_eq!(outcome(&handle(&deps, stale).await.unwrap()), Some(Woke::Unchanged));
        assert_eq!(store.conversation(&ws, c.id).await.unwrap().unwrap().status, ConversationStatus::Snoozed);

        let wake = SnoozeWake { workspace: ws.clone(), conversation_id: c.id, snoozed_until: until };
        assert_eq!(outcome(&handle(&deps, wake.clone()).await.unwrap()), Some(Woke::Reopened));
        assert!(time::OffsetDateTime::now_utc() >= until, "a timer that fires early waits out the rest");
        let woken = store.conversation(&ws, c.id).await.unwrap().unwrap();
        assert_eq!(
            (woken.status, woken.snoozed_until, woken.assignee.clone()),
            (ConversationStatus::Open, None, Some(alice.agent.clone()))
        );
        assert!(store.waiting(&ws).await.unwrap().is_empty(), "its owner keeps it");
        let trail = store.audit_trail(&ws, Some(c.id), 10, None).await.unwrap().items;
        let last = trail.last().unwrap();
        assert_eq!((last.action.as_str(), last.actor.as_str()), ("reopened", "system"));
        assert!(queue.sent().iter().any(|(_, _, e)| e["change"] == "reopened"), "agents hear it");
        // Step Functions retrying the task after a timeout finds it awake.
        assert_eq!(outcome(&handle(&deps, wake).await.unwrap()), Some(Woke::Unchanged));
        let gone =
            SnoozeWake { workspace: ws.clone(), conversation_id: domain::ConversationId::new(), snoozed_until: until };
        assert_eq!(outcome(&handle(&deps, gone).await.unwrap()), Some(Woke::Unchanged));
        let far = SnoozeWake { workspace: ws, conversation_id: c.id, snoozed_until: now + time::Duration::hours(1) };
        assert!(handle(&deps, far).await.is_err(), "far too early: fail, and be retried later");
    }

    #[tokio::test]
    async fn the_fixture_event_is_understood() {
        let wake: SnoozeWake =
            serde_json::from_str(include_str!("../../../events/conversation-wake/wake.json")).unwrap();
        let deps = Deps {
            store: Arc::new(MemoryStore::new()),
            notifications: Arc::new(MemoryQueue::new()),
            sla_timers: Arc::new(timers::RecordingTimers::default()),
        };
        assert_eq!(
            outcome(&handle(&deps, wake).await.unwrap()),
            Some(Woke::Unchanged),
            "nothing snoozed in an empty store"
        );
    }
}
