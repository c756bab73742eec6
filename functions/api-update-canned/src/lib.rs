//! PATCH /canned-responses/{id} — change a canned response's shortcut, title or body. Body (every
//! field optional, at least one): `{"shortcut"?: "/refund", "title"?: "...", "body"?: "..."}`.
//! Whoever may create a response in its scope may change it (workspace: supervisors and admins;
//! team: its members and supervisors; personal: the owner). The same checks as creating: a known,
//! closed template, a shortcut unique in its scope (409). The scope does not change: create the
//! response in the other scope instead. Audited with the fields before and after.

use domain::canned::{check_fields, parse_id, shortcut_taken, Shortcut};
use kit::auth::INBOX;
use kit::http::{json, json_body, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::Deps;

const SHAPE: &str = r#"{"shortcut"?: "/refund", "title"?: "...", "body"?: "..."}"#;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = UpdateCannedRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    #[serde(default)]
    shortcut: Option<Shortcut>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    body: Option<String>,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(update(deps, &req).await))
}

#[utoipa::path(patch, path = "/canned-responses/{id}", operation_id = "updateCanned", tag = "canned responses",
    params(("id" = String, Path, description = "The canned response")),
    request_body = Draft,
    responses((status = 200, body = CannedChanged), (status = 404, body = kit::http::ErrorBody), (status = 409, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn update(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let id = path_param(req, "id", parse_id)?;
    let draft: Draft = json_body(req, SHAPE)?;
    if draft.shortcut.is_none() && draft.title.is_none() && draft.body.is_none() {
        return Err(ApiError::BadRequest(format!("nothing to change: body must be {SHAPE}")));
    }
    let current = api::managed_canned_response(&*deps.store, &who, &id).await?;
    let mut next = current.clone();
    next.title =
        check_fields(draft.title.as_deref().unwrap_or(&current.title), draft.body.as_deref().unwrap_or(&current.body))?;
    if let Some(b) = draft.body {
        next.body = b;
    }
    if let Some(shortcut) = draft.shortcut {
        let all = deps.store.canned_responses(&who.workspace).await?;
        if let Some(taken) = shortcut_taken(&all, &current.scope, &shortcut, Some(&id)) {
            return Err(ApiError::Conflict(format!(
                "{} is already used in this scope by {}",
                taken.shortcut.as_str(),
                taken.id
            )));
        }
        next.shortcut = shortcut;
    }
    if next != current {
        deps.store.put_canned_response(&who.workspace, &next).await?;
        let details = serde_json::json!({ "id": id, "before": current, "after": next });
        api::record_workspace_change(&*deps.store, &who, "canned_response_changed", details).await?;
        tracing::info!(workspace = %who.workspace, by = %who.agent, id = %id, "canned response changed");
    }
    let changed = next != current;
    Ok(json(200, &CannedChanged { canned_response: next, changed }))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct CannedChanged {
    pub canned_response: domain::canned::CannedResponse,
    pub changed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::canned::{CannedResponse, Scope};
    use domain::ports::{AuditLog, CannedStore};
    use domain::{AgentId, Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    const REFUND: &str = "01JD3XQ7Z9K2M4N6P8R0S2T4V6";
    const THANKS: &str = "01JD3XQ7Z9K2M4N6P8R0S2T4V7";

    async fn world(ws: &str) -> (Deps, Arc<MemoryStore>, WorkspaceId) {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse(ws).unwrap();
        for (id, scope, shortcut) in [
            (REFUND, Scope::Workspace, "/refund"),
            (THANKS, Scope::Personal { agent: AgentId::parse("alice").unwrap() }, "/thanks"),
        ] {
            let r = CannedResponse {
                id: id.into(),
                scope,
                shortcut: Shortcut::parse(shortcut).unwrap(),
                title: "Title".into(),
                body: "Hello {{contact.first_name | there}}".into(),
            };
            store.put_canned_response(&ws, &r).await.unwrap();
        }
        (Deps::new(store.clone(), Authenticator::new("s")), store, ws)
    }

    async fn patch(deps: &Deps, who: (&str, Role), id: &str, body: &str) -> (u16, serde_json::Value) {
        let auth = bearer("s", "acme", who.0, who.1);
        let req = kit::apigw::test_request(
            "PATCH",
            "/canned-responses/{id}",
            &format!("/canned-responses/{id}"),
            &[("id", id)],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        let res = handle(deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    #[tokio::test]
    async fn owners_of_a_scope_change_its_responses_with_the_same_checks_as_creating() {
        let (deps, store, ws) = world("acme").await;
        let alice = ("alice", Role::Agent);
        let (status, out) = patch(&deps, alice, THANKS, r#"{"title": " Thank you ", "shortcut": "/ty"}"#).await;
        assert_eq!(status, 200, "{out}");
        assert_eq!(
            (out["canned_response"]["title"].as_str(), out["changed"].as_bool()),
            (Some("Thank you"), Some(true))
        );
        let stored = store.canned_response(&ws, THANKS).await.unwrap().unwrap();
        assert_eq!(stored.shortcut.as_str(), "/ty");
        let (_, again) = patch(&deps, alice, THANKS, r#"{"title": "Thank you"}"#).await;
        assert_eq!(again["changed"], false);
        assert_eq!(patch(&deps, ("bob", Role::Agent), THANKS, r#"{"title": "x"}"#).await.0, 403);
        assert_eq!(patch(&deps, alice, REFUND, r#"{"title": "x"}"#).await.0, 403, "workspace scope");
        let sue = ("sue", Role::Supervisor);
        assert_eq!(patch(&deps, sue, REFUND, r#"{"body": "Hi {{contact.shoe_size}}"}"#).await.0, 422);
        assert_eq!(patch(&deps, sue, REFUND, r#"{"title": ""}"#).await.0, 422);
        assert_eq!(patch(&deps, sue, REFUND, r#"{"shortcut": "refund"}"#).await.0, 400);
        assert_eq!(patch(&deps, sue, REFUND, r#"{}"#).await.0, 400);
        assert_eq!(patch(&deps, sue, REFUND, r#"{"scope": "team"}"#).await.0, 400);
        assert_eq!(patch(&deps, sue, "01JD3XQ7Z9K2M4N6P8R0S2T4V8", r#"{"title": "x"}"#).await.0, 404);
        assert_eq!(patch(&deps, sue, "nope", r#"{"title": "x"}"#).await.0, 404);
        let (status, out) = patch(&deps, sue, REFUND, r#"{"body": "Refund sent, {{agent.name}}"}"#).await;
        assert_eq!(status, 200, "{out}");
        let trail = store.audit_trail(&ws, None, 10, None).await.unwrap().items;
        assert_eq!(trail.iter().filter(|e| e.action == "canned_response_changed").count(), 2);
        assert_eq!(trail.last().unwrap().details["before"]["body"], "Hello {{contact.first_name | there}}");
    }

    #[tokio::test]
    async fn a_shortcut_stays_unique_in_its_scope() {
        let (deps, store, ws) = world("acme").await;
        let other = CannedResponse {
            id: "01JD3XQ7Z9K2M4N6P8R0S2T4V9".into(),
            scope: Scope::Workspace,
            shortcut: Shortcut::parse("/hello").unwrap(),
            title: "Hello".into(),
            body: "Hello".into(),
        };
        store.put_canned_response(&ws, &other).await.unwrap();
        let sue = ("sue", Role::Supervisor);
        assert_eq!(patch(&deps, sue, REFUND, r#"{"shortcut": "/hello"}"#).await.0, 409);
        assert_eq!(patch(&deps, sue, REFUND, r#"{"shortcut": "/refund"}"#).await.0, 200, "its own shortcut");
        // A personal response may share a workspace response's shortcut: scopes differ.
        assert_eq!(patch(&deps, ("alice", Role::Agent), THANKS, r#"{"shortcut": "/hello"}"#).await.0, 200);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let (deps, _, _) = world("demo").await;
        let deps = Deps::new(deps.store, Authenticator::new("fixture-jwt-secret"));
        let req =
            lambda_http::request::from_str(include_str!("../../../events/api-update-canned/retitle.json")).unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.body());
    }
}
