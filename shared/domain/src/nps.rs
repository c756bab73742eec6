//! Net Promoter Score: a per-contact survey on a cadence (quarterly by default) to a segment of the
//! workspace's contacts (by default, those with a conversation resolved in the last 90 days),
//! answered with 0–10 on any channel and kept on the contact. Off by default: it writes to
//! customers who did not just talk to the team. Pure: who is due, what counts as an answer, the
//! score.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::ids::{ConversationId, MessageId};
use crate::model::{Channel, Contact};

pub const DEFAULT_QUESTION: &str =
    "How likely are you to recommend us to a friend or colleague? Reply with a number from 0 (not at all) to 10 (extremely).";

/// How long an NPS question waits for its answer.
pub const ANSWER_WINDOW: Duration = Duration::days(7);

/// A workspace's NPS settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = NpsPolicy)]
pub struct Policy {
    #[serde(default)]
    pub enabled: bool,
    /// At most one question per contact in this many days.
    #[serde(default = "default_days")]
    pub cadence_days: u16,
    /// The segment: contacts with a conversation resolved within this many days.
    #[serde(default = "default_days")]
    pub resolved_within_days: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
}

fn default_days() -> u16 {
    90
}

impl Default for Policy {
    fn default() -> Self {
        Policy { enabled: false, cadence_days: 90, resolved_within_days: 90, question: None }
    }
}

impl Policy {
    pub fn question(&self) -> &str {
        self.question.as_deref().unwrap_or(DEFAULT_QUESTION)
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(7..=730).contains(&self.cadence_days) {
            return Err("cadence_days: 7 to 730".into());
        }
        if !(1..=365).contains(&self.resolved_within_days) {
            return Err("resolved_within_days: 1 to 365".into());
        }
        match &self.question {
            Some(q) if q.trim().is_empty() || q.chars().count() > 300 => Err("question: 1 to 300 characters".into()),
            _ => Ok(()),
        }
    }

    /// The cadence window `now` falls in: one question per contact per window.
    pub fn period(&self, now: OffsetDateTime) -> i64 {
        now.unix_timestamp().div_euclid(i64::from(self.cadence_days.max(1)) * 86_400)
    }
}

/// The contact's latest NPS question and its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = NpsSurvey)]
pub struct Survey {
    #[serde(with = "time::serde::rfc3339")]
    pub asked_at: OffsetDateTime,
    pub channel: Channel,
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<OffsetDateTime>,
}

impl Survey {
    pub fn awaits(&self, channel: Channel, now: OffsetDateTime) -> bool {
        self.score.is_none() && self.channel == channel && now - self.asked_at <= ANSWER_WINDOW
    }
}

/// Whether a contact in the segment is due a question: never asked, or asked before the cadence.
pub fn due(policy: &Policy, contact: &Contact, now: OffsetDateTime) -> bool {
    policy.enabled
        && contact.merged_into.is_none()
        && contact.nps.as_ref().is_none_or(|s| now - s.asked_at >= Duration::days(i64::from(policy.cadence_days)))
}

/// An answer, if the whole message is one: 0 to 10, optionally `/10` or punctuation after it.
pub fn parse_score(text: &str) -> Option<u8> {
    let t = text.trim().trim_end_matches(['!', '.', ' ']).trim();
    let (n, rest) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let rest = rest.trim().replace(' ', "");
    if n.is_empty() || n.len() > 2 || !(rest.is_empty() || rest == "/10" || rest == "outof10") {
        return None;
    }
    n.parse::<u8>().ok().filter(|s| *s <= 10)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Detractor,
    Passive,
    Promoter,
}

pub fn category(score: u8) -> Category {
    match score {
        9..=10 => Category::Promoter,
        7..=8 => Category::Passive,
        _ => Category::Detractor,
    }
}

/// The Net Promoter Score of some answers: % promoters − % detractors (none without answers).
pub fn score(answers: &[u8]) -> Option<f64> {
    if answers.is_empty() {
        return None;
    }
    let n = answers.len() as f64;
    let promoters = answers.iter().filter(|s| category(**s) == Category::Promoter).count() as f64;
    let detractors = answers.iter().filter(|s| category(**s) == Category::Detractor).count() as f64;
    Some(100.0 * (promoters - detractors) / n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::WorkspaceId;
    use crate::model::Identity;

    #[test]
    fn answers_are_whole_messages_from_0_to_10() {
        for (t, want) in [
            ("9", Some(9)),
            ("10", Some(10)),
            ("0", Some(0)),
            (" 7/10 ", Some(7)),
            ("8 out of 10", Some(8)),
            ("10!", Some(10)),
            ("11", None),
            ("100", None),
            ("9 because fast", None),
            ("-1", None),
            ("", None),
        ] {
            assert_eq!(parse_score(t), want, "{t:?}");
        }
    }

    #[test]
    fn due_once_per_cadence_and_scored_as_the_method_says() {
        let now = OffsetDateTime::from_unix_timestamp(1_764_547_200).unwrap();
        let ws = WorkspaceId::parse("acme").unwrap();
        let mut c = Contact::new(ws, Identity::email(&crate::EmailAddress::parse("a@example.com").unwrap()), None, now);
        let mut p = Policy::default();
        assert!(!due(&p, &c, now), "off by default");
        p.enabled = true;
        assert!(due(&p, &c, now));
        c.nps = Some(Survey {
            asked_at: now,
            channel: Channel::Sms,
            conversation_id: ConversationId::new(),
            message_id: MessageId::new(),
            score: None,
            answered_at: None,
        });
        assert!(!due(&p, &c, now + Duration::days(89)));
        assert!(due(&p, &c, now + Duration::days(90)));
        assert_eq!(p.period(now), p.period(now + Duration::seconds(1)));
        assert_eq!(score(&[10, 9, 8, 0]), Some(25.0));
        assert_eq!(score(&[]), None);
        assert!(Policy { cadence_days: 1, ..Policy::default() }.validate().is_err());
    }
}
