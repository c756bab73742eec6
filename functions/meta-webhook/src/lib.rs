//! Messenger and Instagram webhook (Meta delivers both objects to one app callback). `GET`
//! answers the subscription handshake; `POST` checks `X-Hub-Signature-256` over the raw body, then
//! every message, postback, reaction, delivery and read of every entry goes onto the inbound FIFO
//! queue for the workspace owning the Page or Instagram account. Attachments (Meta's CDN links,
//! which expire) are copied into the media bucket first. Meta gets its 200 only once all are
//! enqueued; a CDN that fails for now answers 503, so Meta retries the delivery.
//! `domain::channels::meta` holds the format.

use api::webhook::Inbound;
use domain::channels::meta::Meta;
use domain::ports::MediaResolver;
use lambda_http::{Body, Error, Request, Response};
pub use providers::media::MetaMedia;

pub struct Deps {
    pub inbound: Inbound<Meta>,
    pub media: Option<MetaMedia>,
}

impl Deps {
    /// `META_CREDENTIALS` (a secret): `{"app_secret", "verify_token", "page_tokens": {id: token}}`;
    /// `MEDIA_BUCKET` (attachments copied there; without it they keep Meta's links).
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let media = api::webhook::media_copier(config, aws)?.map(|copier| MetaMedia { copier });
        Ok(Self {
            inbound: Inbound::from_config(config.json_secret("META_CREDENTIALS", aws).await?, config, aws)?,
            media,
        })
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    let media = deps.media.as_ref().map(|m| m as &dyn MediaResolver);
    Ok(deps.inbound.handle_json_with(req, media).await)
}

/// `GET /webhooks/meta` (served by [`handle`]), for the API's OpenAPI document.
#[utoipa::path(get, path = "/webhooks/meta", operation_id = "metaHandshake", tag = "provider webhooks",
    params(("hub.mode" = String, Query), ("hub.verify_token" = String, Query), ("hub.challenge" = String, Query)),
    responses((status = 200, description = "hub.challenge, echoed", body = String, content_type = "text/plain"), (status = 403, description = "The provider's signature does not verify: nothing stored", body = kit::http::ErrorBody)))]
#[allow(dead_code)]
fn meta_handshake() {}

/// `POST /webhooks/meta` (served by [`handle`]), for the API's OpenAPI document.
#[utoipa::path(post, path = "/webhooks/meta", operation_id = "metaEvents", tag = "provider webhooks",
    request_body(content = Object, description = "Meta's webhook payload, signed in X-Hub-Signature-256"),
    responses((status = 200, description = "Every message and status enqueued"), (status = 403, description = "The provider's signature does not verify: nothing stored", body = kit::http::ErrorBody)))]
