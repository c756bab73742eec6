//! Outbound webhooks, signed per Standard Webhooks.
//!
//! - [`dispatch`]: a notification becomes one delivery job per endpoint subscribed to its events,
//!   on the webhook queue (SQS standard: a failing endpoint delays no one else). The workspace's
//!   endpoints are remembered per container for a minute, so a workspace without endpoints costs
//!   no request per event; one that has them costs one `SendMessageBatch` and the reads that build
//!   the payload (the conversation and message, one request).
//! - [`deliver`]: one job — sign with every valid secret, POST, append the attempt to the log, and
//!   on failure wait the Standard Webhooks schedule (5 s … 10 h, ~27 h in all; the queue message
//!   comes back after its visibility timeout), then give up. An endpoint failing for a day with no
//!   success is disabled, audited and announced to supervisors and admins.
//! - [`redeliver`]: an admin sends one logged delivery again (attempts count from one).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use domain::audit::AuditEntry;
use domain::events::Notification;
use domain::hooks::{self, AfterFailure, Attempt, DeliveryJob, DeliveryState, Endpoint, Payload, Reach};
use domain::ports::{
    AuditLog, ConversationReader, HookQueue, HookResponse, HookStore, HookTransport, NotificationQueue, StoreError,
};
use domain::WorkspaceId;
use time::{Duration, OffsetDateTime};

use crate::cache::TtlCache;
use crate::Error;

/// How long a container remembers a workspace's endpoints. A new or changed endpoint receives
/// events within this time; the delivery itself always reads the endpoint fresh.
pub const ENDPOINTS_TTL: StdDuration = StdDuration::from_secs(60);

/// The workspace's endpoints, per container.
pub struct EndpointCache(TtlCache<WorkspaceId, Arc<Vec<Endpoint>>>);

impl Default for EndpointCache {
    fn default() -> Self {
        Self(TtlCache::new(ENDPOINTS_TTL))
    }
}

impl EndpointCache {
    pub async fn endpoints<S: HookStore + ?Sized>(
        &self,
        store: &S,
        ws: &WorkspaceId,
    ) -> Result<Arc<Vec<Endpoint>>, StoreError> {
        self.0.get_or_load(ws, || async { Ok(Arc::new(store.endpoints(ws).await?)) }).await
    }
}

/// What dispatching reads.
pub trait DispatchPorts: HookStore + ConversationReader {}
impl<T: HookStore + ConversationReader + ?Sized> DispatchPorts for T {}

/// Enqueues one delivery job per (event, subscribed endpoint) of `event`. `queued_ms`: when the
/// notification was first queued (its SQS `SentTimestamp`), so a notification handled twice
/// yields the same `webhook-id`s. Returns how many jobs were enqueued.
pub async fn dispatch<S: DispatchPorts + ?Sized>(
    store: &S,
    cache: &EndpointCache,
    queue: &dyn HookQueue,
    event: &Notification,
    queued_ms: u64,
    now: OffsetDateTime,
) -> Result<usize, Error> {
    let kinds = hooks::events_of(event);
    if kinds.is_empty() {
        return Ok(0);
    }
    let ws = event.workspace();
    let endpoints = cache.endpoints(store, ws).await?;
    let wanted: Vec<(hooks::EventType, &Endpoint)> =
        kinds.iter().flat_map(|k| endpoints.iter().filter(|e| e.wants(*k)).map(move |e| (*k, e))).collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let data = payload_data(store, event).await?;
    let mut jobs = Vec::with_capacity(wanted.len());
    for (kind, endpoint) in wanted {
        let payload = Payload { kind, timestamp: now, data: data.clone() };
        let body = serde_json::to_string(&payload).map_err(|e| Error::Invalid(format!("payload: {e}")))?;
        jobs.push(DeliveryJob {
            workspace: ws.clone(),
            endpoint_id: endpoint.id.clone(),
            msg_id: hooks::message_id(queued_ms, &event.dedup_id(), kind, &endpoint.id),
            event: kind,
            body,
            manual: false,
        });
    }
    queue.enqueue_deliveries(&jobs).await?;
    tracing::info!(workspace = %ws, jobs = jobs.len(), "webhook deliveries queued");
    Ok(jobs.len())
}

