//! The one place S3 object keys are named (media, voicemail, email parts, web chat uploads), as
//! `keys.rs` is for the table. Every key starts with the workspace after its kind, so a bucket
//! policy, a lifecycle rule or an erasure can address one workspace's objects by prefix.

use crate::ids::WorkspaceId;

/// Where a copied media file came from: the provider that only lent it to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaSource {
    WhatsApp,
    Meta,
    Telegram,
    /// Twilio MMS media (`MediaUrl<n>` of an inbound SMS).
    Mms,
    /// Twilio Voice recordings (voicemail).
    Voice,
}

impl MediaSource {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaSource::WhatsApp => "whatsapp",
            MediaSource::Meta => "meta",
            MediaSource::Telegram => "telegram",
            MediaSource::Mms => "mms",
            MediaSource::Voice => "voice",
        }
    }
}

/// A provider's media file copied into the media bucket. `name` is the provider's own stable id
/// for it (or a digest of its link), so a redelivered webhook writes the same object.
pub fn media(ws: &WorkspaceId, source: MediaSource, name: &str) -> String {
    format!("media/{ws}/{}/{}", source.as_str(), safe(name))
}

/// A voicemail's audio (Twilio's recording, as MP3).
pub fn voicemail(ws: &WorkspaceId, recording_sid: &str) -> String {
    media(ws, MediaSource::Voice, &format!("{recording_sid}.mp3"))
}

/// The `index`th attachment of an inbound email (SES's message id), under its own file name.
pub fn email_attachment(ws: &WorkspaceId, ses_message_id: &str, index: usize, file_name: Option<&str>) -> String {
    let name = match file_name.map(safe).filter(|n| !n.is_empty()) {
        Some(n) => format!("{index}-{n}"),
        None => format!("{index}-file"),
    };
    format!("attachments/{ws}/email/{}/{name}", safe(ses_message_id))
}

/// Where an agent's upload goes: `attachments/<ws>/agent/<agent>/<ULID>/<file name>` (under the
/// workspace's attachments, so links and erasure treat it as any file of the workspace).
pub fn agent_upload(ws: &WorkspaceId, agent: &crate::ids::AgentId, file_name: &str) -> String {
    format!(
        "{}{}/{}/{}",
        agent_uploads(ws),
        safe(agent.as_str()),
        ulid::Ulid::new(),
        crate::channels::webchat::safe_file_name(file_name)
    )
}

fn agent_uploads(ws: &WorkspaceId) -> String {
    format!("attachments/{ws}/agent/")
}

/// Whether `key` is an agent upload of `ws` (any agent's: a colleague may send a file another
/// uploaded), of the shape [`agent_upload`] makes.
pub fn is_agent_upload(ws: &WorkspaceId, key: &str) -> bool {
    let Some(rest) = key.strip_prefix(&agent_uploads(ws)) else { return false };
    let parts: Vec<&str> = rest.split('/').collect();
    matches!(parts.as_slice(), [agent, id, name]
        if !agent.is_empty() && ulid::Ulid::from_string(id).is_ok()
            && !name.is_empty() && crate::channels::webchat::safe_file_name(name) == *name)
}

/// The file name at the end of a key.
pub fn file_name(key: &str) -> Option<&str> {
    key.rsplit('/').next().filter(|n| !n.is_empty())
}

/// The raw mail SES stored for a message: the receipt rule's prefix and SES's message id.
pub fn raw_email(prefix: &str, ses_message_id: &str) -> String {
    format!("{prefix}{}", safe(ses_message_id))
}

/// The prefix every web chat upload of a visitor lives under.
pub fn webchat_uploads(ws: &WorkspaceId, visitor: &str) -> String {
    format!("webchat/{ws}/{}/", safe(visitor))
}

/// A contact's export archive (GDPR access), one per request, kept a few days by the bucket's
/// lifecycle rule on `exports/`.
pub fn contact_export(ws: &WorkspaceId, contact: crate::ids::ContactId, at: time::OffsetDateTime) -> String {
    format!("{}{}.zip", contact_exports(ws, contact), at.unix_timestamp_nanos() / 1_000_000)
}

/// The prefix every export of a contact lives under (erasure removes them).
pub fn contact_exports(ws: &WorkspaceId, contact: crate::ids::ContactId) -> String {
    format!("exports/{ws}/{contact}/")
}

/// `s3://bucket/key`: how a stored object is named on a message.
pub fn s3_url(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

/// Whether an object key is one of `ws`'s files (media, email attachments, web chat uploads):
/// every such key has the workspace right after its kind. A link is only ever signed for these.
pub fn is_workspace_file(ws: &WorkspaceId, key: &str) -> bool {
    ["media", "attachments", "webchat"].iter().any(|kind| key.starts_with(&format!("{kind}/{ws}/")))
        && !key.split('/').any(|part| part == ".." || part.is_empty())
}

/// Splits `s3://bucket/key`.
pub fn parse_s3_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

/// A key segment: letters, digits, `.`, `_`, `-`, `=`; anything else (a `/`, a space, unicode)
/// becomes `_`, so no segment escapes its prefix; at most 200 bytes.
fn safe(segment: &str) -> String {
    segment
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '=') { c } else { '_' })
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> WorkspaceId {
        WorkspaceId::parse("acme").unwrap()
    }

    #[test]
    fn keys_are_per_workspace_and_never_escape_their_prefix() {
        assert_eq!(media(&ws(), MediaSource::WhatsApp, "1234567890"), "media/acme/whatsapp/1234567890");
        assert_eq!(voicemail(&ws(), "RE123"), "media/acme/voice/RE123.mp3");
        assert_eq!(media(&ws(), MediaSource::Meta, "../../x"), "media/acme/meta/.._.._x");
        assert_eq!(
            email_attachment(&ws(), "abc", 0, Some("my report (1).pdf")),
            "attachments/acme/email/abc/0-my_report__1_.pdf"
        );
        assert_eq!(
            email_attachment(&ws(), "abc", 1, Some("../../etc/passwd")),
            "attachments/acme/email/abc/1-.._.._etc_passwd"
        );
        assert_eq!(email_attachment(&ws(), "abc", 2, None), "attachments/acme/email/abc/2-file");
        assert_eq!(webchat_uploads(&ws(), "v_01J"), "webchat/acme/v_01J/");
        assert_eq!(raw_email("mail/inbound/", "m1"), "mail/inbound/m1");
    }

    #[test]
    fn only_a_workspaces_own_files_are_its_files() {
        let ws = WorkspaceId::parse("acme").unwrap();
        assert!(is_workspace_file(&ws, &media(&ws, MediaSource::Mms, "ME1")));
        assert!(is_workspace_file(&ws, &email_attachment(&ws, "m1", 0, Some("invoice.pdf"))));
        assert!(is_workspace_file(&ws, &format!("{}x.png", webchat_uploads(&ws, "v1"))));
        let other = WorkspaceId::parse("acme2").unwrap();
        assert!(!is_workspace_file(&ws, &media(&other, MediaSource::Mms, "ME1")), "acme is not acme2");
        assert!(!is_workspace_file(&ws, "exports/acme/c.json"), "exports are not message files");
        assert!(!is_workspace_file(&ws, "media/acme/../acme2/x"));
    }

    #[test]
    fn s3_urls_split_into_bucket_and_key() {
        assert_eq!(parse_s3_url(&s3_url("b", "k/x.pdf")), Some(("b", "k/x.pdf")));
        assert_eq!(parse_s3_url("https://b/k"), None);
        assert_eq!(parse_s3_url("s3://b/"), None);
    }
}
