//! The webhook sender: consumes the webhook queue (SQS standard) and delivers each job through
//! `app::hooks` — signed per Standard Webhooks, POSTed, logged. A failed attempt is held back on
//! the queue for the schedule's next wait (its visibility timeout) and reported as a batch-item
//! failure; the schedule spent, it is logged as failed and removed. The records of a batch are
//! delivered concurrently (no order between events, as the specification allows).

use std::sync::Arc;

use app::hooks::{Delivered, Deliverer, DeliveryPolicy};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use domain::hooks::DeliveryJob;
use domain::ports::{HookQueue, HookTransport, NotificationQueue};
use kit::fifo::{parse_body, RecordError};
use lambda_runtime::Error;
use store::Store;
use time::OffsetDateTime;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub transport: Arc<dyn HookTransport>,
    pub queue: Arc<dyn HookQueue>,
    pub notifications: Arc<dyn NotificationQueue>,
    pub policy: DeliveryPolicy,
}

impl Deps {
    /// `TABLE_NAME`, `WEBHOOK_QUEUE_URL`, `NOTIFICATION_QUEUE_URL`; `WEBHOOK_REACH` (`local`: http
    /// and loopback allowed) and `WEBHOOK_RETRY_SCHEDULE` (`5s,5m,…`; the specification's by default).
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> anyhow::Result<Self> {
        let reach = domain::hooks::Reach::from_setting(config.optional("WEBHOOK_REACH").as_deref());
        let mut policy = DeliveryPolicy { reach, ..Default::default() };
        if let Some(s) = config.optional("WEBHOOK_RETRY_SCHEDULE") {
            policy.schedule = domain::hooks::parse_schedule(&s)?;
        }
        let sqs = aws_sdk_sqs::Client::new(aws);
        Ok(Self {
            store: Arc::new(store::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.required("TABLE_NAME")?,
            )),
            transport: Arc::new(providers::hooks::HttpHookTransport::new(reach)?),
            queue: Arc::new(queue::SqsQueue::new(sqs.clone(), config.required("WEBHOOK_QUEUE_URL")?)),
            notifications: Arc::new(queue::SqsQueue::new(sqs, config.required("NOTIFICATION_QUEUE_URL")?)),
            policy,
        })
    }
}

pub async fn handle(deps: &Deps, event: SqsEvent) -> Result<SqsBatchResponse, Error> {
    let results = futures::future::join_all(event.records.iter().map(|r| one(deps, r))).await;
    let mut response = SqsBatchResponse::default();
    for (record, result) in event.records.iter().zip(results) {
        let id = record.message_id.clone().unwrap_or_default();
        match result {
            Ok(Delivered::Retrying(_)) => response.add_failure(id),
            Ok(_) => {}
            Err(RecordError::Retryable(e)) => {
                tracing::warn!(error = %e, "webhook delivery will be retried");
                response.add_failure(id);
            }
            Err(RecordError::Permanent(e)) => {
                // A job that can never be delivered (malformed): dropped, not retried.
                tracing::error!(error = %e, "webhook job dropped");
            }
        }
    }
    Ok(response)
}

async fn one(deps: &Deps, record: &SqsMessage) -> Result<Delivered, RecordError> {
    let job: DeliveryJob = parse_body(record)?;
    let attempt = record.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse::<u32>().ok()).unwrap_or(1);
    let receipt = record.receipt_handle.as_deref().unwrap_or_default();
    let d = Deliverer {
        store: &*deps.store,
        transport: &*deps.transport,
        queue: &*deps.queue,
        notifications: &*deps.notifications,
        policy: &deps.policy,
    };
    Ok(d.deliver(&job, attempt, receipt, OffsetDateTime::now_utc()).await?)
}
