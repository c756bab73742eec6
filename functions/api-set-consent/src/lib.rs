//! PUT /contacts/{id}/consent — an agent records, by hand, a contact's opt-out (they asked by
//! phone, by email, in a chat) or opt-in again: `{"kind": "phone", "value": "+14155552671",
//! "status": "opted_out" | "opted_in", "note"?: "asked by email on …"}`. The identity must be one
//! of the contact's. The record keeps its whole history (keywords, provider suppressions, agents),
//! and the change is audited as `consent_changed`. From then on replies to that identity are
//! refused (422 naming who recorded it), as after a STOP; the HELP answer stays allowed.

use domain::audit::AuditEntry;
use domain::consent::{Change, Record, Source, Status};
use domain::model::{Identity, IdentityKind};
use domain::ContactId;
use kit::auth::INBOX;
use kit::http::{json, json_body, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::Deps;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = SetConsentRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    kind: String,
    value: String,
    status: Status,
    #[serde(default)]
    note: Option<String>,
}

const SHAPE: &str =
    r#"{"kind": "phone" | "email" | …, "value": "…", "status": "opted_out" | "opted_in", "note"?: "…"}"#;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(set(deps, &req).await))
}

#[utoipa::path(put, path = "/contacts/{id}/consent", operation_id = "setConsent", tag = "contacts",
    params(("id" = String, Path, description = "The contact")),
    request_body = Draft,
    responses((status = 200, body = ConsentBody), (status = 404, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn set(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let id = path_param(req, "id", ContactId::parse)?;
    let draft: Draft = json_body(req, SHAPE)?;
    let identity = Identity::parse(IdentityKind::parse(&draft.kind)?, &draft.value)?;
    let note = draft.note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if note.as_ref().is_some_and(|n| n.chars().count() > 500) {
        return Err(ApiError::Unprocessable("note: at most 500 characters".into()));
    }
    let ws = &who.workspace;
    let Some(contact) = deps.store.contact(ws, id).await? else {
        return Err(ApiError::NotFound(format!("no contact {id}")));
    };
    if !contact.identities.iter().any(|i| i.kind == identity.kind && i.value == identity.value) {
        return Err(ApiError::Unprocessable(format!("{} {} is not one of this contact's", draft.kind, identity.value)));
    }
    let current = deps.store.consent(ws, &identity).await?;
    if current.as_ref().is_some_and(|r| r.status == draft.status) {
        return Ok(json(200, &ConsentBody { consent: current, changed: false }));
    }
    let now = time::OffsetDateTime::now_utc();
    let change = Change { status: draft.status, at: now, source: Source::Agent { agent: who.agent.clone(), note } };
    let record = Record::apply(current, &identity, change);
    deps.store.put_consent(ws, &record).await?;
    let details = serde_json::json!({ "contact": id, "kind": draft.kind, "status": draft.status });
    let entry = AuditEntry::new(ws.clone(), None, who.agent.clone(), "consent_changed", details, now);
    deps.store.record_audit(&entry).await?;
    tracing::info!(workspace = %ws, by = %who.agent, contact = %id, status = ?draft.status, "consent recorded by hand");
    Ok(json(200, &ConsentBody { consent: Some(record), changed: true }))
}

/// The identity's consent record with its history, and whether this request changed it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ConsentBody {
    pub consent: Option<Record>,
    pub changed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{AuditLog, ConsentStore};
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    #[tokio::test]
    async fn an_agent_records_an_opt_out_once_audited_and_replies_are_then_refused() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps::new(store.clone(), Authenticator::new("s"));
        let ws = WorkspaceId::parse("acme").unwrap();
        let (contact, _) = store::contract::seed_conversation(&*store, &ws, 4, time::OffsetDateTime::now_utc()).await;
        let phone = contact.identities[0].clone();
        let call = |role, body: serde_json::Value| {
            let auth = bearer("s", "acme", "ann", role);
            let path = format!("/contacts/{}/consent", contact.id);
            let id = contact.id.to_string();
            let body = body.to_string();
            kit::apigw::test_request(
                "PUT",
                "/contacts/{id}/consent",
                &path,
                &[("id", id.as_str())],
                &[("authorization", &auth)],
                Some(body.as_bytes()),
            )
        };
        let out = serde_json::json!({ "kind": "phone", "value": phone.value, "status": "opted_out", "note": "asked by email" });
        assert_eq!(handle(&deps, call(Role::Agent, out.clone())).await.unwrap().status(), 200);
        let again = handle(&deps, call(Role::Agent, out)).await.unwrap();
        assert_eq!(kit::apigw::json_of(&again)["changed"], false);
        let record = store.consent(&ws, &phone).await.unwrap().unwrap();
        assert!(record.refusal().unwrap().contains("recorded by ann"), "{:?}", record.refusal());
        let audit = store.audit_trail(&ws, None, 5, None).await.unwrap().items;
        assert_eq!(audit.iter().filter(|e| e.action == "consent_changed").count(), 1);
        let back = serde_json::json!({ "kind": "phone", "value": phone.value, "status": "opted_in" });
        assert_eq!(handle(&deps, call(Role::Supervisor, back)).await.unwrap().status(), 200);
        assert!(store.consent(&ws, &phone).await.unwrap().unwrap().refusal().is_none());
        let stranger = serde_json::json!({ "kind": "phone", "value": "+14155550999", "status": "opted_out" });
        assert_eq!(handle(&deps, call(Role::Agent, stranger)).await.unwrap().status(), 422);
        let finance = serde_json::json!({ "kind": "phone", "value": phone.value, "status": "opted_out" });
        assert_eq!(handle(&deps, call(Role::Finance, finance)).await.unwrap().status(), 403);
    }
}
