//! POST /conversations/{id}/split — when threading put a new topic into an open conversation:
//! the chosen message and every later one move to a new conversation of the same contact.
//! Body: `{"from_message": "<message id>"}`.
//!
//! If the conversation was the contact's current one, the new conversation carries on the thread
//! (its owner, capacity share, queue place; the customer's next message lands there) and the old
//! one is resolved with the earlier messages. Only the owner (anyone while unowned), supervisors
//! and admins may split. 201 with `{"source", "conversation", "moved", "changed": true}`; the same
//! request again answers 200 with the same new conversation and `changed: false`. A message still
//! being sent cannot move yet (409: try again in a moment). `domain::reorg` holds the rules.

use domain::reorg::Reorg;
use domain::{ConversationId, MessageId};
use kit::auth::INBOX;
use kit::http::{json_body, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::Inbox as Deps;

const SHAPE: &str = r#"{"from_message": "<message id>"}"#;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = SplitConversationRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    from_message: String,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(split(deps, &req).await))
}

#[utoipa::path(post, path = "/conversations/{id}/split", operation_id = "splitConversation", tag = "conversations",
    params(("id" = String, Path, description = "The conversation")),
    request_body = Draft,
    responses((status = 201, description = "Split", body = api::ReorganisedBody), (status = 200, description = "Already split (a retry)", body = api::ReorganisedBody), (status = 404, body = kit::http::ErrorBody), (status = 409, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn split(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let id = path_param(req, "id", ConversationId::parse)?;
    let draft: Draft = json_body(req, SHAPE)?;
    let from = MessageId::parse(&draft.from_message)?;
    let done = api::reorganise(deps, &who, id, &Reorg::Split { from }).await?;
    Ok(api::reorganised_response(201, &done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::events::{ConversationChange, Notification};
    use domain::model::{ConversationStatus, Message};
    use domain::ports::{AuditLog, ConversationReader, Order};
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::contract::{append_inbound, seed_conversation};
    use store::MemoryStore;

    struct World {
        deps: Deps,
        store: Arc<MemoryStore>,
        queue: Arc<queue::memory::MemoryQueue>,
        ws: WorkspaceId,
    }

    fn world() -> World {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(queue::memory::MemoryQueue::new());
        let deps = Deps { store: store.clone(), auth: Authenticator::new("s"), notifications: queue.clone() };
        World { deps, store, queue, ws: WorkspaceId::parse("acme").unwrap() }
    }

    async fn post(w: &World, conv: ConversationId, as_: (&str, Role), body: &str) -> (u16, serde_json::Value) {
        let auth = bearer("s", w.ws.as_str(), as_.0, as_.1);
        let id = conv.to_string();
        let req = kit::apigw::test_request(
            "POST",
            "/conversations/{id}/split",
            &format!("/conversations/{id}/split"),
            &[("id", &id)],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        let res = handle(&w.deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    async fn three_messages(w: &World) -> (ConversationId, Vec<Message>) {
        let now = time::OffsetDateTime::now_utc();
        let (contact, c) = seed_conversation(w.store.as_ref(), &w.ws, 1, now).await;
        for i in 1..3 {
            append_inbound(w.store.as_ref(), &w.ws, &contact, c.id, now + time::Duration::seconds(i)).await;
        }
        let msgs = w.store.messages(&w.ws, c.id, Order::Oldest, 10, None).await.unwrap().items;
        (c.id, msgs)
    }

    #[tokio::test]
    async fn a_split_moves_the_later_messages_to_a_new_current_conversation_once() {
        let w = world();
        let (id, msgs) = three_messages(&w).await;
        let body = format!(r#"{{"from_message": "{}"}}"#, msgs[1].id);
        let (status, out) = post(&w, id, ("alice", Role::Agent), &body).await;
        assert_eq!(status, 201, "{out}");
        assert_eq!(out["moved"], 2);
        assert_eq!(out["source"]["status"], "resolved");
        assert_eq!(out["conversation"]["status"], "open");
        assert_eq!(out["conversation"]["split_from"], id.to_string());
        let new = ConversationId::parse(out["conversation"]["id"].as_str().unwrap()).unwrap();
        let moved = w.store.messages(&w.ws, new, Order::Oldest, 10, None).await.unwrap().items;
        assert_eq!(moved.iter().map(|m| m.id).collect::<Vec<_>>(), vec![msgs[1].id, msgs[2].id]);
        let source = w.store.conversation(&w.ws, id).await.unwrap().unwrap();
        assert_eq!((source.status, source.message_count), (ConversationStatus::Resolved, 1));
        let trail = w.store.audit_trail(&w.ws, Some(id), 10, None).await.unwrap().items;
        assert_eq!(trail.last().map(|e| e.action.as_str()), Some("split"));
        let events: Vec<Notification> =
            w.queue.sent().into_iter().map(|(_, _, body)| serde_json::from_value(body).unwrap()).collect();
        let split = |e: &Notification| matches!(e, Notification::ConversationChanged { conversation_id, change: ConversationChange::Split, .. } if *conversation_id == id);
        assert!(events.iter().any(split));
        assert!(events.iter().any(
            |e| matches!(e, Notification::ConversationChanged { conversation_id, .. } if *conversation_id == new)
        ));

        let (status, again) = post(&w, id, ("alice", Role::Agent), &body).await;
        assert_eq!(
            (status, again["changed"].clone(), again["conversation"]["id"].clone()),
            (200, false.into(), out["conversation"]["id"].clone())
        );
    }

    #[tokio::test]
    async fn bad_split_requests_are_refused_with_a_reason() {
        let w = world();
        let (id, msgs) = three_messages(&w).await;
        let first = format!(r#"{{"from_message": "{}"}}"#, msgs[0].id);
        let (status, out) = post(&w, id, ("alice", Role::Agent), &first).await;
        assert_eq!(status, 422, "{out}");
        assert!(out["error"]["message"].as_str().unwrap().contains("first"));
        let unknown = format!(r#"{{"from_message": "{}"}}"#, MessageId::new());
        assert_eq!(post(&w, id, ("alice", Role::Agent), &unknown).await.0, 422);
        assert_eq!(post(&w, id, ("alice", Role::Agent), r#"{"from_message": "nope"}"#).await.0, 400);
        assert_eq!(post(&w, id, ("alice", Role::Agent), r#"{"message": 1}"#).await.0, 400);
        assert_eq!(post(&w, ConversationId::new(), ("alice", Role::Agent), &first).await.0, 404);
        assert_eq!(post(&w, id, ("fin", Role::Finance), &first).await.0, 403);
        assert_eq!(w.store.conversation(&w.ws, id).await.unwrap().unwrap().message_count, 3, "nothing moved");
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let w = world();
        let ws = WorkspaceId::parse("demo").unwrap();
        let conv = ConversationId::parse("01JD3XQ7Z9K2M4N6P8R0S2T4V6").unwrap();
        let ids = ["01JD3XQ8A1B3C5D7E9F1G3H5J7", "01JD3XR2B4C6D8E0F2G4H6J8K0"];
        store::contract::seed_thread(w.store.as_ref(), &ws, conv, &ids.map(|i| MessageId::parse(i).unwrap())).await;
        let deps = Deps { auth: Authenticator::new("fixture-jwt-secret"), ..w.deps };
        let req =
            lambda_http::request::from_str(include_str!("../../../events/api-split-conversation/split.json")).unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 201, "{:?}", res.body());
    }
}
