//! `migrate-table`: moves an existing table to the sharded key design (see
//! `store::dynamo::migrate` and docs/scaling.md). Invoke it by hand after upgrading, once per scan
//! segment, again with the `next` it answers until it answers none:
//!
//! ```json
//! {"segment": 0, "segments": 4, "start": {"PK": "…", "SK": "…"}}
//! ```
//!
//! Every field is optional (one segment of one, from the start). Safe to run any number of times,
//! while the new code serves traffic.

use std::time::{Duration, Instant};

use lambda_runtime::Error;
use serde::Deserialize;

/// How long one invocation starts new pages (the function's timeout is 900 s).
pub const RUN_SECONDS: u64 = 780;

pub struct Deps {
    pub store: store::DynamoStore,
    pub budget: Duration,
}

impl Deps {
    /// `TABLE_NAME`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self {
            store: store::DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), config.required("TABLE_NAME")?),
            budget: Duration::from_secs(RUN_SECONDS),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    #[serde(default)]
    pub segment: i32,
    #[serde(default)]
    pub segments: Option<i32>,
    #[serde(default)]
    pub start: Option<store::keys::Key>,
}

pub async fn handle(deps: &Deps, event: serde_json::Value) -> Result<serde_json::Value, Error> {
    let req: Request = serde_json::from_value(event).map_err(|e| format!("the request is not understood: {e}"))?;
    let segments = req.segments.unwrap_or(1);
    if segments < 1 || req.segment < 0 || req.segment >= segments {
        return Err(format!("segment {} of {segments} does not exist", req.segment).into());
    }
    let started = Instant::now();
    let budget = deps.budget;
    let out_of_time = move || started.elapsed() >= budget;
    let done = deps.store.migrate_keys(req.segment, segments, req.start, &out_of_time).await?;
    tracing::info!(
        segment = req.segment,
        scanned = done.scanned,
        conversations = done.conversations,
        counters = done.counters,
        ledger_entries = done.ledger_entries,
        finished = done.next.is_none(),
        "table migration step"
    );
    Ok(serde_json::to_value(&done)?)
}
