//! The inbound processor: for each canonical inbound event, in FIFO order, the ingest use case
//! (`app::ingest`): resolve, thread, store once, announce, route, answer. This crate is wiring:
//! decode the record, call the use case, classify its error for the batch.

use std::sync::Arc;

use app::ingest::Ingest;
pub use app::ingest::{Ingested, AUTO_REPLY_AFTER_HOURS};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use domain::events::InboundEvent;
use domain::finance::service::RateCardCache;
use domain::ports::{NotificationQueue, OutboundQueue};
use domain::timers::SlaTimers;
use kit::fifo::{parse_body, process_in_order, RecordError};
use lambda_runtime::Error;
use meter::{Invocation, Trigger};
use store::Store;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub notifications: Arc<dyn NotificationQueue>,
    /// Automatic answers (HELP) go out through the sender like any reply.
    pub outbound: Arc<dyn OutboundQueue>,
    pub help_text: String,
    pub rates: RateCardCache,
    pub budgets: app::cache::BudgetCache,
    pub sla: app::cache::SlaCache,
    /// Service-level timers (`SLA_STATE_MACHINE_ARN`).
    pub timers: Arc<dyn SlaTimers>,
    pub memory_mb: u64,
}

impl Deps {
    pub fn new(
        store: Arc<dyn Store>,
        notifications: Arc<dyn NotificationQueue>,
        outbound: Arc<dyn OutboundQueue>,
        timers: Arc<dyn SlaTimers>,
    ) -> Self {
        Self {
            store,
            notifications,
            outbound,
            timers,
            sla: Default::default(),
            help_text: domain::consent::DEFAULT_HELP_TEXT.to_owned(),
            rates: RateCardCache::default(),
            budgets: app::cache::BudgetCache::default(),
            memory_mb: meter::memory_mb_from_env(),
        }
    }

    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let sqs = aws_sdk_sqs::Client::new(aws);
        let mut deps = Self::new(
            Arc::new(
                store::DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), config.required("TABLE_NAME")?)
                    .with_settings_cache(settings_ttl(config)?),
            ),
            Arc::new(queue::SqsQueue::new(sqs.clone(), config.required("NOTIFICATION_QUEUE_URL")?)),
            Arc::new(queue::SqsQueue::new(sqs, config.required("OUTBOUND_QUEUE_URL")?)),
            Arc::new(
                timers::SfnTimers::new(aws_sdk_sfn::Client::new(aws)).sla(config.required("SLA_STATE_MACHINE_ARN")?),
            ),
        );
        if let Some(text) = config.optional("HELP_TEXT").filter(|t| !t.trim().is_empty()) {
            deps.help_text = text;
        }
        Ok(deps)
    }
}

/// `SETTINGS_CACHE_SECONDS`: how long routing rules and teams are remembered (0 or unset: read on
/// every new conversation).
fn settings_ttl(config: &kit::Config) -> Result<std::time::Duration, kit::ConfigError> {
    let Some(raw) = config.optional("SETTINGS_CACHE_SECONDS") else { return Ok(std::time::Duration::ZERO) };
    raw.trim().parse::<u64>().map(std::time::Duration::from_secs).map_err(|_| kit::ConfigError::Invalid {
        name: "SETTINGS_CACHE_SECONDS".into(),
        reason: format!("not a number of seconds: {raw}"),
    })
}

pub async fn handle(deps: &Deps, event: SqsEvent) -> Result<SqsBatchResponse, Error> {
    let batch = event.records.len();
    Ok(process_in_order(event, |record| async move {
        let event: InboundEvent = parse_body(&record)?;
        let inv = Invocation::new(deps.memory_mb, batch, Trigger::SqsBatch);
        meter::measure(ingest_with(deps, event, &inv)).await.0.map(|_| ())
    })
    .await)
}

/// Ingests one event outside a batch (tests, the local tools).
pub async fn ingest(deps: &Deps, event: InboundEvent) -> Result<Ingested, RecordError> {
    ingest_with(deps, event, &Invocation::new(deps.memory_mb, 1, Trigger::SqsBatch)).await
}

async fn ingest_with(deps: &Deps, event: InboundEvent, inv: &Invocation) -> Result<Ingested, RecordError> {
    let use_case = Ingest {
        store: &*deps.store,
        notifications: &*deps.notifications,
        outbound: &*deps.outbound,
        rates: &deps.rates,
        budgets: &deps.budgets,
        sla: &deps.sla,
        timers: &*deps.timers,
        help_text: &deps.help_text,
        usage_so_far: &|| inv.usage_so_far(),
        clock: &time::OffsetDateTime::now_utc,
    };
    Ok(use_case.event(event).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::sqs::SqsMessage;
    use domain::ports::InboundStore;
    use domain::WorkspaceId;
    use domain::{Identity, PhoneNumber};
    use queue::memory::MemoryQueue;
    use store::MemoryStore;

    const FIXTURE: &str = include_str!("../../../events/inbound-processor/sqs-inbound-sms.json");

    fn deps() -> (Deps, Arc<MemoryStore>, Arc<MemoryQueue>) {
        let s = Arc::new(MemoryStore::new());
        let q = Arc::new(MemoryQueue::new());
        (Deps::new(s.clone(), q.clone(), q.clone(), Arc::new(timers::RecordingTimers::default())), s, q)
    }

    fn ws() -> WorkspaceId {
        WorkspaceId::parse("demo").unwrap()
    }

    #[tokio::test]
    async fn the_fixture_batch_is_stored_and_announced() {
        let (deps, s, q) = deps();
        let event: SqsEvent = serde_json::from_str(FIXTURE).unwrap();
        let res = handle(&deps, event).await.unwrap();
        assert!(res.batch_item_failures.is_empty());
        let p = PhoneNumber::parse("+14155552671").unwrap();
        let contact = s.contact_by_identity(&ws(), &Identity::phone(&p)).await.unwrap().unwrap();
        let conv = s.current_conversation(&ws(), &contact).await.unwrap().unwrap();
        assert_eq!(conv.unread_count, 1);
        let types: Vec<String> = q.sent().iter().map(|(_, _, b)| b["type"].as_str().unwrap().to_owned()).collect();
        // Nobody is online in a fresh workspace: the conversation waits for the first agent.
        assert_eq!(types, ["message_created", "conversation_changed"]);
    }

    #[tokio::test]
    async fn a_garbage_record_fails_with_everything_after_it() {
        let (deps, _, _) = deps();
        let mut event: SqsEvent = serde_json::from_str(FIXTURE).unwrap();
        let mut bad = SqsMessage::default();
        bad.message_id = Some("bad".into());
        bad.body = Some("{not json".into());
        let good = event.records[0].clone();
        event.records = vec![bad, good];
        let res = handle(&deps, event).await.unwrap();
        assert_eq!(res.batch_item_failures.len(), 2);
    }
}
