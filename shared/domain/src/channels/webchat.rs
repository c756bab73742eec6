//! Web chat: the in-app widget (seed 001 "Live chat"). Unlike the other channels there is no
//! provider: visitors talk to us over our own WebSocket API, so this module owns the whole
//! wire format — the visitor's messages, the frames pushed back, uploads, and what a visitor is
//! told about when they will get an answer.
//!
//! - A visitor is minted by `POST /webchat/{key}/visitors` (`v_<ULID>`, in a signed visitor
//!   token); the widget key is the workspace's `webchat` channel account address.
//! - A visitor becomes a contact (identity `webchat:<visitor>`) with their first message, through
//!   the inbound queue like every channel; giving an email links it to that contact when no other
//!   contact holds it (an unverified address never takes over someone else's contact: the
//!   agent sees it and merges).
//! - Files go straight from the browser to S3 by a presigned PUT under the visitor's own prefix;
//!   a message names the uploaded keys, which are checked to be theirs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::channels::ParsedMessage;
use crate::error::ParseError;
use crate::ids::{ConnectionId, MessageId, WorkspaceId};
use crate::model::{Attachment, Channel, DeliveryStatus, Direction, Identity, IdentityKind, Message};
use crate::routing::{AgentState, Presence, RoutingRules, Team};
use crate::EmailAddress;

pub const PROVIDER: &str = "webchat";
/// The subprotocol a browser offers with its visitor token (`switchboard.webchat.v1, <token>`).
pub const SUBPROTOCOL: &str = "switchboard.webchat.v1";
/// Longest text a visitor may send (the channel's constraint).
pub const MAX_TEXT_CHARS: usize = 10_000;
/// Largest upload (the channel's media rule).
pub const MAX_UPLOAD_BYTES: u64 = 25 * 1024 * 1024;
/// Files per message.
pub const MAX_FILES: usize = 5;
/// How long a visitor may take to upload after asking.
/// What one visitor may do (seed: abuse of a public widget): messages a minute, and upload links
/// an hour. Generous for a person typing and attaching; a script hits them within seconds.
pub const MESSAGES_PER_MINUTE: u32 = 20;
pub const UPLOADS_PER_HOUR: u32 = 20;

/// The rate limiter's bucket names for one visitor (the store builds the keys).
pub fn message_bucket(visitor: &VisitorId) -> String {
    format!("webchat-messages:{visitor}")
}
pub fn upload_bucket(visitor: &VisitorId) -> String {
    format!("webchat-uploads:{visitor}")
}

pub const UPLOAD_URL_TTL: time::Duration = time::Duration::minutes(15);
/// What the widget promises while agents are online (seed 001: "Typical response time: under 2
/// minutes").
pub const ONLINE_REPLY_MINUTES: i64 = 2;
/// What it promises when nobody is online during business hours (seed 001: "We will respond by
/// email within 4 hours").
pub const AWAY_REPLY_HOURS: i64 = 4;

fn invalid(kind: &'static str, reason: impl Into<String>) -> ParseError {
    ParseError::Invalid { kind, reason: reason.into() }
}

/// A web chat visitor: `v_` and a ULID, minted by us and carried in the visitor's token.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VisitorId(String);

crate::string_schema!(VisitorId, "A web chat visitor id (v_ and a ULID)");

impl VisitorId {
    pub fn new() -> Self {
        Self(format!("v_{}", ulid::Ulid::new()))
    }
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = s.strip_prefix("v_").is_some_and(|u| ulid::Ulid::from_string(u).is_ok());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid("visitor id", "expected v_ and a ULID"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The contact identity the visitor's messages carry.
    pub fn identity(&self) -> Identity {
        Identity { kind: IdentityKind::Webchat, value: self.0.clone(), unverified: false }
    }
}

impl Default for VisitorId {
    fn default() -> Self {
        Self::new()
    }
}

impl TryFrom<String> for VisitorId {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}

impl From<VisitorId> for String {
    fn from(v: VisitorId) -> String {
        v.0
    }
}

impl std::fmt::Display for VisitorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A widget key as the page embeds it (the `webchat` channel account's address): 8-64 letters,
/// digits, `_` or `-`. Public by nature: it names a workspace's widget, it grants nothing.
pub fn parse_key(s: &str) -> Result<&str, ParseError> {
    let ok = (8..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(s)
    } else {
        Err(invalid("widget key", "expected 8-64 letters, digits, _ or -"))
    }
}

/// One open visitor socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VisitorConnection {
    pub id: ConnectionId,
    pub workspace: WorkspaceId,
    pub visitor: VisitorId,
    /// The widget key the visitor connected with.
    pub key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub connected_at: OffsetDateTime,
}

impl VisitorConnection {
    /// When API Gateway will have closed it at the latest (the item's TTL); a push to a closed
    /// one answers 410 and removes it sooner.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.connected_at + crate::realtime::MAX_CONNECTION_AGE
    }
}

