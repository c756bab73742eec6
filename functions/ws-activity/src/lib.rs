//! The `typing`, `viewing`, `subscribe` and `unsubscribe` routes of the agents' WebSocket API:
//! what colleagues see of each other's work on a conversation (seed 001's soft lock — "Ann is
//! typing", "Bob is viewing" — nobody is ever locked out).
//!
//! - `{"action":"typing","conversation_id":"…","typing":true|false}`
//! - `{"action":"viewing","conversation_id":"…"|null}`: this tab shows the conversation (or none);
//!   the tab then receives its events too.
//! - `{"action":"subscribe"|"unsubscribe","conversation_id":"…"}`: follow a conversation's events.

use api::caller;
pub use api::Live;
/// The wiring this route needs, under the name every function uses.
pub use api::Live as Deps;
use domain::events::{Activity, Notification};
use domain::model::Role;
use domain::realtime::{ClientAction, Connection};
use domain::ConversationId;
use kit::http::ApiError;
use kit::ws::{body, ok, respond, WsRequest, WsResponse};
use time::OffsetDateTime;

pub async fn handle(deps: &Live, req: WsRequest) -> WsResponse {
    respond(act(deps, &req, OffsetDateTime::now_utc()).await)
}

/// 404 unless the conversation exists in the caller's workspace.
async fn check(deps: &Live, conn: &Connection, id: ConversationId) -> Result<(), ApiError> {
    match deps.store.conversation(&conn.workspace, id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(format!("conversation {id} not found"))),
    }
}

async fn announce(
    deps: &Live,
    conn: &Connection,
    conversation: ConversationId,
    activity: Activity,
) -> Result<(), ApiError> {
    let event = Notification::AgentActivity {
        workspace: conn.workspace.clone(),
        conversation_id: conversation,
        agent: conn.agent.clone(),
        name: conn.name.clone(),
        activity,
        id: ulid::Ulid::new().to_string(),
    };
    deps.notifications.publish(&event).await?;
    Ok(())
}

