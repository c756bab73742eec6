//! PUT /agents/{id} — an agent's routing profile: teams, skills and capacity (hundredths of a
//! conversation: 500 is five SMS conversations, or three live chats at weight 1.5 plus change).
//! Body: `{"teams": ["billing"], "skills": ["spanish"], "capacity": 500}`. Admins only. The agent's
//! presence and current load are kept; the change is audited and waiting work they now qualify for
//! flows to them at once. Roles (agent, supervisor, admin) are claims of the token the workspace's
//! identity provider issues, not stored here.

use std::collections::BTreeSet;

use domain::routing::{validate_profile, AgentState};
use domain::{AgentId, TeamId};
use kit::auth::ADMINS;
use kit::http::{json, json_body, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::Inbox as Deps;

const SHAPE: &str = r#"{"teams": ["<team id>"], "skills": ["..."], "capacity": <hundredths>}"#;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PutAgentRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    #[serde(default)]
    teams: BTreeSet<TeamId>,
    #[serde(default)]
    skills: BTreeSet<String>,
    capacity: u32,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(put(deps, &req).await))
}

#[utoipa::path(put, path = "/agents/{id}", operation_id = "putAgent", tag = "routing",
    params(("id" = String, Path, description = "The agent (as the identity provider names them)")),
    request_body = Draft,
    responses((status = 200, body = AgentSaved), (status = 422, body = kit::http::ErrorBody)))]
async fn put(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(ADMINS)?;
    let id = path_param(req, "id", AgentId::parse)?;
    if id == domain::audit::AuditEntry::system() {
        return Err(ApiError::Unprocessable("system is reserved".into()));
    }
    let draft: Draft = json_body(req, SHAPE)?;
    let current = deps.store.agent_states(&who.workspace, std::slice::from_ref(&id)).await?.into_iter().next();
    let agent = AgentState {
        id: id.clone(),
        presence: current.as_ref().map(|a| a.presence).unwrap_or_default(),
        teams: draft.teams,
        skills: draft.skills.iter().map(|s| s.trim().to_lowercase()).collect(),
        capacity: draft.capacity,
        load: current.as_ref().map_or(0, |a| a.load),
        last_assigned_at: current.as_ref().and_then(|a| a.last_assigned_at),
    };
    validate_profile(&agent, &deps.store.teams(&who.workspace).await?)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    deps.store.put_agent(&who.workspace, &agent).await?;
    let details =
        serde_json::json!({ "agent": id, "teams": agent.teams, "skills": agent.skills, "capacity": agent.capacity });
    let assigned = api::after_admin_change(deps, &who, "agent_changed", details).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, agent = %id, "agent profile saved");
    let stored =
        deps.store.agent_states(&who.workspace, std::slice::from_ref(&id)).await?.into_iter().next().unwrap_or(agent);
    Ok(json(200, &AgentSaved { agent: stored, assigned: assigned.len() }))
}

/// The agent's profile as stored, and how many waiting conversations flowed to agents after it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AgentSaved {
    pub agent: AgentState,
    pub assigned: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{AuditLog, RoutingStore};
    use domain::routing::{Presence, Team};
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use queue::memory::MemoryQueue;
    use std::sync::Arc;
    use store::contract::{seed_agent, seed_conversation};
    use store::MemoryStore;

    async fn put_req(deps: &Deps, agent: &str, role: Role, body: &str) -> (u16, serde_json::Value) {
        let auth = bearer("s", "acme", "ada", role);
        let req = kit::apigw::test_request(
            "PUT",
            "/agents/{id}",
            &format!("/agents/{agent}"),
            &[("id", agent)],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        let res = handle(deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    #[tokio::test]
    async fn an_admin_raises_capacity_and_the_queue_flows_in() {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(MemoryQueue::new());
        let deps = Deps { store: store.clone(), auth: Authenticator::new("s"), notifications: queue.clone() };
        let ws = WorkspaceId::parse("acme").unwrap();
        let now = time::OffsetDateTime::now_utc();
        store
            .put_team(&ws, &Team { id: TeamId::parse("billing").unwrap(), name: "Billing".into(), hours: None })
            .await
            .unwrap();
        seed_agent(store.as_ref(), &ws, "bob", 0, Presence::Online).await;
        let (_, c) = seed_conversation(store.as_ref(), &ws, 1, now).await;
        domain::routing::service::route_conversation(&*store, &*queue, &ws, c.id, now).await.unwrap();
        assert_eq!(store.waiting(&ws).await.unwrap().len(), 1, "bob has no capacity");

        let (status, body) =
            put_req(&deps, "bob", Role::Admin, r#"{"teams": ["billing"], "skills": ["Spanish"], "capacity": 300}"#)
                .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["agent"]["skills"], serde_json::json!(["spanish"]));
        assert_eq!(body["agent"]["presence"], "online", "presence is kept");
        assert_eq!(body["assigned"], 1, "the waiting conversation went to bob");
        assert_eq!(body["agent"]["load"], 100);
        let trail = store.audit_trail(&ws, None, 10, None).await.unwrap().items;
        assert_eq!(trail.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["agent_changed"]);

        assert_eq!(put_req(&deps, "bob", Role::Supervisor, r#"{"capacity": 1}"#).await.0, 403);
        assert_eq!(put_req(&deps, "bob", Role::Admin, r#"{"teams": ["sales"], "capacity": 1}"#).await.0, 422);
        assert_eq!(put_req(&deps, "bob", Role::Admin, r#"{"capacity": 100001}"#).await.0, 422);
        assert_eq!(put_req(&deps, "bob", Role::Admin, r#"{"teams": []}"#).await.0, 400);
        assert_eq!(put_req(&deps, "system", Role::Admin, r#"{"capacity": 1}"#).await.0, 422);
        let (status, body) = put_req(&deps, "carol", Role::Admin, r#"{"capacity": 500}"#).await;
        assert_eq!((status, body["agent"]["presence"].as_str()), (200, Some("offline")), "a new agent starts offline");
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("demo").unwrap();
        store
            .put_team(&ws, &Team { id: TeamId::parse("billing").unwrap(), name: "Billing".into(), hours: None })
            .await
            .unwrap();
        let deps =
            Deps { store, auth: Authenticator::new("fixture-jwt-secret"), notifications: Arc::new(MemoryQueue::new()) };
        let req = lambda_http::request::from_str(include_str!("../../../events/api-put-agent/put.json")).unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.body());
    }
}
