//! Messenger and Instagram Direct: the Messenger Platform webhook (objects `page` and `instagram`,
//! the same Graph handshake and `X-Hub-Signature-256` as WhatsApp) and the Send API.
//!
//! - One adapter, one webhook function (`meta-webhook`): Meta delivers both objects to one app
//!   callback URL. Our address is the Page id (Messenger) or the Instagram professional account
//!   id (Instagram), which a channel account maps to a workspace; the customer's address is the
//!   page-scoped id (PSID) or Instagram-scoped id (IGSID). Both are identities of their own kind:
//!   Meta gives no phone or email to link on, so agents link them by hand or by merge.
//! - Inbound: text, attachments (image, video, audio, file; their CDN URLs expire, kept as given),
//!   quick replies, postbacks (the button's title as text, its payload in `rich`), replies
//!   (`reply_to` in metadata), reactions; deliveries (`mids`) and reads (Instagram: one `mid`;
//!   Messenger: a watermark, everything we sent before it) become delivery statuses. Echoes of our
//!   own sends confirm them (`sent`); echoes of messages a person sent from Meta's own inbox are
//!   not ours and are dropped by the status lookup (not recorded in the conversation: not built).
//! - Outbound: `POST /{our id}/messages` with the Page access token of that Page (or of the Page
//!   linked to the Instagram account). Inside 24 hours of the customer's last message the
//!   messaging type is `RESPONSE`; from 24 hours to 7 days a human agent may still answer with
//!   `MESSAGE_TAG` + `HUMAN_AGENT` (the reply carries [`META_TAG`]); later, replies are refused
//!   before anything is queued ([`reply_window`]).

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::{
    json_body, non_empty, Auth, ChannelAdapter, ChannelEvent, Method, ParsedMessage, ParsedRead, ParsedStatus, Payload,
    ProviderRequest, Rejection, RenderError, SendOutcome, Verified, Webhook,
};
use crate::error::ParseError;
use crate::model::{Attachment, Channel, DeliveryEvent, DeliveryStatus, Identity, IdentityKind, Message};

/// The provider name on messages and in dedup ids, for both channels (message ids are unique
/// across them).
pub const PROVIDER: &str = "meta";
/// Message metadata naming the tag a reply goes out with (`HUMAN_AGENT`).
pub const META_TAG: &str = "meta_tag";
pub const HUMAN_AGENT: &str = "HUMAN_AGENT";
/// The standard messaging window.
pub const RESPONSE_WINDOW: Duration = Duration::hours(24);
/// How long after the customer's last message a human agent may still answer (the tag's limit).
pub const HUMAN_AGENT_WINDOW: Duration = Duration::days(7);

/// The app's credentials: the app secret signs webhooks, the verify token answers the handshake,
/// and each Page (or Instagram account) id maps to the Page access token that sends for it.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct Meta {
    pub app_secret: String,
    pub verify_token: String,
    #[serde(default)]
    pub page_tokens: HashMap<String, String>,
    /// This app's id: an echo carrying it is one of our own sends; an echo carrying another app's
    /// (or none) is a message a person sent from Meta's own inbox, recorded in the thread. Without
    /// it every echo is taken for ours.
    #[serde(default)]
    pub app_id: Option<String>,
}

/// The metadata mark of a message a person sent from Meta's own inbox (Business Suite, the
/// Instagram app): an outbound message of ours to record, not to send.
pub const SENT_FROM_META_INBOX: &str = "sent_from_meta_inbox";

impl std::fmt::Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Meta(<credentials>)")
    }
}

/// How a reply may go out, by how long ago the customer last wrote on the channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// Within 24 hours: a normal response.
    Response,
    /// 24 hours to 7 days: only with the human-agent tag.
    HumanAgent,
    /// Later (or never): no free-form message may be sent.
    Closed,
}

pub fn reply_window(since_last_message: Option<Duration>) -> Window {
    match since_last_message {
        Some(d) if d < RESPONSE_WINDOW => Window::Response,
        Some(d) if d < HUMAN_AGENT_WINDOW => Window::HumanAgent,
        _ => Window::Closed,
    }
}

#[derive(Deserialize)]
struct Envelope {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    #[serde(default)]
    messaging: Vec<Messaging>,
}

