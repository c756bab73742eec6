//! Maps SDK errors onto the store's retryable / permanent split.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use domain::ports::StoreError;

const RETRYABLE_CODES: [&str; 7] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
    "TransactionConflictException",
];

pub(crate) fn classify<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(se) => {
            if se.err().code().is_some_and(|c| RETRYABLE_CODES.contains(&c)) {
                StoreError::Unavailable(Box::new(err))
            } else if se.err().code() == Some("ValidationException")
                && se.err().message().is_some_and(|m| m.contains("size has exceeded"))
            {
                // An item over 400 KB: the request's fault, not the store's.
                StoreError::Invalid(se.err().message().unwrap_or_default().to_owned())
            } else {
                StoreError::Rejected(Box::new(err))
            }
        }
        SdkError::ConstructionFailure(_) => StoreError::Rejected(Box::new(err)),
        // Timeouts, dispatch failures and unparseable responses: transient as far as we can tell.
        _ => StoreError::Unavailable(Box::new(err)),
    }
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}
