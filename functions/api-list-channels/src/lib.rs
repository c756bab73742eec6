//! GET /channels — every channel account the workspace has connected: SMS and voice numbers,
//! WhatsApp phone number ids, Pages, Instagram accounts, Telegram bots, mailboxes and web chat
//! widget keys (with their allowed origins). Supervisors and admins.

use kit::auth::SUPERVISORS;
use kit::http::{json, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(list(deps, &req).await))
}

#[utoipa::path(get, path = "/channels", operation_id = "listChannels", tag = "workspace",
    responses((status = 200, body = Channels)))]
async fn list(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(SUPERVISORS)?;
    let accounts = deps.store.channel_accounts(&who.workspace).await?;
    Ok(json(200, &Channels { channels: accounts }))
}

/// The workspace's channel accounts.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Channels {
    pub channels: Vec<domain::ports::ChannelAccount>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{ChannelAccount, ChannelDirectory};
    use domain::{Channel, Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    #[tokio::test]
    async fn supervisors_see_their_workspaces_accounts_only() {
        let store = Arc::new(MemoryStore::new());
        let acme = WorkspaceId::parse("acme").unwrap();
        let globex = WorkspaceId::parse("globex").unwrap();
        store.put_channel_account(&ChannelAccount::new(acme, Channel::Sms, "+14155550100")).await.unwrap();
        store.put_channel_account(&ChannelAccount::new(globex, Channel::Sms, "+14155550101")).await.unwrap();
        let deps = Deps::new(store, Authenticator::new("s"));
        let req = |role| {
            let auth = bearer("s", "acme", "sue", role);
            kit::apigw::test_request("GET", "/channels", "/channels", &[], &[("authorization", &auth)], None)
        };
        let res = handle(&deps, req(Role::Supervisor)).await.unwrap();
        assert_eq!(res.status(), 200);
        let v = kit::apigw::json_of(&res);
        assert_eq!(v["channels"].as_array().unwrap().len(), 1);
        assert_eq!(v["channels"][0]["address"], "+14155550100");
        assert_eq!(handle(&deps, req(Role::Agent)).await.unwrap().status(), 403);
    }
}
