//! Retention: each workspace's resolved conversations older than its retention period are erased
//! with everything in them (messages, notes, attachments, raw mail), by the daily run
//! (`functions/retention-run`). The contact stays; the cost rows stay, naming no conversation. A
//! legal hold (`Settings::legal_hold`) suspends it. Oldest first, each conversation re-read
//! before it goes (the index may lag a reopen), each erasure idempotent: a run that stops at its
//! deadline leaves the rest for the next.

use domain::model::ConversationStatus;
use domain::ports::FileRemover;
use domain::WorkspaceId;
use time::OffsetDateTime;

use crate::erase::{self, ErasePorts};
use crate::Error;

/// Conversations asked for at a time.
const BATCH: u16 = 25;

/// What one workspace's sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Swept {
    pub conversations: usize,
    pub messages: usize,
    /// Web chat visitors forgotten with their contact's last conversation.
    pub visitors: usize,
    /// Every due conversation went (false: the deadline came first).
    pub complete: bool,
    /// Under a legal hold: nothing was erased.
    pub held: bool,
}

/// Sweeps workspace `ws` until nothing is due or `out_of_time()` says stop.
pub async fn sweep<S: ErasePorts + ?Sized>(
    store: &S,
    files: &dyn FileRemover,
    ws: &WorkspaceId,
    now: OffsetDateTime,
    out_of_time: &(dyn Fn() -> bool + Send + Sync),
) -> Result<Swept, Error> {
    let settings = store.workspace_settings(ws).await?;
    let mut out = Swept { held: settings.legal_hold.is_some(), ..Swept::default() };
    let Some(cutoff) = settings.retention_cutoff(now) else {
        out.complete = true;
        return Ok(out);
    };
    loop {
        if out_of_time() {
            return Ok(out);
        }
        let due = store.expired_conversations(ws, cutoff, BATCH).await?;
        let mut erased_any = false;
        for listed in &due {
            // The index lags: a conversation a customer just reopened stays.
            let Some(c) = store.conversation(ws, listed.id).await? else { continue };
            if c.status != ConversationStatus::Resolved || c.last_activity_at >= cutoff {
                continue;
            }
            out.messages += erase::conversation(store, files, ws, c.contact_id, c.id, false).await?;
            out.conversations += 1;
            erased_any = true;
            out.visitors += forget_idle_visitors(store, files, ws, c.contact_id).await?;
        }
        if due.len() < usize::from(BATCH) || !erased_any {
            out.complete = true;
            return Ok(out);
        }
    }
}

/// A contact left with no conversation keeps no web chat visitor: their profile (the name and
/// address they typed), sockets and uploads go with the history they belonged to.
async fn forget_idle_visitors<S: ErasePorts + ?Sized>(
    store: &S,
    files: &dyn FileRemover,
    ws: &WorkspaceId,
    contact: domain::ContactId,
) -> Result<usize, Error> {
    if !store.contact_conversations(ws, contact, 1, None).await?.items.is_empty() {
        return Ok(0);
    }
    let Some(c) = store.contact(ws, contact).await? else { return Ok(0) };
    erase::forget_visitors(store, files, &c).await
}

