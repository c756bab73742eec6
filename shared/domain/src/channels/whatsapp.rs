//! WhatsApp Business Cloud API: the webhook handshake and signature, inbound messages and statuses,
//! and the `/{phone-number-id}/messages` request for text, media and template messages.
//!
//! - Our address is the business phone number's id (`metadata.phone_number_id`), the key a channel
//!   account maps to a workspace; the display number goes into message metadata.
//! - The customer's address is their number in E.164 (`+` and the `wa_id`), so one person on SMS,
//!   WhatsApp and voice is one contact and consent applies across them.
//! - Media arrive as ids (`whatsapp-media:<id>` attachments); the webhook copies each into S3
//!   before enqueueing (`GET /{media-id}` for a short-lived URL, then the bytes, both with the
//!   access token), so the message names our copy and never an expiring link.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::Deserialize;

use super::templates::{ReviewChange, TemplateQuality, TemplateReview, TemplateStatus};
use serde_json::{json, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::{
    json_body, non_empty, unix_time, Auth, ChannelAdapter, ChannelEvent, Method, ParsedMessage, ParsedStatus, Payload,
    ProviderRequest, Rejection, RenderError, SendOutcome, Verified, Webhook,
};
use crate::address::PhoneNumber;
use crate::error::ParseError;
use crate::model::{Attachment, Channel, DeliveryEvent, DeliveryStatus, Identity, Message};

pub const PROVIDER: &str = "whatsapp";
/// The Graph API version Switchboard is written against.
pub const API_BASE: &str = "https://graph.facebook.com/v21.0";
/// The scheme of an attachment URL that still names a WhatsApp media id (not yet in S3).
pub const MEDIA_SCHEME: &str = "whatsapp-media:";

/// The adapter, with the app's credentials: the app secret signs webhooks, the verify token is
/// ours (set in the app dashboard for the handshake), the access token sends.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct WhatsApp {
    pub app_secret: String,
    pub verify_token: String,
    pub access_token: String,
}

/// `sha256=<hex>` over the raw body, keyed with the app secret (Meta's `X-Hub-Signature-256`).
pub fn compute_signature(app_secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The Graph webhook checks shared by WhatsApp, Messenger and Instagram: the GET subscription
/// handshake and the POST signature.
pub fn verify_graph(req: &Webhook<'_>, app_secret: &str, verify_token: &str) -> Result<Verified, Rejection> {
    if req.method.eq_ignore_ascii_case("GET") {
        if verify_token.trim().is_empty() {
            return Err(Rejection::NotConfigured("verify token"));
        }
        let mode = req.query("hub.mode").ok_or(Rejection::Missing("hub.mode"))?;
        let token = req.query("hub.verify_token").ok_or(Rejection::Missing("hub.verify_token"))?;
        let challenge = req.query("hub.challenge").ok_or(Rejection::Missing("hub.challenge"))?;
        if mode != "subscribe" {
            return Err(Rejection::Invalid("hub.mode"));
        }
        if !bool::from(token.as_bytes().ct_eq(verify_token.as_bytes())) {
            return Err(Rejection::Invalid("hub.verify_token"));
        }
        return Ok(Verified::Challenge(challenge));
    }
    if app_secret.trim().is_empty() {
        return Err(Rejection::NotConfigured("app secret"));
    }
    let provided = req.header("x-hub-signature-256").ok_or(Rejection::Missing("X-Hub-Signature-256"))?;
    let expected = compute_signature(app_secret, req.body);
    if bool::from(expected.as_bytes().ct_eq(provided.trim().to_ascii_lowercase().as_bytes())) {
        Ok(Verified::Events)
    } else {
        Err(Rejection::Invalid("X-Hub-Signature-256"))
    }
}

#[derive(Deserialize)]
struct Payload_ {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    /// When Meta sent the entry (unix seconds); template reviews are ordered by it.
    #[serde(default)]
    time: Option<i64>,
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    field: String,
    value: Value,
}

#[derive(Deserialize)]
struct ChangeValue {
    metadata: Metadata,
    #[serde(default)]
    contacts: Vec<WaContact>,
    #[serde(default)]
    messages: Vec<WaMessage>,
    #[serde(default)]
    statuses: Vec<WaStatus>,
}

#[derive(Deserialize)]
struct Metadata {
    display_phone_number: Option<String>,
    phone_number_id: String,
}

#[derive(Deserialize)]
struct WaContact {
    wa_id: String,
    profile: Option<Profile>,
}

#[derive(Deserialize)]
struct Profile {
    name: Option<String>,
}

#[derive(Deserialize)]
struct WaMessage {
    from: String,
    id: String,
    timestamp: String,
    #[serde(rename = "type")]
    kind: String,
    text: Option<Text>,
    image: Option<Media>,
    audio: Option<Media>,
    video: Option<Media>,
    document: Option<Media>,
    sticker: Option<Media>,
    location: Option<Value>,
    contacts: Option<Value>,
    interactive: Option<Interactive>,
    button: Option<Button>,
    reaction: Option<Reaction>,
    context: Option<Context>,
    referral: Option<Value>,
    errors: Option<Value>,
    system: Option<Value>,
}

#[derive(Deserialize)]
struct Text {
    body: String,
}

#[derive(Deserialize)]
struct Media {
    id: String,
    mime_type: Option<String>,
    caption: Option<String>,
    filename: Option<String>,
    sha256: Option<String>,
    #[serde(default)]
    voice: bool,
}

#[derive(Deserialize)]
struct Interactive {
    #[serde(rename = "type")]
    kind: String,
    button_reply: Option<Reply>,
    list_reply: Option<Reply>,
}

#[derive(Deserialize)]
struct Reply {
    id: String,
    title: String,
    description: Option<String>,
}

#[derive(Deserialize)]
struct Button {
    payload: Option<String>,
    text: String,
}

#[derive(Deserialize)]
struct Reaction {
    message_id: String,
    emoji: Option<String>,
}

#[derive(Deserialize)]
struct Context {
    id: Option<String>,
    #[serde(default)]
    forwarded: bool,
    #[serde(default)]
    frequently_forwarded: bool,
}

#[derive(Deserialize)]
struct WaStatus {
    id: String,
    status: String,
    timestamp: String,
    recipient_id: String,
    conversation: Option<Value>,
    pricing: Option<Value>,
    #[serde(default)]
    errors: Vec<WaError>,
}

#[derive(Deserialize)]
struct WaError {
    code: i64,
    title: Option<String>,
    message: Option<String>,
    error_data: Option<ErrorData>,
}

#[derive(Deserialize)]
struct ErrorData {
    details: Option<String>,
}

fn timestamp(raw: &str) -> Result<OffsetDateTime, ParseError> {
    let secs = raw
        .parse::<i64>()
        .map_err(|_| ParseError::Invalid { kind: "WhatsApp timestamp", reason: format!("{raw:?} is not a number") })?;
    unix_time("WhatsApp timestamp", secs)
}

/// WhatsApp ids are the number's digits without `+`.
fn phone(wa_id: &str) -> Result<PhoneNumber, ParseError> {
    if wa_id.is_empty() || !wa_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Invalid { kind: "WhatsApp id", reason: "expected the number's digits".into() });
    }
    PhoneNumber::parse(&format!("+{wa_id}"))
}

