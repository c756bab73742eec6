//! Redaction: what customers should never have typed — payment card numbers, IBANs, and a
//! workspace's own patterns (a national id, a password format) — masked in the text we store, so
//! the inbox, exports and search only ever see the mask. Cards are checked with Luhn and IBANs with
//! their mod-97 check digits, so order numbers and phone numbers stay readable. The last four
//! characters are kept, which is what an agent needs to tell two cards apart.
//!
//! Pure: the caller passes the workspace's policy.

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

use crate::error::ParseError;

/// A workspace's pattern: what it is called in the mask, and the regular expression it matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Pattern {
    pub name: String,
    pub regex: String,
}

/// What a workspace masks in the text it stores (cards and IBANs by default).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = PrivacyPolicy)]
pub struct Policy {
    #[serde(default = "yes")]
    pub cards: bool,
    #[serde(default = "yes")]
    pub ibans: bool,
    #[serde(default)]
    pub patterns: Vec<Pattern>,
}

fn yes() -> bool {
    true
}

impl Default for Policy {
    fn default() -> Self {
        Policy { cards: true, ibans: true, patterns: vec![] }
    }
}

const MAX_PATTERNS: usize = 20;
const MAX_PATTERN_CHARS: usize = 200;

impl Policy {
    /// Refuses patterns that do not compile, are too long, or could match nothing but emptiness.
    pub fn validate(&self) -> Result<(), ParseError> {
        let bad = |reason: String| ParseError::Invalid { kind: "redaction policy", reason };
        if self.patterns.len() > MAX_PATTERNS {
            return Err(bad(format!("at most {MAX_PATTERNS} patterns")));
        }
        for p in &self.patterns {
            let name_ok = (1..=40).contains(&p.name.chars().count())
                && p.name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
            if !name_ok {
                return Err(bad(format!("pattern name {:?}: 1-40 letters, digits, - or _", p.name)));
            }
            if p.regex.chars().count() > MAX_PATTERN_CHARS {
                return Err(bad(format!("pattern {}: at most {MAX_PATTERN_CHARS} characters", p.name)));
            }
            let re = Regex::new(&p.regex).map_err(|e| bad(format!("pattern {}: {e}", p.name)))?;
            if re.is_match("") {
                return Err(bad(format!("pattern {} matches empty text", p.name)));
            }
        }
        Ok(())
    }
}

/// Text after redaction, and what was masked (`card`, `iban`, a pattern's name), once each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redacted {
    pub text: String,
    pub kinds: Vec<String>,
}

static CARD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b\d(?:[ -]?\d){12,18}\b").expect("a valid card pattern"));
static IBAN: LazyLock<Regex> =
    // Country, check digits, then the groups of four people write (or none), and a short tail.
    LazyLock::new(|| {
        Regex::new(r"(?i)\b[a-z]{2}\d{2}(?: ?[a-z0-9]{4}){2,7}(?: ?[a-z0-9]{1,4})?\b").expect("a valid IBAN pattern")
    });

/// Luhn's checksum over the digits of `s`.
pub fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 13 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// An IBAN's ISO 13616 check: the first four characters moved to the end, letters as 10–35, mod 97.
pub fn iban_valid(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
    if !(15..=34).contains(&compact.len()) || !compact.chars().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    let rearranged = format!("{}{}", &compact[4..], &compact[..4]);
    let mut rem: u32 = 0;
    for c in rearranged.chars() {
        let v = c.to_digit(36).unwrap_or(0);
        for d in v.to_string().chars() {
            rem = (rem * 10 + d.to_digit(10).unwrap_or(0)) % 97;
        }
    }
    rem == 1
}

fn last4(s: &str) -> String {
    let tail: Vec<char> = s.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    tail[tail.len().saturating_sub(4)..].iter().collect()
}

/// `metadata.redacted` on a message: what was masked in its text (`card`, `iban`, a pattern's name).
pub const META_KEY: &str = "redacted";

/// A policy ready to apply: the workspace's patterns compiled once (per cached policy), not per
/// message.
#[derive(Clone, Debug)]
pub struct Redactor {
    cards: bool,
    ibans: bool,
    patterns: Vec<(String, Regex)>,
}

impl Redactor {
    /// Validated when saved; a pattern that no longer compiles masks nothing rather than fail.
    pub fn new(policy: &Policy) -> Self {
        let patterns =
            policy.patterns.iter().filter_map(|p| Regex::new(&p.regex).ok().map(|re| (p.name.clone(), re))).collect();
        Redactor { cards: policy.cards, ibans: policy.ibans, patterns }
    }

