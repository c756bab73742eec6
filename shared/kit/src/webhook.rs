//! The webhook plumbing every channel shares: the adapter verifies the request and parses it into
//! canonical events; each event is matched to the workspace owning its receiving address (a channel
//! account) and put on the inbound FIFO queue, in the provider's order. The provider gets its 2xx
//! only once every event is enqueued; a failure answers 503 so it retries, and the retry is
//! deduplicated (by the queue within five minutes, by the store after that).

use std::collections::HashMap;

use domain::channels::{ChannelAdapter, ChannelEvent, Verified, Webhook};
use domain::events::InboundEvent;
use domain::finance::Usage;
use domain::ports::{ChannelDirectory, InboundQueue, MediaResolver};
use domain::{Channel, WorkspaceId};
use lambda_http::{Body, Request, Response};

use crate::http::{body_bytes, public_url, ApiError};

/// What a verified webhook request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A subscription handshake: answer with the challenge as plain text.
    Challenge(String),
    /// Events enqueued, and those skipped because no workspace receives on their address.
    Enqueued { enqueued: usize, unclaimed: usize },
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

/// Verifies, parses, copies media the provider only names into our store (`media`, if given) and
/// enqueues. `usage` is what the invocation has spent so far: the first message carries it (and
/// each message its own enqueue) into its cost.
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
    match adapter.verify(&hook) {
        Ok(Verified::Challenge(c)) => return Ok(Received::Challenge(c)),
        Ok(Verified::Events) => {}
        Err(rejection) => {
            tracing::warn!(provider = adapter.provider(), %rejection, "rejected an unverified webhook request");
            return Err(ApiError::Forbidden(rejection.to_string()));
        }
    }
    let now = time::OffsetDateTime::now_utc();
    let events = adapter.parse(&hook, now)?;
    let mut owners: HashMap<(Channel, String), Option<WorkspaceId>> = HashMap::new();
    let (mut enqueued, mut unclaimed) = (0, 0);
    // The request's own cost goes to the first message; each message adds its enqueue.
    let mut request_usage = Some(usage());
    for event in events {
        let key = (event.channel(), event.our_address().to_owned());
        let owner = match owners.get(&key) {
            Some(o) => o.clone(),
            None => {
                let o = directory.channel_account(key.0, &key.1).await?.map(|a| a.workspace);
                owners.insert(key.clone(), o.clone());
                o
            }
        };
        let Some(workspace) = owner else {
            // Acknowledged, not retried: a retry would find no owner either. Logged so a missing
            // channel account is noticed.
            tracing::warn!(provider = adapter.provider(), channel = %key.0, address = %key.1,
                "no workspace receives on this address; event skipped");
            unclaimed += 1;
            continue;
        };
        let inbound = match event {
            ChannelEvent::Message(mut m) => {
                if let Some(r) = media.filter(|_| !m.attachments.is_empty()) {
                    r.resolve(&workspace, &mut m.attachments).await?;
                }
                let share =
                    request_usage.take().unwrap_or_default() + Usage { sqs_requests_milli: 1000, ..Usage::default() };
                InboundEvent::Message(m.into_inbound(workspace, now, share))
            }
            ChannelEvent::Status(s) => InboundEvent::Status(s.into_update(workspace)),
            ChannelEvent::Read(r) => InboundEvent::ReadUpTo(r.into_update(workspace)),
        };
        queue.enqueue_inbound(&inbound).await?;
        enqueued += 1;
    }
    tracing::info!(provider = adapter.provider(), enqueued, unclaimed, "webhook events enqueued");
    Ok(Received::Enqueued { enqueued, unclaimed })
}

/// The plain-text answer to a handshake.
pub fn challenge(text: String) -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(Body::Text(text))
        .expect("static response parts are valid")
}
