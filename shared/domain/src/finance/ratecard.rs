//! Rate cards: dated, versioned price lists. A card never changes in place: a workspace creates a
//! new version with an effective date, and every cost names the version it used. Version 0 is the
//! built-in default (`default_rate_card.json`), effective until a workspace's own version starts.
//!
//! Lookups fall back from the exact country to `"*"` (any country).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::money::{Currency, UnitPrice};
use crate::model::Direction;

pub const ANY_COUNTRY: &str = "*";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SmsRate {
    pub provider: String,
    pub country: String,
    pub direction: Direction,
    pub per_segment: UnitPrice,
    #[serde(default)]
    pub carrier_fee_per_segment: UnitPrice,
    /// Charged when the provider reports the message failed (Twilio's failed-message processing fee).
    #[serde(default)]
    pub failed_fee: UnitPrice,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MmsRate {
    pub provider: String,
    pub country: String,
    pub direction: Direction,
    pub per_message: UnitPrice,
    #[serde(default)]
    pub carrier_fee_per_message: UnitPrice,
}

/// WhatsApp Business per-message prices by template category for a recipient country.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhatsappRate {
    pub country: String,
    pub marketing: UnitPrice,
    pub utility: UnitPrice,
    pub authentication: UnitPrice,
    /// Authentication templates sent by a business outside the recipient's country, where Meta
    /// prices them apart (India, Indonesia, …).
    #[serde(default)]
    pub authentication_international: Option<UnitPrice>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmailRates {
    pub outbound_per_recipient: UnitPrice,
    pub inbound_per_message: UnitPrice,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VoicemailRates {
    /// The inbound call itself, per started minute.
    pub per_minute: UnitPrice,
    pub recording_per_minute: UnitPrice,
    pub transcription_per_minute: UnitPrice,
}

/// AWS unit prices, per single unit (a request, a GB-second, a request unit).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AwsPrices {
    pub lambda_request: UnitPrice,
    pub lambda_gb_second: UnitPrice,
    pub sqs_request: UnitPrice,
    pub dynamodb_read_unit: UnitPrice,
    pub dynamodb_write_unit: UnitPrice,
    pub apigw_http_request: UnitPrice,
    pub websocket_message: UnitPrice,
    pub sfn_transition: UnitPrice,
    pub ses_message: UnitPrice,
    pub s3_put_request: UnitPrice,
    pub s3_get_request: UnitPrice,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RateCard {
    pub version: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub effective_from: OffsetDateTime,
    pub currency: Currency,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub sms: Vec<SmsRate>,
    #[serde(default)]
    pub mms: Vec<MmsRate>,
    pub whatsapp: Vec<WhatsappRate>,
    pub email: EmailRates,
    pub voicemail: VoicemailRates,
    pub aws: AwsPrices,
}

/// What an admin posts to create a version: a whole card without the version number, which the
/// store assigns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateCardDraft {
    #[serde(with = "time::serde::rfc3339")]
    pub effective_from: OffsetDateTime,
    pub currency: Currency,
    #[serde(default)]
    pub note: Option<String>,
    pub sms: Vec<SmsRate>,
    #[serde(default)]
    pub mms: Vec<MmsRate>,
    pub whatsapp: Vec<WhatsappRate>,
    pub email: EmailRates,
    pub voicemail: VoicemailRates,
    pub aws: AwsPrices,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid rate card: {0}")]
pub struct RateCardError(pub String);

fn country_ok(c: &str) -> bool {
    c == ANY_COUNTRY || (c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
}

impl RateCardDraft {
    /// Checks the draft and makes it version `version`.
    pub fn into_card(self, version: u32) -> Result<RateCard, RateCardError> {
        let err = |m: String| Err(RateCardError(m));
        let mut seen = HashSet::new();
        for r in &self.sms {
            if !country_ok(&r.country) {
                return err(format!("sms country {:?} must be an ISO 3166 alpha-2 code or \"*\"", r.country));
            }
            if r.provider.is_empty() {
                return err("sms provider must not be empty".into());
            }
            if !seen.insert(("sms", r.provider.clone(), r.country.clone(), r.direction)) {
                return err(format!("two sms rates for {} {} {:?}", r.provider, r.country, r.direction));
            }
        }
        for r in &self.mms {
            if !country_ok(&r.country) {
                return err(format!("mms country {:?} must be an ISO 3166 alpha-2 code or \"*\"", r.country));
            }
            if !seen.insert(("mms", r.provider.clone(), r.country.clone(), r.direction)) {
                return err(format!("two mms rates for {} {} {:?}", r.provider, r.country, r.direction));
            }
        }
        for r in &self.whatsapp {
            if !country_ok(&r.country) {
                return err(format!("whatsapp country {:?} must be an ISO 3166 alpha-2 code or \"*\"", r.country));
            }
            if !seen.insert(("whatsapp", String::new(), r.country.clone(), Direction::Outbound)) {
                return err(format!("two whatsapp rates for {}", r.country));
            }
        }
        if let Some(n) = &self.note {
            if n.len() > 1000 {
                return err("note is longer than 1000 characters".into());
            }
        }
        Ok(RateCard {
            version,
            effective_from: self.effective_from,
            currency: self.currency,
            note: self.note,
            sms: self.sms,
            mms: self.mms,
            whatsapp: self.whatsapp,
            email: self.email,
            voicemail: self.voicemail,
            aws: self.aws,
        })
    }
}

impl RateCard {
    /// The built-in default card (version 0).
    pub fn builtin() -> RateCard {
        // The file is part of the source and checked by a unit test; it cannot fail at run time.
        serde_json::from_str(include_str!("default_rate_card.json")).expect("built-in rate card is valid")
    }

    pub fn sms(&self, provider: &str, country: Option<&str>, direction: Direction) -> Option<&SmsRate> {
        lookup(&self.sms, country, |r| r.provider == provider && r.direction == direction, |r| &r.country)
    }

    pub fn mms(&self, provider: &str, country: Option<&str>, direction: Direction) -> Option<&MmsRate> {
        lookup(&self.mms, country, |r| r.provider == provider && r.direction == direction, |r| &r.country)
    }

    pub fn whatsapp(&self, country: Option<&str>) -> Option<&WhatsappRate> {
        lookup(&self.whatsapp, country, |_| true, |r| &r.country)
    }
}

fn lookup<'a, T>(
    rates: &'a [T],
    country: Option<&str>,
    matches: impl Fn(&T) -> bool,
    country_of: impl Fn(&T) -> &String,
) -> Option<&'a T> {
    let exact = country.and_then(|c| rates.iter().find(|r| matches(r) && country_of(r) == c));
    exact.or_else(|| rates.iter().find(|r| matches(r) && country_of(r) == ANY_COUNTRY))
}

/// The card in force at `at`: the latest `effective_from` not after `at`, the higher version on a
/// tie. `cards` holds a workspace's versions; the built-in card applies before the first of them.
pub fn effective_at(cards: &[RateCard], at: OffsetDateTime) -> RateCard {
    cards
        .iter()
        .filter(|c| c.effective_from <= at)
        .max_by_key(|c| (c.effective_from, c.version))
        .cloned()
        .unwrap_or_else(RateCard::builtin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn version(v: u32, from: OffsetDateTime, us_outbound: &str) -> RateCard {
        let mut c = RateCard::builtin();
        c.version = v;
        c.effective_from = from;
        c.sms
            .iter_mut()
            .filter(|r| r.country == "US" && r.direction == Direction::Outbound)
            .for_each(|r| r.per_segment = UnitPrice::parse(us_outbound).unwrap());
        c
    }

    #[test]
    fn builtin_card_parses_and_validates() {
        let c = RateCard::builtin();
        assert_eq!(c.version, 0);
        assert_eq!(c.currency.as_str(), "USD");
        let draft: RateCardDraft = serde_json::from_value({
            let mut v = serde_json::to_value(&c).unwrap();
            v.as_object_mut().unwrap().remove("version");
            v
        })
        .unwrap();
        assert_eq!(draft.into_card(0).unwrap(), c);
    }

    #[test]
    fn selection_by_date_takes_the_latest_version_in_force() {
        let cards = vec![
            version(1, datetime!(2026-01-01 0:00 UTC), "0.0100"),
            version(2, datetime!(2026-06-01 0:00 UTC), "0.0200"),
            version(3, datetime!(2026-06-01 0:00 UTC), "0.0300"),
            version(4, datetime!(2027-01-01 0:00 UTC), "0.0400"),
        ];
        assert_eq!(effective_at(&cards, datetime!(2025-12-31 23:59 UTC)).version, 0);
        assert_eq!(effective_at(&cards, datetime!(2026-01-01 0:00 UTC)).version, 1);
        assert_eq!(effective_at(&cards, datetime!(2026-05-31 23:59:59 UTC)).version, 1);
        // Two versions effective the same day: the later version wins.
        assert_eq!(effective_at(&cards, datetime!(2026-11-21 0:00 UTC)).version, 3);
        assert_eq!(effective_at(&cards, datetime!(2027-02-01 0:00 UTC)).version, 4);
    }

    #[test]
    fn country_lookup_falls_back_to_any() {
        let c = RateCard::builtin();
        assert_eq!(c.sms("twilio", Some("GB"), Direction::Outbound).unwrap().country, "GB");
        assert_eq!(c.sms("twilio", Some("JP"), Direction::Outbound).unwrap().country, "*");
        assert_eq!(c.sms("twilio", None, Direction::Inbound).unwrap().country, "*");
        assert!(c.sms("vonage", Some("US"), Direction::Outbound).is_none());
        assert_eq!(c.whatsapp(Some("IN")).unwrap().country, "IN");
        assert_eq!(c.whatsapp(Some("ZZ")).unwrap().country, "*");
    }

    #[test]
    fn drafts_are_validated() {
        let mut v = serde_json::to_value(RateCard::builtin()).unwrap();
        v.as_object_mut().unwrap().remove("version");
        let mut dup: RateCardDraft = serde_json::from_value(v.clone()).unwrap();
        dup.sms.push(dup.sms[0].clone());
        assert!(dup.into_card(1).unwrap_err().0.contains("two sms rates"));
        let mut bad: RateCardDraft = serde_json::from_value(v.clone()).unwrap();
        bad.whatsapp[0].country = "usa".into();
        assert!(bad.into_card(1).is_err());
        v["sms"][0]["per_segment"] = "-0.01".into();
        assert!(serde_json::from_value::<RateCardDraft>(v).is_err());
    }
}
