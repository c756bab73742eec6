//! The gateway: plays API Gateway (HTTP API, payload 2.0) and Lambda (SQS event source mappings) for
//! the functions' own handler code. Routes and mappings come from template.yaml.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response as AxumResponse};
use futures::future::BoxFuture;
use kit::apigw::HttpEvent;
use kit::Config;
use lambda_http::{Body, Request, Response};
use tokio::task::JoinHandle;

use crate::provision::{provision, Provisioned};
use crate::sockets::{self, Sockets, WsFn};
use crate::template::{HttpRoute, SqsMapping, Template};

type HttpFn = Arc<dyn Fn(Request) -> BoxFuture<'static, Response<Body>> + Send + Sync>;
type SqsFn = Arc<dyn Fn(SqsEvent) -> BoxFuture<'static, Result<SqsBatchResponse, String>> + Send + Sync>;
/// A function invoked directly (a Step Functions task): JSON payload in, JSON result or error out.
pub(crate) type InvokeFn =
    Arc<dyn Fn(serde_json::Value) -> BoxFuture<'static, Result<serde_json::Value, String>> + Send + Sync>;

/// What the functions would be configured with in AWS, minus the secret ARNs (values instead).
#[derive(Clone, Debug)]
pub struct StackOptions {
    pub stack_name: String,
    pub http_addr: SocketAddr,
    pub twilio_api_base: String,
    pub twilio_account_sid: String,
    pub twilio_auth_token: String,
    pub jwt_secret: String,
    /// The local OpenID provider (infra/oidc) the HTTP API's JWT authorizer and `$connect` trust;
    /// without it only dev tokens sign in.
    pub oidc_issuer: Option<String>,
    /// Domains SES may send from (verified on moto at start).
    pub email_domains: Vec<String>,
    /// More configuration for every function: the optional channels' credentials and API bases
    /// (`WHATSAPP_CREDENTIALS`, `WHATSAPP_API_BASE`, `TELEGRAM_CREDENTIALS`, …).
    pub extra_env: Vec<(String, String)>,
    /// Backoff base for the sender's in-process retries.
    pub send_retry_base_ms: u64,
    /// How long a consumer waits on an empty queue per receive (seconds, 0-20).
    pub poll_wait_secs: i32,
    /// Concurrent pollers (invocations) per queue mapping, capped by the mapping's
    /// `ScalingConfig.MaximumConcurrency`. Lambda scales a FIFO mapping across message groups;
    /// SQS FIFO hands out no message of a group while another of it is in flight, so several
    /// pollers keep each group's order exactly as Lambda does.
    pub pollers_per_queue: usize,
    /// API Gateway closes an idle WebSocket after ten minutes and any after two hours.
    pub ws_idle: Duration,
    pub ws_max_age: Duration,
    /// Origins of console builds served locally, allowed by the HTTP API's CORS beside the
    /// template's `ConsoleUrls` (whose default is the usual `make run` console).
    pub console_origins: Vec<String>,
    /// Whether a mapping of more than ten a batch waits up to its `MaximumBatchingWindowInSeconds`
    /// to fill it, as Lambda does (the benchmarks: batches as full as at scale). Off, a batch is
    /// what is there at once (tests and `make run`: analytics without the window's delay).
    pub batching_windows: bool,
}

