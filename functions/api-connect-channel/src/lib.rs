//! PUT /channels/{channel}/{address} — an admin connects one of the workspace's channel accounts,
//! or updates one it holds: an SMS or voice number (`/channels/sms/+14155550100`), a WhatsApp
//! phone number id, a Page or Instagram account id, a Telegram bot id, a mailbox
//! (`/channels/email/support@acme.example`) or a web chat widget key (8-64 letters, digits, `_`,
//! `-`; the console generates one). Body (optional): `{"display_name": "Acme Support",
//! "allowed_origins": ["https://shop.example"]}` (origins only for web chat: the widget answers
//! only pages there; empty allows any).
//!
//! A Telegram bot of the workspace's own comes with its token: `{"bot_token": "<id>:<secret>"}`.
//! The token (it must be the bot's in the path) is kept in the workspace's own secret with a
//! webhook secret token generated here, and Telegram is told to post the bot's updates to this
//! stack with it (`setWebhook`); 422 when Telegram refuses the token. The token is never logged,
//! audited or answered.
//!
//! A WhatsApp number of the workspace's own business account comes with that account's access
//! token: `{"access_token": "..."}`, checked with Meta (it must reach the number) and kept in the
//! workspace's own secret; replies from the number and its customers' media then go with it.
//!
//! Idempotent: 201 when it connected the address, 200 when the workspace already held it (its
//! details replaced); 409 when another workspace holds it (never taken over); 422 for an address
//! or origin that is not valid for the channel. Admins only; audited with the account.

use std::sync::Arc;

use app::credentials::{CredentialsError, Registered};
use domain::credentials::{CredentialKey, TwilioAccount};
use domain::ports::{
    BotApiError, ChannelAccount, CredentialVault, PageTokenCheck, TelegramWebhooks, TwilioAccountCheck,
};
use domain::Channel;
use kit::auth::ADMINS;
use kit::http::{body_bytes, json, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub struct Deps {
    pub api: api::Deps,
    /// The domains SES receives mail for (`EMAIL_DOMAIN`, comma-separated): a mailbox elsewhere
    /// would never receive anything.
    pub email_domains: Vec<String>,
    /// Where workspaces' own bots are kept and registered (`CREDENTIALS_PREFIX`).
    pub bots: Option<Bots>,
}

/// A workspace's own provider accounts: the vault, Telegram's webhook API, Twilio's account
/// check, and this stack's webhook base (`PUBLIC_BASE_URL`).
pub struct Bots {
    pub vault: Arc<dyn CredentialVault>,
    pub webhooks: Arc<dyn TelegramWebhooks>,
    pub twilio: Arc<dyn TwilioAccountCheck>,
    pub pages: Arc<dyn PageTokenCheck>,
    /// The same check against WhatsApp's Graph API base (`WHATSAPP_API_BASE`).
    pub whatsapp: Arc<dyn PageTokenCheck>,
    pub public_base_url: String,
}

impl Deps {
    pub fn new(api: api::Deps, email_domains: &[&str]) -> Self {
        Self { api, email_domains: email_domains.iter().map(|d| d.to_ascii_lowercase()).collect(), bots: None }
    }

    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let domains = config.optional("EMAIL_DOMAIN").unwrap_or_default();
        let domains: Vec<&str> = domains.split(',').map(str::trim).filter(|d| !d.is_empty()).collect();
        let mut deps = Self::new(api::Deps::from_config(config, aws).await?, &domains);
        if let Some(vault) = api::credentials::vault(config, aws) {
            // One client for Telegram's, Twilio's and Meta's checks.
            let http = api::credentials::http_client()?;
            deps.bots = Some(Bots {
                vault,
                webhooks: Arc::new(api::credentials::bot_api(config, http.clone())),
                twilio: Arc::new(api::credentials::twilio_accounts(config, http.clone())),
                pages: Arc::new(api::credentials::graph_pages(config, http.clone())),
                whatsapp: Arc::new(api::credentials::graph_whatsapp(config, http)),
                public_base_url: config.required("PUBLIC_BASE_URL")?,
            });
        }
        Ok(deps)
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = ConnectChannelRequest)]
#[serde(deny_unknown_fields)]
struct Details {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    /// A Telegram bot's token (`<bot id>:<secret>`, from BotFather): kept in the workspace's own
    /// secret, never answered.
    #[serde(default)]
    bot_token: Option<String>,
    /// The workspace's own Twilio account for this number (SMS and voice): kept in its own
    /// secret, never answered; without it the stack's account serves the number.
    #[serde(default)]
    twilio: Option<TwilioCredentials>,
    /// A Facebook Page's or Instagram account's Page access token (Messenger, Instagram): replies
    /// from it are sent with it. Kept in the workspace's own secret, never answered.
    #[serde(default)]
    page_token: Option<String>,
    /// A WhatsApp number's WhatsApp Business Account id (templates are submitted there).
    #[serde(default)]
    business_account_id: Option<String>,
    /// The access token of the workspace's own WhatsApp Business Account (a System User token)
    /// for this number: its replies and media go with it. Kept in the workspace's own secret,
    /// never answered; without it the stack's `WHATSAPP_CREDENTIALS` token serves the number.
    #[serde(default)]
    access_token: Option<String>,
    /// An SMS number's Twilio Messaging Service (`MG` and 32 hex digits): replies go out through
    /// its sender pool, each customer kept on one sender.
    #[serde(default)]
    messaging_service_sid: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TwilioCredentials {
    account_sid: String,
    auth_token: String,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(connect(deps, &req).await))
}

