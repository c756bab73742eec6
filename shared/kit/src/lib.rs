//! The Lambda kit every function shares: tracing set-up, configuration read once, one mapping from
//! errors to HTTP responses, JWT authentication of agents, and the FIFO partial-batch helper.

pub mod apigw;
pub mod auth;
pub mod config;
pub mod fifo;
pub mod http;
#[cfg(feature = "oidc")]
pub mod oidc;
pub mod telemetry;
pub mod twilio;
pub mod webhook;
pub mod ws;

pub use config::{Config, ConfigError};
