//! Email: an inbound MIME message (stored by SES's receipt rule) becomes a canonical message, or is
//! recognised as automated mail (auto-replies, bounces, loops) and never treated as a customer's;
//! an outbound reply becomes a raw MIME message for SES v2.
//!
//! Threading (seed 000), in order: the plus-addressed token of our Reply-To
//! (`support+<conversation>@acme.example`), then In-Reply-To / References against the Message-IDs
//! we stored, then the contact's open conversation. The token is a conversation id, not a secret:
//! it only steers a message into a conversation of the contact who sent it (see
//! `threading::thread`), so a forged one gains nothing.
//!
//! Message-IDs: an inbound message is stored under provider `email` with its own Message-ID (a
//! message without one gets a digest of its bytes, so a redelivery is still recognised). SES
//! replaces the Message-ID of what we send with `<ses-id@region.amazonses.com>`, so our replies
//! are stored under provider `ses` with SES's id, which is also what bounce and complaint events
//! name.

use std::collections::BTreeMap;

use mail_parser::{MessageParser, MimeHeaders};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{non_empty, ParsedMessage, RenderError};
use crate::address::EmailAddress;
use crate::error::ParseError;
use crate::ids::ConversationId;
use crate::model::{Channel, DeliveryEvent, DeliveryStatus, Identity};

/// Provider name of inbound email (ids are the messages' Message-IDs).
pub const PROVIDER: &str = "email";
/// Provider name of what we send through SES (ids are SES message ids).
pub const SES_PROVIDER: &str = "ses";

/// Metadata keys an inbound email keeps, read back when a reply is rendered.
pub const META_SUBJECT: &str = "email_subject";
pub const META_MESSAGE_ID: &str = "email_message_id";
pub const META_REFERENCES: &str = "email_references";
/// Where the raw message is kept (`s3://bucket/key`): the full original, quotes and all.
pub const META_RAW: &str = "email_raw";
/// Set when quoted history or a signature was cut from the text.
pub const META_TRIMMED: &str = "email_trimmed";
/// Set when SES could not authenticate the sender (DMARC failed, or neither SPF nor DKIM passed).
pub const META_AUTH_FAILED: &str = "email_auth_failed";

fn invalid(reason: impl Into<String>) -> ParseError {
    ParseError::Invalid { kind: "email", reason: reason.into() }
}

/// What an inbound email says about the thread it belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmailThread {
    /// The tag of the plus-addressed recipient (`support+<tag>@…`), when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// In-Reply-To first, then References newest first; without angle brackets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
}

impl EmailThread {
    /// The conversation the token names, when it is one of our conversation ids.
    pub fn conversation(&self) -> Option<ConversationId> {
        self.token.as_deref().and_then(|t| ConversationId::parse(&t.to_uppercase()).ok())
    }

    /// The stored messages to look for, in order: (provider, provider message id).
    pub fn lookups(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![];
        for r in &self.references {
            match r.rsplit_once('@') {
                // SES's Message-ID for a message we sent: its local part is SES's id.
                Some((local, domain)) if domain.ends_with("amazonses.com") => {
                    out.push((SES_PROVIDER, local.to_owned()));
                }
                _ => out.push((PROVIDER, r.clone())),
            }
        }
        out
    }
}

/// Splits a plus-addressed recipient: `support+01J…@acme.example` → (`support@acme.example`, tag).
pub fn split_plus(address: &str) -> (String, Option<String>) {
    let address = address.trim().to_lowercase();
    match address.rsplit_once('@') {
        Some((local, domain)) => match local.split_once('+') {
            Some((base, tag)) if !base.is_empty() && !tag.is_empty() => {
                (format!("{base}@{domain}"), Some(tag.to_owned()))
            }
            _ => (address.clone(), None),
        },
        None => (address, None),
    }
}

/// The domain part of one of our addresses, for the Message-IDs we mint (an address without
/// one, which validation prevents, falls back to a reserved name).
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("switchboard.invalid", |(_, d)| d)
}

/// The Reply-To of a reply in `conversation`: our address, plus-addressed with its id.
pub fn reply_to_address(our_address: &str, conversation: ConversationId) -> String {
    let (base, _) = split_plus(our_address);
    match base.rsplit_once('@') {
        Some((local, domain)) => format!("{local}+{}@{domain}", conversation.to_string().to_lowercase()),
        None => base,
    }
}

