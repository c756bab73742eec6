//! Conversation continuity (seed 000): a new message joins the contact's unresolved conversation,
//! whatever its channel; with none, a new conversation starts. Each message keeps its own channel,
//! and a reply goes out on the channel the customer used last unless the agent picks another.

use time::OffsetDateTime;

use crate::ids::{ContactId, ConversationId, WorkspaceId};
use crate::model::{Channel, ChannelSeen, Contact, Conversation, ConversationStatus, Priority, Route};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threading {
    Append(ConversationId),
    StartNew,
}

/// Decides where an inbound message goes, given the contact's current conversation (if any).
pub fn thread(current: Option<&Conversation>) -> Threading {
    match current {
        Some(c) if c.status.is_unresolved() => Threading::Append(c.id),
        _ => Threading::StartNew,
    }
}

/// Decides where an inbound message goes when the message names a conversation itself (an
/// email's plus-addressed Reply-To token, or the message it answers): that conversation wins,
/// reopening it if it was resolved, but only if it belongs to the sender and was not merged
/// into another (the caller follows a merge first). Anything else falls back to [`thread`]: a
/// token cannot move a message into someone else's conversation.
pub fn thread_hinted(current: Option<&Conversation>, hinted: Option<&Conversation>, sender: ContactId) -> Threading {
    match hinted {
        Some(h) if h.contact_id == sender && h.merged_into.is_none() => Threading::Append(h.id),
        _ => thread(current),
    }
}

/// Where an agent's first message to a customer goes, threaded as the customer's own would be:
/// their unresolved conversation takes the route (opened on it if new), otherwise a new
/// conversation starts for them (a new contact too, when nobody holds the identity). The new
/// conversation is open and unassigned, with the agent as its previous owner, so the customer's
/// answer is routed like any first message and continuity prefers the agent who wrote.
pub struct Outreach {
    pub conversation: Conversation,
    /// What to write: `None` when the conversation already had this route (a retry).
    pub commit: Option<crate::ports::OutreachCommit>,
    /// A new conversation (and possibly a new contact) was started.
    pub started: bool,
}

