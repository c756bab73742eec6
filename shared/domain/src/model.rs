//! The canonical model (seed 000): Workspace → Contact (with channel identities) → Conversation →
//! Message. Channel-specific data lives in `metadata`, never in the core fields.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::address::{EmailAddress, PhoneNumber};
use crate::error::ParseError;
use crate::ids::{AgentId, ContactId, ConversationId, MessageId, WorkspaceId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Sms,
    Whatsapp,
    Email,
    Messenger,
    Instagram,
    Telegram,
    Webchat,
    Voice,
}

impl Channel {
    pub const ALL: [Channel; 8] = [
        Channel::Sms,
        Channel::Whatsapp,
        Channel::Email,
        Channel::Messenger,
        Channel::Instagram,
        Channel::Telegram,
        Channel::Webchat,
        Channel::Voice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
            Channel::Email => "email",
            Channel::Messenger => "messenger",
            Channel::Instagram => "instagram",
            Channel::Telegram => "telegram",
            Channel::Webchat => "webchat",
            Channel::Voice => "voice",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| ParseError::Invalid { kind: "channel", reason: format!("unknown channel {s:?}") })
    }

    /// Which identity a sender on this channel is known by. SMS, WhatsApp and voice share the phone
    /// number, so one person texting and calling from one number is one contact.
    pub fn identity_kind(self) -> IdentityKind {
        match self {
            Channel::Sms | Channel::Whatsapp | Channel::Voice => IdentityKind::Phone,
            Channel::Email => IdentityKind::Email,
            Channel::Messenger => IdentityKind::Messenger,
            Channel::Instagram => IdentityKind::Instagram,
            Channel::Telegram => IdentityKind::Telegram,
            Channel::Webchat => IdentityKind::Webchat,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    Phone,
    Email,
    Messenger,
    Instagram,
    Telegram,
    Webchat,
}

impl IdentityKind {
    pub const ALL: [IdentityKind; 6] = [
        IdentityKind::Phone,
        IdentityKind::Email,
        IdentityKind::Messenger,
        IdentityKind::Instagram,
        IdentityKind::Telegram,
        IdentityKind::Webchat,
    ];

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| ParseError::Invalid {
            kind: "identity kind",
            reason: "expected phone, email, messenger, instagram, telegram or webchat".into(),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Phone => "phone",
            IdentityKind::Email => "email",
            IdentityKind::Messenger => "messenger",
            IdentityKind::Instagram => "instagram",
            IdentityKind::Telegram => "telegram",
            IdentityKind::Webchat => "webchat",
        }
    }
}

/// One way to reach a contact, normalised: phone numbers in E.164, emails lower-cased, provider
/// user ids as given (1–128 characters without `#` or whitespace).
///
/// `unverified`: claimed by the sender, not proven — an email typed into the contact form or the
/// web chat widget, or mail that failed DMARC (or both SPF and DKIM). An unverified identity is a
/// different identity from the proven one of the same value: it never links to, or threads into,
/// the contact who holds the proven one (phone numbers from carriers, WhatsApp, Messenger,
/// Instagram and Telegram ids from their platforms, authenticated mail, and what an agent links).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Identity {
    pub kind: IdentityKind,
    pub value: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unverified: bool,
}

impl Identity {
    pub fn phone(p: &PhoneNumber) -> Self {
        Self { kind: IdentityKind::Phone, value: p.as_str().to_owned(), unverified: false }
    }
    pub fn email(e: &EmailAddress) -> Self {
        Self { kind: IdentityKind::Email, value: e.as_str().to_owned(), unverified: false }
    }
    /// The same identity, as claimed but not proven.
    pub fn claimed(mut self) -> Self {
        self.unverified = true;
        self
    }
    /// The proven identity of the same value.
    pub fn proven(mut self) -> Self {
        self.unverified = false;
        self
    }
    pub fn parse(kind: IdentityKind, value: &str) -> Result<Self, ParseError> {
        let value = match kind {
            IdentityKind::Phone => PhoneNumber::parse(value)?.as_str().to_owned(),
            IdentityKind::Email => EmailAddress::parse(value)?.as_str().to_owned(),
            _ => {
                let v = value.trim();
                if v.is_empty() || v.len() > 128 || v.contains('#') || v.chars().any(char::is_whitespace) {
                    return Err(ParseError::Invalid {
                        kind: "provider user id",
                        reason: "expected 1-128 characters without # or whitespace".into(),
                    });
                }
                v.to_owned()
            }
        };
        Ok(Self { kind, value, unverified: false })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Contact {
    pub id: ContactId,
    pub workspace: WorkspaceId,
    pub name: Option<String>,
    pub identities: Vec<Identity>,
    /// Custom attributes (plan, account id…): canned responses fill `{{contact.attributes.<key>}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Bumped by every change an agent makes (identities, merges): the optimistic-lock token.
    #[serde(default)]
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
    /// Set once this contact was merged into another: it keeps no identities and forwards there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<ContactId>,
    /// The latest Net Promoter Score question and its answer (`domain::nps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nps: Option<crate::nps::Survey>,
    /// Set when an admin asked to erase the contact (`domain::erasure`): it is being removed.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub erasing: Option<OffsetDateTime>,
}

impl Contact {
    pub fn new(workspace: WorkspaceId, identity: Identity, name: Option<String>, now: OffsetDateTime) -> Self {
        Self {
            id: ContactId::new(),
            workspace,
            name,
            identities: vec![identity],
            attributes: BTreeMap::new(),
            created_at: now,
            version: 0,
            updated_at: None,
            merged_into: None,
            erasing: None,
            nps: None,
        }
    }
}

/// What a signed-in user may do. Agents work the inbox; supervisors also reassign others' work and
/// change routing rules; admins also manage agents and teams; finance reads costs and sets budgets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Agent,
    Supervisor,
    Admin,
    /// Reads cost reports and budgets, manages rate cards and budgets; no inbox rights.
    Finance,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
            Role::Finance => "finance",
        }
    }
    /// Sees every conversation of the workspace and may act on others' work.
    pub fn oversees(self) -> bool {
        matches!(self, Role::Supervisor | Role::Admin)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    Open,
    Pending,
    Snoozed,
    Resolved,
}

