//! The `message` route of the web chat visitors' WebSocket API:
//! `{"action":"message","client_id":"…","text":"…","attachments":[{"key":"<upload key>"}]}`.
//!
//! The message is checked (text length, at most five files, each one of this visitor's own
//! uploads and actually in the bucket), then enqueued as a `webchat` message like any channel's:
//! the inbound processor makes the visitor a contact and threads it. Two-way: the answer
//! `{"action":"message","client_id":…,"status":"accepted","availability":{…}}` comes only once it
//! is enqueued, and tells the visitor when to expect a reply (and whether to leave an email).
//! The same `client_id` again (a retry after a reconnect) stores nothing twice.

use std::sync::Arc;

use domain::channels::webchat::{self, VisitorMessage};
use domain::events::InboundEvent;
use domain::model::Attachment;
use domain::ports::{InboundQueue, Uploads};
use kit::http::ApiError;
use kit::ws::{ok, respond, WsRequest, WsResponse};
use store::Store;
use time::OffsetDateTime;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn InboundQueue>,
    pub uploads: Arc<dyn Uploads>,
    /// Every answer carries the widget's availability: its inputs are read once per 10 s.
    pub availability: app::cache::TtlCache<domain::WorkspaceId, app::cache::AvailabilityInputs>,
}

impl Deps {
    /// `TABLE_NAME`, `INBOUND_QUEUE_URL`, `MEDIA_BUCKET`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self {
            store: Arc::new(store::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.required("TABLE_NAME")?,
            )),
            queue: Arc::new(queue::SqsQueue::new(aws_sdk_sqs::Client::new(aws), config.required("INBOUND_QUEUE_URL")?)),
            uploads: Arc::new(providers::s3::S3Files::new(
                aws_sdk_s3::Client::new(aws),
                config.required("MEDIA_BUCKET")?,
            )),
            availability: app::cache::TtlCache::new(app::cache::AVAILABILITY_TTL),
        })
    }
}

pub async fn handle(deps: &Deps, req: WsRequest) -> WsResponse {
    respond(send(deps, &req, OffsetDateTime::now_utc()).await)
}

/// The files a message names, as attachments: each must be in the bucket, of an accepted type
/// and size (a browser could PUT something else than it asked to).
async fn files(deps: &Deps, msg: &VisitorMessage) -> Result<Vec<Attachment>, ApiError> {
    let mut out = vec![];
    for a in &msg.attachments {
        let Some(found) = deps.uploads.uploaded(&a.key).await? else {
            return Err(ApiError::Unprocessable(format!("{} was not uploaded (or its link expired)", a.key)));
        };
        let check = webchat::UploadRequest {
            action: None,
            file_name: a.key.rsplit('/').next().unwrap_or("file").to_owned(),
            content_type: found.content_type.clone(),
            size: found.size,
        };
        check.validate().map_err(|e| ApiError::Unprocessable(format!("{}: {e}", a.key)))?;
        out.push(Attachment {
            content_type: found.content_type,
            size_bytes: Some(found.size),
            url: found.url,
            filename: Some(check.file_name),
        });
    }
    Ok(out)
}

