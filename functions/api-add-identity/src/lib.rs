//! POST /contacts/{id}/identities — an agent links another way to reach this person: a phone
//! number, an email, or a provider id (Messenger, Instagram, Telegram, web chat). Body:
//! `{"kind": "email", "value": "ana@example.com"}`. The value is normalised as the inbound side
//! normalises it (E.164, lower-cased email), so messages from it join this contact from then on:
//! an email from a linked address lands in the contact's open conversation.
//!
//! 201 with the contact when linked; 200 when it already was (`changed: false`). 409 when another
//! contact has it, naming that contact (merge them with `POST /contacts/{id}/merge`); 422 past
//! `domain::contacts::MAX_IDENTITIES` or on a merged-away contact; 400 for a value that does not
//! parse. Recorded on the workspace's audit trail (`identity_added`).

use domain::model::{Identity, IdentityKind};
use domain::ContactId;
use kit::auth::INBOX;
use kit::http::{json, json_body, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::Deps;

const SHAPE: &str = r#"{"kind": "phone|email|messenger|instagram|telegram|webchat", "value": "..."}"#;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = AddIdentityRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    kind: String,
    value: String,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(add(deps, &req).await))
}

#[utoipa::path(post, path = "/contacts/{id}/identities", operation_id = "addIdentity", tag = "contacts",
    params(("id" = String, Path, description = "The contact")),
    request_body = Draft,
    responses((status = 201, description = "Linked", body = api::ContactChanged), (status = 200, description = "Already linked", body = api::ContactChanged), (status = 404, body = kit::http::ErrorBody), (status = 409, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn add(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let id = path_param(req, "id", ContactId::parse)?;
    let draft: Draft = json_body(req, SHAPE)?;
    let identity = Identity::parse(IdentityKind::parse(&draft.kind)?, &draft.value)?;
    let now = time::OffsetDateTime::now_utc();
    let done = domain::contacts::add_identity(&*deps.store, &who.workspace, id, identity, &who.agent, now).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, contact = %id, kind = draft.kind, changed = done.changed,
        "identity linked");
    let status = if done.changed { 201 } else { 200 };
    Ok(json(status, &api::ContactChanged { contact: api::contact_view(&done.contact), changed: done.changed }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::InboundStore;
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::contract::seed_conversation;
    use store::MemoryStore;

    async fn post(deps: &Deps, ws: &WorkspaceId, id: &str, body: &str) -> (u16, serde_json::Value) {
        let auth = bearer("s", ws.as_str(), "ada", Role::Agent);
        let path = format!("/contacts/{id}/identities");
        let req = kit::apigw::test_request(
            "POST",
            "/contacts/{id}/identities",
            &path,
            &[("id", id)],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        let res = handle(deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    #[tokio::test]
    async fn an_email_links_once_normalised_and_never_to_two_contacts() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps::new(store.clone(), Authenticator::new("s"));
        let ws = WorkspaceId::parse("acme").unwrap();
        let at = time::OffsetDateTime::now_utc();
        let (a, _) = seed_conversation(store.as_ref(), &ws, 1, at).await;
        let (b, _) = seed_conversation(store.as_ref(), &ws, 2, at).await;
        let body = r#"{"kind": "email", "value": "Ana.Silva@Example.com"}"#;
        let (status, out) = post(&deps, &ws, &a.id.to_string(), body).await;
        assert_eq!(status, 201, "{out}");
        assert_eq!(out["contact"]["identities"][1]["value"], "ana.silva@example.com");
        let email = Identity::parse(IdentityKind::Email, "ana.silva@example.com").unwrap();
        assert_eq!(store.contact_by_identity(&ws, &email).await.unwrap().map(|c| c.id), Some(a.id));
        assert_eq!(post(&deps, &ws, &a.id.to_string(), body).await.0, 200, "again: nothing changes");
        let (status, out) = post(&deps, &ws, &b.id.to_string(), body).await;
        assert_eq!(status, 409);
        assert!(out["error"]["message"].as_str().unwrap().contains(&a.id.to_string()), "{out}");
        // The same number written another way is the same identity: b's own.
        let (status, _) =
            post(&deps, &ws, &a.id.to_string(), r#"{"kind": "phone", "value": "+1 (415) 555-0002"}"#).await;
        assert_eq!(status, 409);
    }

    #[tokio::test]
    async fn bad_identities_are_refused_with_a_reason() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps::new(store.clone(), Authenticator::new("s"));
        let ws = WorkspaceId::parse("acme").unwrap();
        let (a, _) = seed_conversation(store.as_ref(), &ws, 1, time::OffsetDateTime::now_utc()).await;
        let id = a.id.to_string();
        let (status, out) = post(&deps, &ws, &id, r#"{"kind": "fax", "value": "1"}"#).await;
        assert_eq!(status, 400);
        assert!(out["error"]["message"].as_str().unwrap().contains("identity kind"), "{out}");
        assert_eq!(post(&deps, &ws, &id, r#"{"kind": "email", "value": "not-an-email"}"#).await.0, 400);
        assert_eq!(post(&deps, &ws, &id, r#"{"kind": "phone", "value": "12"}"#).await.0, 400);
        assert_eq!(post(&deps, &ws, &id, r#"{"kind": "email"}"#).await.0, 400);
        let missing = ContactId::new().to_string();
        assert_eq!(post(&deps, &ws, &missing, r#"{"kind": "email", "value": "a@b.co"}"#).await.0, 404);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps::new(store, Authenticator::new("fixture-jwt-secret"));
        let req =
            lambda_http::request::from_str(include_str!("../../../events/api-add-identity/add-email.json")).unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 404, "{:?}", res.body());
    }
}
