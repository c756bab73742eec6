//! The store contract: one suite, run against the in-memory fake (unit tests) and DynamoDB Local
//! (tests/), so the fake can never drift from the real thing. Each case uses its own workspace, so
//! cases can share one table.

use std::collections::BTreeMap;

use domain::finance::ledger::{reconcile, Grouping, Month};
use domain::finance::{
    Budget, BudgetScope, Currency, Dimension, EntryKind, LedgerEntry, MessageCost, RateCard, Totals,
};
use domain::model::*;
use domain::ports::*;
use domain::{AgentId, ContactId, ConversationId, IdempotencyKey, MessageId, PhoneNumber, TeamId, WorkspaceId};
use time::OffsetDateTime;

use crate::Store;

pub fn workspace(tag: &str) -> WorkspaceId {
    WorkspaceId::parse(&format!("ct-{tag}-{}", ulid::Ulid::new().to_string().to_lowercase())).unwrap()
}

fn phone(n: u32) -> Identity {
    Identity::phone(&PhoneNumber::parse(&format!("+1415555{n:04}")).unwrap())
}

fn route() -> Route {
    Route {
        channel: Channel::Sms,
        contact_address: "+14155552671".into(),
        our_address: "+14155550100".into(),
        contact_country: Some("US".into()),
    }
}

pub fn inbound_message(ws: &WorkspaceId, conv: &Conversation, contact: &Contact, at: OffsetDateTime) -> Message {
    Message {
        id: MessageId::new(),
        workspace: ws.clone(),
        conversation_id: conv.id,
        direction: Direction::Inbound,
        channel: Channel::Sms,
        route: route(),
        sender: Sender::Contact { id: contact.id },
        text: Some("hello".into()),
        rich: None,
        attachments: vec![],
        provider: Some("twilio".into()),
        provider_message_id: None,
        provider_timestamp: None,
        created_at: at,
        status: DeliveryStatus::Received,
        status_history: vec![DeliveryEvent {
            status: DeliveryStatus::Received,
            at,
            error_code: None,
            error_message: None,
        }],
        metadata: BTreeMap::new(),
        cost: None,
    }
}

/// A contact value for a conversation's contact id (for building test messages).
pub fn contact_of(conv: &Conversation) -> Contact {
    let mut c = Contact::new(conv.workspace.clone(), phone(0), None, conv.created_at);
    c.id = conv.contact_id;
    c
}

/// Stores a first message from a new contact; returns the contact and conversation.
pub async fn seed_conversation<S: Store>(
    s: &S,
    ws: &WorkspaceId,
    n: u32,
    at: OffsetDateTime,
) -> (Contact, Conversation) {
    let contact = Contact::new(ws.clone(), phone(n), None, at);
    let mut conv = Conversation::start(ws.clone(), &contact, at);
    conv.record_inbound(route(), at);
    let msg = inbound_message(ws, &conv, &contact, at);
    s.commit_inbound(InboundCommit {
        hint: None,
        consent: None,
        cost: None,
        new_contact: Some(contact.clone()),
        conversation: ConversationWrite::Create { conversation: conv.clone(), replaces: None },
        message: msg,
        provider: "twilio".into(),
        provider_message_id: format!("SM{}", ulid::Ulid::new()),
    })
    .await
    .expect("seed commit");
    (contact, conv)
}

/// Stores `next` in place of `before` (its version bumped past `before`'s), as a routing write
/// would: for tests that set a conversation up in a given state.
pub async fn replace_conversation<S: Store + ?Sized>(
    s: &S,
    before: &Conversation,
    mut next: Conversation,
) -> Conversation {
    next.version = before.version + 1;
    s.commit_routing(domain::ports::RoutingCommit {
        conversation: next.clone(),
        expected_version: before.version,
        take: None,
        give_back: None,
        queue: domain::ports::QueueChange::Keep,
        audit: None,
    })
    .await
    .expect("replace the conversation");
    next
}

/// An agent profile with `capacity` (hundredths) and a presence, for handler tests.
pub async fn seed_agent<S: Store>(
    s: &S,
    ws: &WorkspaceId,
    id: &str,
    capacity: u32,
    presence: domain::routing::Presence,
) -> domain::routing::AgentState {
    let agent = domain::routing::AgentState {
        id: AgentId::parse(id).unwrap(),
        presence,
        teams: Default::default(),
        skills: Default::default(),
        capacity,
        load: 0,
        last_assigned_at: None,
    };
    s.put_agent(ws, &agent).await.unwrap();
    s.set_presence(ws, &agent.id, presence, capacity, time::OffsetDateTime::now_utc()).await.unwrap().state
}

/// A web chat visitor's open socket `id` on the widget `wk_demo_site`, as `$connect` stores it.
pub async fn seed_visitor_socket<S: Store + ?Sized>(
    s: &S,
    ws: &WorkspaceId,
    visitor: &domain::channels::webchat::VisitorId,
    id: &str,
) -> domain::channels::webchat::VisitorConnection {
    let socket = domain::channels::webchat::VisitorConnection {
        id: domain::ConnectionId::parse(id).unwrap(),
        workspace: ws.clone(),
        visitor: visitor.clone(),
        key: "wk_demo_site".into(),
        connected_at: OffsetDateTime::now_utc(),
    };
    s.put_visitor_connection(&socket).await.unwrap();
    socket
}

/// Stores a web chat message from `visitor` as the processor commits one (a new contact and
/// conversation first, then appended); returns the conversation as it was before this message.
pub async fn seed_visitor_message<S: Store + ?Sized>(
    s: &S,
    ws: &WorkspaceId,
    visitor: &domain::channels::webchat::VisitorId,
    text: &str,
) -> Conversation {
    let now = OffsetDateTime::now_utc();
    let route = Route {
        channel: Channel::Webchat,
        contact_address: visitor.to_string(),
        our_address: "wk_demo_site".into(),
        contact_country: None,
    };
    let known = s.contact_by_identity(ws, &visitor.identity()).await.unwrap();
    let contact = known.clone().unwrap_or_else(|| Contact::new(ws.clone(), visitor.identity(), None, now));
    let (write, conv) = match s.current_conversation(ws, &contact).await.unwrap() {
        Some(mut c) => {
            let expected_version = c.version;
            c.record_inbound(route.clone(), now);
            (ConversationWrite::Update { conversation: c.clone(), expected_version }, c)
        }
        None => {
            let mut c = Conversation::start(ws.clone(), &contact, now);
            c.record_inbound(route.clone(), now);
            (ConversationWrite::Create { conversation: c.clone(), replaces: None }, c)
        }
    };
    let pid = format!("{visitor}:{text}");
    let mut message = inbound_message(ws, &conv, &contact, now);
    (message.channel, message.route, message.text, message.provider_message_id) =
        (Channel::Webchat, route, Some(text.into()), Some(pid.clone()));
    s.commit_inbound(InboundCommit {
        hint: None,
        new_contact: known.is_none().then(|| contact.clone()),
        conversation: write,
        message,
        provider: domain::channels::webchat::PROVIDER.into(),
        provider_message_id: pid,
        cost: None,
        consent: None,
    })
    .await
    .unwrap();
    conv
}

fn now() -> OffsetDateTime {
    // Whole milliseconds: the store keeps RFC 3339 with full precision, but sort keys are in ms.
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000).unwrap()
}

pub async fn first_message_creates_contact_conversation_and_message<S: Store>(s: &S) {
    let ws = workspace("first");
    let (contact, conv) = seed_conversation(s, &ws, 1, now()).await;
    let found = s.contact_by_identity(&ws, &phone(1)).await.unwrap().expect("contact by identity");
    assert_eq!(found, contact);
    let current = s.current_conversation(&ws, &contact).await.unwrap().expect("current conversation");
    assert_eq!(current, conv);
    let page = s.messages(&ws, conv.id, Order::Oldest, 10, None).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].sender, Sender::Contact { id: contact.id });
}

pub async fn a_provider_message_is_stored_once<S: Store>(s: &S) {
    let ws = workspace("dup");
    let at = now();
    let contact = Contact::new(ws.clone(), phone(2), None, at);
    let mut conv = Conversation::start(ws.clone(), &contact, at);
    conv.record_inbound(route(), at);
    let commit = |c: Conversation, m: Message, new: bool| InboundCommit {
        hint: None,
        consent: None,
        cost: None,
        new_contact: new.then(|| contact.clone()),
        conversation: if new {
            ConversationWrite::Create { conversation: c, replaces: None }
        } else {
            let v = c.version;
            let mut c = c;
            c.record_inbound(route(), at);
            ConversationWrite::Update { conversation: c, expected_version: v }
        },
        message: m,
        provider: "twilio".into(),
        provider_message_id: "SMdup0000000000000000000000000000".into(),
    };
    s.commit_inbound(commit(conv.clone(), inbound_message(&ws, &conv, &contact, at), true)).await.unwrap();
    let first = s.provider_message(&ws, "twilio", "SMdup0000000000000000000000000000").await.unwrap();
    assert_eq!(first.map(|(c, _)| c), Some(conv.id));
    let again = s.commit_inbound(commit(conv.clone(), inbound_message(&ws, &conv, &contact, at), false)).await;
    assert!(matches!(again, Err(StoreError::Duplicate)), "{again:?}");
    assert_eq!(s.messages(&ws, conv.id, Order::Oldest, 10, None).await.unwrap().items.len(), 1);
    assert_eq!(s.conversation(&ws, conv.id).await.unwrap().unwrap().version, conv.version, "nothing partially applied");
}

/// DynamoDB refuses an item over 400 KB by cancelling the transaction with `ValidationError`:
/// that is the request's fault (`Invalid`, a 4xx), never contention to retry (`Conflict`).
pub async fn an_item_over_400_kb_is_refused_as_invalid<S: Store>(s: &S) {
    let ws = workspace("big");
    let at = now();
    let contact = Contact::new(ws.clone(), phone(7), None, at);
    let mut conv = Conversation::start(ws.clone(), &contact, at);
    conv.record_inbound(route(), at);
    let mut m = inbound_message(&ws, &conv, &contact, at);
    m.text = Some("x".repeat(410 * 1024));
    let res = s
        .commit_inbound(InboundCommit {
            hint: None,
            consent: None,
            cost: None,
            new_contact: Some(contact.clone()),
            conversation: ConversationWrite::Create { conversation: conv.clone(), replaces: None },
            message: m,
            provider: "twilio".into(),
            provider_message_id: "SMbig0000000000000000000000000000".into(),
        })
        .await;
    assert!(matches!(res, Err(StoreError::Invalid(_))), "{res:?}");
    assert!(s.provider_message(&ws, "twilio", "SMbig0000000000000000000000000000").await.unwrap().is_none());
    assert!(s.contact_by_identity(&ws, &phone(7)).await.unwrap().is_none(), "nothing partially applied");
}

pub async fn a_claimed_identity_or_conversation_slot_conflicts<S: Store>(s: &S) {
    let ws = workspace("race");
    let at = now();
    let (_, _) = seed_conversation(s, &ws, 3, at).await;
    // A second writer that also believed the identity was new loses, and writes nothing.
    let loser = Contact::new(ws.clone(), phone(3), None, at);
    let mut conv = Conversation::start(ws.clone(), &loser, at);
    conv.record_inbound(route(), at);
    let res = s
        .commit_inbound(InboundCommit {
            hint: None,
            consent: None,
            cost: None,
            new_contact: Some(loser.clone()),
            conversation: ConversationWrite::Create { conversation: conv.clone(), replaces: None },
            message: inbound_message(&ws, &conv, &loser, at),
            provider: "twilio".into(),
            provider_message_id: format!("SM{}", ulid::Ulid::new()),
        })
        .await;
    assert!(matches!(res, Err(StoreError::Conflict)), "{res:?}");
    assert!(s.conversation(&ws, conv.id).await.unwrap().is_none());
    assert!(s.contact(&ws, loser.id).await.unwrap().is_none());
}

pub async fn a_new_conversation_replaces_only_the_resolved_one<S: Store>(s: &S) {
    let ws = workspace("replace");
    let at = now();
    let (contact, old) = seed_conversation(s, &ws, 5, at).await;
    let new_conv = |c: &Contact| {
        let mut n = Conversation::start(ws.clone(), c, at);
        n.record_inbound(route(), at);
        n
    };
    let commit = |conv: Conversation, replaces| InboundCommit {
        hint: None,
        consent: None,
        cost: None,
        new_contact: None,
        message: inbound_message(&ws, &conv, &contact, at),
        conversation: ConversationWrite::Create { conversation: conv, replaces },
        provider: "twilio".into(),
        provider_message_id: format!("SM{}", ulid::Ulid::new()),
    };
    // Naming the wrong predecessor (or none) while the slot is held conflicts.
    let wrong = s.commit_inbound(commit(new_conv(&contact), Some(domain::ConversationId::new()))).await;
    assert!(matches!(wrong, Err(StoreError::Conflict)), "{wrong:?}");
    let none = s.commit_inbound(commit(new_conv(&contact), None)).await;
    assert!(matches!(none, Err(StoreError::Conflict)), "{none:?}");
    let fresh = new_conv(&contact);
    s.commit_inbound(commit(fresh.clone(), Some(old.id))).await.unwrap();
    assert_eq!(s.current_conversation(&ws, &contact).await.unwrap().map(|c| c.id), Some(fresh.id));
}