/// What a visitor told us about themselves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VisitorProfile {
    pub workspace: WorkspaceId,
    pub visitor: VisitorId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailAddress>,
    /// The address the visitor proved by opening the link mailed to it ([`prove_email`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proven_email: Option<EmailAddress>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl VisitorProfile {
    /// Whether the address the visitor gave is one they proved.
    pub fn email_proven(&self) -> bool {
        self.email.is_some() && self.email == self.proven_email
    }
}

/// A visitor's name: trimmed, 1-100 characters, no control characters.
pub fn parse_name(name: &str) -> Result<String, ParseError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(invalid("name", "expected 1-100 characters"));
    }
    Ok(n.to_owned())
}

/// The `message` route: `{"action":"message","client_id":"…","text":"…","attachments":[{"key":"…"}]}`.
/// `client_id` is the widget's own id for the message: sending it again (a reconnect, a retry)
/// stores nothing twice.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitorMessage {
    #[serde(default)]
    pub action: Option<String>,
    pub client_id: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub attachments: Vec<UploadRef>,
}

/// A file the visitor uploaded (the `key` an upload answer gave).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadRef {
    pub key: String,
}

impl VisitorMessage {
    /// Checks the message's shape; the files are checked against the bucket by the caller.
    pub fn validate(&self, ws: &WorkspaceId, visitor: &VisitorId) -> Result<(), ParseError> {
        let id_ok = (1..=64).contains(&self.client_id.len())
            && self.client_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !id_ok {
            return Err(invalid("client_id", "expected 1-64 letters, digits, _ or -"));
        }
        let text = self.text.as_deref().map(str::trim).unwrap_or("");
        if text.is_empty() && self.attachments.is_empty() {
            return Err(invalid("message", "nothing to send: add text or a file"));
        }
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(invalid("text", format!("{chars} characters; web chat allows at most {MAX_TEXT_CHARS}")));
        }
        if self.attachments.len() > MAX_FILES {
            return Err(invalid("attachments", format!("at most {MAX_FILES} files per message")));
        }
        if let Some(bad) = self.attachments.iter().find(|a| !owns_upload(ws, visitor, &a.key)) {
            return Err(invalid("attachments", format!("{} is not one of your uploads", bad.key)));
        }
        Ok(())
    }

    /// The canonical message (files already checked and described by the caller).
    pub fn into_parsed(
        self,
        visitor: &VisitorId,
        key: &str,
        profile: Option<&VisitorProfile>,
        attachments: Vec<Attachment>,
    ) -> ParsedMessage {
        let mut metadata = BTreeMap::new();
        if let Some(p) = profile {
            if let Some(email) = &p.email {
                metadata.insert(META_VISITOR_EMAIL.to_owned(), serde_json::json!(email.as_str()));
                if p.email_proven() {
                    metadata.insert(META_VISITOR_EMAIL_PROVEN.to_owned(), serde_json::json!(true));
                }
            }
        }
        ParsedMessage {
            channel: Channel::Webchat,
            identity: visitor.identity(),
            contact_address: visitor.to_string(),
            contact_country: None,
            our_address: key.to_owned(),
            contact_name: profile.and_then(|p| p.name.clone()),
            provider: PROVIDER,
            // Scoped by visitor: client ids are only unique per widget.
            provider_message_id: format!("{visitor}:{}", self.client_id),
            text: self.text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()),
            attachments,
            rich: None,
            provider_timestamp: None,
            metadata,
        }
    }
}

/// The email a visitor gave, on their messages' metadata: the inbound processor links it to the
/// contact when no other contact holds it.
pub const META_VISITOR_EMAIL: &str = "visitor_email";
/// Set (true) when the visitor proved that address: the processor links it as proven.
pub const META_VISITOR_EMAIL_PROVEN: &str = "visitor_email_proven";

/// The `upload` route: `{"action":"upload","file_name":"…","content_type":"…","size":123}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    #[serde(default)]
    pub action: Option<String>,
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
}

/// Content types a visitor may upload: pictures, sound, video, PDFs, plain text and office
/// documents. Nothing a browser would run (HTML, SVG, scripts) is accepted.
pub const UPLOAD_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/heic",
    "audio/mpeg",
    "audio/ogg",
    "audio/wav",
    "audio/webm",
    "audio/mp4",
    "video/mp4",
    "video/webm",
    "video/quicktime",
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/zip",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
];

impl UploadRequest {
    pub fn validate(&self) -> Result<(), ParseError> {
        let accepted = |ct: &str| UPLOAD_TYPES.contains(&ct);
        crate::files::check_upload(&self.file_name, &self.content_type, self.size, accepted, MAX_UPLOAD_BYTES)
    }
}

