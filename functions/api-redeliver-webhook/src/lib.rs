//! POST /webhook-endpoints/{id}/deliveries/{msg_id}/redeliver — send one logged delivery again (admins):
//! the same `webhook-id` and body, freshly signed, on the full retry schedule. 202 once queued.

use std::sync::Arc;

use app::hooks::{redeliver, RedeliverError};
use domain::ports::HookQueue;
use kit::auth::Authenticator;
use kit::http::{json, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use store::Store;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
    pub queue: Arc<dyn HookQueue>,
}

impl Deps {
    /// `TABLE_NAME`, the JWT secret, `WEBHOOK_QUEUE_URL`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let deps = api::Deps::from_config(config, aws).await?;
        let queue = queue::SqsQueue::new(aws_sdk_sqs::Client::new(aws), config.required("WEBHOOK_QUEUE_URL")?);
        Ok(Self { store: deps.store, auth: deps.auth, queue: Arc::new(queue) })
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(send_again(deps, &req).await))
}

#[utoipa::path(post, path = "/webhook-endpoints/{id}/deliveries/{msg_id}/redeliver", operation_id = "redeliverWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint"), ("msg_id" = String, Path, description = "The delivery's webhook-id")),
    responses((status = 202, description = "Queued, with the same webhook-id", body = Redelivery), (status = 404, body = kit::http::ErrorBody)))]
async fn send_again(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    let id: String = path_param(req, "id", |s| Ok::<_, domain::ParseError>(s.to_owned()))?;
    let msg_id: String = path_param(req, "msg_id", |s| Ok::<_, domain::ParseError>(s.to_owned()))?;
    api::hooks::managed_endpoint(&*deps.store, &who, &id).await?;
    if !domain::hooks::is_message_id(&msg_id) {
        return Err(ApiError::NotFound(format!("no delivery {msg_id}")));
    }
    let job = match redeliver(&*deps.store, &*deps.queue, &who.workspace, &id, &msg_id).await {
        Ok(job) => job,
        Err(RedeliverError::NotFound) => return Err(ApiError::NotFound(format!("no delivery {msg_id}"))),
        Err(RedeliverError::App(e)) => return Err(e.into()),
    };
    api::record_workspace_change(
        &*deps.store,
        &who,
        "webhook_redelivered",
        serde_json::json!({ "endpoint_id": id, "msg_id": msg_id, "event": job.event }),
    )
    .await?;
    Ok(json(202, &Redelivery { msg_id: job.msg_id, event: job.event, queued: true }))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Redelivery {
    pub msg_id: String,
    pub event: domain::hooks::EventType,
    pub queued: bool,
}
