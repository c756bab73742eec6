//! The inbound processor: for each canonical inbound event, in FIFO order, the ingest use case
//! (`app::ingest`): resolve, thread, store once, announce, route, answer. This crate is wiring:
//! decode the record, call the use case, classify its error for the batch.

use std::sync::Arc;

use app::ingest::Ingest;
pub use app::ingest::{Ingested, AUTO_REPLY_AFTER_HOURS};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use domain::events::InboundEvent;
use domain::finance::service::RateCardCache;
use domain::ports::{NotificationQueue, OutboundQueue};
use kit::fifo::{parse_body, process_in_order, RecordError};
use lambda_runtime::Error;
use meter::{Invocation, Trigger};
use store::Store;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub notifications: Arc<dyn NotificationQueue>,
    /// Automatic answers (HELP) go out through the sender like any reply.
    pub outbound: Arc<dyn OutboundQueue>,
    pub help_text: String,
    pub rates: RateCardCache,
    pub budgets: app::cache::BudgetCache,
    pub memory_mb: u64,
}

impl Deps {
    pub fn new(
        store: Arc<dyn Store>,
        notifications: Arc<dyn NotificationQueue>,
        outbound: Arc<dyn OutboundQueue>,
    ) -> Self {
        Self {
            store,
            notifications,
            outbound,
            help_text: domain::consent::DEFAULT_HELP_TEXT.to_owned(),
            rates: RateCardCache::default(),
            budgets: app::cache::BudgetCache::default(),
            memory_mb: meter::memory_mb_from_env(),
        }
    }

    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let sqs = aws_sdk_sqs::Client::new(aws);
        let mut deps = Self::new(
            Arc::new(store::DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), config.required("TABLE_NAME")?)),
            Arc::new(queue::SqsQueue::new(sqs.clone(), config.required("NOTIFICATION_QUEUE_URL")?)),
            Arc::new(queue::SqsQueue::new(sqs, config.required("OUTBOUND_QUEUE_URL")?)),
        );
        if let Some(text) = config.optional("HELP_TEXT").filter(|t| !t.trim().is_empty()) {
            deps.help_text = text;
        }
        Ok(deps)
    }
}

pub async fn handle(deps: &Deps, event: SqsEvent) -> Result<SqsBatchResponse, Error> {
    let batch = event.records.len();
    Ok(process_in_order(event, |record| async move {
        let event: InboundEvent = parse_body(&record)?;
        let inv = Invocation::new(deps.memory_mb, batch, Trigger::SqsBatch);
        meter::measure(ingest_with(deps, event, &inv)).await.0.map(|_| ())
    })
    .await)
}

/// Ingests one event outside a batch (tests, the local tools).
pub async fn ingest(deps: &Deps, event: InboundEvent) -> Result<Ingested, RecordError> {
    ingest_with(deps, event, &Invocation::new(deps.memory_mb, 1, Trigger::SqsBatch)).await
}

