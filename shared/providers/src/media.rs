//! The media copier: a file a provider only lends us (an expiring CDN link, a media id, a Bot API
//! file, a Twilio media or recording URL) streamed into the media bucket before the message is
//! enqueued, so agents can open it later and nothing depends on the provider keeping it.
//!
//! One copier, one HTTP client, one policy for every provider:
//! - the body is streamed with a size cap (a `Content-Length` over the cap is refused before any
//!   byte is read; a body that grows past it is cut and nothing is left behind);
//! - 4xx: the provider no longer has it (an expired link on a late retry) — the attachment keeps
//!   the provider's reference, and the message still goes through;
//! - 5xx, timeouts, a network error: [`StoreError::Unavailable`], so the webhook answers 503 and
//!   the provider retries the delivery (objects are named by the provider's id, so the retry
//!   overwrites the same object);
//! - a URL never appears in an error or a log (Meta's are signed, Telegram's hold the bot token).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use domain::model::Attachment;
use domain::objects::{self, MediaSource};
use domain::ports::{MediaResolver, StoreError};
use domain::WorkspaceId;
use serde::Deserialize;
use sha2::Digest;

use crate::sink::{Chunks, ObjectSink, Put};

/// How a download authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Bearer(String),
    Basic { user: String, password: String },
}

/// What copying one file came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Copied {
    Stored {
        url: String,
        content_type: String,
        size: u64,
    },
    /// The provider answered 4xx: it no longer has the file (or never gave it to us).
    Gone {
        status: u16,
    },
    /// Larger than the cap (by its `Content-Length`, or as it streamed).
    TooLarge {
        size: u64,
    },
}

pub struct MediaCopier {
    pub http: reqwest::Client,
    pub sink: Arc<dyn ObjectSink>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{what}: {e}").into())
}

struct Body(reqwest::Response);

#[async_trait]
impl Chunks for Body {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        self.0.chunk().await.map_err(|e| unavailable("media download", e.without_url()))
    }
}

/// A `Content-Type` without its parameters; none, or the meaningless `application/octet-stream`,
/// leaves the provider's own claim.
fn content_type(res: &reqwest::Response, fallback: &str) -> String {
    res.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty() && v != "application/octet-stream")
        .unwrap_or_else(|| fallback.to_owned())
}

impl MediaCopier {
    pub fn new(http: reqwest::Client, sink: Arc<dyn ObjectSink>) -> Self {
        Self { http, sink }
    }

    /// A copier with the standard client ([`crate::http::client`]) into `sink`.
    pub fn standard(sink: Arc<dyn ObjectSink>) -> Result<Arc<Self>, reqwest::Error> {
        Ok(Arc::new(Self::new(crate::http::client(crate::http::API_TIMEOUT)?, sink)))
    }

    /// A GET with the given authentication, classified: `Ok(Err(status))` for a 4xx.
    pub async fn get(&self, url: &str, auth: &Auth, what: &str) -> Result<Result<reqwest::Response, u16>, StoreError> {
        let req = self.http.get(url).timeout(crate::http::DOWNLOAD_TIMEOUT);
        let req = match auth {
            Auth::None => req,
            Auth::Bearer(token) => req.bearer_auth(token),
            Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
        };
        let res = req.send().await.map_err(|e| unavailable(what, e.without_url()))?;
        match res.status().as_u16() {
            200..=299 => Ok(Ok(res)),
            s @ 400..=499 => Ok(Err(s)),
            other => Err(unavailable(what, format!("answered HTTP {other}"))),
        }
    }

    /// [`MediaCopier::copy`], unless the provider already said the file is larger than `cap`
    /// (its lookup's `file_size`): then nothing is downloaded.
    pub async fn copy_announced(
        &self,
        announced: Option<u64>,
        url: &str,
        auth: &Auth,
        key: &str,
        fallback_type: &str,
        cap: u64,
    ) -> Result<Copied, StoreError> {
        match announced.filter(|size| *size > cap) {
            Some(size) => Ok(Copied::TooLarge { size }),
            None => self.copy(url, auth, key, fallback_type, cap).await,
        }
    }

    /// Copies the file at `url` to `key`, at most `cap` bytes.
    pub async fn copy(
        &self,
        url: &str,
        auth: &Auth,
        key: &str,
        fallback_type: &str,
        cap: u64,
    ) -> Result<Copied, StoreError> {
        let res = match self.get(url, auth, "media download").await? {
            Ok(res) => res,
            Err(status) => return Ok(Copied::Gone { status }),
        };
        if let Some(size) = res.content_length().filter(|s| *s > cap) {
            return Ok(Copied::TooLarge { size });
        }
        let content_type = content_type(&res, fallback_type);
        match self.sink.put_stream(key, &content_type, &mut Body(res), cap).await? {
            Put::Stored { url, size } => Ok(Copied::Stored { url, content_type, size }),
            Put::TooLarge { seen } => Ok(Copied::TooLarge { size: seen }),
        }
    }
}

