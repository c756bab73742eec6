//! The wiring every authenticated read-or-admin API route shares, built once at cold start: the
//! single-table store, the JWT check, and the rate-card cache (for routes that show money). Each
//! route is still its own function; only this wiring is common.

use std::sync::Arc;

use domain::finance::service::RateCardCache;
use kit::auth::Authenticator;
use store::Store;

#[cfg(feature = "credentials")]
pub mod credentials;
pub mod csat;
#[cfg(feature = "hooks")]
pub mod hooks;
#[cfg(feature = "webhook")]
pub mod webhook;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
    pub rates: RateCardCache,
}

impl Deps {
    pub fn new(store: Arc<dyn Store>, auth: Authenticator) -> Self {
        Self { store, auth, rates: RateCardCache::default() }
    }

    /// `TABLE_NAME`, the claim names (`OIDC_*_CLAIM`) and, locally, `JWT_SECRET` for dev tokens.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self::new(
            Arc::new(store::DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), config.required("TABLE_NAME")?)),
            Authenticator::from_config(config, aws).await?,
        ))
    }
}

/// The identity provider's directory of agents: Cognito's user pool (`USER_POOL_ID`, when the
/// stack created one), or the local OpenID provider's (`LOCAL_OIDC_DIRECTORY`, the local stack).
/// `None` with any other issuer: its own console invites and disables people.
#[cfg(feature = "directory")]
pub fn directory(config: &kit::Config, aws: &aws_config::SdkConfig) -> Option<Arc<dyn domain::ports::AgentDirectory>> {
    if let Some(pool) = config.optional("USER_POOL_ID").filter(|p| !p.is_empty()) {
        let client = aws_sdk_cognitoidentityprovider::Client::new(aws);
        return Some(Arc::new(providers::cognito::CognitoDirectory::new(client, pool)));
    }
    let issuer = config.optional("LOCAL_OIDC_DIRECTORY").filter(|p| !p.is_empty())?;
    Some(Arc::new(providers::local_directory::LocalDirectory::new(reqwest_client(), issuer)))
}

#[cfg(feature = "directory")]
fn reqwest_client() -> reqwest::Client {
    providers::http::client(std::time::Duration::from_secs(5)).unwrap_or_default()
}

/// The wiring of the agent admin routes: the API's, and the directory (see [`directory`]).
#[cfg(feature = "directory")]
pub struct AgentAdmin {
    pub api: Deps,
    pub directory: Option<Arc<dyn domain::ports::AgentDirectory>>,
}

#[cfg(feature = "directory")]
impl AgentAdmin {
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self { api: Deps::from_config(config, aws).await?, directory: directory(config, aws) })
    }
}

/// What a route answers when the deployment has no directory it can write to.
pub fn no_directory() -> kit::http::ApiError {
    kit::http::ApiError::Unprocessable(
        "agents sign in through your own identity provider (OidcIssuer): invite, disable and change roles there".into(),
    )
}

/// The directory's refusals as HTTP.
pub fn directory_error(e: domain::ports::DirectoryError) -> kit::http::ApiError {
    use domain::ports::DirectoryError;
    match e {
        DirectoryError::Taken => kit::http::ApiError::Conflict(e.to_string()),
        DirectoryError::Unavailable(_) => kit::http::ApiError::Unavailable(Box::new(e)),
        DirectoryError::Rejected(why) => kit::http::ApiError::Unprocessable(why),
    }
}

/// The wiring of WebSocket routes after `$connect`: the store and the notification queue
/// (`NOTIFICATION_QUEUE_URL`). The connection was authenticated when it opened.
#[cfg(feature = "live")]
pub struct Live {
    pub store: Arc<dyn Store>,
    pub notifications: Arc<dyn domain::ports::NotificationQueue>,
}

#[cfg(feature = "live")]
impl Live {
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Self {
            store: Arc::new(store::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.required("TABLE_NAME")?,
            )),
            notifications: Arc::new(queue::SqsQueue::new(
                aws_sdk_sqs::Client::new(aws),
                config.required("NOTIFICATION_QUEUE_URL")?,
            )),
        })
    }
}

/// [`Live`] with the service-level timers (`SLA_STATE_MACHINE_ARN`, `AWAY_STATE_MACHINE_ARN`):
/// presence changes start the away check, wakes resume clocks.
#[cfg(feature = "timers")]
pub struct Timed {
    pub store: Arc<dyn Store>,
    pub notifications: Arc<dyn domain::ports::NotificationQueue>,
    pub sla_timers: Arc<dyn domain::timers::SlaTimers>,
}

