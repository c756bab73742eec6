//! GET /canned-responses — the canned responses the caller may use (the workspace's, their teams',
//! their own), for the composer's autocomplete: `q` matches a shortcut prefix (`/ref`), then titles,
//! then bodies; within each, the caller's most used first. Without `q`, all of them by use.
//! Query: `q`, `limit` (1-50, default 10).

use kit::auth::INBOX;
use kit::http::{json, limit_param, query_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(list(deps, &req).await))
}

#[utoipa::path(get, path = "/canned-responses", operation_id = "listCanned", tag = "canned responses",
    params(("q" = Option<String>, Query, description = "Search shortcut, title and body (ranked: shortcut prefix, then use)"),
           ("limit" = Option<u16>, Query, description = "1-50, default 10")),
    responses((status = 200, description = "Best first", body = kit::http::Items<Hit>)))]
async fn list(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let limit = limit_param(req, 10, 50)?;
    let q = query_param(req, "q").unwrap_or_default();
    if q.chars().count() > 100 {
        return Err(ApiError::BadRequest("q is at most 100 characters".into()));
    }
    let responses = deps.store.canned_responses(&who.workspace).await?;
    let usage = deps.store.canned_usage(&who.workspace, &who.agent).await?;
    let teams = api::callers_teams(&*deps.store, &who).await?;
    let hits = domain::canned::search(&responses, &q, &who.agent, &teams, &usage, usize::from(limit));
    let items = hits
        .into_iter()
        .map(|r| Hit { uses: usage.get(&r.id).copied().unwrap_or(0), canned_response: r.clone() })
        .collect();
    Ok(json(200, &kit::http::Items { items }))
}

/// A canned response the caller may use, and how often they have.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Hit {
    pub canned_response: domain::canned::CannedResponse,
    pub uses: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::canned::{CannedResponse, Scope, Shortcut};
    use domain::ports::CannedStore;
    use domain::{AgentId, Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    fn canned(id: &str, scope: Scope, shortcut: &str, title: &str) -> CannedResponse {
        CannedResponse {
            id: id.into(),
            scope,
            shortcut: Shortcut::parse(shortcut).unwrap(),
            title: title.into(),
            body: "text".into(),
        }
    }

    async fn ids(deps: &Deps, agent: &str, query: &str) -> Vec<String> {
        let auth = bearer("s", "acme", agent, Role::Agent);
        let req = kit::apigw::test_request(
            "GET",
            "/canned-responses",
            &format!("/canned-responses{query}"),
            &[],
            &[("authorization", &auth)],
            None,
        );
        let res = handle(deps, req).await.unwrap();
        let v = kit::apigw::json_of(&res);
        v["items"].as_array().unwrap().iter().map(|i| i["canned_response"]["id"].as_str().unwrap().to_owned()).collect()
    }

    #[tokio::test]
    async fn ranked_by_this_agents_use_and_scoped() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        let alice = AgentId::parse("alice").unwrap();
        for r in [
            canned("r1", Scope::Workspace, "/refund", "Refund"),
            canned("r2", Scope::Workspace, "/refund-late", "Late refund"),
            canned("r3", Scope::Personal { agent: AgentId::parse("bob").unwrap() }, "/refund-bob", "Bob's"),
            canned("r4", Scope::Workspace, "/hello", "Greeting about a refund"),
        ] {
            store.put_canned_response(&ws, &r).await.unwrap();
        }
        for _ in 0..3 {
            store.record_canned_use(&ws, &alice, "r2").await.unwrap();
        }
        let deps = Deps::new(store, Authenticator::new("s"));
        assert_eq!(
            ids(&deps, "alice", "?q=/ref").await,
            ["r2", "r1", "r4"],
            "most used first, title matches last, bob's hidden"
        );
        assert_eq!(ids(&deps, "alice", "?q=greeting").await, ["r4"]);
        assert_eq!(ids(&deps, "bob", "?q=/ref").await, ["r3", "r1", "r2", "r4"], "bob's own, narrower scope first");
        assert_eq!(ids(&deps, "alice", "?limit=1").await, ["r2"]);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let deps = Deps::new(Arc::new(MemoryStore::new()), Authenticator::new("fixture-jwt-secret"));
        let req = lambda_http::request::from_str(include_str!("../../../events/api-list-canned/search.json")).unwrap();
        assert_eq!(handle(&deps, req).await.unwrap().status(), 200);
    }
}