/// `thread_of` answers what `contact_by_identity` and `current_conversation` answer together,
/// whether the identity's hint is missing, fresh or stale (the contact's slot decides).
pub async fn the_threading_read_follows_the_slot_whatever_the_hint<S: Store>(s: &S) {
    let ws = workspace("thread");
    let at = now();
    assert!(s.thread_of(&ws, &phone(8)).await.unwrap().is_none());
    let (contact, first) = seed_conversation(s, &ws, 8, at).await;
    let current = |t: Option<ThreadOf>| t.map(|t| (t.contact, t.current.map(|c| (c.id, c.version))));
    assert_eq!(
        current(s.thread_of(&ws, &phone(8)).await.unwrap()),
        Some((contact.id, Some((first.id, first.version))))
    );
    let commit = |write: ConversationWrite, conv: &Conversation, hint: bool| InboundCommit {
        hint: hint.then(|| phone(8)),
        consent: None,
        cost: None,
        new_contact: None,
        message: inbound_message(&ws, conv, &contact, at),
        conversation: write,
        provider: "twilio".into(),
        provider_message_id: format!("SM{}", ulid::Ulid::new()),
    };
    // A follow-up writes the hint; the next read is the same answer.
    let mut next = first.clone();
    next.record_inbound(route(), at);
    let update = ConversationWrite::Update { conversation: next.clone(), expected_version: first.version };
    s.commit_inbound(commit(update, &first, true)).await.unwrap();
    assert_eq!(current(s.thread_of(&ws, &phone(8)).await.unwrap()), Some((contact.id, Some((first.id, next.version)))));
    // A new conversation takes the slot without touching the hint (another identity's message,
    // a split): the hint is stale, the slot wins.
    let mut fresh = Conversation::start(ws.clone(), &contact, at);
    fresh.record_inbound(route(), at);
    let create = ConversationWrite::Create { conversation: fresh.clone(), replaces: Some(first.id) };
    s.commit_inbound(commit(create, &fresh, false)).await.unwrap();
    let t = s.thread_of(&ws, &phone(8)).await.unwrap();
    assert_eq!(current(t.clone()), Some((contact.id, Some((fresh.id, fresh.version)))));
    // Repaired by the next commit that names it.
    let mut again = fresh.clone();
    again.record_inbound(route(), at);
    let update = ConversationWrite::Update { conversation: again.clone(), expected_version: fresh.version };
    s.commit_inbound(commit(update, &fresh, true)).await.unwrap();
    let t = s.thread_of(&ws, &phone(8)).await.unwrap().unwrap();
    assert_eq!((t.current.map(|c| c.id), t.hint_fresh), (Some(fresh.id), true));
    assert_eq!(s.current_conversation(&ws, &contact).await.unwrap().map(|c| c.id), Some(fresh.id));
}

/// `conversation_with_message` answers what `conversation` and `message` answer apart.
pub async fn a_conversation_and_its_message_read_together<S: Store>(s: &S) {
    let ws = workspace("pair");
    let (_, conv) = seed_conversation(s, &ws, 9, now()).await;
    let first = s.messages(&ws, conv.id, Order::Oldest, 1, None).await.unwrap().items.remove(0);
    let (c, m) = s.conversation_with_message(&ws, conv.id, first.id).await.unwrap();
    assert_eq!((c.map(|c| c.id), m.map(|m| m.id)), (Some(conv.id), Some(first.id)));
    let (c, m) = s.conversation_with_message(&ws, conv.id, MessageId::new()).await.unwrap();
    assert_eq!((c.map(|c| c.id), m), (Some(conv.id), None));
    let (c, m) = s.conversation_with_message(&ws, domain::ConversationId::new(), first.id).await.unwrap();
    assert!(c.is_none() && m.is_none());
}

pub async fn stale_conversation_versions_conflict<S: Store>(s: &S) {
    let ws = workspace("version");
    let at = now();
    let (contact, conv) = seed_conversation(s, &ws, 4, at).await;
    let mut next = conv.clone();
    next.record_inbound(route(), at);
    let m1 = inbound_message(&ws, &conv, &contact, at);
    let ok = s
        .commit_inbound(InboundCommit {
            hint: None,
            consent: None,
            cost: None,
            new_contact: None,
            conversation: ConversationWrite::Update { conversation: next.clone(), expected_version: conv.version },
            message: m1,
            provider: "twilio".into(),
            provider_message_id: format!("SM{}", ulid::Ulid::new()),
        })
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    let stale = s
        .commit_inbound(InboundCommit {
            hint: None,
            consent: None,
            cost: None,
            new_contact: None,
            conversation: ConversationWrite::Update { conversation: next, expected_version: conv.version },
            message: inbound_message(&ws, &conv, &contact, at),
            provider: "twilio".into(),
            provider_message_id: format!("SM{}", ulid::Ulid::new()),
        })
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict)), "{stale:?}");
    assert_eq!(s.messages(&ws, conv.id, Order::Oldest, 10, None).await.unwrap().items.len(), 2);
}

pub async fn conversations_list_by_status_and_activity_with_pagination<S: Store>(s: &S) {
    let ws = workspace("list");
    let base = now();
    let mut ids = vec![];
    for i in 0..7u32 {
        let (_, c) = seed_conversation(s, &ws, 10 + i, base + time::Duration::seconds(i64::from(i))).await;
        ids.push(c.id);
    }
    ids.reverse(); // newest first
    let mut seen = vec![];
    let mut cursor = None;
    for _ in 0..10 {
        let q = ConversationQuery { status: ConversationStatus::Open, assignee: AssigneeFilter::Any, limit: 3, cursor };
        let page = s.conversations(&ws, &q).await.unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|c| c.id));
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ids, "every open conversation once, most recent activity first");
    let unassigned = ConversationQuery {
        status: ConversationStatus::Open,
        assignee: AssigneeFilter::Unassigned,
        limit: 50,
        cursor: None,
    };
    assert_eq!(s.conversations(&ws, &unassigned).await.unwrap().items.len(), 7);
    let agent = AgentId::parse("agent-1").unwrap();
    let mine = ConversationQuery {
        status: ConversationStatus::Open,
        assignee: AssigneeFilter::Agent(agent),
        limit: 50,
        cursor: None,
    };
    assert!(s.conversations(&ws, &mine).await.unwrap().items.is_empty());
    let resolved = ConversationQuery {
        status: ConversationStatus::Resolved,
        assignee: AssigneeFilter::Any,
        limit: 50,
        cursor: None,
    };
    assert!(s.conversations(&ws, &resolved).await.unwrap().items.is_empty());
    let bad = ConversationQuery {
        status: ConversationStatus::Open,
        assignee: AssigneeFilter::Any,
        limit: 3,
        cursor: Some(Cursor("!!".into())),
    };
    assert!(matches!(s.conversations(&ws, &bad).await, Err(StoreError::BadCursor)));
}

/// Every page through `list` with a page size of `limit`, items in order.
async fn every_page<T, F, Fut>(limit: u16, mut list: F) -> Vec<T>
where
    F: FnMut(u16, Option<Cursor>) -> Fut,
    Fut: std::future::Future<Output = Page<T>>,
{
    let mut out = vec![];
    let mut cursor = None;
    for _ in 0..100 {
        let page = list(limit, cursor).await;
        assert!(page.items.len() <= usize::from(limit), "a page holds at most its limit");
        out.extend(page.items);
        cursor = page.next;
        if cursor.is_none() {
            return out;
        }
    }
    panic!("the pages never ended");
}

/// The workspace-wide inbox views, the ledger's days and the month's counters are spread over
/// shards (`keys::INBOX_SHARDS`, `LEDGER_SHARDS`, `COST_SHARDS`): whatever the page size, they
/// list every item once, in the order one partition would give — activity (ties by id) for the
/// views, key order for ledger entries and per-conversation counters.
pub async fn sharded_views_and_ledgers_list_in_one_order<S: Store>(s: &S) {
    let ws = &workspace("shards");
    let base = now();
    let team = TeamId::parse("billing").unwrap();
    let mut convs = vec![];
    for i in 0..14u32 {
        // Pairs share an activity time: the id breaks the tie.
        let (_, c) = seed_conversation(s, ws, 200 + i, base + time::Duration::seconds(i64::from(i / 2))).await;
        let c = if i % 3 == 0 {
            let mut next = c.clone();
            next.team = Some(team.clone());
            replace_conversation(s, &c, next).await
        } else {
            c
        };
        convs.push(c);
    }
    let newest_first = |cs: &[&Conversation]| {
        let mut v: Vec<(String, ConversationId)> =
            cs.iter().map(|c| (crate::keys::activity_sort(c.last_activity_at, c.id), c.id)).collect();
        v.sort();
        v.reverse();
        v.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
    };
    let all: Vec<&Conversation> = convs.iter().collect();
    let billing: Vec<&Conversation> = convs.iter().filter(|c| c.team.is_some()).collect();
    for (assignee, want) in [
        (AssigneeFilter::Any, newest_first(&all)),
        (AssigneeFilter::Unassigned, newest_first(&all)),
        (AssigneeFilter::Team(team.clone()), newest_first(&billing)),
    ] {
        for limit in [1u16, 4, 50] {
            let got = every_page(limit, |limit, cursor| {
                let q =
                    ConversationQuery { status: ConversationStatus::Open, assignee: assignee.clone(), limit, cursor };
                async move { s.conversations(ws, &q).await.unwrap() }
            })
            .await;
            let ids: Vec<ConversationId> = got.iter().map(|c| c.id).collect();
            assert_eq!(ids, want, "{assignee:?} by {limit}: every conversation once, newest activity first");
        }
    }

    // Twelve costed replies over six conversations: entries page in key order, counters per
    // conversation too, and the shards of the total merge.
    let est = Totals { messages: 1, provider_micros: 1_000, aws_micros: 1, ..Totals::default() };
    let mut replies = vec![];
    for c in convs.iter().take(6) {
        for _ in 0..2 {
            replies.push(costed_reply(s, ws, c.id, est).await);
        }
    }
    let day = replies[0].created_at.date();
    let month = Month::of(replies[0].created_at);
    for limit in [1u16, 5, 100] {
        let entries =
            every_page(limit, |limit, cursor| async move { s.entries(ws, day, limit, cursor.as_ref()).await.unwrap() })
                .await;
        let keys: Vec<String> = entries.iter().map(|e| format!("{}#{}", e.message_id, e.kind.as_str())).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(keys, sorted, "ledger entries by {limit}: once each, in key order");
        assert_eq!(entries.len(), replies.len());
        let per_conv = every_page(limit, |limit, cursor| async move {
            s.counters(ws, month, Grouping::Conversation, limit, cursor.as_ref()).await.unwrap()
        })
        .await;
        let ids: Vec<String> = per_conv
            .iter()
            .map(|c| match &c.dimension {
                Dimension::Conversation { conversation } => conversation.to_string(),
                other => panic!("a conversation counter, not {other:?}"),
            })
            .collect();
        let mut want: Vec<String> = convs.iter().take(6).map(|c| c.id.to_string()).collect();
        want.sort();
        assert_eq!(ids, want, "conversation counters by {limit}: once each, in key order");
        assert!(per_conv.iter().all(|c| c.totals.messages == 2));
    }
    let total = s.counters(ws, month, Grouping::Total, 10, None).await.unwrap().items;
    assert_eq!(total.len(), 1, "the shards of the total merge into one");
    assert_eq!(total[0].totals.messages, 12);
    assert_eq!(s.spend(ws, month, BudgetScope::Workspace).await.unwrap().messages, 12);
}

pub async fn workspaces_never_see_each_other<S: Store>(s: &S) {
    let a = workspace("iso-a");
    let b = workspace("iso-b");
    let (contact, conv) = seed_conversation(s, &a, 30, now()).await;
    assert!(s.conversation(&b, conv.id).await.unwrap().is_none());
    assert!(s.contact(&b, contact.id).await.unwrap().is_none());
    assert!(s.contact_by_identity(&b, &phone(30)).await.unwrap().is_none());
    assert!(s.messages(&b, conv.id, Order::Oldest, 10, None).await.unwrap().items.is_empty());
    let q =
        ConversationQuery { status: ConversationStatus::Open, assignee: AssigneeFilter::Any, limit: 50, cursor: None };
    assert!(s.conversations(&b, &q).await.unwrap().items.is_empty());
}

fn reply(ws: &WorkspaceId, conv: &Conversation, agent: &AgentId, at: OffsetDateTime) -> Message {
    Message {
        id: MessageId::new(),
        workspace: ws.clone(),
        conversation_id: conv.id,
        direction: Direction::Outbound,
        channel: Channel::Sms,
        route: route(),
        sender: Sender::Agent { id: agent.clone() },
        text: Some("On its way".into()),
        rich: None,
        attachments: vec![],
        provider: None,
        provider_message_id: None,
        provider_timestamp: None,
        created_at: at,
        status: DeliveryStatus::Queued,
        status_history: vec![DeliveryEvent {
            status: DeliveryStatus::Queued,
            at,
            error_code: None,
            error_message: None,
        }],
        metadata: BTreeMap::new(),
        cost: None,
    }
}

/// A conversation with one inbound message and one queued agent reply to `to`, as the reply API
/// leaves it; ids are random unless given (fixtures name theirs).
pub async fn seed_queued_reply<S: Store>(
    s: &S,
    ws: &WorkspaceId,
    to: &str,
    conversation: Option<domain::ConversationId>,
    message: Option<MessageId>,
) -> (Conversation, Message) {
    let at = now();
    let contact = Contact::new(ws.clone(), phone((ulid::Ulid::new().random() % 10_000) as u32), None, at);
    let mut conv = Conversation::start(ws.clone(), &contact, at);
    if let Some(id) = conversation {
        conv.id = id;
    }
    conv.record_inbound(route(), at);
    s.commit_inbound(InboundCommit {
        hint: None,
        consent: None,
        cost: None,
        new_contact: Some(contact.clone()),
        conversation: ConversationWrite::Create { conversation: conv.clone(), replaces: None },
        message: inbound_message(ws, &conv, &contact, at),
        provider: "twilio".into(),
        provider_message_id: format!("SM{}", ulid::Ulid::new()),
    })
    .await
    .expect("seed inbound");
    let agent = AgentId::parse("alice").unwrap();
    let mut msg = reply(ws, &conv, &agent, at);
    if let Some(id) = message {
        msg.id = id;
    }
    msg.route.contact_address = to.to_owned();
    let mut next = conv.clone();
    next.record_outbound(at);
    let record = IdempotencyRecord {
        workspace: ws.clone(),
        agent,
        key: IdempotencyKey::parse(&format!("seed-{}", msg.id)).unwrap(),
        request_hash: "seed".into(),
        status_code: 202,
        response: serde_json::json!({}),
        conversation_id: conv.id,
        message_id: msg.id,
        enqueued: true,
        created_at: at,
    };
    s.commit_reply(ReplyCommit {
        cost: None,
        conversation: next.clone(),
        expected_version: conv.version,
        message: msg.clone(),
        idempotency: record,
    })
    .await
    .expect("seed reply");
    (next, msg)
}

