//! GET /routing-rules — the workspace's routing rules: channel weights (hundredths), channel and
//! keyword skills, the team per channel, default capacity, workspace hours and the after-hours
//! message. The defaults when none were saved.

use kit::auth::INBOX;
use kit::http::{json, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(get(deps, &req).await))
}

#[utoipa::path(get, path = "/routing-rules", operation_id = "getRoutingRules", tag = "routing",
    responses((status = 200, description = "The defaults until rules were saved", body = RulesBody)))]
async fn get(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    Ok(json(200, &RulesBody { rules: deps.store.routing_rules(&who.workspace).await? }))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RulesBody {
    pub rules: domain::routing::RoutingRules,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Role;
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    #[tokio::test]
    async fn the_defaults_until_rules_are_saved() {
        let deps = Deps::new(Arc::new(MemoryStore::new()), Authenticator::new("s"));
        let req = |role| {
            let auth = bearer("s", "acme", "alice", role);
            kit::apigw::test_request("GET", "/routing-rules", "/routing-rules", &[], &[("authorization", &auth)], None)
        };
        let res = handle(&deps, req(Role::Agent)).await.unwrap();
        let v = kit::apigw::json_of(&res);
        assert_eq!(
            v["rules"]["weights"],
            serde_json::json!({ "live_chat": 150, "messaging": 100, "email": 50, "voice": 100 })
        );
        assert_eq!(v["rules"]["default_capacity"], 500);
        assert_eq!(handle(&deps, req(Role::Finance)).await.unwrap().status(), 403);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let deps = Deps::new(Arc::new(MemoryStore::new()), Authenticator::new("fixture-jwt-secret"));
        let req =
            lambda_http::request::from_str(include_str!("../../../events/api-get-routing-rules/get.json")).unwrap();
        assert_eq!(handle(&deps, req).await.unwrap().status(), 200);
    }
}
