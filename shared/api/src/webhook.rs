//! The wiring every channel webhook function shares, built once at cold start: the channel's
//! adapter (with its credentials), the channel directory and the inbound queue. Each webhook is
//! still its own function; only this wiring and `kit::webhook`'s steps are common.

use std::sync::Arc;

use domain::channels::ChannelAdapter;
use domain::ports::{ChannelDirectory, InboundQueue, MediaResolver};
use kit::http::{json, respond, ApiError};
use kit::webhook::{challenge, receive, Received};
use lambda_http::{Body, Request, Response};
use meter::{Invocation, Trigger};

/// The media copier of a webhook that copies files (`MEDIA_BUCKET` set): one HTTP client and the
/// media bucket, built once at cold start. `None` without a bucket (files keep the provider's
/// reference).
#[cfg(feature = "media")]
pub fn media_copier(
    config: &kit::Config,
    aws: &aws_config::SdkConfig,
) -> Result<Option<Arc<providers::media::MediaCopier>>, kit::ConfigError> {
    let Some(bucket) = config.optional("MEDIA_BUCKET").filter(|b| !b.is_empty()) else { return Ok(None) };
    let sink = Arc::new(providers::s3::S3Files::new(aws_sdk_s3::Client::new(aws), bucket));
    let copier = providers::media::MediaCopier::standard(sink)
        .map_err(|e| kit::ConfigError::Invalid { name: "http client".into(), reason: e.to_string() })?;
    Ok(Some(copier))
}

pub struct Inbound<A> {
    pub adapter: A,
    pub directory: Arc<dyn ChannelDirectory>,
    pub queue: Arc<dyn InboundQueue>,
    /// The public base URL the provider calls (custom domain, local gateway); else the API's.
    pub public_base_url: Option<String>,
    /// This function's memory, for its share of the messages' AWS cost.
    pub memory_mb: u64,
}

impl<A> Inbound<A> {
    /// `TABLE_NAME`, `INBOUND_QUEUE_URL`, optional `PUBLIC_BASE_URL`.
    pub fn from_config(
        adapter: A,
        config: &kit::Config,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self, kit::ConfigError> {
        Ok(Self {
            adapter,
            // Which workspace owns an address is read once per container, not once per message.
            directory: Arc::new(app::cache::CachedDirectory::new(Arc::new(store::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.required("TABLE_NAME")?,
            )))),
            queue: Arc::new(queue::SqsQueue::new(aws_sdk_sqs::Client::new(aws), config.required("INBOUND_QUEUE_URL")?)),
            public_base_url: config.optional("PUBLIC_BASE_URL"),
            memory_mb: meter::memory_mb_from_env(),
        })
    }

    /// The same wiring with another adapter: a webhook whose credentials depend on the request
    /// (the receiving number's Twilio account, the bot in the path) builds one per request.
    pub fn with_adapter<B>(&self, adapter: B) -> Inbound<B> {
        Inbound {
            adapter,
            directory: self.directory.clone(),
            queue: self.queue.clone(),
            public_base_url: self.public_base_url.clone(),
            memory_mb: self.memory_mb,
        }
    }
}

impl<A: ChannelAdapter> Inbound<A> {
    /// Verifies, parses and enqueues, measuring what the request spent.
    pub async fn receive(&self, req: &Request) -> Result<Received, ApiError> {
        self.receive_with(req, None).await
    }

    /// [`Inbound::receive`], copying the media the provider only names into our store first.
    pub async fn receive_with(&self, req: &Request, media: Option<&dyn MediaResolver>) -> Result<Received, ApiError> {
        let inv = Invocation::new(self.memory_mb, 1, Trigger::HttpApi);
        let base = self.public_base_url.as_deref();
        let work = receive(&self.adapter, &*self.directory, &*self.queue, media, req, base, || inv.usage_so_far());
        meter::measure(work).await.0
    }

    /// The JSON webhooks' answer (Meta, Telegram): the handshake's challenge, or 200 once every
    /// event is enqueued.
    pub async fn handle_json(&self, req: Request) -> Response<Body> {
        self.handle_json_with(req, None).await
    }

    /// [`Inbound::handle_json`] with media copied into our store.
    pub async fn handle_json_with(&self, req: Request, media: Option<&dyn MediaResolver>) -> Response<Body> {
        respond(self.receive_with(&req, media).await.map(|r| match r {
            Received::Challenge(c) => challenge(c),
            Received::Enqueued { enqueued, unclaimed } => {
                json(200, &serde_json::json!({ "enqueued": enqueued, "unclaimed": unclaimed }))
            }
        }))
    }
}