/// Applies a copy to the attachment it came from: the stored object replaces the provider's
/// reference; a file that is gone or too large keeps the reference (and its size, when known),
/// and the message goes through all the same.
fn apply(ws: &WorkspaceId, source: MediaSource, a: &mut Attachment, copied: Copied) {
    match copied {
        Copied::Stored { url, content_type, size } => {
            a.url = url;
            a.content_type = content_type;
            a.size_bytes = Some(size);
        }
        Copied::Gone { status } => {
            tracing::warn!(workspace = %ws, source = source.as_str(), status, "media no longer available; reference kept");
        }
        Copied::TooLarge { size } => {
            tracing::warn!(workspace = %ws, source = source.as_str(), size, "media over the size cap; reference kept");
            a.size_bytes = Some(size);
        }
    }
}

// ------------------------------------------------------------------------------------- WhatsApp

/// WhatsApp media: `GET /{media-id}` answers a short-lived URL, whose bytes are fetched with the
/// same access token (Meta's "Download media" steps): the token of the number the media came to
/// (its workspace's own business account, else the stack's).
pub struct WhatsAppMedia {
    pub copier: Arc<MediaCopier>,
    pub api_base: String,
    pub tokens: Arc<crate::accounts::WhatsAppNumbers>,
}

/// WhatsApp's own largest file (documents).
pub const WHATSAPP_MAX_BYTES: u64 = 100 * 1024 * 1024;

#[derive(Deserialize)]
struct WhatsAppMediaInfo {
    url: String,
    mime_type: Option<String>,
    file_size: Option<u64>,
}

#[async_trait]
impl MediaResolver for WhatsAppMedia {
    async fn resolve(&self, ws: &WorkspaceId, account: &str, attachments: &mut [Attachment]) -> Result<(), StoreError> {
        let token = self.tokens.get(account).await.map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        let Some(token) = token else {
            // Nobody holds a token for this number: the media stay named by id.
            tracing::warn!(workspace = %ws, "no WhatsApp access token for this number; media references kept");
            return Ok(());
        };
        let auth = Auth::Bearer((*token).clone());
        for a in attachments.iter_mut() {
            let Some(id) = a.url.strip_prefix(domain::channels::whatsapp::MEDIA_SCHEME).map(str::to_owned) else {
                continue;
            };
            let lookup = format!("{}/{id}", self.api_base.trim_end_matches('/'));
            let res = match self.copier.get(&lookup, &auth, "WhatsApp media lookup").await? {
                Ok(res) => res,
                Err(status) => {
                    apply(ws, MediaSource::WhatsApp, a, Copied::Gone { status });
                    continue;
                }
            };
            let info: WhatsAppMediaInfo = res.json().await.map_err(|e| unavailable("WhatsApp media lookup", e))?;
            let fallback = info.mime_type.unwrap_or_else(|| a.content_type.clone());
            let key = objects::media(ws, MediaSource::WhatsApp, &id);
            let copied = self
                .copier
                .copy_announced(info.file_size, &info.url, &auth, &key, &fallback, WHATSAPP_MAX_BYTES)
                .await?;
            apply(ws, MediaSource::WhatsApp, a, copied);
        }
        Ok(())
    }
}

// ----------------------------------------------------------------------- Messenger and Instagram

/// Messenger and Instagram attachments: signed CDN links (no token needed) that expire within
/// days; the copy is named by a digest of the link, so a redelivered webhook writes the same
/// object.
pub struct MetaMedia {
    pub copier: Arc<MediaCopier>,
}

/// Messenger's own largest attachment.
pub const META_MAX_BYTES: u64 = 25 * 1024 * 1024;

