//! The outbound sender: parses each job of the outbound FIFO queue (in order per conversation) and
//! runs it through `app::send` — a reply out through its channel exactly once, or a provider's
//! price reconciled — mapping the outcome to retry or not.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use app::send::{EmailOut, RetryPolicy, Sender};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use domain::channels::meta::Meta;
use domain::channels::twilio::Twilio;
use domain::channels::whatsapp::WhatsApp;
use domain::events::OutboundJob;
use domain::finance::service::RateCardCache;
use domain::model::Channel;
use domain::ports::{ConnectionPusher, NotificationQueue};
use kit::fifo::{parse_body, process_in_order, RecordError};
use lambda_runtime::Error;
use meter::{Invocation, Trigger};
pub use providers::outbound::{Provider, Providers, TwilioApi};
use store::Store;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub notifications: Arc<dyn NotificationQueue>,
    pub providers: Providers,
    /// Set when the deployment receives and sends email (`MAIL_BUCKET` configured).
    pub email: Option<EmailOut>,
    /// Web chat's way out: the visitors' socket API (`VISITOR_SOCKET_ENDPOINT`).
    pub visitors: Option<Arc<dyn ConnectionPusher>>,
    /// Presigned links to agents' files in the media bucket (`MEDIA_BUCKET`).
    pub media: Option<app::send::MediaLinks>,
    /// Twilio's Messages API, for the prices of finished messages.
    pub twilio: TwilioApi,
    pub retry: RetryPolicy,
    pub rates: RateCardCache,
    /// The outbound queue, where a refused reply's re-send is queued by the workspace's fallback
    /// policy (`OUTBOUND_QUEUE_URL`).
    pub outbound: Option<Arc<dyn domain::ports::OutboundQueue>>,
    pub memory_mb: u64,
}

