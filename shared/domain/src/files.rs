//! Files agents send: the upload they ask for (a presigned PUT straight to the media bucket, no
//! file through Lambda), checked for type and size before a link is signed. Whether a channel
//! takes the file is checked when the reply is sent (`channels::constraints`), with a 422 that
//! names the channel's limit.

use serde::Deserialize;

use crate::error::ParseError;

/// The largest file an agent may upload (WhatsApp documents, the largest any channel takes).
pub const MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;
/// How long an upload link works.
pub const UPLOAD_URL_TTL: time::Duration = time::Duration::minutes(15);
/// How long the link a provider fetches an agent's file from works (Twilio, Meta and Telegram
/// fetch it when the message is sent; a retry within the hour still finds it).
pub const PROVIDER_LINK_TTL: time::Duration = time::Duration::hours(1);
/// Files on one reply at most (Twilio's MMS limit; other channels take fewer).
pub const MAX_FILES_PER_REPLY: usize = 10;

/// Content types an agent may upload: what a visitor may, plus the few more the providers take
/// (vCards for MMS, WhatsApp's audio and stickers). Nothing a browser would run.
pub const AGENT_EXTRA_TYPES: &[&str] =
    &["text/vcard", "text/x-vcard", "audio/aac", "audio/amr", "video/3gpp", "image/webp"];

/// `POST /uploads`: the file an agent is about to upload.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// As the agent's computer names it (made safe for the key: letters, digits, `.`, `_`, `-`).
    pub file_name: String,
    pub content_type: String,
    /// Bytes: exactly what the PUT will carry (the link is signed for it).
    pub size: u64,
}

impl UploadRequest {
    pub fn validate(&self) -> Result<(), ParseError> {
        let types = |ct: &str| crate::channels::webchat::UPLOAD_TYPES.contains(&ct) || AGENT_EXTRA_TYPES.contains(&ct);
        check_upload(&self.file_name, &self.content_type.to_ascii_lowercase(), self.size, types, MAX_UPLOAD_BYTES)
    }
}

/// The checks every browser upload passes before a link is signed (an agent's, a visitor's): an
/// accepted type, 1 byte to `max_bytes`, a name of 1-200 characters.
pub fn check_upload(
    file_name: &str,
    content_type: &str,
    size: u64,
    accepted: impl Fn(&str) -> bool,
    max_bytes: u64,
) -> Result<(), ParseError> {
    let invalid = |kind, reason: String| ParseError::Invalid { kind, reason };
    if !accepted(content_type) {
        return Err(invalid(
            "content_type",
            format!("{content_type} is not accepted; send pictures, audio, video, PDF, text or office files"),
        ));
    }
    if size == 0 || size > max_bytes {
        return Err(invalid("size", format!("expected 1 to {max_bytes} bytes")));
    }
    if file_name.trim().is_empty() || file_name.chars().count() > 200 {
        return Err(invalid("file_name", "expected 1-200 characters".into()));
    }
    Ok(())
}

/// A file named on a reply: the `key` `POST /uploads` answered.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    pub key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ct: &str, size: u64) -> UploadRequest {
        UploadRequest { file_name: "refund.pdf".into(), content_type: ct.into(), size }
    }

    #[test]
    fn agents_upload_documents_and_media_but_nothing_a_browser_runs() {
        assert!(req("application/pdf", MAX_UPLOAD_BYTES).validate().is_ok());
        assert!(req("text/vcard", 300).validate().is_ok());
        assert!(req("application/pdf", MAX_UPLOAD_BYTES + 1).validate().is_err());
        assert!(req("application/pdf", 0).validate().is_err());
        for ct in ["text/html", "image/svg+xml", "application/javascript"] {
            assert!(req(ct, 10).validate().is_err(), "{ct}");
        }
        let nameless = UploadRequest { file_name: " ".into(), ..req("image/png", 10) };
        assert!(nameless.validate().is_err());
    }
}
