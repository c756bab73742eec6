//! Customer satisfaction (CSAT): asked once when a conversation is resolved, on the channel the
//! customer last used, answered with 1–5. Pure: the survey's state on the conversation, how the
//! question reads on each channel, what counts as an answer, and the signed rating links email
//! carries.
//!
//! An answer is a whole message that is a score ("4", "4/5", "5 stars", "⭐⭐⭐⭐"); anything else
//! the customer writes is an ordinary message, never swallowed. A score goes to the surveyed
//! conversation while the survey is open (7 days), even after a newer conversation started, as
//! long as nobody has written to the customer in the newer one (then "4" may answer an agent's
//! question there, and it stays an ordinary message).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::{Duration, OffsetDateTime};

use crate::ids::{ConversationId, MessageId, WorkspaceId};
use crate::model::{Channel, Conversation};

/// How long a survey waits for its answer.
pub const ANSWER_WINDOW: Duration = Duration::days(7);

pub const DEFAULT_QUESTION: &str = "How did we do? Reply with a number from 1 (poor) to 5 (great).";
pub const DEFAULT_THANKS: &str = "Thank you for your feedback!";

/// A workspace's CSAT settings (on by default).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = CsatPolicy)]
pub struct Policy {
    pub enabled: bool,
    /// The question (the default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// The approved WhatsApp template (no parameters; its quick replies answer 1-5) asked with when
    /// the 24-hour window has closed. Without it a customer outside the window is not asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp_template: Option<TemplateRef>,
}

/// A template of the workspace's WhatsApp registry, by name and language.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TemplateRef {
    pub name: String,
    pub language: String,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { enabled: true, question: None, whatsapp_template: None }
    }
}

/// The rating choices of a WhatsApp list message, best first: each row's title is its stars, so a
/// tap comes back as a message [`parse_score`] reads (`⭐⭐⭐⭐` is 4).
pub const WHATSAPP_ROWS: [(u8, &str); 5] = [(5, "Excellent"), (4, "Good"), (3, "Okay"), (2, "Poor"), (1, "Very poor")];

/// The Cloud API `interactive` object that asks on WhatsApp inside the window. A list, not reply
/// buttons: WhatsApp allows at most three reply buttons, and the scale has five points.
pub fn whatsapp_list(question: &str) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = WHATSAPP_ROWS
        .iter()
        .map(|(score, label)| {
            serde_json::json!({ "id": format!("csat:{score}"), "title": "⭐".repeat(usize::from(*score)), "description": label })
        })
        .collect();
    serde_json::json!({
        "type": "list",
        "body": { "text": question },
        "action": { "button": "Rate us", "sections": [{ "title": "Your rating", "rows": rows }] },
    })
}

impl Policy {
    pub fn question(&self) -> &str {
        self.question.as_deref().unwrap_or(DEFAULT_QUESTION)
    }

    pub fn validate(&self) -> Result<(), String> {
        match &self.question {
            Some(q) if q.trim().is_empty() => Err(String::from("question: empty")),
            Some(q) if q.chars().count() > 300 => Err("question: at most 300 characters".into()),
            _ => Ok(()),
        }?;
        if let Some(t) = &self.whatsapp_template {
            crate::channels::templates::parse_name(&t.name).map_err(|e| format!("whatsapp_template: {e}"))?;
            crate::channels::templates::parse_language(&t.language).map_err(|e| format!("whatsapp_template: {e}"))?;
        }
        Ok(())
    }
}

/// The survey of one conversation, kept on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = CsatSurvey)]
pub struct Survey {
    #[serde(with = "time::serde::rfc3339")]
    pub asked_at: OffsetDateTime,
    /// Where it was asked (where an answer is expected).
    pub channel: Channel,
    pub message_id: MessageId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<OffsetDateTime>,
    /// An optional comment (the email rating page asks for one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Survey {
    /// Still waiting for an answer on `channel` at `now`.
    pub fn awaits(&self, channel: Channel, now: OffsetDateTime) -> bool {
        self.score.is_none() && self.channel == channel && now - self.asked_at <= ANSWER_WINDOW
    }
}

/// Whether a resolved conversation gets a survey: enabled, never asked before, and the customer
/// wrote on a channel we can ask on.
pub fn should_ask(policy: &Policy, c: &Conversation) -> Option<Channel> {
    if !policy.enabled || c.csat.is_some() {
        return None;
    }
    let channel = c.last_inbound.as_ref()?.channel;
    asks_on(channel).then_some(channel)
}

