//! Telegram Bot API webhook, `POST /webhooks/telegram/{bot}`: the secret token set with
//! `setWebhook` is compared in constant time, then the update's customer message goes onto the
//! inbound FIFO queue for the workspace owning the bot. Telegram gets its 200 only once it is
//! enqueued; a redelivered update (same `update_id`) is a duplicate for the inbox.

use api::webhook::Inbound;
use domain::channels::telegram::Telegram;
use lambda_http::{Body, Error, Request, Response};

pub struct Deps {
    pub inbound: Inbound<Telegram>,
}

impl Deps {
    /// `TELEGRAM_CREDENTIALS` (a secret): `{"bot_token", "secret_token"}`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self { inbound: Inbound::from_config(config.json_secret("TELEGRAM_CREDENTIALS", aws).await?, config, aws)? })
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(deps.inbound.handle_json(req).await)
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
