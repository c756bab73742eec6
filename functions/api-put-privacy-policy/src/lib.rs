//! PUT /privacy-policy — replaces what the workspace masks in inbound text: `{"cards": true,
//! "ibans": true, "patterns": [{"name": "ssn", "regex": "\\b\\d{3}-\\d{2}-\\d{4}\\b"}]}`. Admins
//! only; patterns are checked (they compile, are at most 200 characters, never match empty text;
//! at most 20); audited with the policy before and after. Messages stored from then on are masked
//! (within a minute: the processor caches the workspace's settings); stored ones are redacted one by
//! one on demand (`POST /conversations/{id}/messages/{message_id}/redact`).

use kit::auth::ADMINS;
use kit::http::{json, json_body, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Inbox as Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(put(deps, &req).await))
}

#[utoipa::path(put, path = "/privacy-policy", operation_id = "putPrivacyPolicy", tag = "workspace",
    request_body = domain::redact::Policy,
    responses((status = 200, body = api::PrivacyPolicyBody), (status = 422, body = kit::http::ErrorBody)))]
async fn put(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(ADMINS)?;
    let policy: domain::redact::Policy = json_body(req, "the privacy policy (see GET /privacy-policy)")?;
    policy.validate().map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let before = deps.store.privacy_policy(&who.workspace).await?;
    deps.store.put_privacy_policy(&who.workspace, &policy).await?;
    let details = serde_json::json!({ "before": before, "after": policy });
    api::record_workspace_change(&*deps.store, &who, "privacy_policy_changed", details).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, "privacy policy saved");
    Ok(json(200, &api::PrivacyPolicyBody { policy }))
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
        let auth = bearer("s", "acme", "ada", role);
        let req = kit::apigw::test_request(
            "PUT",
            "/privacy-policy",
            "/privacy-policy",
            &[],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        handle(deps, req).await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn admins_set_patterns_checked_and_audited() {
        let store = Arc::new(MemoryStore::new());
        let deps =
            Deps { store: store.clone(), auth: Authenticator::new("s"), notifications: Arc::new(MemoryQueue::new()) };
        let ws = WorkspaceId::parse("acme").unwrap();
        let body = r#"{"ibans": false, "patterns": [{"name": "ssn", "regex": "\\b\\d{3}-\\d{2}-\\d{4}\\b"}]}"#;
        assert_eq!(put_req(&deps, Role::Admin, body).await, 200);
        let p = store.privacy_policy(&ws).await.unwrap();
        assert_eq!((p.cards, p.ibans, p.patterns.len()), (true, false, 1));
        let entry = &store.audit_trail(&ws, None, 5, None).await.unwrap().items[0];
        assert_eq!(entry.action, "privacy_policy_changed");
        assert_eq!(put_req(&deps, Role::Supervisor, "{}").await, 403);
        assert_eq!(put_req(&deps, Role::Admin, r#"{"patterns": [{"name": "x", "regex": "(bad"}]}"#).await, 422);
        assert_eq!(put_req(&deps, Role::Admin, r#"{"cards": "yes"}"#).await, 400);
    }
}
