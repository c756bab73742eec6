//! The notifier: consumes the notification FIFO queue (in order per conversation), fans each event
//! out to the sockets that should see it (`app::fanout`), then hands it to the workspace's outbound
//! webhook endpoints (`app::hooks::dispatch`: one job per subscribed endpoint on the webhook queue).
//! Store and queue failures are retried (the event is redelivered: the webhook jobs it queued
//! again carry the same `webhook-id`s); a socket that fails is skipped.

use std::sync::Arc;

use app::fanout::{fan_out, Sockets};
use app::hooks::{dispatch, EndpointCache};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use domain::events::Notification;
use domain::ports::{ConnectionPusher, HookQueue};
use kit::fifo::{parse_body, process_in_order};
use lambda_runtime::Error;
use store::Store;
use time::OffsetDateTime;

pub use push::ApiGatewayPusher;
pub struct Deps {
    pub store: Arc<dyn Store>,
    /// The agents' socket API.
    pub pusher: Arc<dyn ConnectionPusher>,
    /// The web chat visitors' socket API: agents' typing and "seen" reach the visitor.
    pub visitors: Arc<dyn ConnectionPusher>,
    /// The webhook delivery queue.
    pub hooks: Arc<dyn HookQueue>,
    /// Each workspace's endpoints, per container.
    pub endpoints: EndpointCache,
}

impl Deps {
    /// `TABLE_NAME`, `WEBSOCKET_ENDPOINT`, `VISITOR_SOCKET_ENDPOINT`, `WEBHOOK_QUEUE_URL`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self {
            store: Arc::new(store::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.required("TABLE_NAME")?,
            )),
            pusher: Arc::new(ApiGatewayPusher::new(aws, &config.required("WEBSOCKET_ENDPOINT")?)),
            visitors: Arc::new(ApiGatewayPusher::new(aws, &config.required("VISITOR_SOCKET_ENDPOINT")?)),
            hooks: Arc::new(queue::SqsQueue::new(aws_sdk_sqs::Client::new(aws), config.required("WEBHOOK_QUEUE_URL")?)),
            endpoints: EndpointCache::default(),
        })
    }
}

pub async fn handle(deps: &Deps, event: SqsEvent) -> Result<SqsBatchResponse, Error> {
    Ok(process_in_order(event, |record| async move {
        let event: Notification = parse_body(&record)?;
        let sockets = Sockets { store: &*deps.store, agents: &*deps.pusher, visitors: &*deps.visitors };
        let now = OffsetDateTime::now_utc();
        fan_out(&sockets, &event, now).await?;
        // When the notification was first queued: a redelivery yields the same webhook ids.
        let queued_ms = record
            .attributes
            .get("SentTimestamp")
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or_else(|| u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or_default());
        dispatch(&*deps.store, &deps.endpoints, &*deps.hooks, &event, queued_ms, now).await?;
        Ok(())
    })
    .await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::PushError;
    use store::MemoryStore;

    const FIXTURE: &str = include_str!("../../../events/notifier/sqs-message-created.json");

    struct Nobody;

    #[async_trait::async_trait]
    impl ConnectionPusher for Nobody {
        async fn push(&self, _: &domain::ConnectionId, _: &[u8]) -> Result<(), PushError> {
            Err(PushError::Gone)
        }
    }

    #[tokio::test]
    async fn the_fixture_batch_is_consumed_and_garbage_fails_permanently() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps {
            store,
            pusher: Arc::new(Nobody),
            visitors: Arc::new(Nobody),
            hooks: Arc::new(queue::memory::MemoryQueue::new()),
            endpoints: EndpointCache::default(),
        };
        let mut event: SqsEvent = serde_json::from_str(FIXTURE).unwrap();
        let res = handle(&deps, event.clone()).await.unwrap();
        assert!(res.batch_item_failures.is_empty(), "nobody connected: nothing to do");
        event.records[0].body = Some("{\"type\":\"nonsense\"}".into());
        let res = handle(&deps, event).await.unwrap();
        assert_eq!(res.batch_item_failures.len(), 1);
    }
}