/// The prefix every upload of a visitor lives under.
fn upload_prefix(ws: &WorkspaceId, visitor: &VisitorId) -> String {
    crate::objects::webchat_uploads(ws, visitor.as_str())
}

/// A file name safe in a key and a Content-Disposition: letters, digits, `.`, `_`, `-`; the rest
/// becomes `_`; at most 100 characters; never empty or a dot name.
pub fn safe_file_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .take(100)
        .collect();
    if s.trim_matches('.').is_empty() {
        s = "file".into();
    }
    s
}

/// Where a new upload goes: `webchat/<ws>/<visitor>/<ULID>/<file name>`.
pub fn upload_key(ws: &WorkspaceId, visitor: &VisitorId, file_name: &str) -> String {
    format!("{}{}/{}", upload_prefix(ws, visitor), ulid::Ulid::new(), safe_file_name(file_name))
}

/// Whether `key` is one of this visitor's uploads (under their prefix, exactly one id and a name).
pub fn owns_upload(ws: &WorkspaceId, visitor: &VisitorId, key: &str) -> bool {
    let Some(rest) = key.strip_prefix(&upload_prefix(ws, visitor)) else { return false };
    match rest.split_once('/') {
        Some((id, name)) => ulid::Ulid::from_string(id).is_ok() && !name.is_empty() && safe_file_name(name) == name,
        None => false,
    }
}

/// A message as the visitor sees it: no costs, routes, metadata or agents' notes.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct VisitorView {
    pub id: MessageId,
    /// `visitor` or `agent` (automatic answers count as the agent's side).
    pub from: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileView>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// For the agent's messages: `delivered` once on the visitor's screen, `read` once they read it.
    pub status: DeliveryStatus,
    /// The widget's own id for a message the visitor sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FileView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    pub content_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// A link to open the file (an agent's file, as pushed; valid an hour).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The visitor's view of a message of their conversation, or `None` for what they must not see
/// (messages on other channels: an email thread or an SMS is not replayed into the widget).
pub fn view(m: &Message, visitor: &VisitorId) -> Option<VisitorView> {
    if m.channel != Channel::Webchat || m.route.contact_address != visitor.as_str() {
        return None;
    }
    let client_id = m
        .provider_message_id
        .as_deref()
        .filter(|_| m.direction == Direction::Inbound)
        .and_then(|id| id.strip_prefix(visitor.as_str()))
        .and_then(|id| id.strip_prefix(':'))
        .map(str::to_owned);
    Some(VisitorView {
        id: m.id,
        from: if m.direction == Direction::Inbound { "visitor" } else { "agent" },
        text: m.text.clone(),
        files: m
            .attachments
            .iter()
            .map(|a| FileView {
                file_name: a.filename.clone(),
                content_type: a.content_type.clone(),
                size: a.size_bytes,
                url: None,
            })
            .collect(),
        at: m.created_at,
        status: m.status,
        client_id,
    })
}

/// What the server pushes to a visitor's socket.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VisitorFrame {
    /// An agent's reply.
    Message { message: VisitorView },
    /// An agent started or stopped typing in the visitor's conversation.
    Typing { typing: bool },
    /// An agent opened the conversation: everything the visitor sent until `at` was seen.
    Seen {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// When the visitor can expect an answer (seed 001: set expectations prominently; with nobody
/// available, move to asynchronous mode and ask for an email).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Availability {
    /// `online` (agents are here), `away` (open, nobody online), `closed` (outside business hours).
    pub state: &'static str,
    /// Ready to show: "Typical reply time: under 2 minutes", or when we will answer.
    pub message: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expected_reply_by: Option<OffsetDateTime>,
    /// Whether to ask for an email so the answer can reach them after they leave.
    pub ask_for_email: bool,
}

