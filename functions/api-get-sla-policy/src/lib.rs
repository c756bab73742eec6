//! GET /sla-policy — the workspace's service levels: targets (seconds) per channel and priority for
//! first response, next response and resolution, how time is counted (business hours or calendar),
//! the warning threshold and what a breach does. The defaults when none was saved.

use kit::auth::INBOX;
use kit::http::{json, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(get(deps, &req).await))
}

#[utoipa::path(get, path = "/sla-policy", operation_id = "getSlaPolicy", tag = "service levels",
    responses((status = 200, description = "The defaults until a policy was saved", body = api::SlaPolicyBody)))]
async fn get(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    Ok(json(200, &api::SlaPolicyBody { policy: deps.store.sla_policy(&who.workspace).await? }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Role;
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    #[tokio::test]
    async fn the_defaults_until_a_policy_is_saved() {
        let deps = Deps::new(Arc::new(MemoryStore::new()), Authenticator::new("s"));
        let req = |role| {
            let auth = bearer("s", "acme", "alice", role);
            kit::apigw::test_request("GET", "/sla-policy", "/sla-policy", &[], &[("authorization", &auth)], None)
        };
        let res = handle(&deps, req(Role::Agent)).await.unwrap();
        assert_eq!(res.status(), 200);
        let v = kit::apigw::json_of(&res);
        assert_eq!(v["policy"]["warn_at_percent"], 80);
        assert_eq!(v["policy"]["counting"], "business_hours");
        let webchat = v["policy"]["rules"].as_array().unwrap().iter().find(|r| r["channel"] == "webchat").unwrap();
        assert_eq!(webchat["first_response_secs"], 300);
        assert_eq!(handle(&deps, req(Role::Finance)).await.unwrap().status(), 403);
    }
}
