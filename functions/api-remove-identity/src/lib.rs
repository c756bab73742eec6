//! DELETE /contacts/{id}/identities/{kind}/{value} — unlinks an identity that is not this
//! person's (a shared family number, a mistyped email). The value is percent-encoded in the path
//! and normalised as when linking (`+1 415…` and `%2B1415…` name the same number).
//!
//! The identity is free again: its next message starts (or finds) another contact. Conversations
//! keep their routes, so a reply in an existing conversation still goes where the customer wrote
//! from. A contact keeps at least one identity (422: merge it instead). 200 with the contact and
//! `changed` (false when it did not have the identity). On the audit trail as `identity_removed`.

use domain::model::{Identity, IdentityKind};
use domain::ContactId;
use kit::auth::INBOX;
use kit::http::{json, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(remove(deps, &req).await))
}

#[utoipa::path(delete, path = "/contacts/{id}/identities/{kind}/{value}", operation_id = "removeIdentity", tag = "contacts",
    params(("id" = String, Path, description = "The contact"), ("kind" = String, Path, description = "phone, email, messenger, instagram, telegram or webchat"),
           ("value" = String, Path, description = "The identity, percent-encoded (%2B1415…)")),
    responses((status = 200, body = api::ContactChanged), (status = 404, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn remove(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let id = path_param(req, "id", ContactId::parse)?;
    let kind = path_param(req, "kind", IdentityKind::parse)?;
    let value = path_param(req, "value", |v| Ok(v.to_owned()))?;
    let identity = Identity::parse(kind, &value).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let now = time::OffsetDateTime::now_utc();
    let done = domain::contacts::remove_identity(&*deps.store, &who.workspace, id, &identity, &who.agent, now).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, contact = %id, kind = kind.as_str(),
        changed = done.changed, "identity unlinked");
    Ok(json(200, &api::ContactChanged { contact: api::contact_view(&done.contact), changed: done.changed }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::ContactStore;
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::contract::seed_conversation;
    use store::MemoryStore;

    async fn delete(deps: &Deps, ws: &WorkspaceId, id: &str, kind: &str, value: &str) -> (u16, serde_json::Value) {
        let auth = bearer("s", ws.as_str(), "ada", Role::Agent);
        let path = format!("/contacts/{id}/identities/{kind}/{value}");
        let req = kit::apigw::test_request(
            "DELETE",
            "/contacts/{id}/identities/{kind}/{value}",
            &path,
            &[("id", id), ("kind", kind), ("value", value)],
            &[("authorization", &auth)],
            None,
        );
        let res = handle(deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    #[tokio::test]
    async fn an_identity_is_unlinked_and_the_last_one_stays() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps::new(store.clone(), Authenticator::new("s"));
        let ws = WorkspaceId::parse("acme").unwrap();
        let at = time::OffsetDateTime::now_utc();
        let (a, _) = seed_conversation(store.as_ref(), &ws, 1, at).await;
        let email = Identity::parse(IdentityKind::Email, "ana@example.com").unwrap();
        let ada = domain::AgentId::parse("ada").unwrap();
        domain::contacts::add_identity(store.as_ref(), &ws, a.id, email.clone(), &ada, at).await.unwrap();
        let id = a.id.to_string();
        let (status, out) = delete(&deps, &ws, &id, "phone", "+1 (415) 555-0001").await;
        assert_eq!((status, out["changed"].clone()), (200, true.into()), "{out}");
        let phone = Identity::parse(IdentityKind::Phone, "+14155550001").unwrap();
        assert_eq!(store.identity_owner(&ws, &phone).await.unwrap(), None);
        assert_eq!(delete(&deps, &ws, &id, "phone", "+14155550001").await.1["changed"], false);
        let (status, out) = delete(&deps, &ws, &id, "email", "Ana@example.com").await;
        assert_eq!(status, 422, "{out}");
        assert_eq!(store.identity_owner(&ws, &email).await.unwrap(), Some(a.id));
        assert_eq!(delete(&deps, &ws, &id, "fax", "1").await.0, 404, "no such route");
        assert_eq!(delete(&deps, &ws, &id, "email", "nope").await.0, 400);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps::new(store, Authenticator::new("fixture-jwt-secret"));
        let req = lambda_http::request::from_str(include_str!("../../../events/api-remove-identity/remove-phone.json"))
            .unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 404, "{:?}", res.body());
    }
}
