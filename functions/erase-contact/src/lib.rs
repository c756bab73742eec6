//! The erasure loop's task (template.yaml `ErasureStateMachine`): Step Functions invokes this with
//! the [`Job`] the DELETE route started; it runs one step (`app::erase::step`, up to
//! `TASK_CONVERSATIONS` conversations) and answers the job with `done` set once the receipt is
//! written, which ends the loop. An error (the table or S3 unavailable) fails the invocation and
//! the state machine's retry policy runs the step again; every step is idempotent.

use std::sync::Arc;

use domain::erasure::{Job, Progress};
use domain::ports::FileRemover;
use lambda_runtime::Error;
use store::Store;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub files: Arc<dyn FileRemover>,
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
        })
    }
}

pub async fn handle(deps: &Deps, mut job: Job) -> Result<Job, Error> {
    let now = time::OffsetDateTime::now_utc();
    job.done = match app::erase::step(&*deps.store, &*deps.files, &job, app::erase::TASK_CONVERSATIONS, now).await? {
        Some(Progress::Done(_)) => true,
        Some(Progress::More) => false,
        // A legal hold stops the loop; erasing again after the hold is lifted resumes the work.
        Some(Progress::Held(_)) => {
            tracing::warn!(workspace = %job.workspace, contact = %job.contact, "erasure stopped by a legal hold");
            true
        }
        // Nothing to erase and no receipt: nothing more will ever come of it.
        None => {
            tracing::warn!(workspace = %job.workspace, contact = %job.contact, "erasure of a contact that is not there");
            true
        }
    };
    tracing::info!(workspace = %job.workspace, contact = %job.contact, done = job.done, "erasure step");
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::ErasureStore;
    use domain::{AgentId, ContactId, WorkspaceId};
    use providers::memory::MemoryFiles;
    use store::MemoryStore;

    #[tokio::test]
    async fn a_step_answers_the_job_done_once_the_receipt_is_written() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps { store: store.clone(), files: Arc::new(MemoryFiles::default()) };
        let ws = WorkspaceId::parse("acme").unwrap();
        let now = time::OffsetDateTime::now_utc();
        let (contact, _) = store::contract::seed_conversation(&*store, &ws, 3, now).await;
        let job = Job {
            workspace: ws.clone(),
            contact: contact.id,
            by: AgentId::parse("ada").unwrap(),
            requested_at: now,
            done: false,
        };
        // The task's input and output are the same JSON shape (the loop feeds one into the next).
        let input: Job = serde_json::from_value(serde_json::json!({
            "workspace": "acme", "contact": contact.id, "by": "ada",
            "requested_at": now.format(&time::format_description::well_known::Rfc3339).unwrap(),
        }))
        .unwrap();
        assert_eq!(input, job);
        let out = handle(&deps, job.clone()).await.unwrap();
        assert!(out.done);
        assert!(store.erasure_receipt(&ws, contact.id).await.unwrap().is_some());
        let gone = Job { contact: ContactId::new(), ..job };
        assert!(handle(&deps, gone).await.unwrap().done, "an unknown contact ends the loop");
    }
}
