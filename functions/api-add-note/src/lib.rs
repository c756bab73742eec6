//! POST /conversations/{id}/notes — a private internal note on a conversation: seen by the
//! workspace's agents (and pushed to the owner, viewers, supervisors and every agent it
//! `@mentions`), never by the customer. Notes are not messages: no code that sends to a customer
//! reads them. Body: `{"text": "..."}` (1-5000 characters). Header `Idempotency-Key` is required: a
//! retry answers with the note the first request made and stores nothing more.

use domain::audit::AuditEntry;
use domain::events::Notification;
use domain::inbox::Note;
use domain::ports::StoreError;
use domain::{ConversationId, IdempotencyKey};
use kit::auth::INBOX;
use kit::http::{header, json, json_body, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::Inbox as Deps;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = AddNoteRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    text: String,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(add(deps, &req).await))
}

#[utoipa::path(post, path = "/conversations/{id}/notes", operation_id = "addNote", tag = "conversations",
    params(("id" = String, Path, description = "The conversation"),
           ("Idempotency-Key" = String, Header, description = "Required: a retry with the same key adds nothing")),
    request_body = Draft,
    responses((status = 201, description = "The note (also for a retry)", body = NoteBody), (status = 404, body = kit::http::ErrorBody), (status = 409, body = kit::http::ErrorBody)))]
