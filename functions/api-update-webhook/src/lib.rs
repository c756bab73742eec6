//! PUT /webhook-endpoints/{id} — change an endpoint (admins): `{"url"?, "events"?, "description"?,
//! "enabled"?}`, each optional. Enabling an endpoint that was disabled for failing clears its
//! failure record; deliveries it missed can be sent again from its log. Audited before and after.

use api::hooks::{endpoint_view, managed_endpoint, Draft, HookAdmin, DRAFT_SHAPE};
use kit::http::{json, json_body, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use time::OffsetDateTime;

pub use api::hooks::HookAdmin as Deps;

pub async fn handle(deps: &HookAdmin, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(update(deps, &req).await))
}

#[utoipa::path(put, path = "/webhook-endpoints/{id}", operation_id = "updateWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint")),
    request_body = api::hooks::Draft,
    responses((status = 200, body = api::hooks::EndpointChanged), (status = 404, body = kit::http::ErrorBody), (status = 409, body = kit::http::ErrorBody)))]
async fn update(deps: &HookAdmin, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    let id: String = path_param(req, "id", |s| Ok::<_, domain::ParseError>(s.to_owned()))?;
    let current = managed_endpoint(&*deps.store, &who, &id).await?;
    let draft: Draft = json_body(req, DRAFT_SHAPE)?;
    let mut next = current.clone();
    if let Some(url) = draft.checked_url(deps.reach)? {
        next.url = url;
    }
    if let Some(events) = draft.event_types()? {
        next.events = events;
    }
    if draft.description.is_some() {
        next.description = draft.checked_description()?.filter(|d| !d.is_empty());
    }
    if let Some(on) = draft.enabled {
        if on && !current.enabled {
            next.disabled_reason = None;
            next.failing_since = None;
        }
        next.enabled = on;
    }
    let changed = next != current;
    if changed {
        next.updated_at = OffsetDateTime::now_utc();
        next.version = current.version + 1;
        deps.store.put_endpoint(&next, Some(current.version)).await?;
        let details = serde_json::json!({ "before": endpoint_view(&current), "after": endpoint_view(&next) });
        api::record_workspace_change(&*deps.store, &who, "webhook_changed", details).await?;
        tracing::info!(workspace = %who.workspace, by = %who.agent, endpoint = %id, "webhook endpoint changed");
    }
    Ok(json(200, &api::hooks::EndpointChanged { endpoint: endpoint_view(&next), changed }))
}
