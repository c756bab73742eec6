//! SQS FIFO publishers for the inbound, outbound and notification queues (each message carries its
//! group — ordering scope — and deduplication id, both chosen by the domain event), and the
//! standard webhook delivery queue.

pub mod memory;

use async_trait::async_trait;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use domain::analytics::AnalyticsEvent;
use domain::events::{fifo_id, InboundEvent, Notification, OutboundJob};
use domain::hooks::DeliveryJob;
use domain::ports::{AnalyticsQueue, HookQueue, InboundQueue, NotificationQueue, OutboundQueue, QueueError};
use serde::Serialize;

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self { client, url: url.into() }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one message. SQS FIFO drops a second send with the same deduplication id within five
    /// minutes, which makes a retried webhook or API call enqueue once.
    pub async fn send<T: Serialize>(&self, body: &T, group: &str, dedup: &str) -> Result<(), QueueError> {
        let body = serde_json::to_string(body).map_err(|e| QueueError::Rejected(Box::new(e)))?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(fifo_id(group))
            .message_deduplication_id(fifo_id(dedup))
            .send()
            .await
            .map_err(classify)?;
        meter::record(domain::finance::Usage { sqs_requests_milli: 1000, ..Default::default() });
        Ok(())
    }
}

fn classify<E, R>(err: SdkError<E, R>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(se) => {
            let retryable = se.err().code().is_some_and(|c| {
                matches!(
                    c,
                    "ThrottlingException"
                        | "RequestThrottled"
                        | "ServiceUnavailable"
                        | "InternalError"
                        | "KmsThrottled"
                )
            });
            if retryable {
                QueueError::Unavailable(Box::new(err))
            } else {
                QueueError::Rejected(Box::new(err))
            }
        }
        SdkError::ConstructionFailure(_) => QueueError::Rejected(Box::new(err)),
        _ => QueueError::Unavailable(Box::new(err)),
    }
}

#[async_trait]
impl InboundQueue for SqsQueue {
    async fn enqueue_inbound(&self, event: &InboundEvent) -> Result<(), QueueError> {
        self.send(event, &event.group_id(), &event.dedup_id()).await
    }
}

#[async_trait]
impl OutboundQueue for SqsQueue {
    async fn enqueue_outbound(&self, job: &OutboundJob) -> Result<(), QueueError> {
        self.send(job, &job.group_id(), &job.dedup_id()).await
    }
}

#[async_trait]
impl NotificationQueue for SqsQueue {
    async fn publish(&self, event: &Notification) -> Result<(), QueueError> {
        self.send(event, &event.group_id(), &event.dedup_id()).await
    }
}

/// SQS caps a batch at ten messages and 256 KiB.
const BATCH_MAX: usize = 10;
const BATCH_BYTES: usize = 256 * 1024;

#[async_trait]
impl HookQueue for SqsQueue {
    /// The webhook queue is a standard queue: no group, no deduplication id (a repeat carries the
    /// same `webhook-id`; receivers drop it by that).
    async fn enqueue_deliveries(&self, jobs: &[DeliveryJob]) -> Result<(), QueueError> {
        self.send_all(jobs).await
    }

    async fn retry_after(&self, receipt: &str, delay: time::Duration) -> Result<(), QueueError> {
        // SQS holds a message back for at most 12 hours.
        let secs = delay.whole_seconds().clamp(0, 43_200) as i32;
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(secs)
            .send()
            .await
            .map_err(classify)?;
        meter::record(domain::finance::Usage { sqs_requests_milli: 1000, ..Default::default() });
        Ok(())
    }
}

#[async_trait]
impl AnalyticsQueue for SqsQueue {
    async fn enqueue_analytics(&self, events: &[AnalyticsEvent]) -> Result<(), QueueError> {
        self.send_all(events).await
    }
}

impl SqsQueue {
    /// Messages to a standard queue, in as few `SendMessageBatch` requests as SQS allows.
    async fn send_all<T: Serialize>(&self, items: &[T]) -> Result<(), QueueError> {
        let mut bodies = Vec::with_capacity(items.len());
        for j in items {
            bodies.push(serde_json::to_string(j).map_err(|e| QueueError::Rejected(Box::new(e)))?);
        }
        let mut batch: Vec<SendMessageBatchRequestEntry> = vec![];
        let mut bytes = 0;
        for (i, body) in bodies.into_iter().enumerate() {
            if !batch.is_empty() && (batch.len() == BATCH_MAX || bytes + body.len() > BATCH_BYTES) {
                self.send_batch(std::mem::take(&mut batch)).await?;
                bytes = 0;
            }
            bytes += body.len();
            let entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body)
                .build()
                .map_err(|e| QueueError::Rejected(Box::new(e)))?;
            batch.push(entry);
        }
        if !batch.is_empty() {
            self.send_batch(batch).await?;
        }
        Ok(())
    }

    async fn send_batch(&self, entries: Vec<SendMessageBatchRequestEntry>) -> Result<(), QueueError> {
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(classify)?;
        meter::record(domain::finance::Usage { sqs_requests_milli: 1000, ..Default::default() });
        if let Some(f) = out.failed.first() {
            let why =
                format!("{} of the batch refused: {} {}", out.failed.len(), f.code, f.message.as_deref().unwrap_or(""));
            return Err(if f.sender_fault {
                QueueError::Rejected(why.into())
            } else {
                QueueError::Unavailable(why.into())
            });
        }
        Ok(())
    }
}
