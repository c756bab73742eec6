//! An in-memory queue for unit tests of handlers: records what was sent, and can be switched to fail
//! like an unavailable SQS.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use domain::events::{fifo_id, InboundEvent, Notification, OutboundJob};
use domain::hooks::DeliveryJob;
use domain::ports::{HookQueue, InboundQueue, NotificationQueue, OutboundQueue, QueueError};

#[derive(Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<(String, String, serde_json::Value)>>,
    failing: AtomicBool,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    /// (group id, dedup id, body) of every message sent, in order. Like SQS FIFO, a repeated dedup id
    /// is dropped.
    pub fn sent(&self) -> Vec<(String, String, serde_json::Value)> {
        self.sent.lock().expect("lock").clone()
    }

    fn push(&self, group: String, dedup: String, body: serde_json::Value) -> Result<(), QueueError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(QueueError::Unavailable("queue switched off by the test".into()));
        }
        let mut sent = self.sent.lock().expect("lock");
        if !sent.iter().any(|(_, d, _)| *d == dedup) {
            sent.push((group, dedup, body));
        }
        Ok(())
    }
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("events serialise")
}

#[async_trait]
impl InboundQueue for MemoryQueue {
    async fn enqueue_inbound(&self, event: &InboundEvent) -> Result<(), QueueError> {
        self.push(fifo_id(&event.group_id()), fifo_id(&event.dedup_id()), json(event))
    }
}

#[async_trait]
impl OutboundQueue for MemoryQueue {
    async fn enqueue_outbound(&self, job: &OutboundJob) -> Result<(), QueueError> {
        self.push(fifo_id(&job.group_id()), fifo_id(&job.dedup_id()), json(job))
    }
}

#[async_trait]
impl NotificationQueue for MemoryQueue {
    async fn publish(&self, event: &Notification) -> Result<(), QueueError> {
        self.push(fifo_id(&event.group_id()), fifo_id(&event.dedup_id()), json(event))
    }
}

#[async_trait]
impl HookQueue for MemoryQueue {
    /// Recorded with the group `webhooks` and the job's `webhook-id` (a repeat is dropped).
    async fn enqueue_deliveries(&self, jobs: &[DeliveryJob]) -> Result<(), QueueError> {
        for j in jobs {
            let body = serde_json::to_value(j).map_err(|e| QueueError::Rejected(Box::new(e)))?;
            self.push("webhooks".into(), j.msg_id.clone(), body)?;
        }
        Ok(())
    }

    async fn retry_after(&self, _receipt: &str, _delay: time::Duration) -> Result<(), QueueError> {
        Ok(())
    }
}

#[async_trait]
impl domain::ports::AnalyticsQueue for MemoryQueue {
    /// Recorded with the group `analytics` (no deduplication: each call is its own message).
    async fn enqueue_analytics(&self, events: &[domain::analytics::AnalyticsEvent]) -> Result<(), QueueError> {
        for e in events {
            let body = serde_json::to_value(e).map_err(|err| QueueError::Rejected(Box::new(err)))?;
            let dedup = format!("analytics:{}:{}", e.event.dedup_id(), self.sent().len());
            self.push("analytics".into(), dedup, body)?;
        }
        Ok(())
    }
}
