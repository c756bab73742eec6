//! GET /privacy-policy — what the workspace masks in the text customers send before it is stored:
//! payment card numbers (Luhn-checked), IBANs (check digits verified) and its own named patterns.
//! Cards and IBANs by default. Supervisors and admins.

use kit::auth::SUPERVISORS;
use kit::http::{json, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(get(deps, &req).await))
}

#[utoipa::path(get, path = "/privacy-policy", operation_id = "getPrivacyPolicy", tag = "workspace",
    responses((status = 200, description = "The defaults until one was saved", body = api::PrivacyPolicyBody)))]
async fn get(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(SUPERVISORS)?;
    Ok(json(200, &api::PrivacyPolicyBody { policy: deps.store.privacy_policy(&who.workspace).await? }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Role;
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    #[tokio::test]
    async fn cards_and_ibans_by_default_for_supervisors() {
        let deps = Deps::new(Arc::new(MemoryStore::new()), Authenticator::new("s"));
        let req = |role| {
            let auth = bearer("s", "acme", "sue", role);
            kit::apigw::test_request(
                "GET",
                "/privacy-policy",
                "/privacy-policy",
                &[],
                &[("authorization", &auth)],
                None,
            )
        };
        let res = handle(&deps, req(Role::Supervisor)).await.unwrap();
        assert_eq!(res.status(), 200);
        let v = kit::apigw::json_of(&res);
        assert_eq!((v["policy"]["cards"].as_bool(), v["policy"]["ibans"].as_bool()), (Some(true), Some(true)));
        assert_eq!(handle(&deps, req(Role::Agent)).await.unwrap().status(), 403);
    }
}
