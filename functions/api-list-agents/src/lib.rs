//! GET /agents — the workspace's agents: presence, teams, skills, capacity and current load (both in
//! hundredths of a conversation), so agents can pick a colleague to transfer to and supervisors can
//! watch the floor.

use kit::auth::INBOX;
use kit::http::{json, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(list(deps, &req).await))
}

#[utoipa::path(get, path = "/agents", operation_id = "listAgents", tag = "routing",
    responses((status = 200, description = "Every agent with presence, teams, skills, capacity and load", body = kit::http::Items<domain::routing::AgentState>)))]
async fn list(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let agents = deps.store.agents(&who.workspace).await?;
    Ok(json(200, &kit::http::Items { items: agents }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::routing::Presence;
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::contract::seed_agent;
    use store::MemoryStore;

    #[tokio::test]
    async fn lists_the_callers_workspace_only() {
        let store = Arc::new(MemoryStore::new());
        seed_agent(store.as_ref(), &WorkspaceId::parse("acme").unwrap(), "bob", 500, Presence::Online).await;
        seed_agent(store.as_ref(), &WorkspaceId::parse("globex").unwrap(), "eve", 500, Presence::Online).await;
        let deps = Deps::new(store, Authenticator::new("s"));
        let req = |role| {
            let auth = bearer("s", "acme", "alice", role);
            kit::apigw::test_request("GET", "/agents", "/agents", &[], &[("authorization", &auth)], None)
        };
        let res = handle(&deps, req(Role::Agent)).await.unwrap();
        let v = kit::apigw::json_of(&res);
        assert_eq!(v["items"].as_array().unwrap().len(), 1);
        assert_eq!(v["items"][0]["id"], "bob");
        assert_eq!(handle(&deps, req(Role::Finance)).await.unwrap().status(), 403);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let deps = Deps::new(Arc::new(MemoryStore::new()), Authenticator::new("fixture-jwt-secret"));
        let req = lambda_http::request::from_str(include_str!("../../../events/api-list-agents/list.json")).unwrap();
        assert_eq!(handle(&deps, req).await.unwrap().status(), 200);
    }
}