#[utoipa::path(put, path = "/channels/{channel}/{address}", operation_id = "connectChannel", tag = "workspace",
    params(("channel" = domain::Channel, Path, description = "The channel"),
           ("address" = String, Path, description = "The number (E.164), id, mailbox or widget key")),
    request_body(content = Option<Details>, description = "Optional: a display name, and a widget's allowed origins"),
    responses((status = 201, description = "Connected", body = api::ChannelBody), (status = 200, description = "Already held: its details replaced", body = api::ChannelBody), (status = 404, body = kit::http::ErrorBody), (status = 409, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn connect(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.api.auth.authenticate(req)?;
    who.require(ADMINS)?;
    let channel = path_param(req, "channel", Channel::parse)?;
    let address = path_param(req, "address", |a| Ok(a.to_owned()))?;
    let address =
        domain::workspace::parse_address(channel, &address).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    if channel == Channel::Email {
        let domain = address.rsplit('@').next().unwrap_or_default();
        if !deps.email_domains.iter().any(|d| d == domain) {
            return Err(ApiError::Unprocessable(match deps.email_domains.as_slice() {
                [] => "this stack receives no email (its EmailDomain parameter is empty)".into(),
                ds => format!("this stack receives mail for {} only (its EmailDomain)", ds.join(", ")),
            }));
        }
    }
    let raw = body_bytes(req);
    let details: Details = if raw.iter().all(u8::is_ascii_whitespace) {
        Details::default()
    } else {
        serde_json::from_slice(raw).map_err(|e| {
            ApiError::BadRequest(format!("body must be {{\"display_name\"?, \"allowed_origins\"?: [...]}}: {e}"))
        })?
    };
    let unprocessable = |m: String| ApiError::Unprocessable(m);
    if channel != Channel::Webchat && !details.allowed_origins.is_empty() {
        return Err(unprocessable("allowed_origins apply to web chat widget keys only".into()));
    }
    if details.allowed_origins.len() > domain::workspace::MAX_ORIGINS {
        return Err(unprocessable(format!("at most {} allowed origins", domain::workspace::MAX_ORIGINS)));
    }
    let mut origins = details
        .allowed_origins
        .iter()
        .map(|o| domain::workspace::parse_origin(o))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unprocessable(e.to_string()))?;
    origins.sort();
    origins.dedup();
    let display_name = details.display_name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if display_name.as_ref().is_some_and(|n| n.chars().count() > 100) {
        return Err(unprocessable("display_name: at most 100 characters".into()));
    }
    let business_account_id = match details.business_account_id {
        None => None,
        Some(_) if channel != Channel::Whatsapp => {
            return Err(unprocessable("business_account_id applies to WhatsApp numbers only".into()))
        }
        Some(id) if (5..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit()) => Some(id),
        Some(_) => {
            return Err(unprocessable("business_account_id: Meta's numeric WhatsApp Business Account id".into()))
        }
    };
    let messaging_service_sid = match details.messaging_service_sid {
        None => None,
        Some(_) if channel != Channel::Sms => {
            return Err(unprocessable("messaging_service_sid applies to SMS numbers only".into()))
        }
        Some(sid) => Some(
            domain::channels::twilio::parse_sid("messaging_service_sid", &sid)
                .and_then(|sid| {
                    if sid.starts_with("MG") {
                        Ok(sid)
                    } else {
                        Err(domain::ParseError::Invalid {
                            kind: "messaging_service_sid",
                            reason: "a Messaging Service SID starts with MG".into(),
                        })
                    }
                })
                .map_err(|e| unprocessable(e.to_string()))?,
        ),
    };
    let account = ChannelAccount {
        display_name,
        allowed_origins: origins,
        business_account_id,
        messaging_service_sid,
        ..ChannelAccount::new(who.workspace.clone(), channel, address.clone())
    };
    let token = match details.bot_token.as_deref() {
        None => None,
        Some(_) if channel != Channel::Telegram => {
            return Err(unprocessable("bot_token applies to Telegram bots only".into()))
        }
        Some(t) => Some(domain::credentials::parse_bot_token(&address, t).map_err(|e| unprocessable(e.to_string()))?),
    };
    let twilio = match &details.twilio {
        None => None,
        Some(_) if !matches!(channel, Channel::Sms | Channel::Voice) => {
            return Err(unprocessable("twilio credentials apply to SMS and voice numbers only".into()))
        }
        Some(t) => Some(TwilioAccount::parse(&t.account_sid, &t.auth_token).map_err(|e| unprocessable(e.to_string()))?),
    };
    let page_token = match details.page_token.as_deref() {
        None => None,
        Some(_) if !matches!(channel, Channel::Messenger | Channel::Instagram) => {
            return Err(unprocessable("page_token applies to Messenger Pages and Instagram accounts only".into()))
        }
        Some(t) => Some(domain::credentials::parse_page_token(t).map_err(|e| unprocessable(e.to_string()))?),
    };
    let whatsapp_token = match details.access_token.as_deref() {
        None => None,
        Some(_) if channel != Channel::Whatsapp => {
            return Err(unprocessable("access_token applies to WhatsApp numbers only".into()))
        }
        Some(t) => Some(domain::credentials::parse_whatsapp_token(t).map_err(|e| unprocessable(e.to_string()))?),
    };
    let before = deps.api.store.channel_account(channel, &address).await?;
    if let Some(held) = &before {
        if held.workspace != who.workspace {
            return Err(ApiError::Conflict(format!("{channel} {address} is connected to another workspace")));
        }
    }
    if let Some(account) = &twilio {
        keep_twilio_account(deps, &who.workspace, &address, account).await?;
    }
    if let Some(token) = &page_token {
        keep_page_token(deps, &who.workspace, &address, token).await?;
    }
    if let Some(token) = &whatsapp_token {
        keep_whatsapp_token(deps, &who.workspace, &address, token).await?;
    }
    // The bot's own credentials first: once the account is connected its updates are taken, and
    // they must verify.
    let registered = match token {
        Some(token) => Some(register_bot(deps, &who.workspace, &address, &token).await?),
        None => None,
    };
    if before.as_ref() == Some(&account) {
        if registered == Some(Registered::New) || twilio.is_some() || page_token.is_some() || whatsapp_token.is_some() {
            let what = match (&twilio, &page_token, &whatsapp_token) {
                (Some(t), _, _) => format!("twilio account {} stored", t.account_sid),
                (None, Some(_), _) => "page access token stored".into(),
                (None, None, Some(_)) => "whatsapp access token stored".into(),
                (None, None, None) => "telegram bot token replaced".into(),
            };
            let details = serde_json::json!({ "account": account, "credentials": what });
            api::record_workspace_change(&*deps.api.store, &who, "channel_credentials_replaced", details).await?;
        }
        return Ok(json(200, &api::ChannelBody { channel: account }));
    }
    if !deps.api.store.connect_channel_account(&account).await? {
        return Err(ApiError::Conflict(format!("{channel} {address} is connected to another workspace")));
    }
    let (status, action) = if before.is_some() { (200, "channel_updated") } else { (201, "channel_connected") };
    let mut details = serde_json::json!({ "before": before, "after": account });
    if registered == Some(Registered::New) {
        details["credentials"] = "telegram bot token stored".into();
    }
    if let Some(t) = &twilio {
        details["credentials"] = format!("twilio account {} stored", t.account_sid).into();
    }
    if page_token.is_some() {
        details["credentials"] = "page access token stored".into();
    }
    if whatsapp_token.is_some() {
        details["credentials"] = "whatsapp access token stored".into();
    }
    api::record_workspace_change(&*deps.api.store, &who, action, details).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, %channel, action, "channel account saved");
    Ok(json(status, &api::ChannelBody { channel: account }))
}