fn provider_id(kind: &'static str, id: &str) -> Result<String, ParseError> {
    let ok = !id.is_empty() && id.len() <= 256 && id.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
    if ok {
        Ok(id.to_owned())
    } else {
        Err(ParseError::Invalid { kind, reason: "expected up to 256 printable characters".into() })
    }
}

fn attachment(m: &Media, kind: &str) -> Result<Attachment, ParseError> {
    let id = provider_id("WhatsApp media id", &m.id)?;
    let default_type = match kind {
        "sticker" => "image/webp",
        "image" => "image/jpeg",
        "audio" => "audio/ogg",
        "video" => "video/mp4",
        _ => "application/octet-stream",
    };
    Ok(Attachment {
        content_type: m.mime_type.clone().unwrap_or_else(|| default_type.to_owned()),
        size_bytes: None,
        url: format!("{MEDIA_SCHEME}{id}"),
        filename: m.filename.clone(),
    })
}

fn message(
    m: WaMessage,
    meta: &Metadata,
    contacts: &[WaContact],
    received_at: OffsetDateTime,
) -> Result<ParsedMessage, ParseError> {
    let from = phone(&m.from)?;
    let mut metadata = BTreeMap::new();
    metadata.insert("whatsapp_type".to_owned(), Value::from(m.kind.clone()));
    if let Some(d) = &meta.display_phone_number {
        metadata.insert("display_phone_number".to_owned(), Value::from(d.clone()));
    }
    let mut text = None;
    let mut attachments = vec![];
    let mut rich = None;
    match m.kind.as_str() {
        "text" => text = m.text.map(|t| t.body),
        kind @ ("image" | "audio" | "video" | "document" | "sticker") => {
            let media = match kind {
                "image" => m.image.as_ref(),
                "audio" => m.audio.as_ref(),
                "video" => m.video.as_ref(),
                "document" => m.document.as_ref(),
                _ => m.sticker.as_ref(),
            }
            .ok_or(ParseError::Missing("WhatsApp media object"))?;
            attachments.push(attachment(media, kind)?);
            text = media.caption.clone();
            if media.voice {
                metadata.insert("voice_note".to_owned(), Value::Bool(true));
            }
            if let Some(sha) = &media.sha256 {
                metadata.insert("media_sha256".to_owned(), Value::from(sha.clone()));
            }
        }
        "location" => {
            let loc = m.location.ok_or(ParseError::Missing("location"))?;
            text = loc.get("name").and_then(Value::as_str).map(str::to_owned);
            rich = Some(json!({ "type": "location", "location": loc }));
        }
        "contacts" => rich = Some(json!({ "type": "contacts", "contacts": m.contacts.unwrap_or_default() })),
        "interactive" => {
            let i = m.interactive.ok_or(ParseError::Missing("interactive"))?;
            let reply = i.button_reply.or(i.list_reply).ok_or(ParseError::Missing("interactive reply"))?;
            text = Some(reply.title.clone());
            rich = Some(json!({
                "type": i.kind, "id": reply.id, "title": reply.title, "description": reply.description,
            }));
        }
        "button" => {
            let b = m.button.ok_or(ParseError::Missing("button"))?;
            text = Some(b.text.clone());
            rich = Some(json!({ "type": "button", "payload": b.payload, "text": b.text }));
        }
        "reaction" => {
            let r = m.reaction.ok_or(ParseError::Missing("reaction"))?;
            let emoji = non_empty(r.emoji.as_deref());
            text = emoji.clone();
            // An empty emoji takes a reaction back.
            rich = Some(json!({ "type": "reaction", "message_id": r.message_id, "emoji": emoji }));
        }
        other => {
            // `unsupported`, `system` (a customer changed number) and types newer than this code:
            // kept, so agents see something arrived, with what WhatsApp said about it.
            rich = Some(json!({ "type": other, "supported": false, "errors": m.errors, "system": m.system }));
        }
    }
    if let Some(ctx) = m.context {
        if let Some(id) = ctx.id {
            metadata.insert("reply_to_provider_id".to_owned(), Value::from(id));
        }
        if ctx.forwarded || ctx.frequently_forwarded {
            metadata.insert("forwarded".to_owned(), Value::Bool(true));
        }
    }
    if let Some(r) = m.referral {
        metadata.insert("referral".to_owned(), r);
    }
    let text = non_empty(text.as_deref());
    let contact_name = contacts
        .iter()
        .find(|c| c.wa_id == m.from)
        .and_then(|c| c.profile.as_ref())
        .and_then(|p| non_empty(p.name.as_deref()));
    Ok(ParsedMessage {
        channel: Channel::Whatsapp,
        identity: Identity::phone(&from),
        contact_address: from.as_str().to_owned(),
        contact_country: from.country(),
        our_address: provider_id("phone_number_id", &meta.phone_number_id)?,
        contact_name,
        provider: PROVIDER,
        provider_message_id: provider_id("WhatsApp message id", &m.id)?,
        text,
        attachments,
        rich,
        provider_timestamp: Some(timestamp(&m.timestamp).unwrap_or(received_at)),
        metadata,
    })
}

