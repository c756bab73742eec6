//! GET /webhook-endpoints/{id}/deliveries — an endpoint's delivery log (admins), newest first: per event its
//! `webhook-id`, type, state (`retrying`, `succeeded`, `failed`), every attempt (time, HTTP status,
//! latency, error, manual) and the next attempt's time. Query: `limit` (1-100, default 50),
//! `cursor`. Kept 30 days.

use api::hooks::{managed_endpoint, HookAdmin};
use domain::ports::Cursor;
use kit::http::{limit_param, page_response, path_param, query_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::hooks::HookAdmin as Deps;

pub async fn handle(deps: &HookAdmin, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(list(deps, &req).await))
}

#[utoipa::path(get, path = "/webhook-endpoints/{id}/deliveries", operation_id = "listWebhookDeliveries", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint"),
           ("limit" = Option<u16>, Query, description = "1-100, default 50"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "Newest first", body = kit::http::PageBody<domain::hooks::Delivery>), (status = 404, body = kit::http::ErrorBody)))]
async fn list(deps: &HookAdmin, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    let id: String = path_param(req, "id", |s| Ok::<_, domain::ParseError>(s.to_owned()))?;
    managed_endpoint(&*deps.store, &who, &id).await?;
    let limit = limit_param(req, 50, 100)?;
    let cursor = query_param(req, "cursor").map(Cursor);
    Ok(page_response(deps.store.deliveries(&who.workspace, &id, limit, cursor.as_ref()).await?))
}
