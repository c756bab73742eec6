//! POST /conversations/{id}/messages — an agent's reply.
//!
//! Body: `{"text": "...", "channel": "sms"}` (`channel` optional: the customer's last channel; any
//! channel the customer wrote on in this conversation may be named), or on WhatsApp
//! `{"template": {"name", "language", "parameters": [...]}}` naming an approved template of the
//! workspace's registry: the only message WhatsApp accepts once its 24-hour window has closed.
//! Messenger and Instagram replies within 24 hours of the customer's last message there go out as
//! normal responses, up to 7 days with Meta's `HUMAN_AGENT` tag, and are refused (422) after that.
//! Header `Idempotency-Key` is required. The reply, the conversation update and the idempotency
//! record commit in one transaction; then the outbound job is enqueued and the record marked so.
//! A retry with the same key replays the first answer (and finishes an enqueue that failed); the
//! same key with a different request is refused. Nothing is ever sent twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use app::reply::{self, Composed, Queued, ReplyError, ReplyRequest};
use base64::Engine;
use domain::channels::rich::{Interactive, Location};
use domain::channels::templates::TemplateError;
use domain::channels::whatsapp::TemplateSend;
use domain::finance::ledger::Month;
use domain::finance::service::{check_budgets, hard_stop, RateCardCache};
use domain::finance::{estimate_message, Costing, Usage};
use domain::model::{Attachment, Channel, Message, Sender};
use domain::ports::{NotificationQueue, OutboundQueue};
use domain::{ConversationId, IdempotencyKey, MessageId};
use kit::auth::{Authenticator, Principal};
use kit::http::{body_bytes, header, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use meter::{Invocation, Trigger};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use store::Store;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub outbound: Arc<dyn OutboundQueue>,
    /// Budget alerts go to supervisors through the notification queue.
    pub notifications: Arc<dyn NotificationQueue>,
    pub auth: Authenticator,
    /// The most SMS segments one reply may take (each is billed), unless the workspace's settings
    /// say otherwise.
    pub max_sms_segments: u32,
    pub settings: app::cache::SettingsCache,
    /// The media bucket: the files agents uploaded (`MEDIA_BUCKET`).
    pub uploads: Option<Arc<dyn domain::ports::Uploads>>,
    pub rates: RateCardCache,
    pub memory_mb: u64,
}