pub fn map_status(s: &str) -> Option<DeliveryStatus> {
    Some(match s {
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "read" | "played" => DeliveryStatus::Read,
        "failed" => DeliveryStatus::Failed,
        _ => return None,
    })
}

fn status(s: WaStatus, meta: &Metadata) -> Result<Option<ParsedStatus>, ParseError> {
    let Some(mapped) = map_status(&s.status) else { return Ok(None) };
    let recipient = phone(&s.recipient_id)?;
    let first_error = s.errors.first();
    let event = DeliveryEvent {
        status: mapped,
        at: timestamp(&s.timestamp)?,
        error_code: first_error.map(|e| e.code.to_string()),
        error_message: first_error.map(|e| {
            let base = e.message.clone().or_else(|| e.title.clone()).unwrap_or_default();
            match e.error_data.as_ref().and_then(|d| d.details.as_deref()) {
                Some(d) if !d.is_empty() && d != base => format!("{base}: {d}"),
                _ => base,
            }
        }),
    };
    let mut metadata = BTreeMap::new();
    if let Some(p) = s.pricing {
        metadata.insert("pricing".to_owned(), p);
    }
    if let Some(c) = s.conversation {
        metadata.insert("conversation".to_owned(), c);
    }
    Ok(Some(ParsedStatus {
        channel: Channel::Whatsapp,
        provider: PROVIDER,
        provider_message_id: provider_id("WhatsApp message id", &s.id)?,
        our_address: provider_id("phone_number_id", &meta.phone_number_id)?,
        recipient: Identity::phone(&recipient),
        event,
        metadata,
    }))
}

