//! GET /teams — the workspace's teams with their business hours.

use kit::auth::INBOX;
use kit::http::{json, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(list(deps, &req).await))
}

#[utoipa::path(get, path = "/teams", operation_id = "listTeams", tag = "routing",
    responses((status = 200, body = kit::http::Items<domain::routing::Team>)))]
async fn list(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    Ok(json(200, &kit::http::Items { items: deps.store.teams(&who.workspace).await? }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::RoutingStore;
    use domain::routing::Team;
    use domain::{Role, TeamId, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    #[tokio::test]
    async fn lists_the_callers_teams_only() {
        let store = Arc::new(MemoryStore::new());
        let team = |id: &str| Team { id: TeamId::parse(id).unwrap(), name: id.into(), hours: None };
        store.put_team(&WorkspaceId::parse("acme").unwrap(), &team("billing")).await.unwrap();
        store.put_team(&WorkspaceId::parse("globex").unwrap(), &team("sales")).await.unwrap();
        let deps = Deps::new(store, Authenticator::new("s"));
        let req = |role| {
            let auth = bearer("s", "acme", "alice", role);
            kit::apigw::test_request("GET", "/teams", "/teams", &[], &[("authorization", &auth)], None)
        };
        let res = handle(&deps, req(Role::Agent)).await.unwrap();
        let v = kit::apigw::json_of(&res);
        assert_eq!(
            v["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect::<Vec<_>>(),
            ["billing"]
        );
        assert_eq!(handle(&deps, req(Role::Finance)).await.unwrap().status(), 403);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let deps = Deps::new(Arc::new(MemoryStore::new()), Authenticator::new("fixture-jwt-secret"));
        let req = lambda_http::request::from_str(include_str!("../../../events/api-list-teams/list.json")).unwrap();
        assert_eq!(handle(&deps, req).await.unwrap().status(), 200);
    }
}