/// The credential wiring, or 422 on a stack that keeps no workspace credentials.
fn bots(deps: &Deps) -> Result<&Bots, ApiError> {
    deps.bots.as_ref().ok_or_else(|| {
        ApiError::Unprocessable("this stack keeps no workspace credentials (its CREDENTIALS_PREFIX is not set)".into())
    })
}

/// A provider refusing credentials is the admin's to fix (422); not answering, a retry (503).
fn provider_answer(e: BotApiError) -> ApiError {
    match e {
        BotApiError::Refused(m) => ApiError::Unprocessable(m),
        BotApiError::Unavailable(m) => ApiError::Unavailable(m.into()),
    }
}

fn vault_answer(e: domain::ports::VaultError) -> ApiError {
    ApiError::Unavailable(Box::new(e))
}

/// Checks a workspace's own Twilio account with Twilio, then keeps it for the number.
async fn keep_twilio_account(
    deps: &Deps,
    ws: &domain::WorkspaceId,
    number: &str,
    account: &TwilioAccount,
) -> Result<(), ApiError> {
    let bots = bots(deps)?;
    bots.twilio.check(account).await.map_err(provider_answer)?;
    bots.vault.put(&CredentialKey::twilio(number), ws, &account.secret()).await.map_err(vault_answer)?;
    tracing::info!(workspace = %ws, account = %account.account_sid, "twilio account stored for a number");
    Ok(())
}

