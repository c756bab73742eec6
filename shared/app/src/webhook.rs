//! Receive a webhook: the channel's adapter verifies the request and parses it into canonical
//! events; each event is matched to the workspace owning its receiving address (a channel account),
//! its media the provider only names are copied into our store, and it is put on the inbound FIFO
//! queue in the provider's order. The provider is answered only once every event is enqueued; a
//! failure is an error (the provider retries), and the retry is deduplicated (by the queue within
//! five minutes, by the store after that).

use std::collections::HashMap;

use domain::channels::{ChannelAdapter, ChannelEvent, Rejection, Verified, Webhook};
use domain::events::InboundEvent;
use domain::finance::Usage;
use domain::ports::{ChannelDirectory, InboundQueue, MediaResolver};
use domain::ParseError;
use domain::{Channel, WorkspaceId};
use time::OffsetDateTime;

/// What a webhook request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A subscription handshake: answer with the challenge.
    Challenge(String),
    /// Events enqueued, and those skipped because no workspace receives on their address.
    Enqueued { enqueued: usize, unclaimed: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// Not from the provider (signature, token): never processed.
    #[error("{0}")]
    Unverified(Rejection),
    /// Signed, but not a payload we can read.
    #[error(transparent)]
    Malformed(#[from] ParseError),
    #[error(transparent)]
    Failed(#[from] crate::Error),
}

/// The ports of receiving.
pub struct Receiver<'a> {
    pub adapter: &'a dyn ChannelAdapter,
    pub directory: &'a dyn ChannelDirectory,
    pub queue: &'a dyn InboundQueue,
    /// Copies media the provider only names into our store; `None` keeps the provider's reference.
    pub media: Option<&'a dyn MediaResolver>,
}

impl Receiver<'_> {
    /// Verifies, parses, copies media and enqueues. `usage` is what the invocation has spent so
    /// far: the first message carries it (and each message its own enqueue) into its cost.
    pub async fn receive(
        &self,
        hook: &Webhook<'_>,
        usage: impl Fn() -> Usage,
        now: OffsetDateTime,
    ) -> Result<Received, ReceiveError> {
        let provider = self.adapter.provider();
        match self.adapter.verify(hook) {
            Ok(Verified::Challenge(c)) => return Ok(Received::Challenge(c)),
            Ok(Verified::Events) => {}
            Err(rejection) => {
                tracing::warn!(provider, %rejection, "rejected an unverified webhook request");
                return Err(ReceiveError::Unverified(rejection));
            }
        }
        let events = self.adapter.parse(hook, now)?;
        let mut owners: HashMap<(Channel, String), Option<WorkspaceId>> = HashMap::new();
        let (mut enqueued, mut unclaimed) = (0, 0);
        // The request's own cost goes to the first message; each message adds its enqueue.
        let mut request_usage = Some(usage());
        for event in events {
            let key = (event.channel(), event.our_address().to_owned());
            let owner = match owners.get(&key) {
                Some(o) => o.clone(),
                None => {
                    let o = self.directory.channel_account(key.0, &key.1).await.map_err(crate::Error::from)?;
                    let o = o.map(|a| a.workspace);
                    owners.insert(key.clone(), o.clone());
                    o
                }
            };
            let Some(workspace) = owner else {
                // Acknowledged, not retried: a retry would find no owner either. Logged so a
                // missing channel account is noticed.
                tracing::warn!(provider, channel = %key.0, address = %key.1,
                    "no workspace receives on this address; event skipped");
                unclaimed += 1;
                continue;
            };
            let inbound = match event {
                ChannelEvent::Message(mut m) => {
                    if let Some(r) = self.media.filter(|_| !m.attachments.is_empty()) {
                        r.resolve(&workspace, &key.1, &mut m.attachments).await.map_err(crate::Error::from)?;
                    }
                    let share = request_usage.take().unwrap_or_default()
                        + Usage { sqs_requests_milli: 1000, ..Usage::default() };
                    InboundEvent::Message(m.into_inbound(workspace, now, share))
                }
                ChannelEvent::Status(s) => InboundEvent::Status(s.into_update(workspace)),
                ChannelEvent::Read(r) => InboundEvent::ReadUpTo(r.into_update(workspace)),
            };
            self.queue.enqueue_inbound(&inbound).await.map_err(crate::Error::from)?;
            enqueued += 1;
        }
        tracing::info!(provider, enqueued, unclaimed, "webhook events enqueued");
        Ok(Received::Enqueued { enqueued, unclaimed })
    }
}
