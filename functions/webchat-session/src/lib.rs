//! `POST /webchat/{key}/visitors` — where the widget starts: mints a visitor (or renews the one
//! whose token it still holds) and answers with a visitor token for the socket, the socket URL,
//! and when an answer can be expected (seed 001: set expectations before the first message).
//!
//! Body (all optional): `{"token": "<visitor token>", "name": "…", "email": "…"}`. A name or email
//! given here is kept on the visitor's profile and rides on their messages (the email is linked to
//! their contact by the inbound processor when no other contact holds it).
//! Public (the key is on every page that embeds the widget): new visitors are limited per source
//! address (`WEBCHAT_VISITORS_PER_HOUR`, default 30); CORS allows any origin.

use std::sync::Arc;

use domain::channels::webchat::{self, VisitorId};
use domain::{Channel, EmailAddress};
use kit::auth::Authenticator;
use kit::http::{body_bytes, json, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;
use store::Store;
use time::OffsetDateTime;

/// How long a visitor token lasts: the widget keeps it (local storage) and renews it on each visit.
pub const TOKEN_TTL: time::Duration = time::Duration::days(30);
const RATE_WINDOW: time::Duration = time::Duration::hours(1);

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
    /// Where visitors' sockets connect (`wss://…/live` in AWS).
    pub socket_url: String,
    pub visitors_per_hour: u32,
}

impl Deps {
    /// `TABLE_NAME`, `JWT_SECRET` (or its ARN), `VISITOR_SOCKET_URL`, optional
    /// `WEBCHAT_VISITORS_PER_HOUR`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self {
            store: Arc::new(store::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.required("TABLE_NAME")?,
            )),
            auth: Authenticator::from_config(config, aws).await?,
            socket_url: config.required("VISITOR_SOCKET_URL")?,
            visitors_per_hour: config.parse("WEBCHAT_VISITORS_PER_HOUR", 30u32)?,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Start {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    let mut res = respond(start(deps, &req, OffsetDateTime::now_utc()).await);
    // Any origin may ask; a key with allowed origins only answers those (checked in `start`), and
    // the answer names the asking origin so a browser elsewhere cannot read it.
    let origin = origin(&req).and_then(|o| lambda_http::http::HeaderValue::from_str(o).ok());
    let allow = origin.unwrap_or(lambda_http::http::HeaderValue::from_static("*"));
    res.headers_mut().insert("access-control-allow-origin", allow);
    res.headers_mut().insert("vary", lambda_http::http::HeaderValue::from_static("origin"));
    Ok(res)
}

fn origin(req: &Request) -> Option<&str> {
    req.headers().get("origin").and_then(|o| o.to_str().ok())
}

#[utoipa::path(post, path = "/webchat/{key}/visitors", operation_id = "webchatSession", tag = "public",
    params(("key" = String, Path, description = "The widget key"), ("Origin" = Option<String>, Header, description = "Required when the key lists allowed origins")),
    request_body(content = Object, description = "Optional: token (to renew), name, email"),
    responses((status = 201, description = "A new visitor", body = WebchatSession), (status = 200, description = "The returning visitor (same visitor id, a fresh token)", body = WebchatSession), (status = 403, body = kit::http::ErrorBody), (status = 404, body = kit::http::ErrorBody), (status = 429, body = kit::http::ErrorBody)))]
