//! The provider cost of one message, from the rate card in force. Pure: the caller supplies what
//! the channel adapter learned (segments, category, window, recipients, duration).
//!
//! Decisions (docs/finance.md):
//! - SMS: segments × (price + carrier fee) for the contact's country and the direction; a message
//!   with media is MMS, priced per message. A failed outbound SMS adds the failed-message fee.
//! - WhatsApp: inbound is free; a free-form (service) reply is free inside the 24-hour window and
//!   impossible outside it (a template is required); a utility template inside the window is free;
//!   other templates are charged by category and recipient country.
//! - Email: per recipient out, per message in. Voicemail: per started minute of the call, of the
//!   recording and (if transcribed) of the transcription.
//! - Messenger, Instagram, Telegram and web chat: no provider charge.

use serde::{Deserialize, Serialize};

use super::money::{round_picos, Currency, Micros, UnitPrice};
use super::ratecard::RateCard;
use crate::model::{Channel, Direction};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WhatsappCategory {
    Marketing,
    Utility,
    Authentication,
    AuthenticationInternational,
}

impl WhatsappCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            WhatsappCategory::Marketing => "marketing",
            WhatsappCategory::Utility => "utility",
            WhatsappCategory::Authentication => "authentication",
            WhatsappCategory::AuthenticationInternational => "authentication_international",
        }
    }
}

/// What a message's price depends on.
#[derive(Clone, Debug, Default)]
pub struct PricingInput {
    pub channel: Option<Channel>,
    pub direction: Option<Direction>,
    /// `twilio`, `meta`, `ses`, …
    pub provider: String,
    /// The contact's country (ISO 3166 alpha-2) for phone channels.
    pub country: Option<String>,
    pub sms_segments: u32,
    /// An SMS with media is an MMS.
    pub has_media: bool,
    /// `None` for a free-form (service) WhatsApp message.
    pub whatsapp_category: Option<WhatsappCategory>,
    /// Whether the customer wrote on WhatsApp in the last 24 hours.
    pub whatsapp_window_open: bool,
    pub email_recipients: u32,
    pub voicemail_seconds: u32,
    pub transcribed: bool,
}

/// One line of a cost breakdown: `quantity` × `unit_price`, rounded to micros half to even.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CostLine {
    pub item: String,
    pub quantity: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<UnitPrice>,
    pub amount_micros: Micros,
}

