//! Twilio Programmable Messaging (SMS/MMS): webhook signatures, inbound messages, status callbacks and
//! the Messages API request and response.

use std::collections::BTreeMap;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha1::Sha1;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::{
    Auth, ChannelAdapter, ChannelEvent, Method, ParsedMessage, Payload, ProviderRequest, Rejection, RenderError,
    SendOutcome, Verified, Webhook,
};
use crate::address::PhoneNumber;
use crate::error::ParseError;
use crate::model::{Attachment, Channel, DeliveryEvent, DeliveryStatus, Identity, Message};

pub const PROVIDER: &str = "twilio";

/// Twilio accepts at most 10 media items per message and documents no more inbound either.
const MAX_MEDIA: usize = 10;
/// Twilio's documented maximum body length for a Programmable Messaging message.
pub const MAX_BODY_CHARS: usize = 1600;

/// Computes `X-Twilio-Signature` as Twilio documents it: the full URL (with its query string), then
/// every POST parameter sorted by name (and by value for repeated names), name and value appended
/// with no separator; HMAC-SHA1 keyed with the auth token; base64.
pub fn compute_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Validates a signature in constant time. Like Twilio's own helpers, the URL is also tried with its
/// default port added or removed, because proxies differ in whether Twilio's signed URL carried it.
pub fn signature_is_valid(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    // An empty token would let anyone sign: nothing is valid without one.
    if auth_token.trim().is_empty() {
        return false;
    }
    let provided = signature.trim().as_bytes();
    url_variants(url).iter().any(|u| compute_signature(auth_token, u, params).as_bytes().ct_eq(provided).into())
}

fn url_variants(raw: &str) -> Vec<String> {
    let mut out = vec![raw.to_owned()];
    if let Ok(mut u) = url::Url::parse(raw) {
        if u.port().is_some() {
            // `set_port(None)` strips any explicit port.
            let _ = u.set_port(None);
            out.push(u.to_string());
        } else if let Some(default) = u.port_or_known_default() {
            // Url drops default ports when serialising, so splice it in by hand after the host.
            if let Some(host) = u.host_str() {
                let with_port = raw.replacen(host, &format!("{host}:{default}"), 1);
                out.push(with_port);
            }
        }
    }
    out
}

/// Parses an `application/x-www-form-urlencoded` body into ordered pairs.
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, ParseError> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .map_err(|e| ParseError::Invalid { kind: "form body", reason: e.to_string() })
}

fn get<'a>(params: &'a [(String, String)], name: &'static str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn require<'a>(params: &'a [(String, String)], name: &'static str) -> Result<&'a str, ParseError> {
    match get(params, name) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ParseError::Missing(name)),
    }
}

/// Message SIDs are `SM`/`MM` + 32 hex digits; we accept any two-letter prefix and 32 alphanumerics
/// so test and future id kinds pass, but nothing that could smuggle a key separator.
pub fn parse_sid(name: &'static str, v: &str) -> Result<String, ParseError> {
    let ok = v.len() == 34 && v.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(v.to_owned())
    } else {
        Err(ParseError::Invalid { kind: name, reason: "expected a 34-character Twilio SID".into() })
    }
}

/// An inbound SMS/MMS webhook, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundSms {
    pub message_sid: String,
    pub account_sid: String,
    pub from: PhoneNumber,
    pub to: PhoneNumber,
    pub body: String,
    pub media: Vec<Attachment>,
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Parameters copied into message metadata when present: geography and segmenting, useful to agents
/// and to cost reporting, none of them personal beyond what the number already says.
const METADATA_PARAMS: [&str; 8] = [
    "AccountSid",
    "MessagingServiceSid",
    "NumSegments",
    "FromCountry",
    "FromState",
    "FromCity",
    "ToCountry",
    "SmsStatus",
];

