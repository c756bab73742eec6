//! The inbound email function. SES receives mail for the workspace's addresses; its receipt rule
//! stores the raw message in S3 and then invokes this function with the SES event. For each
//! message: find the workspace receiving on one of its recipients, read and parse the raw MIME
//! (`domain::channels::email`), store its attachments and inline images in S3 with their type and
//! size, and put the canonical message on the inbound FIFO queue with its threading hints.
//!
//! Automated mail (auto-replies, bounces, loops), spam and virus verdicts that failed, and
//! messages to no workspace are logged and dropped. A message that cannot be parsed is dropped
//! with a warning (its raw copy stays in S3). An S3 or SQS failure fails the invocation, and
//! Lambda retries it (SES invokes asynchronously); the retry is deduplicated by the queue and
//! the store (the provider id is the Message-ID).

use std::sync::Arc;

use aws_lambda_events::ses::{SimpleEmailEvent, SimpleEmailRecord};
use domain::channels::email::{self, Inbound};
use domain::events::InboundEvent;
use domain::finance::Usage;
use domain::model::Attachment;
use domain::objects;
use domain::ports::{ChannelDirectory, FileStore, InboundQueue};
use domain::{Channel, WorkspaceId};
use lambda_runtime::Error;

pub struct Deps {
    pub directory: Arc<dyn ChannelDirectory>,
    /// The workspace's settings, read only for mail that fails authentication (its policy).
    pub workspaces: Arc<dyn domain::ports::WorkspaceStore>,
    pub queue: Arc<dyn InboundQueue>,
    /// The mail bucket: raw messages (written by SES) and the files taken out of them.
    pub files: Arc<dyn FileStore>,
    pub bucket: String,
    /// Where the receipt rule's S3 action puts raw messages (`ObjectKeyPrefix`).
    pub raw_prefix: String,
    pub memory_mb: u64,
}

impl Deps {
    /// `TABLE_NAME`, `INBOUND_QUEUE_URL`, `MAIL_BUCKET`, optional `MAIL_RAW_PREFIX` (`inbound/`).
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let bucket = config.required("MAIL_BUCKET")?;
        let table =
            Arc::new(store::DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), config.required("TABLE_NAME")?));
        Ok(Self {
            directory: Arc::new(app::cache::CachedDirectory::new(table.clone())),
            workspaces: table,
            queue: Arc::new(queue::SqsQueue::new(aws_sdk_sqs::Client::new(aws), config.required("INBOUND_QUEUE_URL")?)),
            files: Arc::new(providers::s3::S3Files::new(aws_sdk_s3::Client::new(aws), bucket.clone())),
            bucket,
            raw_prefix: config.optional("MAIL_RAW_PREFIX").unwrap_or_else(|| "inbound/".into()),
            memory_mb: meter::memory_mb_from_env(),
        })
    }
}

/// What became of one received message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Enqueued {
        workspace: WorkspaceId,
        attachments: usize,
    },
    /// Not a customer's message, or nobody receives it: why.
    Dropped {
        reason: &'static str,
    },
}

pub async fn handle(deps: &Deps, event: SimpleEmailEvent) -> Result<Vec<Outcome>, Error> {
    let mut out = vec![];
    let batch = event.records.len();
    for record in &event.records {
        // What this invocation spends on a message (its Lambda share, the S3 reads and writes) is
        // the message's own AWS cost, like a webhook's.
        let inv = meter::Invocation::new(deps.memory_mb, batch, meter::Trigger::Event);
        out.push(meter::measure(receive(deps, record, &inv)).await.0?);
    }
    Ok(out)
}

fn failed(verdict: &aws_lambda_events::ses::SimpleEmailVerdict) -> bool {
    verdict.status.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("FAIL"))
}

fn passed(verdict: &aws_lambda_events::ses::SimpleEmailVerdict) -> bool {
    verdict.status.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("PASS"))
}