    /// `text` with what the policy names masked; `None` when nothing was.
    pub fn redact(&self, text: &str) -> Option<Redacted> {
        let mut out = text.to_owned();
        let mut kinds: Vec<String> = vec![];
        let note = |kind: &str, kinds: &mut Vec<String>| {
            if !kinds.iter().any(|k| k == kind) {
                kinds.push(kind.to_owned());
            }
        };
        if self.ibans && mask(&IBAN, &mut out, iban_valid, "IBAN") {
            note("iban", &mut kinds);
        }
        if self.cards && mask(&CARD, &mut out, luhn, "card") {
            note("card", &mut kinds);
        }
        for (name, re) in &self.patterns {
            if re.is_match(&out) {
                out = re.replace_all(&out, format!("[redacted {name}]").as_str()).into_owned();
                note(name, &mut kinds);
            }
        }
        (!kinds.is_empty()).then_some(Redacted { text: out, kinds })
    }
}

/// Masks every match of `re` in `text` that passes `valid` as `[label ••••last4]`; whether any did.
fn mask(re: &Regex, text: &mut String, valid: fn(&str) -> bool, label: &str) -> bool {
    let mut hit = false;
    let masked = re.replace_all(text, |c: &regex::Captures| {
        let m = &c[0];
        if valid(m) {
            hit = true;
            format!("[{label} ••••{}]", last4(m))
        } else {
            m.to_owned()
        }
    });
    if hit {
        *text = masked.into_owned();
    }
    hit
}

/// `text` with what the policy names masked; `None` when nothing was (a one-off: compiles the
/// policy's patterns; keep a [`Redactor`] to apply one policy many times).
pub fn redact(text: &str, policy: &Policy) -> Option<Redacted> {
    Redactor::new(policy).redact(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_and_ibans_are_masked_and_lookalikes_kept() {
        let p = Policy::default();
        let r = redact("My card is 4111 1111 1111 1111, exp 12/29. Order 1234567890123.", &p).unwrap();
        assert_eq!(r.text, "My card is [card ••••1111], exp 12/29. Order 1234567890123.");
        assert_eq!(r.kinds, ["card"]);
        let r = redact("Refund to DE89 3704 0044 0532 0130 00 please", &p).unwrap();
        assert_eq!(r.text, "Refund to [IBAN ••••3000] please");
        assert_eq!(r.kinds, ["iban"]);
        let r = redact("card 5500-0000-0000-0004 and GB82WEST12345698765432", &p).unwrap();
        assert_eq!(r.text, "card [card ••••0004] and [IBAN ••••5432]");
        // A phone number, an order number failing Luhn, an IBAN with wrong check digits: kept.
        for kept in ["Call +1 415 555 2671", "order 4111111111111112", "DE00 3704 0044 0532 0130 00", "hello"] {
            assert_eq!(redact(kept, &p), None, "{kept}");
        }
        assert_eq!(redact("4111111111111111", &Policy { cards: false, ..Policy::default() }), None);
    }

    #[test]
    fn a_workspaces_own_patterns_are_masked_by_name_and_checked_when_saved() {
        let p = Policy {
            patterns: vec![Pattern { name: "ssn".into(), regex: r"\b\d{3}-\d{2}-\d{4}\b".into() }],
            ..Policy::default()
        };
        p.validate().unwrap();
        let r = redact("my SSN is 123-45-6789", &p).unwrap();
        assert_eq!((r.text.as_str(), r.kinds.as_slice()), ("my SSN is [redacted ssn]", &["ssn".to_owned()][..]));
        let bad = |name: &str, regex: &str| {
            Policy { patterns: vec![Pattern { name: name.into(), regex: regex.into() }], ..Policy::default() }
                .validate()
                .is_err()
        };
        assert!(bad("x", "(unclosed"));
        assert!(bad("x", "a*"));
        assert!(bad("", "abc"));
        assert!(bad("has space", "abc"));
    }

    proptest::proptest! {
        /// Whatever surrounds it, a valid card number never survives redaction.
        #[test]
        fn no_luhn_valid_card_survives(prefix in "[a-z ,.]{0,20}", suffix in "[a-z ,.]{0,20}", body in proptest::collection::vec(0u32..10, 15)) {
            // Complete 15 digits to a 16-digit Luhn-valid number.
            let digits: String = body.iter().map(|d| char::from_digit(*d, 10).unwrap()).collect();
            let check = (0..10).map(|c| format!("{digits}{c}")).find(|n| luhn(n)).unwrap();
            let text = format!("{prefix} {check} {suffix}");
            let r = redact(&text, &Policy::default()).unwrap();
            proptest::prop_assert!(!r.text.contains(&check));
        }

        /// Text without digits comes back untouched.
        #[test]
        fn text_without_digits_is_untouched(text in "[A-Za-z ,.!?]{0,80}") {
            proptest::prop_assert_eq!(redact(&text, &Policy::default()), None);
        }
    }
}
