//! DELETE /webhook-endpoints/{id} — stop sending to an endpoint (admins). Deliveries already queued are
//! dropped; its log expires on its own. Audited.

use api::hooks::{endpoint_view, managed_endpoint, HookAdmin};
use kit::http::{path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::hooks::HookAdmin as Deps;

pub async fn handle(deps: &HookAdmin, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(delete(deps, &req).await))
}

#[utoipa::path(delete, path = "/webhook-endpoints/{id}", operation_id = "deleteWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint")),
    responses((status = 204, description = "Deleted"), (status = 404, body = kit::http::ErrorBody)))]
async fn delete(deps: &HookAdmin, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    let id: String = path_param(req, "id", |s| Ok::<_, domain::ParseError>(s.to_owned()))?;
    let current = managed_endpoint(&*deps.store, &who, &id).await?;
    deps.store.delete_endpoint(&who.workspace, &id).await?;
    let details = serde_json::to_value(endpoint_view(&current)).unwrap_or_default();
    api::record_workspace_change(&*deps.store, &who, "webhook_deleted", details).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, endpoint = %id, "webhook endpoint deleted");
    Response::builder().status(204).body(Body::Empty).map_err(|e| ApiError::Internal(Box::new(e)))
}