/// The visitor's expectations now. Online means an agent who could take a web chat (in the
/// channel's team, when it has one) is online; hours are that team's, else the workspace's.
pub fn availability(
    rules: &RoutingRules,
    teams: &[Team],
    agents: &[AgentState],
    now: OffsetDateTime,
    email_known: bool,
) -> Availability {
    let team = rules.team_by_channel.get(&Channel::Webchat);
    let hours =
        team.and_then(|t| teams.iter().find(|x| &x.id == t)).and_then(|t| t.hours.as_ref()).or(rules.hours.as_ref());
    let open = hours.is_none_or(|h| h.is_open(now));
    let online = agents
        .iter()
        .any(|a| a.presence == Presence::Online && team.is_none_or(|t| a.teams.contains(t)) && a.capacity > 0);
    let fmt = |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let email_line = if email_known {
        " We'll also answer by email if you leave."
    } else {
        " Leave your email and we'll answer there if you've gone."
    };
    if !open {
        let by = hours.and_then(|h| h.next_open(now)).map(|t| t + time::Duration::hours(AWAY_REPLY_HOURS));
        let when = by.map_or_else(|| "as soon as we're back".to_owned(), |t| format!("by {}", fmt(t)));
        return Availability {
            state: "closed",
            message: format!("We're closed right now. We'll reply {when}.{email_line}"),
            expected_reply_by: by,
            ask_for_email: !email_known,
        };
    }
    if online {
        return Availability {
            state: "online",
            message: format!("Typical reply time: under {ONLINE_REPLY_MINUTES} minutes."),
            expected_reply_by: Some(now + time::Duration::minutes(ONLINE_REPLY_MINUTES)),
            ask_for_email: false,
        };
    }
    Availability {
        state: "away",
        message: format!("Nobody is at their desk right now. We'll reply within {AWAY_REPLY_HOURS} hours.{email_line}"),
        expected_reply_by: Some(now + time::Duration::hours(AWAY_REPLY_HOURS)),
        ask_for_email: !email_known,
    }
}

/// A `message` frame as the visitor sent it: parsed and checked (text, files named, client id).
pub fn parse_message(raw: &[u8], ws: &WorkspaceId, visitor: &VisitorId) -> Result<VisitorMessage, ParseError> {
    let msg: VisitorMessage = serde_json::from_slice(raw).map_err(|e| invalid("message", e.to_string()))?;
    msg.validate(ws, visitor)?;
    Ok(msg)
}

/// An `upload` frame: parsed and checked (type, size, name).
pub fn parse_upload(raw: &[u8]) -> Result<UploadRequest, ParseError> {
    let req: UploadRequest = serde_json::from_slice(raw).map_err(|e| invalid("upload", e.to_string()))?;
    req.validate()?;
    Ok(req)
}

/// Keeps what a visitor told us on their profile: a name or email given replaces the one kept,
/// one not given stays.
pub async fn remember<S: crate::ports::VisitorStore + ?Sized>(
    store: &S,
    ws: &WorkspaceId,
    visitor: &VisitorId,
    name: Option<String>,
    email: Option<EmailAddress>,
    now: OffsetDateTime,
) -> Result<VisitorProfile, crate::ports::StoreError> {
    let kept = store.visitor_profile(ws, visitor).await?;
    let profile = VisitorProfile {
        workspace: ws.clone(),
        visitor: visitor.clone(),
        name: name.or_else(|| kept.as_ref().and_then(|p| p.name.clone())),
        email: email.or_else(|| kept.as_ref().and_then(|p| p.email.clone())),
        proven_email: kept.and_then(|p| p.proven_email),
        updated_at: now,
    };
    store.put_visitor_profile(&profile).await?;
    Ok(profile)
}

/// The key that signs email-proof links, derived from the link secret under its own label (a
/// rating link can never pass as a proof link, nor the other way round).
pub fn proof_key(secret: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(b"switchboard/email-proof-links/v1");
    m.finalize().into_bytes().to_vec()
}

/// How long a proof link works.
pub const PROOF_LINK_TTL: time::Duration = time::Duration::hours(24);

/// What a verified proof link says: this visitor of this workspace received mail at this address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailProof {
    pub workspace: WorkspaceId,
    pub visitor: VisitorId,
    pub email: EmailAddress,
}

/// The signed token of one proof link: `p1.<ws>.<visitor>.<email, base64url>.<expires unix>.<sig>`.
pub fn proof_token(key: &[u8], proof: &EmailProof, expires: OffsetDateTime) -> String {
    use base64::Engine;
    let email = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(proof.email.as_str());
    let payload = format!("p1.{}.{}.{email}.{}", proof.workspace, proof.visitor, expires.unix_timestamp());
    format!("{payload}.{}", proof_mac(key, &payload))
}

