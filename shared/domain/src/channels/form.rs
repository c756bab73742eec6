//! The website contact form: `POST /webhooks/form/{workspace}` with `name`, `email`, `phone`,
//! `subject` and `message`, as JSON or form-encoded (a plain HTML `<form>` posts the latter).
//!
//! - A submission is an email-channel message from the given address: the same person writing
//!   by email, the form or web chat is one contact, and the agent's reply goes out by email from
//!   the workspace's support address (`Re: <subject>`, threaded by the Reply-To token like any
//!   email). `metadata.source = "form"` tells the two apart.
//! - The phone number is kept in metadata, not linked: nothing proves the visitor owns it. An
//!   agent links it with `POST /contacts/{id}/identities`.
//! - The honeypot field `website` is hidden from people by the page's CSS; a bot fills it in. Such
//!   a submission is answered exactly like a real one and dropped, so the bot learns nothing.
//! - The same submission posted twice (a double click, a browser retry) within
//!   [`DEDUP_WINDOW_MINUTES`] is one message: its id is a hash of the sender, the text and the
//!   time bucket.

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{email, ParsedMessage};
use crate::address::{EmailAddress, PhoneNumber};
use crate::error::ParseError;
use crate::events::InboundMessage;
use crate::finance::Usage;
use crate::ids::WorkspaceId;
use crate::model::{Channel, Identity};

pub const PROVIDER: &str = "form";
pub const HONEYPOT: &str = "website";
pub const MAX_MESSAGE_CHARS: usize = 5000;
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_SUBJECT_CHARS: usize = 200;
pub const DEDUP_WINDOW_MINUTES: i64 = 10;

#[derive(Deserialize, Default)]
struct Fields {
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    subject: Option<String>,
    message: Option<String>,
    #[serde(rename = "website")]
    honeypot: Option<String>,
}

/// A valid submission.
#[derive(Clone, Debug, PartialEq)]
pub struct Submission {
    pub name: Option<String>,
    pub email: EmailAddress,
    pub phone: Option<PhoneNumber>,
    pub subject: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    Submission(Submission),
    /// The honeypot was filled in: answer as usual, store nothing.
    Bot,
}

fn invalid(reason: impl Into<String>) -> ParseError {
    ParseError::Invalid { kind: "contact form", reason: reason.into() }
}

fn bounded(field: &'static str, v: Option<String>, max: usize) -> Result<Option<String>, ParseError> {
    let v = v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    match v {
        Some(s) if s.chars().count() > max => Err(invalid(format!("{field} is longer than {max} characters"))),
        Some(s) if s.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') => {
            Err(invalid(format!("{field} contains control characters")))
        }
        other => Ok(other),
    }
}

/// Reads a submission body (`json`: a JSON object; otherwise form-encoded).
pub fn parse(body: &[u8], json: bool) -> Result<Parsed, ParseError> {
    let f: Fields = if json {
        serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not the expected JSON object: {e}")))?
    } else {
        serde_urlencoded::from_bytes(body).map_err(|e| invalid(format!("the body is not form-encoded: {e}")))?
    };
    if f.honeypot.as_deref().is_some_and(|h| !h.trim().is_empty()) {
        return Ok(Parsed::Bot);
    }
    let email = match f.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) => EmailAddress::parse(e)?,
        None => return Err(ParseError::Missing("email: the address we answer to")),
    };
    let message = bounded("message", f.message, MAX_MESSAGE_CHARS)?.ok_or(ParseError::Missing("message"))?;
    let phone = match bounded("phone", f.phone, 40)? {
        Some(p) => Some(PhoneNumber::parse(&p)?),
        None => None,
    };
    let name = bounded("name", f.name, MAX_NAME_CHARS)?;
    // A subject ends up in an email header: one line.
    let subject = bounded("subject", f.subject.map(|s| s.replace(['\r', '\n'], " ")), MAX_SUBJECT_CHARS)?
        .unwrap_or_else(|| "Contact form".to_owned());
    Ok(Parsed::Submission(Submission { name, email, phone, subject, message }))
}

impl Submission {
    /// The submission's id: the same sender and text within one dedup window is the same message.
    pub fn id(&self, received_at: OffsetDateTime) -> String {
        let bucket = received_at.unix_timestamp() / (DEDUP_WINDOW_MINUTES * 60);
        let digest = Sha256::digest(format!("{}\n{}\n{}\n{bucket}", self.email.as_str(), self.subject, self.message));
        format!("form-{}", hex::encode(&digest[..16]))
    }

