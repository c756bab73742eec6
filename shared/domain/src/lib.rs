//! Switchboard's domain: the canonical message model, validated newtypes, the policies (threading,
//! delivery status) as pure functions, ports as narrow traits, and the channel adapters.
//! No AWS SDK here: everything is plain data and testable without a network.

pub mod address;
pub mod analytics;
pub mod audit;
pub mod canned;
pub mod channels;
pub mod consent;
pub mod contacts;
pub mod credentials;
pub mod csat;
pub mod delivery;
pub mod erasure;
pub mod error;
pub mod events;
pub mod fallback;
pub mod files;
pub mod finance;
pub mod hooks;
pub mod ids;
pub mod inbox;
pub mod model;
pub mod nps;
pub mod objects;
pub mod ports;
pub mod realtime;
pub mod redact;
pub mod reorg;
pub mod routing;
pub mod schema;
pub mod sla;
pub mod sms;
pub mod threading;
pub mod timers;
pub mod workspace;

pub use address::{EmailAddress, PhoneNumber};
pub use error::ParseError;
pub use ids::{AgentId, ConnectionId, ContactId, ConversationId, IdempotencyKey, MessageId, TeamId, WorkspaceId};
pub use model::*;
