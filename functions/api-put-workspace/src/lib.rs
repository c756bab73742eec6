//! PUT /workspace — an admin saves the workspace's settings, no deploy needed. Body (every field
//! optional; absent or blank means the stack's default): `{"name": "Acme", "help_text": "Acme
//! support: reply STOP to opt out.", "voicemail_greeting": "You've reached Acme…",
//! "max_sms_segments": 4, "retention_days": 365, "legal_hold": "Smith v. Acme", "unauthenticated_mail":
//! "drop"}`. The whole document is replaced (PUT: saving the same body twice is one
//! change); validated (texts up to 1,000 characters, 1-10 segments); audited with the settings
//! before and after. Containers pick the change up within a minute (they cache settings).
//! Retention (30-3650 days) is applied by the daily retention run; a legal hold suspends it and
//! refuses erasure requests.

use kit::auth::ADMINS;
use kit::http::{json, json_body, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::Deps;

/// The body: [`domain::workspace::Settings`], refusing fields it does not know (a typo must not
/// silently keep the default).
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PutWorkspaceRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    help_text: Option<String>,
    #[serde(default)]
    voicemail_greeting: Option<String>,
    #[serde(default)]
    max_sms_segments: Option<u32>,
    #[serde(default)]
    retention_days: Option<u32>,
    #[serde(default)]
    legal_hold: Option<String>,
    #[serde(default)]
    unauthenticated_mail: Option<domain::workspace::MailPolicy>,
    /// Where failed replies are re-sent, per channel (`{"whatsapp": ["sms", "email"]}`).
    #[serde(default)]
    #[schema(value_type = std::collections::BTreeMap<String, Vec<domain::Channel>>)]
    fallback: domain::fallback::Policy,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(put(deps, &req).await))
}

#[utoipa::path(put, path = "/workspace", operation_id = "putWorkspace", tag = "workspace",
    request_body = Draft,
    responses((status = 200, body = SettingsBody), (status = 422, body = kit::http::ErrorBody)))]
async fn put(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(ADMINS)?;
    let draft: Draft = json_body(
        req,
        r#"{"name"?, "help_text"?, "voicemail_greeting"?, "max_sms_segments"?, "retention_days"?, "legal_hold"?, "unauthenticated_mail"?, "fallback"?} (see GET /workspace)"#,
    )?;
    let settings = domain::workspace::Settings {
        name: draft.name,
        help_text: draft.help_text,
        voicemail_greeting: draft.voicemail_greeting,
        max_sms_segments: draft.max_sms_segments,
        retention_days: draft.retention_days,
        legal_hold: draft.legal_hold,
        unauthenticated_mail: draft.unauthenticated_mail,
        fallback: draft.fallback,
    }
    .validated()
    .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let before = deps.store.workspace_settings(&who.workspace).await?;
    if before != settings {
        deps.store.put_workspace_settings(&who.workspace, &settings).await?;
        let details = serde_json::json!({ "before": before, "after": settings });
        api::record_workspace_change(&*deps.store, &who, "workspace_settings_changed", details).await?;
        tracing::info!(workspace = %who.workspace, by = %who.agent, "workspace settings saved");
    }
    Ok(json(200, &SettingsBody { workspace: who.workspace, settings }))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SettingsBody {
    pub workspace: domain::WorkspaceId,
    pub settings: domain::workspace::Settings,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{AuditLog, WorkspaceStore};
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    async fn put_req(deps: &Deps, role: Role, body: &str) -> u16 {
        let auth = bearer("s", "acme", "ada", role);
        let req = kit::apigw::test_request(
            "PUT",
            "/workspace",
            "/workspace",
            &[],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        handle(deps, req).await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn admins_save_settings_once_and_the_change_is_audited() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps::new(store.clone(), Authenticator::new("s"));
        let ws = WorkspaceId::parse("acme").unwrap();
        let body = r#"{"name": " Acme ", "help_text": "Acme support. Reply STOP to opt out.", "max_sms_segments": 3}"#;
        assert_eq!(put_req(&deps, Role::Admin, body).await, 200);
        assert_eq!(put_req(&deps, Role::Admin, body).await, 200, "the same body again");
        let saved = store.workspace_settings(&ws).await.unwrap();
        assert_eq!((saved.name.as_deref(), saved.max_sms_segments), (Some("Acme"), Some(3)));
        let trail = store.audit_trail(&ws, None, 5, None).await.unwrap().items;
        assert_eq!(trail.len(), 1, "an unchanged save is not a change: {trail:?}");
        assert_eq!((trail[0].action.as_str(), trail[0].actor.as_str()), ("workspace_settings_changed", "ada"));

        assert_eq!(put_req(&deps, Role::Supervisor, "{}").await, 403);
        assert_eq!(put_req(&deps, Role::Admin, r#"{"max_sms_segments": 40}"#).await, 422);
        assert_eq!(put_req(&deps, Role::Admin, r#"{"colour": "red"}"#).await, 400);
        assert_eq!(store.workspace_settings(&ws).await.unwrap(), saved, "refused changes store nothing");
    }
}