pub fn parse_inbound(params: &[(String, String)]) -> Result<InboundSms, ParseError> {
    let message_sid = parse_sid("MessageSid", require(params, "MessageSid")?)?;
    let account_sid = parse_sid("AccountSid", require(params, "AccountSid")?)?;
    let from = PhoneNumber::parse(require(params, "From")?)?;
    let to = PhoneNumber::parse(require(params, "To")?)?;
    let body = get(params, "Body").unwrap_or_default().to_owned();
    let num_media: usize = match get(params, "NumMedia") {
        None | Some("") => 0,
        Some(n) => {
            n.parse().map_err(|_| ParseError::Invalid { kind: "NumMedia", reason: "expected a whole number".into() })?
        }
    };
    if num_media > MAX_MEDIA {
        return Err(ParseError::Invalid { kind: "NumMedia", reason: format!("at most {MAX_MEDIA} media items") });
    }
    let mut media = Vec::with_capacity(num_media);
    for i in 0..num_media {
        let url_key = format!("MediaUrl{i}");
        let type_key = format!("MediaContentType{i}");
        let url = params.iter().find(|(k, _)| *k == url_key).map(|(_, v)| v.clone());
        let content_type = params.iter().find(|(k, _)| *k == type_key).map(|(_, v)| v.clone());
        match (url, content_type) {
            (Some(url), Some(content_type)) if url.starts_with("https://") || url.starts_with("http://") => {
                media.push(Attachment { content_type, size_bytes: None, url, filename: None })
            }
            _ => {
                return Err(ParseError::Invalid {
                    kind: "media",
                    reason: format!(
                        "NumMedia is {num_media} but MediaUrl{i}/MediaContentType{i} is missing or not a URL"
                    ),
                })
            }
        }
    }
    if body.is_empty() && media.is_empty() {
        return Err(ParseError::Invalid { kind: "message", reason: "neither Body nor media".into() });
    }
    let extra = METADATA_PARAMS
        .iter()
        .filter_map(|k| get(params, k).map(|v| ((*k).to_owned(), serde_json::Value::String(v.to_owned()))))
        .collect();
    Ok(InboundSms { message_sid, account_sid, from, to, body, media, extra })
}

impl InboundSms {
    pub fn into_parsed(self) -> ParsedMessage {
        ParsedMessage {
            channel: Channel::Sms,
            identity: Identity::phone(&self.from),
            contact_address: self.from.as_str().to_owned(),
            contact_country: self.from.country(),
            our_address: self.to.as_str().to_owned(),
            contact_name: None,
            provider: PROVIDER,
            provider_message_id: self.message_sid,
            text: if self.body.is_empty() { None } else { Some(self.body) },
            attachments: self.media,
            rich: None,
            provider_timestamp: None,
            metadata: self.extra,
        }
    }
}

/// Maps Twilio's message status vocabulary onto ours. `None` for statuses of inbound messages or
/// ones that carry no delivery information.
pub fn map_status(s: &str) -> Option<DeliveryStatus> {
    Some(match s {
        "accepted" | "scheduled" | "queued" => DeliveryStatus::Queued,
        "sending" => DeliveryStatus::Sending,
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "undelivered" => DeliveryStatus::Undelivered,
        "failed" | "canceled" => DeliveryStatus::Failed,
        "read" => DeliveryStatus::Read,
        _ => return None,
    })
}

/// A message status callback.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusCallback {
    pub message_sid: String,
    pub event: DeliveryEvent,
}

pub fn parse_status_callback(params: &[(String, String)], at: OffsetDateTime) -> Result<StatusCallback, ParseError> {
    let message_sid = parse_sid("MessageSid", require(params, "MessageSid")?)?;
    let raw = require(params, "MessageStatus")?;
    let status = map_status(raw)
        .ok_or_else(|| ParseError::Invalid { kind: "MessageStatus", reason: format!("unknown status {raw:?}") })?;
    let error_code = get(params, "ErrorCode").filter(|c| !c.is_empty()).map(str::to_owned);
    let error_message = get(params, "ErrorMessage").filter(|c| !c.is_empty()).map(str::to_owned);
    Ok(StatusCallback { message_sid, event: DeliveryEvent { status, at, error_code, error_message } })
}

/// The Messages API create request, as form parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SendSms<'a> {
    pub to: &'a str,
    pub from: &'a str,
    /// Sent through this Messaging Service instead of `from`: Twilio picks the sender from its
    /// pool (sticky sender, geographic match), so `From` is left out.
    pub messaging_service_sid: Option<&'a str>,
    pub body: &'a str,
    pub media_urls: Vec<&'a str>,
    pub status_callback: Option<String>,
}

impl SendSms<'_> {
    pub fn form(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![("To", self.to.to_owned())];
        match self.messaging_service_sid {
            Some(sid) => f.push(("MessagingServiceSid", sid.to_owned())),
            None => f.push(("From", self.from.to_owned())),
        }
        if !self.body.is_empty() {
            f.push(("Body", self.body.to_owned()));
        }
        f.extend(self.media_urls.iter().map(|u| ("MediaUrl", (*u).to_owned())));
        if let Some(cb) = &self.status_callback {
            f.push(("StatusCallback", cb.clone()));
        }
        f
    }
}

