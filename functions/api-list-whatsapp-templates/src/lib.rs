//! GET /whatsapp/templates — the workspace's WhatsApp template registry, by name then language:
//! what an agent may send once a conversation's 24-hour window has closed (approved ones), with each
//! body and its number of parameters. Query: `status` (`approved`, `pending`, …) to filter.

use domain::channels::templates::{variables, TemplateStatus};
use kit::auth::INBOX;
use kit::http::{json, query_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(list(deps, &req).await))
}

#[utoipa::path(get, path = "/whatsapp/templates", operation_id = "listWhatsappTemplates", tag = "whatsapp",
    params(("status" = Option<String>, Query, description = "approved, pending, rejected, paused or disabled")),
    responses((status = 200, body = kit::http::Items<Listed>)))]
async fn list(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let status = match query_param(req, "status") {
        None => None,
        Some(s) => Some(serde_json::from_value::<TemplateStatus>(serde_json::Value::String(s)).map_err(|_| {
            ApiError::BadRequest("status is one of approved, pending, rejected, paused, disabled".into())
        })?),
    };
    let mut templates = deps.store.whatsapp_templates(&who.workspace).await?;
    templates.retain(|t| status.is_none_or(|s| t.status == s));
    templates.sort_by(|a, b| (&a.name, &a.language).cmp(&(&b.name, &b.language)));
    let items =
        templates.into_iter().map(|t| Listed { parameters: variables(&t.body).unwrap_or(0), template: t }).collect();
    Ok(json(200, &kit::http::Items { items }))
}

/// A registered template and how many body parameters a send must give.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Listed {
    pub template: domain::channels::templates::WhatsAppTemplate,
    pub parameters: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::channels::templates::WhatsAppTemplate;
    use domain::finance::pricing::WhatsappCategory;
    use domain::ports::TemplateStore;
    use domain::{AgentId, Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    #[tokio::test]
    async fn lists_the_registry_filtered_by_status() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        let at = time::OffsetDateTime::now_utc();
        for (name, status) in [("refund_update", TemplateStatus::Approved), ("promo_x", TemplateStatus::Pending)] {
            let by = AgentId::parse("ada").unwrap();
            let t = WhatsAppTemplate::new(name, "en", WhatsappCategory::Utility, "Hi {{1}}", status, by, at).unwrap();
            store.put_whatsapp_template(&ws, &t).await.unwrap();
        }
        let deps = Deps::new(store, Authenticator::new("s"));
        let get = |q: &'static str, role| {
            let auth = bearer("s", "acme", "bob", role);
            let uri = format!("/whatsapp/templates{q}");
            let req =
                kit::apigw::test_request("GET", "/whatsapp/templates", &uri, &[], &[("authorization", &auth)], None);
            async { handle(&deps, req).await.unwrap() }
        };
        let all = get("", Role::Agent).await;
        assert_eq!(all.status(), 200);
        let body = kit::apigw::json_of(&all);
        assert_eq!(body["items"].as_array().unwrap().len(), 2);
        assert_eq!(body["items"][0]["template"]["name"], "promo_x");
        assert_eq!(body["items"][1]["parameters"], 1);
        let approved = kit::apigw::json_of(&get("?status=approved", Role::Agent).await);
        assert_eq!(approved["items"].as_array().unwrap().len(), 1);
        assert_eq!(get("", Role::Finance).await.status(), 403);
    }
}
