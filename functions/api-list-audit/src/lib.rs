//! GET /audit — who did what, when: `?conversation=<id>` gives that conversation's trail (routing,
//! assignments, transfers with their notes, status changes, tags, notes) to anyone who works the
//! inbox; without it, the workspace's trail (agents, teams, routing rules) to supervisors and
//! admins. Oldest first. Query: `conversation`, `limit` (1-100, default 50), `cursor`.

use domain::ports::Cursor;
use domain::ConversationId;
use kit::auth::{INBOX, SUPERVISORS};
use kit::http::{limit_param, page_response, query_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(list(deps, &req).await))
}

#[utoipa::path(get, path = "/audit", operation_id = "listAudit", tag = "workspace",
    params(("conversation" = Option<String>, Query, description = "One conversation's trail (agents); without it the workspace's (supervisors, admins)"),
           ("limit" = Option<u16>, Query, description = "1-100, default 50"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "Newest first", body = kit::http::PageBody<domain::audit::AuditEntry>), (status = 404, body = kit::http::ErrorBody)))]
async fn list(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    let limit = limit_param(req, 50, 100)?;
    let cursor = query_param(req, "cursor").map(Cursor);
    let conversation = match query_param(req, "conversation") {
        Some(raw) => {
            who.require(INBOX)?;
            let id = ConversationId::parse(&raw).map_err(|e| ApiError::NotFound(e.to_string()))?;
            deps.store
                .conversation(&who.workspace, id)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no conversation {id}")))?;
            Some(id)
        }
        None => {
            who.require(SUPERVISORS)?;
            None
        }
    };
    Ok(page_response(deps.store.audit_trail(&who.workspace, conversation, limit, cursor.as_ref()).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::audit::AuditEntry;
    use domain::ports::AuditLog;
    use domain::{AgentId, Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::contract::seed_conversation;
    use store::MemoryStore;

    fn get(ws: &str, role: Role, query: &str) -> Request {
        let auth = bearer("s", ws, "alice", role);
        kit::apigw::test_request("GET", "/audit", &format!("/audit{query}"), &[], &[("authorization", &auth)], None)
    }

    fn items(res: Response<Body>) -> Vec<String> {
        let v = kit::apigw::json_of(&res);
        v["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect()
    }

    #[tokio::test]
    async fn conversation_trails_for_agents_workspace_trail_for_supervisors() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        let now = time::OffsetDateTime::now_utc();
        let (_, c) = seed_conversation(store.as_ref(), &ws, 1, now).await;
        let sue = AgentId::parse("sue").unwrap();
        for (conv, action) in [(Some(c.id), "assigned"), (Some(c.id), "resolved"), (None, "rules_changed")] {
            let at = now + time::Duration::milliseconds(if action == "resolved" { 5 } else { 0 });
            store
                .record_audit(&AuditEntry::new(ws.clone(), conv, sue.clone(), action, serde_json::Value::Null, at))
                .await
                .unwrap();
        }
        let deps = Deps::new(store, Authenticator::new("s"));
        let q = format!("?conversation={}", c.id);
        assert_eq!(items(handle(&deps, get("acme", Role::Agent, &q)).await.unwrap()), ["assigned", "resolved"]);
        assert_eq!(items(handle(&deps, get("acme", Role::Supervisor, "")).await.unwrap()), ["rules_changed"]);
        assert_eq!(handle(&deps, get("acme", Role::Agent, "")).await.unwrap().status(), 403);
        assert_eq!(handle(&deps, get("acme", Role::Finance, &q)).await.unwrap().status(), 403);
        assert_eq!(handle(&deps, get("globex", Role::Agent, &q)).await.unwrap().status(), 404);
        assert_eq!(handle(&deps, get("acme", Role::Agent, "?conversation=nope")).await.unwrap().status(), 404);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let deps = Deps::new(Arc::new(MemoryStore::new()), Authenticator::new("fixture-jwt-secret"));
        let req =
            lambda_http::request::from_str(include_str!("../../../events/api-list-audit/workspace.json")).unwrap();
        assert_eq!(handle(&deps, req).await.unwrap().status(), 200);
    }
}
