//! Per-message AWS usage metering.
//!
//! A handler runs its work for one message inside [`measure`]; the store and queue adapters call
//! [`record`] with what each request spent (DynamoDB's reported consumed capacity, one SQS request).
//! The meter is task-local, so concurrent invocations sharing one process (the local gateway) never
//! mix their usage, and code outside a measured task records nothing.

use std::cell::Cell;
use std::future::Future;
use std::time::Instant;

use domain::finance::Usage;

tokio::task_local! {
    static METER: Cell<Usage>;
}

/// Runs `f` with a fresh meter; returns its output and everything recorded while it ran.
pub async fn measure<F: Future>(f: F) -> (F::Output, Usage) {
    METER
        .scope(Cell::new(Usage::default()), async move {
            let out = f.await;
            (out, current())
        })
        .await
}

/// Adds to the current task's meter (nothing outside [`measure`]).
pub fn record(u: Usage) {
    let _ = METER.try_with(|m| m.set(m.get() + u));
}

/// What the current task recorded so far.
pub fn current() -> Usage {
    METER.try_with(Cell::get).unwrap_or_default()
}

/// DynamoDB capacity as reported (units, possibly fractional) in thousandths.
pub fn units_milli(units: f64) -> u64 {
    if units.is_finite() && units > 0.0 {
        (units * 1000.0).round() as u64
    } else {
        0
    }
}

/// The Lambda side of a measured piece of work: this function's memory and the time since `start`,
/// its share of an invocation that handled `batch` records, and what the invocation's trigger
/// spent on it (`trigger`: one API Gateway request, or the SQS receive and delete of a batch).
#[derive(Clone, Copy, Debug)]
pub struct Invocation {
    pub start: Instant,
    pub memory_mb: u64,
    pub batch: u64,
    pub trigger: Trigger,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    HttpApi,
    SqsBatch,
    /// A push from another service (an SES receipt rule, SNS): no request of ours to count.
    Event,
}

impl Invocation {
    pub fn new(memory_mb: u64, batch: usize, trigger: Trigger) -> Self {
        Self { start: Instant::now(), memory_mb, batch: batch.max(1) as u64, trigger }
    }

    /// The usage so far: Lambda share, trigger share, and what the task's meter recorded.
    pub fn usage_so_far(&self) -> Usage {
        let elapsed_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let trigger = match self.trigger {
            Trigger::HttpApi => Usage { apigw_requests: 1, ..Usage::default() },
            // The event source mapping's ReceiveMessage and DeleteMessageBatch, shared by the batch.
            Trigger::SqsBatch => Usage { sqs_requests_milli: 2000 / self.batch, ..Usage::default() },
            Trigger::Event => Usage::default(),
        };
        Usage::lambda(self.memory_mb, elapsed_ms, self.batch) + trigger + current()
    }
}

/// The memory Lambda gives this function (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`), 128 MB when unset.
pub fn memory_mb_from_env() -> u64 {
    std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok().and_then(|v| v.parse().ok()).unwrap_or(128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_only_inside_a_measured_task_and_never_across_tasks() {
        record(Usage { apigw_requests: 5, ..Usage::default() });
        assert!(current().is_empty());
        let one = Usage { sqs_requests_milli: 1000, ..Usage::default() };
        let (a, b) = tokio::join!(
            measure(async {
                record(one);
                tokio::task::yield_now().await;
                record(one);
            }),
            measure(async {
                record(one);
            })
        );
        assert_eq!(a.1.sqs_requests_milli, 2000);
        assert_eq!(b.1.sqs_requests_milli, 1000);
        assert_eq!(units_milli(0.5), 500);
        assert_eq!(units_milli(f64::NAN), 0);
    }

    #[tokio::test]
    async fn an_invocation_shares_its_trigger_over_the_batch() {
        let inv = Invocation::new(256, 4, Trigger::SqsBatch);
        let u = inv.usage_so_far();
        assert_eq!(u.sqs_requests_milli, 500);
        assert_eq!(u.lambda_requests_milli, 250);
        assert!(u.lambda_mb_ms >= 256);
        assert_eq!(Invocation::new(128, 1, Trigger::HttpApi).usage_so_far().apigw_requests, 1);
    }
}
