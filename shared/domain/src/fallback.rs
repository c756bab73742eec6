//! Re-sending a reply that failed on its channel on another channel the customer has (seed: one
//! person, many channels). A workspace's policy names, per channel, where a failed reply goes next
//! (`{"whatsapp": ["sms", "email"], "sms": ["email"]}`); an agent can also re-send by hand. Each
//! re-send names the message it re-sends (`resend_of`) and the channels its chain has tried
//! (`fallback_tried`), so a chain never loops and the thread shows what happened.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::ParseError;
use crate::model::Conversation;
use crate::model::{Channel, DeliveryStatus, Direction, Message};

/// Metadata keys of a re-send.
pub const RESEND_OF: &str = "resend_of";
pub const TRIED: &str = "fallback_tried";

/// The channels a reply can fall back between: every channel text goes out on (not voice).
fn text_channel(c: Channel) -> bool {
    c != Channel::Voice
}
/// The most fallbacks one channel may list.
pub const MAX_FALLBACKS: usize = 4;

/// A workspace's policy: for each channel, where its failed replies go next, in order.
pub type Policy = BTreeMap<Channel, Vec<Channel>>;

/// Checks a policy: text channels only, none falling back to itself, no repeats.
pub fn validated(policy: Policy) -> Result<Policy, ParseError> {
    let invalid = |reason: String| ParseError::Invalid { kind: "fallback", reason };
    for (from, to) in &policy {
        if !text_channel(*from) {
            return Err(invalid(format!("{from} replies cannot fall back")));
        }
        if to.is_empty() || to.len() > MAX_FALLBACKS {
            return Err(invalid(format!("{from}: 1 to {MAX_FALLBACKS} channels")));
        }
        for (i, ch) in to.iter().enumerate() {
            if !text_channel(*ch) || ch == from || to[..i].contains(ch) {
                return Err(invalid(format!(
                    "{from}: {ch} cannot be a fallback here (itself, repeated, or not a text channel)"
                )));
            }
        }
    }
    Ok(policy)
}

/// Why a message cannot be re-sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotResendable {
    #[error("only our replies are re-sent")]
    NotOutbound,
    #[error("the message has not failed (it is {0})")]
    NotFailed(&'static str),
    #[error("{0} content is particular to its channel and is not re-sent")]
    ChannelSpecific(String),
    #[error("the message was already tried on {0}")]
    AlreadyTried(Channel),
}

/// The channels a message's chain has been tried on (its own included).
pub fn tried(m: &Message) -> Vec<Channel> {
    let mut tried: Vec<Channel> = m
        .metadata
        .get(TRIED)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|c| serde_json::from_value(c.clone()).ok()).collect())
        .unwrap_or_default();
    if !tried.contains(&m.channel) {
        tried.push(m.channel);
    }
    tried
}

/// Whether `m` may be re-sent on `to`: one of our replies that failed, with content any channel
/// carries (text and files; a template's text), not yet tried there.
pub fn check(m: &Message, to: Channel) -> Result<(), NotResendable> {
    if m.direction != Direction::Outbound {
        return Err(NotResendable::NotOutbound);
    }
    if !matches!(m.status, DeliveryStatus::Failed | DeliveryStatus::Undelivered) {
        return Err(NotResendable::NotFailed(m.status.as_str()));
    }
    if let Some(kind) = m.rich.as_ref().and_then(Value::as_object).and_then(|r| r.keys().find(|k| *k != "template")) {
        return Err(NotResendable::ChannelSpecific(kind.clone()));
    }
    if tried(m).contains(&to) {
        return Err(NotResendable::AlreadyTried(to));
    }
    Ok(())
}

/// Where the policy sends a failed message next: the first of its channel's fallbacks the chain
/// has not tried that `reachable` accepts (the conversation has a route there, consent and the
/// channel's window allow it).
pub fn next_channel(policy: &Policy, m: &Message, reachable: impl Fn(Channel) -> bool) -> Option<Channel> {
    policy.get(&m.channel)?.iter().copied().find(|&ch| check(m, ch).is_ok() && reachable(ch))
}

/// Whether the conversation has a route on `channel` a free-form message may take now (the same
/// test the re-send itself passes: Messenger's 7-day human-agent tag is an agent's, not a
/// re-send's).
pub fn routable(c: &Conversation, channel: Channel, now: time::OffsetDateTime) -> bool {
    c.reply_route(Some(channel)).is_ok() && c.free_form_open(channel, now)
}