fn proof_mac(key: &[u8], payload: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(payload.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
}

/// Checks a proof link's token (constant-time signature comparison, then the expiry).
pub fn verify_proof(key: &[u8], token: &str, now: OffsetDateTime) -> Result<EmailProof, crate::csat::TokenError> {
    use crate::csat::TokenError;
    use base64::Engine;
    use subtle::ConstantTimeEq;
    let (payload, sig) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
    if !bool::from(proof_mac(key, payload).as_bytes().ct_eq(sig.as_bytes())) {
        return Err(TokenError::Invalid);
    }
    let parts: Vec<&str> = payload.split('.').collect();
    let ["p1", ws, visitor, email, expires] = parts.as_slice() else { return Err(TokenError::Invalid) };
    let workspace = WorkspaceId::parse(ws).map_err(|_| TokenError::Invalid)?;
    let visitor = VisitorId::parse(visitor).map_err(|_| TokenError::Invalid)?;
    let email = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(email).map_err(|_| TokenError::Invalid)?;
    let email = String::from_utf8(email).ok().and_then(|e| EmailAddress::parse(&e).ok()).ok_or(TokenError::Invalid)?;
    let expires: i64 = expires.parse().map_err(|_| TokenError::Invalid)?;
    if now.unix_timestamp() > expires {
        return Err(TokenError::Expired);
    }
    Ok(EmailProof { workspace, visitor, email })
}

/// How often one visitor may ask for a proof link, and how often one address may receive one
/// (whoever asks): nobody uses the widget to mail an address over and over.
pub const PROOFS_PER_VISITOR_PER_HOUR: u32 = 3;
pub const PROOFS_PER_ADDRESS_PER_DAY: u32 = 5;

/// The mail that carries a proof link, from the workspace's support address.
pub fn proof_email(
    from: &crate::ports::ChannelAccount,
    to: &EmailAddress,
    link: &str,
    now: OffsetDateTime,
) -> crate::channels::email::OutgoingEmail {
    let title = from.display_name.clone().unwrap_or_else(|| "us".into());
    let domain_part = crate::channels::email::domain_of(&from.address);
    crate::channels::email::OutgoingEmail {
        from: from.address.clone(),
        from_name: from.display_name.clone(),
        to: to.as_str().to_owned(),
        reply_to: from.address.clone(),
        subject: "Confirm your email address".into(),
        message_id: format!("proof.{}@{domain_part}", ulid::Ulid::new().to_string().to_lowercase()),
        in_reply_to: None,
        references: vec![],
        text: format!(
            "You gave this address in a chat with {title}. To confirm it is yours, open this link within 24 hours:\n\n{link}\n\n\
             If it was not you, ignore this email: nothing changes."
        ),
        files: vec![],
        date: now,
    }
}

/// What proving a visitor's address did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proven {
    /// The visitor has not written yet: their profile remembers it, and their first message links it.
    Remembered,
    /// Now a proven identity of the visitor's contact (their mail joins the same thread).
    Linked,
    /// Another contact held the address proven: the visitor is that customer, and their contact was
    /// merged into it (identities, conversations).
    Merged { into: crate::ContactId },
}

/// A visitor proved `email` (they opened the link mailed to it): the address is theirs. The
/// claimed identity they typed gives way to the proven one; if a customer already holds the
/// address proven, the visitor is that customer and their contact merges into it. Audited as the
/// system's doing. Idempotent: proving twice changes nothing more.
pub async fn prove_email<S: crate::contacts::ContactPorts + crate::ports::VisitorStore + ?Sized>(
    store: &S,
    ws: &WorkspaceId,
    visitor: &VisitorId,
    email: &EmailAddress,
    now: OffsetDateTime,
) -> Result<Proven, crate::contacts::ContactError> {
    let system = crate::audit::AuditEntry::system();
    let kept = store.visitor_profile(ws, visitor).await?;
    let profile = VisitorProfile {
        workspace: ws.clone(),
        visitor: visitor.clone(),
        name: kept.as_ref().and_then(|p| p.name.clone()),
        email: Some(email.clone()),
        proven_email: Some(email.clone()),
        updated_at: now,
    };
    store.put_visitor_profile(&profile).await?;
    let Some(contact) = store.contact_by_identity(ws, &visitor.identity()).await? else {
        return Ok(Proven::Remembered);
    };
    link_proven(store, ws, contact.id, email, &system, now).await
}

/// Links `email` proven to `contact`, replacing the claimed one, or merges `contact` into whoever
/// holds it proven.
pub async fn link_proven<S: crate::contacts::ContactPorts + ?Sized>(
    store: &S,
    ws: &WorkspaceId,
    contact: crate::ContactId,
    email: &EmailAddress,
    actor: &crate::AgentId,
    now: OffsetDateTime,
) -> Result<Proven, crate::contacts::ContactError> {
    let proven = Identity::email(email);
    crate::contacts::remove_identity(store, ws, contact, &proven.clone().claimed(), actor, now).await?;
    match store.identity_owner(ws, &proven).await? {
        Some(owner) if owner != contact => {
            crate::contacts::merge(store, ws, contact, owner, actor, now).await?;
            Ok(Proven::Merged { into: owner })
        }
        Some(_) => Ok(Proven::Linked),
        None => {
            crate::contacts::add_identity(store, ws, contact, proven, actor, now).await?;
            Ok(Proven::Linked)
        }
    }
}

