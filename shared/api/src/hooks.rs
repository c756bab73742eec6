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
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    pub events: BTreeSet<EventType>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub failing_since: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_success_at: Option<OffsetDateTime>,
    pub secrets: Vec<SecretView>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: u64,
}

/// A signing secret, masked; one that was rotated out keeps signing until `expires_at`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SecretView {
    #[schema(example = "whsec_MfKQ…")]
    pub masked: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

pub fn endpoint_view(e: &Endpoint) -> EndpointView {
    EndpointView {
        id: e.id.clone(),
        url: e.url.clone(),
        description: e.description.clone(),
        events: e.events.clone(),
        enabled: e.enabled,
        disabled_reason: e.disabled_reason.clone(),
        failing_since: e.failing_since,
        last_success_at: e.last_success_at,
        secrets: e
            .secrets
            .iter()
            .map(|s| SecretView { masked: s.masked(), created_at: s.created_at, expires_at: s.expires_at })
            .collect(),
        created_at: e.created_at,
        updated_at: e.updated_at,
        version: e.version,
    }
}

/// An endpoint with its full new secret (shown this once).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EndpointWithSecret {
    pub endpoint: EndpointView,
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

/// An endpoint and whether the request changed it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EndpointChanged {
    pub endpoint: EndpointView,
    pub changed: bool,
}

pub const DRAFT_SHAPE: &str = r#"{"url": "https://...", "events"?: ["conversation.created", ...] (empty or absent: all), "description"?: "...", "enabled"?: true}"#;

/// An endpoint to create (`url` required) or the fields of one to change.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = WebhookEndpointDraft)]
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