/// Every message and status in a webhook body, over all its entries and changes. Changes of
/// other fields (account updates, template reviews) carry no customer events and are skipped.
pub fn parse(body: &[u8], received_at: OffsetDateTime) -> Result<Vec<ChannelEvent>, ParseError> {
    let payload: Payload_ = json_body("WhatsApp webhook", body)?;
    if payload.object != "whatsapp_business_account" {
        return Err(ParseError::Invalid {
            kind: "WhatsApp webhook",
            reason: format!("object is {:?}, not whatsapp_business_account", payload.object),
        });
    }
    let mut events = vec![];
    for change in payload.entry.into_iter().flat_map(|e| e.changes) {
        if change.field != "messages" {
            continue;
        }
        let value: ChangeValue = serde_json::from_value(change.value)
            .map_err(|e| ParseError::Invalid { kind: "WhatsApp change", reason: e.to_string() })?;
        for m in value.messages {
            events.push(ChannelEvent::Message(Box::new(message(m, &value.metadata, &value.contacts, received_at)?)));
        }
        for s in value.statuses {
            if let Some(st) = status(s, &value.metadata)? {
                events.push(ChannelEvent::Status(st));
            }
        }
    }
    Ok(events)
}

/// Whether a webhook body may carry template reviews: every such field's name contains
/// `template_`. A cheap look before [`template_reviews`] parses the body a second time, so the
/// messages and statuses that make up nearly all deliveries are parsed once.
pub fn may_carry_template_reviews(body: &[u8]) -> bool {
    body.windows(b"template_".len()).any(|w| w == b"template_")
}

/// Meta's reviews of templates in a webhook body (`message_template_status_update`,
/// `template_category_update`, `message_template_quality_update`); other fields are skipped, and
/// so are review events that change nothing we keep (a lock).
pub fn template_reviews(body: &[u8], received_at: OffsetDateTime) -> Result<Vec<TemplateReview>, ParseError> {
    let payload: Payload_ = json_body("WhatsApp webhook", body)?;
    let mut reviews = vec![];
    for entry in payload.entry {
        let at = entry.time.and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok()).unwrap_or(received_at);
        for change in entry.changes {
            let v = &change.value;
            let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
            let kind = change.field.as_str();
            let change = match kind {
                "message_template_status_update" => {
                    let Some(status) = text("event").as_deref().and_then(TemplateStatus::from_meta_event) else {
                        continue;
                    };
                    ReviewChange::Status { status, reason: text("reason") }
                }
                "template_category_update" => {
                    let new = text("new_category").or_else(|| text("correct_category")).unwrap_or_default();
                    match serde_json::from_value(Value::from(new.to_ascii_lowercase())) {
                        Ok(c) => ReviewChange::Category(c),
                        Err(_) => continue,
                    }
                }
                "message_template_quality_update" => {
                    ReviewChange::Quality(TemplateQuality::from_meta(&text("new_quality_score").unwrap_or_default()))
                }
                _ => continue,
            };
            let meta_id = match v.get("message_template_id") {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                _ => return Err(ParseError::Missing("message_template_id")),
            };
            let name = text("message_template_name").ok_or(ParseError::Missing("message_template_name"))?;
            let language = text("message_template_language").ok_or(ParseError::Missing("message_template_language"))?;
            reviews.push(TemplateReview { meta_id, name, language, at, change });
        }
    }
    Ok(reviews)
}

/// A template message to send: the registry's name and language, its body's parameters in
/// order (`{{1}}`, `{{2}}`…), and its header's and buttons' when it has them. Stored in the
/// message's `rich` content under `template`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateSend {
    pub name: String,
    pub language: String,
    #[serde(default)]
    pub parameters: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<super::templates::HeaderParameter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<super::templates::ButtonParameter>,
}

impl TemplateSend {
    /// A send of `template` with no parameters at all.
    pub fn bare(template: &super::templates::WhatsAppTemplate) -> TemplateSend {
        TemplateSend {
            name: template.name.clone(),
            language: template.language.clone(),
            parameters: vec![],
            header: None,
            buttons: vec![],
        }
    }

    /// The `components` of the Cloud API's template object (empty when it takes no parameters).
    fn components(&self) -> Vec<Value> {
        use super::templates::{ButtonParameter, HeaderParameter};
        let mut components = Vec::new();
        match &self.header {
            Some(HeaderParameter::Text { text }) => {
                components.push(json!({ "type": "header", "parameters": [{ "type": "text", "text": text }] }))
            }
            Some(HeaderParameter::Media { link }) => {
                let kind = header_media_kind(link);
                components.push(json!({ "type": "header", "parameters": [{ "type": kind, kind: { "link": link } }] }))
            }
            None => {}
        }
        if !self.parameters.is_empty() {
            let params: Vec<Value> = self.parameters.iter().map(|p| json!({ "type": "text", "text": p })).collect();
            components.push(json!({ "type": "body", "parameters": params }));
        }
        let mut buttons = self.buttons.clone();
        buttons.sort_by_key(ButtonParameter::index);
        for b in &buttons {
            components.push(match b {
                ButtonParameter::Url { index, text } => json!({ "type": "button", "sub_type": "url",
                    "index": index.to_string(), "parameters": [{ "type": "text", "text": text }] }),
                ButtonParameter::QuickReply { index, payload } => json!({ "type": "button", "sub_type": "quick_reply",
                    "index": index.to_string(), "parameters": [{ "type": "payload", "payload": payload }] }),
            });
        }
        components
    }
}

