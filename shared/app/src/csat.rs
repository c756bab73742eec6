//! Customer satisfaction: the survey asked when a conversation is resolved, and the answers that
//! come by email rating link (answers by reply are recognised by `ingest`).
//!
//! - [`Asker::ask`]: on `conversation_changed: resolved`, once per conversation (the reply path's
//!   idempotency key `csat-<conversation>`, and the survey recorded on the conversation in the same
//!   transaction as the message): on the channel the customer last used, never to an opted-out or
//!   suppressed address, a claimed identity or a conversation tagged `spam` or `no-csat`; priced
//!   in the ledger like any message. WhatsApp asks with a five-row list inside its 24-hour window
//!   and with the workspace's approved survey template outside it (none configured: skipped,
//!   logged). Email carries five signed rating links; web chat the question with a rating frame
//!   (`rich.type = "csat"`).
//! - [`rate`]: a rating link's score (the first one counts; the same link again is fine) and the
//!   optional comment its thank-you page offers.

use domain::audit::AuditEntry;
use domain::channels::whatsapp::TemplateSend;
use domain::csat::{self, Rating, Survey};
use domain::events::Notification;
use domain::finance::service::RateCardCache;
use domain::finance::Usage;
use domain::model::{Channel, Conversation, ConversationStatus};
use domain::ports::{
    ConsentStore, ConversationReader, NotificationQueue, OutboundQueue, QueueChange, RateCardStore, RoutingCommit,
    RoutingStore, StoreError, TemplateStore,
};
use domain::{ConversationId, WorkspaceId};
use time::OffsetDateTime;

use crate::reply::{self, Composed, Queued, ReplyPorts};
use crate::Error;

/// `metadata.auto_reply` of a survey question.
pub const AUTO_REPLY_CSAT: &str = "csat";

/// Tags that keep a resolved conversation from being surveyed.
pub const NO_SURVEY_TAGS: [&str; 3] = ["spam", "no-csat", crate::ingest::TAG_UNVERIFIED_SENDER];

/// Where email rating links point, and the key that signs them.
#[derive(Clone)]
pub struct Links {
    /// The API's public base URL (`PUBLIC_BASE_URL`); links are `<base>/csat/<token>`.
    pub base_url: String,
    pub key: Vec<u8>,
}

impl Links {
    fn for_conversation(&self, ws: &WorkspaceId, id: ConversationId, now: OffsetDateTime) -> [String; 5] {
        let expires = now + csat::ANSWER_WINDOW;
        let base = self.base_url.trim_end_matches('/');
        std::array::from_fn(|i| {
            let token = csat::rating_token(&self.key, ws, id, (i + 1) as u8, expires);
            format!("{base}/csat/{token}")
        })
    }
}

/// What asking reads and writes.
pub trait AskPorts: ReplyPorts + RoutingStore + ConsentStore + RateCardStore + TemplateStore {}
impl<T: ReplyPorts + RoutingStore + ConsentStore + RateCardStore + TemplateStore + ?Sized> AskPorts for T {}

pub struct Asker<'a, S: ?Sized> {
    pub store: &'a S,
    pub outbound: &'a dyn OutboundQueue,
    pub rates: &'a RateCardCache,
    pub links: &'a Links,
}

/// Whether a survey went out.
#[derive(Debug, PartialEq, Eq)]
pub enum Asked {
    Asked(Channel),
    /// Disabled, asked before, reopened meanwhile, no channel to ask on, consent, tags, window.
    Skipped,
}

