//! What a workspace's admins set without a deploy: its settings (help text, voicemail greeting,
//! SMS segment cap) and the channel accounts it connects (numbers, WhatsApp phone number ids,
//! Pages, Instagram accounts, Telegram bots, mailboxes, web chat widget keys). Pure validation:
//! the admin routes call it before anything is stored.
//!
//! Business hours and CSAT are part of the routing rules (`PUT /routing-rules`), service levels
//! of the SLA policy, redaction of the privacy policy: each has its own route, and
//! `GET /workspace` shows where.

use serde::{Deserialize, Serialize};

use crate::address::{EmailAddress, PhoneNumber};
use crate::channels::webchat;
use crate::error::ParseError;
use crate::model::Channel;

/// The most segments an SMS reply may take (Twilio's own ceiling for concatenated messages).
pub const MAX_SMS_SEGMENTS: u32 = 10;
const MAX_TEXT_CHARS: usize = 1_000;
const MAX_NAME_CHARS: usize = 100;
/// Allowed origins per widget key.
pub const MAX_ORIGINS: usize = 20;

/// A workspace's settings. Every field is optional: absent means the stack's default (the
/// `HelpText`, `VoicemailGreeting` and `MaxSmsSegments` parameters), so a workspace nobody has
/// configured behaves as before.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Settings {
    /// How the workspace is shown (the console's title, the audit trail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The answer to an SMS `HELP` (carriers require one naming the program and how to stop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help_text: Option<String>,
    /// What a caller hears before the beep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voicemail_greeting: Option<String>,
    /// The most segments an agent's SMS reply may take (1-10); longer replies are refused with 422.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sms_segments: Option<u32>,
    /// Resolved conversations untouched for this many days (30-3650) are erased with everything in
    /// them — messages, notes, attachments, raw mail — by the daily retention run; their cost
    /// rows stay, naming no conversation. Absent: kept until erased by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// A legal hold (its matter, e.g. "Smith v. Acme"): while set nothing is erased — not by
    /// retention, not by an erasure request (409), as GDPR Art. 17(3)(e) allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_hold: Option<String>,
    /// Mail that fails DMARC (or SPF and DKIM): `flag` (default) keeps it as its own flagged
    /// conversation that never threads into the real customer's; `drop` keeps it out of the inbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unauthenticated_mail: Option<MailPolicy>,
    /// Where a reply that failed on its channel is re-sent, per channel, in order
    /// (`{"whatsapp": ["sms", "email"]}`): the first channel the conversation has that consent and
    /// the channel's window allow. Empty: failed replies wait for an agent.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schema(value_type = std::collections::BTreeMap<String, Vec<Channel>>)]
    pub fallback: crate::fallback::Policy,
}

/// What becomes of mail SES could not authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailPolicy {
    Flag,
    Drop,
}

/// The shortest and longest retention a workspace may set.
pub const MIN_RETENTION_DAYS: u32 = 30;
pub const MAX_RETENTION_DAYS: u32 = 3650;

