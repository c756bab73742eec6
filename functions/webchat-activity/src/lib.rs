//! The `typing`, `read` and `history` routes of the web chat visitors' WebSocket API (two-way):
//!
//! - `{"action":"typing","typing":true|false}`: agents working the visitor's conversation see
//!   "typing…" (a `contact_typing` event on the notification queue).
//! - `{"action":"read","up_to":"<message id>"}`: the visitor read every reply up to that one;
//!   applied by the inbound processor in the visitor's order, so the agents' ticks turn to read.
//! - `{"action":"history","cursor"?:"…"}`: the visitor's conversation as they may see it (their
//!   web chat messages and the replies to them, never other channels, notes or costs), oldest
//!   first, for a widget that reconnects; `cursor` pages back to older messages.

use std::sync::Arc;

use domain::channels::webchat::{self, VisitorConnection};
use domain::events::{InboundEvent, Notification, ReadUpTo};
use domain::model::Conversation;
use domain::ports::{Cursor, InboundQueue, NotificationQueue, Order};
use domain::{Channel, MessageId};
use kit::http::ApiError;
use kit::ws::{body, ok, respond, WsRequest, WsResponse};
use serde::Deserialize;
use store::Store;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub inbound: Arc<dyn InboundQueue>,
    pub notifications: Arc<dyn NotificationQueue>,
}

