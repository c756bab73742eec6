//! Timers (Step Functions in AWS): a conversation snoozed until a time wakes by itself then.
//!
//! Setting a snooze starts a timer named after the conversation and the time; the timer waits until
//! that time and then calls the wake function with the same [`SnoozeWake`]. Waking is idempotent and
//! checks that the conversation is still snoozed *until that very time*: a conversation reopened,
//! resolved or snoozed again meanwhile is left alone, so nothing ever has to cancel a timer.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::audit::AuditEntry;
use crate::ids::{ConversationId, WorkspaceId};
use crate::inbox::{Actor, Command};
use crate::model::{ConversationStatus, Role};
use crate::ports::{BoxError, InboundStore, NotificationQueue};
use crate::routing::service::{act, ActError, RoutingPorts};

/// The timer's input and the wake function's event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnoozeWake {
    pub workspace: WorkspaceId,
    pub conversation_id: ConversationId,
    /// RFC 3339 in UTC (`Z`), as Step Functions' `TimestampPath` reads it.
    #[serde(with = "time::serde::rfc3339")]
    pub snoozed_until: OffsetDateTime,
}

impl SnoozeWake {
    /// A name unique to this conversation and time (Step Functions execution names: at most 80 of
    /// `[A-Za-z0-9-_]`), so starting the same timer twice starts it once.
    pub fn timer_name(&self) -> String {
        let ms = self.snoozed_until.unix_timestamp_nanos() / 1_000_000;
        format!("snooze-{}-{ms}", self.conversation_id)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("timer could not be started")]
pub struct TimerError(#[source] pub BoxError);

/// Starts timers.
#[async_trait]
pub trait SnoozeTimers: Send + Sync {
    /// Idempotent: the same wake twice is one timer.
    async fn start_snooze_timer(&self, wake: &SnoozeWake) -> Result<(), TimerError>;
}

/// Starts the Step Functions loop that erases a large contact step by step
/// (template.yaml's `ErasureStateMachine`).
#[async_trait]
pub trait ErasureRuns: Send + Sync {
    /// Idempotent within a minute (by the execution's name, `Job::execution_name`).
    async fn start_erasure(&self, job: &crate::erasure::Job, now: OffsetDateTime) -> Result<(), TimerError>;
}

/// Starts service-level timers (one per running clock, see `sla`).
#[async_trait]
pub trait SlaTimers: Send + Sync {
    /// Idempotent: the same timer (by name) twice is one execution.
    async fn start_sla_timer(&self, timer: &crate::sla::Timer) -> Result<(), TimerError>;
    /// Idempotent by name too.
    async fn start_away_check(&self, check: &crate::sla::AwayCheck) -> Result<(), TimerError>;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Woke {
    /// Reopened: back to its owner's inbox, or into the routing queue when it has none.
    Reopened,
    /// Already reopened, resolved, snoozed again until another time, or gone.
    Unchanged,
}

/// Wakes a snoozed conversation if it still sleeps until `wake.snoozed_until`; the conversation as
/// stored afterwards when it woke (its resumed service-level clocks need their timers).
pub async fn wake<S: RoutingPorts + InboundStore + ?Sized>(
    store: &S,
    notify: &dyn NotificationQueue,
    wake: &SnoozeWake,
    now: OffsetDateTime,
) -> Result<(Woke, Option<crate::model::Conversation>), ActError> {
    let unchanged = Ok((Woke::Unchanged, None));
    let Some(c) = store.conversation(&wake.workspace, wake.conversation_id).await? else { return unchanged };
    if c.status != ConversationStatus::Snoozed || c.snoozed_until != Some(wake.snoozed_until) {
        return unchanged;
    }
    let system = Actor { agent: AuditEntry::system(), role: Role::Supervisor };
    let acted = act(store, notify, &wake.workspace, wake.conversation_id, &system, &Command::Reopen, now).await?;
    Ok(if acted.changed { (Woke::Reopened, Some(acted.conversation)) } else { (Woke::Unchanged, None) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_timer_is_named_by_conversation_and_time_within_step_functions_limits() {
        let id = ConversationId::parse("01JD3XQ7Z9K2M4N6P8R0S2T4V6").unwrap();
        let w = SnoozeWake {
            workspace: WorkspaceId::parse("acme").unwrap(),
            conversation_id: id,
            snoozed_until: datetime!(2026-11-23 09:00:00.250 UTC),
        };
        let name = w.timer_name();
        assert_eq!(name, "snooze-01JD3XQ7Z9K2M4N6P8R0S2T4V6-1795424400250");
        assert!(name.len() <= 80 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(json["snoozed_until"], "2026-11-23T09:00:00.25Z", "the Z form TimestampPath reads");
        let later = SnoozeWake { snoozed_until: datetime!(2026-11-23 10:00 UTC), ..w };
        assert_ne!(later.timer_name(), name);
    }
}
