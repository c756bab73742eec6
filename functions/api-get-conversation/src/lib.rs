//! GET /conversations/{id} — one conversation with its contact (every channel identity). A
//! conversation of another workspace is indistinguishable from a missing one: 404.

use domain::ConversationId;
use kit::http::{json, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(get(deps, &req).await))
}

#[utoipa::path(get, path = "/conversations/{id}", operation_id = "getConversation", tag = "conversations",
    params(("id" = String, Path, description = "The conversation")),
    responses((status = 200, body = ConversationWithContact), (status = 404, body = kit::http::ErrorBody)))]
async fn get(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    // Finance reads costs, never customers' messages.
    who.require(kit::auth::INBOX)?;
    let id = path_param(req, "id", ConversationId::parse)?;
    let conversation = deps
        .store
        .conversation(&who.workspace, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no conversation {id}")))?;
    let contact = deps.store.contact(&who.workspace, conversation.contact_id).await?;
    Ok(json(200, &ConversationWithContact { conversation, contact }))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ConversationWithContact {
    pub conversation: domain::model::Conversation,
    pub contact: Option<domain::model::Contact>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{AgentId, WorkspaceId};
    use kit::auth::Authenticator;
    use std::sync::Arc;
    use store::contract::seed_conversation;
    use store::MemoryStore;

    fn get_req(id: &str, ws: &str) -> Request {
        let t = kit::auth::issue_token(
            "s",
            &WorkspaceId::parse(ws).unwrap(),
            &AgentId::parse("alice").unwrap(),
            None,
            kit::auth::Role::Agent,
            time::Duration::hours(1),
        );
        let auth = format!("Bearer {t}");
        kit::apigw::test_request(
            "GET",
            "/conversations/{id}",
            &format!("/conversations/{id}"),
            &[("id", id)],
            &[("authorization", &auth)],
            None,
        )
    }

    #[tokio::test]
    async fn returns_the_conversation_and_contact_to_its_workspace_only() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        let (contact, conv) = seed_conversation(store.as_ref(), &ws, 1, time::OffsetDateTime::now_utc()).await;
        let deps = Deps::new(store, Authenticator::new("s"));
        let res = handle(&deps, get_req(&conv.id.to_string(), "acme")).await.unwrap();
        assert_eq!(res.status(), 200);
        let v = kit::apigw::json_of(&res);
        assert_eq!(v["conversation"]["id"], conv.id.to_string());
        assert_eq!(v["contact"]["id"], contact.id.to_string());
        assert_eq!(handle(&deps, get_req(&conv.id.to_string(), "globex")).await.unwrap().status(), 404);
        assert_eq!(handle(&deps, get_req("nope", "acme")).await.unwrap().status(), 404);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("demo").unwrap();
        let conv = domain::ConversationId::parse("01JD3XQ7Z9K2M4N6P8R0S2T4V6").unwrap();
        store::contract::seed_queued_reply(store.as_ref(), &ws, "+14155552671", Some(conv), None).await;
        let deps = Deps::new(store, Authenticator::new("fixture-jwt-secret"));
        let req =
            lambda_http::request::from_str(include_str!("../../../events/api-get-conversation/get.json")).unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 200);
    }
}