impl Deps {
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let timeout =
            Duration::from_secs(config.parse("PROVIDER_TIMEOUT_SECS", providers::http::API_TIMEOUT.as_secs())?);
        let http = providers::http::client(timeout)
            .map_err(|e| kit::ConfigError::Invalid { name: "http client".into(), reason: e.to_string() })?;
        let account_sid = config.required("TWILIO_ACCOUNT_SID")?;
        let auth_token = config.secret("TWILIO_AUTH_TOKEN", aws).await?;
        // Twilio accounts by number: a workspace's own where it connected one, else the stack's.
        // Workspaces' own accounts (Twilio numbers, Pages, Telegram bots): one vault for all.
        let vault = api::credentials::vault(config, aws);
        let numbers = api::credentials::twilio_numbers(config, aws, vault.clone()).await?;
        let twilio = TwilioApi {
            http: http.clone(),
            base_url: config.optional("TWILIO_API_BASE").unwrap_or_else(|| "https://api.twilio.com".into()),
            numbers: numbers.clone(),
        };
        let public_base_url = config.required("PUBLIC_BASE_URL")?;
        let mut by_channel = HashMap::new();
        let sms =
            Twilio { account_sid, auth_token, public_base_url: public_base_url.clone(), messaging_service_sid: None };
        let table = config.required("TABLE_NAME")?;
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        // Which numbers send through a Messaging Service: read once per container and TTL.
        let directory: Arc<dyn domain::ports::ChannelDirectory> = Arc::new(app::cache::CachedDirectory::new(Arc::new(
            store::DynamoStore::new(dynamodb.clone(), table.clone()),
        )));
        let twilio_numbers =
            Some(providers::outbound::TwilioSenders { numbers, public_base_url, directory: Some(directory) });
        by_channel.insert(Channel::Sms, Provider { adapter: Arc::new(sms), base_url: twilio.base_url.clone() });
        // Optional channels: a deployment sends on them once their credentials are configured.
        let mut whatsapp_numbers = None;
        if config.has_secret("WHATSAPP_CREDENTIALS") {
            let adapter: Arc<WhatsApp> = Arc::new(config.json_secret("WHATSAPP_CREDENTIALS", aws).await?);
            // Each number with its workspace's own token where it connected one.
            whatsapp_numbers = Some(providers::outbound::WhatsAppSenders {
                tokens: Arc::new(providers::accounts::whatsapp_numbers(
                    vault.clone(),
                    Some(adapter.access_token.clone()),
                )),
                app: adapter.clone(),
            });
            let base_url = config.optional("WHATSAPP_API_BASE").unwrap_or_else(|| WHATSAPP_API_BASE.into());
            by_channel.insert(Channel::Whatsapp, Provider { adapter, base_url });
        }
        let mut meta_pages = None;
        if config.has_secret("META_CREDENTIALS") {
            // One app sends for every Page and Instagram account it holds a token for, and for the
            // workspaces' own Pages with their tokens.
            let adapter: Arc<Meta> = Arc::new(config.json_secret("META_CREDENTIALS", aws).await?);
            meta_pages = Some(providers::outbound::MetaSenders {
                pages: Arc::new(providers::accounts::meta_pages(vault.clone(), adapter.page_tokens.clone())),
                app: adapter.clone(),
            });
            let base_url = config.optional("META_API_BASE").unwrap_or_else(|| META_API_BASE.into());
            for channel in [Channel::Messenger, Channel::Instagram] {
                by_channel.insert(channel, Provider { adapter: adapter.clone(), base_url: base_url.clone() });
            }
        }
        // Telegram: each workspace's own bots (their tokens in the vault, `CREDENTIALS_PREFIX`)
        // and the stack's `TELEGRAM_CREDENTIALS` bot.
        let telegram_bots = Some(api::credentials::telegram_bots(config, aws, vault).await?);
        Ok(Self {
            store: Arc::new(store::DynamoStore::new(dynamodb, table)),
            notifications: Arc::new(queue::SqsQueue::new(
                aws_sdk_sqs::Client::new(aws),
                config.required("NOTIFICATION_QUEUE_URL")?,
            )),
            providers: Providers { http, by_channel, telegram_bots, twilio_numbers, meta_pages, whatsapp_numbers },
            email: config.optional("MAIL_BUCKET").filter(|b| !b.is_empty()).map(|bucket| EmailOut {
                transport: Arc::new(providers::ses::SesTransport::new(
                    aws_sdk_sesv2::Client::new(aws),
                    config.optional("SES_CONFIGURATION_SET").filter(|c| !c.is_empty()),
                )),
                files: Arc::new(providers::s3::S3Files::new(aws_sdk_s3::Client::new(aws), bucket)),
            }),
            visitors: config.optional("VISITOR_SOCKET_ENDPOINT").filter(|e| !e.is_empty()).map(|endpoint| {
                let pusher: Arc<dyn ConnectionPusher> = Arc::new(push::ApiGatewayPusher::new(aws, &endpoint));
                pusher
            }),
            media: config.optional("MEDIA_BUCKET").filter(|b| !b.is_empty()).map(|bucket| app::send::MediaLinks {
                uploads: Arc::new(providers::s3::S3Files::new(aws_sdk_s3::Client::new(aws), bucket.clone())),
                bucket,
            }),
            twilio,
            retry: RetryPolicy {
                attempts: config.parse("SEND_ATTEMPTS", 2u32)?,
                base_delay: Duration::from_millis(config.parse("SEND_RETRY_BASE_MS", 200u64)?),
                max_receives: config.parse("MAX_RECEIVES", 5u32)?,
            },
            rates: RateCardCache::default(),
            outbound: config.optional("OUTBOUND_QUEUE_URL").map(|url| {
                let q: Arc<dyn domain::ports::OutboundQueue> =
                    Arc::new(queue::SqsQueue::new(aws_sdk_sqs::Client::new(aws), url));
                q
            }),
            memory_mb: meter::memory_mb_from_env(),
        })
    }
}

pub const WHATSAPP_API_BASE: &str = domain::channels::whatsapp::API_BASE;
pub const TELEGRAM_API_BASE: &str = domain::channels::telegram::API_BASE;
/// The Messenger Platform Send API (Messenger and Instagram).
pub const META_API_BASE: &str = domain::channels::whatsapp::API_BASE;

