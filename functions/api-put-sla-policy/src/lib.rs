//! PUT /sla-policy — replaces the workspace's service levels, no deploy needed. Body (every field
//! optional, defaults otherwise; see GET /sla-policy): `{"enabled": true, "rules": [{"channel":
//! "whatsapp", "priority": "urgent", "first_response_secs": 600, "next_response_secs": 600,
//! "resolution_secs": 86400}], "counting": "business_hours" | "calendar", "warn_at_percent": 80,
//! "on_breach": [{"action": "raise_priority"}, {"action": "reroute", "team": "tier2"}]}`.
//! Supervisors and admins only; validated (targets 1 s to 90 days, one rule per channel and
//! priority, known teams); audited with the policy before and after. Clocks started from now on
//! use it (within a minute: the processor caches it); running clocks keep their due times.

use kit::auth::SUPERVISORS;
use kit::http::{json, json_body, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Inbox as Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(put(deps, &req).await))
}

#[utoipa::path(put, path = "/sla-policy", operation_id = "putSlaPolicy", tag = "service levels",
    request_body = domain::sla::Policy,
    responses((status = 200, body = api::SlaPolicyBody), (status = 422, body = kit::http::ErrorBody)))]
async fn put(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(SUPERVISORS)?;
    let policy: domain::sla::Policy = json_body(req, "the SLA policy (see GET /sla-policy)")?;
    policy.validate(&deps.store.teams(&who.workspace).await?).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let before = deps.store.sla_policy(&who.workspace).await?;
    deps.store.put_sla_policy(&who.workspace, &policy).await?;
    let details = serde_json::json!({ "before": before, "after": policy });
    api::record_workspace_change(&*deps.store, &who, "sla_policy_changed", details).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, "SLA policy saved");
    Ok(json(200, &api::SlaPolicyBody { policy }))
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
            "/sla-policy",
            "/sla-policy",
            &[],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        handle(deps, req).await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn supervisors_set_the_policy_and_the_change_is_audited() {
        let store = Arc::new(MemoryStore::new());
        let deps =
            Deps { store: store.clone(), auth: Authenticator::new("s"), notifications: Arc::new(MemoryQueue::new()) };
        let ws = WorkspaceId::parse("acme").unwrap();
        let body = r#"{"rules": [{"channel": "sms", "first_response_secs": 120}], "counting": "calendar", "warn_at_percent": 50, "on_breach": [{"action": "reroute"}]}"#;
        assert_eq!(put_req(&deps, Role::Supervisor, body).await, 200);
        let policy = store.sla_policy(&ws).await.unwrap();
        assert_eq!((policy.warn_at_percent, policy.rules.len()), (50, 1));
        let entry = &store.audit_trail(&ws, None, 5, None).await.unwrap().items[0];
        assert_eq!((entry.action.as_str(), entry.actor.as_str()), ("sla_policy_changed", "sue"));
        assert_eq!(entry.details["before"]["warn_at_percent"], 80);

        assert_eq!(put_req(&deps, Role::Agent, "{}").await, 403);
        assert_eq!(put_req(&deps, Role::Admin, r#"{"warn_at_percent": 5}"#).await, 422);
        assert_eq!(
            put_req(&deps, Role::Admin, r#"{"on_breach": [{"action": "reroute", "team": "ghosts"}]}"#).await,
            422
        );
        assert_eq!(put_req(&deps, Role::Admin, r#"{"rules": "fast"}"#).await, 400);
        assert_eq!(store.sla_policy(&ws).await.unwrap().warn_at_percent, 50, "refused changes store nothing");
    }
}