async fn commit_reply<S: Store>(
    s: &S,
    ws: &WorkspaceId,
    conv: &Conversation,
    key: &str,
) -> Result<Message, StoreError> {
    let agent = AgentId::parse("agent-1").unwrap();
    let at = now();
    let stored = s.conversation(ws, conv.id).await?.unwrap();
    let mut next = stored.clone();
    next.record_outbound(at);
    let msg = reply(ws, conv, &agent, at);
    let record = IdempotencyRecord {
        workspace: ws.clone(),
        agent: agent.clone(),
        key: IdempotencyKey::parse(key).unwrap(),
        request_hash: "h".into(),
        status_code: 202,
        response: serde_json::json!({"id": msg.id}),
        conversation_id: conv.id,
        message_id: msg.id,
        enqueued: false,
        created_at: at,
    };
    s.commit_reply(ReplyCommit {
        cost: None,
        conversation: next,
        expected_version: stored.version,
        message: msg.clone(),
        idempotency: record,
    })
    .await?;
    Ok(msg)
}

pub async fn replies_are_idempotent_per_key<S: Store>(s: &S) {
    let ws = workspace("reply");
    let (_, conv) = seed_conversation(s, &ws, 40, now()).await;
    let agent = AgentId::parse("agent-1").unwrap();
    let key = IdempotencyKey::parse("key-1").unwrap();
    let msg = commit_reply(s, &ws, &conv, "key-1").await.unwrap();
    let rec = s.idempotency_record(&ws, &agent, &key).await.unwrap().expect("record");
    assert_eq!(rec.message_id, msg.id);
    assert!(!rec.enqueued);
    s.mark_enqueued(&ws, &agent, &key).await.unwrap();
    assert!(s.idempotency_record(&ws, &agent, &key).await.unwrap().unwrap().enqueued);
    let again = commit_reply(s, &ws, &conv, "key-1").await;
    assert!(matches!(again, Err(StoreError::Duplicate)), "{again:?}");
    let msgs = s.messages(&ws, conv.id, Order::Oldest, 10, None).await.unwrap().items;
    assert_eq!(msgs.len(), 2, "one inbound, one reply");
    let c = s.conversation(&ws, conv.id).await.unwrap().unwrap();
    assert_eq!(c.unread_count, 0);
    // Another agent's identical key is another request.
    let other = AgentId::parse("agent-2").unwrap();
    assert!(s.idempotency_record(&ws, &other, &key).await.unwrap().is_none());
}

