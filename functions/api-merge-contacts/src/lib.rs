//! POST /contacts/{id}/merge — when one person ended up as two contacts: this contact merges into
//! `into`. Body: `{"into": "<contact id>"}`.
//!
//! Every identity (phone, email, provider ids) and every conversation moves to `into`; this contact
//! stays as an empty forwarding record (`merged_into`). `into` keeps its name and attributes and
//! takes this contact's where it had none. If only this contact had an unresolved conversation, it
//! becomes `into`'s thread; if both had one, `into`'s stays the thread and this one's stays open
//! (merge the two conversations with `POST /conversations/{id}/merge`). Any inbox user may merge;
//! the merge is on the workspace's audit trail (`contacts_merged`). 200 with
//! `{"contact", "source", "moved", "changed"}`; the same request again changes nothing
//! (`changed: false`) and finishes a merge that was interrupted. 422: into itself or into a
//! missing contact; 409: either contact was merged away already. `domain::contacts` holds the rules.

use domain::ContactId;
use kit::auth::INBOX;
use kit::http::{json, json_body, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::Deps;

const SHAPE: &str = r#"{"into": "<contact id>"}"#;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = MergeContactsRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    into: String,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(merge(deps, &req).await))
}

#[utoipa::path(post, path = "/contacts/{id}/merge", operation_id = "mergeContacts", tag = "contacts",
    params(("id" = String, Path, description = "The contact merged away")),
    request_body = Draft,
    responses((status = 200, body = Merged), (status = 404, body = kit::http::ErrorBody), (status = 409, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn merge(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let id = path_param(req, "id", ContactId::parse)?;
    let draft: Draft = json_body(req, SHAPE)?;
    let into = ContactId::parse(&draft.into)?;
    let now = time::OffsetDateTime::now_utc();
    let done = domain::contacts::merge(&*deps.store, &who.workspace, id, into, &who.agent, now).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, source = %id, into = %into, moved = done.moved,
        changed = done.changed, "contacts merged");
    Ok(json(
        200,
        &Merged {
            contact: api::contact_view(&done.contact),
            source: api::contact_view(&done.source),
            moved: done.moved,
            changed: done.changed,
        },
    ))
}

/// The contact merged into, the one merged away (now forwarding), and how much moved.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Merged {
    pub contact: api::ContactView,
    pub source: api::ContactView,
    /// Conversations moved to the contact merged into.
    pub moved: usize,
    pub changed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::model::{Identity, IdentityKind};
    use domain::ports::{ContactHistory, InboundStore};
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::contract::seed_conversation;
    use store::MemoryStore;

    fn deps(secret: &str) -> (Deps, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::new());
        (Deps::new(store.clone(), Authenticator::new(secret)), store)
    }

    async fn post(deps: &Deps, ws: &WorkspaceId, id: &str, body: &str) -> (u16, serde_json::Value) {
        let auth = bearer("s", ws.as_str(), "ada", Role::Agent);
        let req = kit::apigw::test_request(
            "POST",
            "/contacts/{id}/merge",
            &format!("/contacts/{id}/merge"),
            &[("id", id)],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        let res = handle(deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    #[tokio::test]
    async fn a_merge_moves_identities_and_conversations_once() {
        let (deps, store) = deps("s");
        let ws = WorkspaceId::parse("acme").unwrap();
        let at = time::OffsetDateTime::now_utc();
        let (a, _) = seed_conversation(store.as_ref(), &ws, 1, at).await;
        let (b, y) = seed_conversation(store.as_ref(), &ws, 2, at).await;
        let body = format!(r#"{{"into": "{}"}}"#, a.id);
        let (status, out) = post(&deps, &ws, &b.id.to_string(), &body).await;
        assert_eq!(status, 200, "{out}");
        assert_eq!((out["moved"].clone(), out["changed"].clone()), (1.into(), true.into()));
        assert_eq!(out["source"]["merged_into"], a.id.to_string());
        assert_eq!(out["contact"]["identities"].as_array().unwrap().len(), 2);
        let phone = Identity::parse(IdentityKind::Phone, "+14155550002").unwrap();
        assert_eq!(store.contact_by_identity(&ws, &phone).await.unwrap().map(|c| c.id), Some(a.id));
        let history = store.contact_conversations(&ws, a.id, 10, None).await.unwrap().items;
        assert!(history.iter().any(|c| c.id == y.id));
        let (status, again) = post(&deps, &ws, &b.id.to_string(), &body).await;
        assert_eq!((status, again["changed"].clone(), again["moved"].clone()), (200, false.into(), 0.into()));
    }

    #[tokio::test]
    async fn bad_merges_are_refused_with_a_reason() {
        let (deps, store) = deps("s");
        let ws = WorkspaceId::parse("acme").unwrap();
        let at = time::OffsetDateTime::now_utc();
        let (a, _) = seed_conversation(store.as_ref(), &ws, 1, at).await;
        let (b, _) = seed_conversation(store.as_ref(), &ws, 2, at).await;
        let (c, _) = seed_conversation(store.as_ref(), &ws, 3, at).await;
        let into = |x: ContactId| format!(r#"{{"into": "{x}"}}"#);
        assert_eq!(post(&deps, &ws, &a.id.to_string(), &into(a.id)).await.0, 422, "itself");
        assert_eq!(post(&deps, &ws, &a.id.to_string(), &into(ContactId::new())).await.0, 422, "nowhere");
        assert_eq!(post(&deps, &ws, &ContactId::new().to_string(), &into(a.id)).await.0, 404);
        assert_eq!(post(&deps, &ws, &a.id.to_string(), r#"{"into": 1}"#).await.0, 400);
        assert_eq!(post(&deps, &ws, &a.id.to_string(), r#"{"into": "nope"}"#).await.0, 400);
        assert_eq!(post(&deps, &ws, &b.id.to_string(), &into(a.id)).await.0, 200);
        let (status, out) = post(&deps, &ws, &c.id.to_string(), &into(b.id)).await;
        assert_eq!(status, 409, "{out}");
        assert!(out["error"]["message"].as_str().unwrap().contains(&a.id.to_string()), "{out}");
        let other = WorkspaceId::parse("other").unwrap();
        assert_eq!(post(&deps, &other, &c.id.to_string(), &into(a.id)).await.0, 404, "another workspace");
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let (deps, _) = deps("fixture-jwt-secret");
        let req =
            lambda_http::request::from_str(include_str!("../../../events/api-merge-contacts/merge.json")).unwrap();
        let res = handle(&deps, req).await.unwrap();
        // Authenticated and parsed; this empty store holds neither contact: a clear 404.
        assert_eq!(res.status(), 404, "{:?}", res.body());
    }
}