impl CostLine {
    pub fn priced(item: impl Into<String>, quantity: u64, unit_price: UnitPrice) -> CostLine {
        CostLine {
            item: item.into(),
            quantity,
            unit_price: Some(unit_price),
            amount_micros: round_picos(unit_price.times(quantity)),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Estimate {
    pub currency: Currency,
    pub rate_card_version: u32,
    pub provider_micros: Micros,
    pub lines: Vec<CostLine>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PricingError {
    #[error("rate card version {version} has no {what} rate; add one (or a \"*\" country) to the rate card")]
    NoRate { version: u32, what: String },
    #[error(
        "the WhatsApp customer-service window is closed (the customer last wrote more than 24 hours ago): a free-form message cannot be sent; send an approved template instead"
    )]
    TemplateRequired,
    #[error("the channel and direction of the message are required")]
    Incomplete,
}

fn minutes(seconds: u32) -> u64 {
    u64::from(seconds).div_ceil(60)
}

pub fn estimate(card: &RateCard, input: &PricingInput) -> Result<Estimate, PricingError> {
    let (Some(channel), Some(direction)) = (input.channel, input.direction) else {
        return Err(PricingError::Incomplete);
    };
    let no_rate = |what: String| PricingError::NoRate { version: card.version, what };
    let country = input.country.as_deref();
    let dir = match direction {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    };
    let mut lines = Vec::new();
    match channel {
        Channel::Sms if input.has_media => {
            let r = card
                .mms(&input.provider, country, direction)
                .ok_or_else(|| no_rate(format!("{} MMS {dir} {}", input.provider, country.unwrap_or("*"))))?;
            lines.push(CostLine::priced(format!("mms {dir} {}", r.country), 1, r.per_message));
            if !r.carrier_fee_per_message.is_zero() {
                lines.push(CostLine::priced("mms carrier fee", 1, r.carrier_fee_per_message));
            }
        }
        Channel::Sms => {
            let r = card
                .sms(&input.provider, country, direction)
                .ok_or_else(|| no_rate(format!("{} SMS {dir} {}", input.provider, country.unwrap_or("*"))))?;
            let segments = u64::from(input.sms_segments.max(1));
            lines.push(CostLine::priced(format!("sms {dir} {} segment", r.country), segments, r.per_segment));
            if !r.carrier_fee_per_segment.is_zero() {
                lines.push(CostLine::priced("sms carrier fee per segment", segments, r.carrier_fee_per_segment));
            }
        }
        Channel::Whatsapp => match (direction, input.whatsapp_category) {
            (Direction::Inbound, _) => lines.push(CostLine::priced("whatsapp inbound (free)", 1, UnitPrice::ZERO)),
            (Direction::Outbound, None) if input.whatsapp_window_open => {
                lines.push(CostLine::priced("whatsapp service message in window (free)", 1, UnitPrice::ZERO))
            }
            (Direction::Outbound, None) => return Err(PricingError::TemplateRequired),
            (Direction::Outbound, Some(WhatsappCategory::Utility)) if input.whatsapp_window_open => {
                lines.push(CostLine::priced("whatsapp utility template in window (free)", 1, UnitPrice::ZERO))
            }
            (Direction::Outbound, Some(cat)) => {
                let r =
                    card.whatsapp(country).ok_or_else(|| no_rate(format!("WhatsApp {}", country.unwrap_or("*"))))?;
                let price = match cat {
                    WhatsappCategory::Marketing => r.marketing,
                    WhatsappCategory::Utility => r.utility,
                    WhatsappCategory::Authentication => r.authentication,
                    WhatsappCategory::AuthenticationInternational => {
                        r.authentication_international.unwrap_or(r.authentication)
                    }
                };
                lines.push(CostLine::priced(format!("whatsapp {} template {}", cat.as_str(), r.country), 1, price));
            }
        },
        Channel::Email => match direction {
            Direction::Outbound => lines.push(CostLine::priced(
                "email per recipient",
                u64::from(input.email_recipients.max(1)),
                card.email.outbound_per_recipient,
            )),
            Direction::Inbound => lines.push(CostLine::priced("email received", 1, card.email.inbound_per_message)),
        },
        Channel::Voice => {
            let m = minutes(input.voicemail_seconds).max(1);
            lines.push(CostLine::priced("voice call minute", m, card.voicemail.per_minute));
            lines.push(CostLine::priced("recording minute", m, card.voicemail.recording_per_minute));
            if input.transcribed {
                lines.push(CostLine::priced("transcription minute", m, card.voicemail.transcription_per_minute));
            }
        }
        Channel::Messenger | Channel::Instagram | Channel::Telegram | Channel::Webchat => {
            lines.push(CostLine::priced(format!("{channel} (no provider charge)"), 1, UnitPrice::ZERO))
        }
    }
    Ok(Estimate {
        currency: card.currency.clone(),
        rate_card_version: card.version,
        provider_micros: lines.iter().map(|l| l.amount_micros).sum(),
        lines,
    })
}

/// The fee a provider charges for an outbound SMS that failed, if the card names one.
pub fn failed_fee(card: &RateCard, provider: &str, country: Option<&str>) -> Option<CostLine> {
    let r = card.sms(provider, country, Direction::Outbound)?;
    (!r.failed_fee.is_zero()).then(|| CostLine::priced("sms failed-message fee", 1, r.failed_fee))
}

/// Whether a channel costs anything from its provider (the budget hard stop only refuses these).
pub fn is_paid(channel: Channel) -> bool {
    matches!(channel, Channel::Sms | Channel::Whatsapp | Channel::Email | Channel::Voice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sms(direction: Direction, country: &str, segments: u32) -> PricingInput {
        PricingInput {
            channel: Some(Channel::Sms),
            direction: Some(direction),
            provider: "twilio".into(),
            country: Some(country.into()),
            sms_segments: segments,
            ..PricingInput::default()
        }
    }

    fn wa(category: Option<WhatsappCategory>, window_open: bool, country: &str) -> PricingInput {
        PricingInput {
            channel: Some(Channel::Whatsapp),
            direction: Some(Direction::Outbound),
            provider: "meta".into(),
            country: Some(country.into()),
            whatsapp_category: category,
            whatsapp_window_open: window_open,
            ..PricingInput::default()
        }
    }

    #[test]
    fn sms_is_segments_times_price_plus_carrier_fee() {
        let card = RateCard::builtin();
        let e = estimate(&card, &sms(Direction::Outbound, "US", 3)).unwrap();
        // 3 × 0.0083 + 3 × 0.003 = 0.0339
        assert_eq!(e.provider_micros, 33_900);
        assert_eq!(e.lines.len(), 2);
        assert_eq!(e.rate_card_version, 0);
        let gb = estimate(&card, &sms(Direction::Outbound, "GB", 1)).unwrap();
        assert_eq!(gb.provider_micros, 52_400);
        // No rate for Japan: the "*" rate applies.
        assert_eq!(estimate(&card, &sms(Direction::Outbound, "JP", 2)).unwrap().provider_micros, 200_000);
        let inbound = estimate(&card, &sms(Direction::Inbound, "US", 1)).unwrap();
        assert_eq!(inbound.provider_micros, 10_800);
    }

    #[test]
    fn mms_is_per_message() {
        let mut i = sms(Direction::Outbound, "US", 4);
        i.has_media = true;
        assert_eq!(estimate(&RateCard::builtin(), &i).unwrap().provider_micros, 27_000);
    }

    #[test]
    fn whatsapp_window_rules() {
        let card = RateCard::builtin();
        assert_eq!(estimate(&card, &wa(None, true, "US")).unwrap().provider_micros, 0);
        assert_eq!(estimate(&card, &wa(None, false, "US")), Err(PricingError::TemplateRequired));
        assert_eq!(estimate(&card, &wa(Some(WhatsappCategory::Utility), true, "US")).unwrap().provider_micros, 0);
        assert_eq!(estimate(&card, &wa(Some(WhatsappCategory::Utility), false, "US")).unwrap().provider_micros, 4_000);
        assert_eq!(
            estimate(&card, &wa(Some(WhatsappCategory::Marketing), true, "US")).unwrap().provider_micros,
            25_000
        );
        assert_eq!(
            estimate(&card, &wa(Some(WhatsappCategory::AuthenticationInternational), false, "IN"))
                .unwrap()
                .provider_micros,
            28_000
        );
        // Without an international price the domestic authentication price applies.
        assert_eq!(
            estimate(&card, &wa(Some(WhatsappCategory::AuthenticationInternational), false, "US"))
                .unwrap()
                .provider_micros,
            13_500
        );
        let mut inbound = wa(None, false, "US");
        inbound.direction = Some(Direction::Inbound);
        assert_eq!(estimate(&card, &inbound).unwrap().provider_micros, 0);
    }

    #[test]
    fn email_voicemail_and_free_channels() {
        let card = RateCard::builtin();
        let mut e = PricingInput {
            channel: Some(Channel::Email),
            direction: Some(Direction::Outbound),
            provider: "ses".into(),
            email_recipients: 3,
            ..PricingInput::default()
        };
        assert_eq!(estimate(&card, &e).unwrap().provider_micros, 300);
        e.direction = Some(Direction::Inbound);
        assert_eq!(estimate(&card, &e).unwrap().provider_micros, 100);
        let v = PricingInput {
            channel: Some(Channel::Voice),
            direction: Some(Direction::Inbound),
            provider: "twilio".into(),
            voicemail_seconds: 61,
            transcribed: true,
            ..PricingInput::default()
        };
        // Two started minutes × (0.0085 + 0.0025 + 0.05)
        assert_eq!(estimate(&card, &v).unwrap().provider_micros, 122_000);
        for c in [Channel::Messenger, Channel::Instagram, Channel::Telegram, Channel::Webchat] {
            let i = PricingInput { channel: Some(c), direction: Some(Direction::Outbound), ..PricingInput::default() };
            assert_eq!(estimate(&card, &i).unwrap().provider_micros, 0);
            assert!(!is_paid(c));
        }
    }

    #[test]
    fn missing_rates_are_explained() {
        let mut card = RateCard::builtin();
        card.sms.retain(|r| r.country != "*");
        let err = estimate(&card, &sms(Direction::Outbound, "JP", 1)).unwrap_err();
        assert!(err.to_string().contains("no twilio SMS outbound JP rate"), "{err}");
        assert_eq!(failed_fee(&RateCard::builtin(), "twilio", Some("US")).unwrap().amount_micros, 1_000);
    }
}
