//! SQS FIFO publishers for the inbound, outbound and notification queues. Each message carries its
//! group (ordering scope) and deduplication id, both chosen by the domain event.

pub mod memory;

use async_trait::async_trait;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::Client;
use domain::events::{fifo_id, InboundEvent, Notification, OutboundJob};
use domain::ports::{InboundQueue, NotificationQueue, OutboundQueue, QueueError};
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