#[derive(Deserialize)]
struct Party {
    id: String,
}

#[derive(Deserialize)]
struct Messaging {
    sender: Party,
    recipient: Party,
    timestamp: Option<i64>,
    message: Option<MessageBody>,
    postback: Option<Postback>,
    delivery: Option<Delivery>,
    read: Option<Read>,
    reaction: Option<Reaction>,
}

#[derive(Deserialize)]
struct MessageBody {
    mid: String,
    text: Option<String>,
    #[serde(default)]
    attachments: Vec<MetaAttachment>,
    quick_reply: Option<Value>,
    reply_to: Option<Value>,
    #[serde(default)]
    is_echo: bool,
    #[serde(default)]
    is_deleted: bool,
    /// An echo's app (a number in Meta's payloads).
    #[serde(default)]
    app_id: Option<Value>,
}

#[derive(Deserialize)]
struct MetaAttachment {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Value,
}

#[derive(Deserialize)]
struct Postback {
    mid: Option<String>,
    title: Option<String>,
    payload: Option<String>,
}

#[derive(Deserialize)]
struct Delivery {
    #[serde(default)]
    mids: Vec<String>,
}

#[derive(Deserialize)]
struct Read {
    mid: Option<String>,
    watermark: Option<i64>,
}

#[derive(Deserialize)]
struct Reaction {
    mid: String,
    action: Option<String>,
    emoji: Option<String>,
    reaction: Option<String>,
}

fn millis(kind: &'static str, ms: i64) -> Result<OffsetDateTime, ParseError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| ParseError::Invalid { kind, reason: e.to_string() })
}

fn scoped_id(kind: IdentityKind, id: &str) -> Result<Identity, ParseError> {
    Identity::parse(kind, id)
}

