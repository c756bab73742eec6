//! The daily retention run, invoked by EventBridge Scheduler: every workspace with a retention
//! period has its resolved conversations older than that period erased (`app::retention`), unless
//! it is under a legal hold. It stops starting new work after `RUN_SECONDS` (the function's
//! timeout leaves room to finish the conversation in hand); what is left is due again tomorrow.
//! Safe to run again at any time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::ports::FileRemover;
use lambda_runtime::Error;
use store::Store;

/// How long a run starts new work (the function's timeout is 900 s).
pub const RUN_SECONDS: u64 = 780;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub files: Arc<dyn FileRemover>,
    pub budget: Duration,
}

impl Deps {
    /// `TABLE_NAME`, `MEDIA_BUCKET`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self {
            store: Arc::new(store::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.required("TABLE_NAME")?,
            )),
            files: Arc::new(providers::s3::S3Files::new(
                aws_sdk_s3::Client::new(aws),
                config.required("MEDIA_BUCKET")?,
            )),
            budget: Duration::from_secs(RUN_SECONDS),
        })
    }
}

/// The schedule's input is ignored (`{}`); the answer lists what each workspace's sweep did.
pub async fn handle(deps: &Deps, _event: serde_json::Value) -> Result<serde_json::Value, Error> {
    let started = Instant::now();
    let budget = deps.budget;
    let out_of_time = move || started.elapsed() >= budget;
    let now = time::OffsetDateTime::now_utc();
    let swept = app::retention::run(&*deps.store, &*deps.files, now, &out_of_time).await?;
    let workspaces: Vec<serde_json::Value> =
        swept.into_iter().map(|(ws, s)| serde_json::json!({ "workspace": ws, "swept": s })).collect();
    Ok(serde_json::json!({ "workspaces": workspaces }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::model::ConversationStatus;
    use domain::ports::{ConversationReader, WorkspaceStore};
    use domain::WorkspaceId;
    use providers::memory::MemoryFiles;
    use store::MemoryStore;

    #[tokio::test]
    async fn the_run_sweeps_every_listed_workspace_and_reports_it() {
        let store = Arc::new(MemoryStore::new());
        let deps =
            Deps { store: store.clone(), files: Arc::new(MemoryFiles::default()), budget: Duration::from_secs(60) };
        let ws = WorkspaceId::parse("acme").unwrap();
        let long_ago = time::OffsetDateTime::now_utc() - time::Duration::days(100);
        let (_, conv) = store::contract::seed_conversation(&*store, &ws, 1, long_ago).await;
        let mut done = conv.clone();
        done.status = ConversationStatus::Resolved;
        store::contract::replace_conversation(&*store, &conv, done).await;
        let settings = domain::workspace::Settings { retention_days: Some(90), ..Default::default() };
        store.put_workspace_settings(&ws, &settings).await.unwrap();
        let out = handle(&deps, serde_json::json!({})).await.unwrap();
        assert_eq!(out["workspaces"][0]["workspace"], "acme");
        assert_eq!(out["workspaces"][0]["swept"]["conversations"], 1);
        assert!(store.conversation(&ws, conv.id).await.unwrap().is_none());
    }
}