/// The metadata a re-send of `m` carries.
pub fn resend_metadata(m: &Message) -> BTreeMap<String, Value> {
    BTreeMap::from([
        (RESEND_OF.to_owned(), Value::from(m.id.to_string())),
        (TRIED.to_owned(), serde_json::to_value(tried(m)).unwrap_or_default()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Route, Sender};
    use crate::{ConversationId, WorkspaceId};
    use proptest::prelude::*;

    fn failed(channel: Channel) -> Message {
        let route = Route {
            channel,
            contact_address: "+14155550123".into(),
            our_address: "+14155550100".into(),
            contact_country: None,
        };
        let ws = WorkspaceId::parse("acme").unwrap();
        let mut m = Message::queued_outbound(
            ws,
            ConversationId::new(),
            route,
            Sender::System,
            "Your order shipped",
            BTreeMap::new(),
            time::OffsetDateTime::now_utc(),
        );
        m.status = DeliveryStatus::Failed;
        m
    }

    #[test]
    fn policies_are_checked() {
        let ok = Policy::from([(Channel::Whatsapp, vec![Channel::Sms, Channel::Email])]);
        assert!(validated(ok).is_ok());
        assert!(validated(Policy::from([(Channel::Sms, vec![Channel::Sms])])).is_err());
        assert!(validated(Policy::from([(Channel::Sms, vec![Channel::Email, Channel::Email])])).is_err());
        assert!(validated(Policy::from([(Channel::Voice, vec![Channel::Sms])])).is_err());
        assert!(validated(Policy::from([(Channel::Sms, vec![])])).is_err());
    }

    #[test]
    fn only_failed_replies_with_portable_content_are_resent() {
        let mut m = failed(Channel::Whatsapp);
        assert_eq!(check(&m, Channel::Sms), Ok(()));
        assert_eq!(check(&m, Channel::Whatsapp), Err(NotResendable::AlreadyTried(Channel::Whatsapp)));
        m.rich = Some(serde_json::json!({ "reaction": { "emoji": "👍" } }));
        assert!(matches!(check(&m, Channel::Sms), Err(NotResendable::ChannelSpecific(_))));
        m.rich = Some(serde_json::json!({ "template": { "name": "x" } }));
        assert_eq!(check(&m, Channel::Sms), Ok(()));
        m.status = DeliveryStatus::Delivered;
        assert!(matches!(check(&m, Channel::Sms), Err(NotResendable::NotFailed(_))));
    }

    #[test]
    fn the_policy_takes_the_first_reachable_untried_channel() {
        let policy = Policy::from([
            (Channel::Whatsapp, vec![Channel::Sms, Channel::Email]),
            (Channel::Sms, vec![Channel::Whatsapp, Channel::Email]),
        ]);
        let m = failed(Channel::Whatsapp);
        assert_eq!(next_channel(&policy, &m, |_| true), Some(Channel::Sms));
        assert_eq!(next_channel(&policy, &m, |c| c == Channel::Email), Some(Channel::Email));
        assert_eq!(next_channel(&policy, &m, |_| false), None);
        // The SMS re-send failed too: its chain has tried WhatsApp, so email is next.
        let mut again = failed(Channel::Sms);
        again.metadata = resend_metadata(&m);
        assert_eq!(next_channel(&policy, &again, |_| true), Some(Channel::Email));
        assert!(next_channel(&Policy::new(), &m, |_| true).is_none());
    }

    #[test]
    fn a_channel_is_routable_only_while_a_free_form_message_may_go_there() {
        use crate::model::{Contact, Identity};
        let ws = WorkspaceId::parse("acme").unwrap();
        let now = time::OffsetDateTime::now_utc();
        let two_days_ago = now - time::Duration::days(2);
        let contact = Contact::new(
            ws.clone(),
            Identity::parse(crate::model::IdentityKind::Messenger, "7012").unwrap(),
            None,
            two_days_ago,
        );
        let mut c = Conversation::start(ws, &contact, two_days_ago);
        let route = |channel, addr: &str| Route {
            channel,
            contact_address: addr.into(),
            our_address: "100".into(),
            contact_country: None,
        };
        c.record_inbound(route(Channel::Messenger, "7012"), two_days_ago);
        c.record_inbound(route(Channel::Email, "rui@example.com"), two_days_ago);
        // Messenger's human-agent tag (7 days) is for an agent's reply, not a re-send.
        assert!(!routable(&c, Channel::Messenger, now));
        assert!(routable(&c, Channel::Messenger, two_days_ago + time::Duration::hours(1)));
        assert!(routable(&c, Channel::Email, now));
        assert!(!routable(&c, Channel::Sms, now), "no route there");
    }

    proptest! {
        /// However the policy is written, a chain never returns to a channel it tried: following
        /// it ends within as many steps as there are channels.
        #[test]
        fn chains_never_loop(edges in proptest::collection::vec((0usize..7, 0usize..7), 0..30)) {
            let text: Vec<Channel> = Channel::ALL.into_iter().filter(|c| text_channel(*c)).collect();
            let mut policy = Policy::new();
            for (a, b) in edges {
                let (a, b) = (text[a], text[b]);
                let to = policy.entry(a).or_default();
                if a != b && !to.contains(&b) && to.len() < MAX_FALLBACKS {
                    to.push(b);
                }
            }
            policy.retain(|_, v| !v.is_empty());
            let mut m = failed(Channel::Whatsapp);
            let mut steps = 0;
            while let Some(next) = next_channel(&policy, &m, |_| true) {
                let meta = resend_metadata(&m);
                m = failed(next);
                m.metadata = meta;
                steps += 1;
                prop_assert!(steps < text.len());
            }
        }
    }
}