/// Whether an echo is one of this app's own sends.
fn ours(echo: &MessageBody, our_app: Option<&str>) -> bool {
    let app = match &echo.app_id {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    match our_app {
        Some(our) => app.as_deref() == Some(our),
        None => true,
    }
}

/// The canonical events of a webhook body, in Meta's order (every echo taken for our own send).
pub fn parse(body: &[u8], received_at: OffsetDateTime) -> Result<Vec<ChannelEvent>, ParseError> {
    parse_for(body, received_at, None)
}

/// [`parse`] for the app `our_app`: echoes of other apps' messages (a person answering from
/// Meta's inbox) become messages of ours to record, marked [`SENT_FROM_META_INBOX`].
pub fn parse_for(
    body: &[u8],
    received_at: OffsetDateTime,
    our_app: Option<&str>,
) -> Result<Vec<ChannelEvent>, ParseError> {
    let env: Envelope = json_body("Messenger webhook", body)?;
    let channel = match env.object.as_str() {
        "page" => Channel::Messenger,
        "instagram" => Channel::Instagram,
        other => {
            return Err(ParseError::Invalid {
                kind: "Messenger webhook",
                reason: format!("object {other:?} is neither page nor instagram"),
            })
        }
    };
    let kind = channel.identity_kind();
    let mut out = Vec::new();
    for entry in env.entry {
        for m in entry.messaging {
            let at = match m.timestamp {
                Some(ms) => millis("timestamp", ms)?,
                None => received_at,
            };
            // Echoes and our own sends: the Page is the sender and the customer the recipient.
            if let Some(msg) = m.message.as_ref().filter(|b| b.is_echo) {
                if ours(msg, our_app) {
                    out.push(status(channel, &m.sender.id, &m.recipient.id, kind, &msg.mid, DeliveryStatus::Sent, at)?);
                } else if let Some(msg) = m.message {
                    // Sent by a person in Meta's inbox: ours (the Page) to the customer (recipient).
                    let mut echo = message(channel, &m.sender.id, &m.recipient.id, msg, at)?;
                    echo.metadata.insert(SENT_FROM_META_INBOX.into(), Value::Bool(true));
                    out.push(ChannelEvent::Message(Box::new(echo)));
                }
                continue;
            }
            let (ours, theirs) = (&m.recipient.id, &m.sender.id);
            if ours != &entry.id {
                // A messaging item for another Page than the entry's: malformed.
                return Err(ParseError::Invalid {
                    kind: "Messenger webhook",
                    reason: "recipient is not the entry".into(),
                });
            }
            if let Some(d) = &m.delivery {
                for mid in &d.mids {
                    out.push(status(channel, ours, theirs, kind, mid, DeliveryStatus::Delivered, at)?);
                }
            } else if let Some(r) = &m.read {
                match (&r.mid, r.watermark) {
                    (Some(mid), _) => out.push(status(channel, ours, theirs, kind, mid, DeliveryStatus::Read, at)?),
                    (None, Some(w)) => out.push(ChannelEvent::Read(ParsedRead {
                        channel,
                        our_address: ours.clone(),
                        reader: scoped_id(kind, theirs)?,
                        up_to: millis("read watermark", w)?,
                    })),
                    (None, None) => return Err(ParseError::Missing("read mid or watermark")),
                }
            } else if let Some(msg) = m.message {
                if msg.is_deleted {
                    continue; // an unsent Instagram message: nothing new to read
                }
                out.push(ChannelEvent::Message(Box::new(message(channel, ours, theirs, msg, at)?)));
            } else if let Some(p) = m.postback {
                let title = non_empty(p.title.as_deref());
                let id = match p.mid {
                    Some(mid) => mid,
                    None => format!("postback:{theirs}:{}", m.timestamp.unwrap_or_default()),
                };
                let rich = json!({ "type": "postback", "title": title, "payload": p.payload });
                out.push(ChannelEvent::Message(Box::new(parsed(
                    channel,
                    ours,
                    theirs,
                    id,
                    title,
                    vec![],
                    Some(rich),
                    at,
                )?)));
            } else if let Some(r) = m.reaction {
                let emoji = non_empty(r.emoji.as_deref());
                let rich = json!({
                    "type": "reaction", "message_id": r.mid, "action": r.action, "reaction": r.reaction, "emoji": emoji,
                });
                let id = format!("reaction:{}:{theirs}:{}", r.mid, m.timestamp.unwrap_or_default());
                out.push(ChannelEvent::Message(Box::new(parsed(
                    channel,
                    ours,
                    theirs,
                    id,
                    emoji,
                    vec![],
                    Some(rich),
                    at,
                )?)));
            }
            // Other fields (optins, referrals, handovers) are subscribed to by other apps: skipped.
        }
    }
    Ok(out)
}

fn status(
    channel: Channel,
    ours: &str,
    theirs: &str,
    kind: IdentityKind,
    mid: &str,
    s: DeliveryStatus,
    at: OffsetDateTime,
) -> Result<ChannelEvent, ParseError> {
    Ok(ChannelEvent::Status(ParsedStatus {
        channel,
        provider: PROVIDER,
        provider_message_id: mid.to_owned(),
        our_address: ours.to_owned(),
        recipient: scoped_id(kind, theirs)?,
        event: DeliveryEvent::new(s, at),
        metadata: BTreeMap::new(),
    }))
}

#[allow(clippy::too_many_arguments)]
fn parsed(
    channel: Channel,
    ours: &str,
    theirs: &str,
    id: String,
    text: Option<String>,
    attachments: Vec<Attachment>,
    rich: Option<Value>,
    at: OffsetDateTime,
) -> Result<ParsedMessage, ParseError> {
    if id.is_empty() {
        return Err(ParseError::Missing("message id"));
    }
    Ok(ParsedMessage {
        channel,
        identity: scoped_id(channel.identity_kind(), theirs)?,
        contact_address: theirs.to_owned(),
        contact_country: None,
        our_address: ours.to_owned(),
        contact_name: None,
        provider: PROVIDER,
        provider_message_id: id,
        text,
        attachments,
        rich,
        provider_timestamp: Some(at),
        metadata: BTreeMap::new(),
    })
}

fn message(
    channel: Channel,
    ours: &str,
    theirs: &str,
    msg: MessageBody,
    at: OffsetDateTime,
) -> Result<ParsedMessage, ParseError> {
    let mut rich = None;
    let mut attachments = Vec::new();
    for a in msg.attachments {
        let url = a.payload.get("url").and_then(Value::as_str);
        match (a.kind.as_str(), url) {
            ("image" | "video" | "audio" | "file", Some(url)) => attachments.push(Attachment {
                content_type: content_type(&a.kind).to_owned(),
                size_bytes: None,
                url: url.to_owned(),
                filename: None,
            }),
            // An Instagram story that mentions the business: the story's (expiring) link.
            ("story_mention", url) => rich = Some(json!({ "type": "story_mention", "story": { "url": url } })),
            // Shares, stickers, locations, templates: kept as Meta described them.
            (kind, _) => rich = Some(json!({ "type": kind, "payload": a.payload })),
        }
    }
    if let Some(q) = msg.quick_reply {
        rich = Some(json!({ "type": "quick_reply", "payload": q.get("payload") }));
    }
    let mut m = parsed(channel, ours, theirs, msg.mid, non_empty(msg.text.as_deref()), attachments, rich, at)?;
    if let Some(r) = msg.reply_to {
        if let Some(mid) = r.get("mid").and_then(Value::as_str) {
            m.metadata.insert("reply_to_provider_id".into(), Value::from(mid));
        }
        if let Some(story) = r.get("story") {
            // A reply to one of the business's stories: the inbox shows which.
            m.metadata.insert("reply_to_story".into(), story.clone());
            if m.rich.is_none() {
                m.rich = Some(json!({ "type": "story_reply", "story": story }));
            }
        }
    }
    if m.text.is_none() && m.attachments.is_empty() && m.rich.is_none() {
        return Err(ParseError::Missing("message text or attachment"));
    }
    Ok(m)
}

/// Meta names a kind, not a type: the broad type, refined when the file is fetched.
fn content_type(kind: &str) -> &'static str {
    match kind {
        "image" => "image/*",
        "video" => "video/*",
        "audio" => "audio/*",
        _ => "application/octet-stream",
    }
}

