//! Finance: what every message costs and why.
//!
//! - [`money`]: integer micro-units with a currency, unit prices exact to 1e-12, one rounding rule.
//! - [`ratecard`]: dated, versioned rate cards (built-in defaults plus a workspace's own versions).
//! - [`pricing`]: the provider cost of one message on its channel, and the AWS share of its usage.
//! - [`usage`]: the AWS requests and capacity one message's pipeline spent.
//! - [`ledger`]: immutable cost entries and the counters they add to.
//! - [`budget`]: monthly budgets, thresholds and the hard stop.
//!
//! Everything here is pure; the store keeps entries and counters, the functions decide when.

pub mod budget;
pub mod ledger;
pub mod money;
pub mod pricing;
pub mod ratecard;
pub mod service;
pub mod usage;

pub use budget::{Budget, BudgetScope};
pub use ledger::{Dimension, EntryKind, LedgerEntry, MessageCost, Totals};
pub use money::{Currency, Micros, UnitPrice};
pub use pricing::{CostLine, Estimate, PricingError, PricingInput, WhatsappCategory};
pub use ratecard::RateCard;
pub use usage::Usage;
