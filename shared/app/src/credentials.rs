//! A workspace's own Telegram bot: its token kept in the vault with a webhook secret token we
//! generate, and the webhook registered with Telegram (`setWebhook`) to post to this stack with
//! that secret. Disconnecting deletes the webhook at Telegram and the secret.
//!
//! Order matters. The secret is stored before Telegram is told, so the first update sent with it
//! already verifies. Connecting the same token again keeps the same secret (idempotent; Telegram
//! takes the same `setWebhook` twice), while a new token gets a new secret.

use domain::credentials::{self, CredentialKey};
use domain::ports::{BotApiError, CredentialVault, TelegramWebhooks, VaultError};
use domain::WorkspaceId;

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Telegram(#[from] BotApiError),
}

/// What registering did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// A new bot, or a new token for it: a new secret token.
    New,
    /// The same token as stored: its secret kept, the webhook registered again.
    Same,
}

pub async fn register_telegram_bot(
    vault: &dyn CredentialVault,
    webhooks: &dyn TelegramWebhooks,
    workspace: &WorkspaceId,
    bot_id: &str,
    bot_token: &str,
    webhook_url: &str,
    random: &[u8; 32],
) -> Result<Registered, CredentialsError> {
    let key = CredentialKey::telegram(bot_id);
    let stored = vault.get(&key).await?.and_then(|raw| credentials::parse_telegram_secret(&raw));
    let (secret, outcome) = match stored {
        Some(t) if t.bot_token == bot_token => (t.secret_token, Registered::Same),
        _ => (credentials::telegram_secret_token(random), Registered::New),
    };
    if outcome == Registered::New {
        vault.put(&key, workspace, &credentials::telegram_secret(bot_token, &secret)).await?;
    }
    webhooks.set_webhook(bot_token, webhook_url, &secret).await?;
    Ok(outcome)
}

/// Stops Telegram posting for the bot and forgets its credentials. A bot with no stored
/// credentials (the stack's own, or already removed) is left alone.
pub async fn unregister_telegram_bot(
    vault: &dyn CredentialVault,
    webhooks: &dyn TelegramWebhooks,
    bot_id: &str,
) -> Result<bool, CredentialsError> {
    let key = CredentialKey::telegram(bot_id);
    let Some(stored) = vault.get(&key).await?.and_then(|raw| credentials::parse_telegram_secret(&raw)) else {
        return Ok(false);
    };
    match webhooks.delete_webhook(&stored.bot_token).await {
        // A revoked token can no longer post anyway: forget it all the same.
        Ok(()) | Err(BotApiError::Refused(_)) => {}
        Err(e) => return Err(e.into()),
    }
    vault.delete(&key).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use async_trait::async_trait;
    use providers::memory::MemoryVault;

    #[derive(Default)]
    struct Hooks {
        calls: Mutex<Vec<(String, String, String)>>,
        fail: Mutex<Option<BotApiError>>,
    }

    #[async_trait]
    impl TelegramWebhooks for Hooks {
        async fn set_webhook(&self, token: &str, url: &str, secret: &str) -> Result<(), BotApiError> {
            if let Some(e) = self.fail.lock().unwrap().take() {
                return Err(e);
            }
            self.calls.lock().unwrap().push((token.into(), url.into(), secret.into()));
            Ok(())
        }
        async fn delete_webhook(&self, token: &str) -> Result<(), BotApiError> {
            self.calls.lock().unwrap().push((token.into(), "deleted".into(), String::new()));
            Ok(())
        }
    }

    const TOKEN: &str = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
    const URL: &str = "https://api.example/webhooks/telegram/7012345678";

    #[tokio::test]
    async fn a_bot_is_stored_then_registered_and_the_same_token_keeps_its_secret() {
        let (vault, hooks, ws) = (MemoryVault::default(), Hooks::default(), WorkspaceId::parse("acme").unwrap());
        let key = CredentialKey::telegram("7012345678");
        let first = register_telegram_bot(&vault, &hooks, &ws, "7012345678", TOKEN, URL, &[7; 32]).await.unwrap();
        assert_eq!(first, Registered::New);
        let stored = credentials::parse_telegram_secret(&vault.get(&key).await.unwrap().unwrap()).unwrap();
        assert_eq!(vault.owner(&key), Some(ws.clone()));
        assert_eq!(hooks.calls.lock().unwrap()[0], (TOKEN.into(), URL.into(), stored.secret_token.clone()));
        // Again, with other randomness: same secret, registered again.
        let again = register_telegram_bot(&vault, &hooks, &ws, "7012345678", TOKEN, URL, &[9; 32]).await.unwrap();
        assert_eq!(again, Registered::Same);
        assert_eq!(hooks.calls.lock().unwrap()[1].2, stored.secret_token);
        // A new token (rotated at BotFather): a new secret.
        let rotated = "7012345678:BBHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
        assert_eq!(
            register_telegram_bot(&vault, &hooks, &ws, "7012345678", rotated, URL, &[9; 32]).await.unwrap(),
            Registered::New
        );
        assert_ne!(hooks.calls.lock().unwrap()[2].2, stored.secret_token);
    }

    #[tokio::test]
    async fn a_refused_token_is_reported_and_unregistering_forgets_the_bot() {
        let (vault, hooks, ws) = (MemoryVault::default(), Hooks::default(), WorkspaceId::parse("acme").unwrap());
        *hooks.fail.lock().unwrap() = Some(BotApiError::Refused("revoked".into()));
        let err = register_telegram_bot(&vault, &hooks, &ws, "7012345678", TOKEN, URL, &[7; 32]).await.unwrap_err();
        assert!(matches!(err, CredentialsError::Telegram(BotApiError::Refused(_))));
        register_telegram_bot(&vault, &hooks, &ws, "7012345678", TOKEN, URL, &[7; 32]).await.unwrap();
        assert!(unregister_telegram_bot(&vault, &hooks, "7012345678").await.unwrap());
        assert!(vault.get(&CredentialKey::telegram("7012345678")).await.unwrap().is_none());
        assert_eq!(hooks.calls.lock().unwrap().last().unwrap().1, "deleted");
        assert!(!unregister_telegram_bot(&vault, &hooks, "7012345678").await.unwrap(), "nothing left to remove");
    }
}
