//! What each channel accepts, checked before anything is stored or queued, so an agent hears "too
//! long for Instagram" at once instead of a provider error minutes later.
//!
//! Limits as the providers document them (2026): WhatsApp Cloud API text 4096 characters, images
//! (JPEG, PNG) 5 MB, audio (AAC, AMR, MP3, M4A, OGG/Opus) and video (MP4, 3GPP) 16 MB, documents
//! 100 MB, stickers (WebP) 500 KB; Messenger text 2000 characters, attachments 25 MB; Instagram text
//! 1000 bytes (bytes, not characters), images (PNG, JPEG, GIF) 8 MB, audio and video 25 MB;
//! Telegram text 4096 characters (1024 as a caption), photos 10 MB, other files 50 MB (Bot API
//! uploads); email through SES v2 40 MB per message, attachments included (base64 grows a file by a
//! third, so 30 MB of files). SMS is counted in segments (see [`crate::sms`]) under a configurable
//! maximum, at most 1600 characters (Twilio's limit); with files it is an MMS: up to 10, 5 MB in
//! all (Twilio: JPEG, PNG and GIF everywhere MMS reaches; PDF, audio, video and vCards reach US
//! and Canadian numbers), its text not counted in segments.
//! Web chat is ours: 10 000 characters, files up to 25 MB by presigned upload.

use crate::model::{Attachment, Channel};
use crate::sms::{Encoding, Segmentation};

const MB: u64 = 1024 * 1024;

/// How a channel measures text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextLimit {
    Chars(usize),
    /// UTF-8 bytes (Instagram).
    Bytes(usize),
}

/// A family of files a channel accepts, up to a size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaRule {
    pub kind: &'static str,
    /// MIME types (lower case); empty: any type.
    pub types: &'static [&'static str],
    pub max_bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Constraints {
    pub text: TextLimit,
    /// The text limit when the text goes with a file (Telegram captions).
    pub caption: Option<TextLimit>,
    pub media: &'static [MediaRule],
    pub max_attachments: usize,
    /// All attachments together (email: the whole message).
    pub max_total_bytes: Option<u64>,
}

const WHATSAPP_MEDIA: &[MediaRule] = &[
    MediaRule { kind: "image", types: &["image/jpeg", "image/png"], max_bytes: 5 * MB },
    MediaRule {
        kind: "audio",
        types: &["audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"],
        max_bytes: 16 * MB,
    },
    MediaRule { kind: "video", types: &["video/mp4", "video/3gpp", "video/3gp"], max_bytes: 16 * MB },
    MediaRule {
        kind: "document",
        types: &[
            "application/pdf",
            "text/plain",
            "application/msword",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.ms-excel",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.ms-powerpoint",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ],
        max_bytes: 100 * MB,
    },
    MediaRule { kind: "sticker", types: &["image/webp"], max_bytes: 500 * 1024 },
];

const MESSENGER_MEDIA: &[MediaRule] = &[MediaRule { kind: "file", types: &[], max_bytes: 25 * MB }];

const INSTAGRAM_MEDIA: &[MediaRule] = &[
    MediaRule { kind: "image", types: &["image/png", "image/jpeg", "image/gif"], max_bytes: 8 * MB },
    MediaRule { kind: "audio", types: &["audio/aac", "audio/mp4", "audio/wav", "audio/x-wav"], max_bytes: 25 * MB },
    MediaRule {
        kind: "video",
        types: &["video/mp4", "video/ogg", "video/x-msvideo", "video/quicktime", "video/webm"],
        max_bytes: 25 * MB,
    },
    MediaRule { kind: "file", types: &["application/pdf"], max_bytes: 25 * MB },
];

const TELEGRAM_MEDIA: &[MediaRule] = &[
    MediaRule { kind: "photo", types: &["image/jpeg", "image/png", "image/webp"], max_bytes: 10 * MB },
    MediaRule { kind: "document", types: &[], max_bytes: 50 * MB },
];

