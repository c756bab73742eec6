//! Telegram Bot API webhook, `POST /webhooks/telegram/{bot}`: the secret token set with
//! `setWebhook` is compared in constant time, then the update's customer message goes onto the
//! inbound FIFO queue for the workspace owning the bot. Telegram gets its 200 only once it is
//! enqueued; a redelivered update (same `update_id`) is a duplicate for the inbox. Photos,
//! documents and voice notes are copied into the media bucket first (`getFile`, then the file);
//! a Bot API outage answers 503 so Telegram retries the update.
//!
//! Each bot is checked with its own credentials: a workspace's own bot (connected with its token
//! through the admin API) with the secret token kept in its secret, the stack's
//! `TELEGRAM_CREDENTIALS` bot with that one. A bot with neither is refused (403); the secret store
//! being unavailable answers 503 (Telegram retries).

use std::sync::Arc;

use api::webhook::Inbound;
use domain::channels::telegram::Telegram;
use domain::ports::MediaResolver;
use kit::http::{path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use providers::media::MediaCopier;
pub use providers::media::TelegramFiles;
use providers::telegram::TelegramBots;

pub struct Deps {
    /// What every bot's request shares (the adapter is the bot's, set per request).
    pub inbound: Inbound<()>,
    pub bots: Arc<TelegramBots>,
    /// Copies photos, documents and voice notes into the media bucket (`MEDIA_BUCKET`).
    pub copier: Option<Arc<MediaCopier>>,
}

impl Deps {
    /// `TELEGRAM_CREDENTIALS` (a secret, optional): `{"bot_token", "secret_token"}` of the stack's
    /// bot; `CREDENTIALS_PREFIX` (workspaces' own bots); `MEDIA_BUCKET` (files copied there;
    /// without it they stay named by id), optional `TELEGRAM_API_BASE`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self {
            inbound: Inbound::from_config((), config, aws)?,
            bots: api::credentials::telegram_bots(config, aws, api::credentials::vault(config, aws)).await?,
            copier: api::webhook::media_copier(config, aws)?,
        })
    }
}

#[utoipa::path(post, path = "/webhooks/telegram/{bot}", operation_id = "telegramWebhook", tag = "provider webhooks",
    params(("bot" = String, Path, description = "The bot's id"), ("X-Telegram-Bot-Api-Secret-Token" = String, Header, description = "The secret token set with setWebhook")),
    request_body(content = Object, description = "A Telegram Update"),
    responses((status = 200, description = "Enqueued (or not a customer message)"), (status = 403, description = "The provider's signature does not verify: nothing stored", body = kit::http::ErrorBody)))]
pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    let bot = match bot(deps, &req).await {
        Ok(bot) => bot,
        Err(e) => return Ok(respond(Err(e))),
    };
    let files = deps.copier.as_ref().map(|copier| TelegramFiles {
        copier: copier.clone(),
        api_base: deps.bots.api_base().to_owned(),
        bot_token: bot.bot_token.clone(),
    });
    let inbound = deps.inbound.with_adapter((*bot).clone());
    let media = files.as_ref().map(|f| f as &dyn MediaResolver);
    Ok(inbound.handle_json_with(req, media).await)
}

/// The credentials of the bot in the path.
async fn bot(deps: &Deps, req: &Request) -> Result<Arc<Telegram>, ApiError> {
    let id = path_param(req, "bot", |b| Ok(b.to_owned()))?;
    deps.bots
        .bot(&id)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?
        .ok_or_else(|| ApiError::Forbidden("no credentials are configured for this bot".into()))
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
            .put_channel_account(&ChannelAccount::new(WorkspaceId::parse("demo").unwrap(), Channel::Telegram, bot))
            .await
            .unwrap();
        let q = Arc::new(MemoryQueue::new());
        let adapter = Telegram {
            bot_token: "7012345678:AAE-fixture".into(),
            secret_token: "fixture-telegram-secret-token".into(),
        };
        (
            Deps {
                inbound: Inbound {
                    adapter: (),
                    directory: store,
                    queue: q.clone(),
                    public_base_url: None,
                    memory_mb: 128,
                },
                bots: Arc::new(TelegramBots::new("http://telegram.invalid", None, Some(adapter))),
                copier: None,
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

#[cfg(test)]
mod workspace_bots {
    use std::sync::Arc;

    use super::*;
    use domain::credentials::{self, CredentialKey};
    use domain::ports::{ChannelAccount, ChannelDirectory, CredentialVault};
    use domain::{Channel, WorkspaceId};
    use providers::memory::MemoryVault;
    use queue::memory::MemoryQueue;
    use store::MemoryStore;

    const MESSAGE: &str = include_str!("../../../events/telegram-webhook/message.json");

    #[tokio::test]
    async fn a_workspace_bot_is_checked_with_its_own_secret_and_an_unknown_bot_is_refused() {
        let store = Arc::new(MemoryStore::new());
        let acme = WorkspaceId::parse("acme").unwrap();
        store.put_channel_account(&ChannelAccount::new(acme.clone(), Channel::Telegram, "7012345678")).await.unwrap();
        let vault = Arc::new(MemoryVault::default());
        let token = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
        vault
            .put(&CredentialKey::telegram("7012345678"), &acme, &credentials::telegram_secret(token, "own-secret"))
            .await
            .unwrap();
        let q = Arc::new(MemoryQueue::new());
        let deps = |vault: Option<Arc<MemoryVault>>| Deps {
            inbound: Inbound {
                adapter: (),
                directory: store.clone(),
                queue: q.clone(),
                public_base_url: None,
                memory_mb: 128,
            },
            bots: Arc::new(TelegramBots::new(
                "http://telegram.invalid",
                vault.map(|v| v as Arc<dyn CredentialVault>),
                None,
            )),
            copier: None,
        };
        let with = |secret: &str| {
            let mut v: serde_json::Value = serde_json::from_str(MESSAGE).unwrap();
            v["headers"]["x-telegram-bot-api-secret-token"] = secret.into();
            lambda_http::request::from_str(&v.to_string()).unwrap()
        };
        let own = deps(Some(vault));
        assert_eq!(
            handle(&own, with("fixture-telegram-secret-token")).await.unwrap().status(),
            403,
            "the stack's secret is not this bot's"
        );
        assert!(q.sent().is_empty());
        assert_eq!(handle(&own, with("own-secret")).await.unwrap().status(), 200);
        assert_eq!(q.sent()[0].0, "acme:telegram:111222333");
        assert_eq!(handle(&deps(None), with("own-secret")).await.unwrap().status(), 403, "no credentials for the bot");
    }
}
