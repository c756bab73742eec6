//! Telegram Bot API webhook, `POST /webhooks/telegram/{bot}`: the secret token set with
//! `setWebhook` is compared in constant time, then the update's customer message goes onto the
//! inbound FIFO queue for the workspace owning the bot. Telegram gets its 200 only once it is
//! enqueued; a redelivered update (same `update_id`) is a duplicate for the inbox. Photos,
//! documents and voice notes are copied into the media bucket first (`getFile`, then the file);
//! a Bot API outage answers 503 so Telegram retries the update.

use api::webhook::Inbound;
use domain::channels::telegram::{self, Telegram};
use domain::ports::MediaResolver;
use lambda_http::{Body, Error, Request, Response};
pub use providers::media::TelegramFiles;

pub struct Deps {
    pub inbound: Inbound<Telegram>,
    pub files: Option<TelegramFiles>,
}

impl Deps {
    /// `TELEGRAM_CREDENTIALS` (a secret): `{"bot_token", "secret_token"}`; `MEDIA_BUCKET` (files
    /// copied there; without it they stay named by id), optional `TELEGRAM_API_BASE`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let adapter: Telegram = config.json_secret("TELEGRAM_CREDENTIALS", aws).await?;
        let files = match api::webhook::media_copier(config, aws)? {
            Some(copier) => Some(TelegramFiles {
                copier,
                api_base: config.optional("TELEGRAM_API_BASE").unwrap_or_else(|| telegram::API_BASE.into()),
                bot_token: adapter.bot_token.clone(),
            }),
            None => None,
        };
        Ok(Self { inbound: Inbound::from_config(adapter, config, aws)?, files })
    }
}

#[utoipa::path(post, path = "/webhooks/telegram/{bot}", operation_id = "telegramWebhook", tag = "provider webhooks",
    params(("bot" = String, Path, description = "The bot's id"), ("X-Telegram-Bot-Api-Secret-Token" = String, Header, description = "The secret token set with setWebhook")),
    request_body(content = Object, description = "A Telegram Update"),
    responses((status = 200, description = "Enqueued (or not a customer message)"), (status = 403, description = "The provider's signature does not verify: nothing stored", body = kit::http::ErrorBody)))]
pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    let media = deps.files.as_ref().map(|f| f as &dyn MediaResolver);
    Ok(deps.inbound.handle_json_with(req, media).await)
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
                allowed_origins: Vec::new(),
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