/// A file carried by an inbound email, to be stored (S3) before the message is queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailFile {
    pub filename: Option<String>,
    pub content_type: String,
    /// An inline image (shown within the HTML body) rather than an attachment.
    pub inline: bool,
    pub content_id: Option<String>,
    pub bytes: Vec<u8>,
}

/// Why an email is not a customer's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Automated {
    /// An out-of-office or other automatic answer (`Auto-Submitted`, `X-Autoreply`, `Precedence`).
    AutoReply(&'static str),
    /// A delivery failure report (a bounce).
    Bounce,
    /// Mail from our own address: a loop.
    Loop,
}

impl Automated {
    pub fn as_str(&self) -> &'static str {
        match self {
            Automated::AutoReply(_) => "auto_reply",
            Automated::Bounce => "bounce",
            Automated::Loop => "loop",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Inbound {
    Message { message: Box<ParsedMessage>, thread: EmailThread, files: Vec<EmailFile> },
    Automated(Automated),
}

/// Recognises automated mail from its headers (RFC 3834 and what mail servers actually send).
fn automated(msg: &mail_parser::Message<'_>, from: &str, our_address: &str) -> Option<Automated> {
    let header = |name: &str| msg.header_raw(name).map(|v| v.trim().to_lowercase());
    if from == our_address {
        return Some(Automated::Loop);
    }
    let local = from.split('@').next().unwrap_or_default();
    let report = msg.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct.attribute("report-type").is_some_and(|r| r.eq_ignore_ascii_case("delivery-status"))
    });
    if report || local == "mailer-daemon" || local == "postmaster" || header("return-path").as_deref() == Some("<>") {
        return Some(Automated::Bounce);
    }
    if header("auto-submitted").is_some_and(|v| v != "no") {
        return Some(Automated::AutoReply("Auto-Submitted"));
    }
    if header("x-autoreply").is_some() || header("x-autorespond").is_some() {
        return Some(Automated::AutoReply("X-Autoreply"));
    }
    if header("precedence").is_some_and(|v| matches!(v.as_str(), "bulk" | "junk" | "auto_reply" | "list")) {
        return Some(Automated::AutoReply("Precedence"));
    }
    None
}

fn message_ids(v: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    match v {
        mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
        mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => vec![],
    }
}

