//! WhatsApp Cloud API webhook. `GET` answers Meta's subscription handshake (our verify token,
//! echoing `hub.challenge`); `POST` checks `X-Hub-Signature-256` over the raw body, copies every
//! message's media into the media bucket (fetched with the access token of the number it came to:
//! its workspace's own, connected with the number, else the stack's), then every message and status of every entry goes onto
//! the inbound FIFO queue for the workspace owning the business number (`phone_number_id`). Meta
//! gets its 200 only once all are enqueued; a media download that fails for now answers 503, so
//! Meta retries the whole delivery (the queue and the store drop what was enqueued already).
//! Meta's reviews of the templates we submitted (`message_template_status_update`,
//! `template_category_update`, `message_template_quality_update`) are written to the registry
//! before the 200 too (`app::templates`): a failed write answers 503 and Meta redelivers.

use api::webhook::Inbound;
use domain::channels::whatsapp::{self, WhatsApp};
use domain::ports::MediaResolver;
use std::sync::Arc;

use domain::ports::TemplateStore;
use kit::http::{respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
pub use providers::media::WhatsAppMedia;

pub struct Deps {
    pub inbound: Inbound<WhatsApp>,
    pub media: Option<WhatsAppMedia>,
    /// The template registry Meta's reviews update.
    pub templates: Arc<dyn TemplateStore>,
}

impl Deps {
    /// `WHATSAPP_CREDENTIALS` (a secret): `{"app_secret", "verify_token", "access_token"}`;
    /// `MEDIA_BUCKET` (media copied there; without it media stay named by id), optional
    /// `WHATSAPP_API_BASE`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let adapter: WhatsApp = config.json_secret("WHATSAPP_CREDENTIALS", aws).await?;
        let media = match api::webhook::media_copier(config, aws)? {
            // Each number's media with its own workspace's token where it connected one.
            Some(copier) => Some(WhatsAppMedia {
                copier,
                api_base: config.optional("WHATSAPP_API_BASE").unwrap_or_else(|| whatsapp::API_BASE.into()),
                tokens: Arc::new(providers::accounts::whatsapp_numbers(
                    api::credentials::vault(config, aws),
                    Some(adapter.access_token.clone()),
                )),
            }),
            None => None,
        };
        let templates =
            Arc::new(store::DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), config.required("TABLE_NAME")?));
        Ok(Self { inbound: Inbound::from_config(adapter, config, aws)?, media, templates })
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    let media = deps.media.as_ref().map(|m| m as &dyn MediaResolver);
    let post = req.method() == lambda_http::http::Method::POST;
    let body = (post && whatsapp::may_carry_template_reviews(req.body())).then(|| req.body().to_vec());
    let res = deps.inbound.handle_json_with(req, media).await;
    // Only a verified delivery (its signature checked above) may change the registry.
    match body.filter(|_| res.status() == 200) {
        Some(body) => Ok(reviews(deps, &body).await.unwrap_or(res)),
        None => Ok(res),
    }
}

/// Applies the template reviews in a verified delivery; an answer only when that fails.
async fn reviews(deps: &Deps, body: &[u8]) -> Option<Response<Body>> {
    let reviews = match whatsapp::template_reviews(body, time::OffsetDateTime::now_utc()) {
        Ok(r) if r.is_empty() => return None,
        Ok(r) => r,
        Err(e) => return Some(respond(Err(ApiError::BadRequest(e.to_string())))),
    };
    match app::templates::apply_reviews(&*deps.templates, &reviews).await {
        Ok(applied) => {
            tracing::info!(
                applied = applied.applied,
                stale = applied.stale,
                unknown = applied.unknown,
                "template reviews"
            );
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "template reviews not written: Meta will redeliver");
            Some(respond(Err(ApiError::Unavailable(Box::new(e)))))
        }
    }
}

/// `GET /webhooks/whatsapp` (served by [`handle`]), for the API's OpenAPI document.
#[utoipa::path(get, path = "/webhooks/whatsapp", operation_id = "whatsappHandshake", tag = "provider webhooks",
    params(("hub.mode" = String, Query), ("hub.verify_token" = String, Query), ("hub.challenge" = String, Query)),
    responses((status = 200, description = "hub.challenge, echoed", body = String, content_type = "text/plain"), (status = 403, description = "The provider's signature does not verify: nothing stored", body = kit::http::ErrorBody)))]
#[allow(dead_code)]
fn whatsapp_handshake() {}

/// `POST /webhooks/whatsapp` (served by [`handle`]), for the API's OpenAPI document.
#[utoipa::path(post, path = "/webhooks/whatsapp", operation_id = "whatsappEvents", tag = "provider webhooks",
    request_body(content = Object, description = "Meta's webhook payload, signed in X-Hub-Signature-256"),
    responses((status = 200, description = "Every message and status enqueued"), (status = 403, description = "The provider's signature does not verify: nothing stored", body = kit::http::ErrorBody)))]