/// The event's fields (without its queue tag), with the conversation and the message it is about
/// as the REST API shows them.
async fn payload_data<S: DispatchPorts + ?Sized>(store: &S, event: &Notification) -> Result<serde_json::Value, Error> {
    let mut data = serde_json::to_value(event).map_err(|e| Error::Invalid(format!("event: {e}")))?;
    if let Some(map) = data.as_object_mut() {
        map.remove("type");
    }
    let ws = event.workspace();
    let (conversation, message) = match event {
        Notification::MessageCreated { conversation_id, message_id, .. }
        | Notification::DeliveryStatusChanged { conversation_id, message_id, .. } => {
            store.conversation_with_message(ws, *conversation_id, *message_id).await?
        }
        _ => match event.conversation() {
            Some(id) => (store.conversation(ws, id).await?, None),
            None => (None, None),
        },
    };
    let to_json = |v: serde_json::Result<serde_json::Value>| v.map_err(|e| Error::Invalid(format!("payload: {e}")));
    if let Some(map) = data.as_object_mut() {
        if let Some(c) = conversation {
            map.insert("conversation".into(), to_json(serde_json::to_value(&c))?);
        }
        if let Some(m) = message {
            map.insert("message".into(), to_json(serde_json::to_value(&m))?);
        }
    }
    Ok(data)
}

/// How deliveries behave where this runs.
#[derive(Clone, Debug)]
pub struct DeliveryPolicy {
    /// The waits between attempts (`hooks::SCHEDULE` in AWS).
    pub schedule: Vec<Duration>,
    /// Failing without a success this long disables an endpoint (`hooks::DISABLE_AFTER`).
    pub disable_after: Duration,
    pub reach: Reach,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self { schedule: hooks::SCHEDULE.to_vec(), disable_after: hooks::DISABLE_AFTER, reach: Reach::Public }
    }
}

/// What delivering needs.
pub struct Deliverer<'a, S: ?Sized> {
    pub store: &'a S,
    pub transport: &'a dyn HookTransport,
    pub queue: &'a dyn HookQueue,
    pub notifications: &'a dyn NotificationQueue,
    pub policy: &'a DeliveryPolicy,
}

/// What store deliveries use.
pub trait DeliverPorts: HookStore + AuditLog {}
impl<T: HookStore + AuditLog + ?Sized> DeliverPorts for T {}

/// One attempt's outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivered {
    /// 2xx.
    Succeeded,
    /// Failed; the queue message comes back after the wait (already set on it).
    Retrying(Duration),
    /// Failed for good: the schedule is spent, or the endpoint is disabled.
    GaveUp,
    /// The endpoint no longer exists: nothing to do.
    Dropped,
}