/// The most of a customer's reply text kept on the message (the whole mail stays in the mail
/// bucket, linked from `email_raw`): one stored message must fit DynamoDB's 400 KB item and the
/// inbound queue's message with room for everything else, whatever a client sends.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// The most of a subject kept (RFC 5322 lines stop at 998 characters).
pub const MAX_SUBJECT_CHARS: usize = 998;
/// The most message ids of In-Reply-To and References kept, newest first; each at most
/// [`MAX_ID_BYTES`] (a longer one is no id a mail system of ours made).
pub const MAX_REFERENCES: usize = 20;
pub const MAX_ID_BYTES: usize = 250;
/// `metadata.email_truncated`: the text was cut at [`MAX_TEXT_BYTES`]; the raw mail has it all.
pub const META_TRUNCATED: &str = "email_truncated";

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Parses a raw inbound message received for `recipient` (one of our addresses, possibly
/// plus-addressed). Every field is capped so the message fits the queue and the table.
pub fn parse(raw: &[u8], recipient: &str, received_at: OffsetDateTime) -> Result<Inbound, ParseError> {
    let msg = MessageParser::default().parse(raw).ok_or_else(|| invalid("not a MIME message"))?;
    let (our_address, token) = split_plus(recipient);
    let from = msg.from().and_then(|a| a.first()).ok_or_else(|| invalid("no From address"))?;
    let from_address = from.address().ok_or_else(|| invalid("no From address"))?;
    let address = EmailAddress::parse(from_address)?;
    if let Some(why) = automated(&msg, address.as_str(), &our_address) {
        return Ok(Inbound::Automated(why));
    }
    let message_id = match msg.message_id() {
        Some(id) if !id.trim().is_empty() && id.trim().len() <= MAX_ID_BYTES => id.trim().to_owned(),
        _ => format!("sha256:{}", hex::encode(Sha256::digest(raw))),
    };
    let mut references: Vec<String> =
        message_ids(msg.in_reply_to()).into_iter().filter(|r| r.len() <= MAX_ID_BYTES).collect();
    let mut older = message_ids(msg.references());
    older.reverse();
    for r in older.into_iter().filter(|r| r.len() <= MAX_ID_BYTES) {
        if !references.contains(&r) {
            references.push(r);
        }
    }
    references.truncate(MAX_REFERENCES);
    // An HTML-only body loses its quote containers before it is reduced to text.
    let html_only = msg.text_part(0).and_then(|p| match &p.body {
        mail_parser::PartType::Html(html) => Some(html.as_ref()),
        _ => None,
    });
    let (full, reply) = match html_only {
        Some(html) => (mail_parser::decoders::html::html_to_text(html), super::quotes::html_reply_text(html)),
        None => {
            let full = msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
            let reply = super::quotes::reply_text(&full);
            (full, reply)
        }
    };
    let text = cut_bytes(&reply, MAX_TEXT_BYTES).to_owned();
    let mut metadata = BTreeMap::new();
    if text.len() < reply.len() {
        metadata.insert(META_TRUNCATED.to_owned(), true.into());
    }
    if let Some(subject) = msg.subject() {
        let subject: String = subject.chars().take(MAX_SUBJECT_CHARS).collect();
        metadata.insert(META_SUBJECT.to_owned(), subject.into());
    }
    metadata.insert(META_MESSAGE_ID.to_owned(), message_id.clone().into());
    if !references.is_empty() {
        metadata.insert(META_REFERENCES.to_owned(), references.clone().into());
    }
    if reply.len() < full.trim().len() {
        metadata.insert(META_TRIMMED.to_owned(), true.into());
    }
    let files = msg
        .attachments()
        .map(|part| {
            let content_type = part
                .content_type()
                .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("octet-stream")).to_lowercase())
                .unwrap_or_else(|| "application/octet-stream".to_owned());
            let inline = part.content_disposition().is_some_and(|d| d.is_inline()) && part.content_id().is_some();
            EmailFile {
                filename: part.attachment_name().map(str::to_owned),
                content_type,
                inline,
                content_id: part.content_id().map(str::to_owned),
                bytes: part.contents().to_vec(),
            }
        })
        .collect();
    let provider_timestamp = msg.date().and_then(|d| OffsetDateTime::from_unix_timestamp(d.to_timestamp()).ok());
    // A date in the future (a wrong clock) would reorder the conversation: the receipt time wins.
    let provider_timestamp = provider_timestamp.filter(|t| *t <= received_at);
    let message = ParsedMessage {
        channel: Channel::Email,
        identity: Identity::email(&address),
        contact_address: address.as_str().to_owned(),
        contact_country: None,
        our_address,
        contact_name: from.name().and_then(|n| non_empty(Some(cut_bytes(n, 200)))),
        provider: PROVIDER,
        provider_message_id: message_id,
        text: non_empty(Some(&text)),
        attachments: vec![],
        rich: None,
        provider_timestamp,
        metadata,
    };
    Ok(Inbound::Message { message: Box::new(message), thread: EmailThread { token, references }, files })
}

/// A file attached to an outbound email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingFile {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Everything an outbound email is made of.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingEmail {
    pub from: String,
    pub from_name: Option<String>,
    pub to: String,
    pub reply_to: String,
    pub subject: String,
    /// Without angle brackets.
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub text: String,
    pub files: Vec<OutgoingFile>,
    pub date: OffsetDateTime,
}

/// "Re: " once, whatever the thread has collected ("RE:", "Re: Re:", "AW:").
pub fn reply_subject(subject: Option<&str>, fallback: &str) -> String {
    let mut s = subject.unwrap_or_default().trim();
    loop {
        let lower = s.to_lowercase();
        match ["re:", "aw:", "sv:", "fwd:", "fw:"].iter().find(|p| lower.starts_with(**p)) {
            Some(p) => s = s[p.len()..].trim_start(),
            None => break,
        }
    }
    if s.is_empty() {
        fallback.to_owned()
    } else {
        format!("Re: {s}")
    }
}

/// The HTML part of a plain-text reply: escaped, paragraphs and line breaks kept.
pub fn html_of(text: &str) -> String {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let paragraphs: Vec<String> = text
        .replace("\r\n", "\n")
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("<p>{}</p>", p.lines().map(escape).collect::<Vec<_>>().join("<br>\n")))
        .collect();
    format!("<!DOCTYPE html><html><body>{}</body></html>", paragraphs.join("\n"))
}

