//! GET /conversations/{id}/messages/{message_id}/attachments/{index} — a file of a message (a
//! customer's photo, a voicemail, an email attachment, a visitor's upload) as a presigned link that
//! works for five minutes: 200 `{"url", "expires_at", "content_type", "filename", "size_bytes"}`.
//! The console sets the link as an image's `src` or downloads it; the bucket stays private.
//!
//! Agents, supervisors and admins (finance reads costs, not customers' files). 404 for a message or
//! file that is not in the caller's workspace, or one never copied into our bucket (a provider's
//! media that failed to download); a link is signed only for a key of the caller's workspace
//! (`domain::objects::is_workspace_file`), whatever the message says.

use std::sync::Arc;

use domain::ports::Uploads;
use domain::{ConversationId, MessageId};
use kit::auth::{Authenticator, INBOX};
use kit::http::{json, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use store::Store;

/// How long a link works: long enough to open, short enough that a forwarded link dies quickly.
pub const LINK_TTL: time::Duration = time::Duration::minutes(5);

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
    pub links: Arc<dyn Uploads>,
    /// The bucket files are stored in (`MEDIA_BUCKET`): no link for any other.
    pub bucket: String,
}

impl Deps {
    /// `TABLE_NAME`, `MEDIA_BUCKET`, the claim names.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let api = api::Deps::from_config(config, aws).await?;
        let bucket = config.required("MEDIA_BUCKET")?;
        let s3 = providers::s3::S3Files::new(aws_sdk_s3::Client::new(aws), bucket.clone());
        Ok(Self { store: api.store, auth: api.auth, links: Arc::new(s3), bucket })
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(link(deps, &req).await))
}

#[utoipa::path(get, path = "/conversations/{id}/messages/{message_id}/attachments/{index}", operation_id = "getAttachment", tag = "conversations",
    params(("id" = String, Path, description = "The conversation"), ("message_id" = String, Path, description = "The message"),
           ("index" = usize, Path, description = "The file's position in the message's attachments (0, 1, …)")),
    responses((status = 200, description = "A presigned link valid five minutes", body = FileLink), (status = 404, body = kit::http::ErrorBody)))]
async fn link(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let conversation = path_param(req, "id", ConversationId::parse)?;
    let message = path_param(req, "message_id", MessageId::parse)?;
    let index = path_param(req, "index", |s| {
        s.parse::<usize>()
            .map_err(|_| domain::ParseError::Invalid { kind: "attachment index", reason: "0, 1, 2…".into() })
    })?;
    let (_, Some(m)) = deps.store.conversation_with_message(&who.workspace, conversation, message).await? else {
        return Err(ApiError::NotFound(format!("no message {message} in conversation {conversation}")));
    };
    let a =
        m.attachments.get(index).ok_or_else(|| ApiError::NotFound(format!("message {message} has no file {index}")))?;
    let key = match domain::objects::parse_s3_url(&a.url) {
        Some((bucket, key)) if bucket == deps.bucket && domain::objects::is_workspace_file(&who.workspace, key) => key,
        _ => return Err(ApiError::NotFound(format!("file {index} of message {message} is not stored with us"))),
    };
    let url = deps.links.download_url(key, LINK_TTL).await?;
    let expires_at = time::OffsetDateTime::now_utc() + LINK_TTL;
    tracing::info!(workspace = %who.workspace, by = %who.agent, %message, index, "file link issued");
    Ok(json(
        200,
        &FileLink {
            url,
            expires_at,
            content_type: a.content_type.clone(),
            filename: a.filename.clone(),
            size_bytes: a.size_bytes,
        },
    ))
}

/// A short-lived link to a stored file.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct FileLink {
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
    pub content_type: String,
    pub filename: Option<String>,
    pub size_bytes: Option<u64>,
}