/// A media header's type, from its link's file extension (Meta needs the type named).
fn header_media_kind(link: &str) -> &'static str {
    let path = link.split(['?', '#']).next().unwrap_or_default().to_ascii_lowercase();
    if [".jpg", ".jpeg", ".png"].iter().any(|e| path.ends_with(e)) {
        "image"
    } else if [".mp4", ".3gp"].iter().any(|e| path.ends_with(e)) {
        "video"
    } else {
        "document"
    }
}

impl TemplateSend {
    pub fn of(message: &Message) -> Option<TemplateSend> {
        let t = message.rich.as_ref()?.get("template")?;
        serde_json::from_value(t.clone()).ok()
    }
}

/// The WhatsApp media type a MIME type is sent as.
fn media_kind(content_type: &str) -> &'static str {
    let t = content_type.to_ascii_lowercase();
    if t == "image/webp" {
        "sticker"
    } else if t.starts_with("image/") {
        "image"
    } else if t.starts_with("audio/") {
        "audio"
    } else if t.starts_with("video/") {
        "video"
    } else {
        "document"
    }
}

/// The Cloud API body for a stored outbound message.
pub fn request_body(message: &Message) -> Result<Value, RenderError> {
    let to = message.route.contact_address.trim_start_matches('+');
    let mut body = json!({ "messaging_product": "whatsapp", "recipient_type": "individual", "to": to });
    if let Some(t) = TemplateSend::of(message) {
        let mut template = json!({ "name": t.name, "language": { "code": t.language } });
        let components = t.components();
        if !components.is_empty() {
            template["components"] = Value::Array(components);
        }
        body["type"] = "template".into();
        body["template"] = template;
    } else if let Some(i) = message.rich.as_ref().and_then(|r| r.get("interactive")).filter(|i| i.is_object()) {
        // Reply buttons or a list (the satisfaction survey's), as the Cloud API takes them.
        body["type"] = "interactive".into();
        body["interactive"] = i.clone();
    } else if let Some(r) = message.rich.as_ref().and_then(|r| r.get("reaction")).filter(|r| r.is_object()) {
        // A reaction names the customer's message by its WhatsApp id; it quotes nothing.
        body["type"] = "reaction".into();
        body["reaction"] = json!({ "message_id": r["provider_message_id"], "emoji": r["emoji"] });
        return Ok(body);
    } else if let Some(l) = message.rich.as_ref().and_then(|r| r.get("location")).filter(|l| l.is_object()) {
        body["type"] = "location".into();
        body["location"] = l.clone();
    } else if let Some(a) = message.attachments.first() {
        if message.attachments.len() > 1 {
            return Err(RenderError {
                code: "too_many_attachments",
                message: "WhatsApp sends one file per message".into(),
            });
        }
        let kind = media_kind(&a.content_type);
        let mut media = json!({ "link": a.url });
        if let Some(text) = message.text.as_deref().filter(|t| !t.is_empty()) {
            if matches!(kind, "image" | "video" | "document") {
                media["caption"] = text.into();
            } else {
                return Err(RenderError {
                    code: "caption_not_supported",
                    message: format!("WhatsApp {kind} messages carry no text; send the text separately"),
                });
            }
        }
        if let (Some(name), "document") = (&a.filename, kind) {
            media["filename"] = name.clone().into();
        }
        body["type"] = kind.into();
        body[kind] = media;
    } else {
        let text = message.text.as_deref().filter(|t| !t.is_empty()).ok_or_else(|| RenderError {
            code: "empty_message",
            message: "nothing to send: no text, file or template".into(),
        })?;
        body["type"] = "text".into();
        body["text"] = json!({ "preview_url": text.contains("https://"), "body": text });
    }
    if let Some(id) = message.metadata.get("reply_to_provider_id").and_then(Value::as_str) {
        body["context"] = json!({ "message_id": id });
    }
    Ok(body)
}

/// Error codes that mean "not now" rather than "never" (Meta's error-code reference): API
/// throttling, the business number's and the pair's rate limits, temporary unavailability.
const RETRYABLE_CODES: [i64; 8] = [1, 2, 4, 80007, 130429, 131016, 131056, 133004];

/// A Graph API error answer (WhatsApp, Messenger, Instagram): its code, subcode and message (with
/// the details WhatsApp adds), or the HTTP status when the body is not Graph's.
pub(crate) struct GraphFailure {
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    pub message: String,
}

