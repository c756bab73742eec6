//! Switchboard's local stack. `switchboard-local up` runs the whole platform on this machine: DynamoDB
//! Local and moto on loopback, the template's table and queues, the gateway serving every route and
//! queue through the functions' own handlers, and a fake Twilio that receives replies and posts
//! delivery callbacks. Tests use [`gateway::Stack`] the same way, one isolated stack each.

pub mod gateway;
pub mod mail;
pub mod oidc;
pub mod openapi;
pub mod provision;
pub mod receiver;
pub mod services;
pub mod sockets;
pub mod template;
pub mod web;

/// Fixed, public development values. Never used outside the local stack.
pub mod dev {
    pub const JWT_SECRET: &str = "local-dev-jwt-secret-not-for-production";
    /// The local OpenID provider's client for the console (infra/oidc/server.mjs): the tokens' audience.
    pub const OIDC_CLIENT_ID: &str = "switchboard-console";
    pub const TWILIO_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
    pub const TWILIO_AUTH_TOKEN: &str = "local-dev-twilio-auth-token";
    pub const WORKSPACE: &str = "demo";
    pub const SMS_NUMBER: &str = "+14155550100";
    pub const AGENT: &str = "alice";
    pub const WHATSAPP_APP_SECRET: &str = "local-dev-whatsapp-app-secret";
    pub const WHATSAPP_VERIFY_TOKEN: &str = "local-dev-whatsapp-verify-token";
    pub const WHATSAPP_ACCESS_TOKEN: &str = "local-dev-whatsapp-access-token";
    /// The demo workspace's WhatsApp business number id.
    pub const WHATSAPP_PHONE_NUMBER_ID: &str = "100000000000001";
    pub const META_APP_SECRET: &str = "local-dev-meta-app-secret";
    pub const META_VERIFY_TOKEN: &str = "local-dev-meta-verify-token";
    /// The demo workspace's Facebook Page and Instagram account, and their Page access token.
    pub const MESSENGER_PAGE_ID: &str = "100000000000002";
    pub const INSTAGRAM_ACCOUNT_ID: &str = "17841400000000002";
    /// The demo workspace's web chat widget key.
    pub const WEBCHAT_KEY: &str = "wk_demo_site";
    pub const META_PAGE_TOKEN: &str = "local-dev-meta-page-token";
    pub const TELEGRAM_BOT_TOKEN: &str = "7000000001:local-dev-telegram-bot-token";
    pub const TELEGRAM_BOT_ID: &str = "7000000001";
    pub const TELEGRAM_SECRET_TOKEN: &str = "local-dev-telegram-secret-token";
    /// The demo workspace's support address (its domain is verified on the local SES).
    pub const EMAIL_ADDRESS: &str = "support@demo.switchboard.test";
    pub const EMAIL_DOMAIN: &str = "demo.switchboard.test";
}

/// The Meta app as the functions see it: the Send API base, the app secret, the verify token and
/// each Page's (or Instagram account's) access token.
/// The local stack's Meta app id (its echoes are its own sends).
pub const LOCAL_META_APP_ID: &str = "1517776481860111";

pub struct MetaEnv<'a> {
    pub base_url: &'a str,
    pub app_secret: &'a str,
    pub verify_token: &'a str,
    pub page_tokens: &'a [(&'a str, &'a str)],
}

/// The functions' configuration for the JSON channels (credentials as the secrets hold them, and
/// the fakes' API bases), given each fake's base URL and credentials.
pub fn channel_env(
    whatsapp_base: &str,
    whatsapp: (&str, &str, &str),
    telegram_base: &str,
    telegram: (&str, &str),
    meta: &MetaEnv<'_>,
) -> Vec<(String, String)> {
    let (app_secret, verify_token, access_token) = whatsapp;
    let (bot_token, secret_token) = telegram;
    let page_tokens: serde_json::Map<String, serde_json::Value> =
        meta.page_tokens.iter().map(|(id, t)| ((*id).to_owned(), serde_json::Value::from(*t))).collect();
    vec![
        (
            "META_CREDENTIALS".into(),
            serde_json::json!({ "app_secret": meta.app_secret, "verify_token": meta.verify_token, "page_tokens": page_tokens,
                // The local app's id: echoes carrying another app's are messages sent from Meta's inbox.
                "app_id": LOCAL_META_APP_ID })
            .to_string(),
        ),
        ("META_API_BASE".into(), meta.base_url.to_owned()),
        (
            "WHATSAPP_CREDENTIALS".into(),
            serde_json::json!({ "app_secret": app_secret, "verify_token": verify_token, "access_token": access_token })
                .to_string(),
        ),
        ("WHATSAPP_API_BASE".into(), whatsapp_base.to_owned()),
        (
            "TELEGRAM_CREDENTIALS".into(),
            serde_json::json!({ "bot_token": bot_token, "secret_token": secret_token }).to_string(),
        ),
        ("TELEGRAM_API_BASE".into(), telegram_base.to_owned()),
    ]
}