impl Deps {
    /// `TABLE_NAME`, `INBOUND_QUEUE_URL`, `NOTIFICATION_QUEUE_URL`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let sqs = aws_sdk_sqs::Client::new(aws);
        Ok(Self {
            store: Arc::new(store::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.required("TABLE_NAME")?,
            )),
            inbound: Arc::new(queue::SqsQueue::new(sqs.clone(), config.required("INBOUND_QUEUE_URL")?)),
            notifications: Arc::new(queue::SqsQueue::new(sqs, config.required("NOTIFICATION_QUEUE_URL")?)),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum Action {
    Typing {
        typing: bool,
    },
    Read {
        up_to: MessageId,
    },
    History {
        #[serde(default)]
        cursor: Option<String>,
    },
}

/// Messages per history page (before filtering out what the visitor does not see).
const HISTORY_PAGE: u16 = 50;

pub async fn handle(deps: &Deps, req: WsRequest) -> WsResponse {
    respond(act(deps, &req).await)
}

/// The conversation the visitor chats in: their open one, else their latest.
async fn conversation(deps: &Deps, conn: &VisitorConnection) -> Result<Option<Conversation>, ApiError> {
    let ws = &conn.workspace;
    let Some(contact) = deps.store.contact_by_identity(ws, &conn.visitor.identity()).await? else { return Ok(None) };
    if let Some(open) = deps.store.current_conversation(ws, &contact).await? {
        return Ok(Some(open));
    }
    Ok(deps.store.contact_conversations(ws, contact.id, 100, None).await?.items.pop())
}

async fn act(deps: &Deps, req: &WsRequest) -> Result<WsResponse, ApiError> {
    let action: Action = body(req)?;
    let conn = api::visitor(&*deps.store, req).await?;
    let ws = &conn.workspace;
    let answer = match action {
        Action::Typing { typing } => {
            // Before their first message there is nobody to tell.
            if let Some(c) = conversation(deps, &conn).await? {
                let event = Notification::ContactTyping {
                    workspace: ws.clone(),
                    conversation_id: c.id,
                    typing,
                    id: ulid::Ulid::new().to_string(),
                };
                deps.notifications.publish(&event).await?;
            }
            serde_json::json!({ "action": "typing", "typing": typing })
        }
        Action::Read { up_to } => {
            let not_found = || ApiError::NotFound(format!("message {up_to} is not in your conversation"));
            let c = conversation(deps, &conn).await?.ok_or_else(not_found)?;
            let m = deps.store.message(ws, c.id, up_to).await?.ok_or_else(not_found)?;
            webchat::view(&m, &conn.visitor).ok_or_else(not_found)?;
            let event = ReadUpTo {
                workspace: ws.clone(),
                channel: Channel::Webchat,
                reader: conn.visitor.identity(),
                up_to: m.created_at,
            };
            deps.inbound.enqueue_inbound(&InboundEvent::ReadUpTo(event)).await?;
            serde_json::json!({ "action": "read", "up_to": up_to })
        }
        Action::History { cursor } => {
            let Some(c) = conversation(deps, &conn).await? else {
                return Ok(ok(serde_json::json!({ "action": "history", "messages": [], "cursor": null })));
            };
            let cursor = cursor.map(Cursor);
            let page = deps.store.messages(ws, c.id, Order::Newest, HISTORY_PAGE, cursor.as_ref()).await?;
            let mut messages: Vec<webchat::VisitorView> =
                page.items.iter().filter_map(|m| webchat::view(m, &conn.visitor)).collect();
            messages.reverse();
            serde_json::json!({
                "action": "history",
                "conversation_status": c.status,
                "messages": messages,
                "cursor": page.next.map(|c| c.0),
            })
        }
    };
    Ok(ok(answer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::channels::webchat::VisitorId;
    use domain::ports::ConversationReader;
    use domain::WorkspaceId;
    use queue::memory::MemoryQueue;
    use store::MemoryStore;

    fn fixture(name: &str) -> WsRequest {
        let raw = match name {
            "typing" => include_str!("../../../events/webchat-activity/typing.json"),
            "read" => include_str!("../../../events/webchat-activity/read.json"),
            _ => include_str!("../../../events/webchat-activity/history.json"),
        };
        serde_json::from_str(raw).unwrap()
    }

    struct World {
        deps: Deps,
        store: Arc<MemoryStore>,
        inbound: Arc<MemoryQueue>,
        notes: Arc<MemoryQueue>,
        visitor: VisitorId,
    }

    async fn world() -> World {
        let store = Arc::new(MemoryStore::new());
        let (inbound, notes) = (Arc::new(MemoryQueue::new()), Arc::new(MemoryQueue::new()));
        let visitor = VisitorId::new();
        store::contract::seed_visitor_socket(
            &*store,
            &WorkspaceId::parse("demo").unwrap(),
            &visitor,
            "Vk9mY2hhdFRhYjE=",
        )
        .await;
        let deps = Deps { store: store.clone(), inbound: inbound.clone(), notifications: notes.clone() };
        World { deps, store, inbound, notes, visitor }
    }

    async fn visitor_wrote(w: &World, text: &str) -> Conversation {
        let ws = WorkspaceId::parse("demo").unwrap();
        store::contract::seed_visitor_message(&*w.store, &ws, &w.visitor, text).await
    }

    #[tokio::test]
    async fn typing_reaches_agents_once_there_is_a_conversation() {
        let w = world().await;
        assert_eq!(handle(&w.deps, fixture("typing")).await.status_code, 200);
        assert!(w.notes.sent().is_empty(), "nothing to tell before the first message");
        let c = visitor_wrote(&w, "hello").await;
        assert_eq!(handle(&w.deps, fixture("typing")).await.status_code, 200);
        let sent = w.notes.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].2["type"].as_str(), sent[0].2["typing"].as_bool()), (Some("contact_typing"), Some(true)));
        assert_eq!(sent[0].2["conversation_id"], c.id.to_string());
    }

    #[tokio::test]
    async fn history_shows_the_visitors_chat_and_read_names_one_of_its_messages() {
        let w = world().await;
        let empty = kit::ws::answer_json(&handle(&w.deps, fixture("history")).await);
        assert_eq!(empty["messages"], serde_json::json!([]));
        let c = visitor_wrote(&w, "first").await;
        visitor_wrote(&w, "second").await;
        let got = kit::ws::answer_json(&handle(&w.deps, fixture("history")).await);
        let texts: Vec<&str> =
            got["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
        assert_eq!(texts, ["first", "second"], "{got}");
        assert_eq!(got["messages"][0]["from"], "visitor");
        assert!(got["messages"][0].get("cost").is_none());

        // Reading an unknown message: 404; one of theirs: a read watermark in their queue group.
        assert_eq!(handle(&w.deps, fixture("read")).await.status_code, 404);
        let ws = WorkspaceId::parse("demo").unwrap();
        let newest = w.store.messages(&ws, c.id, Order::Newest, 1, None).await.unwrap().items.remove(0);
        let mut req = fixture("read");
        req.body = Some(serde_json::json!({ "action": "read", "up_to": newest.id }).to_string());
        assert_eq!(handle(&w.deps, req).await.status_code, 200);
        let sent = w.inbound.sent();
        assert_eq!(sent[0].0, format!("demo:webchat:{}", w.visitor));
        assert_eq!(sent[0].2["type"], "read_up_to");
    }

    #[tokio::test]
    async fn unknown_actions_and_sockets_are_refused() {
        let w = world().await;
        let mut req = fixture("typing");
        req.body = Some(r#"{"action":"typing"}"#.into());
        assert_eq!(handle(&w.deps, req).await.status_code, 400);
        let mut req = fixture("typing");
        req.request_context.connection_id = Some("Z29uZQ==".into());
        assert_eq!(handle(&w.deps, req).await.status_code, 401);
    }
}