/// Checks a Page access token with Meta, then keeps it for the Page (or Instagram account).
async fn keep_page_token(deps: &Deps, ws: &domain::WorkspaceId, page: &str, token: &str) -> Result<(), ApiError> {
    let bots = bots(deps)?;
    bots.pages.check(page, token).await.map_err(provider_answer)?;
    bots.vault
        .put(&CredentialKey::meta(page), ws, &domain::credentials::page_secret(token))
        .await
        .map_err(vault_answer)?;
    tracing::info!(workspace = %ws, "page access token stored");
    Ok(())
}

/// Checks a WhatsApp Business Account's access token with Meta (it must reach the number), then
/// keeps it for the number.
async fn keep_whatsapp_token(deps: &Deps, ws: &domain::WorkspaceId, number: &str, token: &str) -> Result<(), ApiError> {
    let bots = bots(deps)?;
    bots.whatsapp.check(number, token).await.map_err(provider_answer)?;
    bots.vault
        .put(&CredentialKey::whatsapp(number), ws, &domain::credentials::whatsapp_secret(token))
        .await
        .map_err(vault_answer)?;
    tracing::info!(workspace = %ws, "whatsapp access token stored");
    Ok(())
}

/// Keeps a workspace bot's token with a webhook secret and registers the webhook with Telegram.
async fn register_bot(deps: &Deps, ws: &domain::WorkspaceId, bot: &str, token: &str) -> Result<Registered, ApiError> {
    let bots = bots(deps)?;
    let random = api::credentials::random_32().map_err(|e| ApiError::Unavailable(Box::new(e)))?;
    let url = format!("{}/webhooks/telegram/{bot}", bots.public_base_url.trim_end_matches('/'));
    let outcome = app::credentials::register_telegram_bot(&*bots.vault, &*bots.webhooks, ws, bot, token, &url, &random)
        .await
        .map_err(|e| match e {
            CredentialsError::Telegram(e) => provider_answer(e),
            CredentialsError::Vault(v) => vault_answer(v),
        })?;
    tracing::info!(workspace = %ws, bot, new_secret = outcome == Registered::New, "telegram bot registered");
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{AuditLog, ChannelDirectory};
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    async fn put(
        deps: &Deps,
        ws: &str,
        role: Role,
        channel: &str,
        address: &str,
        body: &str,
    ) -> (u16, serde_json::Value) {
        let auth = bearer("s", ws, "ada", role);
        let path = format!("/channels/{channel}/{address}");
        let req = kit::apigw::test_request(
            "PUT",
            "/channels/{channel}/{address}",
            &path,
            &[("channel", channel), ("address", address)],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        let res = handle(deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    #[tokio::test]
    async fn admins_connect_numbers_and_widgets_once_and_never_anothers() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps::new(api::Deps::new(store.clone(), Authenticator::new("s")), &["acme.example"]);
        let acme = WorkspaceId::parse("acme").unwrap();
        let (status, v) = put(&deps, "acme", Role::Admin, "sms", "+1 415 555 0100", "").await;
        assert_eq!((status, v["channel"]["address"].as_str()), (201, Some("+14155550100")));
        assert_eq!(put(&deps, "acme", Role::Admin, "sms", "+14155550100", "").await.0, 200, "a retry");
        assert_eq!(store.audit_trail(&acme, None, 10, None).await.unwrap().items.len(), 1, "audited once");
        assert_eq!(put(&deps, "globex", Role::Admin, "sms", "+14155550100", "").await.0, 409);
        let owner = store.channel_account(Channel::Sms, "+14155550100").await.unwrap().unwrap();
        assert_eq!(owner.workspace, acme, "never taken over");

        let widget =
            r#"{"display_name": "Shop chat", "allowed_origins": ["https://Shop.Example/", "https://shop.example"]}"#;
        let (status, v) = put(&deps, "acme", Role::Admin, "webchat", "wk_acme_shop", widget).await;
        assert_eq!(status, 201);
        assert_eq!(v["channel"]["allowed_origins"], serde_json::json!(["https://shop.example"]));

        for (channel, address, body, expected) in [
            ("sms", "+14155550101", r#"{"allowed_origins": ["https://shop.example"]}"#, 422),
            ("webchat", "wk_acme_shop", r#"{"allowed_origins": ["http://shop.example"]}"#, 422),
            ("whatsapp", "@acme", "", 422),
            ("fax", "123", "", 404),
            ("email", "support@acme.example", r#"{"name": "x"}"#, 400),
            ("email", "support@elsewhere.example", "", 422),
        ] {
            assert_eq!(put(&deps, "acme", Role::Admin, channel, address, body).await.0, expected, "{channel} {body}");
        }
        assert_eq!(put(&deps, "acme", Role::Supervisor, "sms", "+14155550102", "").await.0, 403);
    }
}