pub async fn messages_page_in_both_orders<S: Store>(s: &S) {
    let ws = workspace("msgs");
    let (_, conv) = seed_conversation(s, &ws, 50, now()).await;
    let mut ids = vec![s.messages(&ws, conv.id, Order::Oldest, 1, None).await.unwrap().items[0].id];
    for i in 0..5 {
        ids.push(commit_reply(s, &ws, &conv, &format!("k{i}")).await.unwrap().id);
    }
    for (order, expected) in [(Order::Oldest, ids.clone()), (Order::Newest, ids.iter().rev().copied().collect())] {
        let mut got = vec![];
        let mut cursor: Option<Cursor> = None;
        for _ in 0..10 {
            let p = s.messages(&ws, conv.id, order, 2, cursor.as_ref()).await.unwrap();
            got.extend(p.items.iter().map(|m| m.id));
            cursor = p.next;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(got, expected, "{order:?}");
    }
}

pub async fn delivery_status_only_moves_forward<S: Store>(s: &S) {
    let ws = workspace("status");
    let (_, conv) = seed_conversation(s, &ws, 60, now()).await;
    let msg = commit_reply(s, &ws, &conv, "s1").await.unwrap();
    let at = now();
    assert!(matches!(s.claim_for_send(&ws, conv.id, msg.id, at).await.unwrap(), Claim::Claimed(_)));
    assert!(matches!(s.claim_for_send(&ws, conv.id, msg.id, at).await.unwrap(), Claim::InFlight(_)));
    s.release_claim(&ws, conv.id, msg.id).await.unwrap();
    assert!(matches!(s.claim_for_send(&ws, conv.id, msg.id, at).await.unwrap(), Claim::Claimed(_)));
    s.record_provider_id(&ws, conv.id, msg.id, "twilio", "SMstatus000000000000000000000000", None).await.unwrap();
    assert!(
        matches!(s.claim_for_send(&ws, conv.id, msg.id, at).await.unwrap(), Claim::Done(_)),
        "accepted by the provider: a redelivery has nothing to do"
    );
    assert_eq!(
        s.provider_message(&ws, "twilio", "SMstatus000000000000000000000000").await.unwrap(),
        Some((conv.id, msg.id))
    );
    let ev = |status| DeliveryEvent::new(status, at);
    assert!(s.advance_status(&ws, conv.id, msg.id, &ev(DeliveryStatus::Delivered)).await.unwrap());
    assert!(!s.advance_status(&ws, conv.id, msg.id, &ev(DeliveryStatus::Sent)).await.unwrap(), "late sent ignored");
    assert!(!s.advance_status(&ws, conv.id, msg.id, &ev(DeliveryStatus::Failed)).await.unwrap());
    let stored = s.message(&ws, conv.id, msg.id).await.unwrap().unwrap();
    assert_eq!(stored.status, DeliveryStatus::Delivered);
    assert_eq!(stored.provider_message_id.as_deref(), Some("SMstatus000000000000000000000000"));
    let trail: Vec<DeliveryStatus> = stored.status_history.iter().map(|e| e.status).collect();
    use DeliveryStatus::*;
    assert_eq!(trail, vec![Queued, Sending, Queued, Sending, Delivered]);
    assert!(matches!(s.claim_for_send(&ws, conv.id, msg.id, at).await.unwrap(), Claim::Done(_)));
    assert!(matches!(s.claim_for_send(&ws, conv.id, MessageId::new(), at).await.unwrap(), Claim::NotFound));
    assert!(!s.advance_status(&ws, conv.id, MessageId::new(), &ev(DeliveryStatus::Sent)).await.unwrap());
}

pub async fn channel_accounts_resolve_to_their_workspace<S: Store>(s: &S) {
    let ws = workspace("chan");
    let number = format!("+1415556{:04}", ulid::Ulid::new().random() % 10_000);
    let acct = ChannelAccount {
        display_name: Some("Support".into()),
        ..ChannelAccount::new(ws.clone(), Channel::Sms, number.clone())
    };
    s.put_channel_account(&acct).await.unwrap();
    assert_eq!(s.channel_account(Channel::Sms, &number).await.unwrap(), Some(acct.clone()));
    assert!(s.channel_account(Channel::Whatsapp, &number).await.unwrap().is_none());
    // The workspace lists its accounts; another workspace's are not among them.
    let email = ChannelAccount::new(ws.clone(), Channel::Email, format!("support@{}.example", ws.as_str()));
    s.put_channel_account(&email).await.unwrap();
    let other = workspace("chan-other");
    let theirs = ChannelAccount { workspace: other.clone(), address: "x@y.example".into(), ..email.clone() };
    s.put_channel_account(&theirs).await.unwrap();
    assert_eq!(s.channel_accounts(&ws).await.unwrap(), vec![email, acct]);
    assert_eq!(s.channel_accounts(&other).await.unwrap().len(), 1);
}

pub async fn admins_connect_and_disconnect_only_their_own_addresses<S: Store>(s: &S) {
    let ws = workspace("connect");
    let other = workspace("connect-other");
    let key = format!("wk_{}", ulid::Ulid::new());
    let mut widget = ChannelAccount::new(ws.clone(), Channel::Webchat, key.clone());
    widget.allowed_origins = vec!["https://shop.example".into()];
    assert!(s.connect_channel_account(&widget).await.unwrap());
    widget.display_name = Some("Shop".into());
    assert!(s.connect_channel_account(&widget).await.unwrap(), "the holder may update its account");
    assert_eq!(s.channel_account(Channel::Webchat, &key).await.unwrap(), Some(widget.clone()));
    // Another workspace can neither take it nor remove it.
    let theirs = ChannelAccount::new(other.clone(), Channel::Webchat, key.clone());
    assert!(!s.connect_channel_account(&theirs).await.unwrap());
    assert_eq!(s.disconnect_channel_account(&other, Channel::Webchat, &key).await.unwrap(), None);
    assert_eq!(s.channel_accounts(&ws).await.unwrap(), vec![widget.clone()]);
    assert!(s.channel_accounts(&other).await.unwrap().is_empty());
    // Disconnected: gone from the directory and the list, free for anyone, and a retry finds nothing.
    assert_eq!(s.disconnect_channel_account(&ws, Channel::Webchat, &key).await.unwrap(), Some(widget));
    assert_eq!(s.channel_account(Channel::Webchat, &key).await.unwrap(), None);
    assert!(s.channel_accounts(&ws).await.unwrap().is_empty());
    assert_eq!(s.disconnect_channel_account(&ws, Channel::Webchat, &key).await.unwrap(), None);
    assert!(s.connect_channel_account(&theirs).await.unwrap());
    assert_eq!(s.channel_accounts(&other).await.unwrap(), vec![theirs]);
}

pub async fn an_agents_first_message_threads_like_the_customers_own<S: Store>(s: &S) {
    use domain::threading::open_outreach;
    let ws = workspace("outreach");
    let ann = AgentId::parse("ann").unwrap();
    let number = format!("+1415557{:04}", ulid::Ulid::new().random() % 10_000);
    let id = Identity::phone(&PhoneNumber::parse(&number).unwrap());
    let route = |channel| Route {
        channel,
        contact_address: number.clone(),
        our_address: "+14155550100".into(),
        contact_country: None,
    };
    let now = OffsetDateTime::now_utc();
    // A new contact and conversation, written together.
    let first = open_outreach(&ws, &id, route(Channel::Sms), s.thread_of(&ws, &id).await.unwrap(), &ann, now);
    s.commit_outreach(first.commit.unwrap()).await.unwrap();
    let thread = s.thread_of(&ws, &id).await.unwrap().expect("the number has a contact now");
    assert_eq!(thread.current.as_ref().map(|c| c.id), Some(first.conversation.id));
    // The same contact's other channel joins the open conversation.
    let second = open_outreach(&ws, &id, route(Channel::Whatsapp), Some(thread), &ann, now);
    assert!(!second.started);
    s.commit_outreach(second.commit.unwrap()).await.unwrap();
    let stored = s.conversation(&ws, first.conversation.id).await.unwrap().unwrap();
    assert_eq!(stored.channels.len(), 2);
    // A second writer that read the old version conflicts rather than overwrite.
    let stale = open_outreach(
        &ws,
        &id,
        route(Channel::Email),
        Some(ThreadOf { contact: stored.contact_id, current: Some(first.conversation.clone()), hint_fresh: true }),
        &ann,
        now,
    );
    assert!(matches!(s.commit_outreach(stale.commit.unwrap()).await, Err(StoreError::Conflict)));
    // Two starts for one new address: one contact, the loser conflicts.
    let other = format!("+1415558{:04}", ulid::Ulid::new().random() % 10_000);
    let oid = Identity::phone(&PhoneNumber::parse(&other).unwrap());
    let a = open_outreach(&ws, &oid, route(Channel::Sms), None, &ann, now);
    let b = open_outreach(&ws, &oid, route(Channel::Sms), None, &ann, now);
    s.commit_outreach(a.commit.unwrap()).await.unwrap();
    assert!(matches!(s.commit_outreach(b.commit.unwrap()).await, Err(StoreError::Conflict)));
}

pub async fn workspace_settings_default_until_saved<S: Store>(s: &S) {
    let ws = workspace("settings");
    assert_eq!(s.workspace_settings(&ws).await.unwrap(), domain::workspace::Settings::default());
    let saved = domain::workspace::Settings {
        name: Some("Acme".into()),
        help_text: Some("Acme support: reply STOP to opt out.".into()),
        voicemail_greeting: None,
        max_sms_segments: Some(3),
        retention_days: Some(365),
        legal_hold: None,
        unauthenticated_mail: Some(domain::workspace::MailPolicy::Drop),
        fallback: domain::fallback::Policy::from([(Channel::Whatsapp, vec![Channel::Sms, Channel::Email])]),
    };
    s.put_workspace_settings(&ws, &saved).await.unwrap();
    assert_eq!(s.workspace_settings(&ws).await.unwrap(), saved);
    assert!(s.retention_workspaces().await.unwrap().contains(&ws), "listed for the retention run");
    let kept = domain::workspace::Settings { retention_days: None, ..saved.clone() };
    s.put_workspace_settings(&ws, &kept).await.unwrap();
    assert!(!s.retention_workspaces().await.unwrap().contains(&ws));
    s.put_workspace_settings(&ws, &saved).await.unwrap();
    assert_eq!(s.workspace_settings(&workspace("settings-other")).await.unwrap(), Default::default());
}

pub async fn rate_limits_count_per_key_and_window<S: Store>(s: &S) {
    let ws = workspace("rate");
    let window = time::Duration::hours(1);
    let start = OffsetDateTime::from_unix_timestamp(1_795_341_600).unwrap();
    for _ in 0..3 {
        assert!(s.take(&ws, "form:a@b.example", start, window, 3).await.unwrap());
    }
    assert!(!s.take(&ws, "form:a@b.example", start, window, 3).await.unwrap(), "the fourth in the hour");
    assert!(s.take(&ws, "form:c@d.example", start, window, 3).await.unwrap(), "another key");
    let later = start + time::Duration::minutes(59);
    assert!(!s.take(&ws, "form:a@b.example", later, window, 3).await.unwrap(), "any time in that hour");
    assert!(s.take(&ws, "form:a@b.example", start + window, window, 3).await.unwrap(), "the next hour");
}

/// Runs every case, sequentially (each is independent; parallel runs are the caller's choice).
pub async fn run_all<S: Store>(s: &S) {
    an_erased_contact_leaves_a_receipt_and_anonymous_costs(s).await;
    first_message_creates_contact_conversation_and_message(s).await;
    a_provider_message_is_stored_once(s).await;
    an_item_over_400_kb_is_refused_as_invalid(s).await;
    a_claimed_identity_or_conversation_slot_conflicts(s).await;
    a_new_conversation_replaces_only_the_resolved_one(s).await;
    the_threading_read_follows_the_slot_whatever_the_hint(s).await;
    a_conversation_and_its_message_read_together(s).await;
    stale_conversation_versions_conflict(s).await;
    conversations_list_by_status_and_activity_with_pagination(s).await;
    sharded_views_and_ledgers_list_in_one_order(s).await;
    workspaces_never_see_each_other(s).await;
    replies_are_idempotent_per_key(s).await;
    messages_page_in_both_orders(s).await;
    delivery_status_only_moves_forward(s).await;
    channel_accounts_resolve_to_their_workspace(s).await;
    admins_connect_and_disconnect_only_their_own_addresses(s).await;
    workspace_settings_default_until_saved(s).await;
    an_agents_first_message_threads_like_the_customers_own(s).await;
    rate_limits_count_per_key_and_window(s).await;
    the_ledger_counts_every_entry_once(s).await;
    rate_card_versions_never_change(s).await;
    budgets_and_alerts(s).await;
    consent_changes_commit_with_their_message(s).await;
    fifty_assignments_at_once_never_exceed_capacity(s).await;
    the_roster_holds_profiles_and_each_agent_their_load(s).await;
    the_waiting_queue_rules_teams_and_presence(s).await;
    connections_by_id_and_by_workspace(s).await;
    connections_by_audience(s).await;
    visitor_profiles_and_sockets(s).await;
    notes_history_team_views_and_canned_responses(s).await;
    split_and_merge_move_messages_pointers_and_the_thread(s).await;
    whatsapp_templates_by_name_and_language(s).await;
    contacts_link_identities_merge_and_suggest(s).await;
    webhook_endpoints_and_their_delivery_log(s).await;
    analytics_facts_count_once_per_dimension_and_hour(s).await;
}

pub async fn whatsapp_templates_by_name_and_language<S: Store>(s: &S) {
    use domain::channels::templates::{TemplateStatus, WhatsAppTemplate};
    use domain::finance::pricing::WhatsappCategory;
    let ws = WorkspaceId::parse(&format!("tpl-{}", ulid::Ulid::new().to_string().to_lowercase())).unwrap();
    let other = WorkspaceId::parse(&format!("tpl-{}", ulid::Ulid::new().to_string().to_lowercase())).unwrap();
    let by = AgentId::parse("ada").unwrap();
    let at = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let t = |lang: &str, status| {
        WhatsAppTemplate::new("refund_update", lang, WhatsappCategory::Utility, "Hi {{1}}", status, by.clone(), at)
            .unwrap()
    };
    s.put_whatsapp_template(&ws, &t("en_US", TemplateStatus::Pending)).await.unwrap();
    s.put_whatsapp_template(&ws, &t("pt_BR", TemplateStatus::Approved)).await.unwrap();
    // Re-registering replaces: Meta approved it.
    s.put_whatsapp_template(&ws, &t("en_US", TemplateStatus::Approved)).await.unwrap();
    let mut all = s.whatsapp_templates(&ws).await.unwrap();
    all.sort_by(|a, b| a.language.cmp(&b.language));
    assert_eq!(all, vec![t("en_US", TemplateStatus::Approved), t("pt_BR", TemplateStatus::Approved)]);
    assert_eq!(
        s.whatsapp_template(&ws, "refund_update", "pt_BR").await.unwrap(),
        Some(t("pt_BR", TemplateStatus::Approved))
    );
    assert!(s.whatsapp_template(&ws, "refund_update", "es").await.unwrap().is_none());
    assert!(s.whatsapp_templates(&other).await.unwrap().is_empty());

    // Submitted through the API: Meta's id finds it, and reviews replace it only in turn.
    let meta_id = format!("9{}", at.unix_timestamp_nanos() % 1_000_000_000);
    let mut submitted = t("es", TemplateStatus::Pending);
    submitted.meta_id = Some(meta_id.clone());
    s.put_whatsapp_template(&ws, &submitted).await.unwrap();
    assert_eq!(s.whatsapp_template_by_meta_id(&meta_id).await.unwrap(), Some((ws.clone(), submitted.clone())));
    assert!(s.whatsapp_template_by_meta_id("404").await.unwrap().is_none());
    let mut approved = submitted.clone();
    approved.status = TemplateStatus::Approved;
    approved.reviewed_at = Some(at);
    assert!(s.replace_whatsapp_template(&ws, &approved, None).await.unwrap());
    // A second writer that read the template before the approval loses.
    let mut stale = submitted.clone();
    stale.reviewed_at = Some(at + time::Duration::seconds(5));
    assert!(!s.replace_whatsapp_template(&ws, &stale, None).await.unwrap());
    let mut paused = approved.clone();
    paused.status = TemplateStatus::Paused;
    paused.reviewed_at = Some(at + time::Duration::seconds(9));
    assert!(s.replace_whatsapp_template(&ws, &paused, Some(at)).await.unwrap());
    assert_eq!(s.whatsapp_template(&ws, "refund_update", "es").await.unwrap(), Some(paused));
}

pub async fn notes_history_team_views_and_canned_responses<S: Store>(s: &S) {
    use domain::canned::{CannedResponse, Scope, Shortcut};
    use domain::inbox::Note;
    let ws = workspace("inbox");
    let at = now();
    let alice = AgentId::parse("alice").unwrap();

    // A contact's history: every conversation, oldest first, paged.
    let (contact, first) = seed_conversation(s, &ws, 7, at).await;
    let mut second = Conversation::start(ws.clone(), &contact, at + time::Duration::seconds(1));
    second.record_inbound(route(), at + time::Duration::seconds(1));
    s.commit_inbound(InboundCommit {
        hint: None,
        consent: None,
        cost: None,
        new_contact: None,
        message: inbound_message(&ws, &second, &contact, at),
        conversation: ConversationWrite::Create { conversation: second.clone(), replaces: Some(first.id) },
        provider: "twilio".into(),
        provider_message_id: format!("SM{}", ulid::Ulid::new()),
    })
    .await
    .unwrap();
    let page = s.contact_conversations(&ws, contact.id, 1, None).await.unwrap();
    let ids: Vec<ConversationId> = page.items.iter().map(|c| c.id).collect();
    let rest = s.contact_conversations(&ws, contact.id, 5, page.next.as_ref()).await.unwrap();
    let mut all = ids.clone();
    all.extend(rest.items.iter().map(|c| c.id));
    let mut expected = vec![first.id, second.id];
    expected.sort_by_key(|c| c.to_string());
    assert_eq!(all, expected, "both conversations, in id (creation) order");
    assert!(rest.next.is_none());
    let other = workspace("inbox-other");
    assert!(s.contact_conversations(&other, contact.id, 5, None).await.unwrap().items.is_empty());

    // The team view lists a team's conversations whoever owns them.
    let billing = domain::TeamId::parse("billing").unwrap();
    let mut teamed = s.conversation(&ws, second.id).await.unwrap().unwrap();
    let expected_version = teamed.version;
    teamed.team = Some(billing.clone());
    teamed.version += 1;
    s.commit_routing(RoutingCommit {
        conversation: teamed,
        expected_version,
        take: None,
        give_back: None,
        queue: QueueChange::Keep,
        audit: None,
    })
    .await
    .unwrap();
    let view = |team: &str| ConversationQuery {
        status: ConversationStatus::Open,
        assignee: AssigneeFilter::Team(domain::TeamId::parse(team).unwrap()),
        limit: 10,
        cursor: None,
    };
    let listed = s.conversations(&ws, &view("billing")).await.unwrap();
    assert_eq!(listed.items.iter().map(|c| c.id).collect::<Vec<_>>(), [second.id]);
    assert!(s.conversations(&ws, &view("sales")).await.unwrap().items.is_empty());

    // Notes: beside the messages, never among them; each with its audit entry.
    let mut notes = vec![];
    for i in 0..3 {
        let n = Note::new(ws.clone(), first.id, alice.clone(), &format!("note {i} for @bob"), at).unwrap();
        let audit = domain::audit::AuditEntry::new(
            ws.clone(),
            Some(first.id),
            alice.clone(),
            "note_added",
            serde_json::json!({ "note": n.id }),
            at,
        );
        s.add_note(&n, &audit, &IdempotencyKey::parse(&format!("note-{i}")).unwrap()).await.unwrap();
        notes.push(n);
    }
    // The same key again stores nothing more and leads to the first note.
    let retry =
        Note::new(ws.clone(), first.id, alice.clone(), "note 0 for @bob", at + time::Duration::seconds(2)).unwrap();
    let again = domain::audit::AuditEntry::new(
        ws.clone(),
        Some(first.id),
        alice.clone(),
        "note_added",
        serde_json::Value::Null,
        at + time::Duration::seconds(2),
    );
    let key = IdempotencyKey::parse("note-0").unwrap();
    assert!(matches!(s.add_note(&retry, &again, &key).await, Err(StoreError::Duplicate)));
    assert_eq!(s.note_by_key(&ws, &alice, &key).await.unwrap(), Some(notes[0].clone()));
    assert!(s.note_by_key(&ws, &AgentId::parse("bob").unwrap(), &key).await.unwrap().is_none());
    let p1 = s.notes(&ws, first.id, 2, None).await.unwrap();
    let p2 = s.notes(&ws, first.id, 2, p1.next.as_ref()).await.unwrap();
    let mut got: Vec<Note> = p1.items;
    got.extend(p2.items);
    let mut want = notes.clone();
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(got, want);
    let messages = s.messages(&ws, first.id, Order::Oldest, 50, None).await.unwrap();
    assert_eq!(messages.items.len(), 1, "notes are not messages");
    let trail = s.audit_trail(&ws, Some(first.id), 50, None).await.unwrap();
    assert_eq!(trail.items.iter().filter(|e| e.action == "note_added").count(), 3);
    assert!(s.notes(&other, first.id, 5, None).await.unwrap().items.is_empty());

    // Canned responses and each agent's use of them.
    let refund = CannedResponse {
        id: "01JD3XQ7Z9K2M4N6P8R0S2T4V6".into(),
        scope: Scope::Workspace,
        shortcut: Shortcut::parse("/refund").unwrap(),
        title: "Refund".into(),
        body: "Hi {{contact.first_name}}, your refund is on its way.".into(),
    };
    let mine = CannedResponse {
        id: "01JD3XQ7Z9K2M4N6P8R0S2T4V7".into(),
        scope: Scope::Personal { agent: alice.clone() },
        shortcut: Shortcut::parse("/thanks").unwrap(),
        title: "Thanks".into(),
        body: "Thanks!".into(),
    };
    s.put_canned_response(&ws, &refund).await.unwrap();
    s.put_canned_response(&ws, &mine).await.unwrap();
    let mut edited = refund.clone();
    edited.title = "Refund on its way".into();
    s.put_canned_response(&ws, &edited).await.unwrap();
    let mut listed = s.canned_responses(&ws).await.unwrap();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(s.canned_response(&ws, &refund.id).await.unwrap(), Some(edited.clone()));
    assert!(s.canned_response(&other, &refund.id).await.unwrap().is_none());
    assert_eq!(listed, vec![edited, mine.clone()]);
    for _ in 0..3 {
        s.record_canned_use(&ws, &alice, &refund.id).await.unwrap();
    }
    let usage = s.canned_usage(&ws, &alice).await.unwrap();
    assert_eq!(usage.get(&refund.id), Some(&3));
    assert_eq!(usage.len(), 1);
    assert!(s.canned_usage(&ws, &AgentId::parse("bob").unwrap()).await.unwrap().is_empty());
    assert!(s.canned_responses(&other).await.unwrap().is_empty());
    s.delete_canned_response(&ws, &refund.id).await.unwrap();
    assert!(s.canned_response(&ws, &refund.id).await.unwrap().is_none());
    assert_eq!(s.canned_responses(&ws).await.unwrap(), vec![mine.clone()]);
    s.delete_canned_response(&ws, &refund.id).await.unwrap();
}

pub fn cost_entry(msg: &Message, contact: ContactId, kind: EntryKind, totals: Totals) -> LedgerEntry {
    LedgerEntry {
        workspace: msg.workspace.clone(),
        kind,
        message_id: msg.id,
        conversation_id: msg.conversation_id,
        contact_id: contact,
        agent: match &msg.sender {
            Sender::Agent { id } => Some(id.clone()),
            _ => None,
        },
        team: None,
        channel: msg.channel,
        direction: msg.direction,
        message_at: msg.created_at,
        recorded_at: now(),
        currency: Currency::usd(),
        rate_card_version: 0,
        totals,
        lines: vec![],
        usage: None,
    }
}

/// Commits a reply carrying a cost estimate; returns it.
async fn costed_reply<S: Store>(s: &S, ws: &WorkspaceId, conv: ConversationId, estimate: Totals) -> Message {
    let agent = AgentId::parse("agent-1").unwrap();
    let stored = s.conversation(ws, conv).await.unwrap().unwrap();
    let at = now();
    let mut msg = reply(ws, &stored, &agent, at);
    msg.cost = Some(MessageCost {
        contact_id: stored.contact_id,
        agent: Some(AgentId::parse("agent-1").unwrap()),
        team: None,
        currency: Currency::usd(),
        rate_card_version: 0,
        provider_micros: estimate.provider_micros,
        aws_micros: estimate.aws_micros,
        actual_micros: None,
        lines: vec![],
    });
    let mut next = stored.clone();
    next.record_outbound(at);
    let record = IdempotencyRecord {
        workspace: ws.clone(),
        agent,
        key: IdempotencyKey::parse(&format!("cost-{}", msg.id)).unwrap(),
        request_hash: "cost".into(),
        status_code: 202,
        response: serde_json::json!({}),
        conversation_id: conv,
        message_id: msg.id,
        enqueued: true,
        created_at: at,
    };
    let entry = cost_entry(&msg, stored.contact_id, EntryKind::Estimate, estimate);
    s.commit_reply(ReplyCommit {
        conversation: next,
        expected_version: stored.version,
        message: msg.clone(),
        idempotency: record,
        cost: Some(entry),
    })
    .await
    .expect("costed reply");
    msg
}

async fn the_ledger_counts_every_entry_once<S: Store>(s: &S) {
    let ws = workspace("ledger");
    let (contact, conv) = seed_conversation(s, &ws, 70, now()).await;
    let est = Totals { messages: 1, provider_micros: 11_300, aws_micros: 12, ..Totals::default() };
    let a = costed_reply(s, &ws, conv.id, est).await;
    let b = costed_reply(s, &ws, conv.id, est).await;
    let month = Month::of(a.created_at);

    // A later usage entry adds to the counters and to the message, once.
    let usage = cost_entry(&a, contact.id, EntryKind::Usage, Totals { aws_micros: 7, ..Totals::default() });
    s.record_cost(&usage).await.unwrap();
    assert!(matches!(s.record_cost(&usage).await, Err(StoreError::Duplicate)));
    // The provider's price sits beside the estimate.
    let actual = cost_entry(
        &a,
        contact.id,
        EntryKind::Actual,
        Totals { actual_micros: 7_900, reconciled: 1, ..Totals::default() },
    );
    s.record_cost(&actual).await.unwrap();
    let stored = s.message(&ws, conv.id, a.id).await.unwrap().unwrap().cost.unwrap();
    assert_eq!((stored.provider_micros, stored.aws_micros, stored.actual_micros), (11_300, 19, Some(7_900)));
    // Usage recorded with the provider id, in the same write.
    let b_usage = cost_entry(&b, contact.id, EntryKind::Usage, Totals { aws_micros: 5, ..Totals::default() });
    s.record_provider_id(&ws, conv.id, b.id, "twilio", &format!("SM{}", b.id), Some(&b_usage)).await.unwrap();
    assert!(matches!(
        s.record_provider_id(&ws, conv.id, b.id, "twilio", &format!("SM{}", b.id), Some(&b_usage)).await,
        Err(StoreError::Duplicate)
    ));
    assert_eq!(s.message(&ws, conv.id, b.id).await.unwrap().unwrap().cost.unwrap().aws_micros, 17);

    let want = Totals { messages: 2, provider_micros: 22_600, aws_micros: 36, actual_micros: 7_900, reconciled: 1 };
    let total = s.counters(&ws, month, Grouping::Total, 10, None).await.unwrap();
    assert_eq!(total.items.len(), 1, "shards merge into one total");
    assert_eq!(total.items[0].totals, want);
    assert_eq!(s.spend(&ws, month, BudgetScope::Workspace).await.unwrap(), want);
    assert_eq!(s.spend(&ws, month, BudgetScope::Channel(Channel::Sms)).await.unwrap(), want);
    assert_eq!(s.spend(&ws, month, BudgetScope::Channel(Channel::Email)).await.unwrap(), Totals::default());
    let by_channel = s.counters(&ws, month, Grouping::Channel, 10, None).await.unwrap().items;
    assert_eq!(by_channel.len(), 1);
    assert_eq!(by_channel[0].dimension, Dimension::Channel { channel: Channel::Sms, direction: Direction::Outbound });
    let by_agent = s.counters(&ws, month, Grouping::Agent, 10, None).await.unwrap().items;
    assert_eq!(by_agent[0].dimension, Dimension::Agent { agent: Some(AgentId::parse("agent-1").unwrap()) });

    // Entries of the day page, and their sums equal every counter.
    let day = a.created_at.date();
    let first = s.entries(&ws, day, 3, None).await.unwrap();
    assert_eq!(first.items.len(), 3);
    let rest = s.entries(&ws, day, 3, first.next.as_ref()).await.unwrap();
    assert_eq!(rest.items.len(), 2);
    assert!(rest.next.is_none());
    let entries: Vec<LedgerEntry> = first.items.into_iter().chain(rest.items).collect();
    let mut counters = Vec::new();
    for g in Grouping::ALL {
        counters.extend(s.counters(&ws, month, g, 100, None).await.unwrap().items);
    }
    assert!(reconcile(&entries, &counters).is_empty());
    // Another workspace sees none of it.
    let other = workspace("ledger-other");
    assert_eq!(s.spend(&other, month, BudgetScope::Workspace).await.unwrap(), Totals::default());
    assert!(s.entries(&other, day, 10, None).await.unwrap().items.is_empty());
    assert!(matches!(s.entries(&ws, day, 10, Some(&Cursor("!!".into()))).await, Err(StoreError::BadCursor)));
}

async fn rate_card_versions_never_change<S: Store>(s: &S) {
    let ws = workspace("rates");
    assert!(s.rate_cards(&ws).await.unwrap().is_empty());
    let mut card = RateCard::builtin();
    card.version = 1;
    s.create_rate_card(&ws, &card).await.unwrap();
    let mut changed = card.clone();
    changed.note = Some("changed".into());
    assert!(matches!(s.create_rate_card(&ws, &changed).await, Err(StoreError::Duplicate)));
    card.version = 2;
    s.create_rate_card(&ws, &card).await.unwrap();
    let cards = s.rate_cards(&ws).await.unwrap();
    assert_eq!(cards.iter().map(|c| c.version).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(cards[0].note, RateCard::builtin().note);
}

async fn budgets_and_alerts<S: Store>(s: &S) {
    let ws = workspace("budget");
    let by = AgentId::parse("admin-1").unwrap();
    let b = Budget::new(BudgetScope::Workspace, Currency::usd(), 1_000_000, None, false, by.clone(), now()).unwrap();
    s.put_budget(&ws, &b).await.unwrap();
    let sms =
        Budget::new(BudgetScope::Channel(Channel::Sms), Currency::usd(), 5, None, true, by.clone(), now()).unwrap();
    s.put_budget(&ws, &sms).await.unwrap();
    let raised = Budget { monthly_limit_micros: 2_000_000, ..b };
    s.put_budget(&ws, &raised).await.unwrap();
    let mut all = s.budgets(&ws).await.unwrap();
    all.sort_by_key(|b| b.scope);
    assert_eq!(all, vec![raised, sms]);
    let month = Month::parse("2026-11").unwrap();
    assert!(s.claim_alert(&ws, month, BudgetScope::Workspace, 50).await.unwrap());
    assert!(!s.claim_alert(&ws, month, BudgetScope::Workspace, 50).await.unwrap());
    assert!(s.claim_alert(&ws, month, BudgetScope::Workspace, 80).await.unwrap());
    assert!(s.claim_alert(&ws, month, BudgetScope::Channel(Channel::Sms), 50).await.unwrap());
    assert!(s.claim_alert(&ws, Month::parse("2026-12").unwrap(), BudgetScope::Workspace, 50).await.unwrap());
    let mut alerted = s.alerted(&ws, month).await.unwrap();
    alerted.sort();
    assert_eq!(
        alerted,
        vec![(BudgetScope::Workspace, 50), (BudgetScope::Workspace, 80), (BudgetScope::Channel(Channel::Sms), 50)]
    );
    s.release_alert(&ws, month, BudgetScope::Workspace, 80).await.unwrap();
    assert!(s.claim_alert(&ws, month, BudgetScope::Workspace, 80).await.unwrap(), "released: may alert again");
}

async fn consent_changes_commit_with_their_message<S: Store>(s: &S) {
    use domain::consent::{Change, Record, Source, Status};
    let ws = workspace("consent");
    let (contact, conv) = seed_conversation(s, &ws, 80, now()).await;
    let identity = contact.identities[0].clone();
    assert_eq!(s.consent(&ws, &identity).await.unwrap(), None);
    let mut next = s.conversation(&ws, conv.id).await.unwrap().unwrap();
    let expected_version = next.version;
    let at = now();
    next.record_inbound(route(), at);
    let msg = inbound_message(&ws, &next, &contact, at);
    let change = Change {
        status: Status::OptedOut,
        at,
        source: Source::Keyword { text: "STOP".into(), channel: Channel::Sms, provider_message_id: msg.id.to_string() },
    };
    let record = Record::apply(None, &identity, change);
    s.commit_inbound(InboundCommit {
        hint: None,
        consent: Some(record.clone()),
        new_contact: None,
        conversation: ConversationWrite::Update { conversation: next, expected_version },
        message: msg.clone(),
        provider: "twilio".into(),
        provider_message_id: format!("SM{}", msg.id),
        cost: None,
    })
    .await
    .unwrap();
    assert_eq!(s.consent(&ws, &identity).await.unwrap(), Some(record));
    assert_eq!(s.consent(&workspace("consent-other"), &identity).await.unwrap(), None);
}

/// Routing chooses from the roster (profiles) and reads only its candidates' state (the load the
/// take is conditional on); an admin's listing reads everyone's whole state.
pub async fn the_roster_holds_profiles_and_each_agent_their_load<S: Store>(s: &S) {
    use domain::routing::Presence;
    let ws = workspace("roster");
    let at = now();
    let ann = seed_agent(s, &ws, "ann", 300, Presence::Online).await;
    let bob = seed_agent(s, &ws, "bob", 200, Presence::Away).await;
    let mut profile = ann.clone();
    profile.skills = ["billing".to_owned()].into();
    s.put_agent(&ws, &profile).await.unwrap();
    let c = seed_conversation(s, &ws, 7, at).await.1;
    let mut next = c.clone();
    next.assignee = Some(ann.id.clone());
    next.assigned_weight = 100;
    next.version += 1;
    let take = Take { agent: ann.id.clone(), weight: 100, capacity: Some(300), at };
    let commit = RoutingCommit {
        conversation: next,
        expected_version: c.version,
        take: Some(take),
        give_back: None,
        queue: QueueChange::Keep,
        audit: None,
    };
    s.commit_routing(commit).await.unwrap();

    let roster = s.roster(&ws).await.unwrap();
    let by_id = |id: &AgentId| roster.iter().find(|a| &a.id == id).cloned().unwrap();
    assert_eq!(roster.len(), 2);
    assert_eq!((by_id(&ann.id).presence, by_id(&ann.id).capacity), (Presence::Online, 300));
    assert_eq!(by_id(&ann.id).skills, profile.skills, "a profile change reaches the roster");
    assert_eq!((by_id(&bob.id).presence, by_id(&bob.id).capacity), (Presence::Away, 200));

    let states = s.agent_states(&ws, std::slice::from_ref(&ann.id)).await.unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!((states[0].load, states[0].last_assigned_at, &states[0].skills), (100, Some(at), &profile.skills));
    assert!(s.agent_states(&ws, &[AgentId::parse("nobody").unwrap()]).await.unwrap().is_empty());
    assert!(s.agent_states(&workspace("roster-other"), std::slice::from_ref(&ann.id)).await.unwrap().is_empty());

    s.set_presence(&ws, &bob.id, Presence::Online, 200, at).await.unwrap();
    let roster = s.roster(&ws).await.unwrap();
    assert_eq!(
        roster.iter().find(|a| a.id == bob.id).unwrap().presence,
        Presence::Online,
        "presence reaches the roster"
    );
    let mut both = s.agent_states(&ws, &[bob.id.clone(), ann.id.clone()]).await.unwrap();
    both.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(s.agents(&ws).await.unwrap(), both, "the listing is every agent's whole state");
}

async fn fifty_assignments_at_once_never_exceed_capacity<S: Store>(s: &S) {
    use domain::audit::AuditEntry;
    use domain::routing::{AgentState, Presence};
    let ws = workspace("agents");
    let ann = AgentId::parse("ann").unwrap();
    let mut profile = AgentState {
        id: ann.clone(),
        presence: Presence::Online,
        teams: [domain::TeamId::parse("support").unwrap()].into(),
        skills: ["billing".to_owned()].into(),
        capacity: 500,
        load: 0,
        last_assigned_at: None,
    };
    s.put_agent(&ws, &profile).await.unwrap();
    let at = now();
    let mut convs = vec![];
    for i in 0..50 {
        convs.push(seed_conversation(s, &ws, 100 + i, at).await.1);
    }
    let assign = |c: &Conversation| {
        let mut next = c.clone();
        next.assignee = Some(ann.clone());
        next.assigned_weight = 100;
        next.version += 1;
        RoutingCommit {
            conversation: next,
            expected_version: c.version,
            take: Some(Take { agent: ann.clone(), weight: 100, capacity: Some(500), at }),
            give_back: None,
            queue: QueueChange::Remove,
            audit: Some(AuditEntry::new(
                ws.clone(),
                Some(c.id),
                AuditEntry::system(),
                "assigned",
                serde_json::json!({}),
                at,
            )),
        }
    };
    let outcomes = futures::future::join_all(convs.iter().map(|c| s.commit_routing(assign(c)))).await;
    let taken: Vec<usize> = outcomes.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(i, _)| i).collect();
    assert_eq!(taken.len(), 5, "capacity 5 conversations at weight 1.0");
    assert!(outcomes.iter().all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict))));
    let stored = s.agents(&ws).await.unwrap();
    assert_eq!((stored.len(), stored[0].load, stored[0].last_assigned_at), (1, 500, Some(at)));
    assert_eq!(stored[0].skills, profile.skills);
    // Every winner is stored with its owner and its audit entry; every loser is untouched.
    let winner = s.conversation(&ws, convs[taken[0]].id).await.unwrap().unwrap();
    assert_eq!((winner.assignee.clone(), winner.assigned_weight), (Some(ann.clone()), 100));
    let trail = s.audit_trail(&ws, Some(winner.id), 10, None).await.unwrap().items;
    assert_eq!(trail.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["assigned"]);
    let loser = (0..convs.len()).find(|i| !taken.contains(i)).unwrap();
    let loser = s.conversation(&ws, convs[loser].id).await.unwrap().unwrap();
    assert_eq!((loser.assignee.clone(), loser.version), (None, convs[0].version));
    assert!(s.audit_trail(&ws, Some(loser.id), 10, None).await.unwrap().items.is_empty());

    // Resolving gives the share back; a stale version changes nothing.
    let mut resolved = winner.clone();
    resolved.status = ConversationStatus::Resolved;
    resolved.version += 1;
    let give = |c: Conversation, expected: u64, w: u32| RoutingCommit {
        conversation: c,
        expected_version: expected,
        take: None,
        give_back: Some((ann.clone(), w)),
        queue: QueueChange::Keep,
        audit: None,
    };
    assert!(matches!(
        s.commit_routing(give(resolved.clone(), winner.version - 1, 100)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(s.agents(&ws).await.unwrap()[0].load, 500);
    s.commit_routing(give(resolved.clone(), winner.version, 100)).await.unwrap();
    assert_eq!(s.agents(&ws).await.unwrap()[0].load, 400);
    // A profile update keeps the load; going away stops routed work but not a supervisor's.
    profile.presence = Presence::Away;
    s.put_agent(&ws, &profile).await.unwrap();
    assert_eq!(s.agents(&ws).await.unwrap()[0].load, 400);
    assert!(matches!(s.commit_routing(assign(&loser)).await, Err(StoreError::Conflict)), "away: no routed work");
    let mut by_hand = assign(&loser);
    by_hand.take.as_mut().unwrap().capacity = None;
    s.commit_routing(by_hand).await.unwrap();
    assert_eq!(s.agents(&ws).await.unwrap()[0].load, 500);
    // Giving back more than is held settles at zero.
    let again = s.conversation(&ws, resolved.id).await.unwrap().unwrap();
    let mut bump = again.clone();
    bump.version += 1;
    s.commit_routing(give(bump, again.version, 10_000)).await.unwrap();
    assert_eq!(s.agents(&ws).await.unwrap()[0].load, 0, "never below zero");
    // Nobody's capacity cannot be taken.
    let mut ghost = assign(&convs[49]);
    let fresh = s.conversation(&ws, convs[49].id).await.unwrap().unwrap();
    ghost.expected_version = fresh.version;
    ghost.take.as_mut().unwrap().agent = AgentId::parse("nobody").unwrap();
    ghost.take.as_mut().unwrap().capacity = None;
    assert!(matches!(s.commit_routing(ghost).await, Err(StoreError::Conflict)));
    assert!(s.agents(&workspace("agents-other")).await.unwrap().is_empty());
}

async fn the_waiting_queue_rules_teams_and_presence<S: Store>(s: &S) {
    use domain::routing::{BusinessHours, Presence, RoutingRules, Team, Work};
    let ws = workspace("routing");
    let at = now();
    let (_, conv) = seed_conversation(s, &ws, 1, at).await;
    let mut waiting = conv.clone();
    waiting.waiting_since = Some(at);
    waiting.version += 1;
    let work = Work::of(&waiting, at).unwrap();
    s.commit_routing(RoutingCommit {
        conversation: waiting.clone(),
        expected_version: conv.version,
        take: None,
        give_back: None,
        queue: QueueChange::Add(work.clone()),
        audit: None,
    })
    .await
    .unwrap();
    assert_eq!(s.waiting(&ws).await.unwrap(), vec![work]);
    assert!(s.waiting(&workspace("routing-other")).await.unwrap().is_empty());
    let mut out = waiting.clone();
    out.waiting_since = None;
    out.version += 1;
    s.commit_routing(RoutingCommit {
        conversation: out,
        expected_version: waiting.version,
        take: None,
        give_back: None,
        queue: QueueChange::Remove,
        audit: None,
    })
    .await
    .unwrap();
    assert!(s.waiting(&ws).await.unwrap().is_empty());

    assert_eq!(s.routing_rules(&ws).await.unwrap(), RoutingRules::default());
    let team = Team {
        id: domain::TeamId::parse("billing").unwrap(),
        name: "Billing".into(),
        hours: Some(BusinessHours {
            time_zone: "Europe/Paris".into(),
            weekly: Default::default(),
            holidays: Default::default(),
        }),
    };
    s.put_team(&ws, &team).await.unwrap();
    let mut rules = RoutingRules::default();
    rules.team_by_channel.insert(Channel::Sms, team.id.clone());
    rules.weights.email = 25;
    s.put_routing_rules(&ws, &rules).await.unwrap();
    assert_eq!(s.routing_rules(&ws).await.unwrap(), rules);
    assert_eq!(s.teams(&ws).await.unwrap(), vec![team.clone()]);

    // The SLA policy: defaults until saved; read with the hours it counts in, in one go.
    assert_eq!(s.sla_policy(&ws).await.unwrap(), domain::sla::Policy::default());
    let policy = domain::sla::Policy { warn_at_percent: 60, ..Default::default() };
    s.put_sla_policy(&ws, &policy).await.unwrap();
    assert_eq!(s.sla_policy(&ws).await.unwrap(), policy);
    let privacy = domain::redact::Policy { ibans: false, ..Default::default() };
    s.put_privacy_policy(&ws, &privacy).await.unwrap();
    assert_eq!(s.privacy_policy(&ws).await.unwrap(), privacy);
    let setup = s.sla_setup(&ws).await.unwrap();
    assert_eq!(setup.policy, policy);
    assert_eq!(setup.privacy, privacy);
    assert_eq!(setup.hours, None);
    assert_eq!(setup.team_hours.get(&team.id), team.hours.as_ref());

    // Presence creates a profile with the default capacity, and keeps an existing one's; each
    // change ends the period before it, and tells when an online one began.
    let bob = AgentId::parse("bob").unwrap();
    let t = |m: i64| at + time::Duration::minutes(m);
    let set = s.set_presence(&ws, &bob, Presence::Online, 300, t(0)).await.unwrap();
    assert_eq!((set.state.presence, set.state.capacity, set.state.load), (Presence::Online, 300, 0));
    assert_eq!(set.online_since, None, "a new agent had no online period");
    let set = s.set_presence(&ws, &bob, Presence::Online, 300, t(30)).await.unwrap();
    assert_eq!(set.online_since, Some(t(0)), "online again: the first stretch ends, a new one starts");
    let set = s.set_presence(&ws, &bob, Presence::DoNotDisturb, 900, t(95)).await.unwrap();
    assert_eq!((set.state.presence, set.state.capacity), (Presence::DoNotDisturb, 300));
    assert_eq!(set.online_since, Some(t(30)));
    let off = s.set_presence(&ws, &bob, Presence::Offline, 900, t(120)).await.unwrap();
    assert_eq!(off.online_since, None, "do-not-disturb is not online time");
    let a = off.state;
    assert_eq!(s.agents(&ws).await.unwrap(), vec![a]);

    // Workspace audit entries page in time order.
    for i in 0..3 {
        let e = domain::audit::AuditEntry::new(
            ws.clone(),
            None,
            bob.clone(),
            "rules_changed",
            serde_json::json!({ "i": i }),
            at + time::Duration::milliseconds(i),
        );
        s.record_audit(&e).await.unwrap();
    }
    let first = s.audit_trail(&ws, None, 2, None).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let rest = s.audit_trail(&ws, None, 2, first.next.as_ref()).await.unwrap();
    assert_eq!((rest.items.len(), rest.next), (1, None));
    assert_eq!(rest.items[0].details["i"], 2);
}

async fn connections_by_id_and_by_workspace<S: Store>(s: &S) {
    use domain::realtime::Connection;
    let ws = workspace("conn");
    let at = now();
    let c = |id: &str, agent: &str| Connection {
        id: domain::ConnectionId::parse(id).unwrap(),
        workspace: ws.clone(),
        agent: AgentId::parse(agent).unwrap(),
        name: Some("Ann".into()),
        role: Role::Agent,
        connected_at: at,
        last_seen_at: at,
        viewing: None,
        subscriptions: Default::default(),
        token_expires_at: None,
    };
    let tag = ulid::Ulid::new().to_string();
    let (a, b) = (c(&format!("a{tag}="), "ann"), c(&format!("b{tag}="), "bob"));
    s.put_connection(&a).await.unwrap();
    s.put_connection(&b).await.unwrap();
    let mut viewing = a.clone();
    viewing.viewing = Some(ConversationId::new());
    s.put_connection(&viewing).await.unwrap();
    assert_eq!(s.connection(&a.id).await.unwrap(), Some(viewing.clone()));
    let mut all = s.connections(&ws).await.unwrap();
    all.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(all, vec![viewing, b.clone()]);
    assert!(s.connections(&workspace("conn-other")).await.unwrap().is_empty());
    s.delete_connection(&ws, &a.id).await.unwrap();
    assert_eq!(s.connection(&a.id).await.unwrap(), None);
    assert_eq!(s.connections(&ws).await.unwrap(), vec![b.clone()]);
    s.delete_connection(&ws, &a.id).await.unwrap();
    assert_eq!(s.agent_connections(&ws, &a.agent).await.unwrap(), vec![]);
}

/// Each audience finds exactly the connections in it, through every change of what a tab shows.
async fn connections_by_audience<S: Store>(s: &S) {
    use domain::realtime::Connection;
    let ws = workspace("audience");
    let at = now();
    let tag = ulid::Ulid::new().to_string();
    let c = |id: &str, agent: &str, role: Role| Connection {
        id: domain::ConnectionId::parse(&format!("{id}{tag}=")).unwrap(),
        workspace: ws.clone(),
        agent: AgentId::parse(agent).unwrap(),
        name: None,
        role,
        connected_at: at,
        last_seen_at: at,
        viewing: None,
        subscriptions: Default::default(),
        token_expires_at: None,
    };
    let (first, second, third) = (ConversationId::new(), ConversationId::new(), ConversationId::new());
    let mut ann = c("ann1", "ann", Role::Agent);
    let ann2 = c("ann2", "ann", Role::Agent);
    let mut sue = c("sue1", "sue", Role::Supervisor);
    ann.viewing = Some(first);
    sue.subscriptions = [first, second].into();
    for conn in [&ann, &ann2, &sue] {
        s.put_connection(conn).await.unwrap();
    }
    let ids = |v: Vec<Connection>| {
        let mut ids: Vec<String> = v.into_iter().map(|c| c.id.to_string()).collect();
        ids.sort();
        ids
    };
    let id = |c: &Connection| c.id.to_string();
    assert_eq!(ids(s.agent_connections(&ws, &ann.agent).await.unwrap()), [id(&ann), id(&ann2)]);
    assert_eq!(ids(s.overseer_connections(&ws).await.unwrap()), [id(&sue)]);
    assert_eq!(ids(s.watching(&ws, first).await.unwrap()), [id(&ann), id(&sue)]);
    assert_eq!(ids(s.watching(&ws, second).await.unwrap()), [id(&sue)]);
    // Every read of the workspace-wide lists sees the same (whichever copy it reads).
    for _ in 0..6 {
        assert_eq!(ids(s.connections(&ws).await.unwrap()), [id(&ann), id(&ann2), id(&sue)]);
    }
    // A tab that moves on leaves the conversation it showed; what it shows now carries the change.
    ann.viewing = Some(third);
    sue.subscriptions = [second].into();
    s.put_connection(&ann).await.unwrap();
    s.put_connection(&sue).await.unwrap();
    assert_eq!(s.watching(&ws, first).await.unwrap(), vec![]);
    assert_eq!(s.watching(&ws, third).await.unwrap(), vec![ann.clone()]);
    assert_eq!(s.watching(&ws, second).await.unwrap(), vec![sue.clone()]);
    assert_eq!(s.overseer_connections(&ws).await.unwrap(), vec![sue.clone()]);
    assert!(s.agent_connections(&ws, &ann.agent).await.unwrap().contains(&ann));
    // Gone from every audience.
    s.delete_connection(&ws, &sue.id).await.unwrap();
    s.delete_connection(&ws, &ann.id).await.unwrap();
    assert_eq!(s.overseer_connections(&ws).await.unwrap(), vec![]);
    assert_eq!(s.watching(&ws, second).await.unwrap(), vec![]);
    assert_eq!(s.watching(&ws, third).await.unwrap(), vec![]);
    assert_eq!(s.agent_connections(&ws, &ann.agent).await.unwrap(), vec![ann2.clone()]);
    assert_eq!(s.connections(&ws).await.unwrap(), vec![ann2]);
}

async fn visitor_profiles_and_sockets<S: Store>(s: &S) {
    use domain::channels::webchat::{VisitorConnection, VisitorId, VisitorProfile};
    let ws = workspace("chat");
    let at = now();
    let (v, other) = (VisitorId::new(), VisitorId::new());
    assert_eq!(s.visitor_profile(&ws, &v).await.unwrap(), None);
    let profile = VisitorProfile {
        workspace: ws.clone(),
        visitor: v.clone(),
        name: Some("Rui".into()),
        email: Some(domain::EmailAddress::parse("rui@example.com").unwrap()),
        proven_email: Some(domain::EmailAddress::parse("rui@example.com").unwrap()),
        updated_at: at,
    };
    s.put_visitor_profile(&profile).await.unwrap();
    assert_eq!(s.visitor_profile(&ws, &v).await.unwrap(), Some(profile));
    assert_eq!(s.visitor_profile(&workspace("chat-other"), &v).await.unwrap(), None);

    let tag = ulid::Ulid::new().to_string();
    let c = |id: &str, visitor: &VisitorId, after: i64| VisitorConnection {
        id: domain::ConnectionId::parse(id).unwrap(),
        workspace: ws.clone(),
        visitor: visitor.clone(),
        key: "wk_contract_site".into(),
        connected_at: at + time::Duration::seconds(after),
    };
    let (tab1, tab2, theirs) =
        (c(&format!("t1{tag}="), &v, 0), c(&format!("t2{tag}="), &v, 5), c(&format!("o{tag}="), &other, 1));
    for x in [&tab2, &tab1, &theirs] {
        s.put_visitor_connection(x).await.unwrap();
    }
    assert_eq!(s.visitor_connection(&tab2.id).await.unwrap(), Some(tab2.clone()));
    assert_eq!(s.visitor_connections(&ws, &v).await.unwrap(), vec![tab1.clone(), tab2.clone()], "oldest first");
    assert_eq!(s.visitor_connections(&ws, &other).await.unwrap(), vec![theirs]);
    s.delete_visitor_connection(&tab1).await.unwrap();
    s.delete_visitor_connection(&tab1).await.unwrap();
    assert_eq!(s.visitor_connection(&tab1.id).await.unwrap(), None);
    assert_eq!(s.visitor_connections(&ws, &v).await.unwrap(), vec![tab2]);
    // An agent's connection of the same id space is another thing.
    assert_eq!(s.connection(&tab1.id).await.unwrap(), None);
}

/// Announcements a case does not look at.
struct Discard;

#[async_trait::async_trait]
impl NotificationQueue for Discard {
    async fn publish(&self, _: &domain::events::Notification) -> Result<(), QueueError> {
        Ok(())
    }
}

async fn all_messages<S: Store>(s: &S, ws: &WorkspaceId, id: ConversationId) -> Vec<Message> {
    let page = s.messages(ws, id, Order::Oldest, 100, None).await.unwrap();
    assert!(page.next.is_none());
    page.items
}

pub async fn split_and_merge_move_messages_pointers_and_the_thread<S: Store>(s: &S) {
    use domain::inbox::Actor;
    use domain::reorg::{reorganise, Reorg};
    let ws = workspace("reorg");
    let at = now();
    let (contact, first) = seed_conversation(s, &ws, 11, at).await;
    // 28 customer messages: more than one chunk moves.
    let mut conv = s.conversation(&ws, first.id).await.unwrap().unwrap();
    for i in 1..28 {
        let expected_version = conv.version;
        let t = at + time::Duration::seconds(i);
        conv.record_inbound(route(), t);
        let mut m = inbound_message(&ws, &conv, &contact, t);
        m.provider_message_id = Some(format!("SMreorg{i}"));
        s.commit_inbound(InboundCommit {
            hint: None,
            consent: None,
            cost: None,
            new_contact: None,
            message: m,
            conversation: ConversationWrite::Update { conversation: conv.clone(), expected_version },
            provider: "twilio".into(),
            provider_message_id: format!("SMreorg{i}"),
        })
        .await
        .unwrap();
    }
    // It waits for an agent.
    let mut waiting = s.conversation(&ws, first.id).await.unwrap().unwrap();
    let expected_version = waiting.version;
    waiting.waiting_since = Some(at);
    waiting.version += 1;
    let work = domain::routing::Work::of(&waiting, at).unwrap();
    s.commit_routing(RoutingCommit {
        conversation: waiting,
        expected_version,
        take: None,
        give_back: None,
        queue: QueueChange::Add(work),
        audit: None,
    })
    .await
    .unwrap();
    let before = all_messages(s, &ws, first.id).await;
    assert_eq!(before.len(), 28);

    // A message changed since it was read does not move.
    let stale = before[5].clone();
    let mut newer = stale.clone();
    newer.status = DeliveryStatus::Read;
    let ev = DeliveryEvent::new(DeliveryStatus::Read, at);
    assert!(s.advance_status(&ws, first.id, stale.id, &ev).await.unwrap());
    assert!(matches!(s.move_messages(&ws, ConversationId::new(), &[stale]).await, Err(StoreError::Conflict)));

    let sue = Actor { agent: AgentId::parse("sue").unwrap(), role: Role::Supervisor };
    let split = Reorg::Split { from: before[2].id };
    let done = reorganise(s, &Discard, &ws, first.id, &sue, &split, at).await.unwrap();
    assert!(done.changed);
    assert_eq!(done.moved, 26);
    let new = done.conversation.id;
    let left = all_messages(s, &ws, first.id).await;
    let moved = all_messages(s, &ws, new).await;
    assert_eq!(left.iter().map(|m| m.id).collect::<Vec<_>>(), before[..2].iter().map(|m| m.id).collect::<Vec<_>>());
    assert_eq!(moved.iter().map(|m| m.id).collect::<Vec<_>>(), before[2..].iter().map(|m| m.id).collect::<Vec<_>>());
    assert!(moved.iter().all(|m| m.conversation_id == new));
    assert_eq!(moved[3].status, DeliveryStatus::Read, "moved as it was");
    assert_eq!(s.provider_message(&ws, "twilio", "SMreorg20").await.unwrap(), Some((new, before[20].id)));
    assert_eq!(s.provider_message(&ws, "twilio", "SMreorg1").await.unwrap(), Some((first.id, before[1].id)));
    let source = s.conversation(&ws, first.id).await.unwrap().unwrap();
    let target = s.conversation(&ws, new).await.unwrap().unwrap();
    assert_eq!((source.status, source.message_count, source.moving.clone()), (ConversationStatus::Resolved, 2, None));
    assert_eq!((target.status, target.message_count, target.unread_count), (ConversationStatus::Open, 26, 26));
    assert_eq!(target.split_from, Some(first.id));
    assert_eq!(s.current_conversation(&ws, &contact).await.unwrap().map(|c| c.id), Some(new));
    let queue: Vec<ConversationId> = s.waiting(&ws).await.unwrap().iter().map(|w| w.conversation).collect();
    assert_eq!(queue, vec![new], "its place in the queue went with it");
    let history = s.contact_conversations(&ws, contact.id, 10, None).await.unwrap();
    assert_eq!(history.items.len(), 2);
    let trail = s.audit_trail(&ws, Some(new), 10, None).await.unwrap();
    assert_eq!(trail.items.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), vec!["split_from"]);
    // Listed in the open view, the old one in the resolved view.
    let q =
        ConversationQuery { status: ConversationStatus::Open, assignee: AssigneeFilter::Any, limit: 10, cursor: None };
    assert_eq!(s.conversations(&ws, &q).await.unwrap().items.iter().map(|c| c.id).collect::<Vec<_>>(), vec![new]);

    // The same request again changes nothing and answers the same conversation.
    let again = reorganise(s, &Discard, &ws, first.id, &sue, &split, at).await.unwrap();
    assert_eq!((again.changed, again.conversation.id), (false, new));

    // Merging the old one back into the current one: every message in one thread again.
    let merge = Reorg::Merge { into: new };
    let merged = reorganise(s, &Discard, &ws, first.id, &sue, &merge, at).await.unwrap();
    assert_eq!((merged.changed, merged.moved), (true, 2));
    let all = all_messages(s, &ws, new).await;
    assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), before.iter().map(|m| m.id).collect::<Vec<_>>());
    assert!(all_messages(s, &ws, first.id).await.is_empty());
    let source = s.conversation(&ws, first.id).await.unwrap().unwrap();
    assert_eq!(source.merged_into, Some(new));
    let target = s.conversation(&ws, new).await.unwrap().unwrap();
    assert_eq!((target.status, target.message_count), (ConversationStatus::Open, 28));
    assert_eq!(s.current_conversation(&ws, &contact).await.unwrap().map(|c| c.id), Some(new));
    let again = reorganise(s, &Discard, &ws, first.id, &sue, &merge, at).await.unwrap();
    assert!(!again.changed);

    // The last write checks what it read.
    let commit = ReorgCommit {
        source: source.clone(),
        source_version: source.version + 7,
        target: target.clone(),
        target_version: Some(target.version),
        moves_current: false,
        queue: None,
        audits: vec![],
    };
    assert!(matches!(s.commit_reorg(commit).await, Err(StoreError::Conflict)));
}

