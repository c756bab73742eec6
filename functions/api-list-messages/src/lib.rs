//! GET /conversations/{id}/messages — the thread, each message with its channel and delivery status.
//! Query: `order` (`oldest` first, the default, or `newest`), `limit` (1-100, default 50), `cursor`.

use domain::ports::{Cursor, Order};
use domain::ConversationId;
use kit::http::{limit_param, page_response, path_param, query_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(list(deps, &req).await))
}

#[utoipa::path(get, path = "/conversations/{id}/messages", operation_id = "listMessages", tag = "conversations",
    params(("id" = String, Path, description = "The conversation"),
           ("order" = Option<String>, Query, description = "oldest (default) or newest first"),
           ("limit" = Option<u16>, Query, description = "1-100, default 50"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = kit::http::PageBody<domain::model::Message>), (status = 404, body = kit::http::ErrorBody)))]
async fn list(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    // Finance reads costs, never customers' messages.
    who.require(kit::auth::INBOX)?;
    let id = path_param(req, "id", ConversationId::parse)?;
    let order = match query_param(req, "order").as_deref() {
        None | Some("oldest") => Order::Oldest,
        Some("newest") => Order::Newest,
        Some(_) => return Err(ApiError::BadRequest("order must be oldest or newest".into())),
    };
    let limit = limit_param(req, 50, 100)?;
    // Checked first so a conversation of another workspace is a 404, not an empty list.
    if deps.store.conversation(&who.workspace, id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no conversation {id}")));
    }
    let cursor = query_param(req, "cursor").map(Cursor);
    let page = deps.store.messages(&who.workspace, id, order, limit, cursor.as_ref()).await?;
    Ok(page_response(page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{AgentId, WorkspaceId};
    use kit::auth::Authenticator;
    use std::sync::Arc;
    use store::contract::seed_conversation;
    use store::MemoryStore;

    fn req(uri: &str, id: &str, ws: &str) -> Request {
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
            "/conversations/{id}/messages",
            uri,
            &[("id", id)],
            &[("authorization", &auth)],
            None,
        )
    }

    #[tokio::test]
    async fn lists_messages_and_hides_other_workspaces() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        let (_, conv) = seed_conversation(store.as_ref(), &ws, 1, time::OffsetDateTime::now_utc()).await;
        let deps = Deps::new(store, Authenticator::new("s"));
        let id = conv.id.to_string();
        let uri = format!("/conversations/{id}/messages");
        let res = handle(&deps, req(&uri, &id, "acme")).await.unwrap();
        assert_eq!(res.status(), 200);
        let v = kit::apigw::json_of(&res);
        assert_eq!(v["items"][0]["channel"], "sms");
        assert_eq!(v["items"][0]["direction"], "inbound");
        assert_eq!(handle(&deps, req(&uri, &id, "globex")).await.unwrap().status(), 404);
        assert_eq!(handle(&deps, req(&format!("{uri}?order=sideways"), &id, "acme")).await.unwrap().status(), 400);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("demo").unwrap();
        let conv = domain::ConversationId::parse("01JD3XQ7Z9K2M4N6P8R0S2T4V6").unwrap();
        store::contract::seed_queued_reply(store.as_ref(), &ws, "+14155552671", Some(conv), None).await;
        let deps = Deps::new(store, Authenticator::new("fixture-jwt-secret"));
        let req =
            lambda_http::request::from_str(include_str!("../../../events/api-list-messages/list-oldest.json")).unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 200);
    }
}