#[allow(dead_code)]
fn whatsapp_events() {}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{ChannelAccount, ChannelDirectory};
    use domain::{Channel, WorkspaceId};
    use queue::memory::MemoryQueue;
    use store::MemoryStore;

    const MESSAGES: &str = include_str!("../../../events/whatsapp-webhook/messages.json");
    const STATUSES: &str = include_str!("../../../events/whatsapp-webhook/statuses.json");
    const HANDSHAKE: &str = include_str!("../../../events/whatsapp-webhook/handshake.json");

    async fn deps() -> (Deps, Arc<MemoryQueue>) {
        let store = Arc::new(MemoryStore::new());
        // Only the first entry's number belongs to a workspace here.
        store
            .put_channel_account(&ChannelAccount::new(
                WorkspaceId::parse("demo").unwrap(),
                Channel::Whatsapp,
                "106540352242922",
            ))
            .await
            .unwrap();
        let q = Arc::new(MemoryQueue::new());
        let adapter = WhatsApp {
            app_secret: "fixture-whatsapp-app-secret".into(),
            verify_token: "fixture-whatsapp-verify-token".into(),
            access_token: "unused".into(),
        };
        let inbound = Inbound { adapter, directory: store, queue: q.clone(), public_base_url: None, memory_mb: 128 };
        let templates = Arc::new(MemoryStore::new());
        (Deps { inbound, media: None, templates }, q)
    }

    fn request(fixture: &str, mutate: impl FnOnce(&mut serde_json::Value)) -> Request {
        let mut v: serde_json::Value = serde_json::from_str(fixture).unwrap();
        mutate(&mut v);
        lambda_http::request::from_str(&v.to_string()).expect("API Gateway v2 event")
    }

    #[tokio::test]
    async fn the_handshake_echoes_the_challenge_and_enqueues_nothing() {
        let (deps, q) = deps().await;
        let res = handle(&deps, request(HANDSHAKE, |_| {})).await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(matches!(res.body(), Body::Text(t) if t == "1158201444"));
        let wrong = request(HANDSHAKE, |v| {
            v["rawQueryString"] = "hub.mode=subscribe&hub.challenge=1&hub.verify_token=guess".into();
            v["queryStringParameters"]["hub.verify_token"] = "guess".into();
        });
        assert_eq!(handle(&deps, wrong).await.unwrap().status(), 403);
        assert!(q.sent().is_empty());
    }

    #[tokio::test]
    async fn signed_messages_are_enqueued_in_order_for_their_workspace() {
        let (deps, q) = deps().await;
        let res = handle(&deps, request(MESSAGES, |_| {})).await.unwrap();
        assert_eq!(res.status(), 200);
        let sent = q.sent();
        // 13 messages for the known number; the other entry's number has no workspace.
        assert_eq!(sent.len(), 13);
        assert!(sent.iter().all(|(group, _, body)| group == "demo:phone:+16505551234" && body["workspace"] == "demo"));
        assert_eq!(sent[0].1, "whatsapp:wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=");
        assert_eq!(sent[1].2["attachments"][0]["url"], "whatsapp-media:1003383421387256");
        assert!(matches!(res.body(), Body::Text(t) if t.contains("\"unclaimed\":1")));
    }

    #[tokio::test]
    async fn statuses_are_enqueued_behind_the_recipients_messages() {
        let (deps, q) = deps().await;
        assert_eq!(handle(&deps, request(STATUSES, |_| {})).await.unwrap().status(), 200);
        let sent = q.sent();
        assert_eq!(sent.len(), 4);
        assert_eq!(sent[0].0, "demo:phone:+16505551234");
        assert_eq!(sent[0].2["type"], "status");
        assert_eq!(sent[3].2["event"]["status"], "failed");
        assert_eq!(sent[3].1, "whatsapp:wamid.HBgLMTY1MDUwNzY1MjAVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA:failed");
    }

    #[tokio::test]
    async fn forged_unsigned_or_altered_requests_store_nothing() {
        let (deps, q) = deps().await;
        let forged =
            request(MESSAGES, |v| v["headers"]["x-hub-signature-256"] = format!("sha256={}", "0".repeat(64)).into());
        assert_eq!(handle(&deps, forged).await.unwrap().status(), 403);
        let unsigned = request(MESSAGES, |v| {
            v["headers"].as_object_mut().unwrap().remove("x-hub-signature-256");
        });
        assert_eq!(handle(&deps, unsigned).await.unwrap().status(), 403);
        let altered = request(MESSAGES, |v| {
            let body = v["body"].as_str().unwrap().replace("another color", "another colour");
            v["body"] = body.into();
        });
        assert_eq!(handle(&deps, altered).await.unwrap().status(), 403);
        assert!(q.sent().is_empty());
    }

    #[tokio::test]
    async fn metas_template_reviews_reach_the_registry_only_when_signed() {
        use domain::channels::templates::{TemplateStatus, WhatsAppTemplate};
        let (mut deps, q) = deps().await;
        let store = Arc::new(MemoryStore::new());
        deps.templates = store.clone();
        let ws = WorkspaceId::parse("demo").unwrap();
        let by = domain::AgentId::parse("ada").unwrap();
        let at = time::OffsetDateTime::now_utc();
        let category = domain::finance::pricing::WhatsappCategory::Utility;
        let mut t =
            WhatsAppTemplate::new("order_update", "en_US", category, "Hi", TemplateStatus::Pending, by, at).unwrap();
        t.meta_id = Some("1689556908129832".into());
        store.put_whatsapp_template(&ws, &t).await.unwrap();
        let payload = include_str!("../../../events/whatsapp-webhook/payloads/template-reviews.json");
        let signed = |secret: &str| {
            let signature = whatsapp::compute_signature(secret, payload.as_bytes());
            request(MESSAGES, |v| {
                v["body"] = payload.into();
                v["headers"]["x-hub-signature-256"] = signature.into();
            })
        };
        assert_eq!(handle(&deps, signed("forged")).await.unwrap().status(), 403);
        let held = store.whatsapp_template(&ws, "order_update", "en_US").await.unwrap().unwrap();
        assert_eq!(held.status, TemplateStatus::Pending);
        assert_eq!(handle(&deps, signed("fixture-whatsapp-app-secret")).await.unwrap().status(), 200);
        let held = store.whatsapp_template(&ws, "order_update", "en_US").await.unwrap().unwrap();
        assert_eq!(held.status, TemplateStatus::Approved);
        assert_eq!(held.quality, Some(domain::channels::templates::TemplateQuality::Yellow));
        assert!(q.sent().is_empty(), "reviews are not customer messages");
    }

    /// Meta's media endpoints: `/{id}` → a URL on the same server; `/download/{id}` → the bytes.
    async fn fake_graph(fail: bool) -> String {
        use axum::extract::{Path, State};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route(
                "/{id}",
                axum::routing::get(|State((base, fail)): State<(String, bool)>, Path(id): Path<String>| async move {
                    if fail {
                        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new());
                    }
                    let body = serde_json::json!({ "url": format!("{base}/download/{id}"), "mime_type": "image/jpeg",
                        "file_size": 9, "id": id, "messaging_product": "whatsapp" });
                    (axum::http::StatusCode::OK, body.to_string())
                }),
            )
            .route("/download/{id}", axum::routing::get(|| async { b"JFIF-fake".to_vec() }))
            .with_state((base.clone(), fail));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }

    #[tokio::test]
    async fn media_are_copied_into_the_store_before_enqueueing() {
        let (mut deps, q) = deps().await;
        let files = Arc::new(providers::memory::MemoryFiles::default());
        deps.media = Some(WhatsAppMedia {
            copier: providers::media::MediaCopier::standard(files.clone()).unwrap(),
            api_base: fake_graph(false).await,
            tokens: Arc::new(providers::accounts::whatsapp_numbers(None, Some("t".into()))),
        });
        assert_eq!(handle(&deps, request(MESSAGES, |_| {})).await.unwrap().status(), 200);
        let sent = q.sent();
        let image = &sent[1].2["attachments"][0];
        assert_eq!(image["url"], "s3://memory/media/demo/whatsapp/1003383421387256");
        assert_eq!((image["content_type"].as_str(), image["size_bytes"].as_u64()), (Some("image/jpeg"), Some(9)));
        assert!(files.file("s3://memory/media/demo/whatsapp/1003383421387256").is_some());
        assert!(sent.iter().all(|(_, _, m)| !m["attachments"].to_string().contains("whatsapp-media:")));
    }

    #[tokio::test]
    async fn a_media_outage_is_a_5xx_so_meta_retries() {
        let (mut deps, _) = deps().await;
        deps.media = Some(WhatsAppMedia {
            copier: providers::media::MediaCopier::standard(Arc::new(providers::memory::MemoryFiles::default()))
                .unwrap(),
            api_base: fake_graph(true).await,
            tokens: Arc::new(providers::accounts::whatsapp_numbers(None, Some("t".into()))),
        });
        assert_eq!(handle(&deps, request(MESSAGES, |_| {})).await.unwrap().status(), 503);
    }

    #[tokio::test]
    async fn a_queue_outage_is_a_5xx_so_meta_retries() {
        let (deps, q) = deps().await;
        q.fail(true);
        assert_eq!(handle(&deps, request(MESSAGES, |_| {})).await.unwrap().status(), 503);
    }
}