/// Stores one more customer message in an existing conversation of `contact`.
pub async fn append_inbound<S: Store>(
    s: &S,
    ws: &WorkspaceId,
    contact: &Contact,
    conv: ConversationId,
    at: OffsetDateTime,
) {
    let mut c = s.conversation(ws, conv).await.unwrap().expect("seeded conversation");
    let expected_version = c.version;
    c.record_inbound(route(), at);
    s.commit_inbound(InboundCommit {
        hint: None,
        consent: None,
        cost: None,
        new_contact: None,
        message: inbound_message(ws, &c, contact, at),
        conversation: ConversationWrite::Update { conversation: c, expected_version },
        provider: "twilio".into(),
        provider_message_id: format!("SM{}", ulid::Ulid::new()),
    })
    .await
    .expect("append inbound");
}

/// A conversation `id` of a new contact whose customer messages have the given ids (oldest first).
pub async fn seed_thread<S: Store>(s: &S, ws: &WorkspaceId, id: ConversationId, messages: &[MessageId]) -> Contact {
    let at = now();
    let contact = Contact::new(ws.clone(), phone((ulid::Ulid::new().random() % 10_000) as u32), None, at);
    let mut conv = Conversation::start(ws.clone(), &contact, at);
    conv.id = id;
    for (i, m) in messages.iter().enumerate() {
        let expected_version = conv.version;
        conv.record_inbound(route(), at);
        let write = match i {
            0 => ConversationWrite::Create { conversation: conv.clone(), replaces: None },
            _ => ConversationWrite::Update { conversation: conv.clone(), expected_version },
        };
        let new_contact = (i == 0).then(|| contact.clone());
        let mut msg = inbound_message(ws, &conv, &contact, at);
        msg.id = *m;
        s.commit_inbound(InboundCommit {
            hint: None,
            consent: None,
            cost: None,
            new_contact,
            message: msg,
            conversation: write,
            provider: "twilio".into(),
            provider_message_id: format!("SM{m}"),
        })
        .await
        .expect("seed thread");
    }
    contact
}