pub struct Stack {
    pub base_url: String,
    /// The agents' WebSocket endpoint (`ws://…/ws`).
    pub ws_url: String,
    /// The web chat visitors' WebSocket endpoint (`ws://…/visitor/ws`).
    pub visitor_ws_url: String,
    pub provisioned: Provisioned,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

const AGENT_API: &str = "AgentSocketApi";
const VISITOR_API: &str = "VisitorSocketApi";

/// Where a WebSocket API of the template is served: the agents' at the root (`/ws`,
/// `/@connections/{id}`), any other under its name (`VisitorSocketApi` → `/visitor/ws`,
/// `/visitor/@connections/{id}`); a function's endpoint is the gateway's URL plus this prefix.
fn socket_prefix(api: &str) -> String {
    if api == AGENT_API {
        return String::new();
    }
    format!("/{}", api.trim_end_matches("SocketApi").to_lowercase())
}

/// API Gateway's answer when the Lambda function itself errors.
fn lambda_error(e: lambda_http::Error) -> Response<Body> {
    tracing::error!(error = %e, "function returned an error");
    Response::builder()
        .status(500)
        .header("content-type", "application/json")
        .body(Body::Text(r#"{"message":"Internal Server Error"}"#.into()))
        .expect("static response")
}

async fn http_function(binary: &str, cfg: &Config, aws: &aws_config::SdkConfig) -> Result<HttpFn> {
    macro_rules! http {
        ($krate:ident) => {{
            let deps =
                Arc::new($krate::Deps::from_config(cfg, aws).await.with_context(|| format!("configuring {binary}"))?);
            let f: HttpFn = Arc::new(move |req| {
                let deps = deps.clone();
                Box::pin(async move { $krate::handle(&deps, req).await.unwrap_or_else(lambda_error) })
            });
            f
        }};
    }
    Ok(match binary {
        "twilio-sms-webhook" => http!(twilio_sms_webhook),
        "twilio-status-webhook" => http!(twilio_status_webhook),
        "whatsapp-webhook" => http!(whatsapp_webhook),
        "meta-webhook" => http!(meta_webhook),
        "contact-form" => http!(contact_form),
        "twilio-voice-webhook" => http!(twilio_voice_webhook),
        "telegram-webhook" => http!(telegram_webhook),
        "api-list-conversations" => http!(api_list_conversations),
        "api-get-conversation" => http!(api_get_conversation),
        "api-list-messages" => http!(api_list_messages),
        "api-send-message" => http!(api_send_message),
        "api-finance-report" => http!(api_finance_report),
        "api-finance-reconcile" => http!(api_finance_reconcile),
        "api-list-rate-cards" => http!(api_list_rate_cards),
        "api-create-rate-card" => http!(api_create_rate_card),
        "api-list-budgets" => http!(api_list_budgets),
        "api-put-budget" => http!(api_put_budget),
        "api-preview-cost" => http!(api_preview_cost),
        "webchat-session" => http!(webchat_session),
        "api-contact-suggestions" => http!(api_contact_suggestions),
        "api-remove-identity" => http!(api_remove_identity),
        "api-add-identity" => http!(api_add_identity),
        "api-merge-contacts" => http!(api_merge_contacts),
        "api-put-whatsapp-template" => http!(api_put_whatsapp_template),
        "api-resend-message" => http!(api_resend_message),
        "api-submit-whatsapp-template" => http!(api_submit_whatsapp_template),
        "api-list-whatsapp-templates" => http!(api_list_whatsapp_templates),
        "api-delete-canned" => http!(api_delete_canned),
        "api-update-canned" => http!(api_update_canned),
        "api-get-analytics" => http!(api_get_analytics),
        "csat-rate-page" => http!(csat_rate_page),
        "csat-rate" => http!(csat_rate),
        "api-create-webhook" => http!(api_create_webhook),
        "api-list-webhooks" => http!(api_list_webhooks),
        "api-update-webhook" => http!(api_update_webhook),
        "api-delete-webhook" => http!(api_delete_webhook),
        "api-rotate-webhook-secret" => http!(api_rotate_webhook_secret),
        "api-list-webhook-deliveries" => http!(api_list_webhook_deliveries),
        "api-redeliver-webhook" => http!(api_redeliver_webhook),
        "api-merge-conversation" => http!(api_merge_conversation),
        "api-split-conversation" => http!(api_split_conversation),
        "api-preview-canned" => http!(api_preview_canned),
        "api-list-canned" => http!(api_list_canned),
        "api-create-canned" => http!(api_create_canned),
        "api-list-audit" => http!(api_list_audit),
        "api-put-routing-rules" => http!(api_put_routing_rules),
        "api-get-sla-policy" => http!(api_get_sla_policy),
        "api-put-sla-policy" => http!(api_put_sla_policy),
        "api-start-conversation" => http!(api_start_conversation),
        "api-invite-agent" => http!(api_invite_agent),
        "api-set-agent-access" => http!(api_set_agent_access),
        "api-create-upload" => http!(api_create_upload),
        "openapi-document" => http!(openapi_document),
        "api-get-workspace" => http!(api_get_workspace),
        "api-put-workspace" => http!(api_put_workspace),
        "api-list-channels" => http!(api_list_channels),
        "api-connect-channel" => http!(api_connect_channel),
        "api-disconnect-channel" => http!(api_disconnect_channel),
        "api-get-privacy-policy" => http!(api_get_privacy_policy),
        "api-put-privacy-policy" => http!(api_put_privacy_policy),
        "api-redact-message" => http!(api_redact_message),
        "api-export-contact" => http!(api_export_contact),
        "api-erase-contact" => http!(api_erase_contact),
        "webchat-verify-page" => http!(webchat_verify_page),
        "webchat-verify" => http!(webchat_verify),
        "api-get-attachment" => http!(api_get_attachment),
        "api-set-consent" => http!(api_set_consent),
        "api-get-routing-rules" => http!(api_get_routing_rules),
        "api-list-teams" => http!(api_list_teams),
        "api-put-team" => http!(api_put_team),
        "api-list-agents" => http!(api_list_agents),
        "api-put-agent" => http!(api_put_agent),
        "api-get-contact" => http!(api_get_contact),
        "api-list-notes" => http!(api_list_notes),
        "api-add-note" => http!(api_add_note),
        "api-update-conversation" => http!(api_update_conversation),
        "api-assign-conversation" => http!(api_assign_conversation),
        other => bail!("template.yaml routes HTTP to {other}, which the local gateway does not know"),
    })
}

async fn ws_function(binary: &str, cfg: &Config, aws: &aws_config::SdkConfig) -> Result<WsFn> {
    macro_rules! ws {
        ($krate:ident) => {{
            let deps =
                Arc::new($krate::Deps::from_config(cfg, aws).await.with_context(|| format!("configuring {binary}"))?);
            let f: WsFn = Arc::new(move |ev| {
                let deps = deps.clone();
                Box::pin(async move { $krate::handle(&deps, ev).await })
            });
            f
        }};
    }
    Ok(match binary {
        "ws-connect" => ws!(ws_connect),
        "ws-disconnect" => ws!(ws_disconnect),
        "ws-presence" => ws!(ws_presence),
        "ws-activity" => ws!(ws_activity),
        "webchat-connect" => ws!(webchat_connect),
        "webchat-disconnect" => ws!(webchat_disconnect),
        "webchat-message" => ws!(webchat_message),
        "webchat-activity" => ws!(webchat_activity),
        "webchat-identify" => ws!(webchat_identify),
        "webchat-upload" => ws!(webchat_upload),
        other => bail!("template.yaml routes a WebSocket route to {other}, which the local gateway does not know"),
    })
}

async fn sqs_function(binary: &str, cfg: &Config, aws: &aws_config::SdkConfig) -> Result<SqsFn> {
    macro_rules! sqs {
        ($krate:ident) => {{
            let deps =
                Arc::new($krate::Deps::from_config(cfg, aws).await.with_context(|| format!("configuring {binary}"))?);
            let f: SqsFn = Arc::new(move |ev| {
                let deps = deps.clone();
                Box::pin(async move { $krate::handle(&deps, ev).await.map_err(|e| e.to_string()) })
            });
            f
        }};
    }
    Ok(match binary {
        "inbound-processor" => sqs!(inbound_processor),
        "outbound-sender" => sqs!(outbound_sender),
        "notifier" => sqs!(notifier),
        "webhook-sender" => sqs!(webhook_sender),
        "analytics-aggregator" => sqs!(analytics_aggregator),
        other => bail!("template.yaml maps a queue to {other}, which the local gateway does not know"),
    })
}

async fn invoke_function(binary: &str, cfg: &Config, aws: &aws_config::SdkConfig) -> Result<InvokeFn> {
    macro_rules! invoke {
        ($krate:ident) => {{
            let deps =
                Arc::new($krate::Deps::from_config(cfg, aws).await.with_context(|| format!("configuring {binary}"))?);
            let f: InvokeFn = Arc::new(move |payload| {
                let deps = deps.clone();
                Box::pin(async move {
                    // Lambda's runtime refuses an event it cannot deserialize; so does this.
                    let event = serde_json::from_value(payload).map_err(|e| format!("bad event: {e}"))?;
                    let out = $krate::handle(&deps, event).await.map_err(|e| e.to_string())?;
                    serde_json::to_value(out).map_err(|e| e.to_string())
                })
            });
            f
        }};
    }
    Ok(match binary {
        "conversation-wake" => invoke!(conversation_wake),
        "erase-contact" => invoke!(erase_contact),
        "sla-timer" => invoke!(sla_timer),
        "nps-run" => invoke!(nps_run),
        "retention-run" => invoke!(retention_run),
        "migrate-table" => invoke!(migrate_table),
        "inbound-email" => invoke!(inbound_email),
        "ses-events" => invoke!(ses_events),
        other => bail!("template.yaml has AWS invoke {other}, which the local gateway does not know"),
    })
}

/// Lambda's Invoke API (`POST /2015-03-31/functions/{name}/invocations`) for this stack's
/// functions, as Step Functions calls it: 200 with the result, or 200 with `X-Amz-Function-Error`
/// and Lambda's error shape when the function fails.
async fn invoke(
    State(functions): State<Arc<HashMap<String, InvokeFn>>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    body: Bytes,
) -> AxumResponse {
    let name = name.rsplit(":function:").next().unwrap_or(&name).split(':').next().unwrap_or_default().to_owned();
    let Some(f) = functions.get(&name) else {
        let body = serde_json::json!({ "Type": "User", "Message": format!("Function not found: {name}") });
        return (StatusCode::NOT_FOUND, [("x-amzn-errortype", "ResourceNotFoundException")], body.to_string())
            .into_response();
    };
    let payload: serde_json::Value = if body.is_empty() {
        serde_json::json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                let body = serde_json::json!({ "Type": "User", "message": format!("invalid JSON payload: {e}") });
                return (
                    StatusCode::BAD_REQUEST,
                    [("x-amzn-errortype", "InvalidRequestContentException")],
                    body.to_string(),
                )
                    .into_response();
            }
        }
    };
    match f(payload).await {
        Ok(out) => (StatusCode::OK, [("content-type", "application/json")], out.to_string()).into_response(),
        Err(e) => {
            tracing::error!(function = %name, error = %e, "invoked function failed");
            let body = serde_json::json!({ "errorMessage": e, "errorType": "Error" });
            (
                StatusCode::OK,
                [("content-type", "application/json"), ("x-amz-function-error", "Unhandled")],
                body.to_string(),
            )
                .into_response()
        }
    }
}

struct Router {
    routes: Vec<(HttpRoute, HttpFn)>,
    domain: String,
    /// Plays the HTTP API's JWT authorizer.
    oidc: Option<Arc<kit::oidc::OidcVerifier>>,
    /// The HTTP API's CORS configuration (API Gateway answers preflights itself).
    cors: Option<crate::template::Cors>,
}

/// API Gateway's CORS handling: a preflight from an allowed origin is answered here (204 with the
/// allowed methods and headers) and never reaches a function; other responses to an allowed origin
/// carry `access-control-allow-origin`. Origins not listed get no CORS headers.
fn cors_headers(cors: &crate::template::Cors, headers: &HeaderMap, preflight: bool) -> Vec<(String, String)> {
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else { return vec![] };
    if !cors.allow_origins.iter().any(|o| o == origin || o == "*") {
        return vec![];
    }
    let mut out = vec![("access-control-allow-origin".to_owned(), origin.to_owned()), ("vary".into(), "origin".into())];
    if preflight {
        out.push(("access-control-allow-methods".into(), cors.allow_methods.join(",")));
        out.push(("access-control-allow-headers".into(), cors.allow_headers.join(",")));
        if let Some(age) = cors.max_age {
            out.push(("access-control-max-age".into(), age.to_string()));
        }
    } else if !cors.expose_headers.is_empty() {
        out.push(("access-control-expose-headers".into(), cors.expose_headers.join(",")));
    }
    out
}

/// The functions' view of the local OpenID provider: its issuer and client, and the claims its ID
/// tokens name the workspace and roles with (not Cognito's defaults: the mapping is configuration).
pub fn oidc_env(issuer: &str) -> Vec<(String, String)> {
    vec![
        ("OIDC_ISSUER".into(), issuer.to_owned()),
        ("OIDC_AUDIENCE".into(), crate::dev::OIDC_CLIENT_ID.into()),
        ("OIDC_WORKSPACE_CLAIM".into(), "workspace".into()),
        ("OIDC_ROLE_CLAIM".into(), "roles".into()),
        ("OIDC_AGENT_CLAIM".into(), "sub".into()),
        // Invitations and access changes write to the local provider's users (Cognito's pool in AWS).
        ("LOCAL_OIDC_DIRECTORY".into(), issuer.to_owned()),
    ]
}

/// API Gateway's answer when its JWT authorizer refuses a request.
fn unauthorized() -> AxumResponse {
    (
        StatusCode::UNAUTHORIZED,
        [("content-type", "application/json"), ("www-authenticate", "Bearer")],
        r#"{"message":"Unauthorized"}"#,
    )
        .into_response()
}

/// The JWT authorizer: the bearer token verified against the provider's keys, its claims handed on
/// as API Gateway renders them. A dev token (HS256) passes through unverified for the function to
/// verify itself: a local convenience only; in AWS the authorizer refuses it.
async fn authorize(
    router: &Router,
    headers: &HeaderMap,
) -> std::result::Result<Option<HashMap<String, String>>, AxumResponse> {
    let header = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let token = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).map(str::trim);
    let Some(token) = token.filter(|t| !t.is_empty()) else { return Err(unauthorized()) };
    if kit::auth::Authenticator::is_dev_token(token) {
        return Ok(None);
    }
    let Some(oidc) = &router.oidc else { return Err(unauthorized()) };
    match oidc.verify(token).await {
        Ok(claims) => Ok(Some(kit::oidc::as_authorizer_claims(&claims))),
        Err(e) => {
            tracing::info!(error = %e, "the JWT authorizer refused a token");
            Err(unauthorized())
        }
    }
}

