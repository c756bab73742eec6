//! Outbound webhooks: a workspace's endpoints, the events they subscribe to, the Standard Webhooks
//! signature (<https://www.standardwebhooks.com>: `webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, secrets `whsec_<base64>`),
//! the retry schedule, the address policy that keeps deliveries off private networks (SSRF) and the
//! rule that disables an endpoint after a day of failures. Pure: the caller brings time, randomness
//! and I/O.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::events::{ConversationChange, Notification};
use crate::ids::WorkspaceId;
use crate::model::DeliveryStatus;

/// What an endpoint can subscribe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    #[serde(rename = "conversation.created")]
    ConversationCreated,
    #[serde(rename = "conversation.assigned")]
    ConversationAssigned,
    #[serde(rename = "conversation.resolved")]
    ConversationResolved,
    #[serde(rename = "conversation.reopened")]
    ConversationReopened,
    #[serde(rename = "message.created")]
    MessageCreated,
    /// One of our messages (an agent's reply, an automatic one) was accepted by the provider.
    #[serde(rename = "message.sent")]
    MessageSent,
    #[serde(rename = "message.failed")]
    MessageFailed,
    #[serde(rename = "sla.warning")]
    SlaWarning,
    #[serde(rename = "sla.breached")]
    SlaBreached,
    #[serde(rename = "budget.threshold_reached")]
    BudgetThresholdReached,
    #[serde(rename = "csat.received")]
    CsatReceived,
}

impl EventType {
    pub const ALL: [EventType; 11] = [
        EventType::ConversationCreated,
        EventType::ConversationAssigned,
        EventType::ConversationResolved,
        EventType::ConversationReopened,
        EventType::MessageCreated,
        EventType::MessageSent,
        EventType::MessageFailed,
        EventType::SlaWarning,
        EventType::SlaBreached,
        EventType::BudgetThresholdReached,
        EventType::CsatReceived,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ConversationCreated => "conversation.created",
            EventType::ConversationAssigned => "conversation.assigned",
            EventType::ConversationResolved => "conversation.resolved",
            EventType::ConversationReopened => "conversation.reopened",
            EventType::MessageCreated => "message.created",
            EventType::MessageSent => "message.sent",
            EventType::MessageFailed => "message.failed",
            EventType::SlaWarning => "sla.warning",
            EventType::SlaBreached => "sla.breached",
            EventType::BudgetThresholdReached => "budget.threshold_reached",
            EventType::CsatReceived => "csat.received",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// The webhook events one notification stands for (none for the live-only ones: typing, presence).
pub fn events_of(n: &Notification) -> Vec<EventType> {
    match n {
        // A customer's message (ours are `message.sent` once the provider takes them).
        Notification::MessageCreated { opened: true, .. } => {
            vec![EventType::ConversationCreated, EventType::MessageCreated]
        }
        Notification::MessageCreated { .. } => vec![EventType::MessageCreated],
        Notification::DeliveryStatusChanged { status: DeliveryStatus::Sent, .. } => vec![EventType::MessageSent],
        Notification::DeliveryStatusChanged {
            status: DeliveryStatus::Failed | DeliveryStatus::Undelivered, ..
        } => {
            vec![EventType::MessageFailed]
        }
        Notification::ConversationChanged { change, .. } => match change {
            ConversationChange::Assigned => vec![EventType::ConversationAssigned],
            ConversationChange::Resolved => vec![EventType::ConversationResolved],
            ConversationChange::Reopened => vec![EventType::ConversationReopened],
            _ => vec![],
        },
        Notification::SlaWarning { .. } => vec![EventType::SlaWarning],
        Notification::SlaBreached { .. } => vec![EventType::SlaBreached],
        Notification::BudgetThresholdReached { .. } => vec![EventType::BudgetThresholdReached],
        Notification::CsatReceived { .. } => vec![EventType::CsatReceived],
        _ => vec![],
    }
}

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A signing secret. Several are valid at once while a rotation overlaps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Secret {
    /// `whsec_` and the base64 of the key bytes.
    pub key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Set when a newer secret replaced this one: it keeps signing until then.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<OffsetDateTime>,
}

impl Secret {
    /// A secret from fresh random bytes (24 to 64 of them, as the specification asks).
    pub fn from_bytes(bytes: &[u8], now: OffsetDateTime) -> Result<Secret, HookError> {
        if !(24..=64).contains(&bytes.len()) {
            return Err(HookError::Invalid("a secret needs 24 to 64 random bytes".into()));
        }
        let key = format!("{SECRET_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(bytes));
        Ok(Secret { key, created_at: now, expires_at: None })
    }

    /// The key bytes the HMAC uses.
    pub fn bytes(&self) -> Result<Vec<u8>, HookError> {
        let b64 = self.key.strip_prefix(SECRET_PREFIX).unwrap_or(&self.key);
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| HookError::Invalid("the secret is not base64".into()))
    }

    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_none_or(|e| now < e)
    }

    /// The secret as an API shows it after creation: its prefix and last four characters.
    pub fn masked(&self) -> String {
        let tail: String = self.key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        format!("{SECRET_PREFIX}…{tail}")
    }
}

/// One `v1,` signature: base64 of HMAC-SHA256 over `id.timestamp.body`.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// The three headers of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub id: String,
    pub timestamp: i64,
    /// Space-separated `v1,` signatures, one per valid secret (newest first).
    pub signature: String,
}

