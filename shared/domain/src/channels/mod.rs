//! Channel adapters: pure translation between a provider's wire format and the canonical model.
//! Network I/O stays in the functions; everything here is testable with fixtures.
//!
//! The contract every channel implements ([`ChannelAdapter`], seed 000 "Channel Adapter
//! Architecture"): verify that a webhook request comes from the provider, parse it into canonical
//! events (messages, delivery statuses, reactions and reads), render a canonical outbound message
//! into the provider's HTTP request, classify the provider's answer, and state the channel's
//! constraints. Adding a channel is one adapter here, one webhook function and its fixtures: the
//! webhook plumbing (`kit::webhook`), the inbound processor and the sender are shared.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::ParseError;
use crate::events::{InboundMessage, StatusUpdate};
use crate::finance::Usage;
use crate::ids::WorkspaceId;
use crate::model::{Attachment, Channel, DeliveryEvent, Identity, Message};

pub mod constraints;
pub mod email;
pub mod form;
pub mod meta;
pub mod quotes;
pub mod rich;
pub mod telegram;
pub mod templates;
pub mod twilio;
pub mod voice;
pub mod webchat;
pub mod whatsapp;

/// A webhook request as an adapter sees it: the public URL the provider called (with its query
/// string), the headers (names in lower case) and the body exactly as received: signatures are
/// computed over these bytes, never over a re-serialisation.
#[derive(Clone, Copy, Debug)]
pub struct Webhook<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl<'a> Webhook<'a> {
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn query(&self, name: &str) -> Option<String> {
        let url = url::Url::parse(self.url).ok()?;
        let value = url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        value
    }
}

/// Why a webhook request was not accepted as the provider's: always a 403, and nothing is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// The secret the request would be checked with is empty: nothing can be verified, so nothing is
    /// accepted (an empty secret would let anyone sign).
    #[error("no {0} is configured")]
    NotConfigured(&'static str),
}

/// What a verified request asks of us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// Events to parse and enqueue.
    Events,
    /// A subscription handshake (Meta's GET with `hub.challenge`): answer with this text, store
    /// nothing.
    Challenge(String),
}

/// One customer message as a provider described it, before we know which workspace it is for
/// (that comes from `our_address`, through the channel directory).
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedMessage {
    pub channel: Channel,
    pub identity: Identity,
    pub contact_address: String,
    pub contact_country: Option<String>,
    pub our_address: String,
    pub contact_name: Option<String>,
    pub provider: &'static str,
    pub provider_message_id: String,
    pub text: Option<String>,
    pub attachments: Vec<Attachment>,
    /// Structured content (locations, shared contacts, button and list replies, reactions).
    pub rich: Option<serde_json::Value>,
    pub provider_timestamp: Option<OffsetDateTime>,
    pub metadata: BTreeMap<String, serde_json::Value>,
}

impl ParsedMessage {
    pub fn into_inbound(self, workspace: WorkspaceId, received_at: OffsetDateTime, usage: Usage) -> InboundMessage {
        InboundMessage {
            workspace,
            channel: self.channel,
            identity: self.identity,
            contact_address: self.contact_address,
            contact_country: self.contact_country,
            our_address: self.our_address,
            contact_name: self.contact_name,
            provider: self.provider.to_owned(),
            provider_message_id: self.provider_message_id,
            text: self.text,
            attachments: self.attachments,
            rich: self.rich,
            provider_timestamp: self.provider_timestamp,
            received_at,
            metadata: self.metadata,
            usage,
            thread: None,
            completes: false,
        }
    }
}

/// A delivery status a provider reported for one of our messages (sent, delivered, read, failed).
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedStatus {
    pub channel: Channel,
    pub provider: &'static str,
    pub provider_message_id: String,
    pub our_address: String,
    /// Who the message went to: statuses travel in that person's FIFO group, behind their messages.
    pub recipient: Identity,
    pub event: DeliveryEvent,
    /// Provider detail worth keeping (WhatsApp's pricing category and billability).
    pub metadata: BTreeMap<String, serde_json::Value>,
}

impl ParsedStatus {
    pub fn into_update(self, workspace: WorkspaceId) -> StatusUpdate {
        StatusUpdate {
            workspace,
            channel: self.channel,
            provider: self.provider.to_owned(),
            provider_message_id: self.provider_message_id,
            recipient: self.recipient,
            event: self.event,
            metadata: self.metadata,
        }
    }
}

/// The customer read everything we sent them before `up_to` (Messenger's read watermark).
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedRead {
    pub channel: Channel,
    pub our_address: String,
    pub reader: Identity,
    pub up_to: OffsetDateTime,
}