/// Every workspace with a retention period, one after the other, until `out_of_time()`.
pub async fn run<S: ErasePorts + ?Sized>(
    store: &S,
    files: &dyn FileRemover,
    now: OffsetDateTime,
    out_of_time: &(dyn Fn() -> bool + Send + Sync),
) -> Result<Vec<(WorkspaceId, Swept)>, Error> {
    let mut out = vec![];
    for ws in store.retention_workspaces().await? {
        let swept = sweep(store, files, &ws, now, out_of_time).await?;
        tracing::info!(workspace = %ws, conversations = swept.conversations, messages = swept.messages,
            complete = swept.complete, held = swept.held, "retention swept");
        out.push((ws, swept));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{
        ContactHistory, ConversationReader, CostLedger, FileStore, InboundStore, Order, WorkspaceStore,
    };
    use providers::memory::MemoryFiles;
    use store::MemoryStore;

    #[tokio::test]
    async fn old_resolved_conversations_go_the_contact_and_newer_ones_stay_a_hold_keeps_all() {
        let store = MemoryStore::new();
        let files = MemoryFiles::default();
        let ws = WorkspaceId::parse("acme").unwrap();
        let now = OffsetDateTime::now_utc();
        let long_ago = now - time::Duration::days(40);
        // An old resolved conversation with a file and a cost, an old one still open, a recent
        // resolved one.
        let (contact, old) = store::contract::seed_conversation(&store, &ws, 1, long_ago).await;
        let msg = store.messages(&ws, old.id, Order::Oldest, 1, None).await.unwrap().items[0].clone();
        let photo = files.put_file("media/acme/mms/p.jpg", "image/jpeg", vec![1]).await.unwrap();
        let mut with_file = msg.clone();
        with_file.attachments.push(domain::model::Attachment {
            content_type: "image/jpeg".into(),
            size_bytes: Some(1),
            url: photo,
            filename: None,
        });
        store.complete_message(&with_file).await.unwrap();
        let cost = domain::finance::Totals { messages: 1, provider_micros: 5_000, ..Default::default() };
        store
            .record_cost(&store::contract::cost_entry(&msg, contact.id, domain::finance::EntryKind::Estimate, cost))
            .await
            .unwrap();
        let mut resolved = old.clone();
        resolved.status = ConversationStatus::Resolved;
        store::contract::replace_conversation(&store, &old, resolved).await;
        let (_, open) = store::contract::seed_conversation(&store, &ws, 2, long_ago).await;
        let (_, recent) = store::contract::seed_conversation(&store, &ws, 3, now - time::Duration::days(5)).await;
        let mut r = recent.clone();
        r.status = ConversationStatus::Resolved;
        store::contract::replace_conversation(&store, &recent, r).await;

        let never = || false;
        // No retention: nothing listed, nothing goes.
        assert!(run(&store, &files, now, &never).await.unwrap().is_empty());
        let keep = domain::workspace::Settings { retention_days: Some(30), ..Default::default() };
        store.put_workspace_settings(&ws, &keep).await.unwrap();

        // A legal hold: nothing goes.
        let held = domain::workspace::Settings { legal_hold: Some("Smith v. Acme".into()), ..keep.clone() };
        store.put_workspace_settings(&ws, &held).await.unwrap();
        let swept = sweep(&store, &files, &ws, now, &never).await.unwrap();
        assert!(swept.held && swept.conversations == 0);
        assert!(store.conversation(&ws, old.id).await.unwrap().is_some());

        store.put_workspace_settings(&ws, &keep).await.unwrap();
        let out = run(&store, &files, now, &never).await.unwrap();
        assert_eq!(
            out,
            vec![(ws.clone(), Swept { conversations: 1, messages: 1, visitors: 0, complete: true, held: false })]
        );
        assert!(store.conversation(&ws, old.id).await.unwrap().is_none());
        assert!(files.urls().is_empty(), "the photo went with it");
        assert!(store.conversation(&ws, open.id).await.unwrap().is_some(), "open work stays");
        assert!(store.conversation(&ws, recent.id).await.unwrap().is_some(), "within the period");
        assert!(store.contact(&ws, contact.id).await.unwrap().is_some(), "the contact stays");
        assert!(store.contact_conversations(&ws, contact.id, 10, None).await.unwrap().items.is_empty());
        // The cost row stays with its contact, naming no conversation.
        let rows = store.entries(&ws, long_ago.date(), 10, None).await.unwrap().items;
        let row = rows.iter().find(|e| e.message_id == msg.id).unwrap();
        assert_eq!((row.contact_id, row.conversation_id), (contact.id, domain::ConversationId::ERASED));
        // A second run finds nothing; a run out of time stops before starting.
        assert_eq!(sweep(&store, &files, &ws, now, &never).await.unwrap().conversations, 0);
        assert!(!sweep(&store, &files, &ws, now, &|| true).await.unwrap().complete);
    }

    #[tokio::test]
    async fn a_visitor_goes_with_their_contacts_last_conversation() {
        use domain::channels::webchat::{VisitorId, VisitorProfile};
        use domain::ports::VisitorStore;
        let store = MemoryStore::new();
        let files = MemoryFiles::default();
        let ws = WorkspaceId::parse("acme").unwrap();
        let now = OffsetDateTime::now_utc();
        let (contact, old) = store::contract::seed_conversation(&store, &ws, 4, now - time::Duration::days(60)).await;
        let v = VisitorId::new();
        let system = domain::audit::AuditEntry::system();
        domain::contacts::add_identity(&store, &ws, contact.id, v.identity(), &system, now).await.unwrap();
        let profile = VisitorProfile {
            workspace: ws.clone(),
            visitor: v.clone(),
            name: Some("Rui".into()),
            email: Some(domain::EmailAddress::parse("rui@example.com").unwrap()),
            proven_email: None,
            updated_at: now,
        };
        store.put_visitor_profile(&profile).await.unwrap();
        let upload = files
            .put_file(
                &format!("{}f/a.pdf", domain::objects::webchat_uploads(&ws, v.as_str())),
                "application/pdf",
                vec![1],
            )
            .await
            .unwrap();
        let mut done = old.clone();
        done.status = ConversationStatus::Resolved;
        store::contract::replace_conversation(&store, &old, done).await;
        store
            .put_workspace_settings(
                &ws,
                &domain::workspace::Settings { retention_days: Some(30), ..Default::default() },
            )
            .await
            .unwrap();
        let swept = sweep(&store, &files, &ws, now, &|| false).await.unwrap();
        assert_eq!((swept.conversations, swept.visitors), (1, 1));
        assert!(store.visitor_profile(&ws, &v).await.unwrap().is_none(), "the typed name and address went");
        assert!(files.file(&upload).is_none(), "and the uploads");
        assert!(store.contact(&ws, contact.id).await.unwrap().is_some());
    }
}