/// Signs `body` with every secret still valid at `now`: a receiver holding either the old or the
/// new secret during a rotation verifies it.
pub fn sign_with(secrets: &[Secret], msg_id: &str, now: OffsetDateTime, body: &[u8]) -> Result<Signed, HookError> {
    let timestamp = now.unix_timestamp();
    let mut signatures = vec![];
    for s in secrets.iter().filter(|s| s.is_valid_at(now)) {
        signatures.push(sign(&s.bytes()?, msg_id, timestamp, body));
    }
    if signatures.is_empty() {
        return Err(HookError::Invalid("the endpoint has no valid secret".into()));
    }
    Ok(Signed { id: msg_id.to_owned(), timestamp, signature: signatures.join(" ") })
}

/// What a receiver checks: one of the signatures matches (in constant time) and the timestamp is
/// within `tolerance` of `now` (replays of old deliveries fail).
pub fn verify(
    key: &[u8],
    msg_id: &str,
    timestamp: i64,
    signatures: &str,
    body: &[u8],
    now: OffsetDateTime,
    tolerance: Duration,
) -> bool {
    use subtle::ConstantTimeEq;
    if (now.unix_timestamp() - timestamp).abs() > tolerance.whole_seconds() {
        return false;
    }
    let expected = sign(key, msg_id, timestamp, body);
    signatures.split(' ').any(|s| s.as_bytes().ct_eq(expected.as_bytes()).into())
}

/// A workspace's subscription: where events go and which.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Endpoint {
    pub id: String,
    pub workspace: WorkspaceId,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Empty: every event.
    #[serde(default)]
    pub events: BTreeSet<EventType>,
    pub enabled: bool,
    /// Newest first.
    pub secrets: Vec<Secret>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The first failed attempt since the last success.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<OffsetDateTime>,
    /// Why it was disabled automatically (an admin's choice leaves it empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(default)]
    pub version: u64,
}

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: Duration = Duration::hours(24);

impl Endpoint {
    pub fn wants(&self, t: EventType) -> bool {
        self.enabled && (self.events.is_empty() || self.events.contains(&t))
    }

    /// A new secret signs from now; the previous ones sign for `overlap` more, then are dropped.
    pub fn rotate(&mut self, new: Secret, now: OffsetDateTime, overlap: Duration) {
        self.secrets.retain(|s| s.is_valid_at(now));
        for s in &mut self.secrets {
            let until = now + overlap;
            s.expires_at = Some(s.expires_at.map_or(until, |e| e.min(until)));
        }
        self.secrets.insert(0, new);
        self.updated_at = now;
    }
}

/// An endpoint id: `ep_` and a ULID.
pub fn endpoint_id(ulid: ulid::Ulid) -> String {
    format!("ep_{ulid}")
}

