//! The one way we build an HTTP client for a provider: connect within 3 s, answer within the
//! request timeout, rustls. Built once per container, shared by every request (its connection
//! pool is the point).
//!
//! Timeouts are sized to fit inside the function that waits (docs/operations.md): a webhook that
//! copies media answers its provider within API Gateway's 29 s, and the sender's worst case per
//! record times its batch stays under its function timeout.

use std::time::Duration;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A provider's API call (a send, a media lookup, a price).
pub const API_TIMEOUT: Duration = Duration::from_secs(8);
/// A media download: the whole body, however large (up to the copier's cap).
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(15);

/// A client whose requests give up after `timeout` (the whole exchange, body included).
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).timeout(timeout).build()
}
