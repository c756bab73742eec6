//! Identifiers. Every id that reaches a storage key is validated here, so a key can never be forged
//! with a separator (`#`) or be empty.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ParseError;

/// A tenant or agent id chosen by people (JWT `ws` / `sub` claims, channel config): 1–64 of
/// `[A-Za-z0-9_.-]`.
fn parse_slug(kind: &'static str, s: &str) -> Result<String, ParseError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(ParseError::Invalid { kind, reason: "expected 1-64 characters of A-Z a-z 0-9 _ . -".into() })
    }
}

macro_rules! slug_id {
    ($name:ident, $kind:literal) => {
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        $crate::string_schema!($name, concat!("A ", $kind, ": 1-64 characters of A-Z a-z 0-9 _ . -"));

        impl $name {
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                parse_slug($kind, s).map(Self)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(s: String) -> Result<Self, ParseError> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::parse(s)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

slug_id!(WorkspaceId, "workspace id");
slug_id!(AgentId, "agent id");
slug_id!(TeamId, "team id");

/// An API Gateway WebSocket connection id (base64-like, such as `L0SM9cOFvHcCIhw=`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConnectionId(String);

crate::string_schema!(ConnectionId, "An API Gateway WebSocket connection id");

impl ConnectionId {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'+' | b'/'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::Invalid { kind: "connection id", reason: "expected 1-128 base64 characters".into() })
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for ConnectionId {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}
impl From<ConnectionId> for String {
    fn from(v: ConnectionId) -> String {
        v.0
    }
}
impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Mints ULIDs that increase strictly within this process, even inside one millisecond: messages
/// stored in one burst keep the order they were created in.
fn next_ulid() -> ulid::Ulid {
    static GENERATOR: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut guard = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
    let generator = guard.get_or_insert_with(ulid::Generator::new);
    // Overflow needs 2^80 ids in one millisecond; fall back to a fresh random one rather than fail.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

/// Ids we mint ourselves are ULIDs: sortable by creation time, which gives messages their order
/// inside a conversation and conversations a stable tie-break.
macro_rules! ulid_id {
    ($name:ident, $kind:literal) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(ulid::Ulid);

        $crate::string_schema!($name, concat!("A ", $kind, " (a ULID, time-ordered)"));

        impl $name {
            pub fn new() -> Self {
                Self(next_ulid())
            }
            /// The all-zero id: what anonymised cost rows name once the real one was erased.
            pub const ERASED: Self = Self(ulid::Ulid::nil());
            pub fn from_ulid(u: ulid::Ulid) -> Self {
                Self(u)
            }
            pub fn ulid(&self) -> ulid::Ulid {
                self.0
            }
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                ulid::Ulid::from_string(s)
                    .map(Self)
                    .map_err(|e| ParseError::Invalid { kind: $kind, reason: e.to_string() })
            }
        }
        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }
        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(s: String) -> Result<Self, ParseError> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0.to_string()
            }
        }
        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::parse(s)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

ulid_id!(ContactId, "contact id");
ulid_id!(ConversationId, "conversation id");
ulid_id!(MessageId, "message id");

/// A client-chosen idempotency key (the `Idempotency-Key` header): 1–128 printable ASCII characters
/// without spaces.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ParseError::Invalid {
                kind: "idempotency key",
                reason: "expected 1-128 printable ASCII characters without spaces".into(),
            });
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_reject_separators_and_empty() {
        assert!(WorkspaceId::parse("acme-support_1.eu").is_ok());
        assert!(WorkspaceId::parse("").is_err());
        assert!(WorkspaceId::parse("a#b").is_err());
        assert!(AgentId::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn ulids_round_trip_through_strings_and_serde() {
        let id = MessageId::new();
        assert_eq!(MessageId::parse(&id.to_string()).unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<MessageId>(&json).unwrap(), id);
        assert!(ConversationId::parse("not-a-ulid").is_err());
    }

    #[test]
    fn minted_ids_increase_strictly() {
        let ids: Vec<MessageId> = (0..1000).map(|_| MessageId::new()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn idempotency_keys_are_bounded_printable_ascii() {
        assert!(IdempotencyKey::parse("c0ffee-1").is_ok());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
    }
}

/// A ULID for `at` that sorts after every other this process made for the same millisecond, so
/// entries written one after another (an audit trail, notes) keep their order.
pub fn ordered_ulid(at: time::OffsetDateTime) -> ulid::Ulid {
    static GENERATOR: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());
    let mut g = GENERATOR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    g.generate_from_datetime(at.into()).unwrap_or_else(|_| ulid::Ulid::from_datetime(at.into()))
}

#[cfg(test)]
mod ordered_tests {
    #[test]
    fn ulids_of_one_millisecond_keep_their_order() {
        let at = time::macros::datetime!(2026-11-22 10:00 UTC);
        let ids: Vec<ulid::Ulid> = (0..100).map(|_| super::ordered_ulid(at)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let ms = (at.unix_timestamp() * 1000) as u64;
        assert!(ids.iter().all(|u| u.timestamp_ms() == ms), "still the entry's own millisecond");
    }
}

/// A stable 64-bit hash (FNV-1a, its offset basis mixed with `seed`; 0 for the plain hash) of `bytes`.
/// The same input gives the same value in every release: shards and sampling orders depend on it.
pub fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64 ^ seed, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod fnv_tests {
    #[test]
    fn fnv1a_is_the_published_hash() {
        // FNV-1a 64 of the empty string and of "a" (the reference test vectors): shards written
        // by earlier releases stay where they were.
        assert_eq!(super::fnv1a(0, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a(0, b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