pub fn is_endpoint_id(s: &str) -> bool {
    s.strip_prefix("ep_").is_some_and(|u| ulid::Ulid::from_string(u).is_ok())
}

/// The `webhook-id` of one event for one endpoint: `msg_` and a ULID whose time is when the
/// notification was first queued and whose randomness is a hash of the notification, the event
/// type and the endpoint. A notification handled twice yields the same id (receivers drop the
/// repeat by it), and ids sort by time (the delivery log lists newest first by them).
pub fn message_id(queued_ms: u64, notification: &str, event: EventType, endpoint: &str) -> String {
    let digest = Sha256::digest(format!("{notification}|{}|{endpoint}", event.as_str()).as_bytes());
    let mut random = [0u8; 16];
    random[6..].copy_from_slice(&digest[..10]);
    let ulid = ulid::Ulid::from_parts(queued_ms.min((1 << 48) - 1), u128::from_be_bytes(random));
    format!("msg_{ulid}")
}

pub fn is_message_id(s: &str) -> bool {
    s.strip_prefix("msg_").is_some_and(|u| ulid::Ulid::from_string(u).is_ok())
}

/// The Standard Webhooks payload: `type`, `timestamp`, `data`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WebhookPayload)]
pub struct Payload {
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    pub data: serde_json::Value,
}

/// One event for one endpoint, on the webhook queue. The body is serialized once, so every attempt
/// signs and sends the same bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryJob {
    pub workspace: WorkspaceId,
    pub endpoint_id: String,
    pub msg_id: String,
    pub event: EventType,
    pub body: String,
    /// Sent again by an admin: attempts count from one again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
}

/// The Standard Webhooks schedule after the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
/// 10 h — eight attempts over about 27 hours.
pub const SCHEDULE: [Duration; 7] = [
    Duration::seconds(5),
    Duration::minutes(5),
    Duration::minutes(30),
    Duration::hours(2),
    Duration::hours(5),
    Duration::hours(10),
    Duration::hours(10),
];

/// The wait before the next attempt after attempt `attempt` (1-based) failed; `None` once the
/// schedule is spent.
pub fn next_delay(schedule: &[Duration], attempt: u32) -> Option<Duration> {
    let i = usize::try_from(attempt).ok()?.checked_sub(1)?;
    schedule.get(i).copied()
}

/// Parses a schedule like `5s,5m,30m,2h` (for the local stack's and tests' short waits).
pub fn parse_schedule(s: &str) -> Result<Vec<Duration>, HookError> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, unit) = p.split_at(p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len()));
            let n: i64 = n.parse().map_err(|_| HookError::Invalid(format!("bad delay {p:?}")))?;
            match unit {
                "ms" => Ok(Duration::milliseconds(n)),
                "s" => Ok(Duration::seconds(n)),
                "m" => Ok(Duration::minutes(n)),
                "h" => Ok(Duration::hours(n)),
                _ => Err(HookError::Invalid(format!("bad delay {p:?}: use ms, s, m or h"))),
            }
        })
        .collect()
}

/// An endpoint failing without a success for this long is disabled.
pub const DISABLE_AFTER: Duration = Duration::hours(24);

/// What a failed attempt does to its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// The first failure since the last success: the streak starts now.
    StartStreak,
    /// Failing, but not for long enough.
    Continue,
    /// Failing for `DISABLE_AFTER`: disable it and tell the admins.
    Disable,
}

pub fn after_failure(e: &Endpoint, now: OffsetDateTime, disable_after: Duration) -> AfterFailure {
    match e.failing_since {
        None => AfterFailure::StartStreak,
        Some(since) if e.last_success_at.is_some_and(|s| s >= since) => AfterFailure::StartStreak,
        Some(since) if now - since >= disable_after => AfterFailure::Disable,
        Some(_) => AfterFailure::Continue,
    }
}

