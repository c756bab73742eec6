//! Send: a queued message of ours leaves through its channel, exactly once, in order per
//! conversation. Claim it (queued → sending, a conditional write, so only one attempt ever sends),
//! render it through its channel's adapter (Twilio, WhatsApp, Messenger and Instagram, Telegram),
//! an email through SES, a web chat reply onto the visitor's sockets, and record the outcome.
//!
//! - Accepted: the provider id is recorded with the AWS usage of sending; status callbacks move it
//!   on from there (Telegram, which reports none, is `sent` at once).
//! - Refused by the provider (4xx): failed, with its error code and message. Not retried.
//! - Transient (429, 5xx, connection refused): retried here with exponential backoff; if still
//!   failing, the claim is released and the queue redelivers; on the last receive the message is
//!   failed.
//! - Ambiguous (the request went out but no answer came back): failed as `outcome_unknown` rather
//!   than resent. A customer receiving a message twice is worse than an agent seeing "resend?".
//!
//! And reconciliation: the price the provider rated a finished message at, beside the estimate.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use domain::channels::webchat::{self, VisitorFrame, VisitorId};
use domain::channels::{email, ProviderRequest, RenderError, SendOutcome};
use domain::events::{OutboundJob, OutboundTask};
use domain::finance::service::RateCardCache;
use domain::finance::{follow_up_entry, CostLine, EntryKind, LedgerEntry, Totals, Usage};
use domain::model::{Channel, DeliveryEvent, DeliveryStatus, Direction, IdentityKind, Message};
use domain::ports::{
    ChannelDirectory, Claim, ConnectionPusher, ConsentStore, CostLedger, EmailTransport, FileStore, InboundStore,
    NotificationQueue, Order, PriceError, PriceLookup, ProviderApi, RateCardStore, StoreError, TransportError,
    VisitorStore,
};
use time::OffsetDateTime;

use crate::delivery::{self, DeliveryPorts};
use crate::Error;

/// What sending needs from the store.
pub trait SendPorts:
    DeliveryPorts
    + ConsentStore
    + ChannelDirectory
    + VisitorStore
    + InboundStore
    + CostLedger
    + RateCardStore
    + crate::fallback::FallbackPorts
{
}
impl<T> SendPorts for T where
    T: DeliveryPorts
        + ConsentStore
        + ChannelDirectory
        + VisitorStore
        + InboundStore
        + CostLedger
        + RateCardStore
        + crate::fallback::FallbackPorts
        + ?Sized
{
}

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Calls to the provider per delivery of the queue message.
    pub attempts: u32,
    pub base_delay: Duration,
    /// The queue's maxReceiveCount: on that receive, a still-failing send is marked failed instead
    /// of being left for the dead-letter queue.
    pub max_receives: u32,
}

/// Email's way out: a raw MIME message through SES v2, its attachments read from S3.
pub struct EmailOut {
    pub transport: Arc<dyn EmailTransport>,
    pub files: Arc<dyn FileStore>,
}

/// Who a mail of ours to an address goes out from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailFrom {
    /// The workspace's support address.
    Account(domain::ports::ChannelAccount),
    /// The workspace receives no email: it has no address to send from.
    NoMailbox,
    /// The address refuses our mail (a hard bounce or a complaint): never past it.
    Suppressed,
}

/// The workspace's address to mail `to` from, unless it has none or `to` refuses our mail.
pub async fn mail_from<S: domain::ports::ChannelDirectory + domain::ports::ConsentStore + ?Sized>(
    store: &S,
    ws: &domain::WorkspaceId,
    to: &str,
) -> Result<MailFrom, StoreError> {
    let Some(from) = store.channel_accounts(ws).await?.into_iter().find(|a| a.channel == Channel::Email) else {
        return Ok(MailFrom::NoMailbox);
    };
    if let Some(identity) = domain::consent::identity_for(Channel::Email, to) {
        if store.consent(ws, &identity).await?.is_some_and(|r| r.refusal().is_some()) {
            return Ok(MailFrom::Suppressed);
        }
    }
    Ok(MailFrom::Account(from))
}

