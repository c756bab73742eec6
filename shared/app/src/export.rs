//! Export: everything Switchboard holds about one contact, as one archive (GDPR's right of access
//! and portability): a zip with `contact.json` — the contact with every identity and its consent
//! record, and every conversation across channels with its messages, internal notes and
//! satisfaction answers — and the files themselves under `files/` (attachments, voicemails, the
//! original of every email), each listed in `contact.json` beside the message it belongs to. Files
//! beyond [`FILES_CAP`] in total are listed but left out (`"file": null`). Written to the media
//! bucket under `exports/` (kept 7 days, see template.yaml) and handed out as a short-lived
//! presigned link.

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
pub const FORMAT: &str = "switchboard.contact-export.v2";

/// The most file bytes one archive carries (the export function has the memory for it).
pub const FILES_CAP: u64 = 100 * 1024 * 1024;

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
    /// Files in the archive, and files listed but left out over [`FILES_CAP`].
    pub files: usize,
    pub files_omitted: usize,
    pub bytes: usize,
}

/// One stored file of a message, as `contact.json` lists it.
#[derive(serde::Serialize)]
struct Listed {
    message_id: domain::MessageId,
    /// Where it is stored (`s3://…`).
    stored_at: String,
    content_type: String,
    /// Its path in the archive; `None` when left out (over the cap, or gone from the bucket).
    file: Option<String>,
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
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let (mut files_in, mut files_out, mut file_bytes) = (0usize, 0usize, 0u64);
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
            let mut listed = vec![];
            for m in &messages {
                let mut stored_files: Vec<(String, String, String)> = m
                    .attachments
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.url.starts_with("s3://"))
                    .map(|(i, a)| {
                        let name = a.filename.clone().or_else(|| domain::objects::file_name(&a.url).map(str::to_owned));
                        (
                            a.url.clone(),
                            a.content_type.clone(),
                            format!("{i}-{}", name.unwrap_or_else(|| "file".into())),
                        )
                    })
                    .collect();
                if let Some(raw) = m.metadata.get(domain::channels::email::META_RAW).and_then(|v| v.as_str()) {
                    stored_files.push((raw.to_owned(), "message/rfc822".into(), "original.eml".into()));
                }
                for (url, content_type, name) in stored_files {
                    let mut file = None;
                    if file_bytes < FILES_CAP {
                        if let Some(bytes) = files.get_file(&url).await? {
                            if file_bytes + bytes.len() as u64 <= FILES_CAP {
                                let path = format!("files/{}/{}/{}", c.id, m.id, safe_name(&name));
                                zip.start_file(path.as_str(), stored).map_err(zip_error)?;
                                std::io::Write::write_all(&mut zip, &bytes).map_err(|e| zip_error(e.into()))?;
                                file_bytes += bytes.len() as u64;
                                file = Some(path);
                            }
                        }
                    }
                    match file {
                        Some(_) => files_in += 1,
                        None => files_out += 1,
                    }
                    listed.push(Listed { message_id: m.id, stored_at: url, content_type, file });
                }
            }
            message_count += messages.len();
            conversations
                .push(serde_json::json!({ "conversation": c, "messages": messages, "notes": notes, "files": listed }));
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
    let json = serde_json::to_vec_pretty(&archive).map_err(|e| Error::Invalid(format!("the archive: {e}")))?;
    zip.start_file("contact.json", stored.compression_method(zip::CompressionMethod::Stored)).map_err(zip_error)?;
    std::io::Write::write_all(&mut zip, &json).map_err(|e| zip_error(e.into()))?;
    let bytes = zip.finish().map_err(zip_error)?.into_inner();
    let size = bytes.len();
    let key = domain::objects::contact_export(ws, id, now);
    files.put_file(&key, "application/zip", bytes).await?;
    let url = links.download_url(&key, LINK_TTL).await?;
    Ok(Some(Exported {
        url,
        expires_at: now + LINK_TTL,
        conversations: conversations.len(),
        messages: message_count,
        files: files_in,
        files_omitted: files_out,
        bytes: size,
    }))
}

fn zip_error(e: zip::result::ZipError) -> Error {
    Error::Invalid(format!("the archive: {e}"))
}

/// A file name safe as one archive path segment.
fn safe_name(name: &str) -> String {
    let n: String = name
        .chars()
        .map(|c| if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') { c } else { '_' })
        .take(120)
        .collect();
    if n.trim_matches('.').is_empty() {
        "file".into()
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{FileStore, InboundStore, NoteStore};
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
        // A photo on the message, and one whose object is gone: listed, left out.
        let msg = store.messages(&ws, conv.id, Order::Oldest, 1, None).await.unwrap().items[0].clone();
        let photo = files.put_file("media/acme/mms/p1.jpg", "image/jpeg", b"JFIF".to_vec()).await.unwrap();
        let mut with_files = msg.clone();
        for url in [photo, "s3://memory/media/acme/mms/gone.jpg".to_owned()] {
            with_files.attachments.push(domain::model::Attachment {
                content_type: "image/jpeg".into(),
                size_bytes: Some(4),
                url,
                filename: None,
            });
        }
        store.complete_message(&with_files).await.unwrap();
        let out = super::contact(&store, &files, &files, &ws, contact.id, now).await.unwrap().unwrap();
        assert_eq!((out.conversations, out.messages, out.files, out.files_omitted), (1, 1, 1, 1));
        assert!(out.url.starts_with("memory://download/exports/acme/"), "{}", out.url);
        let key = out.url.trim_start_matches("memory://download/");
        let (content_type, bytes) = files.file(&format!("s3://memory/{key}")).unwrap();
        assert_eq!(content_type, "application/zip");
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
        let mut json = String::new();
        std::io::Read::read_to_string(&mut zip.by_name("contact.json").unwrap(), &mut json).unwrap();
        let archive: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(archive["format"], FORMAT);
        assert_eq!(archive["contact"]["id"], contact.id.to_string());
        assert_eq!(archive["conversations"][0]["messages"][0]["text"], "hello");
        assert_eq!(archive["conversations"][0]["notes"][0]["text"], "VIP, be kind");
        let listed = archive["conversations"][0]["files"].as_array().unwrap();
        let path = listed[0]["file"].as_str().expect("the photo is in the archive");
        let mut photo = Vec::new();
        std::io::Read::read_to_end(&mut zip.by_name(path).unwrap(), &mut photo).unwrap();
        assert_eq!(photo, b"JFIF");
        assert!(listed[1]["file"].is_null(), "a file gone from the bucket is listed, not invented");
        assert!(store.contact_by_identity(&ws, &contact.identities[0]).await.unwrap().is_some());
        assert!(super::contact(&store, &files, &files, &ws, ContactId::new(), now).await.unwrap().is_none());
    }
}
