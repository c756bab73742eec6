//! Money is integer micro-units (1e-6 of the currency's major unit) with an ISO 4217 code; never
//! floating point. Unit prices are exact to 1e-12 ("picos") because AWS prices are fractions of a
//! micro-unit per request. Amounts are computed exactly in picos (128-bit) and rounded to micros
//! once per cost line, half to even (banker's rounding), so a ledger sums without drift.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ParseError;

/// An amount in micro-units of a currency (`1_000_000` = one dollar).
pub type Micros = i64;

pub const PICOS_PER_MICRO: i128 = 1_000_000;
const PICO_DIGITS: usize = 12;

/// An ISO 4217 currency code: three upper-case letters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

crate::string_schema!(Currency, "An ISO 4217 currency code (USD)");

impl Currency {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::Invalid { kind: "currency", reason: format!("{s:?} is not an ISO 4217 code like USD") })
        }
    }
    pub fn usd() -> Self {
        Self("USD".into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Currency {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}
impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.0
    }
}
impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A non-negative price per unit, written as a decimal string (`"0.0083"`) in rate cards and exact
/// to 12 decimal places.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UnitPrice {
    picos: i64,
}

crate::string_schema!(UnitPrice, "A price as a decimal string, exact to a millionth (0.0079)");

impl UnitPrice {
    pub const ZERO: UnitPrice = UnitPrice { picos: 0 };

    pub fn from_picos(picos: i64) -> Self {
        Self { picos: picos.max(0) }
    }
    pub fn picos(self) -> i64 {
        self.picos
    }
    pub fn is_zero(self) -> bool {
        self.picos == 0
    }

    /// Parses `"0.0083"`, `"12"`, `"0.000000200000"`; refuses signs, exponents and more than 12
    /// decimal places (a price we could not represent exactly).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let invalid = |reason: &str| ParseError::Invalid { kind: "price", reason: format!("{s:?}: {reason}") };
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("expected a non-negative decimal such as 0.0083"));
        }
        if s.ends_with('.') {
            return Err(invalid("expected digits after the decimal point"));
        }
        if frac.len() > PICO_DIGITS {
            return Err(invalid("at most 12 decimal places"));
        }
        let int: i64 = int.parse().map_err(|_| invalid("too large"))?;
        let frac_picos: i64 =
            if frac.is_empty() { 0 } else { format!("{frac:0<12}").parse().map_err(|_| invalid("bad fraction"))? };
        int.checked_mul(1_000_000_000_000)
            .and_then(|p| p.checked_add(frac_picos))
            .map(|picos| Self { picos })
            .ok_or_else(|| invalid("too large"))
    }

    /// `quantity` units at this price, exactly, in picos.
    pub fn times(self, quantity: u64) -> i128 {
        i128::from(self.picos) * i128::from(quantity)
    }
}

impl TryFrom<String> for UnitPrice {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}
impl From<UnitPrice> for String {
    fn from(p: UnitPrice) -> String {
        p.to_string()
    }
}
impl fmt::Display for UnitPrice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let int = self.picos / 1_000_000_000_000;
        let frac = self.picos % 1_000_000_000_000;
        if frac == 0 {
            return write!(f, "{int}");
        }
        let digits = format!("{frac:012}");
        write!(f, "{int}.{}", digits.trim_end_matches('0'))
    }
}

/// Picos to micros, half to even: 2.5 → 2, 3.5 → 4, -2.5 → -2.
pub fn round_picos(picos: i128) -> Micros {
    let q = picos.div_euclid(PICOS_PER_MICRO);
    let r = picos.rem_euclid(PICOS_PER_MICRO);
    let half = PICOS_PER_MICRO / 2;
    let rounded = if r > half || (r == half && q % 2 != 0) { q + 1 } else { q };
    Micros::try_from(rounded).unwrap_or(if rounded > 0 { Micros::MAX } else { Micros::MIN })
}

/// `12345` → `"0.012345"`, `-1500000` → `"-1.500000"`: micros as a fixed six-decimal string for
/// reports and CSV (exact, no floating point).
pub fn format_micros(m: Micros) -> String {
    let sign = if m < 0 { "-" } else { "" };
    let a = m.unsigned_abs();
    format!("{sign}{}.{:06}", a / 1_000_000, a % 1_000_000)
}

/// A provider's decimal amount (`"-0.00790"`, Twilio reports charges as negatives) as micros,
/// rounded half to even; the sign is dropped because a price is a cost.
pub fn parse_amount_micros(s: &str) -> Result<Micros, ParseError> {
    let t = s.trim();
    let unsigned = t.strip_prefix('-').or_else(|| t.strip_prefix('+')).unwrap_or(t);
    Ok(round_picos(i128::from(UnitPrice::parse(unsigned)?.picos)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prices_parse_exactly_and_print_back() {
        assert_eq!(UnitPrice::parse("0.0083").unwrap().picos(), 8_300_000_000);
        assert_eq!(UnitPrice::parse("0.0000133334").unwrap().picos(), 13_333_400);
        assert_eq!(UnitPrice::parse("12").unwrap().picos(), 12_000_000_000_000);
        assert_eq!(UnitPrice::parse("0.0083").unwrap().to_string(), "0.0083");
        assert_eq!(UnitPrice::parse("3.000").unwrap().to_string(), "3");
        for bad in ["", "-1", "1e-3", "0.0000000000001", ".5", "5.", "1,5", "NaN", " 1"] {
            assert!(UnitPrice::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rounding_is_half_to_even() {
        let p = PICOS_PER_MICRO;
        assert_eq!(round_picos(0), 0);
        assert_eq!(round_picos(p / 2), 0);
        assert_eq!(round_picos(p / 2 + 1), 1);
        assert_eq!(round_picos(3 * p / 2), 2);
        assert_eq!(round_picos(5 * p / 2), 2);
        assert_eq!(round_picos(7 * p / 2), 4);
        assert_eq!(round_picos(-5 * p / 2), -2);
        assert_eq!(round_picos(p - 1), 1);
    }

    #[test]
    fn micros_format_fixed_six_places() {
        assert_eq!(format_micros(12_345), "0.012345");
        assert_eq!(format_micros(-1_500_000), "-1.500000");
        assert_eq!(format_micros(0), "0.000000");
    }

    #[test]
    fn provider_amounts_are_costs() {
        assert_eq!(parse_amount_micros("-0.00790").unwrap(), 7_900);
        assert_eq!(parse_amount_micros("0.0075").unwrap(), 7_500);
        assert_eq!(parse_amount_micros("-0.0000005").unwrap(), 0);
        assert!(parse_amount_micros("abc").is_err());
        assert!(Currency::parse("usd").is_err());
        assert_eq!(Currency::parse("EUR").unwrap().as_str(), "EUR");
    }

    proptest! {
        #[test]
        fn price_strings_round_trip(picos in 0i64..1_000_000_000_000_000) {
            let p = UnitPrice::from_picos(picos);
            prop_assert_eq!(UnitPrice::parse(&p.to_string()).unwrap(), p);
        }

        #[test]
        fn rounding_is_within_half_a_micro(picos in -1_000_000_000_000i128..1_000_000_000_000) {
            let m = i128::from(round_picos(picos));
            prop_assert!((m * PICOS_PER_MICRO - picos).abs() <= PICOS_PER_MICRO / 2);
        }
    }
}
