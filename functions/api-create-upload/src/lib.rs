//! POST /uploads — a file an agent is about to send: a presigned PUT straight to the media bucket
//! (no file passes through Lambda), valid 15 minutes, signed for exactly the type and size asked.
//! Body: `{"file_name": "refund.pdf", "content_type": "application/pdf", "size": 48213}` (pictures,
//! audio, video, PDF, text and office files up to 100 MB; nothing a browser would run). Answers
//! 201 `{"key", "url", "method": "PUT", "headers": {"content-type"}, "expires_at"}`; the browser
//! PUTs the file there, then names the `key` in a reply's `attachments`
//! (`POST /conversations/{id}/messages`), where the channel's own limits are checked.

use std::sync::Arc;

use domain::files::UploadRequest;
use domain::ports::Uploads;
use kit::auth::{Authenticator, INBOX};
use kit::http::{json, json_body, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub struct Deps {
    pub auth: Authenticator,
    pub uploads: Arc<dyn Uploads>,
}

impl Deps {
    /// `MEDIA_BUCKET` and the claim names.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let s3 = providers::s3::S3Files::new(aws_sdk_s3::Client::new(aws), config.required("MEDIA_BUCKET")?);
        Ok(Self { auth: Authenticator::from_config(config, aws).await?, uploads: Arc::new(s3) })
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(create(deps, &req).await))
}

#[utoipa::path(post, path = "/uploads", operation_id = "createUpload", tag = "conversations",
    request_body = UploadRequest,
    responses((status = 201, description = "Where to PUT the file, and the key to send it by", body = UploadLink)))]
async fn create(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let asked: UploadRequest = json_body(req, r#"{"file_name": "...", "content_type": "...", "size": <bytes>}"#)?;
    asked.validate()?;
    let key = domain::objects::agent_upload(&who.workspace, &who.agent, &asked.file_name);
    let ttl = domain::files::UPLOAD_URL_TTL;
    let url = deps.uploads.upload_url(&key, &asked.content_type, asked.size, ttl).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, size = asked.size, "agent upload link issued");
    let link = UploadLink {
        key,
        url,
        method: "PUT",
        headers: UploadHeaders { content_type: asked.content_type },
        expires_at: time::OffsetDateTime::now_utc() + ttl,
    };
    Ok(json(201, &link))
}

/// A presigned upload: PUT the file's bytes to `url` with `headers`, then send `key`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct UploadLink {
    pub key: String,
    pub url: String,
    pub method: &'static str,
    pub headers: UploadHeaders,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct UploadHeaders {
    #[serde(rename = "content-type")]
    pub content_type: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Role;
    use kit::auth::bearer;
    use providers::memory::MemoryFiles;

    async fn ask(deps: &Deps, role: Role, body: &str) -> (u16, serde_json::Value) {
        let auth = bearer("s", "acme", "ann", role);
        let req = kit::apigw::test_request(
            "POST",
            "/uploads",
            "/uploads",
            &[],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        let res = handle(deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    #[tokio::test]
    async fn agents_get_a_link_under_their_workspace_for_exactly_the_file() {
        let deps = Deps { auth: Authenticator::new("s"), uploads: Arc::new(MemoryFiles::default()) };
        let body = r#"{"file_name": "refund form.pdf", "content_type": "application/pdf", "size": 48213}"#;
        let (status, link) = ask(&deps, Role::Agent, body).await;
        assert_eq!(status, 201, "{link}");
        let key = link["key"].as_str().unwrap();
        let ws = domain::WorkspaceId::parse("acme").unwrap();
        assert!(domain::objects::is_agent_upload(&ws, key) && key.ends_with("/refund_form.pdf"), "{key}");
        assert_eq!(
            (link["method"].as_str(), link["headers"]["content-type"].as_str()),
            (Some("PUT"), Some("application/pdf"))
        );
        assert!(link["url"].as_str().unwrap().contains("size=48213"));

        assert_eq!(ask(&deps, Role::Finance, body).await.0, 403);
        assert_eq!(
            ask(&deps, Role::Agent, r#"{"file_name": "x.svg", "content_type": "image/svg+xml", "size": 9}"#).await.0,
            400
        );
    }
}
