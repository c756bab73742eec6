//! POST /webhook-endpoints — subscribe an endpoint to events (admins). Body:
//! `{"url": "https://...", "events"?: ["conversation.created", ...], "description"?: "...", "enabled"?: true}`
//! (no `events`, or an empty list: every event). In AWS the URL must be https on a public address
//! (private, loopback and link-local ones are refused: 400). Answers 201 with the endpoint and its
//! signing secret (`whsec_...`), shown this once; audited without it.

use api::hooks::{endpoint_view, new_secret, Draft, HookAdmin, DRAFT_SHAPE};
use domain::hooks::Endpoint;
use kit::auth::ADMINS;
use kit::http::{json, json_body, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use time::OffsetDateTime;

pub use api::hooks::HookAdmin as Deps;

/// A workspace's endpoints at most: each event costs a delivery per endpoint.
pub const MAX_ENDPOINTS: usize = 20;

pub async fn handle(deps: &HookAdmin, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(create(deps, &req).await))
}

#[utoipa::path(post, path = "/webhook-endpoints", operation_id = "createWebhook", tag = "webhooks",
    request_body = api::hooks::Draft,
    responses((status = 201, description = "The endpoint and its secret, shown this once", body = api::hooks::EndpointWithSecret), (status = 409, body = kit::http::ErrorBody)))]
async fn create(deps: &HookAdmin, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(ADMINS)?;
    let draft: Draft = json_body(req, DRAFT_SHAPE)?;
    let url = draft
        .checked_url(deps.reach)?
        .ok_or_else(|| ApiError::BadRequest(format!("url is required: {DRAFT_SHAPE}")))?;
    let events = draft.event_types()?.unwrap_or_default();
    let description = draft.checked_description()?;
    if deps.store.endpoints(&who.workspace).await?.len() >= MAX_ENDPOINTS {
        return Err(ApiError::Conflict(format!("a workspace has at most {MAX_ENDPOINTS} webhook endpoints")));
    }
    let now = OffsetDateTime::now_utc();
    let secret = new_secret(now)?;
    let endpoint = Endpoint {
        id: domain::hooks::endpoint_id(ulid::Ulid::new()),
        workspace: who.workspace.clone(),
        url,
        description,
        events,
        enabled: draft.enabled.unwrap_or(true),
        secrets: vec![secret.clone()],
        created_at: now,
        updated_at: now,
        failing_since: None,
        last_success_at: None,
        disabled_reason: None,
        version: 1,
    };
    deps.store.put_endpoint(&endpoint, None).await?;
    let view = endpoint_view(&endpoint);
    let details = serde_json::to_value(&view).unwrap_or_default();
    api::record_workspace_change(&*deps.store, &who, "webhook_created", details).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, endpoint = %endpoint.id, "webhook endpoint created");
    Ok(json(201, &api::hooks::EndpointWithSecret { endpoint: view, secret: secret.key }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::hooks::Reach;
    use domain::ports::{AuditLog, HookStore};
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    async fn post(deps: &HookAdmin, role: Role, body: &str) -> (u16, serde_json::Value) {
        let auth = bearer("s", "acme", "alice", role);
        let req = kit::apigw::test_request(
            "POST",
            "/webhook-endpoints",
            "/webhook-endpoints",
            &[],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        let res = handle(deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    #[tokio::test]
    async fn an_admin_subscribes_a_public_https_endpoint_and_sees_its_secret_once() {
        let store = Arc::new(MemoryStore::new());
        let deps = HookAdmin { store: store.clone(), auth: Authenticator::new("s"), reach: Reach::Public };
        let (status, out) = post(
            &deps,
            Role::Admin,
            r#"{"url": "https://crm.example.com/hooks", "events": ["message.created", "conversation.resolved"]}"#,
        )
        .await;
        assert_eq!(status, 201, "{out}");
        let secret = out["secret"].as_str().unwrap();
        assert!(secret.starts_with("whsec_") && secret.len() > 40);
        assert_eq!(out["endpoint"]["events"], serde_json::json!(["conversation.resolved", "message.created"]));
        assert!(!out["endpoint"].to_string().contains(secret), "the view masks it");
        let ws = WorkspaceId::parse("acme").unwrap();
        let stored = store.endpoints(&ws).await.unwrap();
        assert_eq!(stored[0].secrets[0].key, secret);
        let audit = store.audit_trail(&ws, None, 10, None).await.unwrap().items;
        assert_eq!(audit[0].action, "webhook_created");
        assert!(!audit[0].details.to_string().contains(secret), "never in the audit trail");

        for (body, why) in [
            (r#"{"url": "http://crm.example.com/hooks"}"#, "https"),
            (r#"{"url": "https://169.254.169.254/latest"}"#, "private"),
            (r#"{"url": "https://localhost:8443/"}"#, "internal"),
            (r#"{"url": "https://crm.example.com/", "events": ["message.deleted"]}"#, "unknown event"),
            (r#"{"events": []}"#, "url is required"),
            (r#"{"url": "https://crm.example.com/", "secret": "mine"}"#, "unknown field"),
        ] {
            let (status, out) = post(&deps, Role::Admin, body).await;
            assert_eq!(status, 400, "{body}: {out}");
            assert!(out["error"]["message"].as_str().unwrap().contains(why), "{body}: {out}");
        }
        let (status, _) = post(&deps, Role::Supervisor, r#"{"url": "https://crm.example.com/"}"#).await;
        assert_eq!(status, 403);
    }
}