/// A first message from a new contact with this identity and name; returns both.
async fn seed_named<S: Store>(s: &S, ws: &WorkspaceId, identity: Identity, name: &str) -> (Contact, Conversation) {
    let at = now();
    let contact = Contact::new(ws.clone(), identity, Some(name.into()), at);
    let mut conv = Conversation::start(ws.clone(), &contact, at);
    conv.record_inbound(route(), at);
    s.commit_inbound(InboundCommit {
        hint: None,
        consent: None,
        cost: None,
        new_contact: Some(contact.clone()),
        message: inbound_message(ws, &conv, &contact, at),
        conversation: ConversationWrite::Create { conversation: conv.clone(), replaces: None },
        provider: "twilio".into(),
        provider_message_id: format!("SM{}", ulid::Ulid::new()),
    })
    .await
    .expect("seed named contact");
    (contact, conv)
}

pub async fn contacts_link_identities_merge_and_suggest<S: Store>(s: &S) {
    use domain::contacts::{self, ContactError};
    use domain::inbox::Refusal;
    let ws = workspace("contacts");
    let at = now();
    let ada = AgentId::parse("ada").unwrap();
    let email = Identity::parse(IdentityKind::Email, "ana@example.com").unwrap();
    let (a, x) = seed_named(s, &ws, phone(7001), "Ana Silva").await;
    let (b, y) = seed_named(s, &ws, phone(7002), "Anna Silva").await;

    // Linking: once, idempotently, never onto a second contact.
    let linked = contacts::add_identity(s, &ws, a.id, email.clone(), &ada, at).await.unwrap();
    assert!(linked.changed);
    assert_eq!(s.identity_owner(&ws, &email).await.unwrap(), Some(a.id));
    assert_eq!(s.contact_by_identity(&ws, &email).await.unwrap().map(|c| c.id), Some(a.id));
    assert!(!contacts::add_identity(s, &ws, a.id, email.clone(), &ada, at).await.unwrap().changed);
    let taken = contacts::add_identity(s, &ws, b.id, email.clone(), &ada, at).await;
    assert!(matches!(&taken, Err(ContactError::Refused(Refusal::Conflict(m))) if m.contains(&a.id.to_string())));
    let stale = s.link_identity(&linked.contact, a.version, &phone(7009), &linked_audit(&ws, &ada, at)).await;
    assert!(matches!(stale, Err(StoreError::Conflict)), "a stale version: {stale:?}");
    let dup = s.link_identity(&b, b.version, &email, &linked_audit(&ws, &ada, at)).await;
    assert!(matches!(dup, Err(StoreError::Duplicate)), "{dup:?}");
    // Unlinking frees the identity; the last one stays.
    assert!(contacts::remove_identity(s, &ws, a.id, &email, &ada, at).await.unwrap().changed);
    assert_eq!(s.identity_owner(&ws, &email).await.unwrap(), None);
    let last = contacts::remove_identity(s, &ws, b.id, &phone(7002), &ada, at).await;
    assert!(matches!(last, Err(ContactError::Refused(Refusal::Invalid(_)))), "{last:?}");
    contacts::add_identity(s, &ws, b.id, email.clone(), &ada, at).await.unwrap();

    // Probable matches come from the name index: similar name, similar phone.
    let (c, _) = seed_named(s, &ws, Identity::parse(IdentityKind::Phone, "+447955557001").unwrap(), "Ana Silva").await;
    let named = s.contacts_named(&ws, "silva a", 10).await.unwrap();
    assert_eq!(named.len(), 3, "{named:?}");
    let (_, found) = contacts::suggest(s, &ws, a.id).await.unwrap();
    assert_eq!(found.iter().map(|(sg, _)| sg.contact).collect::<Vec<_>>(), vec![c.id]);

    // Merge b (open conversation y, phone and email) into a (open conversation x): both kept open,
    // a's stays the thread; b forwards to a; every identity and conversation moved.
    let merged = contacts::merge(s, &ws, b.id, a.id, &ada, at).await.unwrap();
    assert!(merged.changed);
    assert_eq!(merged.moved, 1);
    assert_eq!(merged.source.merged_into, Some(a.id));
    assert!(merged.source.identities.is_empty());
    assert_eq!(merged.contact.identities.len(), 3);
    for i in [phone(7001), phone(7002), email.clone()] {
        assert_eq!(s.contact_by_identity(&ws, &i).await.unwrap().map(|c| c.id), Some(a.id), "{i:?}");
    }
    let history = s.contact_conversations(&ws, a.id, 10, None).await.unwrap().items;
    let mut ids: Vec<ConversationId> = history.iter().map(|c| c.id).collect();
    ids.sort();
    let mut want = vec![x.id, y.id];
    want.sort();
    assert_eq!(ids, want);
    assert!(history.iter().all(|c| c.contact_id == a.id));
    assert!(s.contact_conversations(&ws, b.id, 10, None).await.unwrap().items.is_empty());
    assert_eq!(s.current_conversation(&ws, &merged.contact).await.unwrap().map(|c| c.id), Some(x.id));
    assert_eq!(s.current_conversation(&ws, &merged.source).await.unwrap(), None);
    // A message that read b before the merge cannot start a conversation under it.
    let mut late = Conversation::start(ws.clone(), &b, at);
    late.record_inbound(route(), at);
    let res = s
        .commit_inbound(InboundCommit {
            hint: None,
            consent: None,
            cost: None,
            new_contact: None,
            message: inbound_message(&ws, &late, &b, at),
            conversation: ConversationWrite::Create { conversation: late, replaces: Some(y.id) },
            provider: "twilio".into(),
            provider_message_id: format!("SM{}", ulid::Ulid::new()),
        })
        .await;
    assert!(matches!(res, Err(StoreError::Conflict)), "{res:?}");
    // The name index forgets b; a repeat changes nothing; the trail has the merge.
    assert_eq!(s.contacts_named(&ws, "silva a", 10).await.unwrap().len(), 2);
    let again = contacts::merge(s, &ws, b.id, a.id, &ada, at).await.unwrap();
    assert_eq!((again.changed, again.moved), (false, 0));
    let trail = s.audit_trail(&ws, None, 20, None).await.unwrap().items;
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "contacts_merged").count(), 1, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| **a == "identity_added").count(), 2, "{actions:?}");

    // Only a has an open thread when c (no open conversation after resolving) merges in: nothing
    // moves slots; and a merge into b (merged away) is refused.
    let into_gone = contacts::merge(s, &ws, c.id, b.id, &ada, at).await;
    assert!(matches!(into_gone, Err(ContactError::Refused(Refusal::Conflict(_)))), "{into_gone:?}");
    // Handing over: d has an open conversation, e (new, resolved) has none open.
    let (d, z) = seed_named(s, &ws, phone(7003), "Dee Dee").await;
    let (e, w) = seed_named(s, &ws, phone(7004), "Eve Dee").await;
    let mut resolved = w.clone();
    resolved.status = ConversationStatus::Resolved;
    resolved.version += 1;
    s.commit_routing(RoutingCommit {
        conversation: resolved,
        expected_version: w.version,
        take: None,
        give_back: None,
        queue: QueueChange::Keep,
        audit: None,
    })
    .await
    .unwrap();
    let handed = contacts::merge(s, &ws, d.id, e.id, &ada, at).await.unwrap();
    assert_eq!(handed.moved, 1);
    assert_eq!(s.current_conversation(&ws, &handed.contact).await.unwrap().map(|c| c.id), Some(z.id));
}

