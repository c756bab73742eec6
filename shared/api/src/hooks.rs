//! What the outbound-webhook admin routes share: their wiring, the endpoint as the API shows it
//! (secrets masked), the draft a create or update sends, and the lookup of the endpoint a path
//! names. Admins only: an endpoint receives every conversation's content.

use std::collections::BTreeSet;
use std::sync::Arc;

use domain::hooks::{Endpoint, EventType, Reach, Secret};
use kit::auth::{Authenticator, Principal, ADMINS};
use kit::http::ApiError;
use serde::Deserialize;
use store::Store;
use time::OffsetDateTime;

pub struct HookAdmin {
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
    pub reach: Reach,
}

impl HookAdmin {
    /// `TABLE_NAME`, the JWT secret, and `WEBHOOK_REACH` (`local` on the local stack: http and
    /// loopback URLs allowed; anything else: https and public addresses only).
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let deps = crate::Deps::from_config(config, aws).await?;
        Ok(Self { store: deps.store, auth: deps.auth, reach: reach(config) })
    }
}

pub fn reach(config: &kit::Config) -> Reach {
    Reach::from_setting(config.optional("WEBHOOK_REACH").as_deref())
}

/// A fresh secret: 32 bytes from the operating system's generator.
pub fn new_secret(now: OffsetDateTime) -> Result<Secret, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Unavailable(format!("no randomness: {e}").into()))?;
    Secret::from_bytes(&bytes, now).map_err(|e| ApiError::Internal(e.to_string().into()))
}

/// The endpoint as the API answers it: secrets masked (the full secret is shown once, when it is
/// created or rotated).
pub fn endpoint_view(e: &Endpoint) -> serde_json::Value {
    let rfc = |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).ok();
    let secrets: Vec<serde_json::Value> = e
        .secrets
        .iter()
        .map(|s| serde_json::json!({ "masked": s.masked(), "created_at": rfc(s.created_at), "expires_at": s.expires_at.and_then(rfc) }))
        .collect();
    serde_json::json!({
        "id": e.id,
        "url": e.url,
        "description": e.description,
        "events": e.events,
        "enabled": e.enabled,
        "disabled_reason": e.disabled_reason,
        "failing_since": e.failing_since.and_then(rfc),
        "last_success_at": e.last_success_at.and_then(rfc),
        "secrets": secrets,
        "created_at": rfc(e.created_at),
        "updated_at": rfc(e.updated_at),
        "version": e.version,
    })
}

pub const DRAFT_SHAPE: &str = r#"{"url": "https://...", "events"?: ["conversation.created", ...] (empty or absent: all), "description"?: "...", "enabled"?: true}"#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Draft {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

impl Draft {
    /// The event names, each known (400 names the unknown one and the known ones).
    pub fn event_types(&self) -> Result<Option<BTreeSet<EventType>>, ApiError> {
        let Some(names) = &self.events else { return Ok(None) };
        let mut out = BTreeSet::new();
        for n in names {
            let t = EventType::parse(n).ok_or_else(|| {
                let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                ApiError::BadRequest(format!("unknown event {n:?}: one of {}", known.join(", ")))
            })?;
            out.insert(t);
        }
        Ok(Some(out))
    }

    pub fn checked_url(&self, reach: Reach) -> Result<Option<String>, ApiError> {
        self.url
            .as_deref()
            .map(|u| domain::hooks::check_url(u.trim(), reach).map(|u| u.to_string()))
            .transpose()
            .map_err(|e| ApiError::BadRequest(e.to_string()))
    }

    pub fn checked_description(&self) -> Result<Option<String>, ApiError> {
        match self.description.as_deref().map(str::trim) {
            Some(d) if d.chars().count() > 200 => {
                Err(ApiError::BadRequest("description: at most 200 characters".into()))
            }
            Some(d) => Ok(Some(d.to_owned())),
            None => Ok(None),
        }
    }
}

/// The endpoint a path names, for an admin (403 for anyone else, 404 if there is none).
pub async fn managed_endpoint(store: &dyn Store, who: &Principal, id: &str) -> Result<Endpoint, ApiError> {
    who.require(ADMINS)?;
    if !domain::hooks::is_endpoint_id(id) {
        return Err(ApiError::NotFound(format!("no webhook endpoint {id}")));
    }
    store.endpoint(&who.workspace, id).await?.ok_or_else(|| ApiError::NotFound(format!("no webhook endpoint {id}")))
}
