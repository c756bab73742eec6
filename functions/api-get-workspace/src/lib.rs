//! GET /workspace — the signed-in agent's workspace: its id, its settings as saved (absent fields
//! take the stack's defaults, shown under `defaults`) and where its other policies are managed.
//! Every role may read it (the console shows the name); only admins change it (PUT /workspace).

use kit::http::{json, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(get(deps, &req).await))
}

#[utoipa::path(get, path = "/workspace", operation_id = "getWorkspace", tag = "workspace",
    responses((status = 200, body = WorkspaceView)))]
async fn get(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    let settings = deps.store.workspace_settings(&who.workspace).await?;
    Ok(json(
        200,
        &WorkspaceView {
            workspace: who.workspace,
            settings,
            defaults: Defaults {
                help_text: domain::consent::DEFAULT_HELP_TEXT,
                max_sms_segments: domain::workspace::MAX_SMS_SEGMENTS,
            },
            managed_elsewhere: Elsewhere {
                business_hours_and_csat: "/routing-rules",
                service_levels: "/sla-policy",
                redaction: "/privacy-policy",
                channels: "/channels",
            },
        },
    ))
}

/// The workspace, its settings as saved, the defaults that apply where a setting is absent, and
/// where its other policies are managed.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct WorkspaceView {
    pub workspace: domain::WorkspaceId,
    pub settings: domain::workspace::Settings,
    pub defaults: Defaults,
    pub managed_elsewhere: Elsewhere,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Defaults {
    pub help_text: &'static str,
    pub max_sms_segments: u32,
}

/// The routes of the workspace's other policies.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Elsewhere {
    pub business_hours_and_csat: &'static str,
    pub service_levels: &'static str,
    pub redaction: &'static str,
    pub channels: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::WorkspaceStore;
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    #[tokio::test]
    async fn every_role_reads_its_own_workspace() {
        let store = Arc::new(MemoryStore::new());
        let acme = WorkspaceId::parse("acme").unwrap();
        let settings = domain::workspace::Settings { name: Some("Acme".into()), ..Default::default() };
        store.put_workspace_settings(&acme, &settings).await.unwrap();
        let deps = Deps::new(store, Authenticator::new("s"));
        for (ws, role, name) in [("acme", Role::Finance, Some("Acme")), ("globex", Role::Admin, None)] {
            let auth = bearer("s", ws, "sue", role);
            let req =
                kit::apigw::test_request("GET", "/workspace", "/workspace", &[], &[("authorization", &auth)], None);
            let res = handle(&deps, req).await.unwrap();
            assert_eq!(res.status(), 200);
            let v = kit::apigw::json_of(&res);
            assert_eq!(v["workspace"], ws);
            assert_eq!(v["settings"]["name"].as_str(), name, "nothing of another workspace");
            assert_eq!(v["defaults"]["max_sms_segments"], 10);
        }
    }
}
