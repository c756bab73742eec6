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

    /// A workspace's Facebook Page or Instagram account, by id: its Page access token.
    pub fn meta(page_id: &str) -> Self {
        Self { provider: crate::channels::meta::PROVIDER, account: page_id.to_owned() }
    }

    /// A workspace's WhatsApp business number, by Meta's phone number id: the access token of the
    /// workspace's own WhatsApp Business Account (a System User token).
    pub fn whatsapp(phone_number_id: &str) -> Self {
        Self { provider: crate::channels::whatsapp::PROVIDER, account: phone_number_id.to_owned() }
    }

    /// The Twilio account a workspace's number (SMS and voice, E.164) belongs to.
    pub fn twilio(number: &str) -> Self {
        Self { provider: crate::channels::twilio::PROVIDER, account: number.to_owned() }
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

/// A Page access token as stored (`{"page_token"}`); `None` when empty or not one.
pub fn parse_page_secret(raw: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(raw).ok()?;
    v["page_token"].as_str().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned)
}

pub fn page_secret(page_token: &str) -> String {
    serde_json::json!({ "page_token": page_token }).to_string()
}

/// A Page access token as given: 20-1000 printable characters, no spaces.
pub fn parse_page_token(token: &str) -> Result<String, ParseError> {
    parse_meta_token("page_token", "the Page access token", token)
}

/// A WhatsApp Business Account's access token as given (a System User token), as a Page's.
pub fn parse_whatsapp_token(token: &str) -> Result<String, ParseError> {
    parse_meta_token("access_token", "the WhatsApp Business Account's access token", token)
}

fn parse_meta_token(kind: &'static str, what: &str, token: &str) -> Result<String, ParseError> {
    let t = token.trim();
    if t.len() < 20 || t.len() > 1000 || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ParseError::Invalid {
            kind,
            reason: format!("expected {what} Meta gave (20-1000 characters, no spaces)"),
        });
    }
    Ok(t.to_owned())
}

/// A WhatsApp number's stored access token.
pub fn whatsapp_secret(access_token: &str) -> String {
    serde_json::json!({ "access_token": access_token }).to_string()
}

/// Reads a WhatsApp number's stored access token; `None` when the secret is not one.
pub fn parse_whatsapp_secret(raw: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(raw).ok()?;
    v["access_token"].as_str().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned)
}

/// A Twilio account's credentials as a workspace gives them for one of its numbers.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TwilioAccount {
    pub account_sid: String,
    pub auth_token: String,
}

impl TwilioAccount {
    /// `AC` and 32 hex digits; an auth token of 32 hex digits (Twilio's formats).
    pub fn parse(account_sid: &str, auth_token: &str) -> Result<Self, ParseError> {
        let hex32 = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
        let sid = account_sid.trim();
        if !(sid.starts_with("AC") && hex32(&sid[2.min(sid.len())..])) {
            return Err(ParseError::Invalid { kind: "account_sid", reason: "expected AC and 32 hex digits".into() });
        }
        let token = auth_token.trim();
        if !hex32(token) {
            return Err(ParseError::Invalid {
                kind: "auth_token",
                reason: "expected the account's 32-hex-digit auth token".into(),
            });
        }
        Ok(Self { account_sid: sid.to_owned(), auth_token: token.to_owned() })
    }

    pub fn secret(&self) -> String {
        serde_json::to_string(self).expect("two strings serialise")
    }

    /// Reads stored credentials; `None` when they are not a valid account's.
    pub fn from_secret(raw: &str) -> Option<Self> {
        let a: Self = serde_json::from_str(raw).ok()?;
        Self::parse(&a.account_sid, &a.auth_token).ok()
    }
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

    #[test]
    fn twilio_accounts_are_validated_and_round_trip() {
        let a = TwilioAccount::parse("AC0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(TwilioAccount::from_secret(&a.secret()), Some(a));
        assert!(TwilioAccount::parse("AB0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef").is_err());
        assert!(TwilioAccount::parse("AC", "0123456789abcdef0123456789abcdef").is_err());
        assert!(TwilioAccount::parse("AC0123456789abcdef0123456789abcdef", "short").is_err());
        assert!(TwilioAccount::from_secret(r#"{"account_sid":"x","auth_token":"y"}"#).is_none());
        assert_eq!(
            CredentialKey::twilio("+14155550100").secret_name("s/credentials/"),
            "s/credentials/twilio/+14155550100"
        );
    }

    #[test]
    fn page_tokens_round_trip_and_bad_ones_are_refused() {
        let t = parse_page_token("EAAGm0PX4ZCpsBAO1234567890").unwrap();
        assert_eq!(parse_page_secret(&page_secret(&t)), Some(t));
        assert!(parse_page_token("short").is_err());
        assert!(parse_page_token("EAAGm0PX4ZCps BAO1234567890").is_err());
        assert!(parse_page_secret(r#"{"page_token":" "}"#).is_none());
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
