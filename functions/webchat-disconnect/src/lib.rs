//! `$disconnect` of the web chat visitors' WebSocket API: the socket is forgotten. The visitor's
//! conversation is untouched: replies wait for them (history on reconnect) and, if they gave an
//! email, agents can answer there.

use std::sync::Arc;

use kit::http::ApiError;
use kit::ws::{connection_id, ok, respond, WsRequest, WsResponse};
use store::Store;

pub struct Deps {
    pub store: Arc<dyn Store>,
}

impl Deps {
    /// `TABLE_NAME`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self {
            store: Arc::new(store::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.required("TABLE_NAME")?,
            )),
        })
    }
}

pub async fn handle(deps: &Deps, req: WsRequest) -> WsResponse {
    respond(disconnect(deps, &req).await)
}

async fn disconnect(deps: &Deps, req: &WsRequest) -> Result<WsResponse, ApiError> {
    let id = connection_id(req)?;
    // Already gone (a 410 cleaned it up, or a redelivered disconnect): nothing to do.
    if let Some(conn) = deps.store.visitor_connection(&id).await? {
        deps.store.delete_visitor_connection(&conn).await?;
        tracing::info!(workspace = %conn.workspace, visitor = %conn.visitor, connection = %id, "visitor disconnected");
    }
    Ok(ok(serde_json::json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::channels::webchat::VisitorId;
    use domain::ports::VisitorStore;
    use domain::WorkspaceId;
    use store::MemoryStore;

    const FIXTURE: &str = include_str!("../../../events/webchat-disconnect/disconnect.json");

    #[tokio::test]
    async fn the_socket_is_forgotten_once() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps { store: store.clone() };
        let ws = WorkspaceId::parse("demo").unwrap();
        let v = VisitorId::new();
        store::contract::seed_visitor_socket(&*store, &ws, &v, "Vk9mY2hhdFRhYjE=").await;
        let req: WsRequest = serde_json::from_str(FIXTURE).unwrap();
        assert_eq!(handle(&deps, req.clone()).await.status_code, 200);
        assert!(store.visitor_connections(&ws, &v).await.unwrap().is_empty());
        assert_eq!(handle(&deps, req).await.status_code, 200, "a repeat is harmless");
    }
}