/// Channels a survey can be asked on (a voicemail is asked by SMS through its reply route; the
/// contact form's answers go by email).
pub fn asks_on(channel: Channel) -> bool {
    !matches!(channel, Channel::Voice)
}

/// The survey message's text on a channel: the question, and for email the five rating links.
pub fn question_text(policy: &Policy, channel: Channel, links: Option<&[String; 5]>) -> String {
    let q = policy.question();
    match (channel, links) {
        (Channel::Email, Some(links)) => {
            let mut out = format!("{q}\n\n");
            for (i, l) in links.iter().enumerate() {
                out.push_str(&format!("{}: {}\n", i + 1, l));
            }
            out
        }
        _ => q.to_owned(),
    }
}

/// A score, if the whole message is one: a digit 1–5 optionally followed by "/5", "stars" or
/// punctuation, or one to five stars. Anything longer is an ordinary message.
pub fn parse_score(text: &str) -> Option<u8> {
    let t = text.trim().trim_end_matches(['!', '.', ' ']).trim().to_lowercase();
    if t.is_empty() || t.chars().count() > 12 {
        return None;
    }
    let stars = t.chars().filter(|c| *c == '⭐' || *c == '★').count();
    if stars > 0 && t.chars().all(|c| c == '⭐' || c == '★' || c.is_whitespace() || c == '\u{fe0f}') {
        return u8::try_from(stars).ok().filter(|s| (1..=5).contains(s));
    }
    let mut chars = t.chars();
    let d = chars.next()?.to_digit(10)?;
    if !(1..=5).contains(&d) {
        return None;
    }
    let rest = chars.as_str().trim();
    let ok = rest.is_empty()
        || rest.replace(' ', "") == "/5"
        || rest == "stars"
        || rest == "star"
        || rest == "of 5"
        || rest == "out of 5";
    ok.then_some(d as u8)
}

