//! POST /canned-responses — a canned response in one of three scopes. Body: `{"scope": "workspace"
//! | "team" | "personal", "team"?: "billing", "agent"?: "alice", "shortcut": "/refund", "title":
//! "...", "body": "Hi {{contact.first_name}}, ..."}`. Workspace responses are for supervisors and
//! admins, team ones for the team's members (and supervisors), personal ones for their owner (a
//! personal scope without `agent` is the caller's). The body's variables must be known and closed
//! (see `domain::canned`); a shortcut is unique within its scope (409 otherwise, so a retried create
//! never makes a second one).

use domain::canned::{check_fields, shortcut_taken, CannedResponse, Scope, Shortcut};
use kit::auth::INBOX;
use kit::http::{json, json_body, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::Deps;

const SHAPE: &str = r#"{"scope": "workspace" | "team" | "personal", "team"?: "...", "shortcut": "/refund", "title": "...", "body": "..."}"#;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = CreateCannedRequest)]
struct Draft {
    #[serde(flatten)]
    scope: Scope,
    shortcut: Shortcut,
    title: String,
    body: String,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(create(deps, &req).await))
}

#[utoipa::path(post, path = "/canned-responses", operation_id = "createCanned", tag = "canned responses",
    request_body = Draft,
    responses((status = 201, body = CannedBody), (status = 409, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn create(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    // A personal scope may leave out its agent: fill in the caller before the strict parse.
    let mut raw: serde_json::Value = json_body(req, SHAPE)?;
    if let Some(obj) = raw.as_object_mut().filter(|o| o.get("scope").and_then(|s| s.as_str()) == Some("personal")) {
        obj.entry("agent").or_insert_with(|| serde_json::json!(who.agent));
    }
    let draft: Draft =
        serde_json::from_value(raw).map_err(|e| ApiError::BadRequest(format!("body must be {SHAPE}: {e}")))?;
    let member_of = match &draft.scope {
        Scope::Team { .. } if !who.role.oversees() => api::callers_teams(&*deps.store, &who).await?,
        _ => vec![],
    };
    domain::canned::may_manage(&draft.scope, &who.agent, who.role, &member_of)?;
    let title = check_fields(&draft.title, &draft.body)?;
    let existing = deps.store.canned_responses(&who.workspace).await?;
    if let Some(taken) = shortcut_taken(&existing, &draft.scope, &draft.shortcut, None) {
        return Err(ApiError::Conflict(format!(
            "{} is already used in this scope by {}",
            taken.shortcut.as_str(),
            taken.id
        )));
    }
    let response = CannedResponse {
        id: ulid::Ulid::new().to_string(),
        scope: draft.scope,
        shortcut: draft.shortcut,
        title,
        body: draft.body,
    };
    deps.store.put_canned_response(&who.workspace, &response).await?;
    let details = serde_json::json!({ "id": response.id, "shortcut": response.shortcut, "scope": response.scope });
    api::record_workspace_change(&*deps.store, &who, "canned_response_created", details).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, id = %response.id, "canned response created");
    Ok(json(201, &CannedBody { canned_response: response }))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct CannedBody {
    pub canned_response: CannedResponse,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::routing::Presence;
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    async fn post(deps: &Deps, role: Role, body: &str) -> (u16, serde_json::Value) {
        let auth = bearer("s", "acme", "alice", role);
        let req = kit::apigw::test_request(
            "POST",
            "/canned-responses",
            "/canned-responses",
            &[],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        let res = handle(deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    #[tokio::test]
    async fn scopes_permissions_templates_and_unique_shortcuts() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        let mut alice = store::contract::seed_agent(store.as_ref(), &ws, "alice", 500, Presence::Online).await;
        alice.teams.insert(domain::TeamId::parse("billing").unwrap());
        domain::ports::AgentStore::put_agent(store.as_ref(), &ws, &alice).await.unwrap();
        let deps = Deps::new(store, Authenticator::new("s"));
        let refund = r#"{"scope": "workspace", "shortcut": "/refund", "title": "Refund", "body": "Hi {{contact.first_name | there}}, it is on its way."}"#;
        assert_eq!(post(&deps, Role::Agent, refund).await.0, 403);
        let (status, body) = post(&deps, Role::Supervisor, refund).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["canned_response"]["scope"]["scope"], "workspace");
        assert_eq!(post(&deps, Role::Supervisor, refund).await.0, 409, "a retry makes no second one");

        let team = r#"{"scope": "team", "team": "billing", "shortcut": "/refund", "title": "Refund (billing)", "body": "Refund issued."}"#;
        assert_eq!(post(&deps, Role::Agent, team).await.0, 201, "members add team responses; scopes differ");
        let other_team = r#"{"scope": "team", "team": "sales", "shortcut": "/deal", "title": "Deal", "body": "x"}"#;
        assert_eq!(post(&deps, Role::Agent, other_team).await.0, 403);
        let (status, body) = post(
            &deps,
            Role::Agent,
            r#"{"scope": "personal", "shortcut": "/ty", "title": "Thanks", "body": "Thanks!"}"#,
        )
        .await;
        assert_eq!((status, body["canned_response"]["scope"]["agent"].as_str()), (201, Some("alice")));
        let theirs = r#"{"scope": "personal", "agent": "bob", "shortcut": "/ty", "title": "T", "body": "T"}"#;
        assert_eq!(post(&deps, Role::Agent, theirs).await.0, 403);

        let unknown = r#"{"scope": "personal", "shortcut": "/x", "title": "X", "body": "Hi {{contact.nickname}}"}"#;
        let (status, body) = post(&deps, Role::Agent, unknown).await;
        assert_eq!(status, 422);
        assert!(body["error"]["message"].as_str().unwrap().contains("contact.nickname"));
        for bad in [
            r#"{"scope": "personal", "shortcut": "refund", "title": "X", "body": "x"}"#,
            r#"{"scope": "galaxy", "shortcut": "/x", "title": "X", "body": "x"}"#,
            r#"{"shortcut": "/x", "title": "X", "body": "x"}"#,
        ] {
            assert_eq!(post(&deps, Role::Agent, bad).await.0, 400, "{bad}");
        }
        assert_eq!(
            post(&deps, Role::Agent, r#"{"scope": "personal", "shortcut": "/y", "title": "", "body": "x"}"#).await.0,
            422
        );
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let deps = Deps::new(Arc::new(MemoryStore::new()), Authenticator::new("fixture-jwt-secret"));
        let req =
            lambda_http::request::from_str(include_str!("../../../events/api-create-canned/workspace.json")).unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 201, "{:?}", res.body());
    }
}
