//! Step Functions timers. A timer is one execution of a state machine that waits until a time and
//! then invokes a function (template.yaml's `SnoozeTimerStateMachine` and `SlaTimerStateMachine`).
//! Executions are named after what they wake, so starting one twice starts it once (StartExecution
//! is idempotent for a standard workflow given the same name and input; a finished execution of
//! that name answers `ExecutionAlreadyExists`, which is the same timer).

use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sfn::Client;
use domain::erasure::Job;
use domain::sla::{AwayCheck, Timer};
use domain::timers::{ErasureRuns, SlaTimers, SnoozeTimers, SnoozeWake, TimerError};

#[derive(Clone)]
pub struct SfnTimers {
    client: Client,
    snooze_state_machine: Option<String>,
    sla_state_machine: Option<String>,
    away_state_machine: Option<String>,
    erasure_state_machine: Option<String>,
}

impl SfnTimers {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            snooze_state_machine: None,
            sla_state_machine: None,
            away_state_machine: None,
            erasure_state_machine: None,
        }
    }

    /// Snooze timers start executions of this state machine.
    pub fn snooze(mut self, state_machine_arn: impl Into<String>) -> Self {
        self.snooze_state_machine = Some(state_machine_arn.into());
        self
    }

    /// SLA timers start executions of this state machine.
    pub fn sla(mut self, state_machine_arn: impl Into<String>) -> Self {
        self.sla_state_machine = Some(state_machine_arn.into());
        self
    }

    /// Away checks start executions of this state machine.
    pub fn away(mut self, state_machine_arn: impl Into<String>) -> Self {
        self.away_state_machine = Some(state_machine_arn.into());
        self
    }

    /// Erasures run as executions of this state machine.
    pub fn erasure(mut self, state_machine_arn: impl Into<String>) -> Self {
        self.erasure_state_machine = Some(state_machine_arn.into());
        self
    }

    async fn start(&self, state_machine: Option<&String>, name: String, input: String) -> Result<(), TimerError> {
        let Some(arn) = state_machine else {
            return Err(TimerError("no state machine configured for this timer".into()));
        };
        let res = self.client.start_execution().state_machine_arn(arn).name(name).input(input).send().await;
        match res {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().code() == Some("ExecutionAlreadyExists") => Ok(()),
            Err(e) => Err(TimerError(aws_sdk_sfn::error::DisplayErrorContext(e).to_string().into())),
        }
    }
}

#[async_trait]
impl SnoozeTimers for SfnTimers {
    async fn start_snooze_timer(&self, wake: &SnoozeWake) -> Result<(), TimerError> {
        let input = serde_json::to_string(wake).map_err(|e| TimerError(Box::new(e)))?;
        self.start(self.snooze_state_machine.as_ref(), wake.timer_name(), input).await
    }
}

#[async_trait]
impl SlaTimers for SfnTimers {
    async fn start_sla_timer(&self, timer: &Timer) -> Result<(), TimerError> {
        let input = serde_json::to_string(timer).map_err(|e| TimerError(Box::new(e)))?;
        self.start(self.sla_state_machine.as_ref(), timer.name(), input).await
    }

    async fn start_away_check(&self, check: &AwayCheck) -> Result<(), TimerError> {
        let input = serde_json::to_string(check).map_err(|e| TimerError(Box::new(e)))?;
        self.start(self.away_state_machine.as_ref(), check.name(), input).await
    }
}

#[async_trait]
impl ErasureRuns for SfnTimers {
    async fn start_erasure(&self, job: &Job, now: time::OffsetDateTime) -> Result<(), TimerError> {
        let input = serde_json::to_string(job).map_err(|e| TimerError(Box::new(e)))?;
        self.start(self.erasure_state_machine.as_ref(), job.execution_name(now), input).await
    }
}

/// Timers for tests: records what was started; `fail(true)` makes starting fail.
#[derive(Default)]
pub struct RecordingTimers {
    started: Mutex<Vec<SnoozeWake>>,
    sla: Mutex<Vec<Timer>>,
    away: Mutex<Vec<AwayCheck>>,
    erasures: Mutex<Vec<Job>>,
    failing: Mutex<bool>,
}

impl RecordingTimers {
    pub fn started(&self) -> Vec<SnoozeWake> {
        self.started.lock().expect("lock").clone()
    }
    pub fn sla_started(&self) -> Vec<Timer> {
        self.sla.lock().expect("lock").clone()
    }
    pub fn away_started(&self) -> Vec<AwayCheck> {
        self.away.lock().expect("lock").clone()
    }
    pub fn erasures_started(&self) -> Vec<Job> {
        self.erasures.lock().expect("lock").clone()
    }
    pub fn fail(&self, on: bool) {
        *self.failing.lock().expect("lock") = on;
    }
    fn check(&self) -> Result<(), TimerError> {
        if *self.failing.lock().expect("lock") {
            return Err(TimerError("timers switched off by the test".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl SnoozeTimers for RecordingTimers {
    async fn start_snooze_timer(&self, wake: &SnoozeWake) -> Result<(), TimerError> {
        self.check()?;
        let mut started = self.started.lock().expect("lock");
        if !started.contains(wake) {
            started.push(wake.clone());
        }
        Ok(())
    }
}

#[async_trait]
impl SlaTimers for RecordingTimers {
    async fn start_sla_timer(&self, timer: &Timer) -> Result<(), TimerError> {
        self.check()?;
        let mut started = self.sla.lock().expect("lock");
        if !started.iter().any(|t| t.name() == timer.name()) {
            started.push(timer.clone());
        }
        Ok(())
    }

    async fn start_away_check(&self, check: &AwayCheck) -> Result<(), TimerError> {
        self.check()?;
        let mut started = self.away.lock().expect("lock");
        if !started.iter().any(|c| c.name() == check.name()) {
            started.push(check.clone());
        }
        Ok(())
    }
}

#[async_trait]
impl ErasureRuns for RecordingTimers {
    async fn start_erasure(&self, job: &Job, _now: time::OffsetDateTime) -> Result<(), TimerError> {
        self.check()?;
        self.erasures.lock().expect("lock").push(job.clone());
        Ok(())
    }
}