impl ParsedRead {
    pub fn into_update(self, workspace: WorkspaceId) -> crate::events::ReadUpTo {
        crate::events::ReadUpTo { workspace, channel: self.channel, reader: self.reader, up_to: self.up_to }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ChannelEvent {
    Message(Box<ParsedMessage>),
    Status(ParsedStatus),
    Read(ParsedRead),
}

impl ChannelEvent {
    pub fn channel(&self) -> Channel {
        match self {
            ChannelEvent::Message(m) => m.channel,
            ChannelEvent::Status(s) => s.channel,
            ChannelEvent::Read(r) => r.channel,
        }
    }
    pub fn our_address(&self) -> &str {
        match self {
            ChannelEvent::Message(m) => &m.our_address,
            ChannelEvent::Status(s) => &s.our_address,
            ChannelEvent::Read(r) => &r.our_address,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Method {
    Get,
    Post,
}

#[derive(Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum Auth {
    None,
    Bearer(String),
    Basic { user: String, password: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials never reach a log line.
        f.write_str(match self {
            Auth::None => "None",
            Auth::Bearer(_) => "Bearer(..)",
            Auth::Basic { .. } => "Basic(..)",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = ChannelPayload)]
pub enum Payload {
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
}

/// The HTTP request that sends a message, relative to the provider's API base URL. Redacted in
/// `Debug` where it carries a credential in its path (Telegram's bot token) and its payload (the
/// message body).
#[derive(Clone, PartialEq)]
pub struct ProviderRequest {
    pub method: Method,
    pub path: String,
    pub auth: Auth,
    pub payload: Payload,
}

impl std::fmt::Debug for ProviderRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = match self.path.strip_prefix("/bot") {
            Some(rest) => format!("/bot<token>/{}", rest.split_once('/').map(|(_, m)| m).unwrap_or_default()),
            None => self.path.clone(),
        };
        f.debug_struct("ProviderRequest")
            .field("method", &self.method)
            .field("path", &path)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// What a provider answered to a send.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    /// Accepted: the provider's id for the message; delivery statuses arrive later by webhook.
    Accepted { provider_message_id: String },
    /// Worth retrying: nothing was accepted (rate limited, provider unavailable).
    Retryable { http_status: u16, detail: String },
    /// The provider refused the message itself; retrying sends nothing better.
    Rejected { code: String, message: String },
}

/// Why a stored message cannot be rendered for its provider: permanent, the message fails with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RenderError {
    pub code: &'static str,
    pub message: String,
}

/// One provider's translation layer. Implementations hold their credentials and are pure.
pub trait ChannelAdapter: Send + Sync {
    /// The provider's name on messages and in dedup ids (`twilio`, `whatsapp`, `telegram`).
    fn provider(&self) -> &'static str;
    /// Checks that the request comes from the provider (signature, secret token, handshake).
    fn verify(&self, req: &Webhook<'_>) -> Result<Verified, Rejection>;
    /// The canonical events in a verified request, in the order the provider listed them.
    fn parse(&self, req: &Webhook<'_>, received_at: OffsetDateTime) -> Result<Vec<ChannelEvent>, ParseError>;
    /// The request that sends a stored outbound message.
    fn render(&self, message: &Message) -> Result<ProviderRequest, RenderError>;
    /// Reads the provider's answer to a send.
    fn classify(&self, http_status: u16, body: &[u8]) -> SendOutcome;
    /// The status an accepted send moves to at once, for providers that report no delivery
    /// statuses (Telegram); `None` where statuses follow by webhook.
    fn accepted_status(&self) -> Option<crate::model::DeliveryStatus> {
        None
    }
    /// What the channel accepts (text, files, sizes), checked before a reply is queued.
    fn constraints(&self, channel: Channel) -> constraints::Constraints {
        constraints::constraints(channel)
    }
}

/// Parses a provider's JSON body, with the reason when it does not fit.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(kind: &'static str, body: &[u8]) -> Result<T, ParseError> {
    serde_json::from_slice(body).map_err(|e| ParseError::Invalid { kind, reason: e.to_string() })
}

/// Seconds since the epoch as a provider sends them (a number or a numeric string).
pub(crate) fn unix_time(kind: &'static str, secs: i64) -> Result<OffsetDateTime, ParseError> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| ParseError::Invalid { kind, reason: e.to_string() })
}

/// The caption-or-text of a message and its attachment metadata keep the text optional: a
/// message with neither is malformed for every channel.
pub(crate) fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned)
}

/// Why a reply may not go out on a channel now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyRefusal {
    #[error("replies on {0} are not supported by this deployment yet")]
    NotSupported(Channel),
    #[error(
        "the customer last wrote on WhatsApp more than 24 hours ago: WhatsApp now allows only an approved \
         template ({{\"template\": {{\"name\", \"language\", \"parameters\"}}}}, see GET /whatsapp/templates)"
    )]
    OutsideWindow,
    #[error(
        "the customer last wrote on {0} more than 7 days ago: Meta allows no reply until they write again \
         (within 24 hours a normal reply, up to 7 days a human agent's)"
    )]
    HumanAgentWindowClosed(Channel),
    #[error("templates are a WhatsApp feature; {0} replies are free text")]
    TemplateNotSupported(Channel),
}

