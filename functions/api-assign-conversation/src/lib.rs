//! PUT /conversations/{id}/assignee — assign an unowned conversation, transfer an owned one (with a
//! note for the new owner, kept in the audit trail), or unassign it (`"agent": null`: it goes back to
//! the routing queue in the same write and waiting work flows into the freed capacity).
//! Body: `{"agent": "bob" | null, "note"?: "..."}`.
//!
//! Agents move their own or unowned work, to an online colleague with room; supervisors and admins
//! move anyone's, past capacity if they must (`domain::inbox` holds the rules). Every change is
//! audited and pushed to the agents concerned. Repeating a request changes nothing (`changed: false`).

use domain::inbox::Command;
use domain::{AgentId, ConversationId};
use kit::auth::INBOX;
use kit::http::{json_body, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::Inbox as Deps;

const SHAPE: &str = r#"{"agent": "<agent id>" | null, "note"?: "..."}"#;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = AssignConversationRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    agent: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(assign(deps, &req).await))
}

#[utoipa::path(put, path = "/conversations/{id}/assignee", operation_id = "assignConversation", tag = "conversations",
    params(("id" = String, Path, description = "The conversation")),
    request_body(content = Draft, description = "`agent`: who takes it, or null to put it back in the queue"),
    responses((status = 200, body = api::ActedBody), (status = 404, body = kit::http::ErrorBody), (status = 409, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn assign(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let id = path_param(req, "id", ConversationId::parse)?;
    let raw: serde_json::Value = json_body(req, SHAPE)?;
    if raw.get("agent").is_none() {
        return Err(ApiError::BadRequest(format!("body must be {SHAPE}: \"agent\" is required (null unassigns)")));
    }
    let draft: Draft =
        serde_json::from_value(raw).map_err(|e| ApiError::BadRequest(format!("body must be {SHAPE}: {e}")))?;
    let cmd = match draft.agent {
        Some(a) => Command::Assign { to: AgentId::parse(&a)?, note: draft.note },
        None => Command::Unassign { note: draft.note },
    };
    let acted = api::act(deps, &who, id, &cmd).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, conversation = %id, changed = acted.changed,
        assignee = ?acted.conversation.assignee, "assignment");
    Ok(api::acted_response(&acted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::events::{ConversationChange, Notification};
    use domain::ports::{AgentStore, AuditLog, ConversationReader, RoutingStore};
    use domain::routing::Presence;
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::contract::{seed_agent, seed_conversation};
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

    async fn put(w: &World, conv: ConversationId, as_: (&str, Role), body: &str) -> (u16, serde_json::Value) {
        let auth = bearer("s", w.ws.as_str(), as_.0, as_.1);
        let id = conv.to_string();
        let req = kit::apigw::test_request(
            "PUT",
            "/conversations/{id}/assignee",
            &format!("/conversations/{id}/assignee"),
            &[("id", &id)],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        let res = handle(&w.deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    async fn load(w: &World, agent: &str) -> u32 {
        w.store.agents(&w.ws).await.unwrap().into_iter().find(|a| a.id.as_str() == agent).unwrap().load
    }

    const ALICE: (&str, Role) = ("alice", Role::Agent);
    const BOB: (&str, Role) = ("bob", Role::Agent);
    const SUE: (&str, Role) = ("sue", Role::Supervisor);

    #[tokio::test]
    async fn an_agent_claims_unowned_work_and_cannot_take_a_colleagues() {
        let w = world();
        seed_agent(w.store.as_ref(), &w.ws, "alice", 500, Presence::Online).await;
        seed_agent(w.store.as_ref(), &w.ws, "bob", 500, Presence::Online).await;
        let (_, c) = seed_conversation(w.store.as_ref(), &w.ws, 1, time::OffsetDateTime::now_utc()).await;

        let (status, body) = put(&w, c.id, ALICE, r#"{"agent": "alice"}"#).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["conversation"]["assignee"], "alice");
        assert_eq!(body["changed"], true);
        assert_eq!(load(&w, "alice").await, 100, "an SMS weighs one conversation");
        let sent = w.queue.sent();
        let event: Notification = serde_json::from_value(sent.last().unwrap().2.clone()).unwrap();
        assert!(matches!(event, Notification::ConversationChanged { change: ConversationChange::Assigned, .. }));

        // Again: nothing changes, nothing is taken twice.
        let (status, body) = put(&w, c.id, ALICE, r#"{"agent": "alice"}"#).await;
        assert_eq!((status, body["changed"].clone()), (200, serde_json::json!(false)));
        assert_eq!(load(&w, "alice").await, 100);

        let (status, body) = put(&w, c.id, BOB, r#"{"agent": "bob"}"#).await;
        assert_eq!(status, 403, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("supervisor"));
    }

    #[tokio::test]
    async fn a_supervisor_transfers_with_a_note_and_the_freed_capacity_takes_waiting_work() {
        let w = world();
        let now = time::OffsetDateTime::now_utc();
        seed_agent(w.store.as_ref(), &w.ws, "alice", 100, Presence::Online).await;
        seed_agent(w.store.as_ref(), &w.ws, "bob", 100, Presence::Away).await;
        let (_, first) = seed_conversation(w.store.as_ref(), &w.ws, 1, now).await;
        let (_, second) = seed_conversation(w.store.as_ref(), &w.ws, 2, now).await;
        let n = domain::routing::service::route_conversation(&*w.store, &*w.queue, &w.ws, first.id, now).await.unwrap();
        assert!(matches!(n, domain::routing::service::Routed::Assigned { .. }));
        let waiting = domain::routing::service::route_conversation(&*w.store, &*w.queue, &w.ws, second.id, now).await;
        assert!(matches!(waiting.unwrap(), domain::routing::service::Routed::Waiting(_)), "alice is full");

        // An agent may not hand work to an away colleague; a supervisor may.
        let (status, _) = put(&w, first.id, ALICE, r#"{"agent": "bob"}"#).await;
        assert_eq!(status, 409);
        let (status, body) = put(&w, first.id, SUE, r#"{"agent": "bob", "note": "VIP: promised a callback"}"#).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["conversation"]["assignee"], "bob");
        assert_eq!(body["assigned"][0]["conversation_id"], second.id.to_string(), "alice's freed room took the queue");
        assert_eq!((load(&w, "alice").await, load(&w, "bob").await), (100, 100));
        let stored = w.store.conversation(&w.ws, second.id).await.unwrap().unwrap();
        assert_eq!(stored.assignee.as_ref().map(AgentId::as_str), Some("alice"));
        let trail = w.store.audit_trail(&w.ws, Some(first.id), 10, None).await.unwrap().items;
        let transfer = trail.iter().find(|e| e.action == "transferred").unwrap();
        assert_eq!(transfer.actor.as_str(), "sue");
        assert_eq!(transfer.details["note"], "VIP: promised a callback");
        assert_eq!(transfer.details["from"], "alice");
    }

    #[tokio::test]
    async fn unassigning_requeues_and_bad_requests_get_reasons() {
        let w = world();
        let now = time::OffsetDateTime::now_utc();
        seed_agent(w.store.as_ref(), &w.ws, "alice", 500, Presence::Online).await;
        let (_, c) = seed_conversation(w.store.as_ref(), &w.ws, 1, now).await;
        put(&w, c.id, ALICE, r#"{"agent": "alice"}"#).await;
        w.store
            .set_presence(
                &w.ws,
                &AgentId::parse("alice").unwrap(),
                Presence::Away,
                500,
                time::OffsetDateTime::now_utc(),
            )
            .await
            .unwrap();
        let (status, body) = put(&w, c.id, ALICE, r#"{"agent": null, "note": "not my area"}"#).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["conversation"]["assignee"].is_null());
        assert!(body["conversation"]["waiting_since"].is_string(), "back in the queue");
        assert_eq!(w.store.waiting(&w.ws).await.unwrap().len(), 1);
        assert_eq!(load(&w, "alice").await, 0);

        assert_eq!(put(&w, c.id, ALICE, r#"{"note": "x"}"#).await.0, 400);
        assert_eq!(put(&w, c.id, ALICE, "not json").await.0, 400);
        assert_eq!(put(&w, c.id, ALICE, r#"{"agent": "zed"}"#).await.0, 422);
        assert_eq!(put(&w, c.id, ("fay", Role::Finance), r#"{"agent": "alice"}"#).await.0, 403);
        assert_eq!(put(&w, ConversationId::new(), ALICE, r#"{"agent": "alice"}"#).await.0, 404);
        let other = World { ws: WorkspaceId::parse("globex").unwrap(), ..world() };
        let other = World { store: w.store.clone(), deps: Deps { store: w.store.clone(), ..other.deps }, ..other };
        assert_eq!(put(&other, c.id, SUE, r#"{"agent": null}"#).await.0, 404);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let w = world();
        let ws = WorkspaceId::parse("demo").unwrap();
        let conv = ConversationId::parse("01JD3XQ7Z9K2M4N6P8R0S2T4V6").unwrap();
        store::contract::seed_queued_reply(w.store.as_ref(), &ws, "+14155552671", Some(conv), None).await;
        seed_agent(w.store.as_ref(), &ws, "bob", 500, Presence::Online).await;
        let deps = Deps { auth: Authenticator::new("fixture-jwt-secret"), ..w.deps };
        let req = lambda_http::request::from_str(include_str!("../../../events/api-assign-conversation/transfer.json"))
            .unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.body());
    }
}
