//! DELETE /channels/{channel}/{address} — an admin disconnects one of the workspace's channel
//! accounts: messages to it are no longer taken in (its webhooks answer as for an unknown
//! address) and a widget key stops opening chats. Conversations and history stay. 200 with the
//! account removed; 404 when the workspace does not hold it (a retry, or another workspace's).
//! Admins only; audited.
//!
//! What the workspace kept for the account goes first, while it is still connected (a failure is
//! a 503 that a retry finishes): its own Telegram bot is unregistered at Telegram
//! (`deleteWebhook`) and its token deleted, a Page's token deleted, and a number's own Twilio
//! account deleted once neither its SMS nor its voice is connected.

use std::sync::Arc;

use domain::ports::{CredentialVault, TelegramWebhooks};
use domain::Channel;
use kit::auth::ADMINS;
use kit::http::{json, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use store::Store;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub auth: kit::auth::Authenticator,
    /// Workspaces' own bots (`CREDENTIALS_PREFIX`): unregistered when disconnected.
    pub bots: Option<(Arc<dyn CredentialVault>, Arc<dyn TelegramWebhooks>)>,
}

impl Deps {
    pub fn new(store: Arc<dyn Store>, auth: kit::auth::Authenticator) -> Self {
        Self { store, auth, bots: None }
    }

    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let api = api::Deps::from_config(config, aws).await?;
        let bots = match api::credentials::vault(config, aws) {
            Some(vault) => {
                let webhooks: Arc<dyn TelegramWebhooks> =
                    Arc::new(api::credentials::bot_api(config, api::credentials::http_client()?));
                Some((vault, webhooks))
            }
            None => None,
        };
        Ok(Self { store: api.store, auth: api.auth, bots })
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(disconnect(deps, &req).await))
}

#[utoipa::path(delete, path = "/channels/{channel}/{address}", operation_id = "disconnectChannel", tag = "workspace",
    params(("channel" = domain::Channel, Path, description = "The channel"),
           ("address" = String, Path, description = "The number (E.164), id, mailbox or widget key")),
    responses((status = 200, description = "The account removed", body = api::ChannelBody), (status = 404, body = kit::http::ErrorBody)))]
async fn disconnect(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(ADMINS)?;
    let channel = path_param(req, "channel", Channel::parse)?;
    let raw = path_param(req, "address", |a| Ok(a.to_owned()))?;
    let not_found = || ApiError::NotFound(format!("this workspace has no {channel} account {raw}"));
    let address = domain::workspace::parse_address(channel, &raw).map_err(|_| not_found())?;
    if let Some((vault, webhooks)) = &deps.bots {
        // The account's own credentials go first, while the account is still there: a failure
        // (503) leaves everything for a retry of this request to finish.
        let held = deps.store.channel_account(channel, &address).await?;
        if held.is_none_or(|a| a.workspace != who.workspace) {
            return Err(not_found());
        }
        forget_credentials(deps, &**vault, &**webhooks, &who.workspace, channel, &address)
            .await
            .map_err(ApiError::Unavailable)?;
    }
    let removed =
        deps.store.disconnect_channel_account(&who.workspace, channel, &address).await?.ok_or_else(not_found)?;
    let details = serde_json::json!({ "before": removed });
    api::record_workspace_change(&*deps.store, &who, "channel_disconnected", details).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, %channel, "channel account disconnected");
    Ok(json(200, &api::ChannelBody { channel: removed }))
}

/// Deletes what the workspace keeps for the account: a Telegram bot's webhook and token, a Page's
/// or a WhatsApp number's token, and a number's own Twilio account once neither its SMS nor its voice is connected.
async fn forget_credentials(
    deps: &Deps,
    vault: &dyn CredentialVault,
    webhooks: &dyn TelegramWebhooks,
    ws: &domain::WorkspaceId,
    channel: Channel,
    address: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use domain::credentials::CredentialKey;
    match channel {
        Channel::Telegram => {
            app::credentials::unregister_telegram_bot(vault, webhooks, address).await?;
        }
        Channel::Messenger | Channel::Instagram => vault.delete(&CredentialKey::meta(address)).await?,
        Channel::Whatsapp => vault.delete(&CredentialKey::whatsapp(address)).await?,
        Channel::Sms | Channel::Voice => {
            let other = if channel == Channel::Sms { Channel::Voice } else { Channel::Sms };
            if deps.store.channel_account(other, address).await?.is_none_or(|a| &a.workspace != ws) {
                vault.delete(&CredentialKey::twilio(address)).await?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{AuditLog, ChannelAccount, ChannelDirectory};
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    async fn delete(deps: &Deps, ws: &str, role: Role, address: &str) -> u16 {
        let auth = bearer("s", ws, "ada", role);
        let req = kit::apigw::test_request(
            "DELETE",
            "/channels/{channel}/{address}",
            &format!("/channels/sms/{address}"),
            &[("channel", "sms"), ("address", address)],
            &[("authorization", &auth)],
            None,
        );
        handle(deps, req).await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn admins_disconnect_their_own_accounts_only() {
        let store = Arc::new(MemoryStore::new());
        let acme = WorkspaceId::parse("acme").unwrap();
        store.put_channel_account(&ChannelAccount::new(acme.clone(), Channel::Sms, "+14155550100")).await.unwrap();
        let deps = Deps::new(store.clone(), Authenticator::new("s"));
        assert_eq!(delete(&deps, "globex", Role::Admin, "+14155550100").await, 404, "another workspace's");
        assert_eq!(delete(&deps, "acme", Role::Supervisor, "+14155550100").await, 403);
        assert!(store.channel_account(Channel::Sms, "+14155550100").await.unwrap().is_some());
        assert_eq!(delete(&deps, "acme", Role::Admin, "+14155550100").await, 200);
        assert!(store.channel_account(Channel::Sms, "+14155550100").await.unwrap().is_none());
        assert_eq!(delete(&deps, "acme", Role::Admin, "+14155550100").await, 404, "a retry finds nothing");
        let trail = store.audit_trail(&acme, None, 5, None).await.unwrap().items;
        assert_eq!(trail.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["channel_disconnected"]);
    }
}
