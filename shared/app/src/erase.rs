//! Erasure: a contact and everything about it removed (GDPR's right to erasure), resumably. See
//! `domain::erasure` for what goes and what stays. The admin's request runs the first steps at
//! once; a contact with more conversations than one step takes continues in a Step Functions
//! loop, one [`step`] per task, until the receipt is written. Every step may run twice or
//! overlap with another: each deletion is idempotent.

use domain::audit::AuditEntry;
use domain::erasure::{self, ConversationTrace, Job, Progress, Receipt};
use domain::model::IdentityKind;
use domain::ports::{
    AuditLog, ContactHistory, ConversationReader, Cursor, ErasureStore, FileRemover, HookStore, Order, WorkspaceStore,
};
use domain::timers::ErasureRuns;
use time::OffsetDateTime;

use crate::Error;

/// What erasing reads and writes.
pub trait ErasePorts:
    ConversationReader + ContactHistory + ErasureStore + AuditLog + HookStore + WorkspaceStore
{
}
impl<T: ConversationReader + ContactHistory + ErasureStore + AuditLog + HookStore + WorkspaceStore + ?Sized> ErasePorts
    for T
{
}

/// Conversations one step erases: the request's step answers within an API Gateway timeout,
/// a loop task well within its function's.
pub const REQUEST_CONVERSATIONS: usize = 10;
pub const TASK_CONVERSATIONS: usize = 50;

/// What the admin's request started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requested {
    /// No such contact (and no receipt for it).
    NotFound,
    /// Erased; the receipt (also for a contact erased before).
    Erased(Receipt),
    /// Erasing continues in the background.
    Erasing,
    /// The workspace is under a legal hold (its matter): nothing is erased.
    Held(String),
}

/// The admin's request: one step now; if more remains, the loop takes over.
pub async fn request<S: ErasePorts + ?Sized>(
    store: &S,
    files: &dyn FileRemover,
    runs: &dyn ErasureRuns,
    job: &Job,
    now: OffsetDateTime,
) -> Result<Requested, Error> {
    match step(store, files, job, REQUEST_CONVERSATIONS, now).await? {
        None => Ok(Requested::NotFound),
        Some(Progress::Held(matter)) => Ok(Requested::Held(matter)),
        Some(Progress::Done(receipt)) => Ok(Requested::Erased(receipt)),
        Some(Progress::More) => {
            runs.start_erasure(job, now)
                .await
                .map_err(|e| Error::Unavailable(format!("the erasure loop did not start: {e}")))?;
            Ok(Requested::Erasing)
        }
    }
}