async fn start(deps: &Deps, req: &Request, now: OffsetDateTime) -> Result<Response<Body>, ApiError> {
    let not_found = || ApiError::NotFound("no web chat widget has this key".into());
    let key = path_param(req, "key", |k| webchat::parse_key(k).map(str::to_owned)).map_err(|_| not_found())?;
    let account = deps.store.channel_account(Channel::Webchat, &key).await?.ok_or_else(not_found)?;
    if !domain::workspace::origin_allowed(&account.allowed_origins, origin(req)) {
        return Err(ApiError::Forbidden(
            "this widget key is not allowed on this site (its admins list the sites it may be used on)".into(),
        ));
    }
    let ws = account.workspace;
    let raw = body_bytes(req);
    let body: Start = if raw.iter().all(u8::is_ascii_whitespace) {
        Start::default()
    } else {
        serde_json::from_slice(raw)
            .map_err(|e| ApiError::BadRequest(format!("expected {{\"token\"?, \"name\"?, \"email\"?}}: {e}")))?
    };
    let name = body.name.as_deref().map(webchat::parse_name).transpose()?;
    let email = body.email.as_deref().map(EmailAddress::parse).transpose()?;
    // A token for this widget that still verifies keeps its visitor; anything else starts afresh.
    let returning = body
        .token
        .as_deref()
        .and_then(|t| deps.auth.verify_visitor_token(t).ok())
        .filter(|v| v.workspace == ws && v.key == key)
        .map(|v| v.visitor);
    let (visitor, status) = match returning {
        Some(v) => (v, 200),
        None => {
            let ip = kit::http::source_ip(req).unwrap_or_else(|| "unknown".into());
            if !deps
                .store
                .take(&ws, &format!("webchat-visitors:{ip}"), now, RATE_WINDOW, deps.visitors_per_hour)
                .await?
            {
                return Err(ApiError::TooManyRequests(format!(
                    "at most {} new chats an hour from one address; please try again later",
                    deps.visitors_per_hour
                )));
            }
            (VisitorId::new(), 201)
        }
    };
    let profile = if name.is_some() || email.is_some() {
        Some(webchat::remember(&*deps.store, &ws, &visitor, name, email, now).await?)
    } else {
        deps.store.visitor_profile(&ws, &visitor).await?
    };
    let email_known = profile.as_ref().is_some_and(|p| p.email.is_some());
    let availability = webchat::current_availability(&*deps.store, &ws, now, email_known).await?;
    let (token, expires_at) = deps.auth.issue_visitor_token(&ws, &visitor, &key, TOKEN_TTL)?;
    tracing::info!(workspace = %ws, %visitor, returning = status == 200, "web chat visitor session");
    Ok(json(
        status,
        &WebchatSession {
            visitor_id: visitor.to_string(),
            token,
            expires_at,
            socket_url: deps.socket_url.clone(),
            subprotocol: webchat::SUBPROTOCOL,
            title: account.display_name,
            availability,
        },
    ))
}

