//! The analytics aggregator: consumes the analytics queue (SQS standard, latency-tolerant) and
//! applies the batch's facts to the hourly aggregates through `app::analytics` — each fact once
//! (its marker commits with the aggregates), so a redelivered event changes nothing. The whole
//! batch is applied together: events of one hour and channel touch the same aggregate, which is
//! then read and written once.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use domain::analytics::AnalyticsEvent;
use kit::fifo::{parse_body, RecordError};
use lambda_runtime::Error;
use store::Store;

pub struct Deps {
    pub store: Arc<dyn Store>,
}

impl Deps {
    /// `TABLE_NAME`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self {
            store: Arc::new(store::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.required("TABLE_NAME")?,
            )),
        })
    }
}

pub async fn handle(deps: &Deps, event: SqsEvent) -> Result<SqsBatchResponse, Error> {
    let mut response = SqsBatchResponse::default();
    let mut facts = vec![];
    let mut read = vec![];
    for record in &event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let derived: Result<_, RecordError> = async {
            let e: AnalyticsEvent = parse_body(record)?;
            Ok(app::analytics::facts_of(&*deps.store, &e).await?)
        }
        .await;
        match derived {
            Ok(f) => {
                facts.extend(f);
                read.push(id);
            }
            Err(RecordError::Retryable(e)) => {
                tracing::warn!(error = %e, "analytics event will be retried");
                response.add_failure(id);
            }
            Err(RecordError::Permanent(e)) => tracing::error!(error = %e, "analytics event dropped"),
        }
    }
    // The whole batch's facts together: one read and one transaction per 25 facts.
    match app::analytics::apply(&*deps.store, &facts).await {
        Ok(n) => tracing::info!(events = read.len(), facts = facts.len(), applied = n, "analytics batch applied"),
        Err(e) => {
            tracing::warn!(error = %e, "analytics batch will be retried");
            for id in read {
                response.add_failure(id);
            }
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::events::Notification;
    use domain::ports::AnalyticsStore;
    use store::MemoryStore;
    use time::OffsetDateTime;

    #[tokio::test]
    async fn an_event_counts_once_however_often_it_is_delivered() {
        let store = Arc::new(MemoryStore::new());
        let ws = domain::WorkspaceId::parse("acme").unwrap();
        let now = OffsetDateTime::now_utc();
        let (_, conv) = store::contract::seed_conversation(&*store, &ws, 7, now).await;
        let event = AnalyticsEvent {
            event: Notification::MessageCreated {
                workspace: ws.clone(),
                conversation_id: conv.id,
                message_id: domain::MessageId::new(),
                direction: domain::model::Direction::Inbound,
                channel: domain::Channel::Sms,
                opened: true,
            },
            at: now,
        };
        let mut sqs = SqsEvent::default();
        let mut record = aws_lambda_events::sqs::SqsMessage::default();
        record.message_id = Some("m1".into());
        record.body = Some(serde_json::to_string(&event).unwrap());
        sqs.records = vec![record.clone(), record];
        let res = handle(&Deps { store: store.clone() }, sqs).await.unwrap();
        assert!(res.batch_item_failures.is_empty());
        let hour = domain::analytics::hour_of(now);
        let agg = store.aggregates(&ws, "channel", &hour, &hour).await.unwrap();
        assert_eq!(agg.len(), 1);
        assert_eq!((agg[0].2.counts.messages_in, agg[0].2.counts.conversations), (1, 1));
    }
}
