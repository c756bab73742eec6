//! The `presence` and `heartbeat` routes of the agents' WebSocket API.
//!
//! `{"action":"presence","status":"online|away|do_not_disturb"}` sets the agent's presence (offline
//! is what disconnecting does). Routing only gives work to online agents; coming online takes
//! waiting conversations at once. `{"action":"heartbeat"}` keeps the connection fresh: clients send
//! one every few minutes, inside API Gateway's ten-minute idle limit.

use api::caller;
/// The wiring this route needs, under the name every function uses: the store, the notification
/// queue and the service-level timers (an agent who leaves starts the away check).
pub use api::Timed as Deps;
use domain::model::Role;
use domain::realtime::ClientAction;
use domain::routing::service::set_presence;
use domain::routing::Presence;
use kit::http::ApiError;
use kit::ws::{body, ok, respond, WsRequest, WsResponse};
use time::OffsetDateTime;

pub async fn handle(deps: &Deps, req: WsRequest) -> WsResponse {
    respond(act(deps, &req, OffsetDateTime::now_utc()).await)
}

async fn act(deps: &Deps, req: &WsRequest, now: OffsetDateTime) -> Result<WsResponse, ApiError> {
    let action: ClientAction = body(req)?;
    let mut conn = caller(&*deps.store, req).await?;
    match action {
        ClientAction::Presence { status } => {
            if conn.role == Role::Finance {
                return Err(ApiError::Forbidden("the finance role takes no conversations".into()));
            }
            if status == Presence::Offline {
                return Err(ApiError::BadRequest(
                    "offline is set by disconnecting; use away or do_not_disturb to stop new work".into(),
                ));
            }
            let assigned =
                set_presence(&*deps.store, &*deps.notifications, &conn.workspace, &conn.agent, status, now).await?;
            if status == Presence::Away {
                // Still away after the grace period: their waiting customers go to someone online.
                app::sla::agent_left(&*deps.store, &*deps.sla_timers, &conn.workspace, &conn.agent, now).await?;
            }
            conn.last_seen_at = now;
            deps.store.put_connection(&conn).await?;
            tracing::info!(workspace = %conn.workspace, agent = %conn.agent, ?status, assigned = assigned.len(), "presence set");
            Ok(ok(serde_json::json!({ "action": "presence", "status": status, "assigned_from_queue": assigned.len() })))
        }
        ClientAction::Heartbeat {} => {
            conn.last_seen_at = now;
            deps.store.put_connection(&conn).await?;
            Ok(ok(serde_json::json!({ "action": "heartbeat", "expires_at": conn.expires_at().unix_timestamp() })))
        }
        _ => Err(ApiError::BadRequest("this route takes presence and heartbeat".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{AgentStore, ConnectionStore};
    use domain::realtime::Connection;
    use domain::{AgentId, ConnectionId, WorkspaceId};
    use queue::memory::MemoryQueue;
    use std::sync::Arc;
    use store::MemoryStore;

    const FIXTURE: &str = include_str!("../../../events/ws-presence/presence-online.json");

    async fn setup(role: Role) -> (Deps, Arc<MemoryStore>, Arc<MemoryQueue>) {
        let store = Arc::new(MemoryStore::new());
        let q = Arc::new(MemoryQueue::new());
        let now = OffsetDateTime::now_utc() - time::Duration::minutes(3);
        let conn = Connection {
            id: ConnectionId::parse("L0SM9cOFvHcCIhw=").unwrap(),
            workspace: WorkspaceId::parse("demo").unwrap(),
            agent: AgentId::parse("ann").unwrap(),
            name: None,
            role,
            connected_at: now,
            last_seen_at: now,
            viewing: None,
            subscriptions: Default::default(),
            token_expires_at: None,
        };
        store.put_connection(&conn).await.unwrap();
        let sla_timers = Arc::new(timers::RecordingTimers::default());
        (Deps { store: store.clone(), notifications: q.clone(), sla_timers }, store, q)
    }

    fn request(body: &str) -> WsRequest {
        let mut req: WsRequest = serde_json::from_str(FIXTURE).unwrap();
        req.body = Some(body.to_owned());
        req
    }

    #[tokio::test]
    async fn presence_is_stored_announced_and_validated() {
        let (deps, store, q) = setup(Role::Agent).await;
        let fixture: WsRequest = serde_json::from_str(FIXTURE).unwrap();
        assert_eq!(handle(&deps, fixture).await.status_code, 200);
        let ws = WorkspaceId::parse("demo").unwrap();
        let agents = store.agents(&ws).await.unwrap();
        assert_eq!(
            (agents[0].presence, agents[0].capacity),
            (Presence::Online, 500),
            "a new agent gets the default capacity"
        );
        assert_eq!(q.sent()[0].2["type"], "presence_changed");
        for bad in [
            r#"{"action":"presence","status":"offline"}"#,
            r#"{"action":"presence"}"#,
            r#"{"action":"typing","conversation_id":"x"}"#,
            "not json",
        ] {
            assert_eq!(handle(&deps, request(bad)).await.status_code, 400, "{bad}");
        }
        let res = handle(&deps, request(r#"{"action":"heartbeat"}"#)).await;
        assert_eq!(res.status_code, 200);
        let conn = store.connection(&ConnectionId::parse("L0SM9cOFvHcCIhw=").unwrap()).await.unwrap().unwrap();
        assert!(OffsetDateTime::now_utc() - conn.last_seen_at < time::Duration::seconds(5), "heartbeat refreshed it");
    }

    #[tokio::test]
    async fn finance_takes_no_work_and_unknown_connections_must_reconnect() {
        let (deps, _, _) = setup(Role::Finance).await;
        assert_eq!(handle(&deps, request(r#"{"action":"presence","status":"online"}"#)).await.status_code, 403);
        let mut stranger = request(r#"{"action":"heartbeat"}"#);
        stranger.request_context.connection_id = Some("nobody=".into());
        assert_eq!(handle(&deps, stranger).await.status_code, 401);
    }
}