type PathParams = Vec<(String, String)>;

/// A matched route: the route, its handler and the path parameters it bound.
struct Matched<'a> {
    literal_segments: usize,
    route: &'a HttpRoute,
    handler: &'a HttpFn,
    params: PathParams,
}

impl Router {
    /// The matching route and its path parameters; literal segments beat `{param}` segments.
    fn find(&self, method: &str, path: &str) -> Option<Matched<'_>> {
        let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let mut best: Option<Matched<'_>> = None;
        for (route, f) in &self.routes {
            if route.method != method && route.method != "ANY" {
                continue;
            }
            let tsegs: Vec<&str> = route.path.trim_end_matches('/').split('/').collect();
            if tsegs.len() != segs.len() {
                continue;
            }
            let mut params = vec![];
            let mut literal = 0;
            let ok = tsegs.iter().zip(&segs).all(|(t, s)| {
                if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    // HTTP APIs hand Lambda path parameters percent-decoded.
                    let value = percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
                    params.push((name.to_owned(), value));
                    !s.is_empty()
                } else {
                    literal += 1;
                    t == s
                }
            });
            if ok && best.as_ref().is_none_or(|b| literal > b.literal_segments) {
                best = Some(Matched { literal_segments: literal, route, handler: f, params });
            }
        }
        best
    }
}

