//! Telegram Bot API: webhook updates (`setWebhook` with a `secret_token`) and `sendMessage`,
//! `sendPhoto` and `sendDocument`.
//!
//! - Webhooks are posted to `/webhooks/telegram/{bot}`, the bot's numeric id (the part of its token
//!   before `:`): our address, which a channel account maps to a workspace.
//! - The customer is their Telegram user id; replies go to the private chat's id. Group chats are
//!   not a customer-service channel: their updates are acknowledged and skipped.
//! - Telegram redelivers an update until it gets a 2xx: the provider id of an inbound message is
//!   `<bot>:<update_id>`, unique per bot, so a redelivery is a duplicate for the inbox.
//! - Telegram reports no delivery receipts to bots: an accepted send is `sent`, and stays so.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::{
    json_body, non_empty, unix_time, Auth, ChannelAdapter, ChannelEvent, Method, ParsedMessage, Payload,
    ProviderRequest, Rejection, RenderError, SendOutcome, Verified, Webhook,
};
use crate::error::ParseError;
use crate::model::{Attachment, Channel, DeliveryStatus, Identity, IdentityKind, Message};

pub const PROVIDER: &str = "telegram";
/// The scheme of an attachment URL that still names a Telegram `file_id` (not yet in S3).
pub const FILE_SCHEME: &str = "telegram-file:";
pub const API_BASE: &str = "https://api.telegram.org";

#[derive(Clone, Deserialize, utoipa::ToSchema)]
pub struct Telegram {
    /// The bot's token (`<bot id>:<secret>`): sends, and downloads files.
    pub bot_token: String,
    /// The `secret_token` given to `setWebhook`, echoed in `X-Telegram-Bot-Api-Secret-Token`.
    pub secret_token: String,
}

impl Telegram {
    /// The bot id: the token's part before the colon.
    pub fn bot_id(&self) -> &str {
        self.bot_token.split(':').next().unwrap_or_default()
    }
}

#[derive(Deserialize)]
struct Update {
    update_id: i64,
    message: Option<TgMessage>,
    edited_message: Option<TgMessage>,
}

#[derive(Deserialize)]
struct TgMessage {
    message_id: i64,
    from: Option<User>,
    chat: Chat,
    date: i64,
    edit_date: Option<i64>,
    text: Option<String>,
    caption: Option<String>,
    #[serde(default)]
    photo: Vec<PhotoSize>,
    document: Option<File>,
    voice: Option<File>,
    audio: Option<File>,
    video: Option<File>,
    location: Option<Location>,
    contact: Option<Value>,
    reply_to_message: Option<Box<Value>>,
}

#[derive(Deserialize)]
struct User {
    id: i64,
    #[serde(default)]
    is_bot: bool,
    first_name: Option<String>,
    last_name: Option<String>,
    username: Option<String>,
    language_code: Option<String>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PhotoSize {
    file_id: String,
    file_size: Option<u64>,
}

#[derive(Deserialize)]
struct File {
    file_id: String,
    file_name: Option<String>,
    mime_type: Option<String>,
    file_size: Option<u64>,
    duration: Option<u64>,
}

#[derive(Deserialize)]
struct Location {
    latitude: f64,
    longitude: f64,
}

fn file_id(id: &str) -> Result<String, ParseError> {
    let ok =
        !id.is_empty() && id.len() <= 256 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(id.to_owned())
    } else {
        Err(ParseError::Invalid { kind: "Telegram file_id", reason: "expected URL-safe characters".into() })
    }
}

fn file_attachment(f: &File, default_type: &str) -> Result<Attachment, ParseError> {
    Ok(Attachment {
        content_type: f.mime_type.clone().unwrap_or_else(|| default_type.to_owned()),
        size_bytes: f.file_size,
        url: format!("{FILE_SCHEME}{}", file_id(&f.file_id)?),
        filename: f.file_name.clone(),
    })
}