/// The media bucket, whose files (an agent's uploads) providers fetch by a presigned link:
/// Twilio (MMS), WhatsApp, Messenger, Instagram and Telegram take a file by URL.
pub struct MediaLinks {
    pub uploads: Arc<dyn domain::ports::Uploads>,
    pub bucket: String,
}

/// The ports and settings of sending.
pub struct Sender<'a, S: ?Sized> {
    pub store: &'a S,
    pub notifications: &'a dyn NotificationQueue,
    pub providers: &'a dyn ProviderApi,
    /// Set when the deployment receives and sends email.
    pub email: Option<&'a EmailOut>,
    /// Web chat's way out: the visitors' socket API.
    pub visitors: Option<&'a dyn ConnectionPusher>,
    /// Links to the media bucket's files for providers and visitors.
    pub media: Option<&'a MediaLinks>,
    /// Twilio's rated prices, for reconciliation.
    pub prices: &'a dyn PriceLookup,
    pub retry: &'a RetryPolicy,
    pub rates: &'a RateCardCache,
    /// Where the workspace's fallback policy queues the re-send of a refused reply (the outbound
    /// queue itself); `None`: refused replies wait for an agent.
    pub fallback: Option<&'a dyn domain::ports::OutboundQueue>,
    /// AWS usage spent on this job so far (the sender's meter), added to the message's cost.
    pub usage_so_far: &'a (dyn Fn() -> Usage + Send + Sync),
    pub clock: &'a (dyn Fn() -> OffsetDateTime + Send + Sync),
}

/// How one message leaves: a provider's HTTP API, or a raw email through SES.
enum Way<'a> {
    Http {
        channel: Channel,
        adapter: std::sync::Arc<dyn domain::channels::ChannelAdapter>,
        provider: &'static str,
        accepted: Option<DeliveryStatus>,
        request: ProviderRequest,
    },
    Email {
        out: &'a EmailOut,
        from: String,
        to: String,
        raw: Vec<u8>,
    },
}

impl Way<'_> {
    fn provider(&self) -> &'static str {
        match self {
            Way::Http { provider, .. } => provider,
            Way::Email { .. } => email::SES_PROVIDER,
        }
    }
    /// The status an accepted send moves to at once (SES accepting is `sent`; its delivery and
    /// bounce events follow).
    fn accepted_status(&self) -> Option<DeliveryStatus> {
        match self {
            Way::Http { accepted, .. } => *accepted,
            Way::Email { .. } => Some(DeliveryStatus::Sent),
        }
    }
}

