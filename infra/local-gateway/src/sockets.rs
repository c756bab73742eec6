//! The local WebSocket API: plays API Gateway's WebSocket side for the functions' own handlers.
//!
//! - `GET /ws` upgrades after the `$connect` function answered 200 (any other status refuses the
//!   handshake with it), naming the subprotocol the function accepted.
//! - Each text frame is routed by `$request.body.action` to its route's function (`$default` or an
//!   API Gateway-style "Forbidden" frame when none matches); two-way routes send the answer back.
//! - The connection closes like API Gateway's: client close, ten minutes idle, two hours at most.
//!   Then `$disconnect` runs.
//! - `POST|GET|DELETE /@connections/{id}` is the management API (410 Gone for unknown ids).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequestContext;
use aws_lambda_events::encodings::Body as LambdaBody;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use kit::ws::{WsRequest, WsResponse};
use tokio::sync::mpsc;

pub type WsFn = Arc<dyn Fn(WsRequest) -> BoxFuture<'static, WsResponse> + Send + Sync>;

enum Out {
    Text(String),
    Close,
}

struct Live {
    tx: mpsc::UnboundedSender<Out>,
    connected_at: time::OffsetDateTime,
    last_active: time::OffsetDateTime,
}

pub struct Sockets {
    routes: Vec<(crate::template::WsRoute, WsFn)>,
    live: Mutex<HashMap<String, Live>>,
    domain: String,
    idle: Duration,
    max_age: Duration,
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Sockets {
    pub fn new(
        routes: Vec<(crate::template::WsRoute, WsFn)>,
        domain: String,
        idle: Duration,
        max_age: Duration,
    ) -> Self {
        Self { routes, live: Mutex::new(HashMap::new()), domain, idle, max_age }
    }

    fn route(&self, key: &str) -> Option<&(crate::template::WsRoute, WsFn)> {
        self.routes.iter().find(|(r, _)| r.route_key == key)
    }

    fn event(&self, route_key: &str, event_type: &str, connection: &str, connected_at: i64) -> WsRequest {
        let mut ctx = ApiGatewayWebsocketProxyRequestContext::default();
        ctx.route_key = Some(route_key.to_owned());
        ctx.event_type = Some(event_type.to_owned());
        ctx.connection_id = Some(connection.to_owned());
        ctx.connected_at = connected_at;
        ctx.request_time_epoch = now_ms();
        ctx.request_id = Some(ulid::Ulid::new().to_string());
        ctx.message_direction = Some("IN".into());
        ctx.domain_name = Some(self.domain.clone());
        ctx.stage = Some("live".into());
        ctx.apiid = Some("local".into());
        ctx.identity.source_ip = Some("127.0.0.1".into());
        let mut req = WsRequest::default();
        req.request_context = ctx;
        req
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn body_text(res: &WsResponse) -> Option<String> {
    match &res.body {
        Some(LambdaBody::Text(t)) => Some(t.clone()),
        Some(LambdaBody::Binary(b)) => String::from_utf8(b.clone()).ok(),
        _ => None,
    }
}

/// A connection id shaped like API Gateway's (base64, 16 characters).
fn new_connection_id() -> String {
    let raw = ulid::Ulid::new().to_string();
    format!("{}=", &raw[raw.len() - 15..])
}

pub async fn upgrade(
    State(sockets): State<Arc<Sockets>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let id = new_connection_id();
    let connected_at = now_ms();
    let Some((_, connect)) = sockets.route("$connect").cloned() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no $connect route").into_response();
    };
    let mut event = sockets.event("$connect", "CONNECT", &id, connected_at);
    for (k, v) in &headers {
        event.headers.insert(k.clone(), v.clone());
    }
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    event.query_string_parameters = params.into();
    let answer = connect(event).await;
    if answer.status_code != 200 {
        let status = StatusCode::from_u16(answer.status_code as u16).unwrap_or(StatusCode::FORBIDDEN);
        return (status, body_text(&answer).unwrap_or_default()).into_response();
    }
    let protocol = answer.headers.get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let ws = match protocol {
        Some(p) => ws.protocols([p]),
        None => ws,
    };
    ws.on_upgrade(move |socket| run(sockets, socket, id, connected_at))
}

async fn run(sockets: Arc<Sockets>, socket: WebSocket, id: String, connected_at: i64) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let now = time::OffsetDateTime::now_utc();
    sockets.lock().insert(id.clone(), Live { tx: tx.clone(), connected_at: now, last_active: now });
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let sent = match out {
                Out::Text(t) => sink.send(Message::Text(t.into())).await,
                Out::Close => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            };
            if sent.is_err() {
                break;
            }
        }
    });
    let deadline = tokio::time::Instant::now() + sockets.max_age;
    loop {
        let next = tokio::time::timeout(sockets.idle, stream.next());
        let frame = tokio::select! {
            f = next => f,
            _ = tokio::time::sleep_until(deadline) => break,
        };
        let text = match frame {
            Err(_) | Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => break,
            Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
            Ok(Some(Ok(Message::Binary(b)))) => String::from_utf8_lossy(&b).into_owned(),
            Ok(Some(Ok(_))) => continue,
        };
        if let Some(l) = sockets.lock().get_mut(&id) {
            l.last_active = time::OffsetDateTime::now_utc();
        }
        // Route selection: $request.body.action.
        let action = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("action").and_then(|a| a.as_str()).map(str::to_owned));
        let route = action.as_deref().and_then(|a| sockets.route(a)).or_else(|| sockets.route("$default")).cloned();
        let Some((route, f)) = route else {
            let forbidden = serde_json::json!({ "message": "Forbidden", "connectionId": id, "requestId": ulid::Ulid::new().to_string() });
            let _ = tx.send(Out::Text(forbidden.to_string()));
            continue;
        };
        let mut event = sockets.event(&route.route_key, "MESSAGE", &id, connected_at);
        event.request_context.message_id = Some(ulid::Ulid::new().to_string());
        event.body = Some(text);
        let answer = f(event).await;
        if route.two_way {
            if let Some(body) = body_text(&answer) {
                let _ = tx.send(Out::Text(body));
            }
        }
    }
    let _ = tx.send(Out::Close);
    sockets.lock().remove(&id);
    if let Some((_, disconnect)) = sockets.route("$disconnect").cloned() {
        let mut event = sockets.event("$disconnect", "DISCONNECT", &id, connected_at);
        event.request_context.disconnect_status_code = Some(1001);
        disconnect(event).await;
    }
    let _ = writer.await;
}

