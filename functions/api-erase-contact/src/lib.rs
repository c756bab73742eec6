//! DELETE /contacts/{id} — erases a contact and everything about it (GDPR's right to erasure;
//! `app::erase`, `domain::erasure` for what goes and what stays). Admins only. The first step
//! runs now: a contact with few conversations answers 200 `{"status": "erased", "receipt"}`; a
//! larger one answers 202 `{"status": "erasing"}` and a Step Functions loop finishes it (ask
//! again to see the receipt); 409 while the workspace is under a legal hold. Asking again is always safe: an erased contact answers its receipt,
//! an erasure in progress continues. 404 for a contact the workspace never had. Audited as
//! `contact_erased` (the id only).

use std::sync::Arc;

use app::erase::Requested;
use domain::erasure::{Job, Receipt};
use domain::ports::FileRemover;
use domain::timers::ErasureRuns;
use domain::ContactId;
use kit::auth::{Authenticator, ADMINS};
use kit::http::{json, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use store::Store;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
    pub files: Arc<dyn FileRemover>,
    pub runs: Arc<dyn ErasureRuns>,
}

impl Deps {
    /// `TABLE_NAME`, `MEDIA_BUCKET`, `ERASURE_STATE_MACHINE_ARN`, the sign-in settings.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let api = api::Deps::from_config(config, aws).await?;
        let files = providers::s3::S3Files::new(aws_sdk_s3::Client::new(aws), config.required("MEDIA_BUCKET")?);
        let runs = timers::SfnTimers::new(aws_sdk_sfn::Client::new(aws))
            .erasure(config.required("ERASURE_STATE_MACHINE_ARN")?);
        Ok(Self { store: api.store, auth: api.auth, files: Arc::new(files), runs: Arc::new(runs) })
    }
}

/// Where an erasure stands.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErasureStatus {
    /// `erased` or `erasing`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(erase(deps, &req).await))
}

#[utoipa::path(delete, path = "/contacts/{id}", operation_id = "eraseContact", tag = "contacts",
    params(("id" = String, Path, description = "The contact")),
    responses(
        (status = 200, description = "Erased: the receipt", body = ErasureStatus),
        (status = 202, description = "Erasing continues in the background; ask again for the receipt", body = ErasureStatus),
        (status = 404, body = kit::http::ErrorBody),
        (status = 409, description = "The workspace is under a legal hold", body = kit::http::ErrorBody)))]
async fn erase(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(ADMINS)?;
    let contact = path_param(req, "id", ContactId::parse)?;
    let now = time::OffsetDateTime::now_utc();
    let job = Job { workspace: who.workspace.clone(), contact, by: who.agent.clone(), requested_at: now, done: false };
    match app::erase::request(&*deps.store, &*deps.files, &*deps.runs, &job, now).await? {
        Requested::NotFound => Err(ApiError::NotFound(format!("no contact {contact}"))),
        Requested::Erased(receipt) => Ok(json(200, &ErasureStatus { status: "erased", receipt: Some(receipt) })),
        Requested::Held(matter) => Err(ApiError::Conflict(format!(
            "the workspace is under a legal hold ({matter}): nothing is erased until an admin lifts it (PUT /workspace)"
        ))),
        Requested::Erasing => {
            tracing::info!(workspace = %who.workspace, by = %who.agent, %contact, "erasure continues in the loop");
            Ok(json(202, &ErasureStatus { status: "erasing", receipt: None }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{AuditLog, ConversationReader};
    use domain::{Role, WorkspaceId};
    use kit::auth::bearer;
    use providers::memory::MemoryFiles;
    use store::MemoryStore;
    use timers::RecordingTimers;

    #[tokio::test]
    async fn admins_erase_once_and_see_the_receipt_again_others_are_refused() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps {
            store: store.clone(),
            auth: Authenticator::new("s"),
            files: Arc::new(MemoryFiles::default()),
            runs: Arc::new(RecordingTimers::default()),
        };
        let ws = WorkspaceId::parse("acme").unwrap();
        let (contact, conv) =
            store::contract::seed_conversation(&*store, &ws, 2, time::OffsetDateTime::now_utc()).await;
        let call = |role, id: &str| {
            let auth = bearer("s", "acme", "ada", role);
            let path = format!("/contacts/{id}");
            kit::apigw::test_request(
                "DELETE",
                "/contacts/{id}",
                &path,
                &[("id", id)],
                &[("authorization", &auth)],
                None,
            )
        };
        let id = contact.id.to_string();
        for role in [Role::Agent, Role::Supervisor, Role::Finance] {
            assert_eq!(handle(&deps, call(role, &id)).await.unwrap().status(), 403);
        }
        assert_eq!(handle(&deps, call(Role::Admin, "not-an-id")).await.unwrap().status(), 404);
        let res = handle(&deps, call(Role::Admin, &id)).await.unwrap();
        assert_eq!(res.status(), 200);
        let body = kit::apigw::json_of(&res);
        assert_eq!((body["status"].as_str(), body["receipt"]["contact"].as_str()), (Some("erased"), Some(id.as_str())));
        assert!(store.conversation(&ws, conv.id).await.unwrap().is_none());
        let again = handle(&deps, call(Role::Admin, &id)).await.unwrap();
        assert_eq!((again.status().as_u16(), kit::apigw::json_of(&again)), (200, body));
        let audit = store.audit_trail(&ws, None, 5, None).await.unwrap().items;
        assert_eq!(audit.iter().filter(|e| e.action == "contact_erased").count(), 1);
        assert_eq!(handle(&deps, call(Role::Admin, &ContactId::new().to_string())).await.unwrap().status(), 404);

        // Under a legal hold nothing is erased.
        use domain::ports::WorkspaceStore;
        let (held, _) = store::contract::seed_conversation(&*store, &ws, 4, time::OffsetDateTime::now_utc()).await;
        let hold = domain::workspace::Settings { legal_hold: Some("Smith v. Acme".into()), ..Default::default() };
        store.put_workspace_settings(&ws, &hold).await.unwrap();
        let res = handle(&deps, call(Role::Admin, &held.id.to_string())).await.unwrap();
        assert_eq!(res.status(), 409);
        assert!(kit::apigw::json_of(&res).to_string().contains("Smith v. Acme"));
        assert!(store.contact(&ws, held.id).await.unwrap().is_some());
    }
}
