//! The `upload` route of the web chat visitors' WebSocket API (two-way):
//! `{"action":"upload","file_name":"receipt.pdf","content_type":"application/pdf","size":48213}`
//! answers `{"action":"upload","key":"…","url":"…","method":"PUT","headers":{"content-type":…},
//! "expires_at":…}`: a presigned S3 PUT for exactly that type and size under the visitor's own
//! prefix, valid 15 minutes. The browser uploads there directly (no file passes through Lambda),
//! then names the `key` in a `message`, which checks the file is there and is theirs.

use std::sync::Arc;

use domain::channels::webchat;
use domain::ports::Uploads;
use kit::http::ApiError;
use kit::ws::{ok, respond, WsRequest, WsResponse};
use store::Store;
use time::OffsetDateTime;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub uploads: Arc<dyn Uploads>,
}

impl Deps {
    /// `TABLE_NAME`, `MEDIA_BUCKET`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self {
            store: Arc::new(store::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.required("TABLE_NAME")?,
            )),
            uploads: Arc::new(providers::s3::S3Files::new(
                aws_sdk_s3::Client::new(aws),
                config.required("MEDIA_BUCKET")?,
            )),
        })
    }
}

pub async fn handle(deps: &Deps, req: WsRequest) -> WsResponse {
    respond(upload(deps, &req, OffsetDateTime::now_utc()).await)
}

async fn upload(deps: &Deps, req: &WsRequest, now: OffsetDateTime) -> Result<WsResponse, ApiError> {
    let raw = req.body.as_deref().ok_or_else(|| ApiError::BadRequest("empty message".into()))?;
    let asked = webchat::parse_upload(raw.as_bytes())?;
    let conn = api::visitor(&*deps.store, req).await?;
    let bucket = webchat::upload_bucket(&conn.visitor);
    if !deps.store.take(&conn.workspace, &bucket, now, time::Duration::hours(1), webchat::UPLOADS_PER_HOUR).await? {
        return Err(ApiError::TooManyRequests(format!("at most {} files an hour", webchat::UPLOADS_PER_HOUR)));
    }
    let key = webchat::upload_key(&conn.workspace, &conn.visitor, &asked.file_name);
    let url = deps.uploads.upload_url(&key, &asked.content_type, asked.size, webchat::UPLOAD_URL_TTL).await?;
    tracing::info!(workspace = %conn.workspace, visitor = %conn.visitor, size = asked.size, "upload link issued");
    let expires_at =
        (now + webchat::UPLOAD_URL_TTL).format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    Ok(ok(serde_json::json!({
        "action": "upload",
        "key": key,
        "url": url,
        "method": "PUT",
        "headers": { "content-type": asked.content_type },
        "expires_at": expires_at,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::channels::webchat::VisitorId;

    use domain::WorkspaceId;
    use providers::memory::MemoryFiles;
    use store::MemoryStore;

    const FIXTURE: &str = include_str!("../../../events/webchat-upload/upload.json");

    #[tokio::test]
    async fn a_link_for_the_visitors_own_prefix_and_nothing_a_browser_would_run() {
        let store = Arc::new(MemoryStore::new());
        let v = VisitorId::new();
        let ws = WorkspaceId::parse("demo").unwrap();
        store::contract::seed_visitor_socket(&*store, &ws, &v, "Vk9mY2hhdFRhYjE=").await;
        let deps = Deps { store, uploads: Arc::new(MemoryFiles::default()) };
        let res = handle(&deps, serde_json::from_str(FIXTURE).unwrap()).await;
        assert_eq!(res.status_code, 200);
        let a = kit::ws::answer_json(&res);
        let key = a["key"].as_str().unwrap();
        assert!(webchat::owns_upload(&ws, &v, key) && key.ends_with("/receipt.pdf"), "{key}");
        assert_eq!(
            (a["method"].as_str(), a["headers"]["content-type"].as_str()),
            (Some("PUT"), Some("application/pdf"))
        );
        assert!(a["url"].as_str().unwrap().contains("size=48213"));

        let mut req: WsRequest = serde_json::from_str(FIXTURE).unwrap();
        req.body = Some(r#"{"action":"upload","file_name":"x.svg","content_type":"image/svg+xml","size":10}"#.into());
        let res = handle(&deps, req).await;
        assert_eq!(res.status_code, 400);
        assert!(kit::ws::answer_json(&res)["error"]["message"].as_str().unwrap().contains("not accepted"));
    }
}