impl<S: AskPorts + ?Sized> Asker<'_, S> {
    pub async fn ask(
        &self,
        ws: &WorkspaceId,
        conversation: ConversationId,
        now: OffsetDateTime,
    ) -> Result<Asked, Error> {
        let policy = self.store.routing_rules(ws).await?.csat;
        if !policy.enabled {
            return Ok(Asked::Skipped);
        }
        let key = format!("csat-{conversation}");
        let asked_on = std::sync::Mutex::new(None);
        let compose = |c: Conversation, at: OffsetDateTime| {
            let (policy, asked_on) = (&policy, &asked_on);
            async move {
                let composed = self.compose(policy, &c, at).await?;
                *asked_on.lock().unwrap_or_else(|p| p.into_inner()) =
                    composed.as_ref().map(|x| x.message.route.channel);
                Ok::<_, Error>(composed)
            }
        };
        match reply::queue_system(self.store, self.outbound, ws, conversation, &key, &key, || now, compose).await {
            Ok(Queued::Queued { replayed: false, .. }) => match *asked_on.lock().unwrap_or_else(|p| p.into_inner()) {
                Some(ch) => {
                    tracing::info!(workspace = %ws, %conversation, channel = %ch, "satisfaction survey queued");
                    Ok(Asked::Asked(ch))
                }
                None => Ok(Asked::Skipped),
            },
            Ok(Queued::Queued { replayed: true, .. } | Queued::Skipped) => Ok(Asked::Skipped),
            Err(reply::ReplyError::App(e) | reply::ReplyError::Refused(e)) => Err(e),
            Err(reply::ReplyError::NotFound(id)) => Err(Error::Invalid(format!("conversation {id} vanished"))),
            Err(reply::ReplyError::KeyReused) => Ok(Asked::Skipped),
        }
    }

    async fn compose(
        &self,
        policy: &csat::Policy,
        c: &Conversation,
        now: OffsetDateTime,
    ) -> Result<Option<Composed>, Error> {
        if c.status != ConversationStatus::Resolved || NO_SURVEY_TAGS.iter().any(|t| c.tags.contains(*t)) {
            return Ok(None);
        }
        let Some(channel) = csat::should_ask(policy, c) else { return Ok(None) };
        let Some(reach) = reply::unsolicited_reach(self.store, c, channel, now).await? else { return Ok(None) };
        // Outside WhatsApp's window only an approved template may ask; elsewhere nothing can.
        let template = match (reach.window_open, reach.route.channel, &policy.whatsapp_template) {
            (true, _, _) => None,
            (false, Channel::Whatsapp, Some(t)) => {
                match self.store.whatsapp_template(&c.workspace, &t.name, &t.language).await? {
                    Some(registered) if registered.check_send(&TemplateSend::bare(&registered)).is_ok() => {
                        Some(registered)
                    }
                    _ => {
                        tracing::warn!(workspace = %c.workspace, conversation = %c.id, template = %t.name,
                            "survey not sent: its WhatsApp template is not registered as approved without parameters");
                        return Ok(None);
                    }
                }
            }
            (false, ch, _) => {
                tracing::info!(workspace = %c.workspace, conversation = %c.id, channel = %ch,
                    "survey not sent: outside the 24-hour window and no survey template");
                return Ok(None);
            }
        };
        let route = reach.route;
        let links = (route.channel == Channel::Email).then(|| self.links.for_conversation(&c.workspace, c.id, now));
        let text = match &template {
            Some(t) => t.check_send(&TemplateSend::bare(t)).unwrap_or_default(),
            None => csat::question_text(policy, route.channel, links.as_ref()),
        };
        let mut composed = reply::system_message(
            self.store,
            self.rates,
            c,
            route,
            AUTO_REPLY_CSAT,
            &text,
            Usage::default(),
            template.as_ref(),
            now,
        )
        .await?;
        let message = &mut composed.message;
        match (message.route.channel, &template) {
            (Channel::Webchat, _) => {
                message.rich = Some(serde_json::json!({ "type": "csat", "scale": 5, "question": policy.question() }));
            }
            (Channel::Whatsapp, None) => {
                let list = csat::whatsapp_list(&text);
                message.rich = Some(serde_json::json!({ "type": "csat", "scale": 5, "interactive": list }));
            }
            _ => {}
        }
        composed.survey = Some(Survey {
            asked_at: now,
            channel: message.route.channel,
            message_id: message.id,
            score: None,
            answered_at: None,
            comment: None,
        });
        Ok(Some(composed))
    }
}

/// What a rating link did.
#[derive(Debug, PartialEq, Eq)]
pub enum Rated {
    /// Recorded now (or the same score again).
    Recorded,
    /// The conversation was rated already with another score: that one stands.
    AlreadyRated(u8),
}

#[derive(Debug, thiserror::Error)]
pub enum RateError {
    #[error("there is no survey for this conversation")]
    NoSurvey,
    #[error(transparent)]
    App(#[from] Error),
}

impl From<StoreError> for RateError {
    fn from(e: StoreError) -> Self {
        RateError::App(e.into())
    }
}

/// What rating reads and writes.
pub trait RatePorts: ConversationReader + RoutingStore {}
impl<T: ConversationReader + RoutingStore + ?Sized> RatePorts for T {}

/// Records a rating link's score, or (with `comment`) the comment about it.
pub async fn rate<S: RatePorts + ?Sized>(
    store: &S,
    notifications: &dyn NotificationQueue,
    rating: &Rating,
    comment: Option<&str>,
    now: OffsetDateTime,
) -> Result<Rated, RateError> {
    for attempt in 0..crate::reply::MAX_ATTEMPTS {
        crate::pause(attempt).await;
        let c = store.conversation(&rating.workspace, rating.conversation).await?.ok_or(RateError::NoSurvey)?;
        let survey = c.csat.clone().ok_or(RateError::NoSurvey)?;
        if let Some(score) = survey.score.filter(|s| *s != rating.score) {
            return Ok(Rated::AlreadyRated(score));
        }
        let comment = comment.map(|t| t.trim().chars().take(1000).collect::<String>()).filter(|t| !t.is_empty());
        if survey.score.is_some() && (comment.is_none() || comment == survey.comment) {
            return Ok(Rated::Recorded);
        }
        let mut next = c.clone();
        let s = next.csat.as_mut().ok_or(RateError::NoSurvey)?;
        let first = s.score.is_none();
        s.score = Some(rating.score);
        s.answered_at.get_or_insert(now);
        if comment.is_some() {
            s.comment = comment.clone();
        }
        next.version += 1;
        let audit = AuditEntry::new(
            c.workspace.clone(),
            Some(c.id),
            AuditEntry::system(),
            "csat_received",
            serde_json::json!({ "score": rating.score, "channel": "email", "comment": comment.is_some() }),
            now,
        );
        let commit = RoutingCommit {
            conversation: next,
            expected_version: c.version,
            take: None,
            give_back: None,
            queue: QueueChange::Keep,
            audit: Some(audit),
        };
        match store.commit_routing(commit).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
        let channel = survey.channel;
        if first {
            let event = Notification::CsatReceived {
                workspace: c.workspace.clone(),
                conversation_id: c.id,
                score: rating.score,
                channel,
                comment: None,
            };
            notifications.publish(&event).await.map_err(Error::from)?;
        }
        if comment.is_some() {
            let event = Notification::CsatReceived {
                workspace: c.workspace.clone(),
                conversation_id: c.id,
                score: rating.score,
                channel,
                comment,
            };
            notifications.publish(&event).await.map_err(Error::from)?;
        }
        return Ok(Rated::Recorded);
    }
    Err(RateError::App(Error::Contended("the conversation keeps changing; try the link again".into())))
}