/// Whether a success must be written to the endpoint: it ends a failure streak, or the recorded
/// last success is older than an hour (a success is not a write per delivery).
pub fn success_worth_recording(e: &Endpoint, now: OffsetDateTime) -> bool {
    e.failing_since.is_some() || e.last_success_at.is_none_or(|s| now - s >= Duration::hours(1))
}

/// Where deliveries may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// In AWS: https only, public addresses only.
    Public,
    /// The local stack: http and loopback allowed (the local receiver listens on 127.0.0.1).
    Local,
}

impl Reach {
    /// From the `WEBHOOK_REACH` setting: `local` on the local stack, anything else (or nothing)
    /// is AWS.
    pub fn from_setting(s: Option<&str>) -> Reach {
        match s {
            Some("local") => Reach::Local,
            _ => Reach::Public,
        }
    }
}

/// Checks an endpoint URL before it is stored: https (in AWS), no credentials in it, and no
/// private, loopback or link-local address literal. Names are checked again when resolved, at
/// each delivery (`is_public_ip`).
pub fn check_url(raw: &str, reach: Reach) -> Result<url::Url, HookError> {
    if raw.len() > 2048 {
        return Err(HookError::Invalid("the URL is longer than 2048 characters".into()));
    }
    let url = url::Url::parse(raw).map_err(|e| HookError::Invalid(format!("not a URL: {e}")))?;
    match (url.scheme(), reach) {
        ("https", _) | ("http", Reach::Local) => {}
        _ => return Err(HookError::Invalid("the URL must be https".into())),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(HookError::Invalid("the URL must not carry credentials".into()));
    }
    if reach == Reach::Local {
        return url.host().map(|_| url.clone()).ok_or_else(|| HookError::Invalid("the URL has no host".into()));
    }
    match url.host() {
        None => Err(HookError::Invalid("the URL has no host".into())),
        Some(url::Host::Ipv4(ip)) if !is_public_ip(IpAddr::V4(ip)) => {
            Err(HookError::Invalid("the URL names a private, loopback or reserved address".into()))
        }
        Some(url::Host::Ipv6(ip)) if !is_public_ip(IpAddr::V6(ip)) => {
            Err(HookError::Invalid("the URL names a private, loopback or reserved address".into()))
        }
        Some(url::Host::Domain(d)) if is_internal_name(d) => {
            Err(HookError::Invalid("the URL names an internal host".into()))
        }
        Some(_) => Ok(url),
    }
}

fn is_internal_name(d: &str) -> bool {
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    d == "localhost" || [".localhost", ".internal", ".local", ".localdomain"].iter().any(|s| d.ends_with(s))
}

/// An address a delivery may connect to: not private, loopback, link-local (the instance metadata
/// service lives there), shared (CGNAT), multicast, documentation or otherwise reserved.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b)) // NAT64: an IPv4 behind it may be private
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space (CGNAT)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking
        || o[0] >= 240)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HookError {
    #[error("{0}")]
    Invalid(String),
}

/// One attempt to deliver, as the log keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The receiver's HTTP status; none when no response came (refused, timed out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    pub latency_ms: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.status_code.is_some_and(|c| (200..300).contains(&c))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Failed so far; another attempt is scheduled.
    Retrying,
    Succeeded,
    /// The schedule is spent (or the endpoint was disabled): an admin may send it again.
    Failed,
}

/// One event's delivery to one endpoint: the per-endpoint log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    pub msg_id: String,
    pub endpoint_id: String,
    pub workspace: WorkspaceId,
    pub event: EventType,
    pub state: DeliveryState,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// What was sent (kept for the log's retention, for a manual redelivery).
    pub body: String,
}