/// The bot id a webhook URL names (`…/webhooks/telegram/<bot>`).
fn bot_of(url: &str) -> Result<String, ParseError> {
    let path = url.split('?').next().unwrap_or_default();
    let bot = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    if !bot.is_empty() && bot.len() <= 20 && bot.bytes().all(|b| b.is_ascii_digit()) {
        Ok(bot.to_owned())
    } else {
        Err(ParseError::Invalid {
            kind: "Telegram webhook path",
            reason: "expected /webhooks/telegram/<bot id>".into(),
        })
    }
}

/// The update's customer message, if it is one: a message or an edit in a private chat from a
/// person. Anything else (group chats, channel posts, bots, callback queries) yields nothing.
pub fn parse(url: &str, body: &[u8], _received_at: OffsetDateTime) -> Result<Vec<ChannelEvent>, ParseError> {
    let bot = bot_of(url)?;
    let update: Update = json_body("Telegram update", body)?;
    let (m, edited) = match (update.message, update.edited_message) {
        (Some(m), _) => (m, false),
        (None, Some(m)) => (m, true),
        (None, None) => return Ok(vec![]),
    };
    let Some(from) = m.from.as_ref().filter(|u| !u.is_bot) else { return Ok(vec![]) };
    if m.chat.kind != "private" {
        return Ok(vec![]);
    }
    let mut metadata = BTreeMap::new();
    metadata.insert("update_id".to_owned(), Value::from(update.update_id));
    metadata.insert("telegram_message_id".to_owned(), Value::from(m.message_id));
    if let Some(u) = &from.username {
        metadata.insert("username".to_owned(), Value::from(u.clone()));
    }
    if let Some(l) = &from.language_code {
        metadata.insert("language".to_owned(), Value::from(l.clone()));
    }
    if edited {
        // An edit arrives as its own update: kept as a new message that says what it edits.
        metadata.insert("edit_of_message_id".to_owned(), Value::from(m.message_id));
        if let Some(d) = m.edit_date {
            metadata.insert("edited_at".to_owned(), Value::from(d));
        }
    }
    if let Some(r) = m.reply_to_message.as_ref().and_then(|r| r.get("message_id")).cloned() {
        metadata.insert("reply_to_message_id".to_owned(), r);
    }
    let mut attachments = vec![];
    let mut rich = None;
    if let Some(largest) = m.photo.last() {
        attachments.push(Attachment {
            content_type: "image/jpeg".into(),
            size_bytes: largest.file_size,
            url: format!("{FILE_SCHEME}{}", file_id(&largest.file_id)?),
            filename: None,
        });
    }
    for (f, default_type) in [
        (&m.document, "application/octet-stream"),
        (&m.voice, "audio/ogg"),
        (&m.audio, "audio/mpeg"),
        (&m.video, "video/mp4"),
    ] {
        if let Some(f) = f {
            attachments.push(file_attachment(f, default_type)?);
            if let Some(d) = f.duration {
                metadata.insert("duration_secs".to_owned(), Value::from(d));
            }
        }
    }
    if m.voice.is_some() {
        metadata.insert("voice_note".to_owned(), Value::Bool(true));
    }
    if let Some(l) = &m.location {
        rich = Some(json!({ "type": "location", "location": { "latitude": l.latitude, "longitude": l.longitude } }));
    }
    if let Some(c) = m.contact {
        rich = Some(json!({ "type": "contacts", "contacts": [c] }));
    }
    let text = non_empty(m.text.as_deref().or(m.caption.as_deref()));
    if text.is_none() && attachments.is_empty() && rich.is_none() {
        // Stickers, polls, dice, service messages: nothing an agent can read.
        return Ok(vec![]);
    }
    let user = from.id.to_string();
    let name = [from.first_name.as_deref(), from.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>();
    Ok(vec![ChannelEvent::Message(Box::new(ParsedMessage {
        channel: Channel::Telegram,
        identity: Identity::parse(IdentityKind::Telegram, &user)?,
        contact_address: m.chat.id.to_string(),
        contact_country: None,
        our_address: bot.clone(),
        contact_name: non_empty(Some(&name.join(" "))),
        provider: PROVIDER,
        provider_message_id: format!("{bot}:{}", update.update_id),
        text,
        attachments,
        rich,
        provider_timestamp: Some(unix_time("Telegram date", m.edit_date.unwrap_or(m.date))?),
        metadata,
    }))])
}

/// The Bot API method and body for a stored outbound message: text, or one file (photo or
/// document) with the text as its caption.
pub fn request(message: &Message) -> Result<(&'static str, Value), RenderError> {
    let chat_id = &message.route.contact_address;
    let text = message.text.as_deref().filter(|t| !t.is_empty());
    let mut body = match message.attachments.as_slice() {
        [] => {
            let text = text.ok_or_else(|| RenderError { code: "empty_message", message: "nothing to send".into() })?;
            return Ok(("sendMessage", json!({ "chat_id": chat_id, "text": text })));
        }
        [a] if a.content_type.to_ascii_lowercase().starts_with("image/") && a.content_type != "image/gif" => {
            ("sendPhoto", json!({ "chat_id": chat_id, "photo": a.url }))
        }
        [a] => ("sendDocument", json!({ "chat_id": chat_id, "document": a.url })),
        _ => {
            return Err(RenderError {
                code: "too_many_attachments",
                message: "Telegram sends one file per message".into(),
            })
        }
    };
    if let Some(t) = text {
        body.1["caption"] = t.into();
    }
    Ok(body)
}

pub fn classify_response(http_status: u16, body: &[u8]) -> SendOutcome {
    #[derive(Deserialize)]
    struct Answer {
        ok: bool,
        result: Option<Value>,
        error_code: Option<i64>,
        description: Option<String>,
    }
    let answer = serde_json::from_slice::<Answer>(body).ok();
    match answer {
        Some(Answer { ok: true, result: Some(r), .. }) if (200..300).contains(&http_status) => {
            match (
                r.get("chat").and_then(|c| c.get("id")).and_then(Value::as_i64),
                r.get("message_id").and_then(Value::as_i64),
            ) {
                (Some(chat), Some(id)) => SendOutcome::Accepted { provider_message_id: format!("{chat}:{id}") },
                _ => SendOutcome::Rejected {
                    code: "invalid_response".into(),
                    message: "Telegram accepted the request but named no message".into(),
                },
            }
        }
        other => {
            let code = other
                .as_ref()
                .and_then(|a| a.error_code)
                .map(|c| c.to_string())
                .unwrap_or_else(|| http_status.to_string());
            let detail = other.and_then(|a| a.description).unwrap_or_else(|| format!("HTTP {http_status}"));
            if http_status == 429 || http_status >= 500 {
                SendOutcome::Retryable { http_status, detail }
            } else {
                SendOutcome::Rejected { code, message: detail }
            }
        }
    }
}

impl std::fmt::Debug for Telegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telegram(<credentials>)")
    }
}