/// One step of erasing `job.contact`: `None` when there is no such contact and no receipt.
pub async fn step<S: ErasePorts + ?Sized>(
    store: &S,
    files: &dyn FileRemover,
    job: &Job,
    max_conversations: usize,
    now: OffsetDateTime,
) -> Result<Option<Progress>, Error> {
    let (ws, id) = (&job.workspace, job.contact);
    if let Some(receipt) = store.erasure_receipt(ws, id).await? {
        return Ok(Some(Progress::Done(receipt)));
    }
    let Some(contact) = store.contact(ws, id).await? else { return Ok(None) };
    // Under a legal hold nothing is erased; a hold placed while a large erasure runs stops it
    // where it is.
    if let Some(matter) = store.workspace_settings(ws).await?.legal_hold {
        return Ok(Some(Progress::Held(matter)));
    }
    if contact.erasing.is_none() {
        // Records that name the contact in free form go while its conversations are still known.
        let mut needles = erasure::needles(&contact);
        let mut cursor = None::<Cursor>;
        loop {
            let page = store.contact_conversations(ws, id, 100, cursor.as_ref()).await?;
            needles.extend(page.items.iter().map(|c| c.id.to_string()));
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        let scrubbed = scrub_audit_trail(store, ws, &needles).await?;
        let deliveries = erase_deliveries(store, ws, &needles).await?;
        tracing::info!(workspace = %ws, contact = %id, scrubbed, deliveries, "erasure begun");
        store.begin_erasure(&contact, now).await?;
    }
    let (mut erased, mut cursor) = (0, None::<Cursor>);
    loop {
        let left = u16::try_from(max_conversations.saturating_sub(erased)).unwrap_or(u16::MAX).clamp(1, 100);
        let page = store.contact_conversations(ws, id, left, cursor.as_ref()).await?;
        for c in &page.items {
            conversation(store, files, ws, id, c.id, true).await?;
            erased += 1;
        }
        match page.next {
            Some(_) if erased >= max_conversations => return Ok(Some(Progress::More)),
            // Pointers left dangling by an interrupted step hold no conversation: read on.
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    files.delete_prefix(&domain::objects::contact_exports(ws, id)).await?;
    forget_visitors(store, files, &contact).await?;
    let receipt = Receipt { contact: id, by: job.by.clone(), requested_at: job.requested_at, erased_at: now };
    let details = serde_json::json!({ "contact": id, "requested_at": job.requested_at
        .format(&time::format_description::well_known::Rfc3339).unwrap_or_default() });
    let audit = AuditEntry::new(ws.clone(), None, job.by.clone(), "contact_erased", details, now);
    store.finish_erasure(ws, id, &erasure::contact_months(&contact, now), &receipt, &audit).await?;
    tracing::info!(workspace = %ws, contact = %id, "contact erased");
    Ok(Some(Progress::Done(receipt)))
}

/// Erases one conversation of `contact` with its files (`forget_contact`: its cost rows stop
/// naming the contact too, as when the contact itself goes); returns how many messages it had.
pub async fn conversation<S: ErasePorts + ?Sized>(
    store: &S,
    files: &dyn FileRemover,
    ws: &domain::WorkspaceId,
    contact: domain::ContactId,
    id: domain::ConversationId,
    forget_contact: bool,
) -> Result<usize, Error> {
    let mut trace = ConversationTrace::default();
    let mut cursor = None::<Cursor>;
    loop {
        let p = store.messages(ws, id, Order::Oldest, 100, cursor.as_ref()).await?;
        p.items.iter().for_each(|m| trace.add(m));
        match p.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    // Files before the items that name them: a retry still finds them.
    for url in &trace.files {
        files.delete_file(url).await?;
    }
    store.erase_conversation(ws, contact, id, &trace, forget_contact).await?;
    Ok(trace.messages.len())
}

/// Forgets the contact's web chat visitors: their profiles (the name and address they typed),
/// sockets and uploads. Returns how many.
pub async fn forget_visitors<S: ErasePorts + ?Sized>(
    store: &S,
    files: &dyn FileRemover,
    contact: &domain::model::Contact,
) -> Result<usize, Error> {
    let ws = &contact.workspace;
    let mut forgotten = 0;
    for identity in contact.identities.iter().filter(|i| i.kind == IdentityKind::Webchat) {
        let Ok(visitor) = domain::channels::webchat::VisitorId::parse(&identity.value) else { continue };
        files.delete_prefix(&domain::objects::webchat_uploads(ws, &identity.value)).await?;
        store.forget_visitor(ws, &visitor).await?;
        forgotten += 1;
    }
    Ok(forgotten)
}

/// Workspace audit entries naming the contact keep who did what and when; their details go.
async fn scrub_audit_trail<S: ErasePorts + ?Sized>(
    store: &S,
    ws: &domain::WorkspaceId,
    needles: &[String],
) -> Result<usize, Error> {
    let (mut scrubbed, mut cursor) = (0, None::<Cursor>);
    loop {
        let page = store.audit_trail(ws, None, 100, cursor.as_ref()).await?;
        for entry in &page.items {
            let text = serde_json::to_string(&entry.details).unwrap_or_default();
            if erasure::mentions(&text, needles) {
                store.scrub_audit(entry).await?;
                scrubbed += 1;
            }
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => return Ok(scrubbed),
        }
    }
}

/// Webhook deliveries whose payload carried the contact or one of its conversations.
async fn erase_deliveries<S: ErasePorts + ?Sized>(
    store: &S,
    ws: &domain::WorkspaceId,
    needles: &[String],
) -> Result<usize, Error> {
    let mut erased = 0;
    for endpoint in store.endpoints(ws).await? {
        let mut cursor = None::<Cursor>;
        loop {
            let page = store.deliveries(ws, &endpoint.id, 100, cursor.as_ref()).await?;
            for d in page.items.iter().filter(|d| erasure::mentions(&d.body, needles)) {
                store.delete_delivery(ws, &endpoint.id, &d.msg_id).await?;
                erased += 1;
            }
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
    }
    Ok(erased)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::hooks::{Attempt, DeliveryJob, DeliveryState, Endpoint, EventType, Secret};
    use domain::ports::{ConversationReader, FileStore, InboundStore, VisitorStore};
    use domain::{AgentId, ContactId, WorkspaceId};
    use providers::memory::MemoryFiles;
    use store::MemoryStore;
    use timers::RecordingTimers;

    fn job(ws: &WorkspaceId, contact: ContactId, now: OffsetDateTime) -> Job {
        Job { workspace: ws.clone(), contact, by: AgentId::parse("ada").unwrap(), requested_at: now, done: false }
    }

    /// A second conversation of `contact`, with one message holding a file.
    async fn another_conversation(
        store: &MemoryStore,
        files: &MemoryFiles,
        contact: &domain::model::Contact,
        replaces: domain::ConversationId,
        at: OffsetDateTime,
    ) -> domain::model::Conversation {
        let mut conv = domain::model::Conversation::start(contact.workspace.clone(), contact, at);
        let first = store::contract::inbound_message(&contact.workspace, &conv, contact, at);
        conv.record_inbound(first.route.clone(), at);
        let mut msg = first;
        let url = files
            .put_file(&format!("media/{}/mms/{}.jpg", contact.workspace, msg.id), "image/jpeg", vec![1])
            .await
            .unwrap();
        msg.attachments.push(domain::model::Attachment {
            content_type: "image/jpeg".into(),
            size_bytes: Some(1),
            url,
            filename: None,
        });
        store
            .commit_inbound(domain::ports::InboundCommit {
                hint: None,
                consent: None,
                cost: None,
                new_contact: None,
                conversation: domain::ports::ConversationWrite::Create {
                    conversation: conv.clone(),
                    replaces: Some(replaces),
                },
                message: msg,
                provider: "twilio".into(),
                provider_message_id: format!("MM{}", ulid::Ulid::new()),
            })
            .await
            .unwrap();
        conv
    }

    #[tokio::test]
    async fn a_contact_goes_in_steps_and_leaves_only_a_receipt() {
        let store = MemoryStore::new();
        let files = MemoryFiles::default();
        let runs = RecordingTimers::default();
        let ws = WorkspaceId::parse("acme").unwrap();
        let now = OffsetDateTime::now_utc();
        let (contact, first) = store::contract::seed_conversation(&store, &ws, 11, now).await;
        // The first conversation resolved, so a second one can start (with a photo in it).
        let mut resolved = first.clone();
        resolved.status = domain::model::ConversationStatus::Resolved;
        store::contract::replace_conversation(&store, &first, resolved).await;
        let second = another_conversation(&store, &files, &contact, first.id, now).await;
        let (other, _) = store::contract::seed_conversation(&store, &ws, 12, now).await;
        let export = files
            .put_file(&domain::objects::contact_export(&ws, contact.id, now), "application/json", vec![2])
            .await
            .unwrap();
        let kept = files
            .put_file(&domain::objects::contact_export(&ws, other.id, now), "application/json", vec![3])
            .await
            .unwrap();
        // The contact chatted on the website too: a visitor with a profile and an upload.
        let visitor = domain::channels::webchat::VisitorId::new();
        let system = AuditEntry::system();
        domain::contacts::add_identity(&store, &ws, contact.id, visitor.identity(), &system, now).await.unwrap();
        let contact = store.contact(&ws, contact.id).await.unwrap().unwrap();
        let profile = domain::channels::webchat::VisitorProfile {
            workspace: ws.clone(),
            visitor: visitor.clone(),
            name: Some("Rui".into()),
            email: None,
            proven_email: None,
            updated_at: now,
        };
        store.put_visitor_profile(&profile).await.unwrap();
        let uploads = domain::objects::webchat_uploads(&ws, visitor.as_str());
        files.put_file(&format!("{uploads}u/a.pdf"), "application/pdf", vec![4]).await.unwrap();
        // An admin's change that named the customer's number, and one that did not.
        let phone = contact.identities[0].value.clone();
        let ada = AgentId::parse("ada").unwrap();
        for details in [serde_json::json!({ "identity": phone }), serde_json::json!({ "rules": "changed" })] {
            store
                .record_audit(&AuditEntry::new(ws.clone(), None, ada.clone(), "consent_changed", details, now))
                .await
                .unwrap();
        }
        // A webhook delivery that carried the second conversation.
        let endpoint = Endpoint {
            id: domain::hooks::endpoint_id(ulid::Ulid::new()),
            workspace: ws.clone(),
            url: "https://hooks.example.com/in".into(),
            description: None,
            events: Default::default(),
            enabled: true,
            secrets: vec![Secret::from_bytes(&[7; 32], now).unwrap()],
            created_at: now,
            updated_at: now,
            failing_since: None,
            last_success_at: None,
            disabled_reason: None,
            version: 0,
        };
        store.put_endpoint(&endpoint, None).await.unwrap();
        for (msg_id, body) in [("msg_1", format!("{{\"conversation\":\"{}\"}}", second.id)), ("msg_2", "{}".to_owned())]
        {
            let job = DeliveryJob {
                workspace: ws.clone(),
                endpoint_id: endpoint.id.clone(),
                msg_id: msg_id.into(),
                event: EventType::MessageCreated,
                body,
                manual: false,
            };
            let attempt = Attempt { at: now, status_code: Some(200), latency_ms: 3, error: None, manual: false };
            store.record_attempt(&job, &attempt, DeliveryState::Succeeded, None).await.unwrap();
        }

        // One conversation per step: the first step leaves work, so the loop is started.
        let j = job(&ws, contact.id, now);
        let small = |max| step(&store, &files, &j, max, now);
        assert_eq!(small(1).await.unwrap(), Some(Progress::More));
        assert!(store.contact_by_identity(&ws, &contact.identities[0]).await.unwrap().is_none());
        let Some(Progress::Done(receipt)) = small(1).await.unwrap() else { panic!("not done") };
        assert_eq!((receipt.contact, receipt.by.as_str()), (contact.id, "ada"));
        assert_eq!(small(1).await.unwrap(), Some(Progress::Done(receipt.clone())), "a repeat answers the receipt");

        for c in [first.id, second.id] {
            assert!(store.conversation(&ws, c).await.unwrap().is_none());
        }
        assert!(store.contact(&ws, contact.id).await.unwrap().is_none());
        assert_eq!(files.urls(), vec![kept], "the photo, the upload and the export are gone ({export})");
        assert!(store.visitor_profile(&ws, &visitor).await.unwrap().is_none(), "the visitor went too");
        let trail = store.audit_trail(&ws, None, 10, None).await.unwrap().items;
        let named: Vec<_> = trail.iter().filter(|e| e.details.to_string().contains(&phone)).collect();
        assert!(named.is_empty(), "{named:?}");
        assert_eq!(trail.iter().filter(|e| e.action == "consent_changed").count(), 2, "who did what stays");
        assert!(trail.iter().any(|e| e.action == "contact_erased"));
        let log = store.deliveries(&ws, &endpoint.id, 10, None).await.unwrap().items;
        assert_eq!(log.iter().map(|d| d.msg_id.as_str()).collect::<Vec<_>>(), ["msg_2"]);
        assert!(store.contact(&ws, other.id).await.unwrap().is_some());
        assert!(runs.erasures_started().is_empty());

        // Through the request: an unknown contact is not found; a big one continues in the loop.
        let unknown = job(&ws, ContactId::new(), now);
        assert_eq!(request(&store, &files, &runs, &unknown, now).await.unwrap(), Requested::NotFound);
        let (big, _) = store::contract::seed_conversation(&store, &ws, 13, now).await;
        let mut older = store.contact_conversations(&ws, big.id, 1, None).await.unwrap().items[0].clone();
        for _ in 0..REQUEST_CONVERSATIONS {
            let mut done = older.clone();
            done.status = domain::model::ConversationStatus::Resolved;
            store::contract::replace_conversation(&store, &older, done).await;
            older = another_conversation(&store, &files, &big, older.id, now).await;
        }
        let j = job(&ws, big.id, now);
        assert_eq!(request(&store, &files, &runs, &j, now).await.unwrap(), Requested::Erasing);
        assert_eq!(runs.erasures_started(), vec![j.clone()]);
        assert!(matches!(step(&store, &files, &j, TASK_CONVERSATIONS, now).await.unwrap(), Some(Progress::Done(_))));
        assert!(matches!(request(&store, &files, &runs, &j, now).await.unwrap(), Requested::Erased(_)));
    }
}