impl Settings {
    /// Trims the texts (an empty one means "the default") and checks the bounds.
    pub fn validated(self) -> Result<Self, ParseError> {
        let text = |field: &'static str, v: Option<String>, max: usize| -> Result<Option<String>, ParseError> {
            let Some(v) = v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else { return Ok(None) };
            if v.chars().count() > max {
                return Err(ParseError::Invalid { kind: field, reason: format!("at most {max} characters") });
            }
            if v.chars().any(|c| c.is_control() && c != '\n') {
                return Err(ParseError::Invalid { kind: field, reason: "no control characters".into() });
            }
            Ok(Some(v))
        };
        if let Some(n) = self.max_sms_segments {
            if !(1..=MAX_SMS_SEGMENTS).contains(&n) {
                return Err(ParseError::Invalid {
                    kind: "max_sms_segments",
                    reason: format!("expected 1 to {MAX_SMS_SEGMENTS}"),
                });
            }
        }
        if let Some(d) = self.retention_days {
            if !(MIN_RETENTION_DAYS..=MAX_RETENTION_DAYS).contains(&d) {
                return Err(ParseError::Invalid {
                    kind: "retention_days",
                    reason: format!("expected {MIN_RETENTION_DAYS} to {MAX_RETENTION_DAYS} days"),
                });
            }
        }
        Ok(Settings {
            name: text("name", self.name, MAX_NAME_CHARS)?,
            help_text: text("help_text", self.help_text, MAX_TEXT_CHARS)?,
            voicemail_greeting: text("voicemail_greeting", self.voicemail_greeting, MAX_TEXT_CHARS)?,
            max_sms_segments: self.max_sms_segments,
            retention_days: self.retention_days,
            legal_hold: text("legal_hold", self.legal_hold, MAX_NAME_CHARS * 2)?,
            unauthenticated_mail: self.unauthenticated_mail,
            fallback: crate::fallback::validated(self.fallback)?,
        })
    }

    /// Resolved conversations last active before this are due for erasure; `None` when the
    /// workspace keeps everything (no retention, or a legal hold).
    pub fn retention_cutoff(&self, now: time::OffsetDateTime) -> Option<time::OffsetDateTime> {
        if self.legal_hold.is_some() {
            return None;
        }
        self.retention_days.map(|d| now - time::Duration::days(i64::from(d)))
    }

    /// Whether mail failing authentication stays out of the inbox.
    pub fn drops_unauthenticated_mail(&self) -> bool {
        self.unauthenticated_mail == Some(MailPolicy::Drop)
    }
}

/// The canonical form of a channel account's address, as the channel's webhooks look it up:
/// SMS and voice numbers in E.164, email addresses lower-cased, Meta and Telegram ids as the
/// digits the platform sends, widget keys as given.
pub fn parse_address(channel: Channel, raw: &str) -> Result<String, ParseError> {
    let digits = |kind: &'static str| {
        let s = raw.trim();
        if (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(s.to_owned())
        } else {
            Err(ParseError::Invalid { kind, reason: "expected the numeric id the platform shows (1-32 digits)".into() })
        }
    };
    match channel {
        Channel::Sms | Channel::Voice => Ok(PhoneNumber::parse(raw)?.as_str().to_owned()),
        Channel::Email => Ok(EmailAddress::parse(raw)?.as_str().to_owned()),
        Channel::Whatsapp => digits("WhatsApp phone number id"),
        Channel::Messenger => digits("Facebook Page id"),
        Channel::Instagram => digits("Instagram account id"),
        Channel::Telegram => digits("Telegram bot id"),
        Channel::Webchat => Ok(webchat::parse_key(raw.trim())?.to_owned()),
    }
}

/// A web page origin a widget key may be used from: `https://host[:port]` (or `http://` for
/// localhost), no path, lower-cased, as browsers send it in the `Origin` header.
pub fn parse_origin(raw: &str) -> Result<String, ParseError> {
    let invalid = |reason: &str| ParseError::Invalid { kind: "origin", reason: reason.into() };
    let s = raw.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = s.split_once("://").ok_or_else(|| invalid("expected https://host[:port]"))?;
    let host = rest.split(':').next().unwrap_or_default();
    let local = host == "localhost" || host == "127.0.0.1";
    if !(scheme == "https" || (scheme == "http" && local)) {
        return Err(invalid("expected https (http only for localhost)"));
    }
    let port_ok = rest.split_once(':').is_none_or(|(_, p)| !p.is_empty() && p.parse::<u16>().is_ok());
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !host.starts_with('.')
        && !host.ends_with('.');
    if !host_ok || !port_ok || rest.contains('/') {
        return Err(invalid("expected scheme://host[:port] with no path"));
    }
    Ok(s)
}

