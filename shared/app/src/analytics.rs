//! Analytics: the notifier forwards the events analytics counts to the analytics queue (one
//! `SendMessageBatch` per notifier batch), and the aggregator turns a batch of them into facts
//! ([`facts_of`]) and applies them together ([`apply`]: one read and one transaction per 25
//! facts) to the hourly aggregates (`domain::analytics`), each fact once.

use domain::analytics::{Fact, FactKind};
use domain::events::{ConversationChange, Notification};
use domain::model::{Channel, Conversation, DeliveryStatus, Direction, Sender};
use domain::ports::{AnalyticsStore, ConversationReader, StoreError};
use time::OffsetDateTime;

pub use domain::analytics::AnalyticsEvent;

use crate::Error;

/// Whether analytics counts anything of this notification (live-only events are not forwarded).
pub fn counts(n: &Notification) -> bool {
    match n {
        Notification::MessageCreated { direction, .. } => *direction == Direction::Inbound,
        Notification::DeliveryStatusChanged { status, .. } => *status == DeliveryStatus::Sent,
        Notification::ConversationChanged { change, .. } => {
            matches!(change, ConversationChange::Assigned | ConversationChange::Resolved | ConversationChange::Reopened)
        }
        Notification::CsatReceived { comment, .. } => comment.is_none(),
        Notification::SlaWarning { .. } | Notification::SlaBreached { .. } => true,
        Notification::PresenceChanged { online, .. } => online.is_some(),
        _ => false,
    }
}

fn channel_of(c: &Conversation) -> Option<Channel> {
    c.last_inbound.as_ref().map(|r| r.channel)
}

fn seconds(from: OffsetDateTime, to: OffsetDateTime) -> f64 {
    ((to - from).as_seconds_f64()).max(0.0)
}

/// The facts one event stands for, read from the conversation (and message) it is about.
pub async fn facts_of<S: ConversationReader + ?Sized>(store: &S, e: &AnalyticsEvent) -> Result<Vec<Fact>, Error> {
    let ws = e.event.workspace().clone();
    let fact = |id: String, channel: Channel, c: Option<&Conversation>, kind: FactKind| Fact {
        id,
        workspace: ws.clone(),
        at: e.at,
        channel: Some(channel),
        agent: c.and_then(|c| c.assignee.as_ref()).map(|a| a.to_string()),
        team: c.and_then(|c| c.team.as_ref()).map(|t| t.to_string()),
        kind,
    };
    let mut out = vec![];
    match &e.event {
        Notification::MessageCreated { conversation_id, message_id, channel, opened, .. } => {
            out.push(fact(format!("in:{message_id}"), *channel, None, FactKind::MessageIn));
            if *opened {
                out.push(fact(format!("created:{conversation_id}"), *channel, None, FactKind::ConversationCreated));
            }
            // The customer moved here from another channel of the same conversation.
            if let Some(c) = store.conversation(&ws, *conversation_id).await? {
                let from = c
                    .channels
                    .iter()
                    .filter(|(ch, seen)| *ch != channel && seen.at.is_some())
                    .max_by_key(|(_, seen)| seen.at);
                if let Some((from, _)) = from {
                    let kind = FactKind::ChannelMigration { from: *from };
                    out.push(fact(format!("moved:{conversation_id}:{channel}"), *channel, Some(&c), kind));
                }
            }
        }
        Notification::DeliveryStatusChanged { conversation_id, message_id, .. } => {
            let (Some(c), Some(m)) = store.conversation_with_message(&ws, *conversation_id, *message_id).await? else {
                return Ok(out);
            };
            if m.direction != Direction::Outbound {
                return Ok(out);
            }
            let mut f = fact(format!("out:{message_id}"), m.route.channel, Some(&c), FactKind::MessageOut);
            if let Sender::Agent { id } = &m.sender {
                f.agent = Some(id.to_string());
            }
            out.push(f);
            if let (Sender::Agent { id }, Some(first)) = (&m.sender, c.sla.first_response_at) {
                let mut f = fact(
                    format!("frt:{conversation_id}"),
                    m.route.channel,
                    Some(&c),
                    FactKind::FirstResponse { seconds: seconds(c.created_at, first) },
                );
                f.agent = Some(id.to_string());
                out.push(f);
            }
        }
        Notification::ConversationChanged { conversation_id, change, version, assignee, load, .. } => {
            let Some(c) = store.conversation(&ws, *conversation_id).await? else { return Ok(out) };
            let Some(channel) = channel_of(&c) else { return Ok(out) };
            let id = |what: &str| format!("{what}:{conversation_id}:{version}");
            match change {
                ConversationChange::Assigned => {
                    let mut f = fact(id("assigned"), channel, Some(&c), FactKind::Assigned { load: *load });
                    f.agent = assignee.as_ref().map(|a| a.to_string());
                    out.push(f);
                }
                ConversationChange::Resolved => {
                    let at = c.sla.resolved_at.unwrap_or(e.at);
                    let kind = FactKind::Resolved { seconds: seconds(c.created_at, at) };
                    out.push(fact(id("resolved"), channel, Some(&c), kind));
                }
                ConversationChange::Reopened => out.push(fact(id("reopened"), channel, Some(&c), FactKind::Reopened)),
                _ => {}
            }
        }
        Notification::CsatReceived { conversation_id, score, channel, comment: None, .. } => {
            let c = store.conversation(&ws, *conversation_id).await?;
            out.push(fact(format!("csat:{conversation_id}"), *channel, c.as_ref(), FactKind::Csat { score: *score }));
        }
        Notification::SlaWarning { conversation_id, .. } | Notification::SlaBreached { conversation_id, .. } => {
            let Some(c) = store.conversation(&ws, *conversation_id).await? else { return Ok(out) };
            let Some(channel) = channel_of(&c) else { return Ok(out) };
            let kind = if matches!(e.event, Notification::SlaWarning { .. }) {
                FactKind::SlaWarning
            } else {
                FactKind::SlaBreach
            };
            out.push(fact(e.event.dedup_id(), channel, Some(&c), kind));
        }
        Notification::PresenceChanged { agent, online: Some(period), id, .. } => {
            // Online time per hour of the period: utilisation's denominator.
            for (at, seconds) in domain::analytics::online_pieces(period.since, period.until) {
                out.push(Fact {
                    id: format!("online:{id}:{}", domain::analytics::hour_of(at)),
                    workspace: ws.clone(),
                    at,
                    channel: None,
                    agent: Some(agent.to_string()),
                    team: None,
                    kind: FactKind::Online { seconds },
                });
            }
        }
        _ => {}
    }
    Ok(out)
}

/// How many times applying a batch's facts is tried while its aggregates keep changing.
const ATTEMPTS: u32 = 8;

/// Applies facts (a whole batch's); returns how many counted (the rest were counted before).
pub async fn apply<S: AnalyticsStore + ?Sized>(store: &S, facts: &[Fact]) -> Result<usize, Error> {
    for attempt in 0..ATTEMPTS {
        crate::pause(attempt).await;
        match store.apply_facts(facts).await {
            Ok(n) => return Ok(n),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Contended("analytics aggregates kept changing".into()))
}
