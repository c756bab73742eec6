//! Agent authentication: a bearer JWT (HS256) naming the workspace (`ws`) and the agent (`sub`).
//! Every API handler takes its workspace from here and nowhere else, so no request can reach
//! another tenant's data.

use domain::{AgentId, WorkspaceId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lambda_http::Request;
use serde::{Deserialize, Serialize};

use crate::http::ApiError;

pub use domain::Role;

/// Who may read cost reports and budgets.
pub const FINANCE_READERS: &[Role] = &[Role::Finance, Role::Supervisor, Role::Admin];
/// Who may create rate cards and set budgets.
pub const FINANCE_ADMINS: &[Role] = &[Role::Finance, Role::Admin];
/// Who works the inbox (finance users do not).
pub const INBOX: &[Role] = &[Role::Agent, Role::Supervisor, Role::Admin];
/// Who changes routing rules and reads the workspace's audit trail.
pub const SUPERVISORS: &[Role] = &[Role::Supervisor, Role::Admin];
/// Who manages agents and teams.
pub const ADMINS: &[Role] = &[Role::Admin];

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub ws: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub role: Role,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
}

/// Who is calling, once their token checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub workspace: WorkspaceId,
    pub agent: AgentId,
    pub name: Option<String>,
    pub role: Role,
}

impl Principal {
    /// Refuses (403) callers whose role is not one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            return Ok(());
        }
        let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::Forbidden(format!(
            "this needs one of the roles {}; the token's role is {}",
            allowed.join(", "),
            self.role.as_str()
        )))
    }
}

pub const ISSUER: &str = "switchboard";

#[derive(Clone)]
pub struct Authenticator {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    visitor_validation: Validation,
    /// Signs the satisfaction survey's email rating links (`domain::csat::link_key`).
    link_key: Vec<u8>,
}

/// The issuer of web chat visitors' tokens: an agent's token is never a visitor's, nor the reverse.
pub const VISITOR_ISSUER: &str = "switchboard-webchat";

#[derive(Debug, Serialize, Deserialize)]
struct VisitorClaims {
    sub: String,
    ws: String,
    /// The widget key the token was issued for.
    key: String,
    exp: i64,
    iat: i64,
    iss: String,
}

/// A web chat visitor, as their token names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Visitor {
    pub workspace: WorkspaceId,
    pub visitor: domain::channels::webchat::VisitorId,
    pub key: String,
    pub expires_at: time::OffsetDateTime,
}

impl Authenticator {
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.leeway = 30;
        let mut visitor_validation = Validation::new(Algorithm::HS256);
        visitor_validation.set_issuer(&[VISITOR_ISSUER]);
        visitor_validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        visitor_validation.leeway = 30;
        Self {
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            validation,
            visitor_validation,
            link_key: domain::csat::link_key(secret.as_bytes()),
        }
    }

    /// The key of the satisfaction survey's rating links.
    pub fn link_key(&self) -> &[u8] {
        &self.link_key
    }

    /// A token for a web chat visitor of the widget `key`, valid for `ttl`.
    pub fn issue_visitor_token(
        &self,
        workspace: &WorkspaceId,
        visitor: &domain::channels::webchat::VisitorId,
        key: &str,
        ttl: time::Duration,
    ) -> (String, time::OffsetDateTime) {
        let now =
            time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| time::OffsetDateTime::now_utc());
        let claims = VisitorClaims {
            sub: visitor.to_string(),
            ws: workspace.to_string(),
            key: key.to_owned(),
            iat: now.unix_timestamp(),
            exp: (now + ttl).unix_timestamp(),
            iss: VISITOR_ISSUER.to_owned(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail");
        (token, now + ttl)
    }

    pub fn verify_visitor_token(&self, token: &str) -> Result<Visitor, ApiError> {
        let bad = |e: String| ApiError::Unauthorized(format!("invalid visitor token: {e}"));
        let c = jsonwebtoken::decode::<VisitorClaims>(token, &self.decoding, &self.visitor_validation)
            .map_err(|e| bad(e.to_string()))?
            .claims;
        Ok(Visitor {
            workspace: WorkspaceId::parse(&c.ws).map_err(|e| bad(e.to_string()))?,
            visitor: domain::channels::webchat::VisitorId::parse(&c.sub).map_err(|e| bad(e.to_string()))?,
            key: c.key,
            expires_at: time::OffsetDateTime::from_unix_timestamp(c.exp).map_err(|e| bad(e.to_string()))?,
        })
    }

    /// From the `JWT_SECRET` secret (Secrets Manager in AWS, the environment locally).
    pub async fn from_config(config: &crate::Config, aws: &aws_config::SdkConfig) -> Result<Self, crate::ConfigError> {
        Ok(Self::new(&config.secret("JWT_SECRET", aws).await?))
    }

    pub fn verify_token(&self, token: &str) -> Result<Principal, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| ApiError::Unauthorized(format!("invalid token: {e}")))?;
        let c = data.claims;
        let workspace = WorkspaceId::parse(&c.ws).map_err(|e| ApiError::Unauthorized(format!("invalid token: {e}")))?;
        let agent = AgentId::parse(&c.sub).map_err(|e| ApiError::Unauthorized(format!("invalid token: {e}")))?;
        if agent.as_str() == domain::consent::SYSTEM_AGENT {
            return Err(ApiError::Unauthorized("invalid token: the agent id \"system\" is reserved".into()));
        }
        Ok(Principal { workspace, agent, name: c.name, role: c.role })
    }

    /// Authenticates a request from its `Authorization: Bearer <jwt>` header.
    pub fn authenticate(&self, req: &Request) -> Result<Principal, ApiError> {
        let header = crate::http::header(req, "authorization")
            .ok_or_else(|| ApiError::Unauthorized("missing Authorization header".into()))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::Unauthorized("expected Authorization: Bearer <token>".into()))?;
        self.verify_token(token.trim())
    }
}

