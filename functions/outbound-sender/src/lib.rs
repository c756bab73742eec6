//! The outbound sender: for each queued reply, in order per conversation, claim it (queued →
//! sending, a conditional write, so only one attempt ever sends), render it through its channel's
//! adapter (Twilio, WhatsApp, Messenger and Instagram, Telegram), call the provider, and record the outcome.
//!
//! - Accepted: the provider id is recorded; status callbacks move it on from there (Telegram,
//!   which reports none, is `sent` at once).
//! - Refused by the provider (4xx): failed, with its error code and message. Not retried.
//! - Transient (429, 5xx, connection refused): retried here with exponential backoff; if still
//!   failing, the claim is released and SQS redelivers; on the last receive the message is failed.
//! - Ambiguous (the request went out but no answer came back): failed as `outcome_unknown` rather
//!   than resent. A customer receiving a message twice is worse than an agent seeing "resend?".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
pub use providers::outbound::{PriceError, Provider, Providers, SendError, TwilioApi};

use domain::channels::email;
use domain::channels::meta::Meta;
use domain::channels::telegram::Telegram;
use domain::channels::twilio::Twilio;
use domain::channels::whatsapp::WhatsApp;
use domain::channels::{ProviderRequest, RenderError, SendOutcome};
use domain::events::{OutboundJob, OutboundTask};
use domain::finance::service::RateCardCache;
use domain::finance::{follow_up_entry, CostLine, EntryKind, LedgerEntry, Totals, Usage};
use domain::model::{Channel, DeliveryEvent, DeliveryStatus, Direction, Message};
use domain::ports::{
    Claim, ConnectionPusher, EmailTransport, FileStore, NotificationQueue, Order, StoreError, TransportError,
};
use kit::fifo::{parse_body, process_in_order, RecordError};
use lambda_runtime::Error;
use meter::{Invocation, Trigger};
use store::Store;

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Calls to Twilio per delivery of the SQS message.
    pub attempts: u32,
    pub base_delay: Duration,
    /// The queue's maxReceiveCount: on that receive, a still-failing send is marked failed instead of
    /// being left for the dead-letter queue.
    pub max_receives: u32,
}

/// Email's way out: a raw MIME message through SES v2, its attachments read from S3.
pub struct EmailOut {
    pub transport: Arc<dyn EmailTransport>,
    pub files: Arc<dyn FileStore>,
}

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub notifications: Arc<dyn NotificationQueue>,
    pub providers: Providers,
    /// Set when the deployment receives and sends email (`MAIL_BUCKET` configured).
    pub email: Option<EmailOut>,
    /// Web chat's way out: the visitors' socket API (`VISITOR_SOCKET_ENDPOINT`).
    pub visitors: Option<Arc<dyn ConnectionPusher>>,
    /// Twilio's Messages API, for the prices of finished messages.
    pub twilio: TwilioApi,
    pub retry: RetryPolicy,
    pub rates: RateCardCache,
    pub memory_mb: u64,
}