fn gone() -> Response {
    (
        StatusCode::GONE,
        [("x-amzn-errortype", "GoneException"), ("content-type", "application/json")],
        r#"{"message":"Gone"}"#,
    )
        .into_response()
}

pub async fn post(State(sockets): State<Arc<Sockets>>, Path(id): Path<String>, body: Bytes) -> Response {
    let sent =
        sockets.lock().get(&id).map(|l| l.tx.send(Out::Text(String::from_utf8_lossy(&body).into_owned())).is_ok());
    match sent {
        Some(true) => StatusCode::OK.into_response(),
        _ => gone(),
    }
}

pub async fn get(State(sockets): State<Arc<Sockets>>, Path(id): Path<String>) -> Response {
    let fmt = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    match sockets.lock().get(&id) {
        Some(l) => axum::Json(serde_json::json!({
            "connectedAt": fmt(l.connected_at),
            "lastActiveAt": fmt(l.last_active),
            "identity": { "sourceIp": "127.0.0.1" }
        }))
        .into_response(),
        None => gone(),
    }
}

pub async fn delete(State(sockets): State<Arc<Sockets>>, Path(id): Path<String>) -> Response {
    match sockets.lock().get(&id) {
        Some(l) => {
            let _ = l.tx.send(Out::Close);
            StatusCode::NO_CONTENT.into_response()
        }
        None => gone(),
    }
}
