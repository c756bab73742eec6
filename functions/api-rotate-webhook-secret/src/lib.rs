//! POST /webhook-endpoints/{id}/rotate-secret — a new signing secret (admins), shown this once. The previous
//! one keeps signing for 24 hours (every delivery carries both signatures), so receivers switch
//! without losing a delivery. Audited without the secret.

use api::hooks::{endpoint_view, managed_endpoint, new_secret, HookAdmin};
use domain::hooks::ROTATION_OVERLAP;
use kit::http::{json, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use time::OffsetDateTime;

pub use api::hooks::HookAdmin as Deps;

pub async fn handle(deps: &HookAdmin, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(rotate(deps, &req).await))
}

#[utoipa::path(post, path = "/webhook-endpoints/{id}/rotate-secret", operation_id = "rotateWebhookSecret", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint")),
    responses((status = 200, description = "The new secret, shown this once; the old one signs 24 h more", body = api::hooks::EndpointWithSecret), (status = 404, body = kit::http::ErrorBody), (status = 409, body = kit::http::ErrorBody)))]
async fn rotate(deps: &HookAdmin, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    let id: String = path_param(req, "id", |s| Ok::<_, domain::ParseError>(s.to_owned()))?;
    let current = managed_endpoint(&*deps.store, &who, &id).await?;
    let now = OffsetDateTime::now_utc();
    let secret = new_secret(now)?;
    let mut next = current.clone();
    next.rotate(secret.clone(), now, ROTATION_OVERLAP);
    next.version = current.version + 1;
    deps.store.put_endpoint(&next, Some(current.version)).await?;
    let view = endpoint_view(&next);
    let details = serde_json::to_value(&view).unwrap_or_default();
    api::record_workspace_change(&*deps.store, &who, "webhook_secret_rotated", details).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, endpoint = %id, "webhook secret rotated");
    Ok(json(200, &api::hooks::EndpointWithSecret { endpoint: view, secret: secret.key }))
}
