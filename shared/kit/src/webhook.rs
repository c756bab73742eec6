//! The HTTP side of receiving a webhook: the request as the adapter sees it (public URL, lower-case
//! headers, raw body), handed to `app::webhook`, and its outcome as a status — 403 unverified, 400
//! malformed, 503 when something could not be stored or enqueued (the provider retries), and a
//! handshake's challenge as plain text.

pub use app::webhook::Received;
use app::webhook::{ReceiveError, Receiver};
use domain::channels::{ChannelAdapter, Webhook};
use domain::finance::Usage;
use domain::ports::{ChannelDirectory, InboundQueue, MediaResolver};
use lambda_http::{Body, Request, Response};

use crate::http::{body_bytes, public_url, ApiError};

impl From<ReceiveError> for ApiError {
    fn from(e: ReceiveError) -> Self {
        match e {
            ReceiveError::Unverified(rejection) => ApiError::Forbidden(rejection.to_string()),
            ReceiveError::Malformed(e) => e.into(),
            ReceiveError::Failed(e) => e.into(),
        }
    }
}

/// The request as the adapter sees it: the public URL, lower-case headers, the raw body.
fn view(req: &Request, public_base: Option<&str>) -> (String, Vec<(String, String)>) {
    let url = public_url(req, public_base);
    let headers = req
        .headers()
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_ascii_lowercase(), v.to_owned())))
        .collect();
    (url, headers)
}

/// Receives a provider's request through `app::webhook` (verify, parse, copy media, enqueue).
/// `usage` is what the invocation has spent so far.
pub async fn receive(
    adapter: &dyn ChannelAdapter,
    directory: &dyn ChannelDirectory,
    queue: &dyn InboundQueue,
    media: Option<&dyn MediaResolver>,
    req: &Request,
    public_base: Option<&str>,
    usage: impl Fn() -> Usage,
) -> Result<Received, ApiError> {
    let (url, headers) = view(req, public_base);
    let hook = Webhook { method: req.method().as_str(), url: &url, headers: &headers, body: body_bytes(req) };
    let receiver = Receiver { adapter, directory, queue, media };
    Ok(receiver.receive(&hook, usage, time::OffsetDateTime::now_utc()).await?)
}

/// The plain-text answer to a handshake.
pub fn challenge(text: String) -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(Body::Text(text))
        .expect("static response parts are valid")
}