fn linked_audit(ws: &WorkspaceId, by: &AgentId, at: OffsetDateTime) -> domain::audit::AuditEntry {
    domain::audit::AuditEntry::new(ws.clone(), None, by.clone(), "identity_added", serde_json::json!({}), at)
}

pub async fn webhook_endpoints_and_their_delivery_log<S: Store>(s: &S) {
    use domain::hooks::{Attempt, DeliveryJob, DeliveryState, Endpoint, EventType, Secret};
    let ws = workspace("hooks");
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let mut e = Endpoint {
        id: domain::hooks::endpoint_id(ulid::Ulid::new()),
        workspace: ws.clone(),
        url: "https://hooks.example.com/in".into(),
        description: Some("CRM".into()),
        events: [EventType::MessageCreated].into(),
        enabled: true,
        secrets: vec![Secret::from_bytes(&[5; 32], now).unwrap()],
        created_at: now,
        updated_at: now,
        failing_since: None,
        last_success_at: None,
        disabled_reason: None,
        version: 1,
    };
    s.put_endpoint(&e, None).await.unwrap();
    assert!(matches!(s.put_endpoint(&e, None).await, Err(StoreError::Duplicate)), "created once");
    assert_eq!(s.endpoint(&ws, &e.id).await.unwrap().as_ref(), Some(&e));
    let mut changed = e.clone();
    changed.enabled = false;
    changed.version = 2;
    s.put_endpoint(&changed, Some(1)).await.unwrap();
    assert!(matches!(s.put_endpoint(&e, Some(1)).await, Err(StoreError::Conflict)), "a stale version loses");
    e = changed;
    assert_eq!(s.endpoints(&ws).await.unwrap(), vec![e.clone()]);
    assert!(s.endpoints(&workspace("other")).await.unwrap().is_empty());

    // Three deliveries, the second tried twice; listed newest first, one page at a time.
    let jobs: Vec<DeliveryJob> = (0..3u64)
        .map(|i| DeliveryJob {
            workspace: ws.clone(),
            endpoint_id: e.id.clone(),
            msg_id: domain::hooks::message_id(
                1_700_000_000_000 + i,
                &format!("n{i}"),
                EventType::MessageCreated,
                &e.id,
            ),
            event: EventType::MessageCreated,
            body: format!("{{\"n\":{i}}}"),
            manual: false,
        })
        .collect();
    let attempt =
        |code: Option<u16>| Attempt { at: now, status_code: code, latency_ms: 12, error: None, manual: false };
    for j in &jobs {
        s.record_attempt(j, &attempt(Some(200)), DeliveryState::Succeeded, None).await.unwrap();
    }
    let next = now + time::Duration::minutes(5);
    s.record_attempt(&jobs[1], &attempt(Some(500)), DeliveryState::Retrying, Some(next)).await.unwrap();
    let d = s.delivery(&ws, &e.id, &jobs[1].msg_id).await.unwrap().unwrap();
    assert_eq!(d.attempts.len(), 2);
    assert_eq!(d.attempts[1].status_code, Some(500));
    assert_eq!((d.state, d.next_attempt_at), (DeliveryState::Retrying, Some(next)));
    assert_eq!(d.body, jobs[1].body);
    s.record_attempt(&jobs[1], &attempt(Some(204)), DeliveryState::Succeeded, None).await.unwrap();
    assert_eq!(s.delivery(&ws, &e.id, &jobs[1].msg_id).await.unwrap().unwrap().next_attempt_at, None);
    let first = s.deliveries(&ws, &e.id, 2, None).await.unwrap();
    let ids: Vec<&str> = first.items.iter().map(|d| d.msg_id.as_str()).collect();
    assert_eq!(ids, [jobs[2].msg_id.as_str(), jobs[1].msg_id.as_str()]);
    let rest = s.deliveries(&ws, &e.id, 2, first.next.as_ref()).await.unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].msg_id, jobs[0].msg_id);
    assert!(rest.next.is_none());

    s.delete_endpoint(&ws, &e.id).await.unwrap();
    assert!(s.endpoint(&ws, &e.id).await.unwrap().is_none());
}