impl<S: SendPorts + ?Sized> Sender<'_, S> {
    /// Runs one job of the outbound queue; `receive_count` is how often the queue delivered it.
    pub async fn job(&self, job: &OutboundJob, receive_count: u32) -> Result<(), Error> {
        match job.task {
            OutboundTask::Send => self.send(job, receive_count).await,
            OutboundTask::FetchPrice => self.fetch_price(job, receive_count).await,
        }
    }

    /// Sends a queued message once.
    pub async fn send(&self, job: &OutboundJob, receive_count: u32) -> Result<(), Error> {
        let (ws, conv, msg) = (&job.workspace, job.conversation_id, job.message_id);
        match self.store.claim_for_send(ws, conv, msg, (self.clock)()).await? {
            Claim::NotFound => Err(Error::Invalid(format!("message {msg} does not exist"))),
            Claim::Done(_) => {
                tracing::info!(message = %msg, "already sent; redelivery ignored");
                Ok(())
            }
            Claim::InFlight(m) => {
                self.fail(
                    job,
                    m.channel,
                    "outcome_unknown",
                    "an earlier send attempt was interrupted before the provider answered; not resent to avoid a duplicate",
                )
                .await
            }
            Claim::Claimed(message) => self.deliver(job, &message, receive_count).await,
        }
    }

    async fn deliver(&self, job: &OutboundJob, m: &Message, receive_count: u32) -> Result<(), Error> {
        let not_configured = || format!("this deployment has no {} credentials configured", m.channel);
        // The contact may have opted out after the reply was queued: never send past a STOP or an
        // email suppression (the answer to a HELP excepted: HELP is always answered).
        let help_answer =
            m.metadata.get("auto_reply").and_then(|v| v.as_str()) == Some(domain::consent::AUTO_REPLY_HELP);
        if let Some(identity) =
            domain::consent::identity_for(m.channel, &m.route.contact_address).filter(|_| !help_answer)
        {
            if let Some(why) = self.store.consent(&job.workspace, &identity).await?.and_then(|r| r.refusal()) {
                return self.fail(job, m.channel, "opted_out", &why).await;
            }
        }
        if m.channel == Channel::Webchat {
            let Some(pusher) = self.visitors else {
                return self.fail(job, m.channel, "channel_not_configured", &not_configured()).await;
            };
            return self.push_to_visitor(pusher, job, m).await;
        }
        let way = if m.channel == Channel::Email {
            let Some(out) = self.email else {
                return self.fail(job, m.channel, "channel_not_configured", &not_configured()).await;
            };
            match self.render_email(out, m).await? {
                Ok(raw) => {
                    Way::Email { out, from: m.route.our_address.clone(), to: m.route.contact_address.clone(), raw }
                }
                Err(e) => return self.fail(job, m.channel, e.code, &e.message).await,
            }
        } else {
            let adapter = match self.providers.adapter(m.channel, &m.route.our_address).await {
                Ok(Some(adapter)) => adapter,
                Ok(None) => return self.fail(job, m.channel, "channel_not_configured", &not_configured()).await,
                Err(e) => return Err(Error::Unavailable(e.to_string())),
            };
            let linked = match self.linked(m).await? {
                Ok(linked) => linked,
                Err(why) => return self.fail(job, m.channel, "file_unavailable", &why).await,
            };
            match adapter.render(&linked) {
                Ok(request) => Way::Http {
                    channel: m.channel,
                    provider: adapter.provider(),
                    accepted: adapter.accepted_status(),
                    adapter: adapter.clone(),
                    request,
                },
                Err(e) => return self.fail(job, m.channel, e.code, &e.message).await,
            }
        };
        let mut last_error = String::new();
        for attempt in 0..self.retry.attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(self.retry.base_delay * 2u32.saturating_pow(attempt - 1)).await;
            }
            let answer = match &way {
                Way::Http { channel, adapter, request, .. } => {
                    self.providers.perform(*channel, &**adapter, request).await
                }
                Way::Email { out, from, to, raw } => out.transport.send_raw(from, to, raw.clone()).await,
            };
            match answer {
                Ok(SendOutcome::Accepted { provider_message_id }) => {
                    self.record_sent(job, m, way.provider(), &provider_message_id).await?;
                    if let Some(status) = way.accepted_status() {
                        self.advance(job, m.channel, &DeliveryEvent::new(status, (self.clock)())).await?;
                    }
                    tracing::info!(workspace = %job.workspace, message = %job.message_id, provider = way.provider(),
                        %provider_message_id, attempt, "reply accepted by the provider");
                    return Ok(());
                }
                Ok(SendOutcome::Rejected { code, message }) => return self.fail(job, m.channel, &code, &message).await,
                Ok(SendOutcome::Retryable { http_status, detail }) => {
                    last_error = format!("HTTP {http_status}: {detail}")
                }
                Err(TransportError::NotSent(e)) => last_error = format!("not sent: {e}"),
                Err(TransportError::Ambiguous(e)) => {
                    let why = format!("no answer from {} ({e}); not resent to avoid a duplicate", way.provider());
                    return self.fail(job, m.channel, "outcome_unknown", &why).await;
                }
            }
            tracing::warn!(message = %job.message_id, attempt, error = %last_error, "transient send failure");
        }
        if receive_count >= self.retry.max_receives {
            return self.fail(job, m.channel, "retries_exhausted", &last_error).await;
        }
        self.store.release_claim(&job.workspace, job.conversation_id, job.message_id).await?;
        Err(Error::Unavailable(last_error))
    }

    /// The message as a provider fetches it: files of the media bucket (`s3://`) replaced by links
    /// valid an hour (signing is local: no request). A file elsewhere cannot be sent.
    async fn linked<'m>(&self, m: &'m Message) -> Result<Result<Cow<'m, Message>, String>, StoreError> {
        if !m.attachments.iter().any(|a| a.url.starts_with("s3://")) {
            return Ok(Ok(Cow::Borrowed(m)));
        }
        let mut out = m.clone();
        for a in &mut out.attachments {
            let Some((bucket, key)) = domain::objects::parse_s3_url(&a.url) else { continue };
            match self.media.filter(|l| l.bucket == bucket) {
                Some(links) => a.url = links.uploads.download_url(key, domain::files::PROVIDER_LINK_TTL).await?,
                None => return Ok(Err(format!("{} is not in the media bucket", a.url))),
            }
        }
        Ok(Ok(Cow::Owned(out)))
    }

    /// The AWS usage of sending (the reply API's remainder carried on the job, and this job so
    /// far) as a ledger entry, priced with the AWS prices of the card the message was estimated with.
    async fn usage_entry(&self, job: &OutboundJob, m: &Message) -> Result<Option<LedgerEntry>, StoreError> {
        if m.cost.is_none() {
            return Ok(None);
        }
        let card = self.rates.card_at(self.store, &m.workspace, m.created_at).await?;
        let usage: Usage = job.usage + (self.usage_so_far)();
        let line = usage.cost(&card.aws);
        let totals = Totals { aws_micros: line.amount_micros, ..Totals::default() };
        Ok(follow_up_entry(m, EntryKind::Usage, totals, vec![line], Some(usage), (self.clock)()))
    }

    /// Records who took the message and under which id, with the AWS usage of sending it.
    async fn record_sent(
        &self,
        job: &OutboundJob,
        m: &Message,
        provider: &str,
        provider_message_id: &str,
    ) -> Result<(), Error> {
        let usage = self.usage_entry(job, m).await?;
        let (ws, conv, msg) = (&job.workspace, job.conversation_id, job.message_id);
        match self.store.record_provider_id(ws, conv, msg, provider, provider_message_id, usage.as_ref()).await {
            // Duplicate: this very write already happened (its usage entry is there).
            Ok(()) | Err(StoreError::Duplicate) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The newest inbound email of the conversation: what a reply answers (subject, Message-ID,
    /// references).
    async fn answered_email(&self, m: &Message) -> Result<Option<Message>, StoreError> {
        let mut cursor = None;
        for _ in 0..4 {
            let page =
                self.store.messages(&m.workspace, m.conversation_id, Order::Newest, 100, cursor.as_ref()).await?;
            if let Some(found) =
                page.items.into_iter().find(|x| x.channel == Channel::Email && x.direction == Direction::Inbound)
            {
                return Ok(Some(found));
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
    async fn render_email(&self, out: &EmailOut, m: &Message) -> Result<Result<Vec<u8>, RenderError>, Error> {
        let parent = self.answered_email(m).await?;
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
        let account = self.store.channel_account(Channel::Email, &m.route.our_address).await?;
        let domain_part = email::domain_of(&m.route.our_address);
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
            date: (self.clock)(),
        };
        Ok(email::render(&outgoing))
    }

    /// A web chat reply: pushed to every socket (tab) the visitor has open. On screen somewhere it
    /// is `delivered`; with none open it is `sent` and waits in the conversation, which the widget
    /// reads when it reconnects (`history`). There is no provider to retry: a socket that fails is
    /// skipped (and a gone one forgotten). The frame carries the message id, so a widget shows a
    /// redelivered frame once.
    async fn push_to_visitor(
        &self,
        pusher: &dyn ConnectionPusher,
        job: &OutboundJob,
        m: &Message,
    ) -> Result<(), Error> {
        let Ok(visitor) = VisitorId::parse(&m.route.contact_address) else {
            let why = format!("{} is not a web chat visitor", m.route.contact_address);
            return self.fail(job, m.channel, "invalid_recipient", &why).await;
        };
        let Some(mut view) = webchat::view(m, &visitor) else {
            return self.fail(job, m.channel, "invalid_recipient", "the message is not for this visitor").await;
        };
        view.status = DeliveryStatus::Delivered;
        // An agent's files: a link the widget can open (valid an hour, as for providers).
        if let Ok(linked) = self.linked(m).await? {
            for (file, a) in view.files.iter_mut().zip(&linked.attachments) {
                file.url = Some(a.url.clone());
            }
        }
        let frame = VisitorFrame::Message { message: view };
        let on_screen = webchat::push_to_visitor(self.store, pusher, &job.workspace, &visitor, &frame).await?.delivered;
        self.record_sent(job, m, webchat::PROVIDER, &m.id.to_string()).await?;
        let status = if on_screen > 0 { DeliveryStatus::Delivered } else { DeliveryStatus::Sent };
        // Advanced first: a redelivery after this point finds the message settled and never emails twice.
        let moved = self.advance(job, m.channel, &DeliveryEvent::new(status, (self.clock)())).await?;
        let emailed = on_screen == 0 && moved && self.email_copy_to_visitor(m, &visitor).await;
        tracing::info!(workspace = %job.workspace, message = %job.message_id, sockets = on_screen, emailed,
            "web chat reply pushed");
        Ok(())
    }

    /// The visitor left: if they gave an email (seed 001: "We will respond by email"), the reply
    /// also goes there, from the workspace's email address, its Reply-To threading an answer back
    /// into the same conversation. Best effort: the reply stays in the chat either way.
    async fn email_copy_to_visitor(&self, m: &Message, visitor: &VisitorId) -> bool {
        let Some(out) = self.email else { return false };
        let ws = &m.workspace;
        let found = async {
            let email =
                match self.store.visitor_profile(ws, visitor).await?.and_then(|p| p.email) {
                    Some(e) => Some(e.as_str().to_owned()),
                    None => self.store.contact_by_identity(ws, &visitor.identity()).await?.and_then(|c| {
                        c.identities.into_iter().find(|i| i.kind == IdentityKind::Email).map(|i| i.value)
                    }),
                };
            let Some(to) = email else { return Ok::<_, StoreError>(None) };
            Ok(Some((mail_from(self.store, ws, &to).await?, to)))
        };
        let (from, to) = match found.await {
            Ok(Some((MailFrom::Account(from), to))) => (from, to),
            Ok(None | Some((MailFrom::NoMailbox, _))) => return false,
            Ok(Some((MailFrom::Suppressed, _))) => {
                tracing::info!(workspace = %ws, message = %m.id, "no email copy: the address is suppressed");
                return false;
            }
            Err(e) => {
                tracing::warn!(workspace = %ws, message = %m.id, error = %e, "no email copy: store unavailable");
                return false;
            }
        };
        let domain_part = email::domain_of(&from.address);
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
            date: (self.clock)(),
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

    /// Reconciles a sent message with the price the provider rated it at, beside the estimate.
    /// Twilio rates messages some time after they finish: while the price is unknown the job is
    /// retried (its own FIFO group, so no conversation waits), and after the last receive it is
    /// left unreconciled.
    pub async fn fetch_price(&self, job: &OutboundJob, receive_count: u32) -> Result<(), Error> {
        let Some(m) = self.store.message(&job.workspace, job.conversation_id, job.message_id).await? else {
            return Err(Error::Invalid(format!("message {} does not exist", job.message_id)));
        };
        let (Some(sid), Some(cost)) = (m.provider_message_id.as_deref(), m.cost.as_ref()) else {
            tracing::info!(message = %m.id, "no provider id or no estimate: nothing to reconcile");
            return Ok(());
        };
        if cost.actual_micros.is_some() {
            return Ok(());
        }
        let last_try = receive_count >= self.retry.max_receives;
        let price = match self.prices.price(&m.route.our_address, sid).await {
            Ok(p) => p,
            Err(PriceError::Retryable(e)) if last_try => {
                tracing::warn!(message = %m.id, error = %e, "price lookup kept failing; left unreconciled");
                return Ok(());
            }
            Err(PriceError::Retryable(e)) => return Err(Error::Unavailable(e)),
            Err(PriceError::Permanent(e)) => return Err(Error::Invalid(e)),
        };
        let (micros, currency) = match price {
            None if last_try => {
                tracing::warn!(message = %m.id, "the provider never rated the message; left unreconciled");
                return Ok(());
            }
            None => return Err(Error::Unavailable(format!("the provider has not rated {sid} yet"))),
            Some(price) => price,
        };
        if currency != cost.currency {
            tracing::warn!(message = %m.id, %currency, expected = %cost.currency,
                "the provider priced the message in another currency than the rate card; not reconciled");
            return Ok(());
        }
        let line =
            CostLine { item: "twilio reported price".into(), quantity: 1, unit_price: None, amount_micros: micros };
        let totals = Totals { actual_micros: micros, reconciled: 1, ..Totals::default() };
        let Some(entry) = follow_up_entry(&m, EntryKind::Actual, totals, vec![line], None, (self.clock)()) else {
            return Ok(());
        };
        match self.store.record_cost(&entry).await {
            Ok(()) | Err(StoreError::Duplicate) => {
                tracing::info!(workspace = %m.workspace, message = %m.id, estimate = cost.provider_micros,
                    actual = micros, "provider price reconciled");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Marks the message failed (if nothing later already settled it) and tells agents.
    async fn fail(&self, job: &OutboundJob, channel: Channel, code: &str, message: &str) -> Result<(), Error> {
        if self.advance(job, channel, &DeliveryEvent::failed(code, message, (self.clock)())).await? {
            tracing::warn!(workspace = %job.workspace, message = %job.message_id, code, "reply failed");
        }
        // Also when the job is redelivered after a crash here: the re-send is idempotent.
        if let Some(outbound) = self.fallback {
            let ids = (job.conversation_id, job.message_id);
            crate::fallback::after_failure(self.store, outbound, self.rates, &job.workspace, ids, self.clock).await?;
        }
        Ok(())
    }

    /// Moves the message's status forward by the one delivery use case; whether it moved.
    async fn advance(&self, job: &OutboundJob, channel: Channel, event: &DeliveryEvent) -> Result<bool, Error> {
        let (ws, conv, msg) = (&job.workspace, job.conversation_id, job.message_id);
        delivery::advance(self.store, self.notifications, ws, (conv, msg), channel, event).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::consent::{Change, Record, Source, Status};
    use domain::ports::{ChannelAccount, ChannelDirectory, ConsentStore};
    use store::MemoryStore;

    #[tokio::test]
    async fn mail_goes_from_the_support_address_never_to_a_suppressed_one() {
        let store = MemoryStore::new();
        let ws = domain::WorkspaceId::parse("acme").unwrap();
        assert_eq!(mail_from(&store, &ws, "rui@example.com").await.unwrap(), MailFrom::NoMailbox);
        let support = ChannelAccount {
            display_name: Some("Acme".into()),
            ..ChannelAccount::new(ws.clone(), Channel::Email, "support@acme.example")
        };
        store.connect_channel_account(&support).await.unwrap();
        assert_eq!(mail_from(&store, &ws, "rui@example.com").await.unwrap(), MailFrom::Account(support));
        let bounced = domain::consent::identity_for(Channel::Email, "gone@example.com").unwrap();
        let change = Change {
            status: Status::OptedOut,
            at: time::OffsetDateTime::now_utc(),
            source: Source::Provider {
                provider: "ses".into(),
                reason: "hard bounce".into(),
                provider_message_id: "m1".into(),
            },
        };
        store.put_consent(&ws, &Record::apply(None, &bounced, change)).await.unwrap();
        assert_eq!(mail_from(&store, &ws, "gone@example.com").await.unwrap(), MailFrom::Suppressed);
    }
}
