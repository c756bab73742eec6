//! Messenger and Instagram webhook (Meta delivers both objects to one app callback). `GET`
//! answers the subscription handshake; `POST` checks `X-Hub-Signature-256` over the raw body, then
//! every message, postback, reaction, delivery and read of every entry goes onto the inbound FIFO
//! queue for the workspace owning the Page or Instagram account. Meta gets its 200 only once all
//! are enqueued. `domain::channels::meta` holds the format.

use api::webhook::Inbound;
use domain::channels::meta::Meta;
use lambda_http::{Body, Error, Request, Response};

pub struct Deps {
    pub inbound: Inbound<Meta>,
}

impl Deps {
    /// `META_CREDENTIALS` (a secret): `{"app_secret", "verify_token", "page_tokens": {id: token}}`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self { inbound: Inbound::from_config(config.json_secret("META_CREDENTIALS", aws).await?, config, aws)? })
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(deps.inbound.handle_json(req).await)
}

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
            let account = ChannelAccount {
                workspace: WorkspaceId::parse("demo").unwrap(),
                channel,
                address: address.into(),
                display_name: None,
            };
            store.put_channel_account(&account).await.unwrap();
        }
        let q = Arc::new(MemoryQueue::new());
        let adapter = Meta {
            app_secret: "fixture-meta-app-secret".into(),
            verify_token: "fixture-meta-verify-token".into(),
            page_tokens: HashMap::new(),
        };
        let inbound = Inbound { adapter, directory: store, queue: q.clone(), public_base_url: None, memory_mb: 128 };
        (Deps { inbound }, q)
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
}