async fn serve(
    State(router): State<Arc<Router>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> AxumResponse {
    let preflight = method == Method::OPTIONS && headers.contains_key("access-control-request-method");
    let mut res = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        route(&router, method, uri, &headers, body).await
    };
    for (k, v) in router.cors.as_ref().map(|c| cors_headers(c, &headers, preflight)).unwrap_or_default() {
        if let (Ok(k), Ok(v)) = (axum::http::HeaderName::try_from(k), axum::http::HeaderValue::try_from(v)) {
            res.headers_mut().insert(k, v);
        }
    }
    res
}

async fn route(router: &Router, method: Method, uri: Uri, headers: &HeaderMap, body: Bytes) -> AxumResponse {
    let path = uri.path();
    let Some(Matched { route, handler: f, params, .. }) = router.find(method.as_str(), path) else {
        return (StatusCode::NOT_FOUND, [("content-type", "application/json")], r#"{"message":"Not Found"}"#)
            .into_response();
    };
    let authorizer_claims = match &route.authorizer {
        None => None,
        Some(_) => match authorize(router, headers).await {
            Ok(claims) => claims,
            Err(refused) => return refused,
        },
    };
    let event = HttpEvent {
        authorizer_claims,
        method: method.as_str(),
        route_path: &route.path,
        raw_path: path,
        raw_query: uri.query().unwrap_or(""),
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        path_parameters: params,
        body: (!body.is_empty()).then_some(&body[..]),
        domain_name: &router.domain,
        source_ip: "127.0.0.1",
    };
    let res = f(event.to_request()).await;
    let (parts, body) = res.into_parts();
    let bytes: Vec<u8> = match body {
        Body::Empty => vec![],
        Body::Text(t) => t.into_bytes(),
        Body::Binary(b) => b,
        _ => vec![],
    };
    let mut out = AxumResponse::new(axum::body::Body::from(bytes));
    *out.status_mut() = parts.status;
    *out.headers_mut() = parts.headers;
    out
}

/// One event source mapping: long-polls the queue, hands batches to the function, deletes what it
/// processed and leaves reported failures for redelivery after the visibility timeout, like Lambda.
///
/// Several pollers share one queue, as Lambda's do; their receives take turns (`receiving`): SQS
/// hands out no message of a FIFO group while another of it is in flight, but moto checks that
/// without a lock, so two receives at the same instant could both take one group's messages and
/// reorder them. Taking turns receiving keeps moto's check sound; the batches are still processed
/// concurrently.
async fn poll(
    sqs: aws_sdk_sqs::Client,
    (url, arn): (String, String),
    mapping: SqsMapping,
    f: SqsFn,
    (wait, windows): (i32, bool),
    receiving: Arc<tokio::sync::Mutex<()>>,
) {
    let receive = |ask: i32, wait: i32| {
        let (sqs, url, receiving) = (sqs.clone(), url.clone(), receiving.clone());
        async move {
            let _turn = receiving.lock().await;
            sqs.receive_message()
                .queue_url(&url)
                .max_number_of_messages(ask.clamp(1, 10))
                .wait_time_seconds(wait)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .map(|out| out.messages.unwrap_or_default())
        }
    };
    let window = Duration::from_secs(if windows { mapping.batching_window_secs } else { 0 });
    loop {
        let mut messages = match receive(mapping.batch_size, wait).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(queue = %url, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        // A batch of more than ten is gathered over several receives: within the batching window,
        // or (no window) while the queue has more at once.
        let deadline = tokio::time::Instant::now() + window;
        while mapping.batch_size > 10 && (messages.len() as i32) < mapping.batch_size {
            let ask = (mapping.batch_size - messages.len() as i32).min(10);
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let wait = left.as_millis().div_ceil(1000).min(20) as i32;
            let Ok(more) = receive(ask, wait).await else { break };
            let short = (more.len() as i32) < ask;
            messages.extend(more);
            if short && (window.is_zero() || tokio::time::Instant::now() >= deadline) {
                break;
            }
        }
        let mut event = SqsEvent::default();
        let mut handles = HashMap::new();
        for m in messages {
            let mut rec = SqsMessage::default();
            rec.message_id = m.message_id.clone();
            rec.receipt_handle = m.receipt_handle.clone();
            rec.body = m.body.clone();
            rec.md5_of_body = m.md5_of_body.clone();
            rec.attributes =
                m.attributes.unwrap_or_default().into_iter().map(|(k, v)| (k.as_str().to_owned(), v)).collect();
            rec.event_source = Some("aws:sqs".into());
            rec.event_source_arn = Some(arn.clone());
            rec.aws_region = Some("us-east-1".into());
            if let (Some(id), Some(h)) = (m.message_id, m.receipt_handle) {
                handles.insert(id, h);
            }
            event.records.push(rec);
        }
        let failed: Vec<String> = match f(event).await {
            Ok(res) if mapping.report_batch_item_failures => {
                res.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
            }
            Ok(_) => vec![],
            Err(e) => {
                tracing::error!(function = %mapping.binary, error = %e, "function failed the whole batch");
                handles.keys().cloned().collect()
            }
        };
        let done: Vec<DeleteMessageBatchRequestEntry> = handles
            .iter()
            .filter(|(id, _)| !failed.contains(id))
            .enumerate()
            .filter_map(|(i, (_, h))| {
                DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(h).build().ok()
            })
            .collect();
        if !done.is_empty() {
            if let Err(e) = sqs.delete_message_batch().queue_url(&url).set_entries(Some(done)).send().await {
                tracing::warn!(queue = %url, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "delete failed");
            }
        }
    }
}

impl Stack {
    /// Provisions the template's resources under `opts.stack_name` and serves every route and queue.
    pub async fn start(template: &Template, opts: StackOptions, aws: &aws_config::SdkConfig) -> Result<Stack> {
        let provisioned = provision(template, &opts.stack_name, aws).await?;
        let listener = tokio::net::TcpListener::bind(opts.http_addr)
            .await
            .with_context(|| format!("binding {}", opts.http_addr))?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let mappings = template.sqs_mappings()?;
        let config_for = |binary: &str| -> Result<Config> {
            let mut vars: Vec<(String, String)> = vec![
                ("TABLE_NAME".into(), provisioned.table.clone()),
                ("TWILIO_AUTH_TOKEN".into(), opts.twilio_auth_token.clone()),
                ("TWILIO_ACCOUNT_SID".into(), opts.twilio_account_sid.clone()),
                ("TWILIO_API_BASE".into(), opts.twilio_api_base.clone()),
                ("JWT_SECRET".into(), opts.jwt_secret.clone()),
                // Each key its own, as the template's generated secrets are.
                ("VISITOR_TOKEN_SECRET".into(), format!("{}:visitor-tokens", opts.jwt_secret)),
                ("LINK_SIGNING_SECRET".into(), format!("{}:rating-links", opts.jwt_secret)),
                // The domains SES receives for (the template's EmailDomain).
                ("EMAIL_DOMAIN".into(), opts.email_domains.join(",")),
                ("PUBLIC_BASE_URL".into(), base_url.clone()),
                // Workspaces' own provider credentials, in moto's Secrets Manager (the template's
                // Globals set the same).
                ("CREDENTIALS_PREFIX".into(), format!("{}/credentials/", opts.stack_name)),
                ("SEND_RETRY_BASE_MS".into(), opts.send_retry_base_ms.to_string()),
                // Outbound webhooks may go to http and loopback here (the local receiver).
                ("WEBHOOK_REACH".into(), "local".into()),
                // The @connections management API is served by this gateway, at its root.
                ("WEBSOCKET_ENDPOINT".into(), base_url.clone()),
                ("VISITOR_SOCKET_ENDPOINT".into(), format!("{base_url}{}", socket_prefix(VISITOR_API))),
                ("VISITOR_SOCKET_URL".into(), format!("ws://{addr}{}/ws", socket_prefix(VISITOR_API))),
            ];
            if let Some(issuer) = &opts.oidc_issuer {
                vars.extend(oidc_env(issuer));
            }
            vars.extend(opts.extra_env.iter().cloned());
            for (var, machine) in template.state_machine_env(binary) {
                let arn = provisioned
                    .state_machine_arns
                    .get(&machine)
                    .ok_or_else(|| anyhow!("{binary}: {var} names unknown state machine {machine}"))?;
                vars.push((var, arn.clone()));
            }
            for (var, bucket) in template.bucket_env(binary) {
                let name = provisioned
                    .buckets
                    .get(&bucket)
                    .ok_or_else(|| anyhow!("{binary}: {var} names unknown bucket {bucket}"))?;
                vars.push((var, name.clone()));
            }
            for (var, queue) in template.queue_env(binary) {
                let url = provisioned
                    .queue_urls
                    .get(&queue)
                    .ok_or_else(|| anyhow!("{binary}: {var} names unknown queue {queue}"))?;
                vars.push((var, url.clone()));
            }
            if let Some(m) = mappings.iter().find(|m| m.binary == binary) {
                if let Some(max) = provisioned.max_receives.get(&m.queue_logical_id) {
                    vars.push(("MAX_RECEIVES".into(), max.to_string()));
                }
            }
            Ok(Config::from_map(vars))
        };

        let mut routes = vec![];
        for route in template.http_routes() {
            let f = http_function(&route.binary, &config_for(&route.binary)?, aws).await?;
            routes.push((route, f));
        }
        let oidc = opts
            .oidc_issuer
            .as_deref()
            .map(|issuer| Arc::new(kit::oidc::OidcVerifier::new(issuer, vec![crate::dev::OIDC_CLIENT_ID.into()])));
        let router = Arc::new(Router {
            routes,
            domain: addr.to_string(),
            oidc,
            cors: template.cors().map(|mut c| {
                c.allow_origins.extend(opts.console_origins.iter().cloned());
                c
            }),
        });
        // Each WebSocket API of the template on its own path, with its own @connections endpoint.
        let mut apis: std::collections::BTreeMap<String, Vec<(crate::template::WsRoute, WsFn)>> = Default::default();
        for route in template.ws_routes()? {
            let f = ws_function(&route.binary, &config_for(&route.binary)?, aws).await?;
            apis.entry(route.api.clone()).or_default().push((route, f));
        }
        let mut ws_app = axum::Router::new();
        for (api, routes) in apis {
            let prefix = socket_prefix(&api);
            let sockets = Arc::new(Sockets::new(routes, addr.to_string(), opts.ws_idle, opts.ws_max_age));
            ws_app = ws_app.merge(
                axum::Router::new()
                    .route(&format!("{prefix}/ws"), axum::routing::get(sockets::upgrade))
                    .route(
                        &format!("{prefix}/@connections/{{id}}"),
                        axum::routing::post(sockets::post).get(sockets::get).delete(sockets::delete),
                    )
                    .with_state(sockets),
            );
        }
        // Functions AWS services invoke: Step Functions tasks, the SES receipt rule's action, SNS
        // subscribers, schedules; and those an operator invokes by hand (no event).
        let mut invocable = HashMap::new();
        let receipt_rules = template.receipt_rules()?;
        let mut invoked: Vec<String> =
            template.state_machines(&opts.stack_name)?.into_iter().flat_map(|m| m.invokes).collect();
        invoked.extend(receipt_rules.iter().map(|r| r.binary.clone()));
        invoked.extend(template.sns_functions());
        invoked.extend(template.scheduled_functions());
        invoked.extend(template.manual_functions());
        for binary in invoked {
            if let std::collections::hash_map::Entry::Vacant(slot) =
                invocable.entry(format!("{}--{binary}", opts.stack_name))
            {
                slot.insert(invoke_function(&binary, &config_for(&binary)?, aws).await?);
            }
        }
        let invocable = Arc::new(invocable);
        crate::provision::verify_email_domains(&opts.email_domains, &aws_sdk_sesv2::Client::new(aws)).await?;
        let mail = Arc::new(crate::mail::Receiving::new(
            &receipt_rules,
            &provisioned,
            &opts.stack_name,
            invocable.clone(),
            aws_sdk_s3::Client::new(aws),
        )?);
        let lambda_app = axum::Router::new()
            .route("/2015-03-31/functions/{name}/invocations", axum::routing::post(invoke))
            .with_state(invocable);
        let mail_app = axum::Router::new()
            .route("/_local/ses/receive", axum::routing::post(crate::mail::receive))
            .with_state(mail);
        let app =
            axum::Router::new().fallback(serve).with_state(router).merge(ws_app).merge(lambda_app).merge(mail_app);
        // Step Functions (moto) finds this stack's functions here.
        if let Ok(dir) = std::env::var(crate::services::LAMBDA_ROUTES_ENV) {
            let file = std::path::Path::new(&dir).join(&opts.stack_name);
            std::fs::write(&file, &base_url).with_context(|| format!("registering {}", file.display()))?;
        }
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "gateway stopped");
            }
        })];

        let sqs = aws_sdk_sqs::Client::new(aws);
        for mapping in &mappings {
            let f = sqs_function(&mapping.binary, &config_for(&mapping.binary)?, aws).await?;
            let url = provisioned
                .queue_urls
                .get(&mapping.queue_logical_id)
                .cloned()
                .ok_or_else(|| anyhow!("unknown queue"))?;
            let arn = provisioned.queue_arns.get(&mapping.queue_logical_id).cloned().unwrap_or_default();
            let pollers = opts.pollers_per_queue.max(1).min(mapping.maximum_concurrency.unwrap_or(usize::MAX));
            let receiving = Arc::new(tokio::sync::Mutex::new(()));
            for _ in 0..pollers {
                let queue = (url.clone(), arn.clone());
                let (f, receiving) = (f.clone(), receiving.clone());
                tasks.push(tokio::spawn(poll(
                    sqs.clone(),
                    queue,
                    mapping.clone(),
                    f,
                    (opts.poll_wait_secs, opts.batching_windows),
                    receiving,
                )));
            }
        }
        let ws_url = format!("ws://{addr}{}/ws", socket_prefix(AGENT_API));
        let visitor_ws_url = format!("ws://{addr}{}/ws", socket_prefix(VISITOR_API));
        Ok(Stack { base_url, ws_url, visitor_ws_url, provisioned, tasks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> HttpFn {
        Arc::new(|_| Box::pin(async { Response::new(Body::Empty) }))
    }

    #[test]
    fn routes_match_like_api_gateway() {
        let r = |m: &str, p: &str, b: &str| {
            (HttpRoute { method: m.into(), path: p.into(), binary: b.into(), authorizer: None }, noop())
        };
        let router = Router {
            routes: vec![
                r("GET", "/conversations", "list"),
                r("GET", "/conversations/{id}", "get"),
                r("GET", "/conversations/{id}/messages", "msgs"),
                r("POST", "/conversations/{id}/messages", "send"),
                r("GET", "/conversations/stats", "stats"),
            ],
            domain: "x".into(),
            oidc: None,
            cors: None,
        };
        let find = |m: &str, p: &str| router.find(m, p).map(|m| (m.route.binary.clone(), m.params));
        assert_eq!(find("GET", "/conversations").unwrap().0, "list");
        assert_eq!(find("GET", "/conversations/abc").unwrap(), ("get".into(), vec![("id".into(), "abc".into())]));
        assert_eq!(find("GET", "/conversations/stats").unwrap().0, "stats", "literal beats parameter");
        assert_eq!(find("POST", "/conversations/abc/messages").unwrap().0, "send");
        assert!(find("DELETE", "/conversations/abc").is_none());
        assert!(find("GET", "/nope").is_none());
    }
}
