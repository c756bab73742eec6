//! POST /conversations/{id}/messages/{message_id}/redact — masks what a stored message should never
//! have held: the workspace's privacy policy applied again (cards, IBANs, its patterns: a policy
//! added after the message arrived), and `{"text": "…"}`, an exact passage an agent points at,
//! masked as `[redacted]`. The message keeps its place and status; `metadata.redacted` lists what
//! was masked. Anyone who works the inbox; audited as `message_redacted` with what kinds were masked
//! (never the text). Agents' screens are told (`message_updated`). Repeating it changes nothing.

use domain::audit::AuditEntry;
use domain::events::Notification;
use domain::{ConversationId, MessageId};
use kit::auth::INBOX;
use kit::http::{json, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::Inbox as Deps;

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(as = RedactMessageRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    #[serde(default)]
    text: Option<String>,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(redact(deps, &req).await))
}

#[utoipa::path(post, path = "/conversations/{id}/messages/{message_id}/redact", operation_id = "redactMessage", tag = "conversations",
    params(("id" = String, Path, description = "The conversation"), ("message_id" = String, Path, description = "The message")),
    request_body(content = Option<Draft>, description = "Optional: a passage to mask besides what the policy masks"),
    responses((status = 200, body = MessageChanged), (status = 404, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn redact(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let conversation = path_param(req, "id", ConversationId::parse)?;
    let id = path_param(req, "message_id", MessageId::parse)?;
    let body = kit::http::body_bytes(req);
    let draft: Draft = if body.iter().all(u8::is_ascii_whitespace) {
        Draft::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("body must be {{\"text\"?: \"the passage to mask\"}}: {e}")))?
    };
    if draft.text.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(ApiError::Unprocessable("text: the passage to mask, not empty".into()));
    }
    let ws = &who.workspace;
    let Some(mut message) = deps.store.message(ws, conversation, id).await? else {
        return Err(ApiError::NotFound(format!("no message {id} in conversation {conversation}")));
    };
    let Some(text) = message.text.clone() else {
        return Err(ApiError::Unprocessable("the message has no text".into()));
    };
    let policy = deps.store.privacy_policy(ws).await?;
    let mut kinds: Vec<String> = vec![];
    let mut masked = match domain::redact::redact(&text, &policy) {
        Some(r) => {
            kinds = r.kinds;
            r.text
        }
        None => text.clone(),
    };
    if let Some(passage) = draft.text.as_deref() {
        if !masked.contains(passage) {
            return Err(ApiError::Unprocessable("the passage is not in the message's text".into()));
        }
        masked = masked.replace(passage, "[redacted]");
        kinds.push("passage".into());
    }
    if masked == text {
        return Ok(json(200, &MessageChanged { message, changed: false }));
    }
    let mut all: Vec<String> = message
        .metadata
        .get(domain::redact::META_KEY)
        .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
        .unwrap_or_default();
    for k in &kinds {
        if !all.contains(k) {
            all.push(k.clone());
        }
    }
    message.text = Some(masked);
    message.metadata.insert(domain::redact::META_KEY.into(), all.into());
    deps.store.complete_message(&message).await?;
    let now = time::OffsetDateTime::now_utc();
    let details = serde_json::json!({ "message_id": id, "masked": kinds });
    let entry = AuditEntry::new(ws.clone(), Some(conversation), who.agent.clone(), "message_redacted", details, now);
    deps.store.record_audit(&entry).await?;
    let note = Notification::MessageUpdated {
        workspace: ws.clone(),
        conversation_id: conversation,
        message_id: id,
        filled: "redacted".into(),
    };
    deps.notifications.publish(&note).await?;
    tracing::info!(workspace = %ws, by = %who.agent, message = %id, "message redacted");
    Ok(json(200, &MessageChanged { message, changed: true }))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct MessageChanged {
    pub message: domain::model::Message,
    pub changed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{AuditLog, ConversationReader, InboundStore, Order};
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use queue::memory::MemoryQueue;
    use std::sync::Arc;
    use store::MemoryStore;

    #[tokio::test]
    async fn a_passage_and_a_late_policy_are_masked_once_and_audited_without_the_text() {
        let store = Arc::new(MemoryStore::new());
        let q = Arc::new(MemoryQueue::new());
        let deps = Deps { store: store.clone(), auth: Authenticator::new("s"), notifications: q.clone() };
        let ws = WorkspaceId::parse("acme").unwrap();
        let (_, conv) = store::contract::seed_conversation(&*store, &ws, 3, time::OffsetDateTime::now_utc()).await;
        let mut m = store.messages(&ws, conv.id, Order::Oldest, 1, None).await.unwrap().items.remove(0);
        m.text = Some("my password is hunter2 and card 4111111111111111".into());
        store.complete_message(&m).await.unwrap();
        let call = |role, body: &str| {
            let auth = bearer("s", "acme", "ann", role);
            let path = format!("/conversations/{}/messages/{}/redact", conv.id, m.id);
            let params = [("id", conv.id.to_string()), ("message_id", m.id.to_string())];
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            kit::apigw::test_request(
                "POST",
                "/conversations/{id}/messages/{message_id}/redact",
                &path,
                &params,
                &[("authorization", &auth)],
                Some(body.as_bytes()),
            )
        };
        let res = handle(&deps, call(Role::Agent, r#"{"text": "hunter2"}"#)).await.unwrap();
        assert_eq!(res.status(), 200);
        let stored = store.message(&ws, conv.id, m.id).await.unwrap().unwrap();
        assert_eq!(stored.text.as_deref(), Some("my password is [redacted] and card [card ••••1111]"));
        assert_eq!(stored.metadata["redacted"], serde_json::json!(["card", "passage"]));
        let again = handle(&deps, call(Role::Agent, "")).await.unwrap();
        assert_eq!(kit::apigw::json_of(&again)["changed"], false);
        let audit = store.audit_trail(&ws, Some(conv.id), 5, None).await.unwrap().items;
        assert_eq!(audit.len(), 1);
        assert!(!audit[0].details.to_string().contains("hunter2"), "the audit never holds the text");
        assert_eq!(handle(&deps, call(Role::Finance, "")).await.unwrap().status(), 403);
        assert_eq!(handle(&deps, call(Role::Agent, r#"{"text": "not there"}"#)).await.unwrap().status(), 422);
    }
}