/// Whether a browser on `origin` may use a widget whose allowed list is `allowed`: an empty list
/// allows every origin (the key is public anyway; the list stops other sites embedding it).
pub fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    if allowed.is_empty() {
        return true;
    }
    origin.is_some_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o.trim_end_matches('/'))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn settings_are_trimmed_and_bounded() {
        let s = Settings {
            name: Some("  Acme  ".into()),
            help_text: Some("   ".into()),
            voicemail_greeting: Some("Hello.".into()),
            max_sms_segments: Some(3),
            retention_days: Some(90),
            legal_hold: Some("  ".into()),
            unauthenticated_mail: Some(MailPolicy::Drop),
            fallback: Default::default(),
        }
        .validated()
        .unwrap();
        assert_eq!(s.name.as_deref(), Some("Acme"));
        assert_eq!(s.help_text, None, "blank means the default");
        assert!(Settings { max_sms_segments: Some(0), ..Default::default() }.validated().is_err());
        assert!(Settings { max_sms_segments: Some(11), ..Default::default() }.validated().is_err());
        assert!(Settings { help_text: Some("x".repeat(1001)), ..Default::default() }.validated().is_err());
        assert!(Settings { name: Some("a\u{7}b".into()), ..Default::default() }.validated().is_err());
        assert_eq!(s.legal_hold, None, "a blank hold is no hold");
        assert!(s.drops_unauthenticated_mail());
        for days in [0, 29, 3651] {
            assert!(Settings { retention_days: Some(days), ..Default::default() }.validated().is_err(), "{days}");
        }
    }

    #[test]
    fn a_legal_hold_suspends_retention() {
        let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let mut s = Settings { retention_days: Some(30), ..Default::default() };
        assert_eq!(s.retention_cutoff(now), Some(now - time::Duration::days(30)));
        s.legal_hold = Some("Smith v. Acme".into());
        assert_eq!(s.retention_cutoff(now), None);
        assert_eq!(Settings::default().retention_cutoff(now), None);
    }

    #[test]
    fn addresses_take_the_form_their_webhooks_look_up() {
        assert_eq!(parse_address(Channel::Sms, " +1 (415) 555-0100 ").unwrap(), "+14155550100");
        assert_eq!(parse_address(Channel::Email, "Support@Acme.Example").unwrap(), "support@acme.example");
        assert_eq!(parse_address(Channel::Whatsapp, "106540352242922").unwrap(), "106540352242922");
        assert!(parse_address(Channel::Telegram, "@acme_bot").is_err());
        assert!(parse_address(Channel::Messenger, "").is_err());
        assert!(parse_address(Channel::Webchat, "short").is_err());
        assert_eq!(parse_address(Channel::Webchat, "wk_acme_site").unwrap(), "wk_acme_site");
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(parse_origin("https://Shop.Example/").unwrap(), "https://shop.example");
        assert_eq!(parse_origin("http://localhost:5173").unwrap(), "http://localhost:5173");
        for bad in ["http://shop.example", "shop.example", "https://shop.example/page", "https://", "ftp://x.example"] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
        let allowed = vec!["https://shop.example".to_owned()];
        assert!(origin_allowed(&allowed, Some("https://shop.example")));
        assert!(!origin_allowed(&allowed, Some("https://evil.example")));
        assert!(!origin_allowed(&allowed, None), "a listed key needs the browser's Origin");
        assert!(origin_allowed(&[], None));
    }

    proptest! {
        #[test]
        fn a_parsed_origin_parses_to_itself(host in "[a-z][a-z0-9-]{0,20}(\\.[a-z]{2,6}){1,2}", port in proptest::option::of(1u16..)) {
            let raw = match port { Some(p) => format!("https://{host}:{p}"), None => format!("https://{host}") };
            let once = parse_origin(&raw).unwrap();
            prop_assert_eq!(parse_origin(&once).unwrap(), once.clone());
            prop_assert!(origin_allowed(std::slice::from_ref(&once), Some(&raw)));
        }
    }
}
