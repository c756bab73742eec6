//! Structured JSON logs for CloudWatch. Message bodies and secrets are never logged at info level:
//! handlers log ids, channels and outcomes only.

use tracing_subscriber::EnvFilter;

/// Initialises JSON logging once. The level comes from `RUST_LOG`, else Lambda's
/// `AWS_LAMBDA_LOG_LEVEL`, else `info`.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().map(|l| l.to_lowercase()))
        .unwrap_or_else(|| "info".to_owned());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::new(filter))
        .with_current_span(false)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

/// Human-readable logs for the local stack.
pub fn init_pretty() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let _ = tracing_subscriber::fmt().with_env_filter(EnvFilter::new(filter)).with_target(false).try_init();
}