pub(crate) fn graph_failure(http_status: u16, body: &[u8]) -> GraphFailure {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: GraphError,
    }
    #[derive(Deserialize)]
    struct GraphError {
        code: Option<i64>,
        error_subcode: Option<i64>,
        message: Option<String>,
        error_data: Option<ErrorData>,
    }
    let err = serde_json::from_slice::<ErrorBody>(body).ok().map(|b| b.error);
    let mut message = err.as_ref().and_then(|e| e.message.clone()).unwrap_or_else(|| format!("HTTP {http_status}"));
    if let Some(d) = err.as_ref().and_then(|e| e.error_data.as_ref()).and_then(|d| d.details.as_deref()) {
        message = format!("{message}: {d}");
    }
    GraphFailure {
        code: err.as_ref().and_then(|e| e.code),
        subcode: err.as_ref().and_then(|e| e.error_subcode),
        message,
    }
}

pub fn classify_response(http_status: u16, body: &[u8]) -> SendOutcome {
    #[derive(Deserialize)]
    struct Sent {
        messages: Vec<SentId>,
    }
    #[derive(Deserialize)]
    struct SentId {
        id: String,
    }
    if (200..300).contains(&http_status) {
        return match serde_json::from_slice::<Sent>(body).ok().and_then(|s| s.messages.into_iter().next()) {
            Some(m) => SendOutcome::Accepted { provider_message_id: m.id },
            None => SendOutcome::Rejected {
                code: "invalid_response".into(),
                message: "WhatsApp accepted the request but named no message id".into(),
            },
        };
    }
    let GraphFailure { code, mut message, .. } = graph_failure(http_status, body);
    if http_status == 429 || http_status >= 500 || code.is_some_and(|c| RETRYABLE_CODES.contains(&c)) {
        return SendOutcome::Retryable { http_status, detail: message };
    }
    if code == Some(131047) {
        message = format!("{message} (the 24-hour window has closed: send an approved template)");
    }
    SendOutcome::Rejected { code: code.map(|c| c.to_string()).unwrap_or_else(|| http_status.to_string()), message }
}

impl std::fmt::Debug for WhatsApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WhatsApp(<credentials>)")
    }
}