pub async fn handle(deps: &Deps, event: SqsEvent) -> Result<SqsBatchResponse, Error> {
    let batch = event.records.len();
    Ok(process_in_order(event, |record| async move {
        let job: OutboundJob = parse_body(&record)?;
        let receive_count = record.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1);
        let inv = Invocation::new(deps.memory_mb, batch, Trigger::SqsBatch);
        meter::measure(run(deps, &job, receive_count, &inv)).await.0
    })
    .await)
}

/// Runs one job, its AWS usage measured by `inv`.
pub async fn run(deps: &Deps, job: &OutboundJob, receive_count: u32, inv: &Invocation) -> Result<(), RecordError> {
    let usage_so_far = || inv.usage_so_far();
    let sender = Sender {
        store: &*deps.store,
        notifications: &*deps.notifications,
        providers: &deps.providers,
        email: deps.email.as_ref(),
        visitors: deps.visitors.as_deref(),
        media: deps.media.as_ref(),
        prices: &deps.twilio,
        retry: &deps.retry,
        rates: &deps.rates,
        fallback: deps.outbound.as_deref(),
        usage_so_far: &usage_so_far,
        clock: &time::OffsetDateTime::now_utc,
    };
    Ok(sender.job(job, receive_count).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::events::OutboundJob;
    use domain::finance::Usage;
    use domain::model::{DeliveryStatus, Message};
    use domain::ports::Claim;

    async fn send(deps: &Deps, job: &OutboundJob, receive_count: u32) -> Result<(), RecordError> {
        run(deps, job, receive_count, &Invocation::new(deps.memory_mb, 1, Trigger::SqsBatch)).await
    }

    async fn fetch_price(deps: &Deps, job: &OutboundJob, receive_count: u32) -> Result<(), RecordError> {
        send(deps, job, receive_count).await
    }
    use domain::model::{Direction, Sender};
    use domain::ports::{ConversationReader, ConversationWrite, DeliveryStore, InboundCommit, InboundStore, Order};
    use domain::{AgentId, MessageId, WorkspaceId};
    use fake_twilio::{Callbacks, FakeTwilio};
    use queue::memory::MemoryQueue;
    use store::contract::seed_conversation;
    use store::MemoryStore;

    struct World {
        deps: Deps,
        store: Arc<MemoryStore>,
        twilio: FakeTwilio,
        ws: WorkspaceId,
    }

    async fn world(attempts: u32) -> World {
        let twilio = FakeTwilio::start("ACtest", "tok", Callbacks::None).await.unwrap();
        let store = Arc::new(MemoryStore::new());
        let sms = Twilio {
            account_sid: "ACtest".into(),
            auth_token: "tok".into(),
            public_base_url: "https://hooks.test".into(),
            messaging_service_sid: None,
        };
        let by_channel =
            HashMap::from([(Channel::Sms, Provider { adapter: Arc::new(sms), base_url: twilio.base_url() })]);
        let deps = Deps {
            store: store.clone(),
            notifications: Arc::new(MemoryQueue::new()),
            providers: Providers {
                http: reqwest::Client::new(),
                by_channel,
                telegram_bots: None,
                twilio_numbers: None,
                meta_pages: None,
                whatsapp_numbers: None,
            },
            email: None,
            visitors: None,
            media: None,
            twilio: TwilioApi {
                http: reqwest::Client::new(),
                base_url: twilio.base_url(),
                numbers: Arc::new(providers::accounts::twilio_numbers(
                    None,
                    Some(domain::credentials::TwilioAccount { account_sid: "ACtest".into(), auth_token: "tok".into() }),
                )),
            },
            retry: RetryPolicy { attempts, base_delay: Duration::from_millis(1), max_receives: 3 },
            rates: RateCardCache::default(),
            outbound: None,
            memory_mb: 128,
        };
        World { deps, store, twilio, ws: WorkspaceId::parse("acme").unwrap() }
    }

    /// A queued reply to `to`, stored the way the reply API stores it.
    async fn queued_reply(w: &World, to: &str) -> OutboundJob {
        let (_, conv) = seed_conversation(w.store.as_ref(), &w.ws, rand_n(), time::OffsetDateTime::now_utc()).await;
        let mut m = w.store.messages(&w.ws, conv.id, Order::Oldest, 1, None).await.unwrap().items.remove(0);
        m.id = MessageId::new();
        m.direction = Direction::Outbound;
        m.sender = Sender::Agent { id: AgentId::parse("alice").unwrap() };
        m.text = Some("On its way!".into());
        m.route.contact_address = to.into();
        m.status = DeliveryStatus::Queued;
        m.status_history.clear();
        m.cost = Some(domain::finance::MessageCost {
            contact_id: conv.contact_id,
            agent: Some(AgentId::parse("alice").unwrap()),
            team: None,
            currency: domain::finance::Currency::usd(),
            rate_card_version: 0,
            provider_micros: 11_300,
            aws_micros: 10,
            actual_micros: None,
            lines: vec![],
        });
        let mut c = w.store.conversation(&w.ws, conv.id).await.unwrap().unwrap();
        let v = c.version;
        c.record_outbound(time::OffsetDateTime::now_utc());
        let commit = InboundCommit {
            hint: None,
            consent: None,
            new_contact: None,
            conversation: ConversationWrite::Update { conversation: c, expected_version: v },
            message: m.clone(),
            provider: "seed".into(),
            provider_message_id: m.id.to_string(),
            cost: None,
        };
        w.store.commit_inbound(commit).await.unwrap();
        OutboundJob::send(w.ws.clone(), conv.id, m.id, Usage::default())
    }

    fn rand_n() -> u32 {
        (ulid::Ulid::new().random() % 9000) as u32
    }

    async fn stored(w: &World, job: &OutboundJob) -> Message {
        w.store.message(&w.ws, job.conversation_id, job.message_id).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn sending_adds_its_usage_and_the_provider_price_reconciles_beside_the_estimate() {
        use domain::ports::CostLedger;
        let w = world(3).await;
        let job = queued_reply(&w, "+14155552671").await;
        send(&w.deps, &job, 1).await.unwrap();
        let m = stored(&w, &job).await;
        assert!(m.cost.as_ref().unwrap().aws_micros >= 10, "usage added to the estimate's AWS share");
        let price = OutboundJob::fetch_price(w.ws.clone(), job.conversation_id, job.message_id);
        // Not rated yet: retried, nothing recorded.
        let sid = m.provider_message_id.clone().unwrap();
        w.twilio.set_price(&sid, None);
        assert!(matches!(fetch_price(&w.deps, &price, 1).await, Err(RecordError::Retryable(_))));
        assert!(stored(&w, &job).await.cost.unwrap().actual_micros.is_none());
        w.twilio.set_price(&sid, Some("-0.00790"));
        fetch_price(&w.deps, &price, 2).await.unwrap();
        fetch_price(&w.deps, &price, 3).await.unwrap(); // a redelivery changes nothing
        let cost = stored(&w, &job).await.cost.unwrap();
        assert_eq!(
            (cost.provider_micros, cost.actual_micros),
            (11_300, Some(7_900)),
            "estimate kept beside the actual"
        );
        let month = domain::finance::ledger::Month::of(m.created_at);
        let total = w.store.counters(&w.ws, month, domain::finance::ledger::Grouping::Total, 10, None).await.unwrap();
        assert_eq!((total.items[0].totals.actual_micros, total.items[0].totals.reconciled), (7_900, 1));
        // Never rated: given up on the last receive, without an error.
        let job2 = queued_reply(&w, "+14155552672").await;
        send(&w.deps, &job2, 1).await.unwrap();
        w.twilio.set_price(&stored(&w, &job2).await.provider_message_id.unwrap(), None);
        let price2 = OutboundJob::fetch_price(w.ws.clone(), job2.conversation_id, job2.message_id);
        fetch_price(&w.deps, &price2, 3).await.unwrap();
    }

    #[tokio::test]
    async fn a_reply_reaches_twilio_once_with_the_documented_request() {
        let w = world(3).await;
        let job = queued_reply(&w, "+14155552671").await;
        send(&w.deps, &job, 1).await.unwrap();
        send(&w.deps, &job, 2).await.unwrap(); // a redelivery
        let got = w.twilio.received();
        assert_eq!(got.len(), 1, "sent exactly once");
        assert_eq!(got[0].get("To"), Some("+14155552671"));
        assert_eq!(got[0].get("From"), Some("+14155550100"));
        assert_eq!(got[0].get("Body"), Some("On its way!"));
        let cb = got[0].get("StatusCallback").unwrap();
        assert!(cb.starts_with("https://hooks.test/webhooks/twilio/status?ws=acme&conv="), "{cb}");
        let m = stored(&w, &job).await;
        assert_eq!(m.status, DeliveryStatus::Sending);
        assert_eq!(m.provider_message_id, got[0].sid);
    }

    #[tokio::test]
    async fn twilio_refusals_fail_the_message_with_its_error() {
        let w = world(3).await;
        let job = queued_reply(&w, "+15005550001").await;
        send(&w.deps, &job, 1).await.unwrap();
        let m = stored(&w, &job).await;
        assert_eq!(m.status, DeliveryStatus::Failed);
        let e = m.last_error().unwrap();
        assert_eq!(e.error_code.as_deref(), Some("21211"));
        assert!(e.error_message.as_deref().unwrap().contains("not a valid phone number"));
        assert_eq!(w.twilio.received().len(), 1, "a refusal is not retried");
    }

    #[tokio::test]
    async fn transient_failures_are_retried_with_backoff() {
        let w = world(3).await;
        w.twilio.script(2, 503, serde_json::json!({"code": 20500, "message": "Internal Server Error", "status": 503}));
        let job = queued_reply(&w, "+14155552671").await;
        send(&w.deps, &job, 1).await.unwrap();
        assert_eq!(w.twilio.received().len(), 3);
        assert_eq!(stored(&w, &job).await.status, DeliveryStatus::Sending);
    }

    #[tokio::test]
    async fn persistent_throttling_releases_for_redelivery_then_fails_on_the_last_receive() {
        let w = world(2).await;
        w.twilio.script(4, 429, serde_json::json!({"code": 20429, "message": "Too Many Requests", "status": 429}));
        let job = queued_reply(&w, "+14155552671").await;
        assert!(matches!(send(&w.deps, &job, 1).await, Err(RecordError::Retryable(_))));
        assert_eq!(stored(&w, &job).await.status, DeliveryStatus::Queued, "released for the redelivery");
        send(&w.deps, &job, 3).await.unwrap();
        let m = stored(&w, &job).await;
        assert_eq!(m.status, DeliveryStatus::Failed);
        assert_eq!(m.last_error().unwrap().error_code.as_deref(), Some("retries_exhausted"));
    }

    #[tokio::test]
    async fn an_interrupted_attempt_is_never_resent() {
        let w = world(3).await;
        let job = queued_reply(&w, "+14155552671").await;
        // A previous invocation claimed the message and died before recording Twilio's answer.
        let claim = w
            .store
            .claim_for_send(&w.ws, job.conversation_id, job.message_id, time::OffsetDateTime::now_utc())
            .await
            .unwrap();
        assert!(matches!(claim, Claim::Claimed(_)));
        send(&w.deps, &job, 2).await.unwrap();
        assert!(w.twilio.received().is_empty());
        assert_eq!(stored(&w, &job).await.last_error().unwrap().error_code.as_deref(), Some("outcome_unknown"));
    }

    #[tokio::test]
    async fn an_unreachable_twilio_is_retryable() {
        let mut w = world(2).await;
        w.deps.providers.by_channel.get_mut(&Channel::Sms).unwrap().base_url = "http://127.0.0.1:9".into();
        let job = queued_reply(&w, "+14155552671").await;
        assert!(matches!(send(&w.deps, &job, 1).await, Err(RecordError::Retryable(_))));
        assert_eq!(stored(&w, &job).await.status, DeliveryStatus::Queued);
    }
}
