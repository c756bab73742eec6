//! PUT /whatsapp/templates/{name}/{language} — registers a WhatsApp template or records a change
//! (Meta approved it, paused it, a new body). Body: `{"category": "utility", "body": "Hi {{1}}, …",
//! "status": "approved"}`. Admins only; audited with the template before and after. The registry
//! mirrors WhatsApp Manager: templates are created and reviewed there, by Meta.

use domain::channels::templates::{TemplateStatus, WhatsAppTemplate};
use domain::finance::pricing::WhatsappCategory;
use kit::auth::ADMINS;
use kit::http::{json, json_body, respond, ApiError};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde::Deserialize;

pub use api::Deps;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PutWhatsappTemplateRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    category: WhatsappCategory,
    body: String,
    status: TemplateStatus,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(put(deps, &req).await))
}

#[utoipa::path(put, path = "/whatsapp/templates/{name}/{language}", operation_id = "putWhatsappTemplate", tag = "whatsapp",
    params(("name" = String, Path, description = "The template's name at Meta"), ("language" = String, Path, description = "Its language (en_US)")),
    request_body = Draft,
    responses((status = 201, description = "Registered", body = TemplateBody), (status = 200, description = "Updated", body = TemplateBody), (status = 404, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn put(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(ADMINS)?;
    let params = req.path_parameters();
    let (Some(name), Some(language)) = (params.first("name"), params.first("language")) else {
        return Err(ApiError::NotFound("no such template path".into()));
    };
    let draft: Draft = json_body(req, r#"{"category": "utility", "body": "...", "status": "approved"}"#)?;
    let now = time::OffsetDateTime::now_utc();
    let template =
        WhatsAppTemplate::new(name, language, draft.category, &draft.body, draft.status, who.agent.clone(), now)?;
    let before = deps.store.whatsapp_template(&who.workspace, &template.name, &template.language).await?;
    deps.store.put_whatsapp_template(&who.workspace, &template).await?;
    let details = serde_json::json!({ "before": before, "after": template });
    api::record_workspace_change(&*deps.store, &who, "whatsapp_template_changed", details).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, template = %template.name, "WhatsApp template saved");
    Ok(json(if before.is_some() { 200 } else { 201 }, &TemplateBody { template }))
}

use api::TemplateBody;

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{AuditLog, TemplateStore};
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    async fn put_req(deps: &Deps, name: &str, lang: &str, role: Role, body: &str) -> u16 {
        let auth = bearer("s", "acme", "ada", role);
        let req = kit::apigw::test_request(
            "PUT",
            "/whatsapp/templates/{name}/{language}",
            &format!("/whatsapp/templates/{name}/{lang}"),
            &[("name", name), ("language", lang)],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        handle(deps, req).await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn admins_register_valid_templates_and_changes_are_audited() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps::new(store.clone(), Authenticator::new("s"));
        let ws = WorkspaceId::parse("acme").unwrap();
        let ok = r#"{"category": "utility", "body": "Hi {{1}}, refund {{2}} is done.", "status": "pending"}"#;
        assert_eq!(put_req(&deps, "refund_update", "en_US", Role::Admin, ok).await, 201);
        let approved = ok.replace("pending", "approved");
        assert_eq!(put_req(&deps, "refund_update", "en_US", Role::Admin, &approved).await, 200);
        let t = store.whatsapp_template(&ws, "refund_update", "en_US").await.unwrap().unwrap();
        assert_eq!(t.status, TemplateStatus::Approved);
        let audit = store.audit_trail(&ws, None, 5, None).await.unwrap().items;
        assert_eq!(audit.len(), 2);
        assert!(audit.iter().all(|e| e.action == "whatsapp_template_changed"));
        assert!(audit
            .iter()
            .any(|e| e.details["before"]["status"] == "pending" && e.details["after"]["status"] == "approved"));
        assert_eq!(put_req(&deps, "refund_update", "en_US", Role::Agent, ok).await, 403);
        assert_eq!(put_req(&deps, "Refund Update", "en_US", Role::Admin, ok).await, 400);
        let skipped = r#"{"category": "utility", "body": "Hi {{2}}", "status": "approved"}"#;
        assert_eq!(put_req(&deps, "refund_update", "en_US", Role::Admin, skipped).await, 400);
        let bad_category = r#"{"category": "spam", "body": "Hi", "status": "approved"}"#;
        assert_eq!(put_req(&deps, "refund_update", "en_US", Role::Admin, bad_category).await, 400);
    }
}
