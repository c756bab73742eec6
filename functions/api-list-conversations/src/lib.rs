//! GET /conversations — the inbox: a workspace's conversations with one status (default `open`),
//! optionally one assignee (`me`, `none`, an agent id, or `any`), most recent activity first.
//! Query: `status`, `assignee`, `limit` (1-100, default 25), `cursor` (from `next_cursor`).

use domain::ports::{AssigneeFilter, ConversationQuery, Cursor};
use domain::{AgentId, ConversationStatus};
use kit::http::{limit_param, page_response, query_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(list(deps, &req).await))
}

async fn list(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    let status = match query_param(req, "status") {
        None => ConversationStatus::Open,
        Some(s) => ConversationStatus::parse(&s)?,
    };
    let assignee = match query_param(req, "assignee").as_deref() {
        None | Some("any") => AssigneeFilter::Any,
        Some("none") => AssigneeFilter::Unassigned,
        Some("me") => AssigneeFilter::Agent(who.agent.clone()),
        Some(a) => AssigneeFilter::Agent(AgentId::parse(a)?),
    };
    let q = ConversationQuery {
        status,
        assignee,
        limit: limit_param(req, 25, 100)?,
        cursor: query_param(req, "cursor").map(Cursor),
    };
    let page = deps.store.conversations(&who.workspace, &q).await?;
    Ok(page_response(page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::WorkspaceId;
    use kit::auth::Authenticator;
    use std::sync::Arc;
    use store::contract::seed_conversation;
    use store::MemoryStore;

    fn get(uri: &str, token: &str) -> Request {
        let auth = format!("Bearer {token}");
        kit::apigw::test_request("GET", "/conversations", uri, &[], &[("authorization", &auth)], None)
    }

    fn token(ws: &str) -> String {
        kit::auth::issue_token(
            "s",
            &WorkspaceId::parse(ws).unwrap(),
            &AgentId::parse("alice").unwrap(),
            None,
            kit::auth::Role::Agent,
            time::Duration::hours(1),
        )
    }

    #[tokio::test]
    async fn lists_only_the_callers_workspace_and_validates_filters() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        for i in 0..3 {
            seed_conversation(store.as_ref(), &ws, i, time::OffsetDateTime::now_utc()).await;
        }
        let deps = Deps::new(store, Authenticator::new("s"));
        let res = handle(&deps, get("/conversations?limit=2", &token("acme"))).await.unwrap();
        assert_eq!(res.status(), 200);
        let Body::Text(t) = res.body() else { panic!() };
        let v: serde_json::Value = serde_json::from_str(t).unwrap();
        assert_eq!(v["items"].as_array().unwrap().len(), 2);
        assert!(v["next_cursor"].is_string());

        let other = handle(&deps, get("/conversations", &token("globex"))).await.unwrap();
        let Body::Text(t) = other.body() else { panic!() };
        assert_eq!(serde_json::from_str::<serde_json::Value>(t).unwrap()["items"].as_array().unwrap().len(), 0);

        assert_eq!(handle(&deps, get("/conversations?status=closed", &token("acme"))).await.unwrap().status(), 400);
        assert_eq!(handle(&deps, get("/conversations?limit=0", &token("acme"))).await.unwrap().status(), 400);
        assert_eq!(handle(&deps, get("/conversations?cursor=zzz", &token("acme"))).await.unwrap().status(), 400);
        assert_eq!(handle(&deps, get("/conversations", "forged")).await.unwrap().status(), 401);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("demo").unwrap();
        let conv = domain::ConversationId::parse("01JD3XQ7Z9K2M4N6P8R0S2T4V6").unwrap();
        store::contract::seed_queued_reply(store.as_ref(), &ws, "+14155552671", Some(conv), None).await;
        let deps = Deps::new(store, Authenticator::new("fixture-jwt-secret"));
        let req = lambda_http::request::from_str(include_str!("../../../events/api-list-conversations/list-open.json"))
            .unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 200);
    }
}