async fn ingest_with(deps: &Deps, event: InboundEvent, inv: &Invocation) -> Result<Ingested, RecordError> {
    let use_case = Ingest {
        store: &*deps.store,
        notifications: &*deps.notifications,
        outbound: &*deps.outbound,
        rates: &deps.rates,
        budgets: &deps.budgets,
        help_text: &deps.help_text,
        usage_so_far: &|| inv.usage_so_far(),
        clock: &time::OffsetDateTime::now_utc,
    };
    Ok(use_case.event(event).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::sqs::SqsMessage;
    use domain::events::InboundMessage;
    use domain::model::{Conversation, Direction, Sender};
    use domain::ports::{ConsentStore, ConversationReader, InboundStore, Order};
    use domain::{AgentId, ConversationId};
    use domain::{Identity, PhoneNumber, WorkspaceId};
    use queue::memory::MemoryQueue;
    use store::MemoryStore;

    const FIXTURE: &str = include_str!("../../../events/inbound-processor/sqs-inbound-sms.json");

    fn deps() -> (Deps, Arc<MemoryStore>, Arc<MemoryQueue>) {
        let s = Arc::new(MemoryStore::new());
        let q = Arc::new(MemoryQueue::new());
        (Deps::new(s.clone(), q.clone(), q.clone()), s, q)
    }

    fn inbound(sid: &str, from: &str, text: &str) -> InboundEvent {
        let p = PhoneNumber::parse(from).unwrap();
        InboundEvent::Message(InboundMessage {
            workspace: WorkspaceId::parse("demo").unwrap(),
            contact_country: Some("US".into()),
            channel: domain::Channel::Sms,
            identity: Identity::phone(&p),
            contact_address: p.to_string(),
            our_address: "+14155550100".into(),
            contact_name: None,
            provider: "twilio".into(),
            provider_message_id: sid.into(),
            text: Some(text.into()),
            attachments: vec![],
            rich: None,
            provider_timestamp: None,
            received_at: time::OffsetDateTime::now_utc(),
            metadata: Default::default(),
            usage: Default::default(),
            thread: None,
            completes: false,
        })
    }

    fn ws() -> WorkspaceId {
        WorkspaceId::parse("demo").unwrap()
    }

    #[tokio::test]
    async fn help_is_answered_once_even_when_opted_out_and_redelivered() {
        let (deps, store, q) = deps();
        let from = "+14155552671";
        ingest(&deps, inbound("SM00000000000000000000000000000011", from, "STOP")).await.unwrap();
        let help = inbound("SM00000000000000000000000000000012", from, "Help");
        ingest(&deps, help.clone()).await.unwrap();
        ingest(&deps, help).await.unwrap(); // redelivered
        let sends: Vec<_> =
            q.sent().into_iter().filter(|(_, _, b)| b.get("task").is_some_and(|t| t == "send")).collect();
        assert_eq!(sends.len(), 1, "one answer, enqueued once: {sends:?}");
        let ws = WorkspaceId::parse("demo").unwrap();
        let conv = store
            .conversations(
                &ws,
                &domain::ports::ConversationQuery {
                    status: domain::ConversationStatus::Open,
                    assignee: domain::ports::AssigneeFilter::Any,
                    limit: 10,
                    cursor: None,
                },
            )
            .await
            .unwrap()
            .items
            .remove(0);
        let msgs = store.messages(&ws, conv.id, Order::Oldest, 10, None).await.unwrap().items;
        let answer = msgs.iter().find(|m| m.direction == Direction::Outbound).expect("the answer");
        assert_eq!(answer.text.as_deref(), Some(domain::consent::DEFAULT_HELP_TEXT));
        assert_eq!(answer.sender, Sender::System);
        assert!(answer.cost.is_some(), "priced like any message");
        assert_eq!(conv.unread_count, 2, "an automatic answer marks nothing read");
    }

    async fn conversation_of(store: &MemoryStore, from: &str) -> Conversation {
        let p = PhoneNumber::parse(from).unwrap();
        let contact = store.contact_by_identity(&ws(), &Identity::phone(&p)).await.unwrap().unwrap();
        store.current_conversation(&ws(), &contact).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn new_conversations_are_routed_by_skill_and_wait_when_nobody_qualifies() {
        use domain::ports::{AgentStore, AuditLog, RoutingStore};
        use domain::routing::{AgentState, Presence, RoutingRules};
        let (deps, store, q) = deps();
        let mut rules = RoutingRules::default();
        rules.skills.keywords.insert("refund".into(), "billing".into());
        store.put_routing_rules(&ws(), &rules).await.unwrap();
        let agent = |id: &str, skills: &[&str]| AgentState {
            id: AgentId::parse(id).unwrap(),
            presence: Presence::Online,
            teams: Default::default(),
            skills: skills.iter().map(|s| (*s).to_owned()).collect(),
            capacity: 100,
            load: 0,
            last_assigned_at: None,
        };
        store.put_agent(&ws(), &agent("ann", &[])).await.unwrap();
        store.put_agent(&ws(), &agent("bob", &["billing"])).await.unwrap();
        ingest(&deps, inbound("SM00000000000000000000000000000021", "+14155552671", "I want a refund")).await.unwrap();
        let billing = conversation_of(&store, "+14155552671").await;
        assert_eq!(billing.assignee.as_ref().map(AgentId::as_str), Some("bob"), "the skill decides");
        assert!(billing.skills.contains("billing"));
        // A follow-up keeps its owner and changes nothing in routing.
        ingest(&deps, inbound("SM00000000000000000000000000000022", "+14155552671", "hello?")).await.unwrap();
        assert_eq!(conversation_of(&store, "+14155552671").await.assignee, billing.assignee);
        ingest(&deps, inbound("SM00000000000000000000000000000023", "+14155552672", "hi")).await.unwrap();
        assert_eq!(conversation_of(&store, "+14155552672").await.assignee.unwrap().as_str(), "ann");
        // Both are full now: the third waits in the queue.
        ingest(&deps, inbound("SM00000000000000000000000000000024", "+14155552673", "hi")).await.unwrap();
        let waiting = conversation_of(&store, "+14155552673").await;
        assert_eq!((waiting.assignee.clone(), waiting.waiting_since.is_some()), (None, true));
        assert_eq!(store.waiting(&ws()).await.unwrap().len(), 1);
        let changes: Vec<String> = q
            .sent()
            .into_iter()
            .filter(|(_, _, b)| b["type"] == "conversation_changed")
            .map(|(_, _, b)| b["change"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(changes, ["assigned", "assigned", "queued"]);
        let trail = store.audit_trail(&ws(), Some(billing.id), 10, None).await.unwrap().items;
        assert_eq!(trail[0].action, "assigned");
    }

    #[tokio::test]
    async fn outside_business_hours_the_customer_is_acknowledged_once() {
        use domain::ports::RoutingStore;
        use domain::routing::{BusinessHours, RoutingRules};
        let (deps, store, q) = deps();
        // Open on no day at all: always outside hours.
        let rules = RoutingRules {
            hours: Some(BusinessHours {
                time_zone: "UTC".into(),
                weekly: Default::default(),
                holidays: Default::default(),
            }),
            ..RoutingRules::default()
        };
        store.put_routing_rules(&ws(), &rules).await.unwrap();
        let first = inbound("SM00000000000000000000000000000031", "+14155552671", "hello");
        ingest(&deps, first.clone()).await.unwrap();
        ingest(&deps, first).await.unwrap();
        ingest(&deps, inbound("SM00000000000000000000000000000032", "+14155552671", "anyone?")).await.unwrap();
        let conv = conversation_of(&store, "+14155552671").await;
        let msgs = store.messages(&ws(), conv.id, Order::Oldest, 10, None).await.unwrap().items;
        let acks: Vec<_> = msgs.iter().filter(|m| m.direction == Direction::Outbound).collect();
        assert_eq!(acks.len(), 1);
        assert_eq!(acks[0].text.as_deref(), Some(domain::routing::DEFAULT_AFTER_HOURS_MESSAGE));
        assert_eq!(acks[0].metadata["auto_reply"], AUTO_REPLY_AFTER_HOURS);
        assert_eq!(q.sent().iter().filter(|(_, _, b)| b.get("task").is_some_and(|t| t == "send")).count(), 1);
        assert!(conv.waiting_since.is_some() && conv.assignee.is_none());
    }

    #[tokio::test]
    async fn the_fixture_batch_is_stored_and_announced() {
        let (deps, s, q) = deps();
        let event: SqsEvent = serde_json::from_str(FIXTURE).unwrap();
        let res = handle(&deps, event).await.unwrap();
        assert!(res.batch_item_failures.is_empty());
        let p = PhoneNumber::parse("+14155552671").unwrap();
        let contact = s.contact_by_identity(&ws(), &Identity::phone(&p)).await.unwrap().unwrap();
        let conv = s.current_conversation(&ws(), &contact).await.unwrap().unwrap();
        assert_eq!(conv.unread_count, 1);
        let types: Vec<String> = q.sent().iter().map(|(_, _, b)| b["type"].as_str().unwrap().to_owned()).collect();
        // Nobody is online in a fresh workspace: the conversation waits for the first agent.
        assert_eq!(types, ["message_created", "conversation_changed"]);
    }

    #[tokio::test]
    async fn follow_ups_join_the_open_conversation_and_duplicates_store_nothing() {
        let (deps, s, _) = deps();
        let a = ingest(&deps, inbound("SM00000000000000000000000000000001", "+14155552671", "one")).await.unwrap();
        let b = ingest(&deps, inbound("SM00000000000000000000000000000002", "+14155552671", "two")).await.unwrap();
        let again = ingest(&deps, inbound("SM00000000000000000000000000000001", "+14155552671", "one")).await.unwrap();
        let (
            Ingested::Stored { conversation: c1, message: m1, new_conversation: true, needs_routing: true },
            Ingested::Stored { conversation: c2, new_conversation: false, .. },
        ) = (a, b)
        else {
            panic!("unexpected outcomes {a:?} {b:?}");
        };
        assert_eq!(c1, c2);
        assert_eq!(again, Ingested::Duplicate { conversation: c1, message: m1 });
        let msgs = s.messages(&ws(), c1, Order::Oldest, 10, None).await.unwrap().items;
        assert_eq!(msgs.iter().map(|m| m.text.clone().unwrap()).collect::<Vec<_>>(), vec!["one", "two"]);
    }

    fn email(message_id: &str, from: &str, thread: domain::channels::email::EmailThread) -> InboundEvent {
        let InboundEvent::Message(mut m) = inbound("SM00000000000000000000000000000099", "+14155552671", "x") else {
            unreachable!()
        };
        let address = domain::EmailAddress::parse(from).unwrap();
        m.channel = domain::Channel::Email;
        m.identity = Identity::email(&address);
        m.contact_address = address.to_string();
        m.contact_country = None;
        m.our_address = "support@acme.example".into();
        m.provider = domain::channels::email::PROVIDER.into();
        m.provider_message_id = message_id.into();
        m.thread = Some(thread);
        InboundEvent::Message(m)
    }

    async fn resolve(s: &MemoryStore, id: ConversationId) {
        let mut c = s.conversation(&ws(), id).await.unwrap().unwrap();
        let expected_version = c.version;
        c.status = domain::model::ConversationStatus::Resolved;
        c.version += 1;
        let commit = domain::ports::RoutingCommit {
            conversation: c,
            expected_version,
            take: None,
            give_back: None,
            queue: domain::ports::QueueChange::Keep,
            audit: None,
        };
        domain::ports::RoutingStore::commit_routing(s, commit).await.unwrap();
    }

    #[tokio::test]
    async fn an_email_answering_a_resolved_thread_reopens_it_and_a_foreign_token_is_ignored() {
        use domain::channels::email::EmailThread;
        let (deps, s, _) = deps();
        let first = ingest(&deps, email("m1@example.com", "ann@example.com", EmailThread::default())).await.unwrap();
        let conversation = first.conversation().unwrap();
        resolve(&s, conversation).await;
        // In-Reply-To her own first message: the resolved conversation reopens.
        let hint = EmailThread { token: None, references: vec!["m1@example.com".into()] };
        let again = ingest(&deps, email("m2@example.com", "ann@example.com", hint)).await.unwrap();
        assert_eq!(again.conversation(), Some(conversation));
        let c = s.conversation(&ws(), conversation).await.unwrap().unwrap();
        assert_eq!(c.status, domain::model::ConversationStatus::Open);
        // Without a hint, a resolved conversation is not continued.
        resolve(&s, conversation).await;
        let fresh = ingest(&deps, email("m3@example.com", "ann@example.com", EmailThread::default())).await.unwrap();
        assert_ne!(fresh.conversation(), Some(conversation));
        // The plus-address token names the old one: it wins over the current conversation.
        let token = EmailThread { token: Some(conversation.to_string().to_lowercase()), references: vec![] };
        let by_token = ingest(&deps, email("m4@example.com", "ann@example.com", token.clone())).await.unwrap();
        assert_eq!(by_token.conversation(), Some(conversation));
        // Bob cannot write into Ann's conversation with her token.
        let bob = ingest(&deps, email("m5@example.com", "bob@example.com", token)).await.unwrap();
        assert_ne!(bob.conversation(), Some(conversation));
    }

    #[tokio::test]
    async fn a_provider_suppression_is_applied_once() {
        use domain::consent::{Change, Source, Status};
        let (deps, s, _) = deps();
        let identity = Identity::email(&domain::EmailAddress::parse("ann@example.com").unwrap());
        let update = domain::events::ConsentUpdate {
            workspace: ws(),
            identity: identity.clone(),
            change: Change {
                status: Status::OptedOut,
                at: time::OffsetDateTime::now_utc(),
                source: Source::Provider {
                    provider: "ses".into(),
                    reason: "complaint".into(),
                    provider_message_id: "m1".into(),
                },
            },
        };
        let ev = InboundEvent::Consent(update);
        assert_eq!(ingest(&deps, ev.clone()).await.unwrap(), Ingested::Consent { applied: true });
        assert_eq!(
            ingest(&deps, ev).await.unwrap(),
            Ingested::Consent { applied: false },
            "a redelivery changes nothing"
        );
        let record = s.consent(&ws(), &identity).await.unwrap().unwrap();
        assert_eq!((record.status, record.history.len()), (Status::OptedOut, 1));
        assert!(record.refusal().unwrap().contains("complaint reported by ses"));
    }

    #[tokio::test]
    async fn concurrent_first_messages_from_one_person_make_one_contact_and_one_conversation() {
        let (deps, s, _) = deps();
        let results = futures::future::join_all((0..10).map(|i| {
            let deps = &deps;
            async move { ingest(deps, inbound(&format!("SM{i:032}"), "+14155559999", "hi")).await.unwrap() }
        }))
        .await;
        let convs: std::collections::HashSet<_> = results.iter().filter_map(Ingested::conversation).collect();
        assert_eq!(convs.len(), 1);
        let conv = *convs.iter().next().unwrap();
        assert_eq!(s.messages(&ws(), conv, Order::Oldest, 50, None).await.unwrap().items.len(), 10);
        assert_eq!(s.conversation(&ws(), conv).await.unwrap().unwrap().unread_count, 10);
    }

    #[tokio::test]
    async fn a_garbage_record_fails_with_everything_after_it() {
        let (deps, _, _) = deps();
        let mut event: SqsEvent = serde_json::from_str(FIXTURE).unwrap();
        let mut bad = SqsMessage::default();
        bad.message_id = Some("bad".into());
        bad.body = Some("{not json".into());
        let good = event.records[0].clone();
        event.records = vec![bad, good];
        let res = handle(&deps, event).await.unwrap();
        assert_eq!(res.batch_item_failures.len(), 2);
    }

    #[tokio::test]
    async fn a_notification_outage_is_retried_and_the_retry_does_not_store_twice() {
        let (deps, s, q) = deps();
        q.fail(true);
        let ev = inbound("SM00000000000000000000000000000003", "+14155552671", "one");
        assert!(matches!(ingest(&deps, ev.clone()).await, Err(RecordError::Retryable(_))));
        q.fail(false);
        let Ingested::Duplicate { conversation, .. } = ingest(&deps, ev).await.unwrap() else {
            panic!("duplicate expected")
        };
        assert_eq!(s.messages(&ws(), conversation, Order::Oldest, 10, None).await.unwrap().items.len(), 1);
        let created = q.sent().iter().filter(|(_, _, b)| b["type"] == "message_created").count();
        assert_eq!(created, 1, "the retry announced it");
    }
}
