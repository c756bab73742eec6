//! Finance: what every message costs and why.
//!
//! - [`money`]: integer micro-units with a currency, unit prices exact to 1e-12, one rounding rule.
//! - [`ratecard`]: dated, versioned rate cards (built-in defaults plus a workspace's own versions).
//! - [`pricing`]: the provider cost of one message on its channel, and the AWS share of its usage.
//! - [`usage`]: the AWS requests and capacity one message's pipeline spent.
//! - [`ledger`]: immutable cost entries and the counters they add to.
//! - [`budget`]: monthly budgets, thresholds and the hard stop.
//!
//! Everything here is pure; the store keeps entries and counters, the functions decide when.

pub mod budget;
pub mod ledger;
pub mod money;
pub mod pricing;
pub mod ratecard;
pub mod report;
pub mod service;
pub mod usage;

pub use budget::{Budget, BudgetScope};
pub use ledger::{Dimension, EntryKind, LedgerEntry, MessageCost, Totals};
pub use money::{Currency, Micros, UnitPrice};
pub use pricing::{CostLine, Estimate, PricingError, PricingInput, WhatsappCategory};
pub use ratecard::RateCard;
pub use usage::Usage;

use crate::ids::{AgentId, ContactId};
use crate::model::Message;

/// What pricing one message needs beyond the message itself.
pub struct Costing<'a> {
    pub card: &'a RateCard,
    pub contact: ContactId,
    /// The agent who sent it, or the conversation's assignee for an inbound message.
    pub agent: Option<AgentId>,
    pub team: Option<String>,
    /// AWS usage measured up to the write that records the estimate.
    pub usage: Usage,
    pub whatsapp_window_open: bool,
    /// When the estimate is recorded (the caller's clock: the domain reads none).
    pub now: time::OffsetDateTime,
}

/// The pricing input a message implies: its channel and direction, the contact's country (phone
/// channels), its SMS segments (as computed when it was sent, as Twilio counted them when it was
/// received, or computed from the text), media, WhatsApp category, recipients, recording length.
pub fn pricing_input(m: &Message, whatsapp_window_open: bool) -> PricingInput {
    let meta_u32 =
        |k: &str| m.metadata.get(k).and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
    let sms_segments = meta_u32("sms_segments")
        .or_else(|| meta_u32("NumSegments"))
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        .unwrap_or_else(|| crate::sms::segment(m.text.as_deref().unwrap_or("")).segments);
    let whatsapp_category =
        m.metadata.get("whatsapp_category").and_then(|v| serde_json::from_value::<WhatsappCategory>(v.clone()).ok());
    PricingInput {
        channel: Some(m.channel),
        direction: Some(m.direction),
        provider: m.provider.clone().unwrap_or_else(|| default_provider(m.channel).to_owned()),
        // Learned by the webhook, which parses the number anyway. Parsing it again here would load
        // libphonenumber's metadata (~2 MiB, ~200 ms on a cold start) into every function that
        // prices; a route without a country is priced at the card's "*" rate.
        country: m.route.contact_country.clone(),
        sms_segments,
        has_media: !m.attachments.is_empty(),
        whatsapp_category,
        whatsapp_window_open,
        email_recipients: meta_u32("email_recipients").map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        voicemail_seconds: meta_u32("recording_seconds").map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        transcribed: m.metadata.contains_key("transcription_sid"),
    }
}

/// The provider a channel sends through when the message does not name one yet.
pub fn default_provider(channel: crate::model::Channel) -> &'static str {
    use crate::model::Channel::*;
    match channel {
        Sms | Voice => "twilio",
        Whatsapp | Messenger | Instagram => "meta",
        Email => "ses",
        Telegram => "telegram",
        Webchat => "switchboard",
    }
}

/// A message's cost estimate: the summary kept on the message and the ledger entry that counts it.
///
/// Refuses only what cannot be sent (a free-form WhatsApp message outside the window). A message
/// with no rate on the card is still stored and counted, at zero, with an `unpriced` line saying
/// which rate is missing, so finance sees it instead of losing it.
pub fn estimate_message(m: &Message, c: Costing<'_>) -> Result<(MessageCost, LedgerEntry), PricingError> {
    let input = pricing_input(m, c.whatsapp_window_open);
    let mut estimate = match pricing::estimate(c.card, &input) {
        Ok(e) => e,
        Err(e @ PricingError::NoRate { .. }) => Estimate {
            currency: c.card.currency.clone(),
            rate_card_version: c.card.version,
            provider_micros: 0,
            lines: vec![CostLine { item: format!("unpriced: {e}"), quantity: 1, unit_price: None, amount_micros: 0 }],
        },
        Err(e) => return Err(e),
    };
    let aws = c.usage.cost(&c.card.aws);
    let aws_micros = aws.amount_micros;
    estimate.lines.push(aws);
    let totals = Totals { messages: 1, provider_micros: estimate.provider_micros, aws_micros, ..Totals::default() };
    let cost = MessageCost {
        contact_id: c.contact,
        agent: c.agent.clone(),
        team: c.team.clone(),
        currency: estimate.currency.clone(),
        rate_card_version: estimate.rate_card_version,
        provider_micros: estimate.provider_micros,
        aws_micros,
        actual_micros: None,
        lines: estimate.lines.clone(),
    };
    let entry = LedgerEntry {
        workspace: m.workspace.clone(),
        kind: EntryKind::Estimate,
        message_id: m.id,
        conversation_id: m.conversation_id,
        contact_id: c.contact,
        agent: c.agent,
        team: c.team,
        channel: m.channel,
        direction: m.direction,
        message_at: m.created_at,
        recorded_at: c.now,
        currency: estimate.currency,
        rate_card_version: estimate.rate_card_version,
        totals,
        lines: estimate.lines,
        usage: Some(c.usage),
    };
    Ok((cost, entry))
}

/// A later entry for a message already costed (usage, actual price, failed fee), in its currency
/// and rate-card version, placed in the message's month.
pub fn follow_up_entry(
    m: &Message,
    kind: EntryKind,
    totals: Totals,
    lines: Vec<CostLine>,
    usage: Option<Usage>,
    now: time::OffsetDateTime,
) -> Option<LedgerEntry> {
    let cost = m.cost.as_ref()?;
    Some(LedgerEntry {
        workspace: m.workspace.clone(),
        kind,
        message_id: m.id,
        conversation_id: m.conversation_id,
        contact_id: cost.contact_id,
        agent: cost.agent.clone(),
        team: cost.team.clone(),
        channel: m.channel,
        direction: m.direction,
        message_at: m.created_at,
        recorded_at: now,
        currency: cost.currency.clone(),
        rate_card_version: cost.rate_card_version,
        totals,
        lines,
        usage,
    })
}