/// Whether SES could tie the mail to its From domain: DMARC passed, or (no DMARC verdict either
/// way) SPF or DKIM passed. A DMARC failure is never authenticated.
pub fn authenticated(receipt: &aws_lambda_events::ses::SimpleEmailReceipt) -> bool {
    if failed(&receipt.dmarc_verdict) {
        return false;
    }
    passed(&receipt.dmarc_verdict) || passed(&receipt.spf_verdict) || passed(&receipt.dkim_verdict)
}

pub async fn receive(deps: &Deps, record: &SimpleEmailRecord, inv: &meter::Invocation) -> Result<Outcome, Error> {
    let ses = &record.ses;
    let ses_id = ses.mail.message_id.clone().ok_or("SES event without a message id")?;
    if failed(&ses.receipt.virus_verdict) || failed(&ses.receipt.spam_verdict) {
        tracing::warn!(%ses_id, "SES marked the message as spam or a virus; dropped");
        return Ok(Outcome::Dropped { reason: "spam_or_virus" });
    }
    // The first recipient a workspace receives on (plus-addressed replies included).
    let mut owner = None;
    for recipient in &ses.receipt.recipients {
        let (base, _) = email::split_plus(recipient);
        if let Some(account) = deps.directory.channel_account(Channel::Email, &base).await? {
            owner = Some((account.workspace, recipient.clone()));
            break;
        }
    }
    let Some((workspace, recipient)) = owner else {
        tracing::warn!(%ses_id, "no workspace receives on any recipient of this message; dropped");
        return Ok(Outcome::Dropped { reason: "unclaimed" });
    };
    let raw_url = objects::s3_url(&deps.bucket, &objects::raw_email(&deps.raw_prefix, &ses_id));
    let raw = deps.files.get_file(&raw_url).await?.ok_or_else(|| format!("{raw_url} is missing"))?;
    let now = time::OffsetDateTime::now_utc();
    let (message, thread, files) = match email::parse(&raw, &recipient, now) {
        Ok(Inbound::Message { message, thread, files }) => (message, thread, files),
        Ok(Inbound::Automated(why)) => {
            tracing::info!(workspace = %workspace, %ses_id, kind = why.as_str(), "automated email; not a customer message");
            return Ok(Outcome::Dropped { reason: why.as_str() });
        }
        Err(e) => {
            tracing::warn!(workspace = %workspace, %ses_id, error = %e, "unreadable email dropped; the raw copy stays in S3");
            return Ok(Outcome::Dropped { reason: "unreadable" });
        }
    };
    let authentic = authenticated(&ses.receipt);
    if !authentic && deps.workspaces.workspace_settings(&workspace).await?.drops_unauthenticated_mail() {
        // The workspace's policy: spoofed-looking mail stays out of the inbox (the raw copy stays
        // in the mail bucket for an operator, like unreadable mail).
        tracing::warn!(workspace = %workspace, %ses_id, "mail failed DMARC/SPF/DKIM; dropped by the workspace's policy");
        return Ok(Outcome::Dropped { reason: "unauthenticated" });
    }
    let mut attachments = Vec::with_capacity(files.len());
    for (i, f) in files.into_iter().enumerate() {
        let key = objects::email_attachment(&workspace, &ses_id, i, f.filename.as_deref());
        let size = f.bytes.len() as u64;
        let url = deps.files.put_file(&key, &f.content_type, f.bytes).await?;
        attachments.push(Attachment {
            content_type: f.content_type,
            size_bytes: Some(size),
            url,
            filename: f.filename,
        });
    }
    let count = attachments.len();
    let mut parsed = *message;
    parsed.attachments = attachments;
    parsed.metadata.insert(email::META_RAW.to_owned(), raw_url.into());
    // SES receiving is priced per message like sending; the enqueue is one SQS request.
    let usage = inv.usage_so_far() + Usage { ses_messages: 1, sqs_requests_milli: 1000, ..Usage::default() };
    let mut inbound = parsed.into_inbound(workspace.clone(), now, usage);
    inbound.thread = Some(thread).filter(|t| *t != email::EmailThread::default());
    if !authentic {
        // Kept for agents to see, but the sender is only claimed: it never threads into the real
        // customer's conversation (its own, flagged, with a merge suggestion).
        tracing::warn!(workspace = %workspace, %ses_id, "mail failed DMARC/SPF/DKIM: the sender is unverified");
        inbound.identity = inbound.identity.claimed();
        inbound.thread = None;
        inbound.metadata.insert(email::META_AUTH_FAILED.to_owned(), true.into());
    }
    deps.queue.enqueue_inbound(&InboundEvent::Message(inbound)).await?;
    tracing::info!(workspace = %workspace, %ses_id, attachments = count, "email enqueued");
    Ok(Outcome::Enqueued { workspace, attachments: count })
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::ChannelAccount;
    use providers::memory::MemoryFiles;
    use queue::memory::MemoryQueue;
    use store::MemoryStore;

    const EVENT: &str = include_str!("../../../events/inbound-email/ses-receipt.json");

    async fn world() -> (Deps, Arc<MemoryFiles>, Arc<MemoryQueue>) {
        let store = Arc::new(MemoryStore::new());
        let account = ChannelAccount {
            display_name: Some("Acme Support".into()),
            ..ChannelAccount::new(WorkspaceId::parse("acme").unwrap(), Channel::Email, "support@acme.example")
        };
        store.put_channel_account(&account).await.unwrap();
        let files = Arc::new(MemoryFiles::default());
        let q = Arc::new(MemoryQueue::new());
        let deps = Deps {
            directory: store.clone(),
            workspaces: store,
            queue: q.clone(),
            files: files.clone(),
            bucket: "memory".into(),
            raw_prefix: "inbound/".into(),
            memory_mb: 128,
        };
        (deps, files, q)
    }

    fn event() -> SimpleEmailEvent {
        serde_json::from_str(EVENT).unwrap()
    }

    async fn put_raw(files: &MemoryFiles, fixture: &str) {
        let raw =
            std::fs::read(format!("{}/../../events/inbound-email/{fixture}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        files.put_file("inbound/o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1", "message/rfc822", raw).await.unwrap();
    }

    #[tokio::test]
    async fn a_reply_with_files_is_stored_and_enqueued_with_its_thread() {
        let (deps, files, q) = world().await;
        put_raw(&files, "apple-mail-reply.eml").await;
        let out = handle(&deps, event()).await.unwrap();
        assert_eq!(out, vec![Outcome::Enqueued { workspace: WorkspaceId::parse("acme").unwrap(), attachments: 2 }]);
        let sent = q.sent();
        assert_eq!(sent.len(), 1);
        let (group, dedup, body) = &sent[0];
        assert_eq!(group, "acme:email:carla@example.net");
        assert!(dedup.starts_with("email:5E1C2B9A"), "{dedup}");
        let InboundEvent::Message(m) = serde_json::from_value::<InboundEvent>(body.clone()).unwrap() else {
            panic!("not a message")
        };
        assert_eq!(m.text.as_deref(), Some("Here is the photo of the damaged box."));
        let pdf = m.attachments.iter().find(|a| a.content_type == "application/pdf").unwrap();
        assert!(pdf.url.ends_with("/1-receipt.pdf"), "{}", pdf.url);
        let (content_type, bytes) = files.file(&pdf.url).unwrap();
        assert_eq!(content_type, "application/pdf");
        assert!(bytes.starts_with(b"%PDF-1.4"));
        assert_eq!(pdf.size_bytes, Some(bytes.len() as u64));
        assert_eq!(m.thread.unwrap().references, vec!["0100018e1a2b3c4d-cccc@email.amazonses.com"]);
        // Its own AWS cost so far: a Lambda share, the SES receipt and the enqueue.
        assert!(m.usage.lambda_requests_milli > 0 && m.usage.lambda_mb_ms > 0, "{:?}", m.usage);
        assert_eq!((m.usage.ses_messages, m.usage.sqs_requests_milli), (1, 1000));
        assert!(m.metadata[email::META_RAW]
            .as_str()
            .unwrap()
            .ends_with("inbound/o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1"));
    }

    #[tokio::test]
    async fn automated_unclaimed_spam_and_missing_mail() {
        let (deps, files, q) = world().await;
        put_raw(&files, "out-of-office.eml").await;
        assert_eq!(handle(&deps, event()).await.unwrap(), vec![Outcome::Dropped { reason: "auto_reply" }]);
        put_raw(&files, "bounce.eml").await;
        assert_eq!(handle(&deps, event()).await.unwrap(), vec![Outcome::Dropped { reason: "bounce" }]);
        let mut spam = event();
        spam.records[0].ses.receipt.spam_verdict.status = Some("FAIL".into());
        assert_eq!(handle(&deps, spam).await.unwrap(), vec![Outcome::Dropped { reason: "spam_or_virus" }]);
        let mut elsewhere = event();
        elsewhere.records[0].ses.receipt.recipients = vec!["sales@other.example".into()];
        assert_eq!(handle(&deps, elsewhere).await.unwrap(), vec![Outcome::Dropped { reason: "unclaimed" }]);
        assert!(q.sent().is_empty(), "nothing automated reaches the queue");
        let mut missing = event();
        missing.records[0].ses.mail.message_id = Some("not-in-s3".into());
        assert!(handle(&deps, missing).await.is_err(), "a missing raw message is retried");
    }

    #[tokio::test]
    async fn mail_failing_dmarc_is_kept_with_a_claimed_sender_and_no_threading() {
        let (deps, files, q) = world().await;
        put_raw(&files, "gmail-reply.eml").await;
        let mut spoofed = event();
        spoofed.records[0].ses.receipt.dmarc_verdict.status = Some("FAIL".into());
        assert!(matches!(handle(&deps, spoofed).await.unwrap()[0], Outcome::Enqueued { .. }));
        let body = &q.sent()[0].2;
        let InboundEvent::Message(m) = serde_json::from_value::<InboundEvent>(body.clone()).unwrap() else {
            panic!("not a message")
        };
        assert!(m.identity.unverified, "claimed, not proven");
        assert!(m.thread.is_none(), "a forged reply names no conversation");
        assert_eq!(m.metadata[email::META_AUTH_FAILED], true);
        // SPF and DKIM failing without a DMARC verdict: the same.
        let mut receipt = event().records[0].ses.receipt.clone();
        receipt.dmarc_verdict.status = None;
        receipt.spf_verdict.status = Some("FAIL".into());
        receipt.dkim_verdict.status = Some("FAIL".into());
        assert!(!authenticated(&receipt));
        receipt.dkim_verdict.status = Some("PASS".into());
        assert!(authenticated(&receipt));

        // A workspace that drops such mail: nothing reaches the inbox, no file is stored.
        let drop = domain::workspace::Settings {
            unauthenticated_mail: Some(domain::workspace::MailPolicy::Drop),
            ..Default::default()
        };
        deps.workspaces.put_workspace_settings(&WorkspaceId::parse("acme").unwrap(), &drop).await.unwrap();
        let mut spoofed = event();
        spoofed.records[0].ses.receipt.dmarc_verdict.status = Some("FAIL".into());
        let out = handle(&deps, spoofed).await.unwrap();
        assert_eq!(out[0], Outcome::Dropped { reason: "unauthenticated" });
        assert_eq!(q.sent().len(), 1, "only the earlier one");
        assert!(
            matches!(handle(&deps, event()).await.unwrap()[0], Outcome::Enqueued { .. }),
            "authentic mail still comes in"
        );
    }
}
