//! Export: everything Switchboard holds about one contact, as one machine-readable archive (GDPR's
//! right of access and portability): the contact with every identity and its consent record, and
//! every conversation across channels with its messages (attachments by their stored location) and
//! internal notes. Written to the media bucket under `exports/` (kept 7 days, see template.yaml)
//! and handed out as a short-lived presigned link.

use domain::ids::ContactId;
use domain::model::Contact;
use domain::ports::{ConsentStore, ContactHistory, ConversationReader, Cursor, FileStore, NoteStore, Order, Uploads};
use domain::WorkspaceId;
use time::OffsetDateTime;

use crate::Error;

/// What exporting reads.
pub trait ExportPorts: ConversationReader + ContactHistory + ConsentStore + NoteStore {}
impl<T: ConversationReader + ContactHistory + ConsentStore + NoteStore + ?Sized> ExportPorts for T {}

/// The archive's format name, for whoever reads it.
pub const FORMAT: &str = "switchboard.contact-export.v1";

/// How long the link works.
pub const LINK_TTL: time::Duration = time::Duration::minutes(15);

/// One export written.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Exported {
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub conversations: usize,
    pub messages: usize,
    pub bytes: usize,
}

/// Exports contact `id` of `ws`; `None` when there is no such contact.
pub async fn contact<S: ExportPorts + ?Sized>(
    store: &S,
    files: &dyn FileStore,
    links: &dyn Uploads,
    ws: &WorkspaceId,
    id: ContactId,
    now: OffsetDateTime,
) -> Result<Option<Exported>, Error> {
    let Some(contact): Option<Contact> = store.contact(ws, id).await? else { return Ok(None) };
    let mut consent = vec![];
    for identity in &contact.identities {
        if let Some(record) = store.consent(ws, &identity.clone().proven()).await? {
            consent.push(record);
        }
    }
    let mut conversations = vec![];
    let (mut conv_cursor, mut message_count) = (None::<Cursor>, 0);
    loop {
        let page = store.contact_conversations(ws, id, 100, conv_cursor.as_ref()).await?;
        for c in page.items {
            let mut messages = vec![];
            let mut cursor = None::<Cursor>;
            loop {
                let p = store.messages(ws, c.id, Order::Oldest, 100, cursor.as_ref()).await?;
                messages.extend(p.items);
                match p.next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
            let mut notes = vec![];
            let mut cursor = None::<Cursor>;
            loop {
                let p = store.notes(ws, c.id, 100, cursor.as_ref()).await?;
                notes.extend(p.items);
                match p.next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
            message_count += messages.len();
            conversations.push(serde_json::json!({ "conversation": c, "messages": messages, "notes": notes }));
        }
        match page.next {
            Some(n) => conv_cursor = Some(n),
            None => break,
        }
    }
    let archive = serde_json::json!({
        "format": FORMAT,
        "exported_at": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "contact": contact,
        "consent": consent,
        "conversations": conversations,
    });
    let bytes = serde_json::to_vec_pretty(&archive).map_err(|e| Error::Invalid(format!("the archive: {e}")))?;
    let size = bytes.len();
    let key = domain::objects::contact_export(ws, id, now);
    files.put_file(&key, "application/json", bytes).await?;
    let url = links.download_url(&key, LINK_TTL).await?;
    Ok(Some(Exported {
        url,
        expires_at: now + LINK_TTL,
        conversations: conversations.len(),
        messages: message_count,
        bytes: size,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{InboundStore, NoteStore};
    use providers::memory::MemoryFiles;
    use store::MemoryStore;

    #[tokio::test]
    async fn every_message_and_note_of_the_contact_is_in_the_archive_behind_a_link() {
        let store = MemoryStore::new();
        let files = MemoryFiles::default();
        let ws = WorkspaceId::parse("acme").unwrap();
        let now = OffsetDateTime::now_utc();
        let (contact, conv) = store::contract::seed_conversation(&store, &ws, 5, now).await;
        let ann = domain::AgentId::parse("ann").unwrap();
        let note = domain::inbox::Note::new(ws.clone(), conv.id, ann.clone(), "VIP, be kind", now).unwrap();
        let audit =
            domain::audit::AuditEntry::new(ws.clone(), Some(conv.id), ann, "note_added", serde_json::json!({}), now);
        let key = domain::IdempotencyKey::parse("note-1").unwrap();
        store.add_note(&note, &audit, &key).await.unwrap();
        let out = super::contact(&store, &files, &files, &ws, contact.id, now).await.unwrap().unwrap();
        assert_eq!((out.conversations, out.messages), (1, 1));
        assert!(out.url.starts_with("memory://download/exports/acme/"), "{}", out.url);
        let key = out.url.trim_start_matches("memory://download/");
        let (content_type, bytes) = files.file(&format!("s3://memory/{key}")).unwrap();
        assert_eq!(content_type, "application/json");
        let archive: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(archive["format"], FORMAT);
        assert_eq!(archive["contact"]["id"], contact.id.to_string());
        assert_eq!(archive["conversations"][0]["messages"][0]["text"], "hello");
        assert_eq!(archive["conversations"][0]["notes"][0]["text"], "VIP, be kind");
        assert!(store.contact_by_identity(&ws, &contact.identities[0]).await.unwrap().is_some());
        assert!(super::contact(&store, &files, &files, &ws, ContactId::new(), now).await.unwrap().is_none());
    }
}