impl ChannelAdapter for Telegram {
    fn provider(&self) -> &'static str {
        PROVIDER
    }
    fn verify(&self, req: &Webhook<'_>) -> Result<Verified, Rejection> {
        if self.secret_token.trim().is_empty() {
            return Err(Rejection::NotConfigured("webhook secret token"));
        }
        let provided = req
            .header("x-telegram-bot-api-secret-token")
            .ok_or(Rejection::Missing("X-Telegram-Bot-Api-Secret-Token"))?;
        if bool::from(provided.as_bytes().ct_eq(self.secret_token.as_bytes())) {
            Ok(Verified::Events)
        } else {
            Err(Rejection::Invalid("X-Telegram-Bot-Api-Secret-Token"))
        }
    }
    fn parse(&self, req: &Webhook<'_>, received_at: OffsetDateTime) -> Result<Vec<ChannelEvent>, ParseError> {
        parse(req.url, req.body, received_at)
    }
    fn render(&self, message: &Message) -> Result<ProviderRequest, RenderError> {
        let (method, body) = request(message)?;
        Ok(ProviderRequest {
            method: Method::Post,
            path: format!("/bot{}/{method}", self.bot_token),
            auth: Auth::None,
            payload: Payload::Json(body),
        })
    }
    fn classify(&self, http_status: u16, body: &[u8]) -> SendOutcome {
        classify_response(http_status, body)
    }
    fn accepted_status(&self) -> Option<DeliveryStatus> {
        Some(DeliveryStatus::Sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConversationId, WorkspaceId};
    use crate::model::{Route, Sender};
    use time::macros::datetime;

    const URL: &str = "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/webhooks/telegram/7012345678";

    fn body_of(fixture: &str) -> String {
        let v: Value = serde_json::from_str(fixture).unwrap();
        v["body"].as_str().unwrap().to_owned()
    }

    fn parsed(fixture: &str) -> Vec<ParsedMessage> {
        parse(URL, body_of(fixture).as_bytes(), datetime!(2026-11-01 0:00 UTC))
            .unwrap()
            .into_iter()
            .map(|e| match e {
                ChannelEvent::Message(m) => *m,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn the_secret_token_must_match_exactly() {
        let t = Telegram { bot_token: "7012345678:AAE-secret".into(), secret_token: "s3cret-token".into() };
        let ok = vec![("x-telegram-bot-api-secret-token".to_owned(), "s3cret-token".to_owned())];
        let hook = |h: &'static [(String, String)]| Webhook { method: "POST", url: URL, headers: h, body: b"{}" };
        assert_eq!(t.verify(&Webhook { headers: &ok, ..hook(&[]) }), Ok(Verified::Events));
        let wrong = vec![("x-telegram-bot-api-secret-token".to_owned(), "s3cret-token ".to_owned())];
        assert!(t.verify(&Webhook { headers: &wrong, ..hook(&[]) }).is_err());
        assert_eq!(t.verify(&hook(&[])), Err(Rejection::Missing("X-Telegram-Bot-Api-Secret-Token")));
        assert_eq!(t.bot_id(), "7012345678");
    }

    #[test]
    fn messages_and_edits_parse() {
        let m = &parsed(include_str!("../../../../events/telegram-webhook/message.json"))[0];
        assert_eq!(m.identity, Identity { kind: IdentityKind::Telegram, value: "111222333".into(), unverified: false });
        assert_eq!(m.contact_address, "111222333");
        assert_eq!(m.our_address, "7012345678");
        assert_eq!(m.provider_message_id, "7012345678:861234501");
        assert_eq!(m.contact_name.as_deref(), Some("Ana Lima"));
        assert_eq!(m.text.as_deref(), Some("Hi! Where is my order #1234?"));
        assert_eq!(m.metadata["username"], "analima");
        let e = &parsed(include_str!("../../../../events/telegram-webhook/edited-message.json"))[0];
        assert_eq!(e.metadata["edit_of_message_id"], 1365);
        assert_eq!(e.provider_message_id, "7012345678:861234502");
    }

    #[test]
    fn files_locations_and_contacts_parse() {
        let p = &parsed(include_str!("../../../../events/telegram-webhook/photo.json"))[0];
        assert_eq!(p.attachments.len(), 1);
        assert_eq!(p.attachments[0].url, "telegram-file:AgACAgQAAxkBAAIBlargest");
        assert_eq!(p.attachments[0].size_bytes, Some(98765));
        assert_eq!(p.text.as_deref(), Some("It arrived like this"));
        let d = &parsed(include_str!("../../../../events/telegram-webhook/document.json"))[0];
        assert_eq!(d.attachments[0].content_type, "application/pdf");
        assert_eq!(d.attachments[0].filename.as_deref(), Some("receipt.pdf"));
        let v = &parsed(include_str!("../../../../events/telegram-webhook/voice.json"))[0];
        assert_eq!(v.attachments[0].content_type, "audio/ogg");
        assert_eq!(v.metadata["voice_note"], true);
        let l = &parsed(include_str!("../../../../events/telegram-webhook/location.json"))[0];
        assert_eq!(l.rich.as_ref().unwrap()["location"]["latitude"], 38.7223);
        let c = &parsed(include_str!("../../../../events/telegram-webhook/contact.json"))[0];
        assert_eq!(c.rich.as_ref().unwrap()["contacts"][0]["phone_number"], "+351912345678");
    }

    #[test]
    fn group_chats_bots_and_other_updates_yield_nothing() {
        let at = datetime!(2026-11-01 0:00 UTC);
        let group = br#"{"update_id":1,"message":{"message_id":1,"from":{"id":5,"is_bot":false,"first_name":"A"},"chat":{"id":-100,"type":"group"},"date":1,"text":"hi"}}"#;
        assert_eq!(parse(URL, group, at).unwrap(), vec![]);
        let callback = br#"{"update_id":2,"callback_query":{"id":"1","from":{"id":5,"is_bot":false,"first_name":"A"},"data":"x"}}"#;
        assert_eq!(parse(URL, callback, at).unwrap(), vec![]);
        assert!(parse(URL, b"[]", at).is_err());
        assert!(parse("https://x/webhooks/telegram/abc", group, at).is_err());
    }

    fn outbound(text: &str) -> Message {
        let route = Route {
            channel: Channel::Telegram,
            contact_address: "111222333".into(),
            our_address: "7012345678".into(),
            contact_country: None,
        };
        let ws = WorkspaceId::parse("acme").unwrap();
        let at = datetime!(2026-11-01 0:00 UTC);
        Message::queued_outbound(ws, ConversationId::new(), route, Sender::System, text, BTreeMap::new(), at)
    }

    #[test]
    fn sends_render_as_documented_and_keep_the_token_out_of_logs() {
        let t = Telegram { bot_token: "7012345678:AAE-secret".into(), secret_token: "x".into() };
        let req = t.render(&outbound("On its way")).unwrap();
        assert_eq!(req.path, "/bot7012345678:AAE-secret/sendMessage");
        assert_eq!(req.payload, Payload::Json(json!({ "chat_id": "111222333", "text": "On its way" })));
        assert!(!format!("{req:?}").contains("AAE-secret"));
        let mut m = outbound("Label attached");
        m.attachments = vec![Attachment {
            content_type: "image/png".into(),
            size_bytes: Some(1),
            url: "https://files.test/a.png".into(),
            filename: None,
        }];
        let (method, body) = request(&m).unwrap();
        assert_eq!(method, "sendPhoto");
        assert_eq!(body["caption"], "Label attached");
        m.attachments[0].content_type = "application/pdf".into();
        assert_eq!(request(&m).unwrap().0, "sendDocument");
    }

    #[test]
    fn answers_are_classified() {
        let ok = br#"{"ok":true,"result":{"message_id":77,"from":{"id":7012345678,"is_bot":true},"chat":{"id":111222333,"type":"private"},"date":1,"text":"x"}}"#;
        assert_eq!(classify_response(200, ok), SendOutcome::Accepted { provider_message_id: "111222333:77".into() });
        let blocked = br#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#;
        assert_eq!(
            classify_response(403, blocked),
            SendOutcome::Rejected { code: "403".into(), message: "Forbidden: bot was blocked by the user".into() }
        );
        let slow = br#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 5","parameters":{"retry_after":5}}"#;
        assert!(matches!(classify_response(429, slow), SendOutcome::Retryable { .. }));
    }

    #[test]
    fn an_empty_secret_token_accepts_nothing() {
        let bot = Telegram { bot_token: "1:x".into(), secret_token: String::new() };
        let headers = vec![("x-telegram-bot-api-secret-token".to_owned(), String::new())];
        let req = Webhook { method: "POST", url: "https://h/webhooks/telegram/1", headers: &headers, body: b"{}" };
        assert_eq!(bot.verify(&req), Err(Rejection::NotConfigured("webhook secret token")));
    }
}
