//! GET /conversations/{id}/notes — a conversation's internal notes, oldest first (merge them with
//! the messages by time for a timeline). Query: `limit` (1-100, default 50), `cursor`.

use domain::ports::Cursor;
use domain::ConversationId;
use kit::auth::INBOX;
use kit::http::{limit_param, page_response, path_param, query_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(list(deps, &req).await))
}

#[utoipa::path(get, path = "/conversations/{id}/notes", operation_id = "listNotes", tag = "conversations",
    params(("id" = String, Path, description = "The conversation"),
           ("limit" = Option<u16>, Query, description = "1-100, default 50"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = kit::http::PageBody<domain::inbox::Note>), (status = 404, body = kit::http::ErrorBody)))]
async fn list(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let id = path_param(req, "id", ConversationId::parse)?;
    let limit = limit_param(req, 50, 100)?;
    let cursor = query_param(req, "cursor").map(Cursor);
    deps.store
        .conversation(&who.workspace, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no conversation {id}")))?;
    Ok(page_response(deps.store.notes(&who.workspace, id, limit, cursor.as_ref()).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::audit::AuditEntry;
    use domain::inbox::Note;
    use domain::ports::NoteStore;
    use domain::{AgentId, IdempotencyKey, Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::contract::seed_conversation;
    use store::MemoryStore;

    fn get(conv: ConversationId, ws: &str, role: Role, query: &str) -> Request {
        let auth = bearer("s", ws, "alice", role);
        let id = conv.to_string();
        kit::apigw::test_request(
            "GET",
            "/conversations/{id}/notes",
            &format!("/conversations/{id}/notes{query}"),
            &[("id", &id)],
            &[("authorization", &auth)],
            None,
        )
    }

    #[tokio::test]
    async fn notes_page_oldest_first_within_the_workspace() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        let now = time::OffsetDateTime::now_utc();
        let (_, c) = seed_conversation(store.as_ref(), &ws, 1, now).await;
        let alice = AgentId::parse("alice").unwrap();
        for i in 0..3i64 {
            let at = now + time::Duration::seconds(i);
            let n = Note::new(ws.clone(), c.id, alice.clone(), &format!("note {i}"), at).unwrap();
            let audit =
                AuditEntry::new(ws.clone(), Some(c.id), alice.clone(), "note_added", serde_json::Value::Null, at);
            store.add_note(&n, &audit, &IdempotencyKey::parse(&format!("k{i}")).unwrap()).await.unwrap();
        }
        let deps = Deps::new(store, Authenticator::new("s"));
        let res = handle(&deps, get(c.id, "acme", Role::Agent, "?limit=2")).await.unwrap();
        let v = kit::apigw::json_of(&res);
        assert_eq!(v["items"][0]["text"], "note 0");
        assert_eq!(v["items"].as_array().unwrap().len(), 2);
        let next = v["next_cursor"].as_str().unwrap();
        let res = handle(&deps, get(c.id, "acme", Role::Agent, &format!("?cursor={next}"))).await.unwrap();
        let v = kit::apigw::json_of(&res);
        assert_eq!(v["items"][0]["text"], "note 2");
        assert_eq!(handle(&deps, get(c.id, "globex", Role::Agent, "")).await.unwrap().status(), 404);
        assert_eq!(handle(&deps, get(c.id, "acme", Role::Finance, "")).await.unwrap().status(), 403);
        assert_eq!(handle(&deps, get(c.id, "acme", Role::Agent, "?cursor=zz")).await.unwrap().status(), 400);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("demo").unwrap();
        let conv = ConversationId::parse("01JD3XQ7Z9K2M4N6P8R0S2T4V6").unwrap();
        store::contract::seed_queued_reply(store.as_ref(), &ws, "+14155552671", Some(conv), None).await;
        let deps = Deps::new(store, Authenticator::new("fixture-jwt-secret"));
        let req = lambda_http::request::from_str(include_str!("../../../events/api-list-notes/list.json")).unwrap();
        assert_eq!(handle(&deps, req).await.unwrap().status(), 200);
    }
}
