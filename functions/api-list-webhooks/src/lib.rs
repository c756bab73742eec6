//! GET /webhook-endpoints — the workspace's webhook endpoints (admins), secrets masked, with the event
//! names an endpoint may subscribe to.

use api::hooks::{endpoint_view, HookAdmin};
use domain::hooks::EventType;
use kit::auth::ADMINS;
use kit::http::{json, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::hooks::HookAdmin as Deps;

pub async fn handle(deps: &HookAdmin, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(list(deps, &req).await))
}

async fn list(deps: &HookAdmin, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(ADMINS)?;
    let mut endpoints = deps.store.endpoints(&who.workspace).await?;
    endpoints.sort_by_key(|e| e.created_at);
    let views: Vec<serde_json::Value> = endpoints.iter().map(endpoint_view).collect();
    let events: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    Ok(json(200, &serde_json::json!({ "endpoints": views, "events": events })))
}
