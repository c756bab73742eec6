//! GET /contacts/{id}/suggestions — contacts that are probably the same person as this one: a
//! similar name (Jaro-Winkler ≥ 0.88 among contacts sharing the last name and first initial) plus
//! a similar phone number (the same last eight digits) or email (the same local part elsewhere, or
//! one typo at the same domain). Never merged automatically (seed 000: a false merge is worse than
//! a missed one); an agent merges with `POST /contacts/{id}/merge`. Contacts without a two-word
//! name get no suggestions. 200 with `{"contact", "suggestions": [{"contact", "name_similarity",
//! "similar": [[this, theirs]]}]}`, best first.

use domain::ContactId;
use kit::auth::INBOX;
use kit::http::{json, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(suggest(deps, &req).await))
}

#[utoipa::path(get, path = "/contacts/{id}/suggestions", operation_id = "contactSuggestions", tag = "contacts",
    params(("id" = String, Path, description = "The contact")),
    responses((status = 200, body = Suggestions), (status = 404, body = kit::http::ErrorBody)))]
async fn suggest(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let id = path_param(req, "id", ContactId::parse)?;
    let (contact, found) = domain::contacts::suggest(&*deps.store, &who.workspace, id).await?;
    let suggestions = found
        .iter()
        .map(|(s, c)| ContactSuggestion {
            contact: api::contact_view(c),
            name_similarity: s.name_similarity,
            similar: s.similar.clone(),
        })
        .collect();
    Ok(json(200, &Suggestions { contact: api::contact_view(&contact), suggestions }))
}

/// The contact and those that are probably the same person, best first.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Suggestions {
    pub contact: api::ContactView,
    pub suggestions: Vec<ContactSuggestion>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ContactSuggestion {
    pub contact: api::ContactView,
    /// 0-100: how alike the names are.
    pub name_similarity: u8,
    /// The identities that look alike: `[this contact's, the other's]`.
    pub similar: Vec<(domain::model::Identity, domain::model::Identity)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::model::{Contact, Conversation, Identity, IdentityKind};
    use domain::ports::{ConversationWrite, InboundCommit, InboundStore};
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::contract::inbound_message;
    use store::MemoryStore;

    async fn named(store: &MemoryStore, ws: &WorkspaceId, identity: (IdentityKind, &str), name: &str) -> Contact {
        let at = time::OffsetDateTime::now_utc();
        let identity = Identity::parse(identity.0, identity.1).unwrap();
        let contact = Contact::new(ws.clone(), identity, Some(name.into()), at);
        let conv = Conversation::start(ws.clone(), &contact, at);
        store
            .commit_inbound(InboundCommit {
                hint: None,
                new_contact: Some(contact.clone()),
                message: inbound_message(ws, &conv, &contact, at),
                conversation: ConversationWrite::Create { conversation: conv, replaces: None },
                provider: "twilio".into(),
                provider_message_id: format!("SM{}", domain::MessageId::new()),
                cost: None,
                consent: None,
            })
            .await
            .unwrap();
        contact
    }

    async fn get(deps: &Deps, ws: &WorkspaceId, id: &str) -> (u16, serde_json::Value) {
        let auth = bearer("s", ws.as_str(), "ada", Role::Agent);
        let path = format!("/contacts/{id}/suggestions");
        let req = kit::apigw::test_request(
            "GET",
            "/contacts/{id}/suggestions",
            &path,
            &[("id", id)],
            &[("authorization", &auth)],
            None,
        );
        let res = handle(deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    #[tokio::test]
    async fn a_similar_name_with_a_similar_email_is_suggested_and_nothing_else() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps::new(store.clone(), Authenticator::new("s"));
        let ws = WorkspaceId::parse("acme").unwrap();
        let jon = named(&store, &ws, (IdentityKind::Email, "jon.smith@gmail.com"), "Jon Smith").await;
        let john = named(&store, &ws, (IdentityKind::Email, "jonsmith@acme.io"), "John Smith").await;
        named(&store, &ws, (IdentityKind::Email, "other@acme.io"), "John Smith").await;
        named(&store, &ws, (IdentityKind::Phone, "+14155550100"), "Jane Smith").await;
        let (status, out) = get(&deps, &ws, &jon.id.to_string()).await;
        assert_eq!(status, 200, "{out}");
        let found = out["suggestions"].as_array().unwrap();
        assert_eq!(found.len(), 1, "{out}");
        assert_eq!(found[0]["contact"]["id"], john.id.to_string());
        assert_eq!(found[0]["similar"][0][1]["value"], "jonsmith@acme.io");
        assert_eq!(get(&deps, &ws, &ContactId::new().to_string()).await.0, 404);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps::new(store, Authenticator::new("fixture-jwt-secret"));
        let req =
            lambda_http::request::from_str(include_str!("../../../events/api-contact-suggestions/suggestions.json"))
                .unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 404, "{:?}", res.body());
    }
}