const MMS_MEDIA: &[MediaRule] = &[
    MediaRule { kind: "image", types: &["image/jpeg", "image/png", "image/gif"], max_bytes: 5 * MB },
    MediaRule {
        kind: "file",
        types: &["application/pdf", "audio/mpeg", "video/mp4", "text/vcard", "text/x-vcard"],
        max_bytes: 5 * MB,
    },
];

const EMAIL_MEDIA: &[MediaRule] = &[MediaRule { kind: "attachment", types: &[], max_bytes: 30 * MB }];
const WEBCHAT_MEDIA: &[MediaRule] = &[MediaRule { kind: "file", types: &[], max_bytes: 25 * MB }];

/// Twilio's longest message body.
pub const SMS_MAX_CHARS: usize = super::twilio::MAX_BODY_CHARS;

pub fn constraints(channel: Channel) -> Constraints {
    let c = |text, media, max_attachments| Constraints {
        text,
        caption: None,
        media,
        max_attachments,
        max_total_bytes: None,
    };
    match channel {
        Channel::Sms => {
            Constraints { max_total_bytes: Some(5 * MB), ..c(TextLimit::Chars(SMS_MAX_CHARS), MMS_MEDIA, 10) }
        }
        Channel::Whatsapp => c(TextLimit::Chars(4096), WHATSAPP_MEDIA, 1),
        Channel::Messenger => c(TextLimit::Chars(2000), MESSENGER_MEDIA, 1),
        Channel::Instagram => c(TextLimit::Bytes(1000), INSTAGRAM_MEDIA, 1),
        Channel::Telegram => {
            Constraints { caption: Some(TextLimit::Chars(1024)), ..c(TextLimit::Chars(4096), TELEGRAM_MEDIA, 1) }
        }
        Channel::Email => {
            Constraints { max_total_bytes: Some(30 * MB), ..c(TextLimit::Chars(200_000), EMAIL_MEDIA, 20) }
        }
        Channel::Webchat => c(TextLimit::Chars(10_000), WEBCHAT_MEDIA, 5),
        // Voicemail is inbound only: nothing is sent on it.
        Channel::Voice => c(TextLimit::Chars(0), &[], 0),
    }
}

/// Why a message cannot go out on a channel, in words an agent can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("nothing to send: add text or a file")]
    Empty,
    #[error("{channel} cannot be replied on")]
    NotSendable { channel: Channel },
    #[error("text is {actual} {unit}; {channel} allows at most {limit}{context}")]
    TextTooLong { channel: Channel, actual: usize, limit: usize, unit: &'static str, context: &'static str },
    #[error("text needs {segments} SMS segments ({encoding}); this workspace allows at most {max}")]
    TooManySegments { segments: u32, max: u32, encoding: String },
    #[error("{channel} takes at most {max} file(s) per message; this one has {actual}")]
    TooManyAttachments { channel: Channel, actual: usize, max: usize },
    #[error("{channel} does not accept {content_type} files (it takes {accepted})")]
    AttachmentType { channel: Channel, content_type: String, accepted: String },
    #[error("{name} is {actual} bytes; {channel} takes {kind} files up to {limit} bytes")]
    AttachmentTooLarge { channel: Channel, name: String, kind: &'static str, actual: u64, limit: u64 },
    #[error("{name} has no size: files are checked before they are sent")]
    AttachmentSizeUnknown { name: String },
    #[error("the files come to {actual} bytes; {channel} allows {limit} in one message")]
    TotalTooLarge { channel: Channel, actual: u64, limit: u64 },
}

/// What the check learned about the text, kept in the message's metadata (SMS: its encoding and
/// segments).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Checked {
    pub sms: Option<Segmentation>,
}

fn measure(limit: TextLimit, text: &str) -> (usize, usize, &'static str) {
    match limit {
        TextLimit::Chars(n) => (text.chars().count(), n, "characters"),
        TextLimit::Bytes(n) => (text.len(), n, "bytes"),
    }
}

fn media_rule(c: &Constraints, content_type: &str) -> Option<&'static MediaRule> {
    let ct = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    c.media.iter().find(|r| r.types.is_empty() || r.types.contains(&ct.as_str()))
}

