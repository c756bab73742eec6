//! Net Promoter Score: the daily run (EventBridge Scheduler invokes `nps-run`) asks every contact
//! of a workspace's segment who is due — with a conversation resolved within the segment's days,
//! none open now, not asked within the cadence — on the channel of their latest resolved
//! conversation, through the reply path (at most once per contact and cadence window: the key is
//! `nps-<contact>-<window>`), and records the question on the contact. Answers (0–10, a whole
//! message) are recognised by `ingest` and kept on the contact.

use std::collections::BTreeMap;

use domain::finance::service::RateCardCache;
use domain::finance::Usage;
use domain::model::{Channel, Contact, Conversation, ConversationStatus};
use domain::nps::{self, Survey};
use domain::ports::{
    AssigneeFilter, ConsentStore, ContactStore, ConversationQuery, ConversationReader, InboundStore, OutboundQueue,
    RateCardStore, RoutingStore, StoreError,
};
use domain::{ContactId, WorkspaceId};
use time::{Duration, OffsetDateTime};

use crate::reply::{self, Composed, Queued, ReplyPorts};
use crate::Error;

/// `metadata.auto_reply` of an NPS question.
pub const AUTO_REPLY_NPS: &str = "nps";

/// The most conversations one run reads per workspace (the segment's newest first).
pub const MAX_SCAN: usize = 20_000;

pub trait NpsPorts: ReplyPorts + RoutingStore + ConsentStore + RateCardStore + ContactStore + InboundStore {}
impl<T: ReplyPorts + RoutingStore + ConsentStore + RateCardStore + ContactStore + InboundStore + ?Sized> NpsPorts
    for T
{
}

pub struct Runner<'a, S: ?Sized> {
    pub store: &'a S,
    pub outbound: &'a dyn OutboundQueue,
    pub rates: &'a RateCardCache,
}

/// What one workspace's run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ran {
    /// Contacts in the segment (a resolved conversation within its days).
    pub segment: usize,
    pub asked: usize,
}

impl<S: NpsPorts + ?Sized> Runner<'_, S> {
    /// Every workspace with NPS on.
    pub async fn run_all(&self, now: OffsetDateTime) -> Result<BTreeMap<WorkspaceId, Ran>, Error> {
        let mut out = BTreeMap::new();
        for ws in self.store.nps_workspaces().await? {
            let ran = self.run(&ws, now).await?;
            tracing::info!(workspace = %ws, segment = ran.segment, asked = ran.asked, "NPS run");
            out.insert(ws, ran);
        }
        Ok(out)
    }

    pub async fn run(&self, ws: &WorkspaceId, now: OffsetDateTime) -> Result<Ran, Error> {
        let policy = self.store.routing_rules(ws).await?.nps;
        if !policy.enabled {
            return Ok(Ran::default());
        }
        // The segment: each contact's latest conversation resolved within the window.
        let cutoff = now - Duration::days(i64::from(policy.resolved_within_days));
        let mut latest: BTreeMap<ContactId, Conversation> = BTreeMap::new();
        let mut cursor = None;
        let mut scanned = 0;
        'pages: loop {
            let q = ConversationQuery {
                status: ConversationStatus::Resolved,
                assignee: AssigneeFilter::Any,
                limit: 100,
                cursor,
            };
            let page = self.store.conversations(ws, &q).await?;
            for c in page.items {
                scanned += 1;
                if c.last_activity_at < cutoff || scanned > MAX_SCAN {
                    break 'pages;
                }
                latest.entry(c.contact_id).or_insert(c);
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let mut ran = Ran { segment: latest.len(), asked: 0 };
        for (contact_id, conversation) in latest {
            if self.ask(ws, &policy, contact_id, &conversation, now).await? {
                ran.asked += 1;
            }
        }
        Ok(ran)
    }

    async fn ask(
        &self,
        ws: &WorkspaceId,
        policy: &nps::Policy,
        contact_id: ContactId,
        conversation: &Conversation,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        let Some(contact) = self.store.contact(ws, contact_id).await? else { return Ok(false) };
        if !nps::due(policy, &contact, now) {
            return Ok(false);
        }
        // Never in the middle of a conversation.
        if self.store.current_conversation(ws, &contact).await?.is_some_and(|c| c.status.is_unresolved()) {
            return Ok(false);
        }
        let key = format!("nps-{contact_id}-{}", policy.period(now));
        let asked = std::sync::Mutex::new(None);
        let compose = |c: Conversation, at: OffsetDateTime| {
            let asked = &asked;
            async move {
                let composed = self.compose(policy, &c, at).await?;
                *asked.lock().unwrap_or_else(|p| p.into_inner()) =
                    composed.as_ref().map(|x| (x.message.route.channel, x.message.id));
                Ok::<_, Error>(composed)
            }
        };
        let queued = match reply::queue_system(
            self.store,
            self.outbound,
            ws,
            conversation.id,
            &key,
            &key,
            || now,
            compose,
        )
        .await
        {
            Ok(Queued::Queued { replayed: false, .. }) => true,
            Ok(_) | Err(reply::ReplyError::KeyReused) => false,
            Err(reply::ReplyError::App(e) | reply::ReplyError::Refused(e)) => return Err(e),
            Err(reply::ReplyError::NotFound(_)) => false,
        };
        let asked = *asked.lock().unwrap_or_else(|p| p.into_inner());
        let (true, Some((channel, message_id))) = (queued, asked) else { return Ok(false) };
        let survey = Survey {
            asked_at: now,
            channel,
            conversation_id: conversation.id,
            message_id,
            score: None,
            answered_at: None,
        };
        update_contact(self.store, ws, contact_id, |c| c.nps = Some(survey.clone())).await?;
        Ok(true)
    }

    async fn compose(
        &self,
        policy: &nps::Policy,
        c: &Conversation,
        now: OffsetDateTime,
    ) -> Result<Option<Composed>, Error> {
        let Some(channel) = c.last_inbound.as_ref().map(|r| r.channel) else { return Ok(None) };
        if channel == Channel::Voice || c.tags.contains(crate::ingest::TAG_UNVERIFIED_SENDER) {
            return Ok(None);
        }
        let Some(route) = reply::unsolicited_route(self.store, c, channel, now).await? else { return Ok(None) };
        let text = policy.question();
        let composed =
            reply::system_message(self.store, self.rates, c, route, AUTO_REPLY_NPS, text, Usage::default(), None, now)
                .await?;
        Ok(Some(composed))
    }
}

/// A read-modify-write of a contact at its version, tried again while it changes.
pub async fn update_contact<S: ConversationReader + ContactStore + ?Sized>(
    store: &S,
    ws: &WorkspaceId,
    id: ContactId,
    change: impl Fn(&mut Contact),
) -> Result<(), Error> {
    for attempt in 0..crate::reply::MAX_ATTEMPTS {
        crate::pause(attempt).await;
        let Some(mut c) = store.contact(ws, id).await? else { return Ok(()) };
        let expected = c.version;
        change(&mut c);
        c.version += 1;
        match store.update_contact(&c, expected).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Contended(format!("contact {id} kept changing")))
}