#[async_trait]
impl MediaResolver for MetaMedia {
    async fn resolve(
        &self,
        ws: &WorkspaceId,
        _account: &str,
        attachments: &mut [Attachment],
    ) -> Result<(), StoreError> {
        for a in attachments.iter_mut().filter(|a| a.url.starts_with("https://") || a.url.starts_with("http://")) {
            let name = hex::encode(&sha2::Sha256::digest(a.url.as_bytes())[..16]);
            let key = objects::media(ws, MediaSource::Meta, &name);
            let copied = self.copier.copy(&a.url, &Auth::None, &key, &a.content_type, META_MAX_BYTES).await?;
            apply(ws, MediaSource::Meta, a, copied);
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------------ Telegram

/// Telegram files: `getFile` names the file's path, whose bytes are then downloaded (the Bot
/// API's two steps; bots may download files up to 20 MB).
pub struct TelegramFiles {
    pub copier: Arc<MediaCopier>,
    pub api_base: String,
    pub bot_token: String,
}

pub const TELEGRAM_MAX_BYTES: u64 = 20 * 1024 * 1024;

#[derive(Deserialize)]
struct GetFile {
    ok: bool,
    result: Option<TelegramFileInfo>,
}

#[derive(Deserialize)]
struct TelegramFileInfo {
    file_unique_id: Option<String>,
    file_path: Option<String>,
    file_size: Option<u64>,
}

#[async_trait]
impl MediaResolver for TelegramFiles {
    async fn resolve(
        &self,
        ws: &WorkspaceId,
        _account: &str,
        attachments: &mut [Attachment],
    ) -> Result<(), StoreError> {
        let base = self.api_base.trim_end_matches('/');
        for a in attachments.iter_mut() {
            let Some(id) = a.url.strip_prefix(domain::channels::telegram::FILE_SCHEME).map(str::to_owned) else {
                continue;
            };
            let id_param = url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>();
            let lookup = format!("{base}/bot{}/getFile?file_id={id_param}", self.bot_token);
            let res = match self.copier.get(&lookup, &Auth::None, "Telegram getFile").await? {
                Ok(res) => res,
                Err(status) => {
                    apply(ws, MediaSource::Telegram, a, Copied::Gone { status });
                    continue;
                }
            };
            let info: GetFile = res.json().await.map_err(|e| unavailable("Telegram getFile", e.without_url()))?;
            let Some(TelegramFileInfo { file_unique_id, file_path: Some(path), file_size }) =
                info.result.filter(|_| info.ok)
            else {
                apply(ws, MediaSource::Telegram, a, Copied::Gone { status: 404 });
                continue;
            };
            let key = objects::media(ws, MediaSource::Telegram, file_unique_id.as_deref().unwrap_or(&id));
            let file = format!("{base}/file/bot{}/{path}", self.bot_token);
            let copied = self
                .copier
                .copy_announced(file_size, &file, &Auth::None, &key, &a.content_type, TELEGRAM_MAX_BYTES)
                .await?;
            apply(ws, MediaSource::Telegram, a, copied);
        }
        Ok(())
    }
}

// -------------------------------------------------------------------------------------- Twilio

/// Twilio's media: MMS media (`MediaUrl<n>`) and voice recordings, fetched from Twilio's API with
/// the account's credentials (accounts may enforce HTTP auth on media URLs). Only URLs on the
/// configured API host are fetched: the URL comes from a request body, and following any other
/// would let a forged callback make us fetch what it names.
pub struct TwilioMedia {
    pub copier: Arc<MediaCopier>,
    pub api_base: String,
    pub account_sid: String,
    pub auth_token: String,
}

/// Twilio's own largest MMS (5 MB), with room for its transcoding.
pub const MMS_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// The largest recording kept (a three-minute MP3 is about 3 MB).
pub const RECORDING_MAX_BYTES: u64 = 20 * 1024 * 1024;

impl TwilioMedia {
    /// Whether `candidate` is on the configured API's scheme, host and port (a string prefix
    /// would let `https://api.twilio.com.evil.tld` through).
    pub fn on_api(&self, candidate: &str) -> bool {
        let (Ok(api), Ok(url)) = (url::Url::parse(&self.api_base), url::Url::parse(candidate)) else { return false };
        api.scheme() == url.scheme()
            && api.host_str() == url.host_str()
            && api.port_or_known_default() == url.port_or_known_default()
    }

    fn auth(&self) -> Auth {
        Auth::Basic { user: self.account_sid.clone(), password: self.auth_token.clone() }
    }

    /// Copies one Twilio resource to `key`: `Ok(None)` when the URL is not Twilio's.
    pub async fn copy(
        &self,
        url: &str,
        key: &str,
        fallback_type: &str,
        cap: u64,
    ) -> Result<Option<Copied>, StoreError> {
        if !self.on_api(url) {
            return Ok(None);
        }
        Ok(Some(self.copier.copy(url, &self.auth(), key, fallback_type, cap).await?))
    }

    /// A voicemail's recording (as MP3) into its object.
    pub async fn copy_recording(
        &self,
        ws: &WorkspaceId,
        url: &str,
        recording_sid: &str,
    ) -> Result<Option<Copied>, StoreError> {
        let mp3 = format!("{}.mp3", url.trim_end_matches(".mp3"));
        self.copy(&mp3, &objects::voicemail(ws, recording_sid), "audio/mpeg", RECORDING_MAX_BYTES).await
    }
}

#[async_trait]
impl MediaResolver for TwilioMedia {
    /// MMS media: named by the media's own sid (the URL's last segment).
    async fn resolve(
        &self,
        ws: &WorkspaceId,
        _account: &str,
        attachments: &mut [Attachment],
    ) -> Result<(), StoreError> {
        for a in attachments.iter_mut().filter(|a| a.url.starts_with("http")) {
            let name = a.url.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned();
            let name = if name.is_empty() { hex::encode(&sha2::Sha256::digest(a.url.as_bytes())[..16]) } else { name };
            let key = objects::media(ws, MediaSource::Mms, &name);
            match self.copy(&a.url, &key, &a.content_type, MMS_MAX_BYTES).await? {
                Some(copied) => apply(ws, MediaSource::Mms, a, copied),
                None => tracing::warn!(workspace = %ws, "MMS media not on Twilio's API; reference kept"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryFiles;

    /// A provider's file server: `/file/{n}` streams n bytes (chunked, no length), `/sized/{n}`
    /// announces its length, `/gone` is 404, `/down` is 503.
    async fn files_server() -> String {
        use axum::body::Body;
        use axum::extract::Path;
        use axum::routing::get;
        let app = axum::Router::new()
            .route(
                "/file/{n}",
                get(|Path(n): Path<usize>| async move {
                    let chunks = (0..n.div_ceil(64 * 1024)).map(move |i| {
                        Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; (n - i * 64 * 1024).min(64 * 1024)]))
                    });
                    let stream = futures::stream::iter(chunks.collect::<Vec<_>>());
                    ([("content-type", "video/mp4; codecs=avc1")], Body::from_stream(stream))
                }),
            )
            .route("/sized/{n}", get(|Path(n): Path<usize>| async move { vec![b'y'; n] }))
            .route("/gone", get(|| async { axum::http::StatusCode::NOT_FOUND }))
            .route("/down", get(|| async { axum::http::StatusCode::SERVICE_UNAVAILABLE }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn copier(files: Arc<MemoryFiles>) -> MediaCopier {
        MediaCopier::new(crate::http::client(crate::http::API_TIMEOUT).unwrap(), files)
    }

    #[tokio::test]
    async fn files_stream_in_under_the_cap_and_past_it_nothing_is_kept() {
        let base = files_server().await;
        let files = Arc::new(MemoryFiles::default());
        let c = copier(files.clone());
        let n = 3 * 1024 * 1024 + 17;
        let got =
            c.copy(&format!("{base}/file/{n}"), &Auth::None, "media/acme/whatsapp/v1", "video/3gpp", 5 << 20).await;
        assert_eq!(
            got.unwrap(),
            Copied::Stored {
                url: "s3://memory/media/acme/whatsapp/v1".into(),
                content_type: "video/mp4".into(),
                size: n as u64
            }
        );
        assert_eq!(files.file("s3://memory/media/acme/whatsapp/v1").unwrap().1.len(), n);
        // Streamed past the cap (no Content-Length to refuse it by): cut, nothing stored.
        let big = c
            .copy(&format!("{base}/file/{}", 6 << 20), &Auth::None, "media/acme/whatsapp/v2", "video/mp4", 5 << 20)
            .await;
        assert!(matches!(big.unwrap(), Copied::TooLarge { size } if size > 5 << 20));
        assert!(files.file("s3://memory/media/acme/whatsapp/v2").is_none());
        // Announced too large: refused before reading it.
        let sized = c.copy(&format!("{base}/sized/2048"), &Auth::None, "media/acme/meta/x", "image/png", 1024).await;
        assert_eq!(sized.unwrap(), Copied::TooLarge { size: 2048 });
        assert_eq!(
            c.copy(&format!("{base}/gone"), &Auth::None, "k", "t", 10).await.unwrap(),
            Copied::Gone { status: 404 }
        );
        assert!(matches!(
            c.copy(&format!("{base}/down"), &Auth::None, "k", "t", 10).await,
            Err(StoreError::Unavailable(_))
        ));
    }

    #[test]
    fn only_the_configured_twilio_api_is_fetched() {
        let files = Arc::new(MemoryFiles::default());
        let t = TwilioMedia {
            copier: Arc::new(copier(files)),
            api_base: "https://api.twilio.com".into(),
            account_sid: "AC1".into(),
            auth_token: "t".into(),
        };
        assert!(t.on_api("https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"));
        assert!(!t.on_api("https://api.twilio.com.evil.tld/2010-04-01/Accounts/AC1/Recordings/RE1"));
        assert!(!t.on_api("http://api.twilio.com/x"));
        assert!(!t.on_api("http://169.254.169.254/latest/meta-data"));
        assert!(!t.on_api("not a url"));
    }
}
