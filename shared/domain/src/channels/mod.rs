//! Channel adapters: pure translation between a provider's wire format and the canonical model.
//! Network I/O stays in the functions; everything here is testable with fixtures.

pub mod constraints;
pub mod twilio;