pub async fn analytics_facts_count_once_per_dimension_and_hour<S: Store>(s: &S) {
    use domain::analytics::{Fact, FactKind};
    let ws = workspace("stats");
    let at = OffsetDateTime::from_unix_timestamp(1_764_590_400).unwrap(); // 2025-12-01T12:00Z
    let fact = |id: &str, at: OffsetDateTime, channel: Channel, agent: Option<&str>, kind: FactKind| Fact {
        id: id.into(),
        workspace: ws.clone(),
        at,
        channel: Some(channel),
        agent: agent.map(str::to_owned),
        team: None,
        kind,
    };
    let resolved = fact("resolved:1", at, Channel::Sms, Some("ann"), FactKind::Resolved { seconds: 600.0 });
    assert_eq!(s.apply_facts(std::slice::from_ref(&resolved)).await.unwrap(), 1);
    assert_eq!(s.apply_facts(std::slice::from_ref(&resolved)).await.unwrap(), 0, "a fact counts once");
    // A batch: a new fact on the same aggregate, a repeat, and one in another hour and channel.
    let later = at + time::Duration::hours(3);
    let batch = [
        fact("resolved:2", at, Channel::Sms, None, FactKind::Resolved { seconds: 60.0 }),
        resolved.clone(),
        fact("in:1", later, Channel::Email, None, FactKind::MessageIn),
        fact("in:1", later, Channel::Email, None, FactKind::MessageIn),
    ];
    assert_eq!(s.apply_facts(&batch).await.unwrap(), 2, "repeats, in or out of the batch, count once");
    let all = s.aggregates(&ws, "channel", "2025-12-01T00", "2025-12-01T23").await.unwrap();
    let hours: Vec<(&str, &str)> = all.iter().map(|(h, d, _)| (h.as_str(), d.as_str())).collect();
    assert_eq!(hours, [("2025-12-01T12", "channel:sms"), ("2025-12-01T15", "channel:email")]);
    let sms = &all[0].2;
    assert_eq!(sms.counts.resolved, 2);
    assert_eq!(sms.resolution.count(), 2);
    assert!((sms.resolution.quantile(1.0).unwrap() - 600.0).abs() <= 6.0);
    let agents = s.aggregates(&ws, "agent", "2025-12-01T12", "2025-12-01T12").await.unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!((agents[0].1.as_str(), agents[0].2.counts.resolved), ("agent:ann", 1));
    assert!(s.aggregates(&ws, "channel", "2025-12-02T00", "2025-12-02T23").await.unwrap().is_empty());
}

/// Erasure's steps: the contact unreachable, its conversation gone with everything in it, its cost
/// rows anonymous and still adding up, a receipt; another contact untouched; each step twice.
pub async fn an_erased_contact_leaves_a_receipt_and_anonymous_costs<S: Store>(s: &S) {
    use domain::erasure::{ConversationTrace, Receipt};
    let ws = workspace("erase");
    let at = now();
    let month = Month::of(at);
    let (contact, conv) = seed_conversation(s, &ws, 77, at).await;
    let (other, other_conv) = seed_conversation(s, &ws, 78, at).await;
    let mine = s.messages(&ws, conv.id, Order::Oldest, 10, None).await.unwrap().items;
    let theirs = s.messages(&ws, other_conv.id, Order::Oldest, 10, None).await.unwrap().items;
    let one = |p| Totals { messages: 1, provider_micros: p, ..Totals::default() };
    s.record_cost(&cost_entry(&mine[0], contact.id, EntryKind::Estimate, one(7_500))).await.unwrap();
    s.record_cost(&cost_entry(&theirs[0], other.id, EntryKind::Estimate, one(2_000))).await.unwrap();
    let ann = AgentId::parse("ann").unwrap();
    let note = domain::inbox::Note::new(ws.clone(), conv.id, ann.clone(), "called them back", at).unwrap();
    let key = IdempotencyKey::parse("erase-note").unwrap();
    let note_audit =
        domain::audit::AuditEntry::new(ws.clone(), Some(conv.id), ann.clone(), "note_added", serde_json::json!({}), at);
    s.add_note(&note, &note_audit, &key).await.unwrap();
    let proven = contact.identities[0].clone();
    let change = domain::consent::Change {
        status: domain::consent::Status::OptedOut,
        at,
        source: domain::consent::Source::Agent { agent: ann.clone(), note: None },
    };
    s.put_consent(&ws, &domain::consent::Record::apply(None, &proven, change)).await.unwrap();

    for _ in 0..2 {
        s.begin_erasure(&contact, at).await.unwrap();
    }
    assert!(s.contact_by_identity(&ws, &proven).await.unwrap().is_none(), "no message can reach it any more");
    assert!(s.consent(&ws, &proven).await.unwrap().is_none());
    assert!(s.contact(&ws, contact.id).await.unwrap().unwrap().erasing.is_some());

    let mut trace = ConversationTrace::default();
    mine.iter().for_each(|m| trace.add(m));
    for _ in 0..2 {
        s.erase_conversation(&ws, contact.id, conv.id, &trace, true).await.unwrap();
    }
    assert!(s.conversation(&ws, conv.id).await.unwrap().is_none());
    assert!(s.messages(&ws, conv.id, Order::Oldest, 10, None).await.unwrap().items.is_empty());
    assert!(s.notes(&ws, conv.id, 10, None).await.unwrap().items.is_empty());
    assert!(s.note_by_key(&ws, &ann, &key).await.unwrap().is_none(), "the note's key names nothing now");
    assert!(s.audit_trail(&ws, Some(conv.id), 10, None).await.unwrap().items.is_empty());
    let pmid = mine[0].provider_message_id.clone().unwrap_or_default();
    if !pmid.is_empty() {
        assert!(s.provider_message(&ws, "twilio", &pmid).await.unwrap().is_none());
    }
    assert!(s.contact_conversations(&ws, contact.id, 10, None).await.unwrap().items.is_empty());

    let receipt = Receipt { contact: contact.id, by: ann.clone(), requested_at: at, erased_at: at };
    let audit =
        domain::audit::AuditEntry::new(ws.clone(), None, ann.clone(), "contact_erased", serde_json::json!({}), at);
    s.finish_erasure(&ws, contact.id, &[month], &receipt, &audit).await.unwrap();
    assert!(s.contact(&ws, contact.id).await.unwrap().is_none());
    assert_eq!(s.erasure_receipt(&ws, contact.id).await.unwrap(), Some(receipt));

    // The ledger keeps the cost, naming nobody; the counters still add up to the entries.
    let entries = s.entries(&ws, at.date(), 10, None).await.unwrap().items;
    let erased = entries.iter().find(|e| e.message_id == mine[0].id).unwrap();
    assert_eq!((erased.contact_id, erased.conversation_id), (ContactId::ERASED, ConversationId::ERASED));
    assert_eq!(erased.totals.provider_micros, 7_500);
    let mut counters = Vec::new();
    for g in Grouping::ALL {
        counters.extend(s.counters(&ws, month, g, 100, None).await.unwrap().items);
    }
    assert!(reconcile(&entries, &counters).is_empty(), "{counters:?}");
    assert!(counters.iter().all(|c| c.dimension != Dimension::Contact { contact: contact.id }
        && c.dimension != Dimension::Conversation { conversation: conv.id }));
    assert!(
        counters
            .iter()
            .any(|c| c.dimension == Dimension::Contact { contact: ContactId::ERASED }
                && c.totals.provider_micros == 7_500)
    );
    assert_eq!(s.spend(&ws, month, BudgetScope::Workspace).await.unwrap().provider_micros, 9_500);

    // The other contact is whole.
    assert!(s.contact_by_identity(&ws, &other.identities[0]).await.unwrap().is_some());
    assert_eq!(s.messages(&ws, other_conv.id, Order::Oldest, 10, None).await.unwrap().items.len(), 1);
    assert!(counters.iter().any(|c| c.dimension == Dimension::Contact { contact: other.id }));
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_memory_store_meets_the_contract() {
        super::run_all(&crate::MemoryStore::new()).await;
    }
}
