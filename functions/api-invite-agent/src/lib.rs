//! POST /agents/invitations — an admin invites a person to the workspace: their sign-in is created
//! in the identity provider (Cognito emails a temporary password; the local stack's provider takes
//! the login it answers) with the role, and their routing profile (teams, capacity) is saved.
//! Body: `{"email": "ann@acme.example", "name"?: "Ann", "role"?: "agent", "teams"?: ["billing"],
//! "capacity"?: 300}`. 201 with the agent id they sign in as; 200 when the address was already
//! invited to this workspace (nothing changes: a retry); 409 when it signs in to another workspace;
//! 422 when the stack signs in through another issuer (invite people there). Audited.

use std::collections::BTreeSet;

use domain::ports::Invite;
use domain::routing::{validate_profile, AgentState, Presence};
use domain::{EmailAddress, Role, TeamId};
use kit::auth::ADMINS;
use kit::http::{json, json_body, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::AgentAdmin as Deps;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = InviteAgentRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    email: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    role: Role,
    #[serde(default)]
    teams: BTreeSet<TeamId>,
    /// Hundredths of a conversation (the routing rules' default when absent).
    #[serde(default)]
    capacity: Option<u32>,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(invite(deps, &req).await))
}

#[utoipa::path(post, path = "/agents/invitations", operation_id = "inviteAgent", tag = "routing",
    request_body = Draft,
    responses((status = 201, description = "Invited", body = InvitedBody), (status = 200, description = "Already invited (a retry)", body = InvitedBody),
              (status = 409, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn invite(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let store = &deps.api.store;
    let who = deps.api.auth.authenticate(req)?;
    who.require(ADMINS)?;
    let draft: Draft = json_body(req, r#"{"email", "name"?, "role"?, "teams"?, "capacity"?}"#)?;
    let email = EmailAddress::parse(&draft.email)?;
    let name = draft.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > 100) {
        return Err(ApiError::Unprocessable("name: at most 100 characters".into()));
    }
    let directory = deps.directory.as_deref().ok_or_else(api::no_directory)?;
    let capacity = match draft.capacity {
        Some(c) => c,
        None => store.routing_rules(&who.workspace).await?.default_capacity,
    };
    let profile =
        |id| AgentState { teams: draft.teams.clone(), ..AgentState::first_seen(id, Presence::Offline, capacity) };
    // Checked before the directory is touched: a bad team invites nobody.
    validate_profile(&profile(who.agent.clone()), &store.teams(&who.workspace).await?)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let invite = Invite { email: email.clone(), name, role: draft.role };
    let invited = directory.invite(&who.workspace, &invite).await.map_err(api::directory_error)?;
    let known = store.agents(&who.workspace).await?.into_iter().any(|a| a.id == invited.agent);
    if !known {
        store.put_agent(&who.workspace, &profile(invited.agent.clone())).await?;
    }
    if invited.created {
        let details =
            serde_json::json!({ "agent": invited.agent, "email": email, "role": draft.role, "teams": draft.teams });
        api::record_workspace_change(&**store, &who, "agent_invited", details).await?;
        tracing::info!(workspace = %who.workspace, by = %who.agent, agent = %invited.agent, "agent invited");
    }
    let status = if invited.created { 201 } else { 200 };
    Ok(json(status, &InvitedBody { agent: invited.agent, email, role: draft.role, created: invited.created }))
}

/// Who was invited: the agent id they sign in as.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct InvitedBody {
    pub agent: domain::AgentId,
    pub email: EmailAddress,
    pub role: Role,
    pub created: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use domain::ports::{AgentDirectory, AgentStore, DirectoryError, Invited};
    use domain::{AgentId, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use std::sync::Mutex;
    use store::MemoryStore;

    /// The directory's contract is tested against Cognito (moto) and the local provider in the
    /// end-to-end suites; this one records what the route asked.
    #[derive(Default)]
    struct Recorded(Mutex<Vec<(String, String)>>);

    #[async_trait]
    impl AgentDirectory for Recorded {
        async fn invite(&self, ws: &WorkspaceId, i: &Invite) -> Result<Invited, DirectoryError> {
            let mut seen = self.0.lock().unwrap();
            if seen.iter().any(|(w, e)| e == i.email.as_str() && w != ws.as_str()) {
                return Err(DirectoryError::Taken);
            }
            let created = !seen.iter().any(|(_, e)| e == i.email.as_str());
            seen.push((ws.to_string(), i.email.as_str().to_owned()));
            Ok(Invited { agent: AgentId::parse("u-1").unwrap(), created })
        }
        async fn set_enabled(&self, _: &WorkspaceId, _: &AgentId, _: bool) -> Result<bool, DirectoryError> {
            Ok(true)
        }
        async fn set_role(&self, _: &WorkspaceId, _: &AgentId, _: Role) -> Result<bool, DirectoryError> {
            Ok(true)
        }
    }

    async fn post(deps: &Deps, ws: &str, role: Role, body: &str) -> u16 {
        let auth = bearer("s", ws, "ada", role);
        let req = kit::apigw::test_request(
            "POST",
            "/agents/invitations",
            "/agents/invitations",
            &[],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        handle(deps, req).await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn admins_invite_once_and_never_into_two_workspaces() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps {
            api: api::Deps::new(store.clone(), Authenticator::new("s")),
            directory: Some(Arc::new(Recorded::default())),
        };
        let body = r#"{"email": "Ann@Acme.example", "name": "Ann", "capacity": 300}"#;
        assert_eq!(post(&deps, "acme", Role::Admin, body).await, 201);
        assert_eq!(post(&deps, "acme", Role::Admin, body).await, 200, "a retry");
        let ws = WorkspaceId::parse("acme").unwrap();
        let agents = store.agents(&ws).await.unwrap();
        assert_eq!((agents.len(), agents[0].capacity), (1, 300));
        assert_eq!(post(&deps, "globex", Role::Admin, body).await, 409);
        assert_eq!(post(&deps, "acme", Role::Supervisor, body).await, 403);
        assert_eq!(post(&deps, "acme", Role::Admin, r#"{"email": "b@acme.example", "teams": ["ghosts"]}"#).await, 422);
        assert_eq!(post(&deps, "acme", Role::Admin, r#"{"email": "not-an-address"}"#).await, 400);
        let none = Deps { api: api::Deps::new(store, Authenticator::new("s")), directory: None };
        assert_eq!(post(&none, "acme", Role::Admin, body).await, 422, "another issuer: invite there");
    }
}
