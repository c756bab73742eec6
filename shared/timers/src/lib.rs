//! Step Functions timers. A timer is one execution of a state machine that waits until a time and
//! then invokes a function (see template.yaml's `SnoozeTimerStateMachine`). Executions are named
//! after what they wake, so starting one twice starts it once (StartExecution is idempotent for a
//! standard workflow given the same name and input).

use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sfn::Client;
use domain::timers::{SnoozeTimers, SnoozeWake, TimerError};

#[derive(Clone)]
pub struct SfnTimers {
    client: Client,
    snooze_state_machine: String,
}

impl SfnTimers {
    pub fn new(client: Client, snooze_state_machine: impl Into<String>) -> Self {
        Self { client, snooze_state_machine: snooze_state_machine.into() }
    }
}

#[async_trait]
impl SnoozeTimers for SfnTimers {
    async fn start_snooze_timer(&self, wake: &SnoozeWake) -> Result<(), TimerError> {
        let input = serde_json::to_string(wake).map_err(|e| TimerError(Box::new(e)))?;
        let res = self
            .client
            .start_execution()
            .state_machine_arn(&self.snooze_state_machine)
            .name(wake.timer_name())
            .input(input)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            // The same name with other input, or a finished execution: that timer exists already
            // (names carry the time, so its input is this one).
            Err(SdkError::ServiceError(e)) if e.err().code() == Some("ExecutionAlreadyExists") => Ok(()),
            Err(e) => Err(TimerError(aws_sdk_sfn::error::DisplayErrorContext(e).to_string().into())),
        }
    }
}

/// Timers for tests: records what was started; `fail(true)` makes starting fail.
#[derive(Default)]
pub struct RecordingTimers {
    started: Mutex<Vec<SnoozeWake>>,
    failing: Mutex<bool>,
}

impl RecordingTimers {
    pub fn started(&self) -> Vec<SnoozeWake> {
        self.started.lock().expect("lock").clone()
    }
    pub fn fail(&self, on: bool) {
        *self.failing.lock().expect("lock") = on;
    }
}

#[async_trait]
impl SnoozeTimers for RecordingTimers {
    async fn start_snooze_timer(&self, wake: &SnoozeWake) -> Result<(), TimerError> {
        if *self.failing.lock().expect("lock") {
            return Err(TimerError("timers switched off by the test".into()));
        }
        let mut started = self.started.lock().expect("lock");
        if !started.contains(wake) {
            started.push(wake.clone());
        }
        Ok(())
    }
}
