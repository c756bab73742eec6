//! Switchboard's single-table store: the DynamoDB adapter, its in-memory twin, and the contract
//! tests both must pass. [`keys`] owns the key design.

#[cfg(feature = "contract-tests")]
pub mod contract;
pub mod dynamo;
mod error;
pub mod keys;
pub mod memory;

pub use dynamo::DynamoStore;
pub use memory::MemoryStore;

/// Everything a handler may need from the store, for code that holds one store object.
pub trait Store:
    domain::ports::ChannelDirectory
    + domain::ports::InboundStore
    + domain::ports::ConversationReader
    + domain::ports::ReplyStore
    + domain::ports::DeliveryStore
    + domain::ports::CostLedger
    + domain::ports::RateCardStore
    + domain::ports::BudgetStore
    + domain::ports::ConsentStore
    + domain::ports::AgentStore
    + domain::ports::RoutingStore
    + domain::ports::ConnectionStore
    + domain::ports::AuditLog
    + domain::ports::NoteStore
    + domain::ports::ContactHistory
    + domain::ports::CannedStore
    + domain::ports::TemplateStore
    + domain::ports::ReorgStore
    + domain::ports::ContactStore
    + domain::ports::RateLimiter
    + domain::ports::VisitorStore
    + domain::ports::HookStore
    + domain::ports::AnalyticsStore
    + domain::ports::WorkspaceStore
    + domain::ports::ErasureStore
{
}

impl<T> Store for T where
    T: domain::ports::ChannelDirectory
        + domain::ports::InboundStore
        + domain::ports::ConversationReader
        + domain::ports::ReplyStore
        + domain::ports::DeliveryStore
        + domain::ports::CostLedger
        + domain::ports::RateCardStore
        + domain::ports::BudgetStore
        + domain::ports::ConsentStore
        + domain::ports::AgentStore
        + domain::ports::RoutingStore
        + domain::ports::ConnectionStore
        + domain::ports::AuditLog
        + domain::ports::NoteStore
        + domain::ports::ContactHistory
        + domain::ports::CannedStore
        + domain::ports::TemplateStore
        + domain::ports::ReorgStore
        + domain::ports::ContactStore
        + domain::ports::RateLimiter
        + domain::ports::VisitorStore
        + domain::ports::HookStore
        + domain::ports::AnalyticsStore
        + domain::ports::WorkspaceStore
        + domain::ports::ErasureStore
{
}
