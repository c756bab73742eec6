//! Channel addresses: phone numbers in E.164 and email addresses, normalised on parse so that the same
//! person always yields the same identity key.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ParseError;

/// A phone number in E.164 form (`+14155552671`), validated with libphonenumber's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

crate::string_schema!(PhoneNumber, "A phone number in E.164 (+14155550100)");

impl PhoneNumber {
    /// Parses an international number (`+` and country code required: providers such as Twilio always
    /// send E.164, and guessing a country for a national number would link the wrong people).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let invalid = |reason: &str| ParseError::Invalid { kind: "phone number", reason: reason.into() };
        let trimmed = s.trim();
        if !trimmed.starts_with('+') {
            return Err(invalid("expected an international number starting with +"));
        }
        let parsed = phonenumber::parse(None, trimmed).map_err(|e| invalid(&e.to_string()))?;
        if !phonenumber::is_valid(&parsed) {
            return Err(invalid("not a valid number for its country"));
        }
        Ok(Self(parsed.format().mode(phonenumber::Mode::E164).to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The number's country (ISO 3166 alpha-2, `US`), for pricing; `None` for non-geographic codes.
    pub fn country(&self) -> Option<String> {
        let parsed = phonenumber::parse(None, &self.0).ok()?;
        parsed.country().id().map(|id| id.as_ref().to_owned())
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}
impl From<PhoneNumber> for String {
    fn from(p: PhoneNumber) -> String {
        p.0
    }
}
impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, lower-cased as a whole. Local parts are case-sensitive in theory; in practice
/// every large provider treats them case-insensitively, and two contacts for `Ann@x.com` and
/// `ann@x.com` would be a worse bug than the theoretical one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

crate::string_schema!(EmailAddress, "An email address, lower-cased");

impl EmailAddress {
    /// A short digest of the address, for keys that must not hold the address itself (rate
    /// limits): an erasure need not find them, a table scan shows nobody's address.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(self.as_str().as_bytes()).iter().take(12).map(|b| format!("{b:02x}")).collect()
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let invalid = |reason: &str| ParseError::Invalid { kind: "email address", reason: reason.into() };
        let s = s.trim();
        if s.len() > 254 {
            return Err(invalid("longer than 254 characters"));
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(|| invalid("missing @"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(invalid("local part must be 1-64 characters"));
        }
        if local.chars().any(|c| c.is_whitespace() || c.is_control() || c == '#') {
            return Err(invalid("local part contains whitespace, control characters or #"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !domain_ok {
            return Err(invalid("domain must be dot-separated labels of letters, digits and -"));
        }
        Ok(Self(s.to_lowercase()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}
impl From<EmailAddress> for String {
    fn from(e: EmailAddress) -> String {
        e.0
    }
}
impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_normalise_to_e164() {
        assert_eq!(PhoneNumber::parse("+1 (415) 555-2671").unwrap().as_str(), "+14155552671");
        assert_eq!(PhoneNumber::parse("+44 20 7946 0958").unwrap().as_str(), "+442079460958");
        assert_eq!(PhoneNumber::parse(" +4915123456789 ").unwrap().as_str(), "+4915123456789");
    }

    #[test]
    fn phone_numbers_reject_national_and_invalid() {
        assert!(PhoneNumber::parse("4155552671").is_err());
        assert!(PhoneNumber::parse("+1 000").is_err());
        assert!(PhoneNumber::parse("hello").is_err());
        assert!(PhoneNumber::parse("").is_err());
    }

    #[test]
    fn email_addresses_lowercase_and_validate() {
        assert_eq!(EmailAddress::parse(" Ann.Lee@Example.COM ").unwrap().as_str(), "ann.lee@example.com");
        assert!(EmailAddress::parse("no-at-sign").is_err());
        assert!(EmailAddress::parse("a@localhost").is_err());
        assert!(EmailAddress::parse("a b@example.com").is_err());
        assert!(EmailAddress::parse("a@-bad.com").is_err());
    }
}