impl Deps {
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let timeout =
            Duration::from_secs(config.parse("PROVIDER_TIMEOUT_SECS", providers::http::API_TIMEOUT.as_secs())?);
        let http = providers::http::client(timeout)
            .map_err(|e| kit::ConfigError::Invalid { name: "http client".into(), reason: e.to_string() })?;
        let twilio = TwilioApi {
            http: http.clone(),
            base_url: config.optional("TWILIO_API_BASE").unwrap_or_else(|| "https://api.twilio.com".into()),
            account_sid: config.required("TWILIO_ACCOUNT_SID")?,
            auth_token: config.secret("TWILIO_AUTH_TOKEN", aws).await?,
        };
        let mut by_channel = HashMap::new();
        let sms = Twilio {
            account_sid: twilio.account_sid.clone(),
            auth_token: twilio.auth_token.clone(),
            public_base_url: config.required("PUBLIC_BASE_URL")?,
        };
        by_channel.insert(Channel::Sms, Provider { adapter: Arc::new(sms), base_url: twilio.base_url.clone() });
        // Optional channels: a deployment sends on them once their credentials are configured.
        if config.has_secret("WHATSAPP_CREDENTIALS") {
            let adapter: WhatsApp = config.json_secret("WHATSAPP_CREDENTIALS", aws).await?;
            let base_url = config.optional("WHATSAPP_API_BASE").unwrap_or_else(|| WHATSAPP_API_BASE.into());
            by_channel.insert(Channel::Whatsapp, Provider { adapter: Arc::new(adapter), base_url });
        }
        if config.has_secret("META_CREDENTIALS") {
            // One app sends for every Page and Instagram account it holds a token for.
            let adapter: Arc<Meta> = Arc::new(config.json_secret("META_CREDENTIALS", aws).await?);
            let base_url = config.optional("META_API_BASE").unwrap_or_else(|| META_API_BASE.into());
            for channel in [Channel::Messenger, Channel::Instagram] {
                by_channel.insert(channel, Provider { adapter: adapter.clone(), base_url: base_url.clone() });
            }
        }
        if config.has_secret("TELEGRAM_CREDENTIALS") {
            let adapter: Telegram = config.json_secret("TELEGRAM_CREDENTIALS", aws).await?;
            let base_url = config.optional("TELEGRAM_API_BASE").unwrap_or_else(|| TELEGRAM_API_BASE.into());
            by_channel.insert(Channel::Telegram, Provider { adapter: Arc::new(adapter), base_url });
        }
        Ok(Self {
            store: Arc::new(store::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.required("TABLE_NAME")?,
            )),
            notifications: Arc::new(queue::SqsQueue::new(
                aws_sdk_sqs::Client::new(aws),
                config.required("NOTIFICATION_QUEUE_URL")?,
            )),
            providers: Providers { http, by_channel },
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
            twilio,
            retry: RetryPolicy {
                attempts: config.parse("SEND_ATTEMPTS", 2u32)?,
                base_delay: Duration::from_millis(config.parse("SEND_RETRY_BASE_MS", 200u64)?),
                max_receives: config.parse("MAX_RECEIVES", 5u32)?,
            },
            rates: RateCardCache::default(),
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

pub async fn run(deps: &Deps, job: &OutboundJob, receive_count: u32, inv: &Invocation) -> Result<(), RecordError> {
    match job.task {
        OutboundTask::Send => send_with(deps, job, receive_count, inv).await,
        OutboundTask::FetchPrice => fetch_price(deps, job, receive_count).await,
    }
}

pub async fn send(deps: &Deps, job: &OutboundJob, receive_count: u32) -> Result<(), RecordError> {
    send_with(deps, job, receive_count, &Invocation::new(deps.memory_mb, 1, Trigger::SqsBatch)).await
}

async fn send_with(deps: &Deps, job: &OutboundJob, receive_count: u32, inv: &Invocation) -> Result<(), RecordError> {
    let now = time::OffsetDateTime::now_utc();
    match deps.store.claim_for_send(&job.workspace, job.conversation_id, job.message_id, now).await? {
        Claim::NotFound => Err(RecordError::Permanent(format!("message {} does not exist", job.message_id).into())),
        Claim::Done(_) => {
            tracing::info!(message = %job.message_id, "already sent; redelivery ignored");
            Ok(())
        }
        Claim::InFlight(_) => {
            fail(
                deps,
                job,
                "outcome_unknown",
                "an earlier send attempt was interrupted before the provider answered; not resent to avoid a duplicate",
            )
            .await
        }
        Claim::Claimed(message) => deliver(deps, job, &message, receive_count, inv).await,
    }
}

/// The AWS usage of sending (the reply API's remainder carried on the job, and this invocation so
/// far) as a ledger entry, priced with the AWS prices of the card the message was estimated with.
async fn usage_entry(
    deps: &Deps,
    job: &OutboundJob,
    m: &Message,
    inv: &Invocation,
) -> Result<Option<LedgerEntry>, StoreError> {
    if m.cost.is_none() {
        return Ok(None);
    }
    let card = deps.rates.card_at(&*deps.store, &m.workspace, m.created_at).await?;
    let usage: Usage = job.usage + inv.usage_so_far();
    let line = usage.cost(&card.aws);
    let totals = Totals { aws_micros: line.amount_micros, ..Totals::default() };
    Ok(follow_up_entry(m, EntryKind::Usage, totals, vec![line], Some(usage), time::OffsetDateTime::now_utc()))
}

/// Reconciles a sent message with the price Twilio rated it at, beside the estimate. Twilio rates
/// messages some time after they finish: while the price is unknown the record is retried (its
/// own FIFO group, so no conversation waits), and after the last receive it is left unreconciled.
async fn fetch_price(deps: &Deps, job: &OutboundJob, receive_count: u32) -> Result<(), RecordError> {
    let Some(m) = deps.store.message(&job.workspace, job.conversation_id, job.message_id).await? else {
        return Err(RecordError::Permanent(format!("message {} does not exist", job.message_id).into()));
    };
    let (Some(sid), Some(cost)) = (m.provider_message_id.clone(), m.cost.clone()) else {
        tracing::info!(message = %m.id, "no provider id or no estimate: nothing to reconcile");
        return Ok(());
    };
    if cost.actual_micros.is_some() {
        return Ok(());
    }
    let last_try = receive_count >= deps.retry.max_receives;
    let price = match deps.twilio.fetch_price(&sid).await {
        Ok(p) => p,
        Err(PriceError::Retryable(e)) if last_try => {
            tracing::warn!(message = %m.id, error = %e, "price lookup kept failing; left unreconciled");
            return Ok(());
        }
        Err(PriceError::Retryable(e)) => return Err(RecordError::Retryable(e.into())),
        Err(PriceError::Permanent(e)) => return Err(RecordError::Permanent(e.into())),
    };
    match price {
        None if last_try => {
            tracing::warn!(message = %m.id, "Twilio never rated the message; left unreconciled");
            Ok(())
        }
        None => Err(RecordError::Retryable(format!("Twilio has not rated {sid} yet").into())),
        Some((_, currency)) if currency != cost.currency => {
            tracing::warn!(message = %m.id, %currency, expected = %cost.currency,
                "Twilio priced the message in another currency than the rate card; not reconciled");
            Ok(())
        }
        Some((micros, _)) => {
            let line =
                CostLine { item: "twilio reported price".into(), quantity: 1, unit_price: None, amount_micros: micros };
            let totals = Totals { actual_micros: micros, reconciled: 1, ..Totals::default() };
            let Some(entry) =
                follow_up_entry(&m, EntryKind::Actual, totals, vec![line], None, time::OffsetDateTime::now_utc())
            else {
                return Ok(());
            };
            match deps.store.record_cost(&entry).await {
                Ok(()) | Err(StoreError::Duplicate) => {
                    tracing::info!(workspace = %m.workspace, message = %m.id, estimate = cost.provider_micros, actual = micros,
                        "provider price reconciled");
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// How one message leaves: a provider's HTTP API, or a raw email through SES.
enum Way<'a> {
    Http { provider: &'a Provider, request: ProviderRequest },
    Email { out: &'a EmailOut, from: String, to: String, raw: Vec<u8> },
}

impl Way<'_> {
    fn provider(&self) -> &'static str {
        match self {
            Way::Http { provider, .. } => provider.adapter.provider(),
            Way::Email { .. } => email::SES_PROVIDER,
        }
    }
    /// The status an accepted send moves to at once (SES accepting is `sent`; its delivery and
    /// bounce events follow).
    fn accepted_status(&self) -> Option<DeliveryStatus> {
        match self {
            Way::Http { provider, .. } => provider.adapter.accepted_status(),
            Way::Email { .. } => Some(DeliveryStatus::Sent),
        }
    }
    async fn attempt(&self, deps: &Deps) -> Result<SendOutcome, SendError> {
        match self {
            Way::Http { provider, request } => deps.providers.send(provider, request).await,
            Way::Email { out, from, to, raw } => {
                out.transport.send_raw(from, to, raw.clone()).await.map_err(|e| match e {
                    TransportError::NotSent(e) => SendError::NotSent(e),
                    TransportError::Ambiguous(e) => SendError::Ambiguous(e),
                })
            }
        }
    }
}

/// Records who took the message and under which id, with the AWS usage of sending it.
async fn record_sent(
    deps: &Deps,
    job: &OutboundJob,
    m: &Message,
    inv: &Invocation,
    provider: &str,
    provider_message_id: &str,
) -> Result<(), RecordError> {
    let usage = usage_entry(deps, job, m, inv).await?;
    let recorded = deps
        .store
        .record_provider_id(
            &job.workspace,
            job.conversation_id,
            job.message_id,
            provider,
            provider_message_id,
            usage.as_ref(),
        )
        .await;
    match recorded {
        // Duplicate: this very write already happened (its usage entry is there).
        Ok(()) | Err(StoreError::Duplicate) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The newest inbound email of the conversation: what a reply answers (subject, Message-ID,
/// references).
async fn answered_email(deps: &Deps, m: &Message) -> Result<Option<Message>, StoreError> {
    let mut cursor = None;
    for _ in 0..4 {
        let page = deps.store.messages(&m.workspace, m.conversation_id, Order::Newest, 100, cursor.as_ref()).await?;
        if let Some(found) =
            page.items.iter().find(|x| x.channel == Channel::Email && x.direction == Direction::Inbound)
        {
            return Ok(Some(found.clone()));
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(None)
}

/// Renders an email reply: threaded on the newest email the customer sent in the conversation,
/// its Reply-To plus-addressed with the conversation, its files read from S3.
async fn render_email(deps: &Deps, out: &EmailOut, m: &Message) -> Result<Result<Vec<u8>, RenderError>, RecordError> {
    let parent = answered_email(deps, m).await?;
    let meta =
        |key: &str| parent.as_ref().and_then(|p| p.metadata.get(key)).and_then(|v| v.as_str()).map(str::to_owned);
    let parent_id = meta(email::META_MESSAGE_ID);
    // Stored newest first (In-Reply-To, then References reversed); the header is oldest first.
    let mut references: Vec<String> = parent
        .as_ref()
        .and_then(|p| p.metadata.get(email::META_REFERENCES))
        .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
        .unwrap_or_default();
    references.reverse();
    references.dedup();
    references.extend(parent_id.clone());
    let account = deps.store.channel_account(Channel::Email, &m.route.our_address).await?;
    let domain_part = m.route.our_address.rsplit_once('@').map_or("switchboard.invalid", |(_, d)| d);
    let mut files = vec![];
    for a in &m.attachments {
        let Some(bytes) = out.files.get_file(&a.url).await? else {
            return Ok(Err(RenderError { code: "attachment_missing", message: format!("{} is gone", a.url) }));
        };
        files.push(email::OutgoingFile {
            filename: a.filename.clone().unwrap_or_else(|| "attachment".into()),
            content_type: a.content_type.clone(),
            bytes,
        });
    }
    let outgoing = email::OutgoingEmail {
        from: m.route.our_address.clone(),
        from_name: account.and_then(|a| a.display_name),
        to: m.route.contact_address.clone(),
        reply_to: email::reply_to_address(&m.route.our_address, m.conversation_id),
        subject: email::reply_subject(meta(email::META_SUBJECT).as_deref(), "Your conversation with us"),
        message_id: format!("{}@{domain_part}", m.id),
        in_reply_to: parent_id,
        references,
        text: m.text.clone().unwrap_or_default(),
        files,
        date: time::OffsetDateTime::now_utc(),
    };
    Ok(email::render(&outgoing))
}

async fn deliver(
    deps: &Deps,
    job: &OutboundJob,
    m: &Message,
    receive_count: u32,
    inv: &Invocation,
) -> Result<(), RecordError> {
    let not_configured = || format!("this deployment has no {} credentials configured", m.channel);
    // The contact may have opted out after the reply was queued: never send past a STOP or an
    // email suppression (the answer to a HELP excepted: HELP is always answered).
    let help_answer = m.metadata.get("auto_reply").and_then(|v| v.as_str()) == Some(domain::consent::AUTO_REPLY_HELP);
    if let Some(identity) = domain::consent::identity_for(m.channel, &m.route.contact_address).filter(|_| !help_answer)
    {
        if let Some(why) = deps.store.consent(&job.workspace, &identity).await?.and_then(|r| r.refusal()) {
            return fail(deps, job, "opted_out", &why).await;
        }
    }
    if m.channel == Channel::Webchat {
        let Some(pusher) = &deps.visitors else {
            return fail(deps, job, "channel_not_configured", &not_configured()).await;
        };
        return push_to_visitor(deps, pusher.as_ref(), job, m, inv).await;
    }
    let way = if m.channel == Channel::Email {
        let Some(out) = &deps.email else { return fail(deps, job, "channel_not_configured", &not_configured()).await };
        match render_email(deps, out, m).await? {
            Ok(raw) => Way::Email { out, from: m.route.our_address.clone(), to: m.route.contact_address.clone(), raw },
            Err(e) => return fail(deps, job, e.code, &e.message).await,
        }
    } else {
        let Some(provider) = deps.providers.by_channel.get(&m.channel) else {
            return fail(deps, job, "channel_not_configured", &not_configured()).await;
        };
        match provider.adapter.render(m) {
            Ok(request) => Way::Http { provider, request },
            Err(e) => return fail(deps, job, e.code, &e.message).await,
        }
    };
    let mut last_error = String::new();
    for attempt in 0..deps.retry.attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(deps.retry.base_delay * 2u32.saturating_pow(attempt - 1)).await;
        }
        match way.attempt(deps).await {
            Ok(SendOutcome::Accepted { provider_message_id }) => {
                record_sent(deps, job, m, inv, way.provider(), &provider_message_id).await?;
                if let Some(status) = way.accepted_status() {
                    let event = DeliveryEvent::new(status, time::OffsetDateTime::now_utc());
                    advance(deps, job, &event).await?;
                }
                tracing::info!(workspace = %job.workspace, message = %job.message_id, provider = way.provider(),
                    %provider_message_id, attempt, "reply accepted by the provider");
                return Ok(());
            }
            Ok(SendOutcome::Rejected { code, message }) => return fail(deps, job, &code, &message).await,
            Ok(SendOutcome::Retryable { http_status, detail }) => last_error = format!("HTTP {http_status}: {detail}"),
            Err(SendError::NotSent(e)) => last_error = format!("not sent: {e}"),
            Err(SendError::Ambiguous(e)) => {
                return fail(
                    deps,
                    job,
                    "outcome_unknown",
                    &format!("no answer from {} ({e}); not resent to avoid a duplicate", way.provider()),
                )
                .await
            }
        }
        tracing::warn!(message = %job.message_id, attempt, error = %last_error, "transient send failure");
    }
    if receive_count >= deps.retry.max_receives {
        return fail(deps, job, "retries_exhausted", &last_error).await;
    }
    deps.store.release_claim(&job.workspace, job.conversation_id, job.message_id).await?;
    Err(RecordError::Retryable(last_error.into()))
}

/// A web chat reply: pushed to every socket (tab) the visitor has open. On screen somewhere it is
/// `delivered`; with none open it is `sent` and waits in the conversation, which the widget reads
/// when it reconnects (`history`). There is no provider to retry: a socket that fails is skipped
/// (and a gone one forgotten). The frame carries the message id, so a widget shows a redelivered
/// frame once.
async fn push_to_visitor(
    deps: &Deps,
    pusher: &dyn ConnectionPusher,
    job: &OutboundJob,
    m: &Message,
    inv: &Invocation,
) -> Result<(), RecordError> {
    use domain::channels::webchat::{self, VisitorFrame, VisitorId};
    let Ok(visitor) = VisitorId::parse(&m.route.contact_address) else {
        return fail(deps, job, "invalid_recipient", &format!("{} is not a web chat visitor", m.route.contact_address))
            .await;
    };
    let Some(mut view) = webchat::view(m, &visitor) else {
        return fail(deps, job, "invalid_recipient", "the message is not for this visitor").await;
    };
    view.status = DeliveryStatus::Delivered;
    let frame = VisitorFrame::Message { message: view };
    let on_screen = webchat::push_to_visitor(&*deps.store, pusher, &job.workspace, &visitor, &frame).await?.delivered;
    record_sent(deps, job, m, inv, webchat::PROVIDER, &m.id.to_string()).await?;
    let status = if on_screen > 0 { DeliveryStatus::Delivered } else { DeliveryStatus::Sent };
    let event = DeliveryEvent::new(status, time::OffsetDateTime::now_utc());
    // Advanced first: a redelivery after this point finds the message settled and never emails twice.
    let moved = advance(deps, job, &event).await?;
    let emailed = on_screen == 0 && moved && email_copy_to_visitor(deps, m, &visitor).await;
    tracing::info!(workspace = %job.workspace, message = %job.message_id, sockets = on_screen, emailed,
        "web chat reply pushed");
    Ok(())
}

/// The visitor left: if they gave an email (seed 001: "We will respond by email"), the reply also
/// goes there, from the workspace's email address, its Reply-To threading an answer back into the
/// same conversation. Best effort: the reply stays in the chat either way.
async fn email_copy_to_visitor(deps: &Deps, m: &Message, visitor: &domain::channels::webchat::VisitorId) -> bool {
    let Some(out) = &deps.email else { return false };
    let ws = &m.workspace;
    let found = async {
        let email = match deps.store.visitor_profile(ws, visitor).await?.and_then(|p| p.email) {
            Some(e) => Some(e.as_str().to_owned()),
            None => deps.store.contact_by_identity(ws, &visitor.identity()).await?.and_then(|c| {
                c.identities.into_iter().find(|i| i.kind == domain::model::IdentityKind::Email).map(|i| i.value)
            }),
        };
        let from = deps.store.channel_accounts(ws).await?.into_iter().find(|a| a.channel == Channel::Email);
        Ok::<_, StoreError>(email.zip(from))
    };
    let (to, from) = match found.await {
        Ok(Some(pair)) => pair,
        Ok(None) => return false,
        Err(e) => {
            tracing::warn!(workspace = %ws, message = %m.id, error = %e, "no email copy: store unavailable");
            return false;
        }
    };
    let domain_part = from.address.rsplit_once('@').map_or("switchboard.invalid", |(_, d)| d);
    let title = from.display_name.clone().unwrap_or_else(|| "us".into());
    let outgoing = email::OutgoingEmail {
        from: from.address.clone(),
        from_name: from.display_name.clone(),
        to: to.clone(),
        reply_to: email::reply_to_address(&from.address, m.conversation_id),
        subject: format!("New reply from {title}"),
        message_id: format!("{}.chat@{domain_part}", m.id),
        in_reply_to: None,
        references: vec![],
        text: format!(
            "{}\n\n--\nYou left the chat before we answered. Reply to this email, or come back to the chat.",
            m.text.clone().unwrap_or_default()
        ),
        files: vec![],
        date: time::OffsetDateTime::now_utc(),
    };
    let raw = match email::render(&outgoing) {
        Ok(raw) => raw,
        Err(e) => {
            tracing::warn!(workspace = %ws, message = %m.id, code = e.code, "no email copy: not renderable");
            return false;
        }
    };
    match out.transport.send_raw(&from.address, &to, raw).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(workspace = %ws, message = %m.id, error = %e, "email copy of a web chat reply not sent");
            false
        }
    }
}

/// Marks the message failed (if nothing later already settled it) and tells agents.
async fn fail(deps: &Deps, job: &OutboundJob, code: &str, message: &str) -> Result<(), RecordError> {
    let event = DeliveryEvent::failed(code, message, time::OffsetDateTime::now_utc());
    if advance(deps, job, &event).await? {
        tracing::warn!(workspace = %job.workspace, message = %job.message_id, code, "reply failed");
    }
    Ok(())
}

/// Moves the message's status forward (if nothing later already settled it) and tells agents, by
/// the one delivery use case every provider's status takes; whether it moved.
async fn advance(deps: &Deps, job: &OutboundJob, event: &DeliveryEvent) -> Result<bool, RecordError> {
    let (ws, conv, msg) = (&job.workspace, job.conversation_id, job.message_id);
    Ok(app::delivery::advance(&*deps.store, &*deps.notifications, ws, conv, msg, event).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        };
        let by_channel =
            HashMap::from([(Channel::Sms, Provider { adapter: Arc::new(sms), base_url: twilio.base_url() })]);
        let deps = Deps {
            store: store.clone(),
            notifications: Arc::new(MemoryQueue::new()),
            providers: Providers { http: reqwest::Client::new(), by_channel },
            email: None,
            visitors: None,
            twilio: TwilioApi {
                http: reqwest::Client::new(),
                base_url: twilio.base_url(),
                account_sid: "ACtest".into(),
                auth_token: "tok".into(),
            },
            retry: RetryPolicy { attempts, base_delay: Duration::from_millis(1), max_receives: 3 },
            rates: RateCardCache::default(),
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
