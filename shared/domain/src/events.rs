//! What travels on the queues. Each payload is versioned by its `type` tag so consumers can reject
//! what they do not understand as a permanent failure instead of retrying it forever.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{ConversationId, MessageId, WorkspaceId};
use crate::model::{Attachment, Channel, DeliveryStatus, Direction, Identity};

/// A customer message, normalised by a channel adapter, on the inbound FIFO queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    pub workspace: WorkspaceId,
    pub channel: Channel,
    pub identity: Identity,
    pub contact_address: String,
    pub our_address: String,
    pub contact_name: Option<String>,
    pub provider: String,
    pub provider_message_id: String,
    pub text: Option<String>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub provider_timestamp: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
}

impl InboundMessage {
    /// FIFO group: one sender identity in one workspace. Messages from one person stay in order;
    /// different people are processed in parallel.
    pub fn group_id(&self) -> String {
        format!("{}:{}:{}", self.workspace, self.identity.kind.as_str(), self.identity.value)
    }
    /// FIFO deduplication: the provider's own id, so a webhook retried within five minutes is dropped
    /// by SQS itself (and anything later by the store's dedup item).
    pub fn dedup_id(&self) -> String {
        format!("{}:{}", self.provider, self.provider_message_id)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InboundEvent {
    Message(InboundMessage),
}

/// An agent reply stored as queued, to be sent by the outbound sender.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundJob {
    pub workspace: WorkspaceId,
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
}

impl OutboundJob {
    /// One group per conversation: replies in one conversation leave in the order agents sent them.
    pub fn group_id(&self) -> String {
        format!("{}:{}", self.workspace, self.conversation_id)
    }
    pub fn dedup_id(&self) -> String {
        self.message_id.to_string()
    }
}

/// Events for agents' screens and integrations, on the notification FIFO queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notification {
    MessageCreated {
        workspace: WorkspaceId,
        conversation_id: ConversationId,
        message_id: MessageId,
        direction: Direction,
        channel: Channel,
    },
    DeliveryStatusChanged {
        workspace: WorkspaceId,
        conversation_id: ConversationId,
        message_id: MessageId,
        status: DeliveryStatus,
    },
}

impl Notification {
    pub fn workspace(&self) -> &WorkspaceId {
        match self {
            Notification::MessageCreated { workspace, .. } | Notification::DeliveryStatusChanged { workspace, .. } => {
                workspace
            }
        }
    }
    pub fn group_id(&self) -> String {
        match self {
            Notification::MessageCreated { workspace, conversation_id, .. }
            | Notification::DeliveryStatusChanged { workspace, conversation_id, .. } => {
                format!("{workspace}:{conversation_id}")
            }
        }
    }
    pub fn dedup_id(&self) -> String {
        match self {
            Notification::MessageCreated { message_id, .. } => format!("created:{message_id}"),
            Notification::DeliveryStatusChanged { message_id, status, .. } => {
                format!("status:{message_id}:{}", status.as_str())
            }
        }
    }
}