/// How long the delivery log keeps an entry.
pub const LOG_RETENTION: Duration = Duration::days(30);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(s).unwrap()
    }

    #[test]
    fn the_signature_matches_the_specifications_example() {
        // The example of the Standard Webhooks reference libraries' test suites.
        let secret =
            Secret { key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(), created_at: at(0), expires_at: None };
        let sig =
            sign(&secret.bytes().unwrap(), "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_rotation_signs_with_both_secrets_until_the_old_one_expires() {
        let now = at(1_700_000_000);
        let old = Secret::from_bytes(&[1; 32], now).unwrap();
        let new = Secret::from_bytes(&[2; 32], now).unwrap();
        let mut e = endpoint(now);
        e.secrets = vec![old.clone()];
        e.rotate(new.clone(), now, ROTATION_OVERLAP);
        let body = b"{}";
        let signed = sign_with(&e.secrets, "msg_1", now, body).unwrap();
        assert_eq!(signed.signature.split(' ').count(), 2);
        for s in [&old, &new] {
            assert!(verify(
                &s.bytes().unwrap(),
                "msg_1",
                signed.timestamp,
                &signed.signature,
                body,
                now,
                Duration::minutes(5)
            ));
        }
        let later = now + ROTATION_OVERLAP + Duration::seconds(1);
        let signed = sign_with(&e.secrets, "msg_2", later, body).unwrap();
        assert!(!verify(
            &old.bytes().unwrap(),
            "msg_2",
            signed.timestamp,
            &signed.signature,
            body,
            later,
            Duration::minutes(5)
        ));
        assert!(verify(
            &new.bytes().unwrap(),
            "msg_2",
            signed.timestamp,
            &signed.signature,
            body,
            later,
            Duration::minutes(5)
        ));
        e.rotate(Secret::from_bytes(&[3; 32], later).unwrap(), later, ROTATION_OVERLAP);
        assert_eq!(e.secrets.len(), 2, "the expired secret is dropped at the next rotation");
    }

    #[test]
    fn verification_refuses_tampering_and_stale_timestamps() {
        let now = at(1_700_000_000);
        let s = Secret::from_bytes(&[9; 24], now).unwrap();
        let signed = sign_with(std::slice::from_ref(&s), "msg_1", now, b"body").unwrap();
        let k = s.bytes().unwrap();
        assert!(verify(&k, "msg_1", signed.timestamp, &signed.signature, b"body", now, Duration::minutes(5)));
        assert!(!verify(&k, "msg_1", signed.timestamp, &signed.signature, b"bodY", now, Duration::minutes(5)));
        assert!(!verify(&k, "msg_2", signed.timestamp, &signed.signature, b"body", now, Duration::minutes(5)));
        assert!(!verify(
            &k,
            "msg_1",
            signed.timestamp,
            &signed.signature,
            b"body",
            now + Duration::minutes(6),
            Duration::minutes(5)
        ));
        assert!(Secret::from_bytes(&[0; 8], now).is_err());
        assert_eq!(s.masked().len(), "whsec_…".len() + 4);
    }

    #[test]
    fn ids_are_stable_per_notification_and_sort_by_time() {
        let a = message_id(1_000, "created:1", EventType::MessageCreated, "ep_1");
        assert_eq!(a, message_id(1_000, "created:1", EventType::MessageCreated, "ep_1"));
        assert_ne!(a, message_id(1_000, "created:1", EventType::ConversationCreated, "ep_1"));
        assert_ne!(a, message_id(1_000, "created:1", EventType::MessageCreated, "ep_2"));
        assert!(a < message_id(2_000, "created:0", EventType::MessageCreated, "ep_1"));
        assert!(is_message_id(&a) && !is_message_id("msg_nope"));
    }

    #[test]
    fn the_schedule_spans_about_a_day_and_ends() {
        let total: Duration = SCHEDULE.iter().copied().sum();
        assert!(total > Duration::hours(24) && total < Duration::hours(28), "{total}");
        assert_eq!(next_delay(&SCHEDULE, 1), Some(Duration::seconds(5)));
        assert_eq!(next_delay(&SCHEDULE, 7), Some(Duration::hours(10)));
        assert_eq!(next_delay(&SCHEDULE, 8), None);
        assert_eq!(next_delay(&SCHEDULE, 0), None);
        assert_eq!(
            parse_schedule("1s, 250ms,2m,1h").unwrap(),
            vec![Duration::seconds(1), Duration::milliseconds(250), Duration::minutes(2), Duration::hours(1)]
        );
        assert!(parse_schedule("5 days").is_err());
    }

    #[test]
    fn an_endpoint_is_disabled_after_a_day_of_failures_without_a_success() {
        let now = at(1_700_000_000);
        let mut e = endpoint(now);
        assert_eq!(after_failure(&e, now, DISABLE_AFTER), AfterFailure::StartStreak);
        e.failing_since = Some(now);
        assert_eq!(after_failure(&e, now + Duration::hours(23), DISABLE_AFTER), AfterFailure::Continue);
        assert_eq!(after_failure(&e, now + Duration::hours(24), DISABLE_AFTER), AfterFailure::Disable);
        e.last_success_at = Some(now + Duration::hours(1));
        assert_eq!(after_failure(&e, now + Duration::hours(30), DISABLE_AFTER), AfterFailure::StartStreak);
        assert!(success_worth_recording(&e, now + Duration::hours(2)), "it ends a streak");
        e.failing_since = None;
        assert!(!success_worth_recording(&e, now + Duration::minutes(90)));
        assert!(success_worth_recording(&e, now + Duration::hours(3)));
    }

    #[test]
    fn urls_must_be_https_and_public_in_aws() {
        let ok = ["https://hooks.example.com/in", "https://93.184.216.34/x", "https://[2606:4700::1111]/"];
        for u in ok {
            assert!(check_url(u, Reach::Public).is_ok(), "{u}");
        }
        let refused = [
            "http://hooks.example.com/in",
            "https://user:pw@hooks.example.com/",
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://172.20.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://localhost/",
            "https://metadata.google.internal/",
            "ftp://hooks.example.com/",
            "not a url",
        ];
        for u in refused {
            assert!(check_url(u, Reach::Public).is_err(), "{u}");
        }
        assert!(check_url("http://127.0.0.1:9999/hook", Reach::Local).is_ok());
    }

    #[test]
    fn notifications_map_to_events() {
        let ws = WorkspaceId::parse("demo").unwrap();
        let conv = crate::ids::ConversationId::new();
        let created = |opened| Notification::MessageCreated {
            workspace: ws.clone(),
            conversation_id: conv,
            message_id: crate::ids::MessageId::new(),
            direction: crate::model::Direction::Inbound,
            channel: crate::model::Channel::Sms,
            opened,
        };
        assert_eq!(events_of(&created(true)), [EventType::ConversationCreated, EventType::MessageCreated]);
        assert_eq!(events_of(&created(false)), [EventType::MessageCreated]);
        let status = |status| Notification::DeliveryStatusChanged {
            workspace: ws.clone(),
            conversation_id: conv,
            message_id: crate::ids::MessageId::new(),
            status,
        };
        assert_eq!(events_of(&status(DeliveryStatus::Failed)), [EventType::MessageFailed]);
        assert!(events_of(&status(DeliveryStatus::Delivered)).is_empty());
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
    }

    fn endpoint(now: OffsetDateTime) -> Endpoint {
        Endpoint {
            id: endpoint_id(ulid::Ulid::new()),
            workspace: WorkspaceId::parse("demo").unwrap(),
            url: "https://hooks.example.com/in".into(),
            description: None,
            events: BTreeSet::new(),
            enabled: true,
            secrets: vec![Secret::from_bytes(&[7; 32], now).unwrap()],
            created_at: now,
            updated_at: now,
            failing_since: None,
            last_success_at: None,
            disabled_reason: None,
            version: 1,
        }
    }

    proptest! {
        #[test]
        fn private_v4_ranges_are_never_public(a in 0u8..=255, b in 0u8..=255, c in 0u8..=255) {
            for ip in [[10, a, b, c], [127, a, b, c], [169, 254, b, c], [192, 168, b, c], [172, 16 + (a % 16), b, c], [100, 64 + (a % 64), b, c]] {
                prop_assert!(!is_public_ip(IpAddr::V4(Ipv4Addr::from(ip))));
                let mapped = Ipv4Addr::from(ip).to_ipv6_mapped();
                prop_assert!(!is_public_ip(IpAddr::V6(mapped)));
            }
        }
    }
}
