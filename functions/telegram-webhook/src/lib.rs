//! Telegram Bot API webhook, `POST /webhooks/telegram/{bot}`: the secret token set with
//! `setWebhook` is compared in constant time, then the update's customer message goes onto the
//! inbound FIFO queue for the workspace owning the bot. Telegram gets its 200 only once it is
//! enqueued; a redelivered update (same `update_id`) is a duplicate for the inbox. Photos,
//! documents and voice notes are copied into the media bucket first (`getFile`, then the file);
//! a Bot API outage answers 503 so Telegram retries the update.

use std::sync::Arc;
use std::time::Duration;

use api::webhook::Inbound;
use domain::channels::telegram::{self, Telegram, FILE_SCHEME};
use domain::model::Attachment;
use domain::ports::{FileStore, MediaResolver, StoreError};
use domain::WorkspaceId;
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub struct Deps {
    pub inbound: Inbound<Telegram>,
    pub files: Option<TelegramFiles>,
}

impl Deps {
    /// `TELEGRAM_CREDENTIALS` (a secret): `{"bot_token", "secret_token"}`; `MEDIA_BUCKET` (files
    /// copied there; without it they stay named by id), optional `TELEGRAM_API_BASE`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let adapter: Telegram = config.json_secret("TELEGRAM_CREDENTIALS", aws).await?;
        let files = match config.optional("MEDIA_BUCKET") {
            Some(bucket) => Some(TelegramFiles {
                http: reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .timeout(Duration::from_secs(15))
                    .build()
                    .map_err(|e| kit::ConfigError::Invalid { name: "http client".into(), reason: e.to_string() })?,
                api_base: config.optional("TELEGRAM_API_BASE").unwrap_or_else(|| telegram::API_BASE.into()),
                bot_token: adapter.bot_token.clone(),
                files: Arc::new(mail::s3::S3Files::new(aws_sdk_s3::Client::new(aws), bucket)),
            }),
            None => None,
        };
        Ok(Self { inbound: Inbound::from_config(adapter, config, aws)?, files })
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    let media = deps.files.as_ref().map(|f| f as &dyn MediaResolver);
    Ok(deps.inbound.handle_json_with(req, media).await)
}

/// Copies Telegram files into our store: `getFile` names the file's path, whose bytes are then
/// downloaded (the Bot API's two steps; bots may download files up to 20 MB).
pub struct TelegramFiles {
    pub http: reqwest::Client,
    pub api_base: String,
    pub bot_token: String,
    pub files: Arc<dyn FileStore>,
}

#[derive(Deserialize)]
struct GetFile {
    ok: bool,
    result: Option<FileInfo>,
}

#[derive(Deserialize)]
struct FileInfo {
    file_unique_id: Option<String>,
    file_path: Option<String>,
}

/// Never the URL in an error: it holds the bot token.
fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("Telegram {what}: {e}").into())
}

impl TelegramFiles {
    async fn fetch(&self, file_id: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let base = self.api_base.trim_end_matches('/');
        let res = self
            .http
            .get(format!(
                "{base}/bot{}/getFile?file_id={}",
                self.bot_token,
                url::form_urlencoded::byte_serialize(file_id.as_bytes()).collect::<String>()
            ))
            .send()
            .await
            .map_err(|e| unavailable("getFile", e.without_url()))?;
        let status = res.status().as_u16();
        if status == 400 {
            return Ok(None); // an unknown or too large file
        }
        if !(200..300).contains(&status) {
            return Err(unavailable("getFile", format!("answered {status}")));
        }
        let info: GetFile = res.json().await.map_err(|e| unavailable("getFile", e.without_url()))?;
        let Some(FileInfo { file_unique_id, file_path: Some(path) }) = info.result.filter(|_| info.ok) else {
            return Ok(None);
        };
        let res = self
            .http
            .get(format!("{base}/file/bot{}/{path}", self.bot_token))
            .send()
            .await
            .map_err(|e| unavailable("file download", e.without_url()))?;
        if !res.status().is_success() {
            return Err(unavailable("file download", format!("answered {}", res.status())));
        }
        let bytes = res.bytes().await.map_err(|e| unavailable("file download", e.without_url()))?;
        Ok(Some((file_unique_id.unwrap_or_else(|| file_id.to_owned()), bytes.to_vec())))
    }
}