/// Path of the Messages resource for an account, appended to the API base URL.
pub fn messages_path(account_sid: &str) -> String {
    format!("/2010-04-01/Accounts/{account_sid}/Messages.json")
}

pub fn message_path(account_sid: &str, message_sid: &str) -> String {
    format!("/2010-04-01/Accounts/{account_sid}/Messages/{message_sid}.json")
}

/// The price Twilio reports on a fetched Message resource: `price` is a negative decimal string
/// (`"-0.00790"`) once Twilio has rated the message, `null` before; `price_unit` its currency.
/// `Ok(None)` while it is not known yet.
pub fn parse_price(body: &[u8]) -> Result<Option<(crate::finance::Micros, crate::finance::Currency)>, ParseError> {
    #[derive(Deserialize)]
    struct Priced {
        #[serde(default)]
        price: Option<String>,
        #[serde(default)]
        price_unit: Option<String>,
    }
    let invalid = |reason: String| ParseError::Invalid { kind: "Twilio message resource", reason };
    let p: Priced = serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
    let (Some(price), Some(unit)) = (p.price.filter(|s| !s.trim().is_empty()), p.price_unit) else {
        return Ok(None);
    };
    let micros = crate::finance::money::parse_amount_micros(&price)?;
    let currency = crate::finance::Currency::parse(&unit.to_ascii_uppercase())?;
    Ok(Some((micros, currency)))
}

/// The fields of a created Message resource we keep.
#[derive(Debug, Clone, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct MessageResource {
    pub sid: String,
    pub status: String,
    #[serde(default)]
    pub error_code: Option<i64>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub num_segments: Option<String>,
}

/// Twilio's REST error body.
#[derive(Debug, Clone, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ApiError {
    pub code: Option<i64>,
    pub message: Option<String>,
    pub more_info: Option<String>,
    pub status: Option<u16>,
}

/// Classifies the Messages API answer.
pub fn classify_response(http_status: u16, body: &[u8]) -> SendOutcome {
    match http_status {
        200..=299 => match serde_json::from_slice::<MessageResource>(body) {
            Ok(m) => SendOutcome::Accepted { provider_message_id: m.sid },
            Err(e) => SendOutcome::Rejected {
                code: "invalid_response".into(),
                message: format!("Twilio accepted the request but its answer did not parse: {e}"),
            },
        },
        429 | 500..=599 => SendOutcome::Retryable {
            http_status,
            detail: serde_json::from_slice::<ApiError>(body)
                .ok()
                .and_then(|e| e.message)
                .unwrap_or_else(|| format!("HTTP {http_status}")),
        },
        _ => {
            let err = serde_json::from_slice::<ApiError>(body).ok();
            SendOutcome::Rejected {
                code: err
                    .as_ref()
                    .and_then(|e| e.code)
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| http_status.to_string()),
                message: err.and_then(|e| e.message).unwrap_or_else(|| format!("HTTP {http_status}")),
            }
        }
    }
}

/// The adapter: the account's credentials, and the public base URL status callbacks go to.
pub struct Twilio {
    pub account_sid: String,
    pub auth_token: String,
    pub public_base_url: String,
    /// The Messaging Service the number's replies go out through, if its workspace set one.
    pub messaging_service_sid: Option<String>,
}

impl Twilio {
    /// The callback URL of one message: the signature covers it, so its ids are trustworthy.
    pub fn status_callback(&self, m: &Message) -> String {
        format!(
            "{}/webhooks/twilio/status?ws={}&conv={}&msg={}",
            self.public_base_url.trim_end_matches('/'),
            m.workspace,
            m.conversation_id,
            m.id
        )
    }
}

