//! Switchboard's local stack. `switchboard-local up` runs the whole platform on this machine: DynamoDB
//! Local and moto on loopback, the template's table and queues, the gateway serving every route and
//! queue through the functions' own handlers, and a fake Twilio that receives replies and posts
//! delivery callbacks. Tests use [`gateway::Stack`] the same way, one isolated stack each.

pub mod gateway;
pub mod provision;
pub mod services;
pub mod sockets;
pub mod template;

/// Fixed, public development values. Never used outside the local stack.
pub mod dev {
    pub const JWT_SECRET: &str = "local-dev-jwt-secret-not-for-production";
    pub const TWILIO_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
    pub const TWILIO_AUTH_TOKEN: &str = "local-dev-twilio-auth-token";
    pub const WORKSPACE: &str = "demo";
    pub const SMS_NUMBER: &str = "+14155550100";
    pub const AGENT: &str = "alice";
}