async fn act(deps: &Live, req: &WsRequest, now: OffsetDateTime) -> Result<WsResponse, ApiError> {
    let action: ClientAction = body(req)?;
    let mut conn = caller(&*deps.store, req).await?;
    if conn.role == Role::Finance {
        return Err(ApiError::Forbidden("the finance role has no inbox rights".into()));
    }
    let reply = match action {
        ClientAction::Typing { conversation_id, typing } => {
            check(deps, &conn, conversation_id).await?;
            let activity = if typing { Activity::Typing } else { Activity::StoppedTyping };
            announce(deps, &conn, conversation_id, activity).await?;
            serde_json::json!({ "action": "typing", "conversation_id": conversation_id, "typing": typing })
        }
        ClientAction::Viewing { conversation_id } => {
            if let Some(id) = conversation_id {
                check(deps, &conn, id).await?;
            }
            let before = std::mem::replace(&mut conn.viewing, conversation_id);
            conn.last_seen_at = now;
            deps.store.put_connection(&conn).await?;
            if let Some(old) = before.filter(|old| Some(*old) != conversation_id) {
                announce(deps, &conn, old, Activity::StoppedViewing).await?;
            }
            if let Some(id) = conversation_id.filter(|id| Some(*id) != before) {
                announce(deps, &conn, id, Activity::Viewing).await?;
            }
            serde_json::json!({ "action": "viewing", "conversation_id": conversation_id })
        }
        ClientAction::Subscribe { conversation_id } => {
            check(deps, &conn, conversation_id).await?;
            if conn.subscriptions.len() >= 100 {
                return Err(ApiError::Unprocessable("a connection follows at most 100 conversations".into()));
            }
            conn.subscriptions.insert(conversation_id);
            conn.last_seen_at = now;
            deps.store.put_connection(&conn).await?;
            serde_json::json!({ "action": "subscribe", "conversation_id": conversation_id })
        }
        ClientAction::Unsubscribe { conversation_id } => {
            conn.subscriptions.remove(&conversation_id);
            conn.last_seen_at = now;
            deps.store.put_connection(&conn).await?;
            serde_json::json!({ "action": "unsubscribe", "conversation_id": conversation_id })
        }
        ClientAction::Presence { .. } | ClientAction::Heartbeat {} => {
            return Err(ApiError::BadRequest("this route takes typing, viewing, subscribe and unsubscribe".into()))
        }
    };
    Ok(ok(reply))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::ConnectionStore;
    use domain::{AgentId, ConnectionId, WorkspaceId};
    use queue::memory::MemoryQueue;
    use std::sync::Arc;
    use store::MemoryStore;

    const FIXTURE: &str = include_str!("../../../events/ws-activity/viewing.json");

    async fn setup() -> (Live, Arc<MemoryStore>, Arc<MemoryQueue>, ConversationId) {
        let store = Arc::new(MemoryStore::new());
        let q = Arc::new(MemoryQueue::new());
        let ws = WorkspaceId::parse("demo").unwrap();
        let now = OffsetDateTime::now_utc();
        let (_, conv) = store::contract::seed_conversation(&*store, &ws, 1, now).await;
        let conn = Connection {
            id: ConnectionId::parse("L0SM9cOFvHcCIhw=").unwrap(),
            workspace: ws,
            agent: AgentId::parse("ann").unwrap(),
            name: Some("Ann".into()),
            role: Role::Agent,
            connected_at: now,
            last_seen_at: now,
            viewing: None,
            subscriptions: Default::default(),
            token_expires_at: None,
        };
        store.put_connection(&conn).await.unwrap();
        (Live { store: store.clone(), notifications: q.clone() }, store, q, conv.id)
    }

    fn request(body: String) -> WsRequest {
        let mut req: WsRequest = serde_json::from_str(FIXTURE).unwrap();
        req.body = Some(body);
        req
    }

    fn activities(q: &MemoryQueue) -> Vec<String> {
        q.sent().iter().map(|(_, _, b)| b["activity"].as_str().unwrap_or("-").to_owned()).collect()
    }

    #[tokio::test]
    async fn viewing_and_typing_are_announced_and_remembered() {
        let (deps, store, q, conv) = setup().await;
        let id = ConnectionId::parse("L0SM9cOFvHcCIhw=").unwrap();
        let view = format!(r#"{{"action":"viewing","conversation_id":"{conv}"}}"#);
        assert_eq!(handle(&deps, request(view.clone())).await.status_code, 200);
        assert_eq!(store.connection(&id).await.unwrap().unwrap().viewing, Some(conv));
        // Viewing the same conversation again announces nothing new.
        assert_eq!(handle(&deps, request(view)).await.status_code, 200);
        let typing = format!(r#"{{"action":"typing","conversation_id":"{conv}"}}"#);
        assert_eq!(handle(&deps, request(typing.clone())).await.status_code, 200);
        assert_eq!(handle(&deps, request(typing)).await.status_code, 200, "typing again is a new event");
        assert_eq!(
            handle(&deps, request(r#"{"action":"viewing","conversation_id":null}"#.into())).await.status_code,
            200
        );
        assert_eq!(activities(&q), ["viewing", "typing", "typing", "stopped_viewing"]);
        assert_eq!(store.connection(&id).await.unwrap().unwrap().viewing, None);
    }

    #[tokio::test]
    async fn unknown_conversations_and_wrong_routes_are_refused() {
        let (deps, store, q, conv) = setup().await;
        let missing = ConversationId::new();
        for body in [
            format!(r#"{{"action":"typing","conversation_id":"{missing}"}}"#),
            format!(r#"{{"action":"subscribe","conversation_id":"{missing}"}}"#),
        ] {
            assert_eq!(handle(&deps, request(body)).await.status_code, 404);
        }
        assert_eq!(handle(&deps, request(r#"{"action":"heartbeat"}"#.into())).await.status_code, 400);
        assert!(q.sent().is_empty());
        let sub = format!(r#"{{"action":"subscribe","conversation_id":"{conv}"}}"#);
        assert_eq!(handle(&deps, request(sub)).await.status_code, 200);
        let id = ConnectionId::parse("L0SM9cOFvHcCIhw=").unwrap();
        assert!(store.connection(&id).await.unwrap().unwrap().subscriptions.contains(&conv));
    }
}