impl ChannelAdapter for Twilio {
    fn provider(&self) -> &'static str {
        PROVIDER
    }
    fn verify(&self, req: &Webhook<'_>) -> Result<Verified, Rejection> {
        let signature = req.header("x-twilio-signature").ok_or(Rejection::Missing("X-Twilio-Signature"))?;
        let params = parse_form(req.body).map_err(|_| Rejection::Invalid("form body"))?;
        if signature_is_valid(&self.auth_token, req.url, &params, signature) {
            Ok(Verified::Events)
        } else {
            Err(Rejection::Invalid("X-Twilio-Signature"))
        }
    }
    fn parse(&self, req: &Webhook<'_>, _received_at: OffsetDateTime) -> Result<Vec<ChannelEvent>, ParseError> {
        let sms = parse_inbound(&parse_form(req.body)?)?;
        Ok(vec![ChannelEvent::Message(Box::new(sms.into_parsed()))])
    }
    fn render(&self, m: &Message) -> Result<ProviderRequest, RenderError> {
        let request = SendSms {
            to: &m.route.contact_address,
            from: &m.route.our_address,
            messaging_service_sid: self.messaging_service_sid.as_deref(),
            body: m.text.as_deref().unwrap_or_default(),
            media_urls: m.attachments.iter().map(|a| a.url.as_str()).collect(),
            status_callback: Some(self.status_callback(m)),
        };
        Ok(ProviderRequest {
            method: Method::Post,
            path: messages_path(&self.account_sid),
            auth: Auth::Basic { user: self.account_sid.clone(), password: self.auth_token.clone() },
            payload: Payload::Form(request.form().into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
        })
    }
    fn classify(&self, http_status: u16, body: &[u8]) -> SendOutcome {
        classify_response(http_status, body)
    }
}

/// The empty TwiML answer: acknowledge, send no auto-reply.
pub const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

/// What kind of sender an SMS goes out from: the carriers' rules differ by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SenderKind {
    /// An ordinary number (US: 10DLC).
    LongCode,
    /// A US or Canadian toll-free number (800, 833, 844, 855, 866, 877, 888).
    TollFree,
    /// A 5-6 digit short code.
    ShortCode,
    /// A Twilio Messaging Service: the sender is picked from its pool.
    MessagingService,
}

/// The carrier rules a send from `from` to a recipient in `to_country` meets: whether it can be
/// delivered at all and what the sender must have done (registration, verification). Shown in
/// the cost preview; an undeliverable combination is refused before anything is queued.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SenderRules {
    pub kind: SenderKind,
    /// The sender's country (ISO), when known.
    pub country: Option<String>,
    pub deliverable: bool,
    pub notes: Vec<String>,
}

const TOLL_FREE_AREA_CODES: [&str; 7] = ["800", "833", "844", "855", "866", "877", "888"];
/// Where North American toll-free numbers deliver.
const TOLL_FREE_REACH: [&str; 3] = ["US", "CA", "PR"];

/// The kind of sender an address is.
pub fn sender_kind(from: &str) -> SenderKind {
    let digits: String = from.chars().filter(char::is_ascii_digit).collect();
    if !from.starts_with('+') && (5..=6).contains(&digits.len()) {
        SenderKind::ShortCode
    } else if from.starts_with("MG") {
        SenderKind::MessagingService
    } else if digits.len() == 11 && digits.starts_with('1') && TOLL_FREE_AREA_CODES.contains(&&digits[1..4]) {
        SenderKind::TollFree
    } else {
        SenderKind::LongCode
    }
}

