//! The notifier: consumes the notification FIFO queue (in order per conversation), fans each event
//! out to the sockets that should see it (`app::fanout`), then hands it to the workspace's outbound
//! webhook endpoints (`app::hooks::dispatch`: one job per subscribed endpoint on the webhook queue).
//! A conversation's resolution also asks the customer's satisfaction (`app::csat`: once, on
//! their channel, through the reply path). Store and queue failures are retried (the event is
//! redelivered: the webhook jobs it queued again carry the same `webhook-id`s, the survey its
//! idempotency key); a socket that fails is skipped.

use std::sync::Arc;

use app::csat::{Asker, Links};
use app::fanout::{fan_out, ConnectionSnapshot, Sockets};
use app::hooks::{dispatch, EndpointCache};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use domain::analytics::AnalyticsEvent;
use domain::events::{ConversationChange, Notification};
use domain::finance::service::RateCardCache;
use domain::ports::{AnalyticsQueue, ConnectionPusher, HookQueue, OutboundQueue};
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
    /// Where the satisfaction survey is queued, priced and linked from.
    pub outbound: Arc<dyn OutboundQueue>,
    pub rates: RateCardCache,
    pub links: Links,
    /// Where the events analytics counts go, one batch per notifier batch.
    pub analytics: Arc<dyn AnalyticsQueue>,
}

impl Deps {
    /// `TABLE_NAME`, `WEBSOCKET_ENDPOINT`, `VISITOR_SOCKET_ENDPOINT`, `WEBHOOK_QUEUE_URL`,
    /// `OUTBOUND_QUEUE_URL`, `PUBLIC_BASE_URL` and `LINK_SIGNING_SECRET` (which signs the
    /// survey's rating links).
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let sqs = aws_sdk_sqs::Client::new(aws);
        Ok(Self {
            store: Arc::new(store::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.required("TABLE_NAME")?,
            )),
            pusher: Arc::new(ApiGatewayPusher::new(aws, &config.required("WEBSOCKET_ENDPOINT")?)),
            visitors: Arc::new(ApiGatewayPusher::new(aws, &config.required("VISITOR_SOCKET_ENDPOINT")?)),
            hooks: Arc::new(queue::SqsQueue::new(sqs.clone(), config.required("WEBHOOK_QUEUE_URL")?)),
            endpoints: EndpointCache::default(),
            outbound: Arc::new(queue::SqsQueue::new(sqs, config.required("OUTBOUND_QUEUE_URL")?)),
            rates: RateCardCache::default(),
            links: Links {
                base_url: config.required("PUBLIC_BASE_URL")?,
                key: domain::csat::link_key(config.secret("LINK_SIGNING_SECRET", aws).await?.as_bytes()),
            },
            analytics: Arc::new(queue::SqsQueue::new(
                aws_sdk_sqs::Client::new(aws),
                config.required("ANALYTICS_QUEUE_URL")?,
            )),
        })
    }
}

pub async fn handle(deps: &Deps, event: SqsEvent) -> Result<SqsBatchResponse, Error> {
    let counted = std::sync::Mutex::new(Vec::<(String, AnalyticsEvent)>::new());
    // Each workspace's connections are read once for the whole batch.
    let connections = ConnectionSnapshot::default();
    let response = process_in_order(event, |record| {
        let counted = &counted;
        let connections = &connections;
        async move {
            let event: Notification = parse_body(&record)?;
            let sockets =
                Sockets { store: &*deps.store, connections, agents: &*deps.pusher, visitors: &*deps.visitors };
            let now = OffsetDateTime::now_utc();
            fan_out(&sockets, &event, now).await?;
            // When the notification was first queued: a redelivery yields the same webhook ids.
            let queued_ms = record
                .attributes
                .get("SentTimestamp")
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or_else(|| u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or_default());
            dispatch(&*deps.store, &deps.endpoints, &*deps.hooks, &event, queued_ms, now).await?;
            if let Notification::ConversationChanged {
                workspace,
                conversation_id,
                change: ConversationChange::Resolved,
                ..
            } = &event
            {
                let asker =
                    Asker { store: &*deps.store, outbound: &*deps.outbound, rates: &deps.rates, links: &deps.links };
                asker.ask(workspace, *conversation_id, now).await?;
            }
            if app::analytics::counts(&event) {
                let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(queued_ms) * 1_000_000).unwrap_or(now);
                let id = record.message_id.clone().unwrap_or_default();
                counted.lock().unwrap_or_else(|p| p.into_inner()).push((id, AnalyticsEvent { event, at }));
            }
            Ok(())
        }
    })
    .await;
    // What was handled goes to analytics in one batch. Analytics never holds up real time: if the
    // batch cannot be queued, the gap is logged as an error; the notifications stand.
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    let events: Vec<AnalyticsEvent> = counted
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .filter(|(id, _)| !failed.contains(&id.as_str()))
        .map(|(_, e)| e)
        .collect();
    if !events.is_empty() {
        if let Err(e) = deps.analytics.enqueue_analytics(&events).await {
            tracing::error!(error = %e, events = events.len(), "analytics events not queued: a gap in analytics");
        }
    }
    Ok(response)
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
            outbound: Arc::new(queue::memory::MemoryQueue::new()),
            rates: RateCardCache::default(),
            links: Links { base_url: "http://localhost".into(), key: b"k".to_vec() },
            analytics: Arc::new(queue::memory::MemoryQueue::new()),
        };
        let mut event: SqsEvent = serde_json::from_str(FIXTURE).unwrap();
        let res = handle(&deps, event.clone()).await.unwrap();
        assert!(res.batch_item_failures.is_empty(), "nobody connected: nothing to do");
        event.records[0].body = Some("{\"type\":\"nonsense\"}".into());
        let res = handle(&deps, event).await.unwrap();
        assert_eq!(res.batch_item_failures.len(), 1);
    }
}