pub fn open_outreach(
    ws: &WorkspaceId,
    identity: &crate::model::Identity,
    route: Route,
    thread: Option<crate::ports::ThreadOf>,
    agent: &crate::ids::AgentId,
    now: OffsetDateTime,
) -> Outreach {
    use crate::ports::{ConversationWrite, OutreachCommit};
    let (contact_id, new_contact, current, hint_fresh) = match thread {
        Some(t) => (t.contact, None, t.current, t.hint_fresh),
        None => {
            let contact = Contact::new(ws.clone(), identity.clone(), None, now);
            (contact.id, Some(contact), None, false)
        }
    };
    let hint = (!hint_fresh).then(|| identity.clone());
    // A resolved conversation may hold the contact's slot: the new one replaces it there.
    let previous = current.as_ref().map(|c| c.id);
    match current.filter(|c| c.status.is_unresolved() && c.merged_into.is_none()) {
        Some(mut c) => {
            let expected_version = c.version;
            let opened = c.open_route(route);
            let commit = (opened || hint.is_some()).then(|| OutreachCommit {
                new_contact: None,
                conversation: ConversationWrite::Update { conversation: c.clone(), expected_version },
                hint,
            });
            Outreach { conversation: c, commit, started: false }
        }
        None => {
            let mut c = Conversation::start_for(ws.clone(), contact_id, now);
            c.open_route(route);
            c.previous_owner = Some(agent.clone());
            let commit = OutreachCommit {
                new_contact,
                conversation: ConversationWrite::Create { conversation: c.clone(), replaces: previous },
                hint: Some(identity.clone()),
            };
            Outreach { conversation: c, commit: Some(commit), started: true }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("the contact has not written on {0} in this conversation, so there is no address to reply to")]
    NoAddressOnChannel(Channel),
    #[error("the contact has not written in this conversation yet, so there is no channel to reply on")]
    NoInbound,
}

/// How long after the customer's last message a free-form reply stays allowed on WhatsApp and
/// Messenger.
pub const REPLY_WINDOW: time::Duration = time::Duration::hours(24);

impl Conversation {
    pub fn start(workspace: WorkspaceId, contact: &Contact, now: OffsetDateTime) -> Self {
        Self::start_for(workspace, contact.id, now)
    }

    /// [`Conversation::start`] knowing only the contact's id (all threading needs of it).
    pub fn start_for(workspace: WorkspaceId, contact_id: ContactId, now: OffsetDateTime) -> Self {
        Conversation {
            id: ConversationId::new(),
            workspace,
            contact_id,
            status: ConversationStatus::Open,
            assignee: None,
            priority: Priority::Normal,
            last_inbound: None,
            last_inbound_at: None,
            channels: Default::default(),
            last_activity_at: now,
            created_at: now,
            unread_count: 0,
            message_count: 0,
            team: None,
            skills: Default::default(),
            tags: Default::default(),
            previous_owner: None,
            assigned_weight: 0,
            waiting_since: None,
            snoozed_until: None,
            moving: None,
            merged_into: None,
            split_from: None,
            splits: vec![],
            sla: Default::default(),
            csat: None,
            pending_survey: None,
            version: 0,
        }
    }

    /// A customer message arrived: the conversation (re)opens, counts it unread and remembers the
    /// route for replies. Last activity never moves backwards (a delayed message is still counted).
    pub fn record_inbound(&mut self, route: Route, at: OffsetDateTime) {
        self.status = ConversationStatus::Open;
        self.unread_count = self.unread_count.saturating_add(1);
        self.message_count = self.message_count.saturating_add(1);
        let seen = self.channels.entry(route.channel).or_insert_with(|| ChannelSeen { route: route.clone(), at: None });
        if seen.at.is_none_or(|last| at >= last) {
            *seen = ChannelSeen { route: route.clone(), at: Some(at) };
        }
        self.last_inbound = Some(route);
        self.last_inbound_at = Some(self.last_inbound_at.map_or(at, |t| t.max(at)));
        self.last_activity_at = self.last_activity_at.max(at);
        self.version += 1;
    }

    /// An agent opens `route` to write to the customer first (a business-initiated conversation,
    /// or another channel of theirs): replies may take it; no reply window opens until they write.
    /// `false` when the conversation already had a route on that channel (kept as it is).
    pub fn open_route(&mut self, route: Route) -> bool {
        if self.channels.contains_key(&route.channel) {
            return false;
        }
        self.channels.insert(route.channel, ChannelSeen { route, at: None });
        self.version += 1;
        true
    }

    /// An agent replied: everything before it counts as read, and the customer is answered (the
    /// response clock stops).
    pub fn record_outbound(&mut self, at: OffsetDateTime) {
        crate::sla::agent_replied(&mut self.sla, at);
        self.unread_count = 0;
        self.message_count = self.message_count.saturating_add(1);
        self.last_activity_at = self.last_activity_at.max(at);
        self.version += 1;
    }

    /// Whether the customer wrote on `channel` within the reply window (WhatsApp's and Messenger's
    /// 24-hour customer-service window): a free-form reply is allowed, and free, only then.
    pub fn reply_window_open(&self, channel: Channel, now: OffsetDateTime) -> bool {
        self.since_customer_wrote(channel, now).is_some_and(|d| d < REPLY_WINDOW)
    }

    /// Whether a message of ours that answers nothing in particular (a survey, a re-send) may go
    /// out free-form on `channel` now: WhatsApp's, Messenger's and Instagram's 24-hour window is
    /// open; on the other channels always.
    pub fn free_form_open(&self, channel: Channel, now: OffsetDateTime) -> bool {
        let needs_window = matches!(channel, Channel::Whatsapp | Channel::Messenger | Channel::Instagram);
        !needs_window || self.reply_window_open(channel, now)
    }

    /// How long ago the customer last wrote on `channel` in this conversation (`None`: never).
    pub fn since_customer_wrote(&self, channel: Channel, now: OffsetDateTime) -> Option<time::Duration> {
        match self.channels.get(&channel) {
            Some(seen) => seen.at.map(|at| now - at),
            // Conversations stored before per-channel routes were kept.
            None => {
                self.last_inbound.as_ref().filter(|r| r.channel == channel).and(self.last_inbound_at).map(|t| now - t)
            }
        }
    }

    /// An automatic answer (HELP) went out: counted, but nothing becomes read.
    pub fn record_auto_reply(&mut self, at: OffsetDateTime) {
        self.message_count = self.message_count.saturating_add(1);
        self.last_activity_at = self.last_activity_at.max(at);
        self.version += 1;
    }

    /// The route a reply takes: the customer's last channel by default, or the requested channel if
    /// the customer wrote on it in this conversation (the route they used there).
    /// A voicemail is answered by SMS to the caller's number, from the number they called.
    pub fn reply_route(&self, requested: Option<Channel>) -> Result<Route, RouteError> {
        let Some(last) = self.last_inbound.as_ref() else {
            // Started by an agent and not answered yet: the route they opened.
            return match (requested, self.channels.values().next()) {
                (Some(ch), _) => {
                    self.channels.get(&ch).map(|s| s.route.clone()).ok_or(RouteError::NoAddressOnChannel(ch))
                }
                (None, Some(only)) if self.channels.len() == 1 => Ok(only.route.clone()),
                _ => Err(RouteError::NoInbound),
            };
        };
        let by_sms = |r: &Route| Route { channel: Channel::Sms, ..r.clone() };
        match requested {
            None if last.channel == Channel::Voice => Ok(by_sms(last)),
            None => Ok(last.clone()),
            Some(ch) if ch == last.channel => Ok(last.clone()),
            Some(Channel::Sms) if !self.channels.contains_key(&Channel::Sms) => self
                .channels
                .get(&Channel::Voice)
                .map(|s| by_sms(&s.route))
                .ok_or(RouteError::NoAddressOnChannel(Channel::Sms)),
            Some(ch) => self.channels.get(&ch).map(|s| s.route.clone()).ok_or(RouteError::NoAddressOnChannel(ch)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Identity;
    use crate::PhoneNumber;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn ws() -> WorkspaceId {
        WorkspaceId::parse("acme").unwrap()
    }
    fn contact() -> Contact {
        let p = PhoneNumber::parse("+14155552671").unwrap();
        Contact::new(ws(), Identity::phone(&p), None, datetime!(2026-01-01 0:00 UTC))
    }
    fn route(ch: Channel) -> Route {
        Route {
            channel: ch,
            contact_address: "+14155552671".into(),
            our_address: "+14155550100".into(),
            contact_country: Some("US".into()),
        }
    }

    #[test]
    fn an_agent_writing_first_opens_a_route_without_a_reply_window() {
        use crate::ids::AgentId;
        let now = datetime!(2026-03-01 9:00 UTC);
        let id = Identity::phone(&PhoneNumber::parse("+14155552671").unwrap());
        let route = Route {
            channel: Channel::Whatsapp,
            contact_address: "+14155552671".into(),
            our_address: "1065".into(),
            contact_country: None,
        };
        let ann = AgentId::parse("ann").unwrap();
        // Nobody holds the number: a new contact and conversation, answerable only by template.
        let first = open_outreach(&ws(), &id, route.clone(), None, &ann, now);
        assert!(first.started);
        let commit = first.commit.as_ref().unwrap();
        assert!(commit.new_contact.is_some() && commit.hint.is_some());
        let c = &first.conversation;
        assert_eq!((c.assignee.as_ref(), c.previous_owner.as_ref()), (None, Some(&ann)));
        assert_eq!(c.reply_route(None).unwrap(), route, "the route the agent opened");
        assert!(!c.reply_window_open(Channel::Whatsapp, now), "the customer has not written");
        assert_eq!(c.since_customer_wrote(Channel::Whatsapp, now), None);
        // Again (a retry): the same conversation, nothing to write.
        let thread = crate::ports::ThreadOf { contact: c.contact_id, current: Some(c.clone()), hint_fresh: true };
        let again = open_outreach(&ws(), &id, route.clone(), Some(thread), &ann, now);
        assert!(!again.started && again.commit.is_none());
        assert_eq!(again.conversation.id, c.id);
        // The customer answers: the route becomes theirs, the window opens.
        let mut answered = c.clone();
        answered.record_inbound(route.clone(), now);
        assert!(answered.reply_window_open(Channel::Whatsapp, now));
        // Resolved: the next outreach starts a new conversation that replaces it in the slot.
        answered.status = ConversationStatus::Resolved;
        let thread =
            crate::ports::ThreadOf { contact: c.contact_id, current: Some(answered.clone()), hint_fresh: true };
        let next = open_outreach(&ws(), &id, route, Some(thread), &ann, now);
        assert!(next.started);
        match &next.commit.unwrap().conversation {
            crate::ports::ConversationWrite::Create { replaces, .. } => assert_eq!(*replaces, Some(answered.id)),
            other => panic!("{:?}", matches!(other, crate::ports::ConversationWrite::Update { .. })),
        }
    }

    #[test]
    fn no_conversation_starts_a_new_one() {
        assert_eq!(thread(None), Threading::StartNew);
    }

    #[test]
    fn unresolved_conversations_are_continued_whatever_their_status() {
        let mut c = Conversation::start(ws(), &contact(), datetime!(2026-01-01 0:00 UTC));
        for status in [ConversationStatus::Open, ConversationStatus::Pending, ConversationStatus::Snoozed] {
            c.status = status;
            assert_eq!(thread(Some(&c)), Threading::Append(c.id));
        }
        c.status = ConversationStatus::Resolved;
        assert_eq!(thread(Some(&c)), Threading::StartNew);
    }

    #[test]
    fn a_named_conversation_of_the_sender_wins_even_resolved() {
        let ann = contact();
        let now = datetime!(2026-01-01 0:00 UTC);
        let current = Conversation::start(ws(), &ann, now);
        let mut older = Conversation::start(ws(), &ann, now);
        older.status = ConversationStatus::Resolved;
        assert_eq!(thread_hinted(Some(&current), Some(&older), ann.id), Threading::Append(older.id));
        assert_eq!(thread_hinted(None, Some(&older), ann.id), Threading::Append(older.id));
        assert_eq!(thread_hinted(Some(&current), None, ann.id), Threading::Append(current.id));
        // Someone else's conversation: the token is ignored.
        let bob = contact();
        let theirs = Conversation::start(ws(), &bob, now);
        assert_eq!(thread_hinted(Some(&current), Some(&theirs), ann.id), Threading::Append(current.id));
        assert_eq!(thread_hinted(None, Some(&theirs), ann.id), Threading::StartNew);
        // Merged away: not a target (the caller follows the merge).
        older.merged_into = Some(current.id);
        assert_eq!(thread_hinted(Some(&current), Some(&older), ann.id), Threading::Append(current.id));
    }

    #[test]
    fn inbound_reopens_counts_unread_and_sets_reply_route() {
        let mut c = Conversation::start(ws(), &contact(), datetime!(2026-01-01 0:00 UTC));
        c.status = ConversationStatus::Snoozed;
        c.record_inbound(route(Channel::Sms), datetime!(2026-01-01 0:01 UTC));
        c.record_inbound(route(Channel::Whatsapp), datetime!(2026-01-01 0:02 UTC));
        assert_eq!(c.status, ConversationStatus::Open);
        assert_eq!(c.unread_count, 2);
        assert_eq!(c.reply_route(None).unwrap().channel, Channel::Whatsapp);
        // The agent may answer on any channel the customer used in this conversation.
        assert_eq!(c.reply_route(Some(Channel::Sms)).unwrap(), route(Channel::Sms));
        assert_eq!(c.reply_route(Some(Channel::Email)), Err(RouteError::NoAddressOnChannel(Channel::Email)));
        // Each channel's window runs from the customer's last message there.
        assert!(c.reply_window_open(Channel::Whatsapp, datetime!(2026-01-02 0:01 UTC)));
        assert!(!c.reply_window_open(Channel::Whatsapp, datetime!(2026-01-02 0:02 UTC)));
        assert!(!c.reply_window_open(Channel::Sms, datetime!(2026-01-02 0:01 UTC)));
        c.record_outbound(datetime!(2026-01-01 0:03 UTC));
        assert_eq!(c.unread_count, 0);
        assert_eq!(c.message_count, 3);
        assert_eq!(c.version, 3);
    }

    #[test]
    fn a_conversation_without_inbound_has_no_reply_route() {
        let c = Conversation::start(ws(), &contact(), datetime!(2026-01-01 0:00 UTC));
        assert_eq!(c.reply_route(None), Err(RouteError::NoInbound));
    }

    proptest! {
        #[test]
        fn last_activity_is_the_latest_message_whatever_the_arrival_order(
            offsets in proptest::collection::vec(0i64..100_000, 1..30)
        ) {
            let start = datetime!(2026-01-01 0:00 UTC);
            let mut c = Conversation::start(ws(), &contact(), start);
            for o in &offsets {
                c.record_inbound(route(Channel::Sms), start + time::Duration::seconds(*o));
            }
            let max = start + time::Duration::seconds(*offsets.iter().max().unwrap());
            prop_assert_eq!(c.last_activity_at, max);
            prop_assert_eq!(c.unread_count as usize, offsets.len());
            prop_assert_eq!(c.version as usize, offsets.len());
        }
    }
}