async fn send(deps: &Deps, req: &WsRequest, now: OffsetDateTime) -> Result<WsResponse, ApiError> {
    let conn = api::visitor(&*deps.store, req).await?;
    let ws = &conn.workspace;
    let raw = req.body.as_deref().ok_or_else(|| ApiError::BadRequest("empty message".into()))?;
    let msg = webchat::parse_message(raw.as_bytes(), ws, &conn.visitor)?;
    let bucket = webchat::message_bucket(&conn.visitor);
    if !deps.store.take(ws, &bucket, now, time::Duration::minutes(1), webchat::MESSAGES_PER_MINUTE).await? {
        return Err(ApiError::TooManyRequests(format!(
            "at most {} messages a minute; please wait a moment",
            webchat::MESSAGES_PER_MINUTE
        )));
    }
    let attachments = files(deps, &msg).await?;
    let profile = deps.store.visitor_profile(ws, &conn.visitor).await?;
    let client_id = msg.client_id.clone();
    let usage = domain::finance::Usage { sqs_requests_milli: 1000, ..Default::default() };
    let message =
        msg.into_parsed(&conn.visitor, &conn.key, profile.as_ref(), attachments).into_inbound(ws.clone(), now, usage);
    deps.queue.enqueue_inbound(&InboundEvent::Message(message)).await?;
    tracing::info!(workspace = %ws, visitor = %conn.visitor, "web chat message enqueued");
    let email_known = profile.as_ref().is_some_and(|p| p.email.is_some());
    let availability = app::cache::availability(&deps.availability, &*deps.store, ws, now, email_known).await?;
    Ok(ok(serde_json::json!({
        "action": "message",
        "client_id": client_id,
        "status": "accepted",
        "availability": availability,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::channels::webchat::VisitorId;
    use domain::ports::FileStore;
    use domain::WorkspaceId;
    use providers::memory::MemoryFiles;
    use queue::memory::MemoryQueue;
    use store::MemoryStore;

    const FIXTURE: &str = include_str!("../../../events/webchat-message/message.json");

    struct World {
        deps: Deps,
        queue: Arc<MemoryQueue>,
        files: Arc<MemoryFiles>,
        visitor: VisitorId,
    }

    async fn world() -> World {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(MemoryQueue::new());
        let files = Arc::new(MemoryFiles::default());
        let visitor = VisitorId::new();
        store::contract::seed_visitor_socket(
            &*store,
            &WorkspaceId::parse("demo").unwrap(),
            &visitor,
            "Vk9mY2hhdFRhYjE=",
        )
        .await;
        let availability = app::cache::TtlCache::new(app::cache::AVAILABILITY_TTL);
        World {
            deps: Deps { store, queue: queue.clone(), uploads: files.clone(), availability },
            queue,
            files,
            visitor,
        }
    }

    fn request(body: serde_json::Value) -> WsRequest {
        let mut req: WsRequest = serde_json::from_str(FIXTURE).unwrap();
        req.body = Some(body.to_string());
        req
    }

    #[tokio::test]
    async fn the_fixture_is_enqueued_as_the_visitors_webchat_message_and_the_visitor_is_told_when_to_expect_a_reply() {
        let w = world().await;
        let res = handle(&w.deps, serde_json::from_str(FIXTURE).unwrap()).await;
        assert_eq!(res.status_code, 200);
        let a = kit::ws::answer_json(&res);
        assert_eq!((a["status"].as_str(), a["client_id"].as_str()), (Some("accepted"), Some("m-1")));
        assert_eq!(
            (a["availability"]["state"].as_str(), a["availability"]["ask_for_email"].as_bool()),
            (Some("away"), Some(true))
        );
        let sent = w.queue.sent();
        assert_eq!(sent.len(), 1);
        let (group, dedup, body) = &sent[0];
        assert_eq!(group, &format!("demo:webchat:{}", w.visitor));
        assert_eq!(dedup, &format!("webchat:{}:m-1", w.visitor));
        assert_eq!((body["channel"].as_str(), body["our_address"].as_str()), (Some("webchat"), Some("wk_demo_site")));
        assert_eq!(body["text"], "Hi, my order #1042 never arrived");
    }

    #[tokio::test]
    async fn a_visitor_sending_faster_than_a_person_types_is_slowed_down() {
        let w = world().await;
        for i in 0..webchat::MESSAGES_PER_MINUTE {
            let req =
                request(serde_json::json!({ "action": "message", "client_id": format!("m-{i}"), "text": "spam" }));
            assert_eq!(handle(&w.deps, req).await.status_code, 200);
        }
        let req = request(serde_json::json!({ "action": "message", "client_id": "m-over", "text": "spam" }));
        let res = handle(&w.deps, req).await;
        assert_eq!(res.status_code, 429);
        assert_eq!(w.queue.sent().len(), webchat::MESSAGES_PER_MINUTE as usize, "nothing over the limit is enqueued");
    }

    #[tokio::test]
    async fn files_must_be_the_visitors_own_uploads_and_in_the_bucket() {
        let w = world().await;
        let ws = WorkspaceId::parse("demo").unwrap();
        let key = webchat::upload_key(&ws, &w.visitor, "receipt.pdf");
        let msg =
            |key: &str| serde_json::json!({ "action": "message", "client_id": "m-2", "attachments": [{ "key": key }] });
        // Asked for, never uploaded.
        assert_eq!(handle(&w.deps, request(msg(&key))).await.status_code, 422);
        // Uploaded as something a browser would run.
        let html = webchat::upload_key(&ws, &w.visitor, "x.html");
        w.files.put_file(&html, "text/html", b"<script>".to_vec()).await.unwrap();
        assert_eq!(handle(&w.deps, request(msg(&html))).await.status_code, 422);
        // Another visitor's file.
        let theirs = webchat::upload_key(&ws, &VisitorId::new(), "y.pdf");
        w.files.put_file(&theirs, "application/pdf", b"%PDF".to_vec()).await.unwrap();
        assert_eq!(handle(&w.deps, request(msg(&theirs))).await.status_code, 400);
        assert!(w.queue.sent().is_empty());

        w.files.put_file(&key, "application/pdf", b"%PDF-1.7".to_vec()).await.unwrap();
        let res = handle(&w.deps, request(msg(&key))).await;
        assert_eq!(res.status_code, 200, "{:?}", res.body);
        let body = &w.queue.sent()[0].2;
        assert_eq!(body["attachments"][0]["url"], format!("s3://memory/{key}"));
        assert_eq!(
            (body["attachments"][0]["size_bytes"].as_u64(), body["attachments"][0]["filename"].as_str()),
            (Some(8), Some("receipt.pdf"))
        );
    }

    #[tokio::test]
    async fn bad_frames_and_unknown_sockets_are_refused_with_a_reason() {
        let w = world().await;
        let res =
            handle(&w.deps, request(serde_json::json!({ "action": "message", "client_id": "m-3", "text": " " }))).await;
        assert_eq!(res.status_code, 400);
        assert!(kit::ws::answer_json(&res)["error"]["message"].as_str().unwrap().contains("nothing to send"));
        assert_eq!(handle(&w.deps, request(serde_json::json!({ "action": "message" }))).await.status_code, 400);
        let mut req = request(serde_json::json!({ "action": "message", "client_id": "m-4", "text": "hi" }));
        req.request_context.connection_id = Some("Z29uZQ==".into());
        assert_eq!(handle(&w.deps, req).await.status_code, 401);
        assert!(w.queue.sent().is_empty());
    }
}
