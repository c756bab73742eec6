//! `$connect` of the agents' WebSocket API. The agent's token (the ID token the REST API takes)
//! comes in the `token` query parameter or, from a browser, as the second subprotocol after
//! `switchboard.v1`. WebSocket APIs have no JWT authorizer, so it is validated here as the HTTP
//! API's authorizer does (`kit::oidc`: the issuer's JWKS, `iss`, `aud`, `exp`, `nbf`); locally a dev
//! token works too. A forged, expired or missing token is refused with 401 before anything is
//! stored, so API Gateway never opens the socket. An accepted connection is stored with a TTL at
//! API Gateway's limits.

use std::sync::Arc;

use domain::realtime::Connection;
use kit::auth::{Authenticator, Principal};
use kit::http::ApiError;
use kit::oidc::OidcVerifier;
use kit::ws::{accept_subprotocol, connection_id, ok, respond, token, WsRequest, WsResponse, SUBPROTOCOL};
use store::Store;
use time::OffsetDateTime;

pub struct Deps {
    pub api: api::Deps,
    /// The identity provider (`OIDC_ISSUER`, `OIDC_AUDIENCE`); without it only dev tokens (local).
    pub oidc: Option<OidcVerifier>,
}

impl Deps {
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self { api: api::Deps::from_config(config, aws).await?, oidc: OidcVerifier::from_config(config)? })
    }

    pub fn new(store: Arc<dyn Store>, auth: Authenticator) -> Self {
        Self { api: api::Deps::new(store, auth), oidc: None }
    }
}

/// Who a socket's token names: the identity provider's ID token, or (locally) a dev token.
async fn principal(deps: &Deps, token: &str) -> Result<Principal, ApiError> {
    match &deps.oidc {
        Some(oidc) if !Authenticator::is_dev_token(token) => {
            let claims = oidc.verify(token).await?;
            deps.api.auth.claim_names().principal(&claims)
        }
        _ => deps.api.auth.verify_token(token),
    }
}

pub async fn handle(deps: &Deps, req: WsRequest) -> WsResponse {
    respond(connect(deps, &req, OffsetDateTime::now_utc()).await)
}

async fn connect(deps: &Deps, req: &WsRequest, now: OffsetDateTime) -> Result<WsResponse, ApiError> {
    let id = connection_id(req)?;
    let (token, subprotocol) = token(req).ok_or_else(|| {
        ApiError::Unauthorized(format!(
            "missing token: pass ?token=<jwt> or Sec-WebSocket-Protocol: {SUBPROTOCOL}, <jwt>"
        ))
    })?;
    let who = principal(deps, &token).await?;
    let conn = Connection {
        id: id.clone(),
        workspace: who.workspace,
        agent: who.agent,
        name: who.name,
        role: who.role,
        connected_at: now,
        last_seen_at: now,
        viewing: None,
        subscriptions: Default::default(),
        token_expires_at: who.expires_at,
    };
    deps.api.store.put_connection(&conn).await?;
    tracing::info!(workspace = %conn.workspace, agent = %conn.agent, connection = %id, "agent connected");
    let mut res = ok(serde_json::json!({ "connection_id": id }));
    if subprotocol {
        accept_subprotocol(&mut res);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::ConnectionStore;
    use domain::{AgentId, ConnectionId, WorkspaceId};
    use kit::auth::{issue_token, Authenticator, Role};
    use std::sync::Arc;
    use store::MemoryStore;

    const FIXTURE: &str = include_str!("../../../events/ws-connect/connect.json");

    fn deps() -> (Deps, Arc<MemoryStore>) {
        let s = Arc::new(MemoryStore::new());
        (Deps::new(s.clone(), Authenticator::new("test-secret")), s)
    }

    fn request(query_token: Option<&str>, protocol: Option<&str>) -> WsRequest {
        let mut req: WsRequest = serde_json::from_str(FIXTURE).unwrap();
        req.headers.remove("sec-websocket-protocol");
        req.query_string_parameters = Default::default();
        if let Some(t) = query_token {
            req.query_string_parameters = std::collections::HashMap::from([("token".to_owned(), t.to_owned())]).into();
        }
        if let Some(p) = protocol {
            req.headers.insert("sec-websocket-protocol", p.parse().unwrap());
        }
        req
    }

    fn token_for(secret: &str, ttl: time::Duration) -> String {
        issue_token(
            secret,
            &WorkspaceId::parse("demo").unwrap(),
            &AgentId::parse("ann").unwrap(),
            Some("Ann"),
            Role::Agent,
            ttl,
        )
    }

    #[tokio::test]
    async fn a_valid_token_in_the_query_or_the_subprotocol_opens_a_connection() {
        let (deps, store) = deps();
        let t = token_for("test-secret", time::Duration::hours(1));
        let res = handle(&deps, request(Some(&t), None)).await;
        assert_eq!(res.status_code, 200);
        let id = ConnectionId::parse("L0SM9cOFvHcCIhw=").unwrap();
        let conn = store.connection(&id).await.unwrap().expect("stored");
        assert_eq!((conn.agent.as_str(), conn.role), ("ann", Role::Agent));
        let res = handle(&deps, request(None, Some(&format!("{SUBPROTOCOL}, {t}")))).await;
        assert_eq!(res.status_code, 200);
        assert_eq!(res.headers["sec-websocket-protocol"], SUBPROTOCOL, "the browser needs the protocol echoed");
    }

    #[tokio::test]
    async fn forged_expired_and_missing_tokens_store_nothing() {
        let (deps, store) = deps();
        for t in [
            Some(token_for("another-secret", time::Duration::hours(1))),
            Some(token_for("test-secret", time::Duration::hours(-2))),
            Some("garbage".to_owned()),
            None,
        ] {
            let res = handle(&deps, request(t.as_deref(), None)).await;
            assert_eq!(res.status_code, 401, "{t:?}");
        }
        assert!(store.connections(&WorkspaceId::parse("demo").unwrap()).await.unwrap().is_empty());
    }
}