impl<S: DeliverPorts + ?Sized> Deliverer<'_, S> {
    /// Attempt `attempt` (1-based: the queue message's receive count) of `job`; `receipt` is the
    /// queue message to delay when another attempt follows.
    pub async fn deliver(
        &self,
        job: &DeliveryJob,
        attempt: u32,
        receipt: &str,
        now: OffsetDateTime,
    ) -> Result<Delivered, Error> {
        let Some(endpoint) = self.store.endpoint(&job.workspace, &job.endpoint_id).await? else {
            tracing::info!(workspace = %job.workspace, endpoint = %job.endpoint_id, "endpoint deleted: delivery dropped");
            return Ok(Delivered::Dropped);
        };
        let refused = if !endpoint.enabled {
            Some("the endpoint is disabled; not sent".to_owned())
        } else {
            hooks::check_url(&endpoint.url, self.policy.reach).err().map(|e| e.to_string())
        };
        if let Some(error) = refused {
            let logged = Attempt { at: now, status_code: None, latency_ms: 0, error: Some(error), manual: job.manual };
            self.store.record_attempt(job, &logged, DeliveryState::Failed, None).await?;
            return Ok(Delivered::GaveUp);
        }
        let signed = hooks::sign_with(&endpoint.secrets, &job.msg_id, now, job.body.as_bytes())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let HookResponse { status, latency_ms, error } = self.transport.post(&endpoint.url, &signed, &job.body).await;
        let logged = Attempt { at: now, status_code: status, latency_ms, error, manual: job.manual };
        if logged.succeeded() {
            self.store.record_attempt(job, &logged, DeliveryState::Succeeded, None).await?;
            if hooks::success_worth_recording(&endpoint, now) {
                self.update_endpoint(endpoint, |e| {
                    e.last_success_at = Some(now);
                    e.failing_since = None;
                })
                .await?;
            }
            tracing::info!(workspace = %job.workspace, endpoint = %job.endpoint_id, msg = %job.msg_id, status, latency_ms, "webhook delivered");
            return Ok(Delivered::Succeeded);
        }
        tracing::warn!(
            workspace = %job.workspace, endpoint = %job.endpoint_id, msg = %job.msg_id, attempt, status,
            error = logged.error.as_deref().unwrap_or(""), "webhook attempt failed"
        );
        let verdict = hooks::after_failure(&endpoint, now, self.policy.disable_after);
        let disabled = verdict == AfterFailure::Disable;
        let next = if disabled { None } else { hooks::next_delay(&self.policy.schedule, attempt) };
        let state = if next.is_some() { DeliveryState::Retrying } else { DeliveryState::Failed };
        self.store.record_attempt(job, &logged, state, next.map(|d| now + d)).await?;
        match verdict {
            AfterFailure::StartStreak => {
                self.update_endpoint(endpoint, |e| e.failing_since = Some(now)).await?;
            }
            AfterFailure::Continue => {}
            AfterFailure::Disable => self.disable(endpoint, now).await?,
        }
        match next {
            Some(wait) => {
                self.queue.retry_after(receipt, wait).await?;
                Ok(Delivered::Retrying(wait))
            }
            None => Ok(Delivered::GaveUp),
        }
    }

    /// A read-modify-write of the endpoint at its version; a concurrent change wins (the next
    /// attempt sees it).
    async fn update_endpoint(&self, mut e: Endpoint, change: impl FnOnce(&mut Endpoint)) -> Result<(), Error> {
        let expected = e.version;
        change(&mut e);
        e.version += 1;
        match self.store.put_endpoint(&e, Some(expected)).await {
            Ok(()) | Err(StoreError::Conflict) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    async fn disable(&self, endpoint: Endpoint, now: OffsetDateTime) -> Result<(), Error> {
        let failing_since = endpoint.failing_since.unwrap_or(now);
        let (ws, id, url) = (endpoint.workspace.clone(), endpoint.id.clone(), endpoint.url.clone());
        let reason = format!("failing since {failing_since} without a success");
        self.update_endpoint(endpoint, |e| {
            e.enabled = false;
            e.disabled_reason = Some(reason.clone());
            e.updated_at = now;
        })
        .await?;
        let audit = AuditEntry::new(
            ws.clone(),
            None,
            AuditEntry::system(),
            "webhook_disabled",
            serde_json::json!({ "endpoint_id": id, "url": url, "reason": reason }),
            now,
        );
        self.store.record_audit(&audit).await?;
        self.notifications
            .publish(&Notification::WebhookEndpointDisabled {
                workspace: ws.clone(),
                endpoint_id: id.clone(),
                url,
                failing_since,
            })
            .await?;
        tracing::warn!(workspace = %ws, endpoint = %id, "webhook endpoint disabled after a day of failures");
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RedeliverError {
    #[error("no such delivery")]
    NotFound,
    #[error(transparent)]
    App(#[from] Error),
}

/// Sends one logged delivery again, as it was (same `webhook-id`: a receiver that got it already
/// drops the copy).
pub async fn redeliver<S: HookStore + ?Sized>(
    store: &S,
    queue: &dyn HookQueue,
    ws: &WorkspaceId,
    endpoint: &str,
    msg_id: &str,
) -> Result<DeliveryJob, RedeliverError> {
    let d = store.delivery(ws, endpoint, msg_id).await.map_err(Error::from)?.ok_or(RedeliverError::NotFound)?;
    let job = DeliveryJob {
        workspace: d.workspace,
        endpoint_id: d.endpoint_id,
        msg_id: d.msg_id,
        event: d.event,
        body: d.body,
        manual: true,
    };
    queue.enqueue_deliveries(std::slice::from_ref(&job)).await.map_err(Error::from)?;
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::hooks::{EventType, Secret};
    use std::sync::Mutex;
    use store::MemoryStore;

    #[derive(Default)]
    struct Queue {
        jobs: Mutex<Vec<DeliveryJob>>,
        delays: Mutex<Vec<(String, Duration)>>,
    }

    #[async_trait::async_trait]
    impl HookQueue for Queue {
        async fn enqueue_deliveries(&self, jobs: &[DeliveryJob]) -> Result<(), domain::ports::QueueError> {
            self.jobs.lock().unwrap().extend_from_slice(jobs);
            Ok(())
        }
        async fn retry_after(&self, receipt: &str, delay: Duration) -> Result<(), domain::ports::QueueError> {
            self.delays.lock().unwrap().push((receipt.to_owned(), delay));
            Ok(())
        }
    }

    /// Answers with the next status of its script (then the last one), recording what it got.
    struct Receiver {
        script: Mutex<Vec<Option<u16>>>,
        got: Mutex<Vec<(String, hooks::Signed, String)>>,
    }

    #[async_trait::async_trait]
    impl HookTransport for Receiver {
        async fn post(&self, url: &str, signed: &hooks::Signed, body: &str) -> HookResponse {
            self.got.lock().unwrap().push((url.to_owned(), signed.clone(), body.to_owned()));
            let mut script = self.script.lock().unwrap();
            let status = if script.len() > 1 { script.remove(0) } else { script[0] };
            HookResponse { status, latency_ms: 3, error: status.is_none().then(|| "connection refused".to_owned()) }
        }
    }

    #[derive(Default)]
    struct Notes(Mutex<Vec<Notification>>);

    #[async_trait::async_trait]
    impl NotificationQueue for Notes {
        async fn publish(&self, event: &Notification) -> Result<(), domain::ports::QueueError> {
            self.0.lock().unwrap().push(event.clone());
            Ok(())
        }
    }

    fn endpoint(ws: &WorkspaceId, events: &[EventType], now: OffsetDateTime) -> Endpoint {
        Endpoint {
            id: hooks::endpoint_id(ulid::Ulid::new()),
            workspace: ws.clone(),
            url: "https://hooks.example.com/in".into(),
            description: None,
            events: events.iter().copied().collect(),
            enabled: true,
            secrets: vec![Secret::from_bytes(&[4; 32], now).unwrap()],
            created_at: now,
            updated_at: now,
            failing_since: None,
            last_success_at: None,
            disabled_reason: None,
            version: 1,
        }
    }

    #[tokio::test]
    async fn a_new_conversation_reaches_each_subscriber_once_per_event_it_wants() {
        let store = MemoryStore::new();
        let ws = WorkspaceId::parse("demo").unwrap();
        let now = OffsetDateTime::now_utc();
        let (_, conv) = store::contract::seed_conversation(&store, &ws, 1, now).await;
        let msg = store.messages(&ws, conv.id, domain::ports::Order::Oldest, 1, None).await.unwrap().items.remove(0);
        let all = endpoint(&ws, &[], now);
        let created_only = endpoint(&ws, &[EventType::ConversationCreated], now);
        let mut off = endpoint(&ws, &[], now);
        off.enabled = false;
        for e in [&all, &created_only, &off] {
            store.put_endpoint(e, None).await.unwrap();
        }
        let queue = Queue::default();
        let cache = EndpointCache::default();
        let event = Notification::MessageCreated {
            workspace: ws.clone(),
            conversation_id: conv.id,
            message_id: msg.id,
            direction: domain::model::Direction::Inbound,
            channel: domain::model::Channel::Sms,
            opened: true,
        };
        assert_eq!(dispatch(&store, &cache, &queue, &event, 1_000, now).await.unwrap(), 3);
        // Handled again (a redelivered notification): the same ids.
        dispatch(&store, &cache, &queue, &event, 1_000, now).await.unwrap();
        let jobs = queue.jobs.lock().unwrap().clone();
        assert_eq!(
            jobs[..3].iter().map(|j| &j.msg_id).collect::<Vec<_>>(),
            jobs[3..].iter().map(|j| &j.msg_id).collect::<Vec<_>>()
        );
        let to = |e: &Endpoint| jobs[..3].iter().filter(|j| j.endpoint_id == e.id).map(|j| j.event).collect::<Vec<_>>();
        assert_eq!(to(&all), [EventType::ConversationCreated, EventType::MessageCreated]);
        assert_eq!(to(&created_only), [EventType::ConversationCreated]);
        let body: serde_json::Value = serde_json::from_str(&jobs[0].body).unwrap();
        assert_eq!(body["type"], "conversation.created");
        assert_eq!(body["data"]["conversation"]["id"], conv.id.to_string());
        assert_eq!(body["data"]["message"]["text"], "hello");
        assert!(body["data"].get("type").is_none());
        // Typing is live-only: nothing, and no read.
        let typing = Notification::ContactTyping {
            workspace: ws.clone(),
            conversation_id: conv.id,
            typing: true,
            id: "1".into(),
        };
        assert_eq!(dispatch(&store, &cache, &queue, &typing, 1_000, now).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn failures_wait_the_schedule_then_give_up_and_a_day_of_them_disables_the_endpoint() {
        let store = MemoryStore::new();
        let ws = WorkspaceId::parse("demo").unwrap();
        let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let e = endpoint(&ws, &[], t0);
        store.put_endpoint(&e, None).await.unwrap();
        let job = DeliveryJob {
            workspace: ws.clone(),
            endpoint_id: e.id.clone(),
            msg_id: hooks::message_id(1, "n", EventType::MessageCreated, &e.id),
            event: EventType::MessageCreated,
            body: "{\"type\":\"message.created\"}".into(),
            manual: false,
        };
        let receiver = Receiver { script: Mutex::new(vec![Some(500), None, Some(200)]), got: Mutex::default() };
        let (queue, notes) = (Queue::default(), Notes::default());
        let policy = DeliveryPolicy { reach: Reach::Public, ..Default::default() };
        let d =
            Deliverer { store: &store, transport: &receiver, queue: &queue, notifications: &notes, policy: &policy };
        assert_eq!(d.deliver(&job, 1, "r1", t0).await.unwrap(), Delivered::Retrying(Duration::seconds(5)));
        assert_eq!(store.endpoint(&ws, &e.id).await.unwrap().unwrap().failing_since, Some(t0));
        let t1 = t0 + Duration::seconds(5);
        assert_eq!(d.deliver(&job, 2, "r1", t1).await.unwrap(), Delivered::Retrying(Duration::minutes(5)));
        assert_eq!(d.deliver(&job, 3, "r1", t1 + Duration::minutes(5)).await.unwrap(), Delivered::Succeeded);
        let logged = store.delivery(&ws, &e.id, &job.msg_id).await.unwrap().unwrap();
        assert_eq!(logged.attempts.iter().map(|a| a.status_code).collect::<Vec<_>>(), [Some(500), None, Some(200)]);
        assert_eq!(logged.state, DeliveryState::Succeeded);
        let healed = store.endpoint(&ws, &e.id).await.unwrap().unwrap();
        assert_eq!((healed.failing_since, healed.last_success_at.is_some()), (None, true));
        // Every attempt signed with the endpoint's secret over the same body.
        for (_, signed, body) in receiver.got.lock().unwrap().iter() {
            let key = e.secrets[0].bytes().unwrap();
            assert!(hooks::verify(
                &key,
                &job.msg_id,
                signed.timestamp,
                &signed.signature,
                body.as_bytes(),
                OffsetDateTime::from_unix_timestamp(signed.timestamp).unwrap(),
                Duration::minutes(5)
            ));
        }
        assert_eq!(queue.delays.lock().unwrap().len(), 2);

        // Now it fails for good: the last attempt of the schedule gives up; a day in, it is disabled.
        let down = Receiver { script: Mutex::new(vec![Some(503)]), got: Mutex::default() };
        let d = Deliverer { store: &store, transport: &down, queue: &queue, notifications: &notes, policy: &policy };
        let t2 = t1 + Duration::hours(1);
        assert_eq!(d.deliver(&job, 8, "r2", t2).await.unwrap(), Delivered::GaveUp);
        assert_eq!(store.delivery(&ws, &e.id, &job.msg_id).await.unwrap().unwrap().state, DeliveryState::Failed);
        assert_eq!(
            d.deliver(&job, 1, "r3", t2 + Duration::hours(23)).await.unwrap(),
            Delivered::Retrying(Duration::seconds(5))
        );
        assert!(notes.0.lock().unwrap().is_empty());
        assert_eq!(d.deliver(&job, 2, "r3", t2 + Duration::hours(24)).await.unwrap(), Delivered::GaveUp);
        let off = store.endpoint(&ws, &e.id).await.unwrap().unwrap();
        assert!(!off.enabled && off.disabled_reason.is_some());
        assert!(matches!(notes.0.lock().unwrap()[..], [Notification::WebhookEndpointDisabled { .. }]));
        let audit = store.audit_trail(&ws, None, 10, None).await.unwrap().items;
        assert_eq!(audit[0].action, "webhook_disabled");
        // Disabled: not sent, logged as such.
        let sent = down.got.lock().unwrap().len();
        assert_eq!(d.deliver(&job, 1, "r4", t2 + Duration::hours(25)).await.unwrap(), Delivered::GaveUp);
        assert_eq!(down.got.lock().unwrap().len(), sent);

        // An admin sends it again: the same id and body, marked manual.
        let again = redeliver(&store, &queue, &ws, &e.id, &job.msg_id).await.unwrap();
        assert_eq!(
            (again.msg_id.as_str(), again.body.as_str(), again.manual),
            (job.msg_id.as_str(), job.body.as_str(), true)
        );
        assert!(matches!(
            redeliver(&store, &queue, &ws, &e.id, "msg_01ARZ3NDEKTSV4RRFFQ69G5FAV").await,
            Err(RedeliverError::NotFound)
        ));
    }

    #[tokio::test]
    async fn a_private_address_is_never_posted_to_in_aws() {
        let store = MemoryStore::new();
        let ws = WorkspaceId::parse("demo").unwrap();
        let now = OffsetDateTime::now_utc();
        let mut e = endpoint(&ws, &[], now);
        e.url = "https://169.254.169.254/latest/meta-data/".into();
        store.put_endpoint(&e, None).await.unwrap();
        let job = DeliveryJob {
            workspace: ws.clone(),
            endpoint_id: e.id.clone(),
            msg_id: hooks::message_id(1, "n", EventType::MessageCreated, &e.id),
            event: EventType::MessageCreated,
            body: "{}".into(),
            manual: false,
        };
        let receiver = Receiver { script: Mutex::new(vec![Some(200)]), got: Mutex::default() };
        let (queue, notes) = (Queue::default(), Notes::default());
        let policy = DeliveryPolicy::default();
        let d =
            Deliverer { store: &store, transport: &receiver, queue: &queue, notifications: &notes, policy: &policy };
        assert_eq!(d.deliver(&job, 1, "r", now).await.unwrap(), Delivered::GaveUp);
        assert!(receiver.got.lock().unwrap().is_empty());
    }
}