async fn add(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let id = path_param(req, "id", ConversationId::parse)?;
    let key = header(req, "idempotency-key")
        .ok_or_else(|| ApiError::BadRequest("the Idempotency-Key header is required".into()))
        .and_then(|k| Ok(IdempotencyKey::parse(k)?))?;
    let draft: Draft = json_body(req, r#"{"text": "..."}"#)?;
    if let Some(first) = deps.store.note_by_key(&who.workspace, &who.agent, &key).await? {
        return replay(deps, first, id, &draft).await;
    }
    deps.store
        .conversation(&who.workspace, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no conversation {id}")))?;
    let now = time::OffsetDateTime::now_utc();
    let note = Note::new(who.workspace.clone(), id, who.agent.clone(), &draft.text, now)?;
    let audit = AuditEntry::new(
        who.workspace.clone(),
        Some(id),
        who.agent.clone(),
        "note_added",
        serde_json::json!({ "note": note.id, "mentions": note.mentions }),
        now,
    );
    match deps.store.add_note(&note, &audit, &key).await {
        Ok(()) => {}
        Err(StoreError::Duplicate) => {
            let first = deps.store.note_by_key(&who.workspace, &who.agent, &key).await?;
            return replay(deps, first.ok_or(StoreError::Conflict)?, id, &draft).await;
        }
        Err(e) => return Err(e.into()),
    }
    // Stored first, announced second: when the publish fails the client's retry with the same key
    // finds the note and announces it again (the queue drops the duplicate by note id).
    announce(deps, &note).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, conversation = %id, note = %note.id, "note added");
    Ok(json(201, &NoteBody { note }))
}

async fn announce(deps: &Deps, note: &Note) -> Result<(), ApiError> {
    let event = Notification::NoteAdded {
        workspace: note.workspace.clone(),
        conversation_id: note.conversation_id,
        note_id: note.id.clone(),
        author: note.author.clone(),
        mentions: note.mentions.iter().cloned().collect(),
    };
    Ok(deps.notifications.publish(&event).await?)
}

/// A retry: the first note (announced again, in case the first attempt's push failed), if the
/// request was the same.
async fn replay(deps: &Deps, first: Note, id: ConversationId, draft: &Draft) -> Result<Response<Body>, ApiError> {
    if first.conversation_id != id || first.text != draft.text.trim() {
        return Err(ApiError::Conflict("this Idempotency-Key was already used for a different note".into()));
    }
    announce(deps, &first).await?;
    Ok(json(201, &NoteBody { note: first }))
}

/// A note as this route answers it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct NoteBody {
    pub note: Note,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{AuditLog, ConversationReader, NoteStore};
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use queue::memory::MemoryQueue;
    use std::sync::Arc;
    use store::contract::seed_conversation;
    use store::MemoryStore;

    async fn post(
        deps: &Deps,
        conv: ConversationId,
        role: Role,
        key: Option<&str>,
        body: &str,
    ) -> (u16, serde_json::Value) {
        let auth = bearer("s", "acme", "alice", role);
        let id = conv.to_string();
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(k) = key {
            headers.push(("idempotency-key", k));
        }
        let req = kit::apigw::test_request(
            "POST",
            "/conversations/{id}/notes",
            &format!("/conversations/{id}/notes"),
            &[("id", &id)],
            &headers,
            Some(body.as_bytes()),
        );
        let res = handle(deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    #[tokio::test]
    async fn a_note_is_stored_once_audited_and_announced_but_never_a_message() {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(MemoryQueue::new());
        let deps = Deps { store: store.clone(), auth: Authenticator::new("s"), notifications: queue.clone() };
        let ws = WorkspaceId::parse("acme").unwrap();
        let (_, c) = seed_conversation(store.as_ref(), &ws, 1, time::OffsetDateTime::now_utc()).await;

        let (status, body) = post(&deps, c.id, Role::Agent, Some("n-1"), r#"{"text": "@bob refund approved"}"#).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["note"]["mentions"], serde_json::json!(["bob"]));
        let (status, again) = post(&deps, c.id, Role::Agent, Some("n-1"), r#"{"text": "@bob refund approved"}"#).await;
        assert_eq!((status, &again["note"]["id"]), (201, &body["note"]["id"]), "a retry is the same note");
        assert_eq!(post(&deps, c.id, Role::Agent, Some("n-1"), r#"{"text": "other"}"#).await.0, 409);

        assert_eq!(store.notes(&ws, c.id, 10, None).await.unwrap().items.len(), 1);
        assert_eq!(store.messages(&ws, c.id, domain::ports::Order::Oldest, 10, None).await.unwrap().items.len(), 1);
        let trail = store.audit_trail(&ws, Some(c.id), 10, None).await.unwrap().items;
        assert_eq!(trail.iter().filter(|e| e.action == "note_added").count(), 1);
        let events: Vec<Notification> =
            queue.sent().into_iter().map(|(_, _, v)| serde_json::from_value(v).unwrap()).collect();
        assert_eq!(events.iter().filter(|e| matches!(e, Notification::NoteAdded { .. })).count(), 1);

        // The push fails after the note is stored: 503, and the retry announces it.
        queue.fail(true);
        assert_eq!(post(&deps, c.id, Role::Agent, Some("n-9"), r#"{"text": "second"}"#).await.0, 503);
        queue.fail(false);
        let (status, retried) = post(&deps, c.id, Role::Agent, Some("n-9"), r#"{"text": "second"}"#).await;
        assert_eq!(status, 201);
        let pushed = queue
            .sent()
            .into_iter()
            .filter(|(_, d, _)| d == &format!("note:{}", retried["note"]["id"].as_str().unwrap()));
        assert_eq!(pushed.count(), 1);
        assert_eq!(store.notes(&ws, c.id, 10, None).await.unwrap().items.len(), 2);

        assert_eq!(post(&deps, c.id, Role::Agent, None, r#"{"text": "x"}"#).await.0, 400);
        assert_eq!(post(&deps, c.id, Role::Agent, Some("n-2"), r#"{"text": "   "}"#).await.0, 422);
        assert_eq!(post(&deps, c.id, Role::Agent, Some("n-3"), r#"{"body": "x"}"#).await.0, 400);
        assert_eq!(post(&deps, c.id, Role::Finance, Some("n-4"), r#"{"text": "x"}"#).await.0, 403);
        assert_eq!(post(&deps, ConversationId::new(), Role::Agent, Some("n-5"), r#"{"text": "x"}"#).await.0, 404);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("demo").unwrap();
        let conv = ConversationId::parse("01JD3XQ7Z9K2M4N6P8R0S2T4V6").unwrap();
        store::contract::seed_queued_reply(store.as_ref(), &ws, "+14155552671", Some(conv), None).await;
        let deps =
            Deps { store, auth: Authenticator::new("fixture-jwt-secret"), notifications: Arc::new(MemoryQueue::new()) };
        let req = lambda_http::request::from_str(include_str!("../../../events/api-add-note/add.json")).unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 201, "{:?}", res.body());
    }
}