impl ConversationStatus {
    pub const ALL: [ConversationStatus; 4] = [
        ConversationStatus::Open,
        ConversationStatus::Pending,
        ConversationStatus::Snoozed,
        ConversationStatus::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Open => "open",
            ConversationStatus::Pending => "pending",
            ConversationStatus::Snoozed => "snoozed",
            ConversationStatus::Resolved => "resolved",
        }
    }
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| ParseError::Invalid {
            kind: "conversation status",
            reason: "expected open, pending, snoozed or resolved".into(),
        })
    }
    /// Open, pending and snoozed conversations still belong to the contact's current thread.
    pub fn is_unresolved(self) -> bool {
        self != ConversationStatus::Resolved
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

/// The pair of addresses a message travelled between on one channel: ours (the Twilio number, the
/// support mailbox) and the contact's. A reply reverses it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Route {
    pub channel: Channel,
    pub contact_address: String,
    pub our_address: String,
    /// The contact address's country (ISO 3166 alpha-2) for phone channels, learned where the
    /// number is parsed (the webhook), so pricing never has to load the numbering plan again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_country: Option<String>,
}

/// A channel of the conversation: the route a reply takes there, and when the customer last wrote
/// on it (`None`: an agent opened it and the customer has not written there yet).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelSeen {
    pub route: Route,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Conversation {
    pub id: ConversationId,
    pub workspace: WorkspaceId,
    pub contact_id: ContactId,
    pub status: ConversationStatus,
    pub assignee: Option<AgentId>,
    pub priority: Priority,
    /// Where the customer last wrote from: the default route of a reply.
    pub last_inbound: Option<Route>,
    /// When the customer last wrote (the WhatsApp and Messenger reply windows run from here).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_inbound_at: Option<OffsetDateTime>,
    /// Every channel the customer wrote on in this conversation: the route back and when they last
    /// wrote there. An agent may reply on any of them; each channel's reply window runs from its own
    /// last message.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channels: BTreeMap<Channel, ChannelSeen>,
    #[serde(with = "time::serde::rfc3339")]
    pub last_activity_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub unread_count: u32,
    pub message_count: u32,
    /// The team that owns the conversation (workspace routing rules pick it from the channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<crate::ids::TeamId>,
    /// Skills an agent needs to take it (channel and keyword rules, on its first message).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub skills: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub tags: BTreeSet<String>,
    /// Who owned the contact's previous conversation: routing's continuity candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_owner: Option<AgentId>,
    /// The share of the assignee's capacity this conversation holds (hundredths, by channel
    /// weight): given back exactly when it is resolved or moves to someone else.
    #[serde(default)]
    pub assigned_weight: u32,
    /// Set while the conversation waits in the routing queue for an agent.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub waiting_since: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub snoozed_until: Option<OffsetDateTime>,
    /// Set while a split or merge moves messages out of this conversation (a retry resumes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moving: Option<crate::reorg::Moving>,
    /// The conversation this one's messages went to when an agent merged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<ConversationId>,
    /// The conversation this one was split from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_from: Option<ConversationId>,
    /// The splits made from this conversation, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub splits: Vec<crate::reorg::SplitRecord>,
    /// Service-level clocks: first/next response and resolution, their due times and breaches.
    #[serde(default)]
    pub sla: crate::sla::Sla,
    /// The satisfaction survey asked when it was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csat: Option<crate::csat::Survey>,
    /// The conversation this one replaced still waits for a survey answer (`domain::csat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_survey: Option<ConversationId>,
    /// Optimistic-concurrency version: every write is conditional on the version it read.
    pub version: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Sender {
    Contact { id: ContactId },
    Agent { id: AgentId },
    System,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attachment {
    pub content_type: String,
    pub size_bytes: Option<u64>,
    pub url: String,
    pub filename: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// An inbound message we accepted.
    Received,
    Queued,
    Sending,
    Sent,
    Delivered,
    Undelivered,
    Failed,
    Read,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryEvent {
    pub status: DeliveryStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

impl DeliveryEvent {
    /// A status reached at `at`, with no error.
    pub fn new(status: DeliveryStatus, at: OffsetDateTime) -> Self {
        Self { status, at, error_code: None, error_message: None }
    }

    /// The message failed at `at`: the provider's (or our) error code and its explanation.
    pub fn failed(code: impl Into<String>, message: impl Into<String>, at: OffsetDateTime) -> Self {
        Self { status: DeliveryStatus::Failed, at, error_code: Some(code.into()), error_message: Some(message.into()) }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Message {
    pub id: MessageId,
    pub workspace: WorkspaceId,
    pub conversation_id: ConversationId,
    pub direction: Direction,
    pub channel: Channel,
    pub route: Route,
    pub sender: Sender,
    pub text: Option<String>,
    /// Structured content (buttons, locations, cards) as the channel adapter describes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rich: Option<serde_json::Value>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    pub provider: Option<String>,
    pub provider_message_id: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub provider_timestamp: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub status: DeliveryStatus,
    pub status_history: Vec<DeliveryEvent>,
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// What the message cost: estimate, AWS share and, once reported, the provider's price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::finance::MessageCost>,
}

impl Message {
    /// A new outbound message waiting for the sender: `queued`, with that as its first status.
    pub fn queued_outbound(
        workspace: WorkspaceId,
        conversation_id: ConversationId,
        route: Route,
        sender: Sender,
        text: &str,
        metadata: BTreeMap<String, serde_json::Value>,
        now: OffsetDateTime,
    ) -> Message {
        Message {
            id: MessageId::new(),
            workspace,
            conversation_id,
            direction: Direction::Outbound,
            channel: route.channel,
            route,
            sender,
            text: Some(text.to_owned()),
            rich: None,
            attachments: vec![],
            provider: None,
            provider_message_id: None,
            provider_timestamp: None,
            created_at: now,
            status: DeliveryStatus::Queued,
            status_history: vec![DeliveryEvent::new(DeliveryStatus::Queued, now)],
            metadata,
            cost: None,
        }
    }

    /// A customer's message as stored: `received`, from the contact, in `conversation_id`, with
    /// everything the channel adapter parsed (text, files, rich content, provider ids, metadata).
    pub fn received(
        m: &crate::events::InboundMessage,
        conversation_id: ConversationId,
        contact: crate::ids::ContactId,
        route: Route,
    ) -> Message {
        Message {
            id: MessageId::new(),
            workspace: m.workspace.clone(),
            conversation_id,
            direction: Direction::Inbound,
            channel: m.channel,
            route,
            sender: Sender::Contact { id: contact },
            text: m.text.clone(),
            rich: m.rich.clone(),
            attachments: m.attachments.clone(),
            provider: Some(m.provider.clone()),
            provider_message_id: Some(m.provider_message_id.clone()),
            provider_timestamp: m.provider_timestamp,
            created_at: m.received_at,
            status: DeliveryStatus::Received,
            status_history: vec![DeliveryEvent::new(DeliveryStatus::Received, m.received_at)],
            metadata: m.metadata.clone(),
            cost: None,
        }
    }

    /// Fills this stored message in with a later part of it (a voicemail's transcript or audio):
    /// text where it has none, attachments it lacks, metadata keys it lacks. Returns what was
    /// filled (`text`, `attachments`); metadata alone fills nothing worth a write.
    pub fn complete_with(&mut self, part: &crate::events::InboundMessage) -> Vec<&'static str> {
        let mut filled = vec![];
        if self.text.is_none() && part.text.is_some() {
            self.text.clone_from(&part.text);
            filled.push("text");
        }
        let missing: Vec<_> =
            part.attachments.iter().filter(|a| !self.attachments.iter().any(|s| s.url == a.url)).cloned().collect();
        if !missing.is_empty() {
            self.attachments.extend(missing);
            filled.push("attachments");
        }
        for (k, v) in &part.metadata {
            self.metadata.entry(k.clone()).or_insert_with(|| v.clone());
        }
        filled
    }

    /// The latest error the provider reported, if the message failed.
    pub fn last_error(&self) -> Option<&DeliveryEvent> {
        self.status_history.iter().rev().find(|e| e.error_code.is_some() || e.error_message.is_some())
    }
}
