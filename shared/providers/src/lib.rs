//! Everything that leaves our account or stores a file:
//!
//! - [`outbound`]: the transport of the channel adapters' rendered requests (one HTTP client built
//!   once), and Twilio's price lookups.
//! - [`media`]: the media copier — a provider's file streamed into the media bucket with a size
//!   cap (never buffered whole) — and its resolvers for WhatsApp, Meta's CDN, Telegram and Twilio
//!   (MMS media and voice recordings).
//! - [`hooks`]: the outbound webhooks' signed POST, refusing private addresses in AWS.
//! - [`sink`]: where a stream of bytes is stored: S3 (multipart above one part) or memory.
//! - [`s3`], [`ses`]: S3 behind the file store port, SES v2 behind the email transport port.
//! - [`cognito`], [`local_directory`]: the agent directory (Cognito's user pool; the local
//!   OpenID provider's users on the local stack).
//! - [`vault`], [`telegram`]: each workspace's provider credentials in Secrets Manager, and its
//!   Telegram bots (credentials cached per container, `setWebhook`).
//! - [`memory`]: the in-memory file store and vault handler tests use (end-to-end tests use moto).
//!
//! Object keys are named by `domain::objects`, nowhere else.

pub mod accounts;
#[cfg(feature = "cognito")]
pub mod cognito;
#[cfg(feature = "hooks")]
pub mod hooks;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "local-directory")]
pub mod local_directory;
#[cfg(feature = "http")]
pub mod media;
pub mod memory;
#[cfg(feature = "http")]
pub mod outbound;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "ses")]
pub mod ses;
pub mod sink;
#[cfg(feature = "http")]
pub mod telegram;
#[cfg(feature = "vault")]
pub mod vault;

pub use domain::objects::parse_s3_url;
