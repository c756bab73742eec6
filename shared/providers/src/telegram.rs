//! Workspaces' own Telegram bots: their credentials read from the vault (cached per container), and
//! Telegram's webhook registration. The webhook verifies an update with its bot's own secret token;
//! the sender sends with its bot's own token. The stack's `TELEGRAM_CREDENTIALS` bot, if any, is
//! the fallback for its own id only.

use std::sync::Arc;

use async_trait::async_trait;
use domain::channels::telegram::Telegram;
use domain::credentials::{self, CredentialKey};
use domain::ports::{BotApiError, CredentialVault, TelegramWebhooks, VaultError};

use crate::accounts::Accounts;

/// Every bot this stack answers for, and the Bot API they are reached at.
pub struct TelegramBots {
    /// The Bot API (`TELEGRAM_API_BASE`).
    api_base: String,
    bots: Accounts<Telegram>,
}

impl TelegramBots {
    pub fn new(
        api_base: impl Into<String>,
        vault: Option<Arc<dyn CredentialVault>>,
        stack_bot: Option<Telegram>,
    ) -> Self {
        let stack_bot = stack_bot.map(Arc::new);
        let bots = Accounts::new(
            CredentialKey::telegram,
            vault,
            |bot_id: &str, raw: &str| credentials::parse_telegram_secret(raw).filter(|t| t.bot_id() == bot_id),
            move |bot_id: &str| stack_bot.clone().filter(|t| t.bot_id() == bot_id),
        );
        Self { api_base: api_base.into(), bots }
    }

    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    /// The credentials of `bot_id`: the workspace's own (the vault), else the stack's bot if it is
    /// that one; `None` for a bot nobody connected.
    pub async fn bot(&self, bot_id: &str) -> Result<Option<Arc<Telegram>>, VaultError> {
        self.bots.get(bot_id).await
    }

    /// Drops what this container remembers of a bot (after connecting or disconnecting it here).
    pub fn forget(&self, bot_id: &str) {
        self.bots.forget(bot_id);
    }
}

/// The Bot API's webhook methods over the shared HTTP client. Errors never carry the URL: it holds
/// the bot's token.
pub struct BotApi {
    pub http: reqwest::Client,
    pub base_url: String,
}

impl BotApi {
    async fn call(&self, bot_token: &str, method: &str, body: serde_json::Value) -> Result<(), BotApiError> {
        let url = format!("{}/bot{bot_token}/{method}", self.base_url.trim_end_matches('/'));
        let res = self.http.post(url).json(&body).send().await.map_err(|e| {
            BotApiError::Unavailable(format!("Telegram's {method} did not answer: {}", e.without_url()))
        })?;
        let status = res.status().as_u16();
        let answer: serde_json::Value = res.json().await.unwrap_or_default();
        let description = answer["description"].as_str().unwrap_or("no description").to_owned();
        match status {
            200 if answer["ok"] == true => Ok(()),
            401 | 404 => Err(BotApiError::Refused("Telegram does not accept this bot token (revoked or wrong)".into())),
            429 | 500..=599 => {
                Err(BotApiError::Unavailable(format!("Telegram's {method} answered {status}: {description}")))
            }
            _ => Err(BotApiError::Refused(format!("Telegram refused {method}: {description}"))),
        }
    }
}

#[async_trait]
impl TelegramWebhooks for BotApi {
    async fn set_webhook(&self, bot_token: &str, url: &str, secret_token: &str) -> Result<(), BotApiError> {
        let body = serde_json::json!({
            "url": url,
            "secret_token": secret_token,
            "allowed_updates": ["message", "edited_message"],
        });
        self.call(bot_token, "setWebhook", body).await
    }
    async fn delete_webhook(&self, bot_token: &str) -> Result<(), BotApiError> {
        self.call(bot_token, "deleteWebhook", serde_json::json!({})).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryVault;
    use domain::WorkspaceId;

    fn bot(token: &str, secret: &str) -> Telegram {
        Telegram { bot_token: token.into(), secret_token: secret.into() }
    }

    #[tokio::test]
    async fn a_workspace_bot_comes_from_the_vault_and_the_stack_bot_only_for_its_id() {
        let vault = Arc::new(MemoryVault::default());
        let ws = WorkspaceId::parse("acme").unwrap();
        let own = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
        vault.put(&CredentialKey::telegram("7012345678"), &ws, &credentials::telegram_secret(own, "s1")).await.unwrap();
        let bots = TelegramBots::new(
            "http://telegram.invalid",
            Some(vault.clone()),
            Some(bot("7000000001:stack-token-stack-token-xx", "stack")),
        );
        assert_eq!(bots.bot("7012345678").await.unwrap().unwrap().secret_token, "s1");
        assert_eq!(bots.bot("7000000001").await.unwrap().unwrap().secret_token, "stack");
        assert!(bots.bot("7999999999").await.unwrap().is_none());
        // Cached: a change in the vault shows after `forget` (or the TTL).
        vault.put(&CredentialKey::telegram("7012345678"), &ws, &credentials::telegram_secret(own, "s2")).await.unwrap();
        assert_eq!(bots.bot("7012345678").await.unwrap().unwrap().secret_token, "s1");
        bots.forget("7012345678");
        assert_eq!(bots.bot("7012345678").await.unwrap().unwrap().secret_token, "s2");
    }

    #[tokio::test]
    async fn a_secret_naming_another_bot_is_not_trusted() {
        let vault = Arc::new(MemoryVault::default());
        let ws = WorkspaceId::parse("acme").unwrap();
        let other = credentials::telegram_secret("7099999999:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "s");
        vault.put(&CredentialKey::telegram("7012345678"), &ws, &other).await.unwrap();
        assert!(TelegramBots::new("http://telegram.invalid", Some(vault), None)
            .bot("7012345678")
            .await
            .unwrap()
            .is_none());
    }
}