/// Mints a token: for the local stack's dev tokens and for tests. Production tokens come from the
/// team's identity provider, signed with the same secret.
pub fn issue_token(
    secret: &str,
    workspace: &WorkspaceId,
    agent: &AgentId,
    name: Option<&str>,
    role: Role,
    ttl: time::Duration,
) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = Claims {
        sub: agent.to_string(),
        ws: workspace.to_string(),
        name: name.map(str::to_owned),
        role,
        iat: now,
        exp: now + ttl.whole_seconds(),
        iss: ISSUER.to_owned(),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()))
        .expect("HS256 signing with an in-memory key cannot fail")
}

/// `Bearer <an hour's token>` for `agent` of `workspace` (both must be valid ids): for tests and
/// fixtures.
pub fn bearer(secret: &str, workspace: &str, agent: &str, role: Role) -> String {
    let ws = WorkspaceId::parse(workspace).expect("a valid workspace id");
    let agent = AgentId::parse(agent).expect("a valid agent id");
    format!("Bearer {}", issue_token(secret, &ws, &agent, None, role, time::Duration::hours(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (WorkspaceId, AgentId) {
        (WorkspaceId::parse("acme").unwrap(), AgentId::parse("alice").unwrap())
    }

    #[test]
    fn a_minted_token_verifies() {
        let (ws, agent) = ids();
        let t = issue_token("secret", &ws, &agent, Some("Alice"), Role::Supervisor, time::Duration::hours(1));
        let p = Authenticator::new("secret").verify_token(&t).unwrap();
        assert_eq!(p.workspace, ws);
        assert_eq!(p.agent, agent);
        assert_eq!(p.role, Role::Supervisor);
    }

    #[test]
    fn forged_expired_and_garbage_tokens_are_refused() {
        let (ws, agent) = ids();
        let forged = issue_token("other-secret", &ws, &agent, None, Role::Agent, time::Duration::hours(1));
        assert!(Authenticator::new("secret").verify_token(&forged).is_err());
        let expired = issue_token("secret", &ws, &agent, None, Role::Agent, time::Duration::hours(-2));
        assert!(Authenticator::new("secret").verify_token(&expired).is_err());
        assert!(Authenticator::new("secret").verify_token("not.a.jwt").is_err());
    }

    #[test]
    fn visitor_and_agent_tokens_never_stand_in_for_each_other() {
        let (ws, agent) = ids();
        let auth = Authenticator::new("secret");
        let v = domain::channels::webchat::VisitorId::new();
        let (t, exp) = auth.issue_visitor_token(&ws, &v, "wk_demo_site", time::Duration::days(30));
        let got = auth.verify_visitor_token(&t).unwrap();
        assert_eq!(
            (got.workspace, got.visitor, got.key.as_str(), got.expires_at),
            (ws.clone(), v.clone(), "wk_demo_site", exp)
        );
        assert!(auth.verify_token(&t).is_err(), "a visitor token is not an agent's");
        let agent_token = issue_token("secret", &ws, &agent, None, Role::Admin, time::Duration::hours(1));
        assert!(auth.verify_visitor_token(&agent_token).is_err(), "an agent token is not a visitor's");
        let (forged, _) =
            Authenticator::new("other").issue_visitor_token(&ws, &v, "wk_demo_site", time::Duration::days(1));
        assert!(auth.verify_visitor_token(&forged).is_err());
        let (expired, _) = auth.issue_visitor_token(&ws, &v, "wk_demo_site", time::Duration::hours(-1));
        assert!(auth.verify_visitor_token(&expired).is_err());
    }
}