/// The rules for a send from `from` (our number, or a Messaging Service) to a recipient in
/// `to_country`.
pub fn sender_rules(from: &str, to_country: Option<&str>) -> SenderRules {
    let kind = sender_kind(from);
    let country = crate::address::PhoneNumber::parse(from).ok().and_then(|p| p.country());
    let mut notes = Vec::new();
    let mut deliverable = true;
    let to_us = to_country == Some("US");
    match kind {
        SenderKind::TollFree => {
            if to_country.is_some_and(|c| !TOLL_FREE_REACH.contains(&c)) {
                deliverable = false;
                notes.push(format!(
                    "toll-free numbers deliver only to the US, Canada and Puerto Rico, not {}",
                    to_country.unwrap_or_default()
                ));
            }
            if to_us {
                notes.push(
                    "US carriers block unverified toll-free traffic: the number needs toll-free verification".into(),
                );
            }
        }
        SenderKind::LongCode => {
            if to_us && country.as_deref().is_some_and(|c| c == "US" || c == "CA") {
                notes.push(
                    "US carriers block unregistered long-code traffic: the number needs an A2P 10DLC brand and campaign"
                        .into(),
                );
            }
            if let (Some(from_c), Some(to_c)) = (country.as_deref(), to_country) {
                if from_c != to_c && to_c != "*" {
                    notes.push(format!(
                        "international: a {from_c} number writing to {to_c}; some countries replace the sender id"
                    ));
                }
            }
        }
        SenderKind::ShortCode => {
            notes.push("short codes deliver only within their own country".into());
            if to_country.is_some_and(|c| c != "US" && c != "*") {
                deliverable = false;
            }
        }
        SenderKind::MessagingService => {
            notes.push("the Messaging Service picks the sender from its pool (sticky per customer)".into());
        }
    }
    SenderRules { kind, country, deliverable, notes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::WorkspaceId;
    use time::macros::datetime;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    // Twilio's own published test vector (their request-validator test suites).
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    fn documented_params() -> Vec<(String, String)> {
        pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ])
    }

    #[test]
    fn signature_matches_twilios_documented_example() {
        assert_eq!(compute_signature("12345", URL, &documented_params()), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(signature_is_valid("12345", URL, &documented_params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    #[test]
    fn repeated_parameters_sort_by_value_too() {
        let p = pairs(&[("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]);
        assert_eq!(compute_signature("12345", URL, &p), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    }

    #[test]
    fn default_ports_are_tolerated_both_ways() {
        // Twilio's vectors: the same request signed with ":443" in the URL, and with a custom port.
        assert!(signature_is_valid("12345", URL, &documented_params(), "kvajT1Ptam85bY51eRf/AJRuM3w="));
        let with_port = URL.replace(".com", ".com:1234");
        assert!(signature_is_valid("12345", &with_port, &documented_params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let mut p = documented_params();
        p[1].1 = "9999".into();
        assert!(!signature_is_valid("12345", URL, &p, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(!signature_is_valid("wrong", URL, &documented_params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(!signature_is_valid(
            "12345",
            "https://mycompany.com/myapp.php",
            &documented_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!signature_is_valid("12345", URL, &documented_params(), ""));
    }

    fn inbound_params() -> Vec<(String, String)> {
        pairs(&[
            ("ToCountry", "US"),
            ("SmsMessageSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"),
            ("NumMedia", "1"),
            ("Body", "Hi, my order has not arrived"),
            ("FromCountry", "US"),
            ("To", "+14155550100"),
            ("MessageSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"),
            ("AccountSid", "ACae0e0a8b2c7b2f1b3c9f4e1e5b5c1a2d"),
            ("From", "+1 415 555 2671"),
            ("MediaUrl0", "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME1"),
            ("MediaContentType0", "image/jpeg"),
            ("NumSegments", "1"),
        ])
    }

    #[test]
    fn inbound_sms_parses_and_normalises() {
        let sms = parse_inbound(&inbound_params()).unwrap();
        assert_eq!(sms.from.as_str(), "+14155552671");
        assert_eq!(sms.to.as_str(), "+14155550100");
        assert_eq!(sms.media.len(), 1);
        assert_eq!(sms.media[0].content_type, "image/jpeg");
        assert_eq!(sms.extra.get("NumSegments").unwrap(), "1");
        let ws = WorkspaceId::parse("acme").unwrap();
        let ev = sms.into_parsed().into_inbound(ws, datetime!(2026-01-01 0:00 UTC), crate::finance::Usage::default());
        assert_eq!(ev.dedup_id(), "twilio:SM1f0e8ae6ade43cb3c0ce4525424e404f");
        assert_eq!(ev.group_id(), "acme:phone:+14155552671");
    }

    #[test]
    fn inbound_sms_rejects_bad_input_with_a_reason() {
        let without = |name: &str| inbound_params().into_iter().filter(|(k, _)| k != name).collect::<Vec<_>>();
        assert_eq!(parse_inbound(&without("From")), Err(ParseError::Missing("From")));
        assert_eq!(parse_inbound(&without("MessageSid")), Err(ParseError::Missing("MessageSid")));
        assert!(parse_inbound(&without("MediaUrl0")).is_err());
        let mut p = inbound_params();
        p.retain(|(k, _)| !k.starts_with("Media") && k != "NumMedia" && k != "Body");
        assert!(parse_inbound(&p).is_err(), "a message with no body and no media is malformed");
        let mut p = inbound_params();
        p.iter_mut().find(|(k, _)| k == "MessageSid").unwrap().1 = "SM#x".into();
        assert!(parse_inbound(&p).is_err());
    }

    #[test]
    fn status_callbacks_map_to_delivery_events() {
        let at = datetime!(2026-01-01 0:00 UTC);
        let p = pairs(&[
            ("MessageSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"),
            ("MessageStatus", "undelivered"),
            ("ErrorCode", "30003"),
        ]);
        let cb = parse_status_callback(&p, at).unwrap();
        assert_eq!(cb.event.status, DeliveryStatus::Undelivered);
        assert_eq!(cb.event.error_code.as_deref(), Some("30003"));
        let bad = pairs(&[("MessageSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"), ("MessageStatus", "exploded")]);
        assert!(parse_status_callback(&bad, at).is_err());
    }

    #[test]
    fn api_answers_are_classified() {
        let ok =
            br#"{"sid":"SM1f0e8ae6ade43cb3c0ce4525424e404f","status":"queued","error_code":null,"num_segments":"1"}"#;
        assert_eq!(
            classify_response(201, ok),
            SendOutcome::Accepted { provider_message_id: "SM1f0e8ae6ade43cb3c0ce4525424e404f".into() }
        );
        let bad = br#"{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}"#;
        assert_eq!(
            classify_response(400, bad),
            SendOutcome::Rejected {
                code: "21211".into(),
                message: "The 'To' number is not a valid phone number.".into()
            }
        );
        assert!(matches!(classify_response(429, b"{}"), SendOutcome::Retryable { http_status: 429, .. }));
        assert!(matches!(classify_response(503, b"oops"), SendOutcome::Retryable { .. }));
    }

    #[test]
    fn send_request_renders_form_fields() {
        let req = SendSms {
            to: "+14155552671",
            from: "+14155550100",
            messaging_service_sid: None,
            body: "On its way!",
            media_urls: vec![],
            status_callback: Some("https://x/webhooks/twilio/status".into()),
        };
        let f = req.form();
        assert_eq!(f[0], ("To", "+14155552671".to_owned()));
        assert!(f.contains(&("From", "+14155550100".to_owned())));
        assert!(f.contains(&("StatusCallback", "https://x/webhooks/twilio/status".to_owned())));
        // Through a Messaging Service: Twilio picks the sender, so there is no From.
        let pooled = SendSms { messaging_service_sid: Some("MG9752274e9e519418a7406176694466fa"), ..req }.form();
        assert!(pooled.contains(&("MessagingServiceSid", "MG9752274e9e519418a7406176694466fa".to_owned())));
        assert!(!pooled.iter().any(|(k, _)| *k == "From"));
    }

    #[test]
    fn prices_are_read_from_the_message_resource() {
        let rated = br#"{"sid":"SM1","price":"-0.00790","price_unit":"USD","status":"delivered"}"#;
        assert_eq!(parse_price(rated).unwrap(), Some((7_900, crate::finance::Currency::usd())));
        assert_eq!(parse_price(br#"{"sid":"SM1","price":null,"price_unit":"USD"}"#).unwrap(), None);
        assert!(parse_price(br#"{"price":"abc","price_unit":"USD"}"#).is_err());
        assert!(parse_price(b"not json").is_err());
    }

    #[test]
    fn an_empty_auth_token_validates_nothing() {
        let params = vec![("Body".to_owned(), "hi".to_owned())];
        let url = "https://hooks.example/webhooks/twilio/sms";
        let forged = compute_signature("", url, &params);
        assert!(!signature_is_valid("", url, &params, &forged));
        assert!(signature_is_valid("tok", url, &params, &compute_signature("tok", url, &params)));
    }

    #[test]
    fn senders_meet_their_carriers_rules() {
        assert_eq!(sender_kind("+18005550100"), SenderKind::TollFree);
        assert_eq!(sender_kind("+18885550100"), SenderKind::TollFree);
        assert_eq!(sender_kind("+14155550100"), SenderKind::LongCode);
        assert_eq!(sender_kind("+447400123456"), SenderKind::LongCode);
        assert_eq!(sender_kind("12345"), SenderKind::ShortCode);
        // Toll-free: North America only, and verification for the US.
        let tf = sender_rules("+18885550100", Some("GB"));
        assert!(!tf.deliverable && tf.notes[0].contains("toll-free"));
        let tf_us = sender_rules("+18885550100", Some("US"));
        assert!(tf_us.deliverable && tf_us.notes.iter().any(|n| n.contains("verification")));
        // A US long code writing to a US customer needs 10DLC; abroad it is international.
        assert!(sender_rules("+14155550100", Some("US")).notes.iter().any(|n| n.contains("10DLC")));
        let intl = sender_rules("+14155550100", Some("GB"));
        assert!(intl.deliverable && intl.notes.iter().any(|n| n.contains("international")));
        assert!(!sender_rules("12345", Some("FR")).deliverable);
        let uk = sender_rules("+447400123456", Some("GB"));
        assert!(uk.notes.is_empty(), "{uk:?}");
    }
}