impl Deps {
    pub fn new(
        store: Arc<dyn Store>,
        outbound: Arc<dyn OutboundQueue>,
        notifications: Arc<dyn NotificationQueue>,
        auth: Authenticator,
        max_sms_segments: u32,
    ) -> Self {
        Self {
            store,
            outbound,
            notifications,
            auth,
            max_sms_segments,
            settings: Default::default(),
            uploads: None,
            rates: RateCardCache::default(),
            memory_mb: meter::memory_mb_from_env(),
        }
    }

    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let sqs = aws_sdk_sqs::Client::new(aws);
        let s3 = providers::s3::S3Files::new(aws_sdk_s3::Client::new(aws), config.required("MEDIA_BUCKET")?);
        Ok(Self::new(
            Arc::new(store::DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), config.required("TABLE_NAME")?)),
            Arc::new(queue::SqsQueue::new(sqs.clone(), config.required("OUTBOUND_QUEUE_URL")?)),
            Arc::new(queue::SqsQueue::new(sqs, config.required("NOTIFICATION_QUEUE_URL")?)),
            Authenticator::from_config(config, aws).await?,
            config.parse("MAX_SMS_SEGMENTS", 10u32)?,
        )
        .with_uploads(Arc::new(s3)))
    }

    pub fn with_uploads(mut self, uploads: Arc<dyn domain::ports::Uploads>) -> Self {
        self.uploads = Some(uploads);
        self
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = SendMessageRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    #[serde(default)]
    text: String,
    #[serde(default)]
    channel: Option<Channel>,
    /// A WhatsApp template (the only message WhatsApp allows outside its 24-hour window).
    #[serde(default)]
    template: Option<TemplateSend>,
    /// Files uploaded with `POST /uploads`, by key (the channel's limits apply: 422 otherwise).
    #[serde(default)]
    attachments: Vec<domain::files::FileRef>,
    /// WhatsApp: reply buttons or a list; the customer's tap comes back as their answer.
    #[serde(default)]
    interactive: Option<Interactive>,
    /// WhatsApp: an emoji reaction to one of the customer's messages in this conversation (`""`
    /// takes it back).
    #[serde(default)]
    reaction: Option<ReactionDraft>,
    /// WhatsApp: a location pin.
    #[serde(default)]
    location: Option<Location>,
    /// WhatsApp: one of this conversation's messages the reply quotes.
    #[serde(default)]
    reply_to: Option<MessageId>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReactionDraft {
    message_id: MessageId,
    emoji: String,
}

impl Draft {
    /// What the draft sends besides plain text, by name (at most one may be given).
    fn kinds(&self) -> Vec<&'static str> {
        let given = [
            ("template", self.template.is_some()),
            ("attachments", !self.attachments.is_empty()),
            ("interactive", self.interactive.is_some()),
            ("reaction", self.reaction.is_some()),
            ("location", self.location.is_some()),
        ];
        given.into_iter().filter(|(_, g)| *g).map(|(k, _)| k).collect()
    }

    /// Whether it uses what only WhatsApp sends.
    fn whatsapp_only(&self) -> bool {
        self.interactive.is_some() || self.reaction.is_some() || self.location.is_some() || self.reply_to.is_some()
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    let inv = Invocation::new(deps.memory_mb, 1, Trigger::HttpApi);
    Ok(respond(meter::measure(send(deps, &req, &inv)).await.0))
}

/// Channel limits, checked before anything is stored or queued. Returns what the channel adapter
/// learned about the text (for SMS: encoding and segments), kept in the message's metadata.
async fn check_constraints(
    deps: &Deps,
    ws: &domain::WorkspaceId,
    channel: Channel,
    text: &str,
    files: &[Attachment],
) -> Result<BTreeMap<String, serde_json::Value>, ApiError> {
    let max_segments = match channel {
        Channel::Sms => deps.settings.get(&*deps.store, ws).await?.max_sms_segments.unwrap_or(deps.max_sms_segments),
        _ => deps.max_sms_segments,
    };
    let checked = domain::channels::constraints::check(channel, text, files, max_segments)?;
    let Some(s) = checked.sms else { return Ok(BTreeMap::new()) };
    Ok(BTreeMap::from([
        ("sms_encoding".to_owned(), serde_json::to_value(s.encoding).unwrap_or_default()),
        ("sms_segments".to_owned(), s.segments.into()),
    ]))
}

/// The files a draft names, as stored: each must be an agent upload of this workspace that was
/// put (a HEAD each; none without files). Their type and size come from the bucket, not the
/// client.
async fn files(deps: &Deps, ws: &domain::WorkspaceId, draft: &Draft) -> Result<Vec<Attachment>, ApiError> {
    if draft.attachments.is_empty() {
        return Ok(vec![]);
    }
    if draft.template.is_some() {
        return Err(ApiError::Unprocessable("a WhatsApp template carries no files; send them separately".into()));
    }
    if draft.attachments.len() > domain::files::MAX_FILES_PER_REPLY {
        let max = domain::files::MAX_FILES_PER_REPLY;
        return Err(ApiError::Unprocessable(format!("at most {max} files on one reply")));
    }
    let uploads = deps
        .uploads
        .as_deref()
        .ok_or_else(|| ApiError::Unprocessable("this deployment stores no files (MEDIA_BUCKET)".into()))?;
    let mut out = Vec::with_capacity(draft.attachments.len());
    for f in &draft.attachments {
        if !domain::objects::is_agent_upload(ws, &f.key) {
            return Err(ApiError::Unprocessable(format!(
                "{} is not a file uploaded to this workspace (POST /uploads)",
                f.key
            )));
        }
        let stored = uploads.uploaded(&f.key).await?.ok_or_else(|| {
            ApiError::Unprocessable(format!("{} was not uploaded: PUT the file to its link first", f.key))
        })?;
        out.push(Attachment {
            content_type: stored.content_type,
            size_bytes: Some(stored.size),
            url: stored.url,
            filename: domain::objects::file_name(&f.key).map(str::to_owned),
        });
    }
    Ok(out)
}

fn request_hash(req: &Request) -> String {
    let mut h = Sha256::new();
    h.update(req.raw_http_path().as_bytes());
    h.update(b"\n");
    h.update(body_bytes(req));
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

#[utoipa::path(post, path = "/conversations/{id}/messages", operation_id = "sendMessage", tag = "conversations",
    params(("id" = String, Path, description = "The conversation"),
           ("Idempotency-Key" = String, Header, description = "Required: a retry with the same key and body sends nothing twice (answered with `idempotent-replayed: true`)")),
    request_body = Draft,
    responses((status = 202, description = "Stored and queued for its channel", body = MessageBody), (status = 402, description = "A hard-stop budget is spent", body = kit::http::ErrorBody), (status = 404, body = kit::http::ErrorBody), (status = 409, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn send(deps: &Deps, req: &Request, inv: &Invocation) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    // Finance reads costs, never customers' messages.
    who.require(kit::auth::INBOX)?;
    let conversation_id = path_param(req, "id", ConversationId::parse)?;
    let key = header(req, "idempotency-key")
        .ok_or_else(|| ApiError::BadRequest("the Idempotency-Key header is required".into()))?;
    let key = IdempotencyKey::parse(key)?;
    let hash = request_hash(req);
    let draft: Draft = serde_json::from_slice(body_bytes(req))
        .map_err(|e| ApiError::BadRequest(format!("body must be JSON {{\"text\": ..., \"channel\"?: ...}}: {e}")))?;
    let kinds = draft.kinds();
    if kinds.len() > 1 {
        return Err(ApiError::Unprocessable(format!("one of {} per message", kinds.join(", "))));
    }
    if draft.text.trim().is_empty() && kinds.is_empty() {
        return Err(ApiError::Unprocessable("text must not be empty".into()));
    }
    if (draft.interactive.is_some() || draft.reaction.is_some() || draft.location.is_some())
        && !draft.text.trim().is_empty()
    {
        return Err(ApiError::Unprocessable(
            "interactive, reaction and location messages carry their own text: leave text empty".into(),
        ));
    }
    let invalid = |e: domain::ParseError| ApiError::Unprocessable(e.to_string());
    if let Some(i) = &draft.interactive {
        i.check().map_err(invalid)?;
    }
    if let Some(l) = &draft.location {
        l.check().map_err(invalid)?;
    }
    if let Some(r) = &draft.reaction {
        domain::channels::rich::check_emoji(&r.emoji).map_err(invalid)?;
    }
    let files = files(deps, &who.workspace, &draft).await?;
    // The budgets as the composer read them, for the alert check after the commit.
    let budgets_read = std::sync::Mutex::new(None);
    // What this request spends after the estimate counted (its commit, the enqueue and the mark)
    // travels on the job, for the sender to add to the message's cost.
    let job_usage = |counted: Usage| {
        (inv.usage_so_far() + Usage { sqs_requests_milli: 1000, dynamodb_write_milli: 1000, ..Usage::default() })
            .since(counted)
    };
    let request = ReplyRequest {
        workspace: &who.workspace,
        author: &who.agent,
        key: &key,
        request_hash: &hash,
        conversation: conversation_id,
        job_usage: &job_usage,
    };
    let compose = |conversation, now| {
        let (who, draft, budgets_read, files) = (&who, &draft, &budgets_read, &files);
        async move {
            let (composed, budgets) = compose(deps, who, draft, files, conversation, now, inv).await?;
            let channel = composed.message.channel;
            *budgets_read.lock().unwrap_or_else(|p| p.into_inner()) = Some((budgets, channel));
            Ok(Some(composed))
        }
    };
    let (record, replayed) = match reply::queue_reply(
        &*deps.store,
        &*deps.outbound,
        request,
        time::OffsetDateTime::now_utc,
        compose,
    )
    .await
    {
        Ok(Queued::Queued { record, replayed }) => (record, replayed),
        Ok(Queued::Skipped) => return Err(ApiError::Unprocessable("nothing to send".into())),
        Err(ReplyError::Refused(e)) => return Err(e),
        Err(ReplyError::KeyReused) => {
            return Err(ApiError::Unprocessable("this Idempotency-Key was already used for a different request".into()))
        }
        Err(ReplyError::NotFound(id)) => return Err(ApiError::NotFound(format!("no conversation {id}"))),
        Err(ReplyError::App(app::Error::Contended(_))) => {
            return Err(ApiError::Conflict(
                "the conversation is changing too fast; retry with the same Idempotency-Key".into(),
            ))
        }
        Err(ReplyError::App(e)) => return Err(e.into()),
    };
    let budgets = budgets_read.into_inner().unwrap_or_else(|p| p.into_inner());
    // Only when this request stored the reply (a replay found it stored).
    if let Some((budgets, channel)) = budgets.filter(|_| !replayed) {
        let store: &dyn Store = &*deps.store;
        let month = Month::of(record.created_at);
        if let Err(e) =
            check_budgets(store, store, &*deps.notifications, &budgets, &who.workspace, month, channel).await
        {
            tracing::warn!(workspace = %who.workspace, error = %e, "budget check failed; the next cost write retries it");
        }
    }
    let mut res = kit::http::json(record.status_code, &record.response);
    if replayed {
        res.headers_mut().insert("idempotent-replayed", lambda_http::http::HeaderValue::from_static("true"));
    }
    Ok(res)
}

/// The reply the draft makes of the conversation as it is now: the channel's policies (reply
/// window, Meta's human-agent tag, templates), its limits, consent and the hard-stop budget, then
/// the message priced. Also returns the budgets it read, for the alert check after the commit.
async fn compose(
    deps: &Deps,
    who: &Principal,
    draft: &Draft,
    files: &[Attachment],
    conversation: domain::Conversation,
    now: time::OffsetDateTime,
    inv: &Invocation,
) -> Result<(Composed, Vec<domain::finance::Budget>), ApiError> {
    let route = conversation.reply_route(draft.channel)?;
    if draft.whatsapp_only() && route.channel != Channel::Whatsapp {
        return Err(ApiError::Unprocessable(format!(
            "buttons, lists, reactions, locations and quoted replies are WhatsApp's; on {} send text or files",
            route.channel
        )));
    }
    // Carriers' rules for the sending number (a toll-free number reaches North America only).
    if route.channel == Channel::Sms {
        let country = domain::PhoneNumber::parse(&route.contact_address).ok().and_then(|p| p.country());
        let rules = domain::channels::twilio::sender_rules(&route.our_address, country.as_deref());
        if !rules.deliverable {
            return Err(ApiError::Unprocessable(format!(
                "{} cannot reach this customer: {}",
                route.our_address,
                rules.notes.join("; ")
            )));
        }
    }
    // A reaction or a quote names one of this conversation's WhatsApp messages by its WhatsApp id.
    let target = match draft.reaction.as_ref().map(|r| r.message_id).or(draft.reply_to) {
        Some(id) => {
            let m = deps
                .store
                .message(&who.workspace, conversation.id, id)
                .await?
                .ok_or_else(|| ApiError::Unprocessable(format!("no message {id} in this conversation")))?;
            let wamid = m.provider_message_id.clone().filter(|_| m.channel == Channel::Whatsapp).ok_or_else(|| {
                ApiError::Unprocessable(format!("message {id} is not a WhatsApp message WhatsApp has accepted"))
            })?;
            if draft.reaction.is_some() && m.direction != domain::model::Direction::Inbound {
                return Err(ApiError::Unprocessable("reactions answer the customer's messages".into()));
            }
            Some(wamid)
        }
        None => None,
    };
    let since = conversation.since_customer_wrote(route.channel, now);
    let reply_as = domain::channels::reply_policy(route.channel, since, draft.template.is_some())?;
    // A template is sent as registered: approved, with exactly its parameters; the customer reads
    // its body, and its category prices it.
    let (text, mut metadata) = match &draft.template {
        Some(t) => {
            let registered =
                deps.store.whatsapp_template(&who.workspace, &t.name, &t.language).await?.ok_or_else(|| {
                    ApiError::Unprocessable(
                        TemplateError::Unknown { name: t.name.clone(), language: t.language.clone() }.to_string(),
                    )
                })?;
            let text = registered.check_send(t)?;
            let metadata = BTreeMap::from([
                ("whatsapp_category".to_owned(), serde_json::to_value(registered.category).unwrap_or_default()),
                ("whatsapp_template".to_owned(), serde_json::Value::from(registered.name.clone())),
            ]);
            (text, metadata)
        }
        None => {
            let text = match (&draft.interactive, &draft.reaction, &draft.location) {
                (Some(i), _, _) => i.body().to_owned(),
                (_, Some(r), _) => r.emoji.clone(),
                (_, _, Some(l)) => l.summary(),
                _ => draft.text.clone(),
            };
            let metadata = check_constraints(deps, &who.workspace, route.channel, &text, files).await?;
            (text, metadata)
        }
    };
    if let (Some(wamid), None) = (&target, &draft.reaction) {
        metadata.insert("reply_to_provider_id".to_owned(), serde_json::Value::from(wamid.clone()));
        metadata.insert("reply_to".to_owned(), serde_json::Value::from(draft.reply_to.map(|m| m.to_string())));
    }
    if reply_as == domain::channels::ReplyAs::HumanAgentTag {
        let tag = domain::channels::meta::HUMAN_AGENT;
        metadata.insert(domain::channels::meta::META_TAG.to_owned(), serde_json::Value::from(tag));
    }
    let store: &dyn Store = &*deps.store;
    if let Some(identity) = domain::consent::identity_for(route.channel, &route.contact_address) {
        if let Some(why) = store.consent(&who.workspace, &identity).await?.and_then(|r| r.refusal()) {
            return Err(ApiError::Unprocessable(why));
        }
    }
    // Read once for the hard stop here and the alert check after the commit.
    // Read fresh, never cached: a budget finance just raised must let replies through at once.
    let budgets = store.budgets(&who.workspace).await?;
    if let Some(why) = hard_stop(store, &budgets, &who.workspace, Month::of(now), route.channel).await? {
        return Err(ApiError::BudgetExceeded(why));
    }
    let window_open = conversation.reply_window_open(route.channel, now);
    let card = deps.rates.card_at(store, &who.workspace, now).await?;
    let sender = Sender::Agent { id: who.agent.clone() };
    let mut message =
        Message::queued_outbound(who.workspace.clone(), conversation.id, route, sender, &text, metadata, now);
    message.rich = match (&draft.template, &draft.interactive, &draft.reaction, &draft.location) {
        (Some(t), ..) => Some(serde_json::json!({ "template": t })),
        (_, Some(i), ..) => Some(serde_json::json!({ "interactive": i.cloud_api() })),
        (_, _, Some(r), _) => Some(serde_json::json!({ "reaction": {
            "message_id": r.message_id, "provider_message_id": target, "emoji": r.emoji } })),
        (.., Some(l)) => Some(serde_json::json!({ "location": l })),
        _ => None,
    };
    message.attachments = files.to_vec();
    let counted = inv.usage_so_far();
    let costing = Costing {
        card: &card,
        contact: conversation.contact_id,
        agent: Some(who.agent.clone()),
        team: None,
        usage: counted,
        whatsapp_window_open: window_open,
        now,
    };
    let (cost, entry) = estimate_message(&message, costing)?;
    message.cost = Some(cost);
    let response = serde_json::to_value(MessageBody { message: message.clone() }).unwrap_or_default();
    Ok((Composed { message, cost: Some(entry), response, counted, survey: None }, budgets))
}

/// The reply as stored (status `queued`; its ticks follow on the socket).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct MessageBody {
    pub message: Message,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{ConversationReader, Order};
    use domain::{AgentId, WorkspaceId};
    use queue::memory::MemoryQueue;
    use store::contract::seed_conversation;
    use store::MemoryStore;

    struct World {
        deps: Deps,
        store: Arc<MemoryStore>,
        queue: Arc<MemoryQueue>,
        conv: ConversationId,
        ws: WorkspaceId,
    }

    async fn world() -> World {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(MemoryQueue::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        let (_, conv) = seed_conversation(store.as_ref(), &ws, 1, time::OffsetDateTime::now_utc()).await;
        let deps = Deps::new(store.clone(), queue.clone(), queue.clone(), Authenticator::new("s"), 10);
        World { deps, store, queue, conv: conv.id, ws }
    }

    fn post(w: &World, key: Option<&str>, body: &str) -> Request {
        let t = kit::auth::issue_token(
            "s",
            &w.ws,
            &AgentId::parse("alice").unwrap(),
            None,
            kit::auth::Role::Agent,
            time::Duration::hours(1),
        );
        let auth = format!("Bearer {t}");
        let id = w.conv.to_string();
        let uri = format!("/conversations/{id}/messages");
        let mut headers = vec![("authorization", auth.as_str()), ("content-type", "application/json")];
        if let Some(k) = key {
            headers.push(("idempotency-key", k));
        }
        kit::apigw::test_request(
            "POST",
            "/conversations/{id}/messages",
            &uri,
            &[("id", &id)],
            &headers,
            Some(body.as_bytes()),
        )
    }

    fn body(r: &Response<Body>) -> serde_json::Value {
        kit::apigw::json_of(r)
    }

    #[tokio::test]
    async fn a_reply_is_priced_and_counted_once() {
        use domain::finance::ledger::{Grouping, Month};
        use domain::ports::CostLedger;
        let w = world().await;
        // 161 GSM-7 characters: two segments to a US number.
        let text = "a".repeat(161);
        let body_json = serde_json::json!({ "text": text }).to_string();
        for _ in 0..2 {
            assert_eq!(handle(&w.deps, post(&w, Some("priced"), &body_json)).await.unwrap().status(), 202);
        }
        let msgs = w.store.messages(&w.ws, w.conv, Order::Newest, 1, None).await.unwrap().items;
        let cost = msgs[0].cost.clone().expect("priced");
        // 2 × (0.0083 + 0.003) on the built-in card.
        assert_eq!((cost.provider_micros, cost.rate_card_version), (22_600, 0));
        assert!(cost.lines.iter().any(|l| l.item == "sms outbound US segment" && l.quantity == 2));
        let month = Month::of(msgs[0].created_at);
        let total = w.store.counters(&w.ws, month, Grouping::Total, 10, None).await.unwrap().items;
        assert_eq!(total[0].totals.messages, 1, "the retry replays; it is not counted again");
        assert_eq!(total[0].totals.provider_micros, 22_600);
    }

    #[tokio::test]
    async fn a_spent_hard_stop_budget_refuses_paid_replies_and_alerts_once() {
        use domain::finance::{Budget, BudgetScope, Currency};
        use domain::ports::BudgetStore;
        let w = world().await;
        let by = AgentId::parse("admin").unwrap();
        let now = time::OffsetDateTime::now_utc();
        // Any reply spends over half of this: the first crosses 50 %, 80 % and 100 % at once.
        let b = Budget::new(BudgetScope::Channel(Channel::Sms), Currency::usd(), 10_000, None, true, by, now).unwrap();
        w.store.put_budget(&w.ws, &b).await.unwrap();
        assert_eq!(handle(&w.deps, post(&w, Some("b1"), r#"{"text":"first"}"#)).await.unwrap().status(), 202);
        let alerts: Vec<_> =
            w.queue.sent().into_iter().filter(|(_, _, b)| b["type"] == "budget_threshold_reached").collect();
        assert_eq!(alerts.len(), 3, "{alerts:?}");
        let refused = handle(&w.deps, post(&w, Some("b2"), r#"{"text":"second"}"#)).await.unwrap();
        assert_eq!(refused.status(), 402);
        assert_eq!(body(&refused)["error"]["code"], "budget_exceeded");
        let msgs = w.store.messages(&w.ws, w.conv, Order::Newest, 10, None).await.unwrap().items;
        assert_eq!(msgs.iter().filter(|m| m.direction == domain::Direction::Outbound).count(), 1, "nothing stored");
        let alerts = w.queue.sent().into_iter().filter(|(_, _, b)| b["type"] == "budget_threshold_reached").count();
        assert_eq!(alerts, 3, "no alert twice");
    }

    /// The customer's last message is on Messenger, `ago` back.
    async fn last_wrote_on_messenger(w: &World, ago: time::Duration) {
        use domain::ports::{QueueChange, RoutingCommit, RoutingStore};
        let mut c = w.store.conversation(&w.ws, w.conv).await.unwrap().unwrap();
        let expected_version = c.version;
        let route = domain::Route {
            channel: Channel::Messenger,
            contact_address: "7012345678901234".into(),
            our_address: "109876543210987".into(),
            contact_country: None,
        };
        c.record_inbound(route, time::OffsetDateTime::now_utc() - ago);
        let commit = RoutingCommit {
            conversation: c,
            expected_version,
            take: None,
            give_back: None,
            queue: QueueChange::Keep,
            audit: None,
        };
        w.store.commit_routing(commit).await.unwrap();
    }

    #[tokio::test]
    async fn messenger_replies_need_the_human_agent_tag_after_a_day_and_stop_after_a_week() {
        let w = world().await;
        last_wrote_on_messenger(&w, time::Duration::hours(30)).await;
        let tagged = handle(&w.deps, post(&w, Some("m1"), r#"{"text":"Sorry for the wait"}"#)).await.unwrap();
        assert_eq!(tagged.status(), 202, "{:?}", tagged.body());
        assert_eq!(body(&tagged)["message"]["channel"], "messenger");
        assert_eq!(body(&tagged)["message"]["metadata"]["meta_tag"], "HUMAN_AGENT");
        let w = world().await;
        last_wrote_on_messenger(&w, time::Duration::days(8)).await;
        let refused = handle(&w.deps, post(&w, Some("m2"), r#"{"text":"Hello?"}"#)).await.unwrap();
        assert_eq!(refused.status(), 422);
        assert!(body(&refused)["error"]["message"].as_str().unwrap().contains("7 days"));
        let w = world().await;
        last_wrote_on_messenger(&w, time::Duration::minutes(5)).await;
        let normal = handle(&w.deps, post(&w, Some("m3"), r#"{"text":"Hi!"}"#)).await.unwrap();
        assert_eq!(normal.status(), 202);
        assert!(body(&normal)["message"]["metadata"].get("meta_tag").is_none());
    }

    #[tokio::test]
    async fn a_reply_is_stored_queued_and_enqueued_once_whatever_the_retries() {
        let w = world().await;
        let first = handle(&w.deps, post(&w, Some("k1"), r#"{"text":"On its way!"}"#)).await.unwrap();
        assert_eq!(first.status(), 202);
        let again = handle(&w.deps, post(&w, Some("k1"), r#"{"text":"On its way!"}"#)).await.unwrap();
        assert_eq!(again.status(), 202);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(body(&first), body(&again));
        assert_eq!(body(&first)["message"]["status"], "queued");
        assert_eq!(body(&first)["message"]["channel"], "sms");
        assert_eq!(w.queue.sent().len(), 1);
        let msgs = w.store.messages(&w.ws, w.conv, Order::Oldest, 10, None).await.unwrap().items;
        assert_eq!(msgs.len(), 2);
    }

    #[tokio::test]
    async fn concurrent_retries_with_one_key_store_one_reply() {
        let w = world().await;
        let results =
            futures::future::join_all((0..8).map(|_| handle(&w.deps, post(&w, Some("same"), r#"{"text":"hi"}"#))))
                .await;
        assert!(results.iter().all(|r| r.as_ref().unwrap().status() == 202));
        assert_eq!(w.store.messages(&w.ws, w.conv, Order::Oldest, 10, None).await.unwrap().items.len(), 2);
        assert_eq!(w.queue.sent().len(), 1);
    }

    #[tokio::test]
    async fn an_enqueue_failure_is_finished_by_the_retry() {
        let w = world().await;
        w.queue.fail(true);
        assert_eq!(handle(&w.deps, post(&w, Some("k2"), r#"{"text":"hi"}"#)).await.unwrap().status(), 503);
        w.queue.fail(false);
        assert_eq!(handle(&w.deps, post(&w, Some("k2"), r#"{"text":"hi"}"#)).await.unwrap().status(), 202);
        assert_eq!(w.queue.sent().len(), 1);
        assert_eq!(w.store.messages(&w.ws, w.conv, Order::Oldest, 10, None).await.unwrap().items.len(), 2);
    }

    #[tokio::test]
    async fn bad_requests_get_clear_errors() {
        let w = world().await;
        let status = |r: Result<Response<Body>, Error>| r.unwrap().status().as_u16();
        assert_eq!(status(handle(&w.deps, post(&w, None, r#"{"text":"hi"}"#)).await), 400);
        assert_eq!(status(handle(&w.deps, post(&w, Some("k"), "not json")).await), 400);
        assert_eq!(status(handle(&w.deps, post(&w, Some("k"), r#"{"text":"  "}"#)).await), 422);
        let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(1601));
        assert_eq!(status(handle(&w.deps, post(&w, Some("k"), &long)).await), 422);
        assert_eq!(status(handle(&w.deps, post(&w, Some("k"), r#"{"text":"hi","channel":"email"}"#)).await), 422);
        // 11 GSM-7 parts: over the default maximum of 10 segments.
        let eleven = format!(r#"{{"text":"{}"}}"#, "x".repeat(153 * 10 + 1));
        assert_eq!(status(handle(&w.deps, post(&w, Some("k"), &eleven)).await), 422);
        // Four emoji-laden parts are fine; the reply records its encoding and segments.
        let emoji = format!(r#"{{"text":"{}"}}"#, "😀".repeat(100));
        let res = handle(&w.deps, post(&w, Some("k4"), &emoji)).await.unwrap();
        assert_eq!(res.status(), 202);
        assert_eq!(body(&res)["message"]["metadata"]["sms_segments"], 4);
        assert_eq!(body(&res)["message"]["metadata"]["sms_encoding"], "ucs2");
        assert_eq!(status(handle(&w.deps, post(&w, Some("k3"), r#"{"text":"a"}"#)).await), 202);
        assert_eq!(
            status(handle(&w.deps, post(&w, Some("k3"), r#"{"text":"b"}"#)).await),
            422,
            "key reused for another body"
        );
        assert_eq!(w.queue.sent().len(), 2);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("demo").unwrap();
        let conv = domain::ConversationId::parse("01JD3XQ7Z9K2M4N6P8R0S2T4V6").unwrap();
        store::contract::seed_queued_reply(store.as_ref(), &ws, "+14155552671", Some(conv), None).await;
        let q = Arc::new(MemoryQueue::new());
        let deps = Deps::new(store.clone(), q.clone(), q, Authenticator::new("fixture-jwt-secret"), 10);
        let req = lambda_http::request::from_str(include_str!("../../../events/api-send-message/reply.json")).unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 202);
    }
}