/// A visitor's session: what the widget keeps (the token, sent back next visit to stay the same
/// visitor) and where it connects.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct WebchatSession {
    /// `v_<ULID>`.
    pub visitor_id: String,
    /// The visitor token (30 days): the socket's second subprotocol, and `token` in the next
    /// session request.
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The visitors' WebSocket endpoint; connect to `socket_url?key=<key>`.
    pub socket_url: String,
    /// The first subprotocol to offer (the token is the second).
    pub subprotocol: &'static str,
    /// The widget's title (the channel account's display name).
    pub title: Option<String>,
    pub availability: webchat::Availability,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{AgentStore, ChannelAccount, ChannelDirectory, VisitorStore};
    use domain::routing::{AgentState, Presence};
    use domain::{AgentId, WorkspaceId};
    use store::MemoryStore;

    const FIXTURE: &str = include_str!("../../../events/webchat-session/start.json");

    async fn deps(limit: u32) -> (Deps, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::new());
        let account = ChannelAccount {
            display_name: Some("Demo support".into()),
            ..ChannelAccount::new(WorkspaceId::parse("demo").unwrap(), Channel::Webchat, "wk_demo_site")
        };
        store.put_channel_account(&account).await.unwrap();
        let deps = Deps {
            store: store.clone(),
            auth: Authenticator::new("test-secret"),
            socket_url: "wss://chat.example/live".into(),
            visitors_per_hour: limit,
        };
        (deps, store)
    }

    fn request(key: &str, body: &str) -> Request {
        kit::apigw::test_request(
            "POST",
            "/webchat/{key}/visitors",
            &format!("/webchat/{key}/visitors"),
            &[("key", key)],
            &[("content-type", "application/json")],
            Some(body.as_bytes()),
        )
    }

    async fn call(deps: &Deps, req: Request) -> (u16, serde_json::Value) {
        let res = handle(deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    #[tokio::test]
    async fn a_key_with_allowed_origins_answers_only_pages_there() {
        let (deps, store) = deps(30).await;
        let mut account = store.channel_account(Channel::Webchat, "wk_demo_site").await.unwrap().unwrap();
        account.allowed_origins = vec!["https://shop.example".into()];
        store.put_channel_account(&account).await.unwrap();
        let from = |origin: Option<&str>| {
            let mut headers = vec![("content-type", "application/json")];
            headers.extend(origin.map(|o| ("origin", o)));
            kit::apigw::test_request(
                "POST",
                "/webchat/{key}/visitors",
                "/webchat/wk_demo_site/visitors",
                &[("key", "wk_demo_site")],
                &headers,
                Some(b""),
            )
        };
        let res = handle(&deps, from(Some("https://shop.example"))).await.unwrap();
        assert_eq!(res.status(), 201);
        assert_eq!(res.headers()["access-control-allow-origin"], "https://shop.example");
        assert_eq!(handle(&deps, from(Some("https://copycat.example"))).await.unwrap().status(), 403);
        assert_eq!(handle(&deps, from(None)).await.unwrap().status(), 403, "no Origin, no chat");
    }

    #[tokio::test]
    async fn a_visitor_is_minted_then_renewed_with_their_token() {
        let (deps, store) = deps(30).await;
        let (status, first) = call(&deps, request("wk_demo_site", "")).await;
        assert_eq!(status, 201, "{first}");
        let visitor = first["visitor_id"].as_str().unwrap().to_owned();
        let who = deps.auth.verify_visitor_token(first["token"].as_str().unwrap()).unwrap();
        assert_eq!(
            (who.visitor.as_str(), who.key.as_str(), who.workspace.as_str()),
            (visitor.as_str(), "wk_demo_site", "demo")
        );
        assert_eq!(first["socket_url"], "wss://chat.example/live");
        // Nobody is online: the visitor is told when to expect an answer and asked for an email.
        assert_eq!(first["availability"]["state"], "away");
        assert_eq!(first["availability"]["ask_for_email"], true);

        // The fixture: a returning visitor (its token is stale: a new visitor) giving name and email.
        let mut fixture: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        let body = serde_json::json!({ "token": first["token"], "name": "Rui Costa", "email": "Rui@Example.com" });
        fixture["body"] = body.to_string().into();
        let req = lambda_http::request::from_str(&fixture.to_string()).unwrap();
        store
            .put_agent(
                &WorkspaceId::parse("demo").unwrap(),
                &AgentState {
                    id: AgentId::parse("ann").unwrap(),
                    presence: Presence::Online,
                    teams: Default::default(),
                    skills: Default::default(),
                    capacity: 500,
                    load: 0,
                    last_assigned_at: None,
                },
            )
            .await
            .unwrap();
        let (status, again) = call(&deps, req).await;
        assert_eq!((status, again["visitor_id"].as_str()), (200, Some(visitor.as_str())), "{again}");
        assert_eq!(again["availability"]["state"], "online");
        let v = VisitorId::parse(&visitor).unwrap();
        let profile = store.visitor_profile(&WorkspaceId::parse("demo").unwrap(), &v).await.unwrap().unwrap();
        assert_eq!((profile.name.as_deref(), profile.email.unwrap().as_str()), (Some("Rui Costa"), "rui@example.com"));
    }

    #[tokio::test]
    async fn unknown_keys_bad_input_and_floods_are_refused() {
        let (deps, _) = deps(2).await;
        assert_eq!(call(&deps, request("wk_nobody_here", "")).await.0, 404);
        assert_eq!(call(&deps, request("bad key!", "")).await.0, 404);
        assert_eq!(call(&deps, request("wk_demo_site", r#"{"email":"not-an-email"}"#)).await.0, 400);
        assert_eq!(call(&deps, request("wk_demo_site", r#"{"nickname":"x"}"#)).await.0, 400);
        // A token for another widget does not carry over.
        let (foreign, _) = deps
            .auth
            .issue_visitor_token(&WorkspaceId::parse("other").unwrap(), &VisitorId::new(), "wk_other_site", TOKEN_TTL)
            .unwrap();
        let (status, body) =
            call(&deps, request("wk_demo_site", &serde_json::json!({ "token": foreign }).to_string())).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(call(&deps, request("wk_demo_site", "{}")).await.0, 201);
        let (status, body) = call(&deps, request("wk_demo_site", "")).await;
        assert_eq!(status, 429, "{body}");
    }
}
