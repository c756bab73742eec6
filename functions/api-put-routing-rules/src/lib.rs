//! PUT /routing-rules — replaces the workspace's routing rules, no deploy needed. Body (every field
//! optional, defaults otherwise): `{"weights": {"live_chat": 150, "messaging": 100, "email": 50,
//! "voice": 100}, "skills": {"by_channel": {"whatsapp": ["whatsapp"]}, "keywords": {"refund":
//! "billing"}}, "team_by_channel": {"email": "billing"}, "default_capacity": 500, "hours": {...},
//! "after_hours_message": "...", "csat": {"enabled": true, "question"?: "..."}, "nps": {"enabled":
//! false, "cadence_days": 90, "resolved_within_days": 90, "question"?: "..."}}`. Supervisors and admins only; validated against the workspace's
//! teams; audited with the rules before and after; waiting work the new rules open is assigned at once.

use domain::routing::RoutingRules;
use kit::auth::SUPERVISORS;
use kit::http::{json, json_body, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Inbox as Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(put(deps, &req).await))
}

#[utoipa::path(put, path = "/routing-rules", operation_id = "putRoutingRules", tag = "routing",
    request_body = RoutingRules,
    responses((status = 200, body = RulesSaved), (status = 422, body = kit::http::ErrorBody)))]
async fn put(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(SUPERVISORS)?;
    let rules: RoutingRules = json_body(req, "the routing rules (see GET /routing-rules)")?;
    rules.validate(&deps.store.teams(&who.workspace).await?).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let before = deps.store.routing_rules(&who.workspace).await?;
    deps.store.put_routing_rules(&who.workspace, &rules).await?;
    let details = serde_json::json!({ "before": before, "after": rules });
    let assigned = api::after_admin_change(deps, &who, "rules_changed", details).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, "routing rules saved");
    Ok(json(200, &RulesSaved { rules, assigned: assigned.len() }))
}

/// The rules saved, and how many waiting conversations flowed to agents after them.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RulesSaved {
    pub rules: RoutingRules,
    pub assigned: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{AuditLog, RoutingStore};
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use queue::memory::MemoryQueue;
    use std::sync::Arc;
    use store::MemoryStore;

    async fn put_req(deps: &Deps, role: Role, body: &str) -> u16 {
        let auth = bearer("s", "acme", "sue", role);
        let req = kit::apigw::test_request(
            "PUT",
            "/routing-rules",
            "/routing-rules",
            &[],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        handle(deps, req).await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn supervisors_change_rules_and_the_change_is_audited() {
        let store = Arc::new(MemoryStore::new());
        let deps =
            Deps { store: store.clone(), auth: Authenticator::new("s"), notifications: Arc::new(MemoryQueue::new()) };
        let ws = WorkspaceId::parse("acme").unwrap();
        let body = r#"{"weights": {"live_chat": 200, "messaging": 100, "email": 25, "voice": 100}, "skills": {"by_channel": {}, "keywords": {"refund": "billing"}}, "default_capacity": 800}"#;
        assert_eq!(put_req(&deps, Role::Supervisor, body).await, 200);
        let rules = store.routing_rules(&ws).await.unwrap();
        assert_eq!((rules.weights.live_chat, rules.default_capacity), (200, 800));
        let entry = &store.audit_trail(&ws, None, 5, None).await.unwrap().items[0];
        assert_eq!((entry.action.as_str(), entry.actor.as_str()), ("rules_changed", "sue"));
        assert_eq!(entry.details["before"]["default_capacity"], 500);

        assert_eq!(put_req(&deps, Role::Agent, "{}").await, 403);
        assert_eq!(put_req(&deps, Role::Admin, r#"{"team_by_channel": {"email": "ghosts"}}"#).await, 422);
        assert_eq!(
            put_req(&deps, Role::Admin, r#"{"weights": {"live_chat": 0, "messaging": 1, "email": 1, "voice": 1}}"#)
                .await,
            422
        );
        assert_eq!(put_req(&deps, Role::Admin, r#"{"weights": "heavy"}"#).await, 400);
        assert_eq!(store.routing_rules(&ws).await.unwrap().default_capacity, 800, "refused changes store nothing");
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let deps = Deps {
            store: Arc::new(MemoryStore::new()),
            auth: Authenticator::new("fixture-jwt-secret"),
            notifications: Arc::new(MemoryQueue::new()),
        };
        let req =
            lambda_http::request::from_str(include_str!("../../../events/api-put-routing-rules/put.json")).unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.body());
    }
}
