//! Consent (seed 003): opt-out and opt-in keywords on SMS and WhatsApp, kept per phone identity
//! with every change's time and source. A message whose whole text (any case, surrounding spaces
//! and a final `.` or `!` ignored) is a keyword changes consent:
//!
//! - opt out: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPT OUT (and OPTOUT)
//! - opt in: START, UNSTOP, YES
//! - HELP asks for the workspace's help text.
//!
//! The phone identity is shared by SMS, WhatsApp and voice, so an opt-out on one is an opt-out on
//! both messaging channels. Sending to an opted-out identity is refused before anything is queued.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::AgentId;
use crate::model::{Channel, Identity, IdentityKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Keyword {
    OptOut,
    OptIn,
    Help,
}

const OPT_OUT: [&str; 9] = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPT OUT", "OPTOUT"];
const OPT_IN: [&str; 3] = ["START", "UNSTOP", "YES"];

/// The keyword a whole message is, if any.
pub fn keyword(text: &str) -> Option<Keyword> {
    let t = text.trim().trim_end_matches(['.', '!']).trim();
    let norm: String = t.split_whitespace().collect::<Vec<_>>().join(" ").to_uppercase();
    if OPT_OUT.contains(&norm.as_str()) {
        Some(Keyword::OptOut)
    } else if OPT_IN.contains(&norm.as_str()) {
        Some(Keyword::OptIn)
    } else if norm == "HELP" {
        Some(Keyword::Help)
    } else {
        None
    }
}

/// Channels whose consent the phone identity's record governs.
pub fn governed(channel: Channel) -> bool {
    matches!(channel, Channel::Sms | Channel::Whatsapp)
}

/// The identity whose consent record a send to this route must respect: the phone identity on
/// SMS and WhatsApp (E.164 there), the email identity on email (suppressed after a hard bounce or
/// a complaint).
pub fn identity_for(channel: Channel, contact_address: &str) -> Option<Identity> {
    match channel {
        Channel::Email => {
            Some(Identity { kind: IdentityKind::Email, value: contact_address.to_owned(), unverified: false })
        }
        c if governed(c) => {
            Some(Identity { kind: IdentityKind::Phone, value: contact_address.to_owned(), unverified: false })
        }
        _ => None,
    }
}

/// The agent id automatic answers are recorded under (reserved: no person may use it).
pub const SYSTEM_AGENT: &str = "system";

/// What a HELP keyword is answered with when a deployment sets nothing else.
pub const DEFAULT_HELP_TEXT: &str =
    "Thanks for your message. Our team will answer you here. Reply STOP to stop messages, START to resume.";

/// The metadata mark of an automatic answer, which consent does not block (HELP is always answered).
pub const AUTO_REPLY_HELP: &str = "help";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    OptedIn,
    OptedOut,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    /// The contact sent a keyword.
    Keyword { text: String, channel: Channel, provider_message_id: String },
    /// An agent or admin changed it (with the contact's documented request).
    Agent { agent: AgentId, note: Option<String> },
    /// The provider reported the address unusable: an email hard bounce or a complaint (SES).
    Provider { provider: String, reason: String, provider_message_id: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Change {
    pub status: Status,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub source: Source,
}

/// An identity's consent and its whole history, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Record {
    pub identity: Identity,
    pub status: Status,
    pub history: Vec<Change>,
}

impl Record {
    /// Applies a change; a change to the status it already has is still kept in the history (the
    /// contact did send the keyword).
    pub fn apply(current: Option<Record>, identity: &Identity, change: Change) -> Record {
        let mut r = current.unwrap_or(Record { identity: identity.clone(), status: Status::OptedIn, history: vec![] });
        r.status = change.status;
        r.history.push(change);
        r
    }

    /// Why a send to this identity must be refused, if it must.
    pub fn refusal(&self) -> Option<String> {
        if self.status != Status::OptedOut {
            return None;
        }
        let last = self.history.iter().rev().find(|c| c.status == Status::OptedOut);
        let how = match last.map(|c| &c.source) {
            Some(Source::Keyword { text, channel, .. }) => format!(" by texting {:?} on {channel}", text.trim()),
            Some(Source::Agent { agent, .. }) => format!(" (recorded by {agent})"),
            Some(Source::Provider { provider, reason, .. }) => format!(" ({reason} reported by {provider})"),
            None => String::new(),
        };
        let when = last
            .and_then(|c| c.at.format(&time::format_description::well_known::Rfc3339).ok())
            .map(|t| format!(" at {t}"))
            .unwrap_or_default();
        if self.identity.kind == IdentityKind::Email {
            return Some(format!(
                "{} is suppressed for email{how}{when}; nothing is sent to it until an agent re-enables the address",
                self.identity.value
            ));
        }
        Some(format!(
            "{} opted out of SMS and WhatsApp messages{how}{when}; nothing can be sent until they text START",
            self.identity.value
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_suppression_is_a_consent_record_of_the_email_identity() {
        let id = identity_for(Channel::Email, "ann@example.com").unwrap();
        assert_eq!(id.kind, IdentityKind::Email);
        assert!(identity_for(Channel::Telegram, "123").is_none());
        let change = Change {
            status: Status::OptedOut,
            at: time::macros::datetime!(2026-03-04 10:00 UTC),
            source: Source::Provider {
                provider: "ses".into(),
                reason: "hard_bounce".into(),
                provider_message_id: "m".into(),
            },
        };
        let why = Record::apply(None, &id, change).refusal().unwrap();
        assert!(
            why.starts_with(
                "ann@example.com is suppressed for email (hard_bounce reported by ses) at 2026-03-04T10:00:00Z"
            ),
            "{why}"
        );
    }

    #[test]
    fn keywords_are_whole_messages_in_any_case() {
        for t in [
            "STOP",
            "stop",
            " Stop. ",
            "StopAll",
            "unsubscribe",
            "cancel",
            "END",
            "quit",
            "revoke",
            "opt out",
            "OPT   OUT",
            "optout!",
        ] {
            assert_eq!(keyword(t), Some(Keyword::OptOut), "{t:?}");
        }
        for t in ["START", "unstop", "Yes"] {
            assert_eq!(keyword(t), Some(Keyword::OptIn), "{t:?}");
        }
        assert_eq!(keyword("help"), Some(Keyword::Help));
        for t in ["please stop", "STOP it", "stopping", "yes please", "", "end of story"] {
            assert_eq!(keyword(t), None, "{t:?}");
        }
    }

    #[test]
    fn records_keep_every_change_and_explain_refusals() {
        let id = Identity { kind: IdentityKind::Phone, value: "+14155552671".into(), unverified: false };
        let at = time::macros::datetime!(2026-11-21 10:00 UTC);
        let kw = |text: &str, status| Change {
            status,
            at,
            source: Source::Keyword { text: text.into(), channel: Channel::Sms, provider_message_id: "SM1".into() },
        };
        let r = Record::apply(None, &id, kw("STOP", Status::OptedOut));
        let why = r.refusal().unwrap();
        assert!(why.contains("texting \"STOP\" on sms") && why.contains("2026-11-21T10:00:00Z"), "{why}");
        let r = Record::apply(Some(r), &id, kw("START", Status::OptedIn));
        assert!(r.refusal().is_none());
        assert_eq!(r.history.len(), 2);
        assert!(governed(Channel::Whatsapp) && !governed(Channel::Email));
        assert_eq!(identity_for(Channel::Sms, "+14155552671"), Some(id));
    }
}