/// The Send API body for a stored reply (text, or one attachment by URL).
pub fn request_body(message: &Message) -> Result<Value, RenderError> {
    let mut body = json!({ "recipient": { "id": message.route.contact_address } });
    match message.metadata.get(META_TAG).and_then(Value::as_str) {
        Some(tag) => {
            body["messaging_type"] = "MESSAGE_TAG".into();
            body["tag"] = tag.into();
        }
        None => body["messaging_type"] = "RESPONSE".into(),
    }
    body["message"] = match (message.text.as_deref().filter(|t| !t.is_empty()), message.attachments.first()) {
        (Some(text), None) => json!({ "text": text }),
        (None, Some(a)) => {
            let kind = a
                .content_type
                .split('/')
                .next()
                .filter(|k| matches!(*k, "image" | "video" | "audio"))
                .unwrap_or("file");
            json!({ "attachment": { "type": kind, "payload": { "url": a.url, "is_reusable": true } } })
        }
        (Some(_), Some(_)) => {
            return Err(RenderError {
                code: "text_and_attachment",
                message: "Messenger sends text and a file as two messages; send them separately".into(),
            })
        }
        (None, None) => return Err(RenderError { code: "empty", message: "nothing to send".into() }),
    };
    Ok(body)
}

/// Graph error codes that mean "not now": throttling, temporary errors, the Page's rate limits.
const RETRYABLE_CODES: [i64; 6] = [1, 2, 4, 17, 32, 613];

pub fn classify_response(http_status: u16, body: &[u8]) -> SendOutcome {
    #[derive(Deserialize)]
    struct Sent {
        message_id: Option<String>,
    }
    if (200..300).contains(&http_status) {
        return match serde_json::from_slice::<Sent>(body).ok().and_then(|s| s.message_id) {
            Some(id) => SendOutcome::Accepted { provider_message_id: id },
            None => SendOutcome::Rejected {
                code: "invalid_response".into(),
                message: "Meta accepted the request but named no message id".into(),
            },
        };
    }
    let super::whatsapp::GraphFailure { code, subcode, mut message } =
        super::whatsapp::graph_failure(http_status, body);
    if http_status == 429 || http_status >= 500 || code.is_some_and(|c| RETRYABLE_CODES.contains(&c)) {
        return SendOutcome::Retryable { http_status, detail: message };
    }
    if subcode == Some(2018278) {
        message = format!("{message} (outside the messaging window)");
    }
    SendOutcome::Rejected { code: code.map(|c| c.to_string()).unwrap_or_else(|| http_status.to_string()), message }
}

