//! `$connect` of the web chat visitors' WebSocket API: `?key=<widget key>&token=<visitor token>`
//! (or, from a browser, the subprotocols `switchboard.webchat.v1, <token>` with `?key=`). A
//! missing, forged or expired token, or one issued for another widget, is refused with 401
//! before anything is stored, so API Gateway never opens the socket.
//!
//! The widget key is checked again here: a disconnected key opens no socket (401), and a key that
//! lists allowed origins opens sockets only from pages there (403 otherwise, by the browser's
//! `Origin`), as the session route checks. A token taken from a page elsewhere is no use.

/// The store and the token check, as every authenticated route has them.
pub use api::Deps;
use domain::channels::webchat::{self, VisitorConnection};
use kit::http::ApiError;
use kit::ws::{accept_named_subprotocol, connection_id, ok, respond, token_for, WsRequest, WsResponse};
use time::OffsetDateTime;

pub async fn handle(deps: &Deps, req: WsRequest) -> WsResponse {
    respond(connect(deps, &req, OffsetDateTime::now_utc()).await)
}

async fn connect(deps: &Deps, req: &WsRequest, now: OffsetDateTime) -> Result<WsResponse, ApiError> {
    let id = connection_id(req)?;
    let key = req
        .query_string_parameters
        .first("key")
        .ok_or_else(|| ApiError::Unauthorized("missing key: connect with ?key=<widget key>".into()))?;
    let (token, subprotocol) = token_for(req, webchat::SUBPROTOCOL).ok_or_else(|| {
        ApiError::Unauthorized(format!(
            "missing visitor token: pass ?token=<token> or Sec-WebSocket-Protocol: {}, <token>",
            webchat::SUBPROTOCOL
        ))
    })?;
    let who = deps.auth.verify_visitor_token(&token)?;
    if who.key != key {
        return Err(ApiError::Unauthorized("this visitor token belongs to another widget".into()));
    }
    let account = deps
        .store
        .channel_account(domain::Channel::Webchat, &who.key)
        .await?
        .filter(|a| a.workspace == who.workspace)
        .ok_or_else(|| ApiError::Unauthorized("this widget key is no longer connected".into()))?;
    let origin = req.headers.get("origin").and_then(|o| o.to_str().ok());
    if !domain::workspace::origin_allowed(&account.allowed_origins, origin) {
        return Err(ApiError::Forbidden("this widget key is not allowed on this site".into()));
    }
    let conn = VisitorConnection {
        id: id.clone(),
        workspace: who.workspace,
        visitor: who.visitor,
        key: who.key,
        connected_at: now,
    };
    deps.store.put_visitor_connection(&conn).await?;
    tracing::info!(workspace = %conn.workspace, visitor = %conn.visitor, connection = %id, "visitor connected");
    let mut res = ok(serde_json::json!({ "connection_id": id }));
    if subprotocol {
        accept_named_subprotocol(&mut res, webchat::SUBPROTOCOL);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::channels::webchat::VisitorId;
    use domain::ports::{ChannelAccount, ChannelDirectory, VisitorStore};
    use domain::Channel;
    use domain::{ConnectionId, WorkspaceId};
    use kit::auth::Authenticator;
    use std::sync::Arc;
    use store::MemoryStore;

    const FIXTURE: &str = include_str!("../../../events/webchat-connect/connect.json");

    fn request(key: Option<&str>, query_token: Option<&str>, protocol: Option<&str>) -> WsRequest {
        let mut req: WsRequest = serde_json::from_str(FIXTURE).unwrap();
        req.headers.remove("sec-websocket-protocol");
        let mut q = std::collections::HashMap::new();
        if let Some(k) = key {
            q.insert("key".to_owned(), k.to_owned());
        }
        if let Some(t) = query_token {
            q.insert("token".to_owned(), t.to_owned());
        }
        req.query_string_parameters = q.into();
        if let Some(p) = protocol {
            req.headers.insert("sec-websocket-protocol", p.parse().unwrap());
        }
        req
    }

    #[tokio::test]
    async fn a_visitor_token_for_this_widget_opens_the_socket_and_nothing_else_does() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps::new(store.clone(), Authenticator::new("test-secret"));
        let ws = WorkspaceId::parse("demo").unwrap();
        store.put_channel_account(&ChannelAccount::new(ws.clone(), Channel::Webchat, "wk_demo_site")).await.unwrap();
        let v = VisitorId::new();
        let (token, _) = deps.auth.issue_visitor_token(&ws, &v, "wk_demo_site", time::Duration::days(1)).unwrap();

        let res =
            handle(&deps, request(Some("wk_demo_site"), None, Some(&format!("{}, {token}", webchat::SUBPROTOCOL))))
                .await;
        assert_eq!(res.status_code, 200);
        assert_eq!(res.headers["sec-websocket-protocol"], webchat::SUBPROTOCOL);
        let id = ConnectionId::parse("Vk9mY2hhdFRhYjE=").unwrap();
        assert_eq!(store.visitor_connection(&id).await.unwrap().unwrap().visitor, v);

        let (expired, _) = deps.auth.issue_visitor_token(&ws, &v, "wk_demo_site", time::Duration::hours(-1)).unwrap();
        let (forged, _) =
            Authenticator::new("x").issue_visitor_token(&ws, &v, "wk_demo_site", time::Duration::days(1)).unwrap();
        let agent = kit::auth::issue_token(
            "test-secret",
            &ws,
            &domain::AgentId::parse("ann").unwrap(),
            None,
            kit::auth::Role::Agent,
            time::Duration::hours(1),
        );
        let other = VisitorId::new();
        for (key, t) in [
            (Some("wk_other_site"), Some(token.as_str())),
            (None, Some(token.as_str())),
            (Some("wk_demo_site"), None),
            (Some("wk_demo_site"), Some(expired.as_str())),
            (Some("wk_demo_site"), Some(forged.as_str())),
            (Some("wk_demo_site"), Some(agent.as_str())),
        ] {
            let res = handle(&deps, request(key, t, None)).await;
            assert_eq!(res.status_code, 401, "{key:?}");
        }
        assert!(store.visitor_connections(&ws, &other).await.unwrap().is_empty());
        assert_eq!(store.visitor_connections(&ws, &v).await.unwrap().len(), 1, "only the good one");
    }

    #[tokio::test]
    async fn a_key_with_allowed_origins_opens_sockets_from_its_sites_only_and_a_disconnected_key_none() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps::new(store.clone(), Authenticator::new("test-secret"));
        let ws = WorkspaceId::parse("demo").unwrap();
        let v = VisitorId::new();
        let (token, _) = deps.auth.issue_visitor_token(&ws, &v, "wk_demo_site", time::Duration::days(1)).unwrap();
        let from = |origin: Option<&str>| {
            let mut req = request(Some("wk_demo_site"), Some(&token), None);
            req.headers.remove("origin");
            if let Some(o) = origin {
                req.headers.insert("origin", o.parse().unwrap());
            }
            req
        };
        assert_eq!(handle(&deps, from(Some("https://shop.example"))).await.status_code, 401, "not connected");
        let account = ChannelAccount {
            allowed_origins: vec!["https://shop.example".into()],
            ..ChannelAccount::new(ws.clone(), Channel::Webchat, "wk_demo_site")
        };
        store.put_channel_account(&account).await.unwrap();
        assert_eq!(handle(&deps, from(Some("https://evil.example"))).await.status_code, 403);
        assert_eq!(handle(&deps, from(None)).await.status_code, 403, "no Origin: not a page there");
        assert!(store.visitor_connections(&ws, &v).await.unwrap().is_empty());
        assert_eq!(handle(&deps, from(Some("https://shop.example"))).await.status_code, 200);
    }
}