    /// The inbound message, to the workspace's support address `our_address`.
    pub fn into_inbound(
        self,
        workspace: WorkspaceId,
        our_address: &str,
        received_at: OffsetDateTime,
        usage: Usage,
    ) -> InboundMessage {
        let id = self.id(received_at);
        let mut metadata = BTreeMap::from([
            ("source".to_owned(), serde_json::Value::from(PROVIDER)),
            (email::META_SUBJECT.to_owned(), serde_json::Value::from(self.subject.clone())),
        ]);
        if let Some(p) = &self.phone {
            metadata.insert("form_phone".into(), serde_json::Value::from(p.as_str()));
        }
        ParsedMessage {
            channel: Channel::Email,
            // Anyone can type any address into a form: claimed, never proven.
            identity: Identity::email(&self.email).claimed(),
            contact_address: self.email.as_str().to_owned(),
            contact_country: None,
            our_address: our_address.to_owned(),
            contact_name: self.name,
            provider: PROVIDER,
            provider_message_id: id,
            text: Some(self.message),
            attachments: vec![],
            rich: None,
            provider_timestamp: Some(received_at),
            metadata,
        }
        .into_inbound(workspace, received_at, usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const AT: OffsetDateTime = datetime!(2026-11-22 10:00 UTC);

    fn ok(p: Result<Parsed, ParseError>) -> Submission {
        match p {
            Ok(Parsed::Submission(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_and_form_encoded_bodies_read_alike() {
        let j = ok(parse(
            br#"{"name":" Ana Silva ","email":"Ana@Example.com","phone":"+1 415 555 0100","message":"Where is my order?"}"#,
            true,
        ));
        let f = ok(parse(
            b"name=Ana+Silva&email=ana%40example.com&phone=%2B14155550100&message=Where+is+my+order%3F",
            false,
        ));
        assert_eq!(j, f);
        assert_eq!(j.email.as_str(), "ana@example.com");
        assert_eq!(j.phone.as_ref().map(|p| p.as_str()), Some("+14155550100"));
        assert_eq!(j.subject, "Contact form");
        let m =
            j.clone().into_inbound(WorkspaceId::parse("acme").unwrap(), "support@acme.example", AT, Usage::default());
        assert_eq!((m.channel, m.provider.as_str()), (Channel::Email, "form"));
        assert_eq!(m.metadata["form_phone"], "+14155550100");
        assert_eq!(m.contact_name.as_deref(), Some("Ana Silva"));
    }

    #[test]
    fn bad_submissions_say_what_is_wrong() {
        let err = |b: &[u8]| parse(b, true).unwrap_err().to_string();
        assert!(err(br#"{"message":"hi"}"#).contains("email"));
        assert!(err(br#"{"email":"nope","message":"hi"}"#).contains("email"));
        assert!(err(br#"{"email":"a@b.co"}"#).contains("message"));
        assert!(err(br#"{"email":"a@b.co","message":"   "}"#).contains("message"));
        assert!(err(br#"{"email":"a@b.co","message":"hi","phone":"12"}"#).contains("phone"));
        let long = format!(r#"{{"email":"a@b.co","message":"{}"}}"#, "x".repeat(MAX_MESSAGE_CHARS + 1));
        assert!(err(long.as_bytes()).contains("longer than"));
        assert!(err(br#"{"email":"a@b.co","message":"hi\u0000"}"#).contains("control"));
        assert!(err(b"[1,2]").contains("JSON"));
    }

    #[test]
    fn the_honeypot_catches_bots_and_subjects_stay_on_one_line() {
        assert_eq!(parse(b"email=a%40b.co&message=hi&website=http%3A%2F%2Fspam.example", false), Ok(Parsed::Bot));
        assert!(matches!(parse(b"email=a%40b.co&message=hi&website=", false), Ok(Parsed::Submission(_))));
        let s = ok(parse(br#"{"email":"a@b.co","message":"hi","subject":"Refund\r\nBcc: x@evil.example"}"#, true));
        assert!(!s.subject.contains('\n'), "{}", s.subject);
    }

    #[test]
    fn a_double_submit_is_one_message_a_later_one_is_another() {
        let s = ok(parse(br#"{"email":"a@b.co","message":"hi"}"#, true));
        assert_eq!(s.id(AT), s.id(AT + time::Duration::seconds(30)));
        assert_ne!(s.id(AT), s.id(AT + time::Duration::minutes(DEDUP_WINDOW_MINUTES)));
    }
}