/// [`availability`] from the workspace's stored routing rules, teams and agents.
pub async fn current_availability<S: crate::ports::RoutingStore + crate::ports::AgentStore + ?Sized>(
    store: &S,
    ws: &WorkspaceId,
    now: OffsetDateTime,
    email_known: bool,
) -> Result<Availability, crate::ports::StoreError> {
    Ok(availability(
        &store.routing_rules(ws).await?,
        &store.teams(ws).await?,
        &store.roster(ws).await?,
        now,
        email_known,
    ))
}

/// What one push to a visitor's sockets did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pushed {
    pub delivered: usize,
    /// Sockets API Gateway no longer knows (410), now forgotten.
    pub removed: usize,
    pub failed: usize,
}

/// Pushes `frame` to every socket (tab) the visitor has open: a gone one is forgotten, one that
/// fails otherwise is logged and skipped (best effort: the widget re-reads `history`).
pub async fn push_to_visitor<S: crate::ports::VisitorStore + ?Sized>(
    store: &S,
    pusher: &dyn crate::ports::ConnectionPusher,
    ws: &WorkspaceId,
    visitor: &VisitorId,
    frame: &VisitorFrame,
) -> Result<Pushed, crate::ports::StoreError> {
    use crate::ports::PushError;
    let mut out = Pushed::default();
    let sockets = store.visitor_connections(ws, visitor).await?;
    if sockets.is_empty() {
        return Ok(out);
    }
    let bytes = serde_json::to_vec(frame).expect("a frame serialises");
    for socket in sockets {
        match pusher.push(&socket.id, &bytes).await {
            Ok(()) => out.delivered += 1,
            Err(PushError::Gone) => {
                store.delete_visitor_connection(&socket).await?;
                out.removed += 1;
            }
            Err(PushError::Failed(e)) => {
                tracing::warn!(workspace = %ws, connection = %socket.id, error = %e, "visitor push failed");
                out.failed += 1;
            }
        }
    }
    Ok(out)
}

/// What became of the email a visitor gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmailLink {
    /// Now one of the contact's identities: their emails land in the same thread.
    Linked,
    /// The contact had it already.
    AlreadyLinked,
    /// Another contact holds it: nothing changes automatically (an unverified address must not
    /// take a customer's history); agents see it on the messages and merge if it is the same
    /// person.
    HeldByAnother,
    /// The contact already has as many identities as allowed, or another rule refused it.
    Refused(String),
}

