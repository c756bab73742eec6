//! SES's events about the email we send, as SNS delivers them from the configuration set's event
//! destination: deliveries and bounces become delivery statuses of the message (through the
//! inbound queue, in the recipient's FIFO group, like every provider's statuses), and hard
//! bounces and complaints suppress the address (a consent change with SES as its source: replies
//! to it are refused until an agent re-enables it).
//!
//! An event about a sender address no workspace owns, or one that cannot be read, is logged and
//! dropped; a queue failure fails the invocation so SNS retries it (deduplicated by the queue).

use std::sync::Arc;

use aws_lambda_events::sns::SnsEvent;
use domain::channels::email::{self, ses_feedback};
use domain::consent::{Change, Source, Status};
use domain::events::{ConsentUpdate, InboundEvent, StatusUpdate};
use domain::model::Identity;
use domain::ports::{ChannelDirectory, InboundQueue};
use domain::{Channel, EmailAddress};
use lambda_runtime::Error;

pub struct Deps {
    pub directory: Arc<dyn ChannelDirectory>,
    pub queue: Arc<dyn InboundQueue>,
}

impl Deps {
    /// `TABLE_NAME`, `INBOUND_QUEUE_URL`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self {
            directory: Arc::new(store::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.required("TABLE_NAME")?,
            )),
            queue: Arc::new(queue::SqsQueue::new(aws_sdk_sqs::Client::new(aws), config.required("INBOUND_QUEUE_URL")?)),
        })
    }
}

/// How many statuses and suppressions each SNS record became.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    pub statuses: usize,
    pub suppressions: usize,
    pub dropped: usize,
}

pub async fn handle(deps: &Deps, event: SnsEvent) -> Result<Outcome, Error> {
    let now = time::OffsetDateTime::now_utc();
    let mut out = Outcome::default();
    for record in &event.records {
        let feedback = match ses_feedback(&record.sns.message, now) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable SES event dropped");
                out.dropped += 1;
                continue;
            }
        };
        // The workspace's own address (split_plus trims and lower-cases it).
        let sender = feedback.source.as_deref().map(|s| email::split_plus(s).0);
        let account = match &sender {
            Some(s) => deps.directory.channel_account(Channel::Email, s).await?,
            None => None,
        };
        let Some(account) = account else {
            tracing::warn!(ses_message_id = %feedback.ses_message_id, kind = %feedback.kind,
                "SES event for a sender no workspace owns; dropped");
            out.dropped += 1;
            continue;
        };
        let ws = account.workspace;
        if let Some(event) = &feedback.event {
            let recipient = feedback.destination.iter().find_map(|d| EmailAddress::parse(d).ok());
            if let Some(recipient) = recipient {
                let update = StatusUpdate {
                    workspace: ws.clone(),
                    channel: Channel::Email,
                    provider: email::SES_PROVIDER.to_owned(),
                    provider_message_id: feedback.ses_message_id.clone(),
                    recipient: Identity::email(&recipient),
                    event: event.clone(),
                    metadata: [("ses_event".to_owned(), serde_json::Value::from(feedback.kind.clone()))].into(),
                };
                deps.queue.enqueue_inbound(&InboundEvent::Status(update)).await?;
                out.statuses += 1;
            }
        }
        // Only hard bounces and complaints suppress.
        let reason = if feedback.kind == "complaint" { "complaint" } else { "hard_bounce" };
        for address in &feedback.suppress {
            let update = ConsentUpdate {
                workspace: ws.clone(),
                identity: Identity::email(address),
                change: Change {
                    status: Status::OptedOut,
                    at: feedback.event.as_ref().map_or(now, |e| e.at),
                    source: Source::Provider {
                        provider: email::SES_PROVIDER.to_owned(),
                        reason: reason.to_owned(),
                        provider_message_id: feedback.ses_message_id.clone(),
                    },
                },
            };
            deps.queue.enqueue_inbound(&InboundEvent::Consent(update)).await?;
            out.suppressions += 1;
        }
        tracing::info!(workspace = %ws, ses_message_id = %feedback.ses_message_id, kind = %feedback.kind,
            suppressions = feedback.suppress.len(), "SES event enqueued");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::ChannelAccount;
    use domain::WorkspaceId;
    use queue::memory::MemoryQueue;
    use store::MemoryStore;

    const EVENT: &str = include_str!("../../../events/ses-events/sns-bounce.json");

    async fn deps() -> (Deps, Arc<MemoryQueue>) {
        let store = Arc::new(MemoryStore::new());
        let account = ChannelAccount::new(WorkspaceId::parse("acme").unwrap(), Channel::Email, "support@acme.example");
        store.put_channel_account(&account).await.unwrap();
        let q = Arc::new(MemoryQueue::new());
        (Deps { directory: store, queue: q.clone() }, q)
    }

    #[tokio::test]
    async fn a_hard_bounce_fails_the_message_and_suppresses_the_address() {
        let (deps, q) = deps().await;
        let event: SnsEvent = serde_json::from_str(EVENT).unwrap();
        let out = handle(&deps, event).await.unwrap();
        assert_eq!(out, Outcome { statuses: 1, suppressions: 1, dropped: 0 });
        let sent = q.sent();
        assert_eq!(sent[0].0, "acme:email:ann.lee@example.com");
        let InboundEvent::Status(s) = serde_json::from_value(sent[0].2.clone()).unwrap() else { panic!() };
        assert_eq!((s.provider.as_str(), s.provider_message_id.as_str()), ("ses", "0100018e1a2b3c4d-aaaa"));
        assert_eq!(s.event.error_code.as_deref(), Some("hard_bounce"));
        let InboundEvent::Consent(c) = serde_json::from_value(sent[1].2.clone()).unwrap() else { panic!() };
        assert_eq!(c.identity.value, "ann.lee@example.com");
        assert_eq!(c.change.status, Status::OptedOut);
        assert_eq!(sent[1].0, sent[0].0, "the suppression queues behind the status in the person's group");
    }

    #[tokio::test]
    async fn unknown_senders_and_garbage_are_dropped() {
        let (deps, q) = deps().await;
        let mut event: SnsEvent = serde_json::from_str(EVENT).unwrap();
        event.records[0].sns.message = event.records[0].sns.message.replace("support@acme.example", "x@other.example");
        let mut garbage = event.records[0].clone();
        garbage.sns.message = "not json".into();
        event.records.push(garbage);
        assert_eq!(handle(&deps, event).await.unwrap(), Outcome { statuses: 0, suppressions: 0, dropped: 2 });
        assert!(q.sent().is_empty());
    }
}
