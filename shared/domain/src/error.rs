use thiserror::Error;

/// Input that does not parse into a domain type. Always the caller's fault: it maps to a 4xx.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    #[error("invalid {kind}: {reason}")]
    Invalid { kind: &'static str, reason: String },
    #[error("missing {0}")]
    Missing(&'static str),
}
