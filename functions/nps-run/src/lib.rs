//! The daily Net Promoter Score run, invoked by EventBridge Scheduler: every workspace whose rules
//! turn NPS on (or the one the event names) asks its due contacts through `app::nps`. Safe to run
//! again at any time: a contact is asked at most once per cadence window.

use std::sync::Arc;

use app::nps::Runner;
use domain::finance::service::RateCardCache;
use domain::ports::OutboundQueue;
use lambda_runtime::Error;
use serde::Deserialize;
use store::Store;
use time::OffsetDateTime;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub outbound: Arc<dyn OutboundQueue>,
    pub rates: RateCardCache,
}

impl Deps {
    /// `TABLE_NAME`, `OUTBOUND_QUEUE_URL`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self {
            store: Arc::new(store::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.required("TABLE_NAME")?,
            )),
            outbound: Arc::new(queue::SqsQueue::new(
                aws_sdk_sqs::Client::new(aws),
                config.required("OUTBOUND_QUEUE_URL")?,
            )),
            rates: RateCardCache::default(),
        })
    }
}

/// The schedule's input: `{}` runs every workspace with NPS on; `{"workspace": "acme"}` one.
#[derive(Debug, Default, Deserialize)]
pub struct Run {
    #[serde(default)]
    pub workspace: Option<domain::WorkspaceId>,
}

pub async fn handle(deps: &Deps, run: Run) -> Result<serde_json::Value, Error> {
    let runner = Runner { store: &*deps.store, outbound: &*deps.outbound, rates: &deps.rates };
    let now = OffsetDateTime::now_utc();
    let ran = match run.workspace {
        Some(ws) => [(ws.clone(), runner.run(&ws, now).await?)].into_iter().collect(),
        None => runner.run_all(now).await?,
    };
    let out: serde_json::Map<String, serde_json::Value> = ran
        .into_iter()
        .map(|(ws, r)| (ws.to_string(), serde_json::json!({ "segment": r.segment, "asked": r.asked })))
        .collect();
    Ok(serde_json::Value::Object(out))
}