#[cfg(feature = "timers")]
impl Timed {
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let live = Live::from_config(config, aws).await?;
        let sla = timers::SfnTimers::new(aws_sdk_sfn::Client::new(aws))
            .sla(config.required("SLA_STATE_MACHINE_ARN")?)
            .away(config.required("AWAY_STATE_MACHINE_ARN")?);
        Ok(Self { store: live.store, notifications: live.notifications, sla_timers: Arc::new(sla) })
    }
}

/// The wiring of inbox actions: authenticated REST routes whose changes agents see live.
#[cfg(feature = "live")]
pub struct Inbox {
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
    pub notifications: Arc<dyn domain::ports::NotificationQueue>,
}

#[cfg(feature = "live")]
impl Inbox {
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let Live { store, notifications } = Live::from_config(config, aws).await?;
        Ok(Self { store, notifications, auth: Authenticator::from_config(config, aws).await? })
    }
}

/// The connection a WebSocket message came from, as stored at `$connect` (401 when it is not: a
/// connection cleaned up as stale must reconnect).
#[cfg(feature = "live")]
pub async fn caller(
    store: &dyn Store,
    req: &kit::ws::WsRequest,
) -> Result<domain::realtime::Connection, kit::http::ApiError> {
    let id = kit::ws::connection_id(req)?;
    let conn = store
        .connection(&id)
        .await?
        .ok_or_else(|| kit::http::ApiError::Unauthorized("unknown connection: reconnect with a token".into()))?;
    if conn.token_expires_at.is_some_and(|t| t <= time::OffsetDateTime::now_utc()) {
        return Err(kit::http::ApiError::Unauthorized("your sign-in expired: reconnect with a fresh token".into()));
    }
    Ok(conn)
}

/// Who acts, as the inbox rules know them.
pub fn actor(who: &kit::auth::Principal) -> domain::inbox::Actor {
    domain::inbox::Actor { agent: who.agent.clone(), role: who.role }
}

/// Applies one inbox command for the caller (see `domain::routing::service::act`).
#[cfg(feature = "live")]
pub async fn act(
    inbox: &Inbox,
    who: &kit::auth::Principal,
    id: domain::ConversationId,
    cmd: &domain::inbox::Command,
) -> Result<domain::routing::service::Acted, kit::http::ApiError> {
    let now = time::OffsetDateTime::now_utc();
    Ok(domain::routing::service::act(&*inbox.store, &*inbox.notifications, &who.workspace, id, &actor(who), cmd, now)
        .await?)
}

/// What an inbox action answers: the conversation after it, whether it changed, and the waiting
/// conversations that flowed to agents because of it (freed capacity).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ActedBody {
    pub conversation: domain::model::Conversation,
    pub changed: bool,
    pub assigned: Vec<Assignment>,
}

/// A conversation given to an agent.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Assignment {
    pub conversation_id: domain::ConversationId,
    pub agent: domain::AgentId,
}

impl Assignment {
    pub fn all(pairs: &[(domain::ConversationId, domain::AgentId)]) -> Vec<Assignment> {
        pairs.iter().map(|(c, a)| Assignment { conversation_id: *c, agent: a.clone() }).collect()
    }
}

/// [`ActedBody`] as a 200 response.
#[cfg(feature = "live")]
pub fn acted_response(a: &domain::routing::service::Acted) -> lambda_http::Response<lambda_http::Body> {
    let body =
        ActedBody { conversation: a.conversation.clone(), changed: a.changed, assigned: Assignment::all(&a.assigned) };
    kit::http::json(200, &body)
}

/// After an admin change (agents, teams, rules): the workspace audit entry, then waiting work may
/// flow to whoever now qualifies. The drain is best effort: the change is saved either way and the
/// next presence change or freed capacity drains again.
#[cfg(feature = "live")]
pub async fn after_admin_change(
    inbox: &Inbox,
    who: &kit::auth::Principal,
    action: &str,
    details: serde_json::Value,
) -> Result<Vec<(domain::ConversationId, domain::AgentId)>, kit::http::ApiError> {
    record_workspace_change(&*inbox.store, who, action, details).await?;
    let now = time::OffsetDateTime::now_utc();
    match domain::routing::service::drain_queue(&*inbox.store, &*inbox.notifications, &who.workspace, now).await {
        Ok(assigned) => Ok(assigned),
        Err(e) => {
            tracing::warn!(error = %e, "drain after an admin change failed");
            Ok(vec![])
        }
    }
}

/// The teams the caller belongs to, by their agent profile (none without one).
pub async fn callers_teams(
    store: &dyn Store,
    who: &kit::auth::Principal,
) -> Result<Vec<domain::TeamId>, kit::http::ApiError> {
    let mine = store.agent_states(&who.workspace, std::slice::from_ref(&who.agent)).await?;
    Ok(mine.into_iter().next().map(|a| a.teams.into_iter().collect()).unwrap_or_default())
}