/// Checks an outbound message against its channel: text length (SMS: segments, under
/// `max_sms_segments`), number, types and sizes of files.
pub fn check(
    channel: Channel,
    text: &str,
    attachments: &[Attachment],
    max_sms_segments: u32,
) -> Result<Checked, Violation> {
    if channel == Channel::Voice {
        return Err(Violation::NotSendable { channel });
    }
    if text.trim().is_empty() && attachments.is_empty() {
        return Err(Violation::Empty);
    }
    let c = constraints(channel);
    let (limit, context) = match c.caption {
        Some(caption) if !attachments.is_empty() => (caption, " as a file's caption"),
        _ => (c.text, ""),
    };
    let (actual, max, unit) = measure(limit, text);
    if actual > max {
        return Err(Violation::TextTooLong { channel, actual, limit: max, unit, context });
    }
    if attachments.len() > c.max_attachments {
        return Err(Violation::TooManyAttachments { channel, actual: attachments.len(), max: c.max_attachments });
    }
    let mut total = 0u64;
    for a in attachments {
        let name = a.filename.clone().unwrap_or_else(|| a.url.clone());
        let rule = media_rule(&c, &a.content_type).ok_or_else(|| Violation::AttachmentType {
            channel,
            content_type: a.content_type.clone(),
            accepted: c.media.iter().flat_map(|r| r.types.iter().copied()).collect::<Vec<_>>().join(", "),
        })?;
        let size = a.size_bytes.ok_or_else(|| Violation::AttachmentSizeUnknown { name: name.clone() })?;
        if size > rule.max_bytes {
            return Err(Violation::AttachmentTooLarge {
                channel,
                name,
                kind: rule.kind,
                actual: size,
                limit: rule.max_bytes,
            });
        }
        total += size;
    }
    if let Some(limit) = c.max_total_bytes.filter(|l| total > *l) {
        return Err(Violation::TotalTooLarge { channel, actual: total, limit });
    }
    // An MMS's text is not split into segments (and is priced as one MMS).
    if channel != Channel::Sms || !attachments.is_empty() {
        return Ok(Checked::default());
    }
    let s = crate::sms::segment(text);
    if s.segments > max_sms_segments {
        let encoding = match (s.encoding, s.ucs2_because_of) {
            (Encoding::Ucs2, Some(c)) => format!("UCS-2, 67 characters a part, because of {c:?}"),
            (Encoding::Ucs2, None) => "UCS-2, 67 characters a part".to_owned(),
            _ => "GSM-7, 153 characters a part".to_owned(),
        };
        return Err(Violation::TooManySegments { segments: s.segments, max: max_sms_segments, encoding });
    }
    Ok(Checked { sms: Some(s) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content_type: &str, size: u64) -> Attachment {
        Attachment {
            content_type: content_type.into(),
            size_bytes: Some(size),
            url: "s3://bucket/key".into(),
            filename: Some("invoice".into()),
        }
    }

    #[test]
    fn text_limits_are_counted_the_way_each_channel_counts() {
        assert!(check(Channel::Whatsapp, &"a".repeat(4096), &[], 10).is_ok());
        assert!(matches!(
            check(Channel::Whatsapp, &"a".repeat(4097), &[], 10),
            Err(Violation::TextTooLong { limit: 4096, unit: "characters", .. })
        ));
        assert!(matches!(check(Channel::Messenger, &"é".repeat(2001), &[], 10), Err(Violation::TextTooLong { .. })));
        // Instagram counts bytes: 400 emoji are 1600 bytes.
        let e = check(Channel::Instagram, &"🙂".repeat(400), &[], 10).unwrap_err();
        assert_eq!(e.to_string(), "text is 1600 bytes; instagram allows at most 1000");
        assert!(check(Channel::Instagram, &"a".repeat(1000), &[], 10).is_ok());
        // Telegram: 4096 alone, 1024 as a caption.
        assert!(check(Channel::Telegram, &"a".repeat(2000), &[], 10).is_ok());
        let e = check(Channel::Telegram, &"a".repeat(2000), &[file("image/jpeg", 1000)], 10).unwrap_err();
        assert!(e.to_string().ends_with("at most 1024 as a file's caption"), "{e}");
        assert_eq!(check(Channel::Email, "  ", &[], 10), Err(Violation::Empty));
        assert_eq!(check(Channel::Voice, "hi", &[], 10), Err(Violation::NotSendable { channel: Channel::Voice }));
    }

    #[test]
    fn sms_is_counted_in_segments_under_the_workspace_maximum() {
        let ok = check(Channel::Sms, &"a".repeat(306), &[], 2).unwrap();
        assert_eq!(ok.sms.map(|s| s.segments), Some(2));
        let e = check(Channel::Sms, &"a".repeat(307), &[], 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "text needs 3 SMS segments (GSM-7, 153 characters a part); this workspace allows at most 2"
        );
        let e = check(Channel::Sms, &format!("{}🙂", "a".repeat(140)), &[], 2).unwrap_err();
        assert!(e.to_string().contains("UCS-2, 67 characters a part, because of"), "{e}");
        assert!(matches!(check(Channel::Sms, &"a".repeat(1601), &[], 100), Err(Violation::TextTooLong { .. })));
    }

    #[test]
    fn with_files_an_sms_is_an_mms_of_at_most_five_megabytes() {
        let mms = check(Channel::Sms, &"a".repeat(900), &[file("image/png", 10), file("application/pdf", MB)], 1);
        assert_eq!(mms.unwrap().sms, None, "an MMS's text is not counted in segments");
        let e = check(Channel::Sms, "", &[file("image/jpeg", 3 * MB), file("application/pdf", 3 * MB)], 10);
        assert!(matches!(e, Err(Violation::TotalTooLarge { limit, .. }) if limit == 5 * MB));
        let e = check(Channel::Sms, "", &[file("application/zip", 10)], 10).unwrap_err();
        assert!(e.to_string().contains("image/jpeg"), "{e}");
        let eleven: Vec<_> = (0..11).map(|_| file("image/png", 10)).collect();
        assert!(matches!(check(Channel::Sms, "", &eleven, 10), Err(Violation::TooManyAttachments { max: 10, .. })));
    }

    #[test]
    fn files_are_checked_by_type_size_count_and_total() {
        assert!(check(Channel::Whatsapp, "", &[file("image/jpeg", 5 * MB)], 10).is_ok());
        let e = check(Channel::Whatsapp, "", &[file("image/jpeg", 5 * MB + 1)], 10).unwrap_err();
        assert!(matches!(e, Violation::AttachmentTooLarge { kind: "image", limit, .. } if limit == 5 * MB));
        assert!(check(Channel::Whatsapp, "", &[file("application/pdf", 90 * MB)], 10).is_ok(), "documents: 100 MB");
        let e = check(Channel::Whatsapp, "", &[file("image/gif", 10)], 10).unwrap_err();
        assert!(matches!(e, Violation::AttachmentType { .. }));
        assert!(e.to_string().contains("image/jpeg, image/png"), "{e}");
        assert!(check(Channel::Instagram, "", &[file("image/gif", 10)], 10).is_ok());
        assert!(
            check(Channel::Whatsapp, "", &[file("image/PNG; charset=binary", 10)], 10).is_ok(),
            "parameters ignored"
        );
        let two = [file("image/png", 10), file("image/png", 10)];
        assert!(matches!(check(Channel::Whatsapp, "", &two, 10), Err(Violation::TooManyAttachments { max: 1, .. })));
        let big = [file("application/zip", 20 * MB), file("application/zip", 20 * MB)];
        assert!(matches!(check(Channel::Email, "hi", &big, 10), Err(Violation::TotalTooLarge { .. })));
        let unknown = Attachment { size_bytes: None, ..file("image/png", 0) };
        assert!(matches!(check(Channel::Webchat, "", &[unknown], 10), Err(Violation::AttachmentSizeUnknown { .. })));
    }
}