impl ChannelAdapter for WhatsApp {
    fn provider(&self) -> &'static str {
        PROVIDER
    }
    fn verify(&self, req: &Webhook<'_>) -> Result<Verified, Rejection> {
        verify_graph(req, &self.app_secret, &self.verify_token)
    }
    fn parse(&self, req: &Webhook<'_>, received_at: OffsetDateTime) -> Result<Vec<ChannelEvent>, ParseError> {
        parse(req.body, received_at)
    }
    fn render(&self, message: &Message) -> Result<ProviderRequest, RenderError> {
        Ok(ProviderRequest {
            method: Method::Post,
            path: format!("/{}/messages", message.route.our_address),
            auth: Auth::Bearer(self.access_token.clone()),
            payload: Payload::Json(request_body(message)?),
        })
    }
    fn classify(&self, http_status: u16, body: &[u8]) -> SendOutcome {
        classify_response(http_status, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConversationId, WorkspaceId};
    use crate::model::{Route, Sender};
    use time::macros::datetime;

    const INBOUND: &str = include_str!("../../../../events/whatsapp-webhook/messages.json");
    const STATUSES: &str = include_str!("../../../../events/whatsapp-webhook/statuses.json");

    fn body_of(fixture: &str) -> String {
        let v: Value = serde_json::from_str(fixture).unwrap();
        v["body"].as_str().unwrap().to_owned()
    }

    fn webhook<'a>(method: &'a str, url: &'a str, headers: &'a [(String, String)], body: &'a [u8]) -> Webhook<'a> {
        Webhook { method, url, headers, body }
    }

    fn adapter() -> WhatsApp {
        WhatsApp { app_secret: "app-secret".into(), verify_token: "verify-me".into(), access_token: "tok".into() }
    }

    #[test]
    fn the_handshake_echoes_the_challenge_only_for_our_token() {
        let a = adapter();
        let ok = "https://x/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444";
        assert_eq!(a.verify(&webhook("GET", ok, &[], b"")), Ok(Verified::Challenge("1158201444".into())));
        let wrong = ok.replace("verify-me", "guess");
        assert_eq!(a.verify(&webhook("GET", &wrong, &[], b"")), Err(Rejection::Invalid("hub.verify_token")));
        let no_challenge = "https://x/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=verify-me";
        assert!(a.verify(&webhook("GET", no_challenge, &[], b"")).is_err());
    }

    #[test]
    fn signatures_cover_the_raw_bytes() {
        let a = adapter();
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let sig = compute_signature("app-secret", body);
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        let h = vec![("x-hub-signature-256".to_owned(), sig.clone())];
        assert_eq!(a.verify(&webhook("POST", "https://x", &h, body)), Ok(Verified::Events));
        // One byte of whitespace more is another body.
        let spaced = br#"{"object": "whatsapp_business_account","entry":[]}"#;
        assert!(a.verify(&webhook("POST", "https://x", &h, spaced)).is_err());
        let upper = vec![("X-Hub-Signature-256".to_owned(), sig.to_uppercase().replace("SHA256", "sha256"))];
        assert_eq!(a.verify(&webhook("POST", "https://x", &upper, body)), Ok(Verified::Events));
        assert_eq!(a.verify(&webhook("POST", "https://x", &[], body)), Err(Rejection::Missing("X-Hub-Signature-256")));
        let other = vec![("x-hub-signature-256".to_owned(), compute_signature("other", body))];
        assert!(a.verify(&webhook("POST", "https://x", &other, body)).is_err());
    }

    fn messages() -> Vec<ParsedMessage> {
        parse(body_of(INBOUND).as_bytes(), datetime!(2026-11-01 0:00 UTC))
            .unwrap()
            .into_iter()
            .map(|e| match e {
                ChannelEvent::Message(m) => *m,
                other => panic!("expected messages, got {other:?}"),
            })
            .collect()
    }

    #[test]
    fn every_message_type_in_every_entry_and_change_parses() {
        let m = messages();
        let kinds: Vec<&str> = m.iter().map(|m| m.metadata["whatsapp_type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "text",
                "image",
                "audio",
                "video",
                "document",
                "sticker",
                "location",
                "contacts",
                "interactive",
                "interactive",
                "button",
                "reaction",
                "unsupported",
                "text"
            ]
        );
        let text = &m[0];
        assert_eq!(
            text.identity,
            Identity { kind: crate::IdentityKind::Phone, value: "+16505551234".into(), unverified: false }
        );
        assert_eq!(text.contact_address, "+16505551234");
        assert_eq!(text.contact_country.as_deref(), Some("US"));
        assert_eq!(text.our_address, "106540352242922");
        assert_eq!(text.contact_name.as_deref(), Some("Sheena Nelson"));
        assert_eq!(text.text.as_deref(), Some("Does it come in another color?"));
        assert_eq!(text.provider_timestamp, Some(datetime!(2025-06-08 20:59:43 UTC)));
        let image = &m[1];
        assert_eq!(image.attachments[0].url, "whatsapp-media:1003383421387256");
        assert_eq!(image.attachments[0].content_type, "image/jpeg");
        assert_eq!(image.text.as_deref(), Some("The damaged box"));
        assert_eq!(m[2].metadata["voice_note"], true);
        assert_eq!(m[4].attachments[0].filename.as_deref(), Some("invoice-8812.pdf"));
        assert_eq!(m[6].rich.as_ref().unwrap()["location"]["latitude"], 37.483307);
        assert_eq!(m[7].rich.as_ref().unwrap()["contacts"][0]["name"]["formatted_name"], "Barbara Johnson");
        assert_eq!(m[8].rich.as_ref().unwrap()["id"], "change-delivery");
        assert_eq!(m[8].text.as_deref(), Some("Change delivery"));
        assert_eq!(m[9].rich.as_ref().unwrap()["type"], "list_reply");
        assert_eq!(m[10].rich.as_ref().unwrap()["payload"], "CONFIRM_ORDER");
        assert_eq!(m[11].text.as_deref(), Some("👍"));
        assert_eq!(
            m[11].rich.as_ref().unwrap()["message_id"],
            "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
        );
        assert_eq!(m[12].rich.as_ref().unwrap()["supported"], false);
        assert!(m[12].text.is_none());
        // The second entry: another business number, a reply with context.
        assert_eq!(m[13].our_address, "106540352242999");
        assert_eq!(
            m[13].metadata["reply_to_provider_id"],
            "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
        );
    }

    #[test]
    fn statuses_map_with_errors_and_pricing() {
        let events = parse(body_of(STATUSES).as_bytes(), datetime!(2026-11-01 0:00 UTC)).unwrap();
        let s: Vec<ParsedStatus> = events
            .into_iter()
            .map(|e| match e {
                ChannelEvent::Status(s) => s,
                other => panic!("expected statuses, got {other:?}"),
            })
            .collect();
        let statuses: Vec<DeliveryStatus> = s.iter().map(|s| s.event.status).collect();
        assert_eq!(
            statuses,
            [DeliveryStatus::Sent, DeliveryStatus::Delivered, DeliveryStatus::Read, DeliveryStatus::Failed]
        );
        assert_eq!(s[0].recipient.value, "+16505551234");
        assert_eq!(s[1].metadata["pricing"]["category"], "service");
        assert_eq!(s[3].event.error_code.as_deref(), Some("131047"));
        assert!(s[3].event.error_message.as_deref().unwrap().contains("24 hours"));
    }

    #[test]
    fn malformed_payloads_are_refused_with_a_reason() {
        let at = datetime!(2026-11-01 0:00 UTC);
        assert!(parse(b"not json", at).is_err());
        assert!(parse(br#"{"object":"page","entry":[]}"#, at).is_err());
        let bad_from = body_of(INBOUND).replacen(r#""from":"16505551234""#, r#""from":"16505551234#x""#, 1);
        assert!(parse(bad_from.as_bytes(), at).is_err());
        // Other fields (template reviews, account updates) carry nothing for the inbox.
        let other = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"message_template_status_update","value":{"event":"APPROVED"}}]}]}"#;
        assert_eq!(parse(other, at).unwrap(), vec![]);
    }

    fn outbound(text: &str) -> Message {
        let route = Route {
            channel: Channel::Whatsapp,
            contact_address: "+16505551234".into(),
            our_address: "106540352242922".into(),
            contact_country: Some("US".into()),
        };
        Message::queued_outbound(
            WorkspaceId::parse("acme").unwrap(),
            ConversationId::new(),
            route,
            Sender::System,
            text,
            BTreeMap::new(),
            datetime!(2026-11-01 0:00 UTC),
        )
    }

    #[test]
    fn text_media_and_templates_render_as_documented() {
        let a = adapter();
        let mut survey = outbound("How did we do?");
        survey.rich = Some(json!({ "type": "csat", "interactive": crate::csat::whatsapp_list("How did we do?") }));
        let Payload::Json(body) = a.render(&survey).unwrap().payload else { panic!("json") };
        assert_eq!(body["type"], "interactive");
        assert_eq!(body["interactive"]["type"], "list");
        assert_eq!(body["interactive"]["action"]["sections"][0]["rows"][0]["id"], "csat:5");
        let req = a.render(&outbound("Your order shipped")).unwrap();
        assert_eq!(req.path, "/106540352242922/messages");
        assert_eq!(req.auth, Auth::Bearer("tok".into()));
        assert_eq!(
            req.payload,
            Payload::Json(json!({
                "messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234",
                "type": "text", "text": { "preview_url": false, "body": "Your order shipped" }
            }))
        );
        let mut m = outbound("Here is the label");
        m.attachments = vec![Attachment {
            content_type: "application/pdf".into(),
            size_bytes: Some(10),
            url: "https://files.test/label.pdf".into(),
            filename: Some("label.pdf".into()),
        }];
        let Payload::Json(body) = a.render(&m).unwrap().payload else { panic!() };
        assert_eq!(
            body["document"],
            json!({ "link": "https://files.test/label.pdf", "caption": "Here is the label", "filename": "label.pdf" })
        );
        let mut t = outbound("");
        t.rich =
            Some(json!({ "template": { "name": "order_update", "language": "en_US", "parameters": ["Ana", "8812"] } }));
        let Payload::Json(body) = a.render(&t).unwrap().payload else { panic!() };
        assert_eq!(body["type"], "template");
        assert_eq!(body["template"]["language"]["code"], "en_US");
        assert_eq!(body["template"]["components"][0]["parameters"][1], json!({ "type": "text", "text": "8812" }));
        assert_eq!(a.render(&outbound("")).unwrap_err().code, "empty_message");
    }

    #[test]
    fn answers_are_classified() {
        let ok = br#"{"messaging_product":"whatsapp","contacts":[{"input":"16505551234","wa_id":"16505551234"}],"messages":[{"id":"wamid.ABC"}]}"#;
        assert_eq!(classify_response(200, ok), SendOutcome::Accepted { provider_message_id: "wamid.ABC".into() });
        let window = br#"{"error":{"message":"Re-engagement message","type":"OAuthException","code":131047,"error_data":{"messaging_product":"whatsapp","details":"Message failed to send because more than 24 hours have passed since the customer last replied to this number."},"fbtrace_id":"A"}}"#;
        match classify_response(400, window) {
            SendOutcome::Rejected { code, message } => {
                assert_eq!(code, "131047");
                assert!(message.contains("template"));
            }
            other => panic!("{other:?}"),
        }
        let throttled = br#"{"error":{"message":"Rate limit hit","code":130429}}"#;
        assert!(matches!(classify_response(400, throttled), SendOutcome::Retryable { .. }));
        assert!(matches!(classify_response(503, b""), SendOutcome::Retryable { .. }));
        assert!(matches!(classify_response(401, b"{}"), SendOutcome::Rejected { .. }));
    }

    #[test]
    fn an_empty_app_secret_or_verify_token_accepts_nothing() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let forged = compute_signature("", body);
        let headers = vec![("x-hub-signature-256".to_owned(), forged)];
        let post = Webhook { method: "POST", url: "https://h/webhooks/whatsapp", headers: &headers, body };
        assert_eq!(verify_graph(&post, "", "t"), Err(Rejection::NotConfigured("app secret")));
        let get = Webhook {
            method: "GET",
            url: "https://h/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=&hub.challenge=1",
            headers: &[],
            body: b"",
        };
        assert_eq!(verify_graph(&get, "s", ""), Err(Rejection::NotConfigured("verify token")));
    }
}