#[allow(dead_code)]
fn meta_events() {}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;
    use domain::ports::{ChannelAccount, ChannelDirectory};
    use domain::{Channel, WorkspaceId};
    use queue::memory::MemoryQueue;
    use store::MemoryStore;

    const MESSENGER: &str = include_str!("../../../events/meta-webhook/messenger.json");
    const INSTAGRAM: &str = include_str!("../../../events/meta-webhook/instagram.json");
    const HANDSHAKE: &str = include_str!("../../../events/meta-webhook/handshake.json");

    async fn deps() -> (Deps, Arc<MemoryQueue>) {
        let store = Arc::new(MemoryStore::new());
        for (channel, address) in [(Channel::Messenger, "109876543210987"), (Channel::Instagram, "17841400000000001")] {
            let account = ChannelAccount::new(WorkspaceId::parse("demo").unwrap(), channel, address);
            store.put_channel_account(&account).await.unwrap();
        }
        let q = Arc::new(MemoryQueue::new());
        let adapter = Meta {
            app_secret: "fixture-meta-app-secret".into(),
            verify_token: "fixture-meta-verify-token".into(),
            page_tokens: HashMap::new(),
            app_id: Some("1517776481860111".into()),
        };
        let inbound = Inbound { adapter, directory: store, queue: q.clone(), public_base_url: None, memory_mb: 128 };
        (Deps { inbound, media: None }, q)
    }

    fn request(fixture: &str, mutate: impl FnOnce(&mut serde_json::Value)) -> Request {
        let mut v: serde_json::Value = serde_json::from_str(fixture).unwrap();
        mutate(&mut v);
        lambda_http::request::from_str(&v.to_string()).expect("API Gateway v2 event")
    }

    #[tokio::test]
    async fn the_handshake_echoes_the_challenge() {
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
    async fn messenger_events_are_enqueued_in_order_in_the_persons_group() {
        let (deps, q) = deps().await;
        let res = handle(&deps, request(MESSENGER, |_| {})).await.unwrap();
        assert_eq!(res.status(), 200);
        let sent = q.sent();
        let kinds: Vec<&str> = sent.iter().map(|(_, _, b)| b["type"].as_str().unwrap()).collect();
        // text, image, quick reply, postback, reaction; two deliveries; a read watermark; an echo.
        assert_eq!(
            kinds,
            ["message", "message", "message", "message", "message", "status", "status", "read_up_to", "status"]
        );
        assert!(sent.iter().all(|(group, _, _)| group == "demo:messenger:7012345678901234"), "{sent:?}");
        assert_eq!(sent[0].2["text"], "Hi, has my order shipped?");
        assert_eq!(sent[1].2["attachments"][0]["content_type"], "image/*");
        assert_eq!(sent[3].2["rich"]["payload"], "AGENT");
        assert_eq!(sent[8].2["event"]["status"], "sent", "our own echo confirms the send");
        assert!(matches!(res.body(), Body::Text(t) if t.contains("\"unclaimed\":1")), "the other page");
    }

    #[tokio::test]
    async fn instagram_events_are_enqueued_and_an_unsent_message_is_skipped() {
        let (deps, q) = deps().await;
        assert_eq!(handle(&deps, request(INSTAGRAM, |_| {})).await.unwrap().status(), 200);
        let sent = q.sent();
        assert_eq!(sent.len(), 4);
        assert!(sent.iter().all(|(g, _, b)| g == "demo:instagram:6801234567890123" && b["channel"] == "instagram"));
        assert_eq!(sent[1].2["metadata"]["reply_to_story"]["id"], "17890000000000001");
        assert_eq!(sent[2].2["rich"]["type"], "share");
        assert_eq!(sent[3].2["event"]["status"], "read");
    }

    #[tokio::test]
    async fn forged_unsigned_or_altered_requests_store_nothing() {
        let (deps, q) = deps().await;
        let forged =
            request(MESSENGER, |v| v["headers"]["x-hub-signature-256"] = format!("sha256={}", "0".repeat(64)).into());
        assert_eq!(handle(&deps, forged).await.unwrap().status(), 403);
        let unsigned = request(INSTAGRAM, |v| {
            v["headers"].as_object_mut().unwrap().remove("x-hub-signature-256");
        });
        assert_eq!(handle(&deps, unsigned).await.unwrap().status(), 403);
        let altered = request(MESSENGER, |v| {
            let body = v["body"].as_str().unwrap().replace("shipped", "shipped yet");
            v["body"] = body.into();
        });
        assert_eq!(handle(&deps, altered).await.unwrap().status(), 403);
        assert!(q.sent().is_empty());
    }

    /// A CDN: `/ok/…` answers a JPEG, `/gone/…` 404, anything else 503.
    async fn fake_cdn() -> String {
        use axum::extract::Path;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/{kind}/{name}",
            axum::routing::get(|Path((kind, _)): Path<(String, String)>| async move {
                match kind.as_str() {
                    "ok" => (axum::http::StatusCode::OK, [("content-type", "image/jpeg")], b"JFIF-fake".to_vec()),
                    "gone" => (axum::http::StatusCode::NOT_FOUND, [("content-type", "text/plain")], vec![]),
                    _ => (axum::http::StatusCode::SERVICE_UNAVAILABLE, [("content-type", "text/plain")], vec![]),
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }

    fn attachment(url: String) -> domain::model::Attachment {
        domain::model::Attachment { content_type: "image/*".into(), size_bytes: None, url, filename: None }
    }

    #[tokio::test]
    async fn attachments_are_copied_from_metas_cdn_and_a_dead_link_is_kept() {
        let cdn = fake_cdn().await;
        let files = Arc::new(providers::memory::MemoryFiles::default());
        let media = MetaMedia { copier: providers::media::MediaCopier::standard(files.clone()).unwrap() };
        let ws = WorkspaceId::parse("demo").unwrap();
        let mut list = vec![
            attachment(format!("{cdn}/ok/470124_n.jpg?_nc_cat=1&oh=sig")),
            attachment(format!("{cdn}/gone/old.jpg")),
            attachment("s3://media/already/ours".into()),
        ];
        media.resolve(&ws, "1098765432", &mut list).await.unwrap();
        assert!(list[0].url.starts_with("s3://memory/media/demo/meta/"), "{}", list[0].url);
        assert_eq!((list[0].content_type.as_str(), list[0].size_bytes), ("image/jpeg", Some(9)));
        assert_eq!(files.file(&list[0].url).unwrap().1, b"JFIF-fake");
        assert_eq!(list[1].url, format!("{cdn}/gone/old.jpg"), "a dead link stays as Meta gave it");
        assert_eq!(list[2].url, "s3://media/already/ours");
        // A redelivery writes the same object.
        let mut again = vec![attachment(format!("{cdn}/ok/470124_n.jpg?_nc_cat=1&oh=sig"))];
        media.resolve(&ws, "1098765432", &mut again).await.unwrap();
        assert_eq!(again[0].url, list[0].url);
        // An outage is retryable: Meta redelivers.
        let mut down = vec![attachment(format!("{cdn}/down/x.jpg"))];
        assert!(matches!(
            media.resolve(&ws, "1098765432", &mut down).await,
            Err(domain::ports::StoreError::Unavailable(_))
        ));
    }
}
