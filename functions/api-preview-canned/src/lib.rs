//! POST /canned-responses/{id}/preview — fills a canned response's variables from a conversation
//! (its contact's name, email, phone and custom attributes, its id, the caller's name). Body:
//! `{"conversation_id": "..."}`. An unknown variable, or a known one without a value and without a
//! `{{name | default}}`, is a 422 listing every problem: a literal `{{…}}` never reaches a
//! customer. A successful preview counts as one use by the caller (the autocomplete ranks by it).

use domain::canned::{render, visible_to, Variables};
use domain::ConversationId;
use kit::auth::INBOX;
use kit::http::{json, json_body, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::Deps;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PreviewCannedRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    conversation_id: ConversationId,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(preview(deps, &req).await))
}

#[utoipa::path(post, path = "/canned-responses/{id}/preview", operation_id = "previewCanned", tag = "canned responses",
    params(("id" = String, Path, description = "The canned response")),
    request_body = Draft,
    responses((status = 200, description = "The text with the conversation's variables filled (counts as a use)", body = Preview), (status = 404, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn preview(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let id = path_param(req, "id", domain::canned::parse_id)?;
    let draft: Draft = json_body(req, r#"{"conversation_id": "..."}"#)?;
    let teams = api::callers_teams(&*deps.store, &who).await?;
    let response = deps
        .store
        .canned_response(&who.workspace, &id)
        .await?
        .filter(|r| visible_to(r, &who.agent, &teams))
        .ok_or_else(|| ApiError::NotFound(format!("no canned response {id}")))?;
    let conv_id = draft.conversation_id;
    let conversation = deps
        .store
        .conversation(&who.workspace, conv_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no conversation {conv_id}")))?;
    let contact = deps
        .store
        .contact(&who.workspace, conversation.contact_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no contact for conversation {conv_id}")))?;
    let vars = Variables::for_conversation(&contact, &conversation, who.name.as_deref());
    let text = render(&response.body, &vars)?;
    deps.store.record_canned_use(&who.workspace, &who.agent, &response.id).await?;
    Ok(json(200, &Preview { text, canned_response_id: response.id, conversation_id: conv_id }))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub text: String,
    pub canned_response_id: String,
    pub conversation_id: ConversationId,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::canned::{CannedResponse, Scope, Shortcut};
    use domain::ports::CannedStore;
    use domain::{AgentId, Role, WorkspaceId};
    use kit::auth::{issue_token, Authenticator};
    use std::sync::Arc;
    use store::contract::seed_conversation;
    use store::MemoryStore;

    const HI: &str = "01JD3XQ7Z9K2M4N6P8R0S2T4V1";
    const PLAN: &str = "01JD3XQ7Z9K2M4N6P8R0S2T4V2";

    fn canned(id: &str, body: &str) -> CannedResponse {
        CannedResponse {
            id: id.into(),
            scope: Scope::Workspace,
            shortcut: Shortcut::parse(&format!("/{}", id.to_lowercase())).unwrap(),
            title: id.into(),
            body: body.into(),
        }
    }

    async fn post(deps: &Deps, id: &str, role: Role, body: &str) -> (u16, serde_json::Value) {
        let ws = WorkspaceId::parse("acme").unwrap();
        let token = issue_token(
            "s",
            &ws,
            &AgentId::parse("alice").unwrap(),
            Some("Alice Smith"),
            role,
            time::Duration::hours(1),
        );
        let auth = format!("Bearer {token}");
        let req = kit::apigw::test_request(
            "POST",
            "/canned-responses/{id}/preview",
            &format!("/canned-responses/{id}/preview"),
            &[("id", id)],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        let res = handle(deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    #[tokio::test]
    async fn fills_variables_from_the_conversation_and_refuses_what_it_cannot_fill() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        let (_, c) = seed_conversation(store.as_ref(), &ws, 1, time::OffsetDateTime::now_utc()).await;
        store
            .put_canned_response(
                &ws,
                &canned(HI, "Hi {{contact.first_name | there}}, ref {{conversation.id}}. {{agent.first_name}}"),
            )
            .await
            .unwrap();
        store.put_canned_response(&ws, &canned(PLAN, "Your {{contact.attributes.plan}} plan")).await.unwrap();
        let deps = Deps::new(store.clone(), Authenticator::new("s"));
        let body = format!(r#"{{"conversation_id": "{}"}}"#, c.id);
        let (status, v) = post(&deps, HI, Role::Agent, &body).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["text"], format!("Hi there, ref {}. Alice", c.id));
        assert_eq!(store.canned_usage(&ws, &AgentId::parse("alice").unwrap()).await.unwrap().get(HI), Some(&1));

        let (status, v) = post(&deps, PLAN, Role::Agent, &body).await;
        assert_eq!(status, 422);
        assert!(v["error"]["message"].as_str().unwrap().contains("contact.attributes.plan"), "{v}");
        assert_eq!(store.canned_usage(&ws, &AgentId::parse("alice").unwrap()).await.unwrap().get(PLAN), None);

        assert_eq!(post(&deps, "nope", Role::Agent, &body).await.0, 404);
        assert_eq!(post(&deps, HI, Role::Agent, r#"{"conversation_id": "01JD3XQ7Z9K2M4N6P8R0S2T4V6"}"#).await.0, 404);
        assert_eq!(post(&deps, HI, Role::Agent, "{}").await.0, 400);
        assert_eq!(post(&deps, HI, Role::Finance, &body).await.0, 403);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("demo").unwrap();
        let conv = ConversationId::parse("01JD3XQ7Z9K2M4N6P8R0S2T4V6").unwrap();
        store::contract::seed_queued_reply(store.as_ref(), &ws, "+14155552671", Some(conv), None).await;
        store
            .put_canned_response(&ws, &canned("01JD3XQ7Z9K2M4N6P8R0S2T4V9", "Hi {{contact.first_name | there}}"))
            .await
            .unwrap();
        let deps = Deps::new(store, Authenticator::new("fixture-jwt-secret"));
        let req =
            lambda_http::request::from_str(include_str!("../../../events/api-preview-canned/preview.json")).unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.body());
    }
}
