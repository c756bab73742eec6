//! Each workspace's own provider credentials (seed: per workspace, not per stack). They live in the
//! secret store (Secrets Manager in AWS), one secret per provider account, named here and nowhere
//! else: `<prefix><provider>/<account>`, where the prefix is the stack's
//! (`CREDENTIALS_PREFIX`, `<stack>/credentials/`), so the functions' IAM policies can name it.
//!
//! Telegram first: a workspace connects its own bot by its token. Switchboard generates the
//! webhook's secret token, keeps both in the bot's secret, and registers the webhook with
//! Telegram (`setWebhook`). The webhook checks each update against that bot's own secret token,
//! and replies go out with that bot's token. The stack-wide `TELEGRAM_CREDENTIALS` stays as the
//! fallback for the one bot it names.

use base64::Engine;

use crate::channels::telegram::Telegram;
use crate::error::ParseError;

/// Whose credentials: a provider and its account id (a Telegram bot id).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CredentialKey {
    pub provider: &'static str,
    pub account: String,
}

impl CredentialKey {
    pub fn telegram(bot_id: &str) -> Self {
        Self { provider: crate::channels::telegram::PROVIDER, account: bot_id.to_owned() }
    }

    /// The secret's name under the stack's prefix.
    pub fn secret_name(&self, prefix: &str) -> String {
        format!("{prefix}{}/{}", self.provider, self.account)
    }
}

/// A bot token as BotFather gives it (`<bot id>:<35 characters>`), and that it is the token of
/// `bot_id` (the address being connected).
pub fn parse_bot_token(bot_id: &str, token: &str) -> Result<String, ParseError> {
    let invalid = |reason: &str| ParseError::Invalid { kind: "bot_token", reason: reason.into() };
    let token = token.trim();
    let (id, secret) =
        token.split_once(':').ok_or_else(|| invalid("expected <bot id>:<secret>, as BotFather gives it"))?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("the part before the colon is the bot's numeric id"));
    }
    if id != bot_id {
        return Err(invalid("this token belongs to another bot than the one in the path"));
    }
    if secret.len() < 20
        || secret.len() > 100
        || !secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(invalid("the part after the colon is 20-100 letters, digits, _ or -"));
    }
    Ok(token.to_owned())
}

/// The `secret_token` Telegram echoes in `X-Telegram-Bot-Api-Secret-Token`: 32 random bytes
/// (the caller's) in base64url, 43 characters of the 1-256 `A-Z a-z 0-9 _ -` Telegram allows.
pub fn telegram_secret_token(random: &[u8; 32]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
}

/// A bot's stored credentials.
pub fn telegram_secret(bot_token: &str, secret_token: &str) -> String {
    serde_json::json!({ "bot_token": bot_token, "secret_token": secret_token }).to_string()
}

/// Reads a bot's stored credentials; `None` when the secret is not a bot's (refused, not trusted).
pub fn parse_telegram_secret(raw: &str) -> Option<Telegram> {
    let t: Telegram = serde_json::from_str(raw).ok()?;
    (!t.bot_token.trim().is_empty() && !t.secret_token.trim().is_empty()).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn secrets_are_named_under_the_stack_prefix() {
        assert_eq!(
            CredentialKey::telegram("7012345678").secret_name("acme/credentials/"),
            "acme/credentials/telegram/7012345678"
        );
    }

    #[test]
    fn a_bot_token_must_be_the_bots() {
        let token = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
        assert_eq!(parse_bot_token("7012345678", token).unwrap(), token);
        assert!(parse_bot_token("7099999999", token).unwrap_err().to_string().contains("another bot"));
        assert!(parse_bot_token("7012345678", "7012345678").is_err());
        assert!(parse_bot_token("7012345678", "7012345678:short").is_err());
        assert!(parse_bot_token("7012345678", "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PAL sw").is_err());
        assert!(parse_bot_token("abc", "abc:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw").is_err());
    }

    #[test]
    fn stored_credentials_round_trip_and_empty_ones_are_refused() {
        let raw = telegram_secret("7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "s3cr3t");
        let t = parse_telegram_secret(&raw).unwrap();
        assert_eq!((t.bot_id(), t.secret_token.as_str()), ("7012345678", "s3cr3t"));
        assert!(parse_telegram_secret(&telegram_secret("7012345678:x", "")).is_none());
        assert!(parse_telegram_secret("not json").is_none());
    }

    proptest! {
        #[test]
        fn secret_tokens_are_what_telegram_accepts(bytes in proptest::array::uniform32(any::<u8>())) {
            let t = telegram_secret_token(&bytes);
            prop_assert_eq!(t.len(), 43);
            prop_assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        }
    }
}
