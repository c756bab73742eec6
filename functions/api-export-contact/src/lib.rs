//! POST /contacts/{id}/export — everything Switchboard holds about one contact (GDPR access and
//! portability): the contact with its identities and consent records, every conversation across
//! channels with its messages and notes, as one JSON archive (`switchboard.contact-export.v1`)
//! written to the media bucket under `exports/` (deleted after 7 days) and answered as a
//! 15-minute presigned link: 201 `{"url", "expires_at", "conversations", "messages", "bytes"}`.
//! Admins only; audited as `contact_exported` (never the content). 404 for a contact that is not
//! in the caller's workspace.

use std::sync::Arc;

use domain::audit::AuditEntry;
use domain::ports::{FileStore, Uploads};
use domain::ContactId;
use kit::auth::{Authenticator, ADMINS};
use kit::http::{json, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use store::Store;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
    pub files: Arc<dyn FileStore>,
    pub links: Arc<dyn Uploads>,
}

impl Deps {
    /// `TABLE_NAME`, `MEDIA_BUCKET`, the JWT secret.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let api = api::Deps::from_config(config, aws).await?;
        let s3 = Arc::new(providers::s3::S3Files::new(aws_sdk_s3::Client::new(aws), config.required("MEDIA_BUCKET")?));
        Ok(Self { store: api.store, auth: api.auth, files: s3.clone(), links: s3 })
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(export(deps, &req).await))
}

#[utoipa::path(post, path = "/contacts/{id}/export", operation_id = "exportContact", tag = "contacts",
    params(("id" = String, Path, description = "The contact")),
    responses((status = 201, description = "The archive, behind a 15-minute link", body = app::export::Exported), (status = 404, body = kit::http::ErrorBody)))]
async fn export(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(ADMINS)?;
    let id = path_param(req, "id", ContactId::parse)?;
    let now = time::OffsetDateTime::now_utc();
    let Some(out) = app::export::contact(&*deps.store, &*deps.files, &*deps.links, &who.workspace, id, now).await?
    else {
        return Err(ApiError::NotFound(format!("no contact {id}")));
    };
    let details = serde_json::json!({ "contact": id, "conversations": out.conversations, "messages": out.messages });
    let entry = AuditEntry::new(who.workspace.clone(), None, who.agent.clone(), "contact_exported", details, now);
    deps.store.record_audit(&entry).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, contact = %id, messages = out.messages, "contact exported");
    Ok(json(201, &out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::AuditLog;
    use domain::{Role, WorkspaceId};
    use kit::auth::bearer;
    use providers::memory::MemoryFiles;
    use store::MemoryStore;

    #[tokio::test]
    async fn admins_export_and_it_is_audited_others_are_refused() {
        let store = Arc::new(MemoryStore::new());
        let files = Arc::new(MemoryFiles::default());
        let deps = Deps { store: store.clone(), auth: Authenticator::new("s"), files: files.clone(), links: files };
        let ws = WorkspaceId::parse("acme").unwrap();
        let (contact, _) = store::contract::seed_conversation(&*store, &ws, 2, time::OffsetDateTime::now_utc()).await;
        let call = |role, id: &str| {
            let auth = bearer("s", "acme", "ada", role);
            let path = format!("/contacts/{id}/export");
            kit::apigw::test_request(
                "POST",
                "/contacts/{id}/export",
                &path,
                &[("id", id)],
                &[("authorization", &auth)],
                None,
            )
        };
        let res = handle(&deps, call(Role::Admin, &contact.id.to_string())).await.unwrap();
        assert_eq!(res.status(), 201);
        assert_eq!(kit::apigw::json_of(&res)["messages"], 1);
        let audit = store.audit_trail(&ws, None, 5, None).await.unwrap().items;
        assert_eq!(audit[0].action, "contact_exported");
        assert_eq!(handle(&deps, call(Role::Supervisor, &contact.id.to_string())).await.unwrap().status(), 403);
        let other = ContactId::new().to_string();
        assert_eq!(handle(&deps, call(Role::Admin, &other)).await.unwrap().status(), 404);
    }
}