/// Renders the raw MIME message (text and HTML alternatives, attachments) SES v2 sends as is.
pub fn render(e: &OutgoingEmail) -> Result<Vec<u8>, RenderError> {
    use mail_builder::headers::address::Address;
    use mail_builder::MessageBuilder;
    let from: Address<'_> = match &e.from_name {
        Some(name) => (name.as_str(), e.from.as_str()).into(),
        None => e.from.as_str().into(),
    };
    let mut b = MessageBuilder::new()
        .from(from)
        .to(e.to.as_str())
        .reply_to(e.reply_to.as_str())
        .subject(e.subject.as_str())
        .message_id(e.message_id.as_str())
        .date(e.date.unix_timestamp())
        .text_body(e.text.as_str())
        .html_body(html_of(&e.text));
    if let Some(parent) = &e.in_reply_to {
        b = b.in_reply_to(parent.as_str());
    }
    if !e.references.is_empty() {
        b = b.references(e.references.iter().map(String::as_str).collect::<Vec<_>>());
    }
    for f in &e.files {
        b = b.attachment(f.content_type.as_str(), f.filename.as_str(), f.bytes.as_slice());
    }
    b.write_to_vec().map_err(|err| RenderError { code: "email_render", message: err.to_string() })
}

/// What an SES event (bounce, complaint, delivery, reject) means for one of our messages.
#[derive(Clone, Debug, PartialEq)]
pub struct SesFeedback {
    pub ses_message_id: String,
    /// The delivery status it moves the message to (none for a complaint: it was delivered).
    pub event: Option<DeliveryEvent>,
    /// Addresses no longer to be sent to: hard bounces and complaints.
    pub suppress: Vec<EmailAddress>,
    /// `bounce`, `complaint`, `delivery`, `reject`, …, for the suppression record.
    pub kind: String,
    /// The address the message was sent from (the workspace's), and the recipients.
    pub source: Option<String>,
    pub destination: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesEvent {
    #[serde(alias = "notificationType")]
    event_type: String,
    mail: SesMail,
    #[serde(default)]
    bounce: Option<SesBounce>,
    #[serde(default)]
    complaint: Option<SesComplaint>,
    #[serde(default)]
    delivery: Option<SesTimestamp>,
    #[serde(default)]
    reject: Option<SesReject>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesMail {
    message_id: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    destination: Vec<String>,
    #[serde(default)]
    timestamp: Option<String>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesBounce {
    bounce_type: String,
    #[serde(default)]
    bounce_sub_type: Option<String>,
    #[serde(default)]
    bounced_recipients: Vec<SesRecipient>,
    #[serde(default)]
    timestamp: Option<String>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesRecipient {
    email_address: String,
    #[serde(default)]
    diagnostic_code: Option<String>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesComplaint {
    #[serde(default)]
    complained_recipients: Vec<SesRecipient>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesTimestamp {
    #[serde(default)]
    timestamp: Option<String>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesReject {
    #[serde(default)]
    reason: Option<String>,
}

fn ses_time(s: Option<&str>, fallback: OffsetDateTime) -> OffsetDateTime {
    s.and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()).unwrap_or(fallback)
}

/// Reads an SES event (configuration-set event publishing or identity notifications, as SNS
/// delivers them). Permanent bounces fail the message and suppress the address; transient ones
/// fail it only (SES has stopped retrying by the time it reports them); complaints suppress.
pub fn ses_feedback(json: &str, received_at: OffsetDateTime) -> Result<SesFeedback, ParseError> {
    let ev: SesEvent = super::json_body("SES event", json.as_bytes())?;
    let kind = ev.event_type.to_lowercase();
    let at = |t: Option<&str>| ses_time(t.or(ev.mail.timestamp.as_deref()), received_at);
    let failed = |code: String, message: Option<String>, at| DeliveryEvent {
        status: DeliveryStatus::Failed,
        at,
        error_code: Some(code),
        error_message: message,
    };
    let addresses =
        |rs: &[SesRecipient]| rs.iter().filter_map(|r| EmailAddress::parse(&r.email_address).ok()).collect();
    let (event, suppress) = match kind.as_str() {
        "bounce" => {
            let b = ev.bounce.as_ref().ok_or_else(|| invalid("bounce event without its bounce"))?;
            let permanent = b.bounce_type.eq_ignore_ascii_case("permanent");
            let code = if permanent { "hard_bounce" } else { "soft_bounce" };
            let detail = b
                .bounced_recipients
                .iter()
                .find_map(|r| r.diagnostic_code.clone())
                .or_else(|| b.bounce_sub_type.clone());
            let suppress = if permanent { addresses(&b.bounced_recipients) } else { vec![] };
            (Some(failed(code.to_owned(), detail, at(b.timestamp.as_deref()))), suppress)
        }
        "complaint" => {
            let c = ev.complaint.as_ref().ok_or_else(|| invalid("complaint event without its complaint"))?;
            (None, addresses(&c.complained_recipients))
        }
        "delivery" => {
            let t = ev.delivery.as_ref().and_then(|d| d.timestamp.as_deref());
            let event = DeliveryEvent::new(DeliveryStatus::Delivered, at(t));
            (Some(event), vec![])
        }
        "reject" => {
            let reason = ev.reject.as_ref().and_then(|r| r.reason.clone());
            (Some(failed("rejected".to_owned(), reason, at(None))), vec![])
        }
        // Send, Open, Click, DeliveryDelay, Subscription, RenderingFailure: nothing to change.
        _ => (None, vec![]),
    };
    Ok(SesFeedback {
        ses_message_id: ev.mail.message_id,
        event,
        suppress,
        kind,
        source: ev.mail.source,
        destination: ev.mail.destination,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-03-04 12:00 UTC)
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/../../events/inbound-email/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn message(raw: &[u8]) -> (ParsedMessage, EmailThread, Vec<EmailFile>) {
        match parse(raw, "support@acme.example", now()).unwrap() {
            Inbound::Message { message, thread, files } => (*message, thread, files),
            Inbound::Automated(a) => panic!("automated: {a:?}"),
        }
    }

    #[test]
    fn an_oversized_mail_is_capped_to_fit_the_queue_and_the_table() {
        let body = "é".repeat(200_000); // 400 KB of two-byte characters
        let subject = "s".repeat(5_000);
        let long_id = format!("<{}@x.example>", "i".repeat(400));
        let refs: Vec<String> = (0..60).map(|i| format!("<r{i}@x.example>")).collect();
        let raw = format!(
            "From: Ann <ann@example.com>\r\nTo: support@acme.example\r\nSubject: {subject}\r\n\
             Message-ID: {long_id}\r\nReferences: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
            refs.join(" ")
        );
        let (m, thread, _) = message(raw.as_bytes());
        let text = m.text.unwrap();
        assert!(text.len() <= MAX_TEXT_BYTES && text.len() > MAX_TEXT_BYTES - 4, "cut at a character boundary");
        assert!(text.chars().all(|c| c == 'é'));
        assert_eq!(m.metadata[META_TRUNCATED], true);
        assert_eq!(m.metadata[META_SUBJECT].as_str().unwrap().chars().count(), MAX_SUBJECT_CHARS);
        assert!(m.provider_message_id.starts_with("sha256:"), "an over-long Message-ID is replaced");
        assert_eq!(thread.references.len(), MAX_REFERENCES);
        assert_eq!(thread.references[0], "r59@x.example", "the newest are kept");
    }

    #[test]
    fn gmail_reply_is_threaded_and_trimmed() {
        let (m, thread, files) = message(&fixture("gmail-reply.eml"));
        assert_eq!(
            m.identity,
            Identity {
                kind: crate::model::IdentityKind::Email,
                value: "ann.lee@example.com".into(),
                unverified: false
            }
        );
        assert_eq!(m.contact_name.as_deref(), Some("Ann Lee"));
        assert_eq!(m.our_address, "support@acme.example");
        assert_eq!(m.provider_message_id, "CAF=ann.1@mail.gmail.com");
        assert_eq!(m.text.as_deref(), Some("Yes, Thursday afternoon works for me.\n\nThanks,\nAnn"));
        assert_eq!(m.metadata[META_SUBJECT], "Re: Your order 1234");
        assert_eq!(m.metadata[META_TRIMMED], true);
        assert_eq!(thread.references[0], "0100018e1a2b3c4d-aaaa@email.amazonses.com");
        assert_eq!(thread.lookups()[0], (SES_PROVIDER, "0100018e1a2b3c4d-aaaa".to_owned()));
        assert!(files.is_empty());
    }

    #[test]
    fn outlook_html_only_reply_is_reduced_to_text() {
        let (m, _, _) = message(&fixture("outlook-reply.eml"));
        let text = m.text.unwrap();
        assert!(text.starts_with("Please cancel order 1234"), "{text}");
        assert!(!text.contains("Original") && !text.contains("From:"), "{text}");
        assert!(!text.contains('<'), "HTML is reduced to text: {text}");
    }

    #[test]
    fn apple_mail_reply_with_attachment_and_inline_image() {
        let (m, thread, files) = message(&fixture("apple-mail-reply.eml"));
        assert_eq!(m.text.as_deref(), Some("Here is the photo of the damaged box."));
        assert_eq!(thread.token.as_deref(), None);
        assert_eq!(files.len(), 2, "{files:?}");
        let pdf = files.iter().find(|f| f.content_type == "application/pdf").unwrap();
        assert_eq!(pdf.filename.as_deref(), Some("receipt.pdf"));
        assert!(!pdf.inline);
        assert!(pdf.bytes.starts_with(b"%PDF"));
        let img = files.iter().find(|f| f.content_type == "image/png").unwrap();
        assert!(img.inline);
        assert_eq!(img.content_id.as_deref(), Some("box@local"));
    }

    #[test]
    fn forwarded_mail_keeps_the_forwarded_text() {
        let (m, _, _) = message(&fixture("gmail-forward.eml"));
        let text = m.text.unwrap();
        assert!(text.starts_with("Can you help with this?"));
        assert!(text.contains("Your refund of 20 EUR was declined"), "{text}");
    }

    #[test]
    fn plus_addressed_recipient_carries_the_conversation() {
        let id = ConversationId::new();
        let reply_to = reply_to_address("Support@Acme.example", id);
        assert!(reply_to.starts_with("support+") && reply_to.ends_with("@acme.example"));
        let raw = format!("From: Ann <ann@example.com>\r\nTo: {reply_to}\r\nSubject: hi\r\nMessage-ID: <x1@example.com>\r\n\r\nthanks\r\n");
        match parse(raw.as_bytes(), &reply_to, now()).unwrap() {
            Inbound::Message { message, thread, .. } => {
                assert_eq!(message.our_address, "support@acme.example");
                assert_eq!(thread.conversation(), Some(id));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(split_plus("a@b.example"), ("a@b.example".into(), None));
        assert_eq!(split_plus("+x@b.example"), ("+x@b.example".into(), None));
    }

    #[test]
    fn automated_mail_is_recognised() {
        let auto = |raw: &[u8]| match parse(raw, "support@acme.example", now()).unwrap() {
            Inbound::Automated(a) => a,
            other => panic!("{other:?}"),
        };
        assert_eq!(auto(&fixture("out-of-office.eml")), Automated::AutoReply("Auto-Submitted"));
        assert_eq!(auto(&fixture("bounce.eml")), Automated::Bounce);
        let h = |extra: &str| format!("From: a@example.com\r\n{extra}\r\nSubject: x\r\n\r\nbody\r\n");
        assert_eq!(auto(h("X-Autoreply: yes").as_bytes()), Automated::AutoReply("X-Autoreply"));
        assert_eq!(auto(h("Precedence: bulk").as_bytes()), Automated::AutoReply("Precedence"));
        assert!(matches!(
            parse(h("Auto-Submitted: no").as_bytes(), "support@acme.example", now()),
            Ok(Inbound::Message { .. })
        ));
        let looped = "From: support@acme.example\r\nSubject: x\r\n\r\nbody\r\n";
        assert_eq!(auto(looped.as_bytes()), Automated::Loop);
    }

    #[test]
    fn malformed_mail_is_a_clear_error() {
        assert!(parse(b"", "support@acme.example", now()).is_err());
        assert!(parse(b"Subject: no sender\r\n\r\nx", "support@acme.example", now()).is_err());
        assert!(parse(b"From: not an address\r\n\r\nx", "support@acme.example", now()).is_err());
        // No Message-ID: a digest of the bytes, the same on every delivery.
        let raw = b"From: a@example.com\r\n\r\nhello";
        let id = |r: &[u8]| match parse(r, "support@acme.example", now()).unwrap() {
            Inbound::Message { message, .. } => message.provider_message_id,
            other => panic!("{other:?}"),
        };
        assert_eq!(id(raw), id(raw));
        assert!(id(raw).starts_with("sha256:"));
    }

    #[test]
    fn subjects_get_one_re() {
        assert_eq!(reply_subject(Some("Order 1234"), "x"), "Re: Order 1234");
        assert_eq!(reply_subject(Some("RE: Re: AW: Order 1234"), "x"), "Re: Order 1234");
        assert_eq!(reply_subject(None, "Your message"), "Your message");
    }

    #[test]
    fn rendered_reply_has_threading_headers_parts_and_attachments() {
        let e = OutgoingEmail {
            from: "support@acme.example".into(),
            from_name: Some("Acme Support".into()),
            to: "ann@example.com".into(),
            reply_to: "support+01abc@acme.example".into(),
            subject: "Re: Order 1234".into(),
            message_id: "01MSG@acme.example".into(),
            in_reply_to: Some("CAF=ann.1@mail.gmail.com".into()),
            references: vec!["0100@email.amazonses.com".into(), "CAF=ann.1@mail.gmail.com".into()],
            text: "Hello Ann,\n\nyour refund is on its way <today> & tomorrow.".into(),
            files: vec![OutgoingFile {
                filename: "label.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: b"%PDF-1.4".to_vec(),
            }],
            date: now(),
        };
        let raw = render(&e).unwrap();
        let parsed = MessageParser::default().parse(&raw[..]).unwrap();
        assert_eq!(parsed.message_id(), Some("01MSG@acme.example"));
        assert_eq!(message_ids(parsed.in_reply_to()), vec!["CAF=ann.1@mail.gmail.com"]);
        assert_eq!(message_ids(parsed.references()).len(), 2);
        assert_eq!(
            parsed.reply_to().and_then(|a| a.first()).and_then(|a| a.address()),
            Some("support+01abc@acme.example")
        );
        assert_eq!(parsed.from().and_then(|a| a.first()).and_then(|a| a.name()), Some("Acme Support"));
        assert_eq!(parsed.subject(), Some("Re: Order 1234"));
        assert!(parsed.body_text(0).unwrap().contains("your refund is on its way <today> & tomorrow."));
        assert!(parsed.body_html(0).unwrap().contains("&lt;today&gt; &amp; tomorrow"));
        let att = parsed.attachments().next().unwrap();
        assert_eq!(att.attachment_name(), Some("label.pdf"));
        assert_eq!(att.contents(), b"%PDF-1.4");
    }

    #[test]
    fn ses_events_map_to_statuses_and_suppressions() {
        let bounce = String::from_utf8(fixture("ses-bounce.json")).unwrap();
        let f = ses_feedback(&bounce, now()).unwrap();
        assert_eq!(f.kind, "bounce");
        assert_eq!(f.ses_message_id, "0100018e1a2b3c4d-aaaa");
        let ev = f.event.unwrap();
        assert_eq!((ev.status, ev.error_code.as_deref()), (DeliveryStatus::Failed, Some("hard_bounce")));
        assert!(ev.error_message.unwrap().contains("550"));
        assert_eq!(f.suppress, vec![EmailAddress::parse("ann.lee@example.com").unwrap()]);

        let soft = bounce.replace("\"Permanent\"", "\"Transient\"");
        let f = ses_feedback(&soft, now()).unwrap();
        assert_eq!(f.event.unwrap().error_code.as_deref(), Some("soft_bounce"));
        assert!(f.suppress.is_empty(), "soft bounces do not suppress");

        let complaint = String::from_utf8(fixture("ses-complaint.json")).unwrap();
        let f = ses_feedback(&complaint, now()).unwrap();
        assert!(f.event.is_none());
        assert_eq!(f.suppress.len(), 1);

        let delivery = r#"{"eventType":"Delivery","mail":{"messageId":"m1","timestamp":"2026-03-04T10:00:00Z"},"delivery":{"timestamp":"2026-03-04T10:00:02Z"}}"#;
        let f = ses_feedback(delivery, now()).unwrap();
        assert_eq!(f.event.unwrap().status, DeliveryStatus::Delivered);
        assert!(ses_feedback("{}", now()).is_err());
        assert!(ses_feedback(r#"{"eventType":"Bounce","mail":{"messageId":"m"}}"#, now()).is_err());
    }
}