/// Splits or merges for the caller (see `domain::reorg`).
#[cfg(feature = "live")]
pub async fn reorganise(
    inbox: &Inbox,
    who: &kit::auth::Principal,
    id: domain::ConversationId,
    req: &domain::reorg::Reorg,
) -> Result<domain::reorg::Reorganised, kit::http::ApiError> {
    let now = time::OffsetDateTime::now_utc();
    let done =
        domain::reorg::reorganise(&*inbox.store, &*inbox.notifications, &who.workspace, id, &actor(who), req, now)
            .await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, source = %id, conversation = %done.conversation.id,
        moved = done.moved, changed = done.changed, "conversation reorganised");
    Ok(done)
}

/// What a split or merge answers: the conversation the messages left, the one they are in now, how
/// many moved, and whether anything changed (a repeated request: `false`, status 200).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ReorganisedBody {
    pub source: domain::model::Conversation,
    pub conversation: domain::model::Conversation,
    pub moved: usize,
    pub changed: bool,
}

#[cfg(feature = "live")]
pub fn reorganised_response(status: u16, r: &domain::reorg::Reorganised) -> lambda_http::Response<lambda_http::Body> {
    let status = if r.changed { status } else { 200 };
    let body = ReorganisedBody {
        source: r.source.clone(),
        conversation: r.conversation.clone(),
        moved: r.moved,
        changed: r.changed,
    };
    kit::http::json(status, &body)
}

/// Records what the caller changed in the workspace (agents, teams, rules, canned responses).
pub async fn record_workspace_change(
    store: &dyn Store,
    who: &kit::auth::Principal,
    action: &str,
    details: serde_json::Value,
) -> Result<(), kit::http::ApiError> {
    let now = time::OffsetDateTime::now_utc();
    let entry = domain::audit::AuditEntry::new(who.workspace.clone(), None, who.agent.clone(), action, details, now);
    Ok(store.record_audit(&entry).await?)
}

/// The canned response a path names, if the caller may change or delete it (404, 403 otherwise).
pub async fn managed_canned_response(
    store: &dyn Store,
    who: &kit::auth::Principal,
    id: &str,
) -> Result<domain::canned::CannedResponse, kit::http::ApiError> {
    let current = store
        .canned_response(&who.workspace, id)
        .await?
        .ok_or_else(|| kit::http::ApiError::NotFound(format!("no canned response {id}")))?;
    let teams = callers_teams(store, who).await?;
    domain::canned::may_manage(&current.scope, &who.agent, who.role, &teams)?;
    Ok(current)
}

/// The SLA policy, as `GET` and `PUT /sla-policy` answer it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SlaPolicyBody {
    pub policy: domain::sla::Policy,
}

/// The redaction policy, as `GET` and `PUT /privacy-policy` answer it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PrivacyPolicyBody {
    pub policy: domain::redact::Policy,
}

/// One WhatsApp template, as registering and submitting answer it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TemplateBody {
    pub template: domain::channels::templates::WhatsAppTemplate,
}

/// One channel account, as connecting and disconnecting answer it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ChannelBody {
    pub channel: domain::ports::ChannelAccount,
}

/// A contact as the contact routes answer it: who, how to reach them, and where it went if merged.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ContactView {
    pub id: domain::ContactId,
    pub name: Option<String>,
    pub identities: Vec<domain::model::Identity>,
    pub attributes: std::collections::BTreeMap<String, String>,
    pub merged_into: Option<domain::ContactId>,
    pub nps: Option<domain::nps::Survey>,
    pub version: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<time::OffsetDateTime>,
}

pub fn contact_view(c: &domain::model::Contact) -> ContactView {
    ContactView {
        id: c.id,
        name: c.name.clone(),
        identities: c.identities.clone(),
        attributes: c.attributes.clone(),
        merged_into: c.merged_into,
        nps: c.nps.clone(),
        version: c.version,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

/// A contact and whether the request changed it (a repeated one: `false`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ContactChanged {
    pub contact: ContactView,
    pub changed: bool,
}

/// The visitor socket a web chat message came from, as stored at its `$connect` (401 when it is
/// not: a socket cleaned up after a failed push must reconnect).
pub async fn visitor(
    store: &dyn Store,
    req: &kit::ws::WsRequest,
) -> Result<domain::channels::webchat::VisitorConnection, kit::http::ApiError> {
    let id = kit::ws::connection_id(req)?;
    store.visitor_connection(&id).await?.ok_or_else(|| {
        kit::http::ApiError::Unauthorized("unknown connection: reconnect with your visitor token".into())
    })
}