#[async_trait::async_trait]
impl MediaResolver for TelegramFiles {
    async fn resolve(&self, ws: &WorkspaceId, attachments: &mut [Attachment]) -> Result<(), StoreError> {
        for a in attachments.iter_mut() {
            let Some(id) = a.url.strip_prefix(FILE_SCHEME).map(str::to_owned) else { continue };
            let Some((unique, bytes)) = self.fetch(&id).await? else {
                tracing::warn!(workspace = %ws, "a Telegram file could not be downloaded; kept by id");
                continue;
            };
            let size = bytes.len() as u64;
            a.url = self.files.put_file(&format!("media/{ws}/telegram/{unique}"), &a.content_type, bytes).await?;
            a.size_bytes = Some(size);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use domain::ports::{ChannelAccount, ChannelDirectory};
    use domain::{Channel, WorkspaceId};
    use queue::memory::MemoryQueue;
    use store::MemoryStore;

    const MESSAGE: &str = include_str!("../../../events/telegram-webhook/message.json");
    const PHOTO: &str = include_str!("../../../events/telegram-webhook/photo.json");

    async fn deps(bot: &str) -> (Deps, Arc<MemoryQueue>) {
        let store = Arc::new(MemoryStore::new());
        store
            .put_channel_account(&ChannelAccount {
                workspace: WorkspaceId::parse("demo").unwrap(),
                channel: Channel::Telegram,
                address: bot.into(),
                display_name: None,
            })
            .await
            .unwrap();
        let q = Arc::new(MemoryQueue::new());
        let adapter = Telegram {
            bot_token: "7012345678:AAE-fixture".into(),
            secret_token: "fixture-telegram-secret-token".into(),
        };
        (
            Deps {
                inbound: Inbound { adapter, directory: store, queue: q.clone(), public_base_url: None, memory_mb: 128 },
                files: None,
            },
            q,
        )
    }

    fn request(fixture: &str, mutate: impl FnOnce(&mut serde_json::Value)) -> Request {
        let mut v: serde_json::Value = serde_json::from_str(fixture).unwrap();
        mutate(&mut v);
        lambda_http::request::from_str(&v.to_string()).expect("API Gateway v2 event")
    }

    #[tokio::test]
    async fn a_verified_update_is_enqueued_for_the_bots_workspace() {
        let (deps, q) = deps("7012345678").await;
        assert_eq!(handle(&deps, request(MESSAGE, |_| {})).await.unwrap().status(), 200);
        assert_eq!(handle(&deps, request(PHOTO, |_| {})).await.unwrap().status(), 200);
        let sent = q.sent();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].0, "demo:telegram:111222333");
        assert_eq!(sent[0].1, "telegram:7012345678:861234501");
        assert_eq!(sent[0].2["contact_name"], "Ana Lima");
        assert_eq!(sent[1].2["attachments"][0]["url"], "telegram-file:AgACAgQAAxkBAAIBlargest");
    }

    #[tokio::test]
    async fn a_wrong_or_missing_secret_token_stores_nothing() {
        let (deps, q) = deps("7012345678").await;
        let wrong = request(MESSAGE, |v| v["headers"]["x-telegram-bot-api-secret-token"] = "guess".into());
        assert_eq!(handle(&deps, wrong).await.unwrap().status(), 403);
        let missing = request(MESSAGE, |v| {
            v["headers"].as_object_mut().unwrap().remove("x-telegram-bot-api-secret-token");
        });
        assert_eq!(handle(&deps, missing).await.unwrap().status(), 403);
        assert!(q.sent().is_empty());
    }

    #[tokio::test]
    async fn an_update_for_a_bot_no_workspace_owns_is_acknowledged_and_skipped() {
        let (deps, q) = deps("999").await;
        assert_eq!(handle(&deps, request(MESSAGE, |_| {})).await.unwrap().status(), 200);
        assert!(q.sent().is_empty());
    }
}
