//! PUT /agents/{id}/access — an admin stops or restores an agent's sign-in, or changes their role,
//! in the identity provider. Body: `{"enabled"?: false, "role"?: "supervisor"}`. Disabling ends
//! their sessions at the provider (refresh tokens) and takes them offline, so routing gives them
//! nothing more; an ID token already issued lives out its hour. A role applies from their next
//! sign-in. 404 when the workspace has no such agent; 422 when the stack signs in through another
//! issuer. Admins only, never on themselves; audited.

use domain::routing::Presence;
use domain::{AgentId, Role};
use kit::auth::ADMINS;
use kit::http::{json, json_body, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::AgentAdmin as Deps;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = SetAgentAccessRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    role: Option<Role>,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(set(deps, &req).await))
}

#[utoipa::path(put, path = "/agents/{id}/access", operation_id = "setAgentAccess", tag = "routing",
    params(("id" = String, Path, description = "The agent")),
    request_body = Draft,
    responses((status = 200, body = Access), (status = 404, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn set(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let store = &deps.api.store;
    let who = deps.api.auth.authenticate(req)?;
    who.require(ADMINS)?;
    let id = path_param(req, "id", AgentId::parse)?;
    let draft: Draft = json_body(req, r#"{"enabled"?: bool, "role"?: "agent" | "supervisor" | "admin" | "finance"}"#)?;
    if draft.enabled.is_none() && draft.role.is_none() {
        return Err(ApiError::BadRequest("nothing to change: give enabled or role".into()));
    }
    if id == who.agent {
        return Err(ApiError::Unprocessable("admins cannot disable or demote themselves; ask another admin".into()));
    }
    let directory = deps.directory.as_deref().ok_or_else(api::no_directory)?;
    let not_found = || ApiError::NotFound(format!("this workspace has no agent {id}"));
    if let Some(role) = draft.role {
        if !directory.set_role(&who.workspace, &id, role).await.map_err(api::directory_error)? {
            return Err(not_found());
        }
    }
    if let Some(enabled) = draft.enabled {
        if !directory.set_enabled(&who.workspace, &id, enabled).await.map_err(api::directory_error)? {
            return Err(not_found());
        }
        if !enabled {
            let capacity = store.routing_rules(&who.workspace).await?.default_capacity;
            store
                .set_presence(&who.workspace, &id, Presence::Offline, capacity, time::OffsetDateTime::now_utc())
                .await?;
        }
    }
    let details = serde_json::json!({ "agent": id, "enabled": draft.enabled, "role": draft.role });
    api::record_workspace_change(&**store, &who, "agent_access_changed", details).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, agent = %id, "agent access changed");
    Ok(json(200, &Access { agent: id, enabled: draft.enabled, role: draft.role }))
}

/// What changed.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Access {
    pub agent: AgentId,
    pub enabled: Option<bool>,
    pub role: Option<Role>,
}
