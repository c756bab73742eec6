//! POST /conversations/{id}/merge — when threading split one topic over two conversations of a
//! contact: every message of this conversation moves into `into`. Body: `{"into": "<conversation id>"}`.
//!
//! This conversation is resolved and points at the other (`merged_into`). If it was the contact's
//! current one, the target takes over the thread: its owner, capacity share and queue place (a
//! resolved target reopens). Tags are united and the higher priority kept. Both conversations must
//! belong to one contact (422 otherwise: merge the contacts first), and at most one may be open.
//! The owner of each (anyone while unowned), supervisors and admins may merge. 200 with
//! `{"source", "conversation", "moved", "changed"}`; the same request again changes nothing
//! (`changed: false`). `domain::reorg` holds the rules.

use domain::reorg::Reorg;
use domain::ConversationId;
use kit::auth::INBOX;
use kit::http::{json_body, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::Inbox as Deps;

const SHAPE: &str = r#"{"into": "<conversation id>"}"#;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = MergeConversationRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    into: String,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(merge(deps, &req).await))
}

#[utoipa::path(post, path = "/conversations/{id}/merge", operation_id = "mergeConversation", tag = "conversations",
    params(("id" = String, Path, description = "The conversation merged away")),
    request_body = Draft,
    responses((status = 200, body = api::ReorganisedBody), (status = 404, body = kit::http::ErrorBody), (status = 409, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn merge(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let id = path_param(req, "id", ConversationId::parse)?;
    let draft: Draft = json_body(req, SHAPE)?;
    let into = ConversationId::parse(&draft.into)?;
    let done = api::reorganise(deps, &who, id, &Reorg::Merge { into }).await?;
    Ok(api::reorganised_response(200, &done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::model::{Contact, Conversation, ConversationStatus};
    use domain::ports::{ConversationReader, InboundStore, Order, QueueChange, RoutingCommit, RoutingStore};
    use domain::{MessageId, Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::contract::{inbound_message, seed_thread};
    use store::MemoryStore;

    struct World {
        deps: Deps,
        store: Arc<MemoryStore>,
        ws: WorkspaceId,
    }

    fn world(ws: &str) -> World {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(queue::memory::MemoryQueue::new());
        let deps = Deps { store: store.clone(), auth: Authenticator::new("s"), notifications: queue };
        World { deps, store, ws: WorkspaceId::parse(ws).unwrap() }
    }

    async fn post(w: &World, conv: ConversationId, as_: (&str, Role), body: &str) -> (u16, serde_json::Value) {
        let auth = bearer("s", w.ws.as_str(), as_.0, as_.1);
        let id = conv.to_string();
        let req = kit::apigw::test_request(
            "POST",
            "/conversations/{id}/merge",
            &format!("/conversations/{id}/merge"),
            &[("id", &id)],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        let res = handle(&w.deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    /// The contact's earlier conversation `old` (resolved, owned by bob) and their current one `new`.
    async fn two_threads(w: &World, old: ConversationId, new: ConversationId) -> Contact {
        let contact = seed_thread(w.store.as_ref(), &w.ws, old, &[MessageId::new(), MessageId::new()]).await;
        let c = w.store.conversation(&w.ws, old).await.unwrap().unwrap();
        let mut resolved = c.clone();
        resolved.status = ConversationStatus::Resolved;
        resolved.assignee = Some(domain::AgentId::parse("bob").unwrap());
        resolved.version += 1;
        let commit = RoutingCommit {
            conversation: resolved,
            expected_version: c.version,
            take: None,
            give_back: None,
            queue: QueueChange::Keep,
            audit: None,
        };
        w.store.commit_routing(commit).await.unwrap();
        let at = time::OffsetDateTime::now_utc();
        let mut current = Conversation::start(w.ws.clone(), &contact, at);
        current.id = new;
        current.record_inbound(c.last_inbound.clone().unwrap(), at);
        w.store
            .commit_inbound(domain::ports::InboundCommit {
                hint: None,
                new_contact: None,
                message: inbound_message(&w.ws, &current, &contact, at),
                conversation: domain::ports::ConversationWrite::Create { conversation: current, replaces: Some(old) },
                provider: "twilio".into(),
                provider_message_id: format!("SM{}", MessageId::new()),
                cost: None,
                consent: None,
            })
            .await
            .unwrap();
        contact
    }

    #[tokio::test]
    async fn the_current_conversation_merges_into_the_earlier_one_which_takes_over_the_thread() {
        let w = world("acme");
        let (old, new) = (ConversationId::new(), ConversationId::new());
        let contact = two_threads(&w, old, new).await;
        // bob owns the earlier conversation: alice, who has the unowned current one, may not merge into it.
        let body = format!(r#"{{"into": "{old}"}}"#);
        assert_eq!(post(&w, new, ("alice", Role::Agent), &body).await.0, 403);
        let (status, out) = post(&w, new, ("sue", Role::Supervisor), &body).await;
        assert_eq!(status, 200, "{out}");
        assert_eq!((out["moved"].clone(), out["changed"].clone()), (1.into(), true.into()));
        assert_eq!(out["source"]["merged_into"], old.to_string());
        assert_eq!(out["conversation"]["status"], "open", "the earlier one reopens with the thread");
        let all = w.store.messages(&w.ws, old, Order::Oldest, 10, None).await.unwrap().items;
        assert_eq!(all.len(), 3);
        assert_eq!(w.store.current_conversation(&w.ws, &contact).await.unwrap().map(|c| c.id), Some(old));
        let (status, again) = post(&w, new, ("sue", Role::Supervisor), &body).await;
        assert_eq!((status, again["changed"].clone()), (200, false.into()));
    }

    #[tokio::test]
    async fn merges_across_contacts_into_itself_or_into_nothing_are_refused() {
        let w = world("acme");
        let (old, new) = (ConversationId::new(), ConversationId::new());
        two_threads(&w, old, new).await;
        let stranger = ConversationId::new();
        seed_thread(w.store.as_ref(), &w.ws, stranger, &[MessageId::new()]).await;
        let sue = ("sue", Role::Supervisor);
        let (status, out) = post(&w, old, sue, &format!(r#"{{"into": "{stranger}"}}"#)).await;
        assert_eq!(status, 422, "{out}");
        assert!(out["error"]["message"].as_str().unwrap().contains("one contact"));
        assert_eq!(post(&w, old, sue, &format!(r#"{{"into": "{old}"}}"#)).await.0, 422);
        assert_eq!(post(&w, old, sue, &format!(r#"{{"into": "{}"}}"#, ConversationId::new())).await.0, 422);
        assert_eq!(post(&w, ConversationId::new(), sue, &format!(r#"{{"into": "{old}"}}"#)).await.0, 404);
        assert_eq!(post(&w, old, sue, r#"{"into": 5}"#).await.0, 400);
        assert_eq!(w.store.messages(&w.ws, old, Order::Oldest, 10, None).await.unwrap().items.len(), 2);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let w = world("demo");
        let source = ConversationId::parse("01JD3XQ7Z9K2M4N6P8R0S2T4V6").unwrap();
        let target = ConversationId::parse("01JD3XS5M7N9P1Q3R5S7T9V1W3").unwrap();
        two_threads(&w, target, source).await;
        let deps = Deps { auth: Authenticator::new("fixture-jwt-secret"), ..w.deps };
        let req =
            lambda_http::request::from_str(include_str!("../../../events/api-merge-conversation/merge.json")).unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.body());
    }
}