/// How a permitted reply goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyAs {
    Normal,
    /// Messenger and Instagram between 24 hours and 7 days: with Meta's `HUMAN_AGENT` tag.
    HumanAgentTag,
}

/// Whether a reply may go out on `channel` now (seed 000's reply windows), given how long ago the
/// customer last wrote there: WhatsApp free-form messages only within 24 hours, templates at any
/// time; Messenger and Instagram normally within 24 hours, with the human-agent tag up to 7 days.
pub fn reply_policy(
    channel: Channel,
    since_customer_wrote: Option<time::Duration>,
    template: bool,
) -> Result<ReplyAs, ReplyRefusal> {
    let within_24h = since_customer_wrote.is_some_and(|d| d < crate::threading::REPLY_WINDOW);
    match channel {
        Channel::Whatsapp if !template && !within_24h => Err(ReplyRefusal::OutsideWindow),
        Channel::Whatsapp => Ok(ReplyAs::Normal),
        _ if template => Err(ReplyRefusal::TemplateNotSupported(channel)),
        Channel::Messenger | Channel::Instagram => match meta::reply_window(since_customer_wrote) {
            meta::Window::Response => Ok(ReplyAs::Normal),
            meta::Window::HumanAgent => Ok(ReplyAs::HumanAgentTag),
            meta::Window::Closed => Err(ReplyRefusal::HumanAgentWindowClosed(channel)),
        },
        Channel::Sms | Channel::Telegram | Channel::Email | Channel::Webchat => Ok(ReplyAs::Normal),
        other => Err(ReplyRefusal::NotSupported(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whatsapp_free_text_needs_the_window_templates_do_not() {
        let (fresh, stale) = (Some(time::Duration::hours(1)), Some(time::Duration::hours(25)));
        assert_eq!(reply_policy(Channel::Whatsapp, fresh, false), Ok(ReplyAs::Normal));
        assert_eq!(reply_policy(Channel::Whatsapp, stale, false), Err(ReplyRefusal::OutsideWindow));
        assert_eq!(reply_policy(Channel::Whatsapp, None, false), Err(ReplyRefusal::OutsideWindow));
        assert_eq!(reply_policy(Channel::Whatsapp, stale, true), Ok(ReplyAs::Normal));
        assert!(ReplyRefusal::OutsideWindow.to_string().contains("template"));
        assert_eq!(reply_policy(Channel::Sms, stale, false), Ok(ReplyAs::Normal), "SMS has no window");
        assert_eq!(reply_policy(Channel::Telegram, None, false), Ok(ReplyAs::Normal));
        assert_eq!(reply_policy(Channel::Sms, fresh, true), Err(ReplyRefusal::TemplateNotSupported(Channel::Sms)));
        assert_eq!(reply_policy(Channel::Email, stale, false), Ok(ReplyAs::Normal), "email has no window");
        assert_eq!(reply_policy(Channel::Webchat, stale, false), Ok(ReplyAs::Normal), "web chat has no window");
        assert_eq!(reply_policy(Channel::Voice, fresh, false), Err(ReplyRefusal::NotSupported(Channel::Voice)));
    }

    #[test]
    fn messenger_and_instagram_answer_normally_for_a_day_then_as_a_human_agent_for_a_week() {
        for ch in [Channel::Messenger, Channel::Instagram] {
            assert_eq!(reply_policy(ch, Some(time::Duration::hours(23)), false), Ok(ReplyAs::Normal));
            assert_eq!(reply_policy(ch, Some(time::Duration::hours(24)), false), Ok(ReplyAs::HumanAgentTag));
            assert_eq!(reply_policy(ch, Some(time::Duration::hours(167)), false), Ok(ReplyAs::HumanAgentTag));
            let closed = reply_policy(ch, Some(time::Duration::days(7)), false).unwrap_err();
            assert_eq!(closed, ReplyRefusal::HumanAgentWindowClosed(ch));
            assert!(closed.to_string().contains("7 days"));
            assert_eq!(reply_policy(ch, None, false), Err(ReplyRefusal::HumanAgentWindowClosed(ch)));
            assert_eq!(
                reply_policy(ch, Some(time::Duration::hours(1)), true),
                Err(ReplyRefusal::TemplateNotSupported(ch))
            );
        }
    }
}