/// Links a visitor's email to their contact when no other contact holds it (seed 000: the same
/// email on email, form and web chat is one contact), audited as the system's doing.
pub async fn link_email<S: crate::contacts::ContactPorts + ?Sized>(
    store: &S,
    ws: &WorkspaceId,
    contact: crate::ContactId,
    email: &EmailAddress,
    now: OffsetDateTime,
) -> Result<EmailLink, crate::ports::StoreError> {
    use crate::contacts::ContactError;
    let system = crate::audit::AuditEntry::system();
    // The visitor typed it: claimed, never proven, so real mail from the address never joins them.
    let claimed = Identity::email(email).claimed();
    match crate::contacts::add_identity(store, ws, contact, claimed, &system, now).await {
        Ok(c) if c.changed => Ok(EmailLink::Linked),
        Ok(_) => Ok(EmailLink::AlreadyLinked),
        Err(ContactError::Refused(crate::inbox::Refusal::Conflict(_))) => Ok(EmailLink::HeldByAnother),
        Err(ContactError::Refused(r)) => Ok(EmailLink::Refused(r.to_string())),
        Err(ContactError::NotFound(_)) => Ok(EmailLink::Refused("the contact is gone".into())),
        Err(ContactError::Store(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Route, Sender};
    use crate::routing::hours::{BusinessHours, Day, Span};
    use crate::{AgentId, ContactId, ConversationId, TeamId};
    use time::macros::datetime;

    fn ws() -> WorkspaceId {
        WorkspaceId::parse("acme").unwrap()
    }

    #[test]
    fn visitor_ids_are_minted_and_checked() {
        let v = VisitorId::new();
        assert_eq!(VisitorId::parse(v.as_str()).unwrap(), v);
        assert_eq!(v.identity(), Identity::parse(IdentityKind::Webchat, v.as_str()).unwrap());
        for bad in ["", "v_", "v_nope", "01HZX3J9Q9W8ZK6Y7V1T2R3S4P", "x_01HZX3J9Q9W8ZK6Y7V1T2R3S4P"] {
            assert!(VisitorId::parse(bad).is_err(), "{bad}");
        }
        assert!(parse_key("wk_demo_site").is_ok());
        assert!(parse_key("short").is_err() && parse_key("wk demo site").is_err());
    }

    #[test]
    fn a_message_is_checked_and_becomes_a_webchat_message_scoped_by_visitor() {
        let v = VisitorId::new();
        let msg = |text: Option<&str>, keys: Vec<String>| VisitorMessage {
            action: Some("message".into()),
            client_id: "c-1".into(),
            text: text.map(str::to_owned),
            attachments: keys.into_iter().map(|key| UploadRef { key }).collect(),
        };
        assert!(msg(Some("  "), vec![]).validate(&ws(), &v).is_err(), "empty");
        assert!(msg(Some(&"x".repeat(MAX_TEXT_CHARS + 1)), vec![]).validate(&ws(), &v).is_err());
        let mine = upload_key(&ws(), &v, "photo of the bill.png");
        assert!(mine.ends_with("/photo_of_the_bill.png"), "{mine}");
        assert!(msg(None, vec![mine.clone()]).validate(&ws(), &v).is_ok());
        let theirs = upload_key(&ws(), &VisitorId::new(), "x.png");
        assert!(msg(None, vec![theirs]).validate(&ws(), &v).is_err(), "another visitor's file");
        let escape = format!("webchat/acme/{v}/../../other/x.png");
        assert!(msg(None, vec![escape]).validate(&ws(), &v).is_err());
        let mut bad_id = msg(Some("hi"), vec![]);
        bad_id.client_id = "a b".into();
        assert!(bad_id.validate(&ws(), &v).is_err());

        let profile = VisitorProfile {
            workspace: ws(),
            visitor: v.clone(),
            name: Some("Rui".into()),
            email: Some(EmailAddress::parse("rui@example.com").unwrap()),
            proven_email: None,
            updated_at: datetime!(2026-11-20 10:00 UTC),
        };
        let p = msg(Some(" hello "), vec![]).into_parsed(&v, "wk_demo_site", Some(&profile), vec![]);
        assert!(!p.metadata.contains_key(META_VISITOR_EMAIL_PROVEN), "typed, not proven");
        let proven = VisitorProfile { proven_email: profile.email.clone(), ..profile.clone() };
        let q = msg(Some("hi"), vec![]).into_parsed(&v, "wk_demo_site", Some(&proven), vec![]);
        assert_eq!(q.metadata[META_VISITOR_EMAIL_PROVEN], true);
        let other =
            VisitorProfile { proven_email: Some(EmailAddress::parse("old@example.com").unwrap()), ..profile.clone() };
        assert!(!other.email_proven(), "a later, different address is not proven");
        assert_eq!(
            (p.channel, p.text.as_deref(), p.our_address.as_str()),
            (Channel::Webchat, Some("hello"), "wk_demo_site")
        );
        assert_eq!(p.provider_message_id, format!("{v}:c-1"));
        assert_eq!((p.identity.kind, p.contact_name.as_deref()), (IdentityKind::Webchat, Some("Rui")));
        assert_eq!(p.metadata[META_VISITOR_EMAIL], "rui@example.com");
    }

    #[test]
    fn proof_links_verify_only_untouched_unexpired_and_under_their_own_key() {
        let key = proof_key(b"deployment secret");
        let proof = EmailProof {
            workspace: ws(),
            visitor: VisitorId::new(),
            email: EmailAddress::parse("rui.costa+chat@example.com").unwrap(),
        };
        let now = datetime!(2026-11-20 10:00 UTC);
        let token = proof_token(&key, &proof, now + PROOF_LINK_TTL);
        assert_eq!(verify_proof(&key, &token, now), Ok(proof.clone()));
        assert_eq!(
            verify_proof(&key, &token, now + PROOF_LINK_TTL + time::Duration::seconds(1)),
            Err(crate::csat::TokenError::Expired)
        );
        assert_eq!(verify_proof(&proof_key(b"another"), &token, now), Err(crate::csat::TokenError::Invalid));
        // A rating link's key (the same deployment secret, another label) signs nothing here.
        let rating_key = crate::csat::link_key(b"deployment secret");
        assert_eq!(verify_proof(&rating_key, &token, now), Err(crate::csat::TokenError::Invalid));
        // Another address in the same token is a forgery.
        let forged = token.replacen(&token.split('.').nth(3).unwrap().to_owned(), "YUBiLmM", 1);
        assert_eq!(verify_proof(&key, &forged, now), Err(crate::csat::TokenError::Invalid));
    }

    #[test]
    fn uploads_accept_documents_and_refuse_what_a_browser_would_run() {
        let req = |ct: &str, size: u64| UploadRequest {
            action: None,
            file_name: "a.bin".into(),
            content_type: ct.into(),
            size,
        };
        assert!(req("image/png", 1000).validate().is_ok());
        assert!(req("application/pdf", MAX_UPLOAD_BYTES).validate().is_ok());
        for bad in ["text/html", "image/svg+xml", "application/javascript", "application/x-msdownload"] {
            assert!(req(bad, 10).validate().is_err(), "{bad}");
        }
        assert!(req("image/png", MAX_UPLOAD_BYTES + 1).validate().is_err());
        assert!(req("image/png", 0).validate().is_err());
        assert_eq!(safe_file_name("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(safe_file_name(".."), "file");
    }

    fn message(direction: Direction, channel: Channel, visitor: &VisitorId, pid: Option<String>) -> Message {
        Message {
            id: MessageId::new(),
            workspace: ws(),
            conversation_id: ConversationId::new(),
            direction,
            channel,
            route: Route {
                channel,
                contact_address: visitor.to_string(),
                our_address: "wk_demo_site".into(),
                contact_country: None,
            },
            sender: match direction {
                Direction::Inbound => Sender::Contact { id: ContactId::new() },
                Direction::Outbound => Sender::Agent { id: AgentId::parse("ann").unwrap() },
            },
            text: Some("hi".into()),
            rich: None,
            attachments: vec![Attachment {
                content_type: "image/png".into(),
                size_bytes: Some(3),
                url: "s3://media/webchat/x".into(),
                filename: Some("x.png".into()),
            }],
            provider: None,
            provider_message_id: pid,
            provider_timestamp: None,
            created_at: datetime!(2026-11-20 10:00 UTC),
            status: DeliveryStatus::Received,
            status_history: vec![],
            metadata: BTreeMap::from([("cost_secret".to_owned(), serde_json::json!(1))]),
            cost: None,
        }
    }

    #[test]
    fn the_visitor_sees_their_chat_and_nothing_else() {
        let v = VisitorId::new();
        let mine = message(Direction::Inbound, Channel::Webchat, &v, Some(format!("{v}:c-9")));
        let seen = view(&mine, &v).unwrap();
        assert_eq!((seen.from, seen.client_id.as_deref()), ("visitor", Some("c-9")));
        let json = serde_json::to_value(&seen).unwrap();
        assert!(json.get("metadata").is_none() && json["files"][0].get("url").is_none(), "{json}");
        assert_eq!(view(&message(Direction::Outbound, Channel::Webchat, &v, None), &v).unwrap().from, "agent");
        assert!(view(&message(Direction::Outbound, Channel::Email, &v, None), &v).is_none(), "other channels");
        assert!(view(&mine, &VisitorId::new()).is_none(), "another visitor of the same contact");
    }

    fn agent(presence: Presence, teams: &[&str]) -> AgentState {
        AgentState {
            id: AgentId::parse("ann").unwrap(),
            presence,
            teams: teams.iter().map(|t| TeamId::parse(t).unwrap()).collect(),
            skills: Default::default(),
            capacity: 500,
            load: 0,
            last_assigned_at: None,
        }
    }

    #[test]
    fn the_visitor_is_told_when_to_expect_an_answer() {
        let now = datetime!(2026-11-20 10:00 UTC); // a Friday
        let rules = RoutingRules::default();
        let a = availability(&rules, &[], &[agent(Presence::Online, &[])], now, false);
        assert_eq!((a.state, a.ask_for_email), ("online", false));
        assert!(a.message.contains("under 2 minutes"));

        let a = availability(&rules, &[], &[agent(Presence::Away, &[])], now, false);
        assert_eq!((a.state, a.ask_for_email), ("away", true));
        assert_eq!(a.expected_reply_by, Some(now + time::Duration::hours(4)));
        assert!(!availability(&rules, &[], &[], now, true).ask_for_email, "the email is known");

        // Only the channel's team counts.
        let mut rules = RoutingRules::default();
        rules.team_by_channel.insert(Channel::Webchat, TeamId::parse("chat").unwrap());
        assert_eq!(availability(&rules, &[], &[agent(Presence::Online, &["billing"])], now, false).state, "away");
        assert_eq!(availability(&rules, &[], &[agent(Presence::Online, &["chat"])], now, false).state, "online");

        // Outside the hours: when we open (Monday 09:00 in Paris = 08:00 UTC) plus the away promise.
        let hours = BusinessHours {
            time_zone: "Europe/Paris".into(),
            weekly: [Day::Monday, Day::Tuesday, Day::Wednesday, Day::Thursday, Day::Friday]
                .into_iter()
                .map(|d| (d, vec![Span { open: "09:00".into(), close: "17:00".into() }]))
                .collect(),
            holidays: Default::default(),
        };
        let rules = RoutingRules { hours: Some(hours), ..RoutingRules::default() };
        let saturday = datetime!(2026-11-21 12:00 UTC);
        let a = availability(&rules, &[], &[agent(Presence::Online, &[])], saturday, false);
        assert_eq!((a.state, a.ask_for_email), ("closed", true));
        assert_eq!(a.expected_reply_by, Some(datetime!(2026-11-23 12:00 UTC)));
        assert!(a.message.contains("2026-11-23T12:00:00Z"), "{}", a.message);
    }
}
