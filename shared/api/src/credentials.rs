//! Wiring for each workspace's own provider credentials: the vault (Secrets Manager under
//! `CREDENTIALS_PREFIX`), the accounts resolved from it (Telegram bots, Twilio numbers) with the
//! stack's own as the fallback, and the providers' APIs that check credentials before they are
//! kept. A function builds the vault and the HTTP client once and hands them to what needs them.

use std::sync::Arc;

use domain::channels::telegram::{self, Telegram};
use domain::ports::CredentialVault;
use providers::telegram::{BotApi, TelegramBots};

/// The vault, when the stack names its prefix (`CREDENTIALS_PREFIX`, `<stack>/credentials/`).
pub fn vault(config: &kit::Config, aws: &aws_config::SdkConfig) -> Option<Arc<dyn CredentialVault>> {
    config.optional("CREDENTIALS_PREFIX").map(|prefix| {
        let vault: Arc<dyn CredentialVault> =
            Arc::new(providers::vault::SecretsManagerVault::new(aws_sdk_secretsmanager::Client::new(aws), prefix));
        vault
    })
}

/// The Bot API base (`TELEGRAM_API_BASE`, Telegram's own by default).
pub fn telegram_api_base(config: &kit::Config) -> String {
    config.optional("TELEGRAM_API_BASE").unwrap_or_else(|| telegram::API_BASE.into())
}

/// An HTTP client with the providers' timeout, for the credential checks and registrations.
pub fn http_client() -> Result<reqwest::Client, kit::ConfigError> {
    providers::http::client(providers::http::API_TIMEOUT)
        .map_err(|e| kit::ConfigError::Invalid { name: "http client".into(), reason: e.to_string() })
}

/// Every Telegram bot this stack answers for: the workspaces' own (`vault`) and the stack's.
pub async fn telegram_bots(
    config: &kit::Config,
    aws: &aws_config::SdkConfig,
    vault: Option<Arc<dyn CredentialVault>>,
) -> Result<Arc<TelegramBots>, kit::ConfigError> {
    let stack_bot: Option<Telegram> = if config.has_secret("TELEGRAM_CREDENTIALS") {
        Some(config.json_secret("TELEGRAM_CREDENTIALS", aws).await?)
    } else {
        None
    };
    Ok(Arc::new(TelegramBots::new(telegram_api_base(config), vault, stack_bot)))
}

/// Telegram's webhook registration.
pub fn bot_api(config: &kit::Config, http: reqwest::Client) -> BotApi {
    BotApi { http, base_url: telegram_api_base(config) }
}

/// 32 random bytes (a webhook's secret token).
pub fn random_32() -> Result<[u8; 32], getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// Twilio accounts by number: the workspaces' own (`vault`) and the stack's
/// (`TWILIO_ACCOUNT_SID`, the `TWILIO_AUTH_TOKEN` secret) for every other number.
pub async fn twilio_numbers(
    config: &kit::Config,
    aws: &aws_config::SdkConfig,
    vault: Option<Arc<dyn CredentialVault>>,
) -> Result<Arc<providers::accounts::TwilioNumbers>, kit::ConfigError> {
    // Verifying a webhook needs only the token; the account SID is for sending.
    let stack = if config.has_secret("TWILIO_AUTH_TOKEN") {
        Some(domain::credentials::TwilioAccount {
            account_sid: config.optional("TWILIO_ACCOUNT_SID").unwrap_or_default(),
            auth_token: config.secret("TWILIO_AUTH_TOKEN", aws).await?,
        })
    } else {
        None
    };
    Ok(Arc::new(providers::accounts::twilio_numbers(vault, stack)))
}

/// Twilio's Accounts API (`TWILIO_API_BASE`): checks a workspace's credentials before they are kept.
pub fn twilio_accounts(config: &kit::Config, http: reqwest::Client) -> providers::outbound::TwilioAccounts {
    providers::outbound::TwilioAccounts {
        http,
        base_url: config.optional("TWILIO_API_BASE").unwrap_or_else(|| "https://api.twilio.com".into()),
    }
}

/// Meta's Graph API (`META_API_BASE`): checks a workspace's Page token before it is kept.
pub fn graph_pages(config: &kit::Config, http: reqwest::Client) -> providers::outbound::GraphPages {
    providers::outbound::GraphPages {
        http,
        base_url: config.optional("META_API_BASE").unwrap_or_else(|| domain::channels::whatsapp::API_BASE.into()),
    }
}

/// Meta's Graph API as WhatsApp reaches it (`WHATSAPP_API_BASE`): a number's access token checked.
pub fn graph_whatsapp(config: &kit::Config, http: reqwest::Client) -> providers::outbound::GraphPages {
    providers::outbound::GraphPages {
        http,
        base_url: config.optional("WHATSAPP_API_BASE").unwrap_or_else(|| domain::channels::whatsapp::API_BASE.into()),
    }
}
