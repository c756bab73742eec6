//! `$disconnect` of the agents' WebSocket API (the client left, the network dropped, or API
//! Gateway's two-hour / ten-minute-idle limits closed it): the connection is removed, and an agent
//! whose last connection this was goes offline, so routing stops sending them work.

/// The wiring this route needs, under the name every function uses: the store, the notification
/// queue and the service-level timers (an agent who leaves starts the away check).
pub use api::Timed as Deps;
use domain::model::Role;
use domain::routing::service::set_presence;
use domain::routing::Presence;
use kit::http::ApiError;
use kit::ws::{connection_id, ok, respond, WsRequest, WsResponse};
use time::OffsetDateTime;

pub async fn handle(deps: &Deps, req: WsRequest) -> WsResponse {
    respond(disconnect(deps, &req, OffsetDateTime::now_utc()).await)
}

async fn disconnect(deps: &Deps, req: &WsRequest, now: OffsetDateTime) -> Result<WsResponse, ApiError> {
    let id = connection_id(req)?;
    // Already gone (a 410 cleaned it up, or a redelivered disconnect): nothing to do.
    let Some(conn) = deps.store.connection(&id).await? else { return Ok(ok(serde_json::json!({}))) };
    let ws = &conn.workspace;
    deps.store.delete_connection(ws, &id).await?;
    tracing::info!(workspace = %ws, agent = %conn.agent, connection = %id, "agent disconnected");
    if conn.role == Role::Finance {
        return Ok(ok(serde_json::json!({})));
    }
    let still_here = deps.store.agent_connections(ws, &conn.agent).await?.iter().any(|c| !c.is_stale(now));
    let routed = deps.store.agent_states(ws, std::slice::from_ref(&conn.agent)).await?.into_iter().next();
    if !still_here && routed.is_some_and(|a| a.presence != Presence::Offline) {
        set_presence(&*deps.store, &*deps.notifications, ws, &conn.agent, Presence::Offline, now).await?;
        // Not back after the grace period: their waiting customers go to someone online.
        app::sla::agent_left(&*deps.store, &*deps.sla_timers, ws, &conn.agent, now).await?;
    }
    Ok(ok(serde_json::json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{AgentStore, ConnectionStore, RoutingStore};
    use domain::realtime::Connection;
    use domain::{AgentId, ConnectionId, WorkspaceId};
    use queue::memory::MemoryQueue;
    use std::sync::Arc;
    use store::MemoryStore;

    const FIXTURE: &str = include_str!("../../../events/ws-disconnect/disconnect.json");

    fn conn(id: &str) -> Connection {
        let now = OffsetDateTime::now_utc();
        Connection {
            id: ConnectionId::parse(id).unwrap(),
            workspace: WorkspaceId::parse("demo").unwrap(),
            agent: AgentId::parse("ann").unwrap(),
            name: None,
            role: Role::Agent,
            connected_at: now,
            last_seen_at: now,
            viewing: None,
            subscriptions: Default::default(),
            token_expires_at: None,
        }
    }

    fn request(id: &str) -> WsRequest {
        let mut req: WsRequest = serde_json::from_str(FIXTURE).unwrap();
        req.request_context.connection_id = Some(id.to_owned());
        req
    }

    #[tokio::test]
    async fn the_last_tab_closing_takes_the_agent_offline() {
        let store = Arc::new(MemoryStore::new());
        let q = Arc::new(MemoryQueue::new());
        let deps = Deps {
            store: store.clone(),
            notifications: q.clone(),
            sla_timers: Arc::new(timers::RecordingTimers::default()),
        };
        let ws = WorkspaceId::parse("demo").unwrap();
        let ann = AgentId::parse("ann").unwrap();
        store.set_presence(&ws, &ann, Presence::Online, 500, time::OffsetDateTime::now_utc()).await.unwrap();
        store.put_connection(&conn("tab1")).await.unwrap();
        store.put_connection(&conn("tab2")).await.unwrap();

        assert_eq!(handle(&deps, request("tab1")).await.status_code, 200);
        assert_eq!(store.connections(&ws).await.unwrap().len(), 1);
        assert_eq!(store.agents(&ws).await.unwrap()[0].presence, Presence::Online, "another tab is open");
        assert!(q.sent().is_empty());

        assert_eq!(handle(&deps, request("tab2")).await.status_code, 200);
        assert!(store.connections(&ws).await.unwrap().is_empty());
        assert_eq!(store.agents(&ws).await.unwrap()[0].presence, Presence::Offline);
        let sent = q.sent();
        assert_eq!(
            (sent.len(), sent[0].2["type"].as_str(), sent[0].2["presence"].as_str()),
            (1, Some("presence_changed"), Some("offline"))
        );
        // A repeated disconnect is harmless.
        assert_eq!(handle(&deps, request("tab2")).await.status_code, 200);
        assert_eq!(q.sent().len(), 1);
    }
}