/// Where a score goes: the conversation the message threads to if its survey waits, else the one it
/// replaced (`pending_survey`) if nobody has written to the customer in the newer one.
pub fn answer_target(current: &Conversation, channel: Channel, now: OffsetDateTime) -> Option<AnswerTarget> {
    if current.csat.as_ref().is_some_and(|s| s.awaits(channel, now)) {
        return Some(AnswerTarget::This);
    }
    let spoken = current.message_count > current.unread_count;
    match current.pending_survey {
        Some(id) if !spoken => Some(AnswerTarget::Replaced(id)),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerTarget {
    /// The contact's current conversation asked.
    This,
    /// The conversation the current one replaced asked (read it, then check it still waits).
    Replaced(ConversationId),
}

/// Records the answer on the surveyed conversation (which stays resolved): the message joins it
/// without reopening it.
pub fn record_answer(c: &mut Conversation, score: u8, at: OffsetDateTime) {
    if let Some(s) = c.csat.as_mut() {
        s.score = Some(score);
        s.answered_at = Some(at);
    }
    record_survey_answer(c, at);
}

/// A survey's answer joins a conversation without reopening, routing or timing it.
pub fn record_survey_answer(c: &mut Conversation, at: OffsetDateTime) {
    c.message_count = c.message_count.saturating_add(1);
    c.last_activity_at = c.last_activity_at.max(at);
    c.version += 1;
}

/// The key that signs rating links, derived from a deployment secret (the API's token secret) so
/// no second secret needs provisioning, and separated from its other use by a fixed label.
pub fn link_key(secret: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(b"switchboard/csat-rating-links/v1");
    m.finalize().into_bytes().to_vec()
}

/// The signed token of one email rating link: the conversation, the score and an expiry, HMAC'd
/// with the workspace-independent link secret. `v1.<ws>.<conversation>.<score>.<expires unix>.<sig>`.
pub fn rating_token(
    secret: &[u8],
    ws: &WorkspaceId,
    conversation: ConversationId,
    score: u8,
    expires: OffsetDateTime,
) -> String {
    let payload = format!("v1.{ws}.{conversation}.{score}.{}", expires.unix_timestamp());
    format!("{payload}.{}", mac(secret, &payload))
}

fn mac(secret: &[u8], payload: &str) -> String {
    use base64::Engine;
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(payload.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
}

/// What a verified rating link says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rating {
    pub workspace: WorkspaceId,
    pub conversation: ConversationId,
    pub score: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("this rating link is not valid")]
    Invalid,
    #[error("this rating link has expired")]
    Expired,
}

/// Checks a rating link's token (constant-time signature comparison, then the expiry).
pub fn verify_rating(secret: &[u8], token: &str, now: OffsetDateTime) -> Result<Rating, TokenError> {
    use subtle::ConstantTimeEq;
    let (payload, sig) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
    let expected = mac(secret, payload);
    if !bool::from(expected.as_bytes().ct_eq(sig.as_bytes())) {
        return Err(TokenError::Invalid);
    }
    let parts: Vec<&str> = payload.split('.').collect();
    let [v, ws, conv, score, expires] = parts.as_slice() else { return Err(TokenError::Invalid) };
    if *v != "v1" {
        return Err(TokenError::Invalid);
    }
    let workspace = WorkspaceId::parse(ws).map_err(|_| TokenError::Invalid)?;
    let conversation = ConversationId::parse(conv).map_err(|_| TokenError::Invalid)?;
    let score: u8 = score.parse().ok().filter(|s| (1..=5).contains(s)).ok_or(TokenError::Invalid)?;
    let expires: i64 = expires.parse().map_err(|_| TokenError::Invalid)?;
    if now.unix_timestamp() > expires {
        return Err(TokenError::Expired);
    }
    Ok(Rating { workspace, conversation, score })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_tap_on_the_whatsapp_list_reads_back_as_its_score() {
        let list = whatsapp_list("How did we do?");
        let rows = list["action"]["sections"][0]["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 5);
        for row in rows {
            let id = row["id"].as_str().unwrap();
            let title = row["title"].as_str().unwrap();
            // Meta's limits: row titles at most 24 characters, descriptions 72, the button 20.
            assert!(title.chars().count() <= 24 && row["description"].as_str().unwrap().len() <= 72);
            assert_eq!(parse_score(title).map(|s| format!("csat:{s}")).as_deref(), Some(id), "{title}");
        }
        assert!(list["action"]["button"].as_str().unwrap().len() <= 20);
        let bad = Policy {
            whatsapp_template: Some(TemplateRef { name: "Bad Name".into(), language: "en".into() }),
            ..Policy::default()
        };
        assert!(bad.validate().unwrap_err().contains("whatsapp_template"));
    }

    #[test]
    fn whole_message_scores_only() {
        for (text, score) in [
            ("4", Some(4)),
            (" 5 ", Some(5)),
            ("3!", Some(3)),
            ("4/5", Some(4)),
            ("4 / 5", Some(4)),
            ("5 stars", Some(5)),
            ("1 star", Some(1)),
            ("2 out of 5", Some(2)),
            ("⭐⭐⭐⭐", Some(4)),
            ("★★★", Some(3)),
            ("⭐️⭐️⭐️⭐️⭐️", Some(5)),
            ("0", None),
            ("6", None),
            ("10", None),
            ("4 items are missing", None),
            ("45", None),
            ("I'd say 4", None),
            ("⭐⭐⭐⭐⭐⭐", None),
            ("", None),
            ("yes", None),
        ] {
            assert_eq!(parse_score(text), score, "{text:?}");
        }
    }

    #[test]
    fn rating_links_verify_once_signed_and_refuse_forgery_and_expiry() {
        let ws = WorkspaceId::parse("acme").unwrap();
        let conv = ConversationId::new();
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let token = rating_token(b"k", &ws, conv, 4, now + Duration::days(7));
        let r = verify_rating(b"k", &token, now).unwrap();
        assert_eq!((r.workspace, r.conversation, r.score), (ws.clone(), conv, 4));
        assert_eq!(verify_rating(b"other", &token, now), Err(TokenError::Invalid));
        let forged = token.replacen(".4.", ".5.", 1);
        assert_eq!(verify_rating(b"k", &forged, now), Err(TokenError::Invalid));
        assert_eq!(verify_rating(b"k", &token, now + Duration::days(8)), Err(TokenError::Expired));
        assert_eq!(verify_rating(b"k", "garbage", now), Err(TokenError::Invalid));
    }

    proptest! {
        #[test]
        fn a_score_is_always_short(s in "\\PC{0,80}") {
            if parse_score(&s).is_some() {
                prop_assert!(s.trim().trim_end_matches(['!', '.', ' ']).trim().chars().count() <= 12, "{s:?}");
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            if let Some(n) = parse_score(&s) {
                prop_assert!((1..=5).contains(&n));
            }
        }
    }
}
