//! Switchboard's application layer: every use case written once, over the domain's narrow ports.
//!
//! A function parses its trigger, calls one of these, and maps the result; the domain decides
//! (threading, routing, pricing, consent), these fetch state, commit once and announce.
//!
//! - [`webhook`]: a provider's request verified, parsed, its media copied and its events enqueued.
//! - [`ingest`]: a customer's message, status, consent change or read watermark from any channel.
//! - [`reply`]: a message of ours queued exactly once — an agent's reply, an automatic answer
//!   (HELP, after hours) and every future system message take the same path.
//! - [`delivery`]: a delivery status moved forward and announced with one publish policy, whoever
//!   reports it (the sender, Twilio's callback, WhatsApp/Telegram/Meta through the inbound queue).
//! - [`export`]: everything held about one contact, as an archive behind a short-lived link.
//! - [`erase`]: a contact and everything about it removed, step by step, leaving a receipt.
//! - [`retention`]: each workspace's old resolved conversations erased by the daily run.
//! - [`fanout`]: an event pushed to the agents' (and a web chat visitor's) sockets that should see it.
//! - [`analytics`]: the events analytics counts, turned into facts and applied to hourly
//!   aggregates once each.
//! - [`csat`]: the satisfaction survey asked on resolve (once, on the customer's channel) and the
//!   answers that come by email rating link.
//! - [`proof`]: a web chat visitor's email proven by a signed link mailed to it.
//! - [`nps`]: the Net Promoter Score run — the segment's due contacts asked once per cadence.
//! - [`hooks`]: outbound webhooks — an event to every subscribed endpoint, signed per Standard
//!   Webhooks, retried on the spec's schedule, logged, redelivered on demand.
//! - [`sla`]: a service-level timer's warning or breach, recorded, announced and escalated.
//! - [`send`]: a queued message of ours out through its provider, SES or the visitor's sockets,
//!   exactly once, and its provider price reconciled.

pub mod analytics;
pub mod cache;
pub mod credentials;
pub mod csat;
pub mod delivery;
pub mod erase;
pub mod export;
pub mod fallback;
pub mod fanout;
pub mod hooks;
pub mod ingest;
pub mod nps;
pub mod proof;
pub mod reply;
pub mod retention;
pub mod send;
pub mod sla;
pub mod templates;
pub mod webhook;

use domain::ports::{QueueError, StoreError};
use domain::routing::service::RoutingError;

/// What a use case can fail with. Callers map it once: queue consumers to retryable/permanent
/// (`kit::fifo::RecordError`), routes to an HTTP status (`kit::http::ApiError`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Concurrent writers kept winning within our attempts: the redelivery or the client's retry
    /// will find the dust settled.
    #[error("{0}")]
    Contended(String),
    /// The input can never be processed (a reserved id that does not parse, a vanished
    /// conversation): retrying changes nothing.
    #[error("{0}")]
    Invalid(String),
    /// A provider outside AWS is down, throttling or not ready (a price not rated yet): a later
    /// attempt may succeed.
    #[error("{0}")]
    Unavailable(String),
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Store(e) => e.is_retryable(),
            Error::Queue(e) => matches!(e, QueueError::Unavailable(_)),
            Error::Contended(_) | Error::Unavailable(_) => true,
            Error::Invalid(_) => false,
        }
    }
}

impl From<RoutingError> for Error {
    fn from(e: RoutingError) -> Self {
        match e {
            RoutingError::Store(e) => Error::Store(e),
            RoutingError::Queue(e) => Error::Queue(e),
        }
    }
}

/// Before a retry of a contended write: a concurrent writer just committed, so re-reading at once
/// would likely collide again. The pause grows (5, 10, 20 … 160 ms) and is jittered, so racers on
/// one item (the same person's messages outside their FIFO group, a storm on one conversation)
/// fall out of step instead of colliding round after round.
pub(crate) async fn pause(attempt: u32) {
    if attempt == 0 {
        return;
    }
    let ceiling = 5u64 << (attempt - 1).min(5);
    // Jitter from the clock's nanoseconds: uniform enough to desynchronise, no RNG needed.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let jittered = ceiling / 2 + u64::from(nanos) % (ceiling / 2 + 1);
    tokio::time::sleep(std::time::Duration::from_millis(jittered)).await;
}
