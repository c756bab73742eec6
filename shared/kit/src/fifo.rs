//! Consuming a FIFO batch the way ordering demands: records one after another, and at the first
//! failure that record and every later one are reported back (ReportBatchItemFailures), so nothing
//! after a failure is processed ahead of it.

use std::future::Future;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use domain::ports::{QueueError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Throttling, timeouts, a dependency down: the redelivery will likely succeed.
    #[error("retryable: {0}")]
    Retryable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The record itself is bad (unparseable, unknown type). It is still reported, so the queue's
    /// redrive policy moves it to the dead-letter queue after maxReceiveCount, visible there.
    #[error("permanent: {0}")]
    Permanent(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for RecordError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            RecordError::Retryable(Box::new(e))
        } else {
            RecordError::Permanent(Box::new(e))
        }
    }
}

impl From<QueueError> for RecordError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Unavailable(_) => RecordError::Retryable(Box::new(e)),
            QueueError::Rejected(_) => RecordError::Permanent(Box::new(e)),
        }
    }
}

impl From<domain::routing::service::RoutingError> for RecordError {
    fn from(e: domain::routing::service::RoutingError) -> Self {
        if e.is_retryable() {
            RecordError::Retryable(Box::new(e))
        } else {
            RecordError::Permanent(Box::new(e))
        }
    }
}

impl From<app::Error> for RecordError {
    fn from(e: app::Error) -> Self {
        if e.is_retryable() {
            RecordError::Retryable(Box::new(e))
        } else {
            RecordError::Permanent(Box::new(e))
        }
    }
}

/// Parses a record's JSON body, or fails it permanently.
pub fn parse_body<T: serde::de::DeserializeOwned>(m: &SqsMessage) -> Result<T, RecordError> {
    let body = m.body.as_deref().ok_or_else(|| RecordError::Permanent("record has no body".into()))?;
    serde_json::from_str(body).map_err(|e| RecordError::Permanent(Box::new(e)))
}

pub async fn process_in_order<F, Fut>(event: SqsEvent, mut handle: F) -> SqsBatchResponse
where
    F: FnMut(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), RecordError>>,
{
    let mut response = SqsBatchResponse::default();
    let mut failed = false;
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        if failed {
            response.add_failure(id);
            continue;
        }
        if let Err(e) = handle(record).await {
            match &e {
                RecordError::Retryable(_) => {
                    tracing::warn!(message_id = %id, error = %e, "record failed; will be retried")
                }
                RecordError::Permanent(_) => {
                    tracing::error!(message_id = %id, error = %e, "record cannot be processed; it will reach the DLQ")
                }
            }
            failed = true;
            response.add_failure(id);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> SqsEvent {
        let mut e = SqsEvent::default();
        e.records = (0..n)
            .map(|i| {
                let mut m = SqsMessage::default();
                m.message_id = Some(format!("m{i}"));
                m.body = Some(i.to_string());
                m
            })
            .collect();
        e
    }

    #[tokio::test]
    async fn the_first_failure_and_everything_after_it_are_reported() {
        let mut seen = vec![];
        let r = process_in_order(event(5), |m| {
            let i: usize = m.body.unwrap().parse().unwrap();
            seen.push(i);
            async move {
                if i == 2 {
                    Err(RecordError::Retryable("throttled".into()))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert_eq!(seen, vec![0, 1, 2], "nothing after the failure is processed");
        let ids: Vec<_> = r.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(ids, vec!["m2", "m3", "m4"]);
    }

    #[tokio::test]
    async fn a_clean_batch_reports_nothing() {
        let r = process_in_order(event(3), |_| async { Ok(()) }).await;
        assert!(r.batch_item_failures.is_empty());
    }
}
