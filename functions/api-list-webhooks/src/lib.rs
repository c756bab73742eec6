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

#[utoipa::path(get, path = "/webhook-endpoints", operation_id = "listWebhooks", tag = "webhooks",
    responses((status = 200, body = Endpoints)))]
async fn list(deps: &HookAdmin, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(ADMINS)?;
    let mut endpoints = deps.store.endpoints(&who.workspace).await?;
    endpoints.sort_by_key(|e| e.created_at);
    let views = endpoints.iter().map(endpoint_view).collect();
    Ok(json(200, &Endpoints { endpoints: views, events: EventType::ALL.to_vec() }))
}

/// The workspace's endpoints, oldest first, and every event one may subscribe to.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Endpoints {
    pub endpoints: Vec<api::hooks::EndpointView>,
    pub events: Vec<EventType>,
}