impl ChannelAdapter for Meta {
    fn provider(&self) -> &'static str {
        PROVIDER
    }
    fn verify(&self, req: &Webhook<'_>) -> Result<Verified, Rejection> {
        super::whatsapp::verify_graph(req, &self.app_secret, &self.verify_token)
    }
    fn parse(&self, req: &Webhook<'_>, received_at: OffsetDateTime) -> Result<Vec<ChannelEvent>, ParseError> {
        parse_for(req.body, received_at, self.app_id.as_deref())
    }
    fn render(&self, message: &Message) -> Result<ProviderRequest, RenderError> {
        let ours = &message.route.our_address;
        let token = self.page_tokens.get(ours).ok_or_else(|| RenderError {
            code: "no_page_token",
            message: format!("no Page access token is configured for {ours} (META_CREDENTIALS page_tokens)"),
        })?;
        Ok(ProviderRequest {
            method: Method::Post,
            path: format!("/{ours}/messages"),
            auth: Auth::Bearer(token.clone()),
            payload: Payload::Json(request_body(message)?),
        })
    }
    fn classify(&self, http_status: u16, body: &[u8]) -> SendOutcome {
        classify_response(http_status, body)
    }
    /// Meta reports deliveries and reads, never "sent": an accepted message is sent.
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

    const NOW: OffsetDateTime = datetime!(2026-11-22 10:00 UTC);

    fn reply(channel: Channel, text: &str) -> Message {
        let route = Route {
            channel,
            contact_address: "7012345678901234".into(),
            our_address: "109876543210987".into(),
            contact_country: None,
        };
        let sender = Sender::Agent { id: crate::AgentId::parse("ada").unwrap() };
        let ws = WorkspaceId::parse("acme").unwrap();
        Message::queued_outbound(ws, ConversationId::new(), route, sender, text, BTreeMap::new(), NOW)
    }

    fn adapter() -> Meta {
        Meta {
            app_secret: "s".into(),
            verify_token: "v".into(),
            page_tokens: HashMap::from([("109876543210987".to_owned(), "page-token".to_owned())]),
            app_id: None,
        }
    }

    #[test]
    fn a_reply_is_a_response_or_a_human_agent_message_to_the_scoped_id() {
        let m = reply(Channel::Messenger, "On its way");
        let req = adapter().render(&m).unwrap();
        assert_eq!(req.path, "/109876543210987/messages");
        assert_eq!(req.auth, Auth::Bearer("page-token".into()));
        let Payload::Json(body) = req.payload else { panic!() };
        assert_eq!(
            body,
            json!({ "recipient": { "id": "7012345678901234" }, "messaging_type": "RESPONSE", "message": { "text": "On its way" } })
        );
        let mut late = reply(Channel::Instagram, "Sorry for the wait");
        late.metadata.insert(META_TAG.into(), HUMAN_AGENT.into());
        let body = request_body(&late).unwrap();
        assert_eq!((body["messaging_type"].as_str(), body["tag"].as_str()), (Some("MESSAGE_TAG"), Some("HUMAN_AGENT")));
        let mut other_page = reply(Channel::Messenger, "x");
        other_page.route.our_address = "555".into();
        assert_eq!(adapter().render(&other_page).unwrap_err().code, "no_page_token");
    }

    #[test]
    fn answers_are_accepted_retried_or_refused_with_the_reason() {
        let ok = br#"{"recipient_id":"7012345678901234","message_id":"m_abc"}"#;
        assert_eq!(classify_response(200, ok), SendOutcome::Accepted { provider_message_id: "m_abc".into() });
        let throttled = br#"{"error":{"message":"Calls to this api have exceeded the rate limit.","code":613}}"#;
        assert!(matches!(classify_response(400, throttled), SendOutcome::Retryable { .. }));
        let window = br#"{"error":{"message":"This message is sent outside of allowed window.","code":10,"error_subcode":2018278}}"#;
        let SendOutcome::Rejected { code, message } = classify_response(400, window) else { panic!() };
        assert_eq!(code, "10");
        assert!(message.contains("outside the messaging window"));
        assert!(matches!(classify_response(503, b"upstream"), SendOutcome::Retryable { .. }));
    }

    #[test]
    fn malformed_bodies_are_refused_with_a_reason() {
        assert!(parse(br#"{"object":"user","entry":[]}"#, NOW).is_err());
        assert!(parse(b"not json", NOW).is_err());
        let wrong_page = br#"{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"2"},"recipient":{"id":"3"},"message":{"mid":"m","text":"x"}}]}]}"#;
        assert!(parse(wrong_page, NOW).is_err());
        let empty = br#"{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"2"},"recipient":{"id":"1"},"message":{"mid":"m"}}]}]}"#;
        assert!(parse(empty, NOW).is_err());
        let bad_id = br#"{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"a b"},"recipient":{"id":"1"},"message":{"mid":"m","text":"x"}}]}]}"#;
        assert!(parse(bad_id, NOW).is_err());
    }

    #[test]
    fn windows_by_age() {
        assert_eq!(reply_window(Some(Duration::minutes(5))), Window::Response);
        assert_eq!(reply_window(Some(Duration::hours(30))), Window::HumanAgent);
        assert_eq!(reply_window(Some(Duration::days(8))), Window::Closed);
        assert_eq!(reply_window(None), Window::Closed);
    }

    #[test]
    fn echoes_of_other_apps_are_messages_of_ours_and_stories_keep_their_context() {
        let body = json!({ "object": "instagram", "entry": [{ "id": "17841400000000000", "time": 1764000000000i64, "messaging": [
            // Our own send's echo.
            { "sender": { "id": "17841400000000000" }, "recipient": { "id": "5500000000000001" }, "timestamp": 1764000000001i64,
              "message": { "mid": "m-ours", "is_echo": true, "app_id": 1517776481860111i64, "text": "Hello" } },
            // Typed by a person in the Instagram app.
            { "sender": { "id": "17841400000000000" }, "recipient": { "id": "5500000000000001" }, "timestamp": 1764000000002i64,
              "message": { "mid": "m-app", "is_echo": true, "app_id": 124024574287414i64, "text": "Sent from the app" } },
            // A customer replying to one of the business's stories, and one mentioning it in theirs.
            { "sender": { "id": "5500000000000001" }, "recipient": { "id": "17841400000000000" }, "timestamp": 1764000000003i64,
              "message": { "mid": "m-story", "text": "Love this!", "reply_to": { "story": { "url": "https://lookaside.example/s1", "id": "1799" } } } },
            { "sender": { "id": "5500000000000001" }, "recipient": { "id": "17841400000000000" }, "timestamp": 1764000000004i64,
              "message": { "mid": "m-mention", "attachments": [{ "type": "story_mention", "payload": { "url": "https://lookaside.example/s2" } }] } }
        ] }] });
        let bytes = body.to_string().into_bytes();
        let events = parse_for(&bytes, OffsetDateTime::now_utc(), Some("1517776481860111")).unwrap();
        assert!(matches!(&events[0], ChannelEvent::Status(s) if s.provider_message_id == "m-ours"));
        let ChannelEvent::Message(app) = &events[1] else { panic!("{:?}", events[1]) };
        assert_eq!(app.metadata[SENT_FROM_META_INBOX], true);
        assert_eq!((app.contact_address.as_str(), app.our_address.as_str()), ("5500000000000001", "17841400000000000"));
        let ChannelEvent::Message(story) = &events[2] else { panic!() };
        assert_eq!(story.rich.as_ref().unwrap()["type"], "story_reply");
        assert_eq!(story.rich.as_ref().unwrap()["story"]["id"], "1799");
        let ChannelEvent::Message(mention) = &events[3] else { panic!() };
        assert_eq!(
            mention.rich.as_ref().unwrap(),
            &json!({ "type": "story_mention", "story": { "url": "https://lookaside.example/s2" } })
        );
        // Without our app id every echo is taken for our own send.
        let events = parse(&bytes, OffsetDateTime::now_utc()).unwrap();
        assert!(matches!(&events[1], ChannelEvent::Status(_)));
    }
}
