//! GET /contacts/{id} — the contact profile: name, custom attributes, every identity (phone, email,
//! provider ids) with its consent status, and the contact's whole history across channels: every
//! conversation, oldest first, with its status, owner and the channel the customer last used.
//! Query: `limit` (conversations per page, 1-100, default 25), `cursor`. A contact of another
//! workspace is indistinguishable from a missing one: 404.

use domain::consent::Status;
use domain::ports::Cursor;
use domain::ContactId;
use kit::auth::INBOX;
use kit::http::{json, limit_param, path_param, query_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(get(deps, &req).await))
}

#[utoipa::path(get, path = "/contacts/{id}", operation_id = "getContact", tag = "contacts",
    params(("id" = String, Path, description = "The contact"),
           ("limit" = Option<u16>, Query, description = "Conversations per page: 1-100, default 25"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = ContactProfile), (status = 404, body = kit::http::ErrorBody)))]
async fn get(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let id = path_param(req, "id", ContactId::parse)?;
    let limit = limit_param(req, 25, 100)?;
    let cursor = query_param(req, "cursor").map(Cursor);
    let contact =
        deps.store.contact(&who.workspace, id).await?.ok_or_else(|| ApiError::NotFound(format!("no contact {id}")))?;
    let mut identities = Vec::with_capacity(contact.identities.len());
    for identity in &contact.identities {
        let consent = deps.store.consent(&who.workspace, identity).await?;
        let status = consent.as_ref().map_or(Status::OptedIn, |r| r.status);
        let changed_at = consent.as_ref().and_then(|r| r.history.last()).map(|c| c.at);
        identities.push(IdentityWithConsent {
            kind: identity.kind,
            value: identity.value.clone(),
            consent: status,
            consent_changed_at: changed_at,
        });
    }
    let history = deps.store.contact_conversations(&who.workspace, id, limit, cursor.as_ref()).await?;
    let conversations = history
        .items
        .iter()
        .map(|c| PastConversation {
            id: c.id,
            status: c.status,
            assignee: c.assignee.clone(),
            channel: c.last_inbound.as_ref().map(|r| r.channel),
            message_count: c.message_count,
            tags: c.tags.clone(),
            created_at: c.created_at,
            last_activity_at: c.last_activity_at,
        })
        .collect();
    Ok(json(
        200,
        &ContactProfile {
            contact: ContactDetails {
                id: contact.id,
                name: contact.name,
                attributes: contact.attributes,
                created_at: contact.created_at,
                identities,
                merged_into: contact.merged_into,
                nps: contact.nps,
                version: contact.version,
            },
            conversations,
            next_cursor: history.next.map(|c| c.0),
        },
    ))
}

/// A contact with the consent of each identity and their conversations across channels.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ContactProfile {
    pub contact: ContactDetails,
    pub conversations: Vec<PastConversation>,
    pub next_cursor: Option<String>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ContactDetails {
    pub id: domain::ContactId,
    pub name: Option<String>,
    pub attributes: std::collections::BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    pub identities: Vec<IdentityWithConsent>,
    pub merged_into: Option<domain::ContactId>,
    pub nps: Option<domain::nps::Survey>,
    pub version: u64,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct IdentityWithConsent {
    pub kind: domain::model::IdentityKind,
    pub value: String,
    pub consent: Status,
    #[serde(with = "time::serde::rfc3339::option")]
    pub consent_changed_at: Option<time::OffsetDateTime>,
}

/// One of the contact's conversations, in brief.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PastConversation {
    pub id: domain::ConversationId,
    pub status: domain::model::ConversationStatus,
    pub assignee: Option<domain::AgentId>,
    pub channel: Option<domain::Channel>,
    pub message_count: u32,
    pub tags: std::collections::BTreeSet<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_activity_at: time::OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{ConversationWrite, InboundCommit, InboundStore};
    use domain::{Conversation, Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::contract::{inbound_message, seed_conversation};
    use store::MemoryStore;

    fn req(id: &str, ws: &str, role: Role, query: &str) -> Request {
        let auth = bearer("s", ws, "alice", role);
        kit::apigw::test_request(
            "GET",
            "/contacts/{id}",
            &format!("/contacts/{id}{query}"),
            &[("id", id)],
            &[("authorization", &auth)],
            None,
        )
    }

    fn body(res: &Response<Body>) -> serde_json::Value {
        kit::apigw::json_of(res)
    }

    #[tokio::test]
    async fn the_profile_has_every_identity_and_the_whole_history_in_order() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        let now = time::OffsetDateTime::now_utc();
        let (contact, first) = seed_conversation(store.as_ref(), &ws, 1, now).await;
        let mut second = Conversation::start(ws.clone(), &contact, now);
        second.record_inbound(first.last_inbound.clone().unwrap(), now);
        store
            .commit_inbound(InboundCommit {
                hint: None,
                consent: None,
                cost: None,
                new_contact: None,
                message: inbound_message(&ws, &second, &contact, now),
                conversation: ConversationWrite::Create { conversation: second.clone(), replaces: Some(first.id) },
                provider: "twilio".into(),
                provider_message_id: "SM-second".into(),
            })
            .await
            .unwrap();
        let deps = Deps::new(store, Authenticator::new("s"));
        let id = contact.id.to_string();
        let res = handle(&deps, req(&id, "acme", Role::Agent, "?limit=1")).await.unwrap();
        assert_eq!(res.status(), 200);
        let v = body(&res);
        assert_eq!(v["contact"]["identities"][0]["kind"], "phone");
        assert_eq!(v["contact"]["identities"][0]["consent"], "opted_in");
        let mut history = vec![v["conversations"][0]["id"].as_str().unwrap().to_owned()];
        let next = v["next_cursor"].as_str().unwrap();
        let v = body(&handle(&deps, req(&id, "acme", Role::Agent, &format!("?cursor={next}"))).await.unwrap());
        history.push(v["conversations"][0]["id"].as_str().unwrap().to_owned());
        assert!(v["next_cursor"].is_null());
        let mut expected = vec![first.id.to_string(), second.id.to_string()];
        expected.sort();
        assert_eq!(history, expected, "oldest first");
        assert_eq!(v["conversations"][0]["channel"], "sms");

        assert_eq!(handle(&deps, req(&id, "globex", Role::Agent, "")).await.unwrap().status(), 404);
        assert_eq!(handle(&deps, req("nope", "acme", Role::Agent, "")).await.unwrap().status(), 404);
        assert_eq!(handle(&deps, req(&id, "acme", Role::Finance, "")).await.unwrap().status(), 403);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("demo").unwrap();
        let (contact, _) = seed_conversation(store.as_ref(), &ws, 1, time::OffsetDateTime::now_utc()).await;
        let deps = Deps::new(store, Authenticator::new("fixture-jwt-secret"));
        let fixture = include_str!("../../../events/api-get-contact/get.json")
            .replace("01JD3XQ7Z9K2M4N6P8R0S2T4V8", &contact.id.to_string());
        let req = lambda_http::request::from_str(&fixture).unwrap();
        assert_eq!(handle(&deps, req).await.unwrap().status(), 200);
    }
}
