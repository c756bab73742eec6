//! Agent authentication. Every API handler takes its workspace from here and nowhere else, so no
//! request can reach another tenant's data.
//!
//! In AWS, agents sign in with the team's OpenID Connect provider (a Cognito user pool or any
//! issuer) and the HTTP API's JWT authorizer validates their token (signature against the issuer's
//! JWKS, `iss`, `aud`, `exp`, `nbf`) before the function runs; the function reads the verified
//! claims from the request context and maps them ([`ClaimNames`]: workspace, role, agent, name).
//! The WebSocket `$connect` has no JWT authorizer: it validates the same way in the function
//! (`kit::oidc`). HS256 "dev tokens" signed with `JWT_SECRET` are a local convenience only: the
//! template gives no function that secret.
//!
//! Web chat visitors' tokens are signed with their own key (`VISITOR_TOKEN_SECRET`, read only by
//! the web chat functions) and the survey's rating links with another (`LINK_SIGNING_SECRET`).

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
    /// When the token expires (its `exp`), where known.
    pub expires_at: Option<time::OffsetDateTime>,
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

/// HS256 keys and their validation.
#[derive(Clone)]
struct Hs256 {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
}

impl Hs256 {
    fn new(secret: &[u8], issuer: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.leeway = 30;
        Self { decoding: DecodingKey::from_secret(secret), encoding: EncodingKey::from_secret(secret), validation }
    }
}

/// Which claims of the identity provider's token name the workspace, the role, the agent and
/// their display name (`OIDC_WORKSPACE_CLAIM`, `OIDC_ROLE_CLAIM`, `OIDC_AGENT_CLAIM`,
/// `OIDC_NAME_CLAIM`; Cognito's by default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimNames {
    pub workspace: String,
    pub role: String,
    pub agent: String,
    pub name: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            workspace: "custom:workspace".into(),
            role: "cognito:groups".into(),
            agent: "sub".into(),
            name: "name".into(),
        }
    }
}

/// The roles a claim value names: a string (`admin`), space- or comma-separated, API Gateway's
/// rendering of a list (`[agent admin]`), or a JSON array.
fn role_values(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::Array(items) => items.iter().filter_map(|i| i.as_str()).map(str::to_lowercase).collect(),
        serde_json::Value::String(s) => s
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split([' ', ','])
            .filter(|p| !p.is_empty())
            .map(str::to_lowercase)
            .collect(),
        _ => vec![],
    }
}

impl ClaimNames {
    pub fn from_config(config: &crate::Config) -> Self {
        let d = ClaimNames::default();
        ClaimNames {
            workspace: config.optional("OIDC_WORKSPACE_CLAIM").unwrap_or(d.workspace),
            role: config.optional("OIDC_ROLE_CLAIM").unwrap_or(d.role),
            agent: config.optional("OIDC_AGENT_CLAIM").unwrap_or(d.agent),
            name: config.optional("OIDC_NAME_CLAIM").unwrap_or(d.name),
        }
    }

    /// The caller a verified token's claims name. The role is the most privileged Switchboard role
    /// among the claim's values (admin, supervisor, agent, finance); none is a 403.
    pub fn principal(&self, claims: &serde_json::Map<String, serde_json::Value>) -> Result<Principal, ApiError> {
        let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::trim).filter(|s| !s.is_empty());
        let bad = |e: String| ApiError::Unauthorized(format!("invalid token: {e}"));
        let ws = text(&self.workspace).ok_or_else(|| bad(format!("no {:?} claim (the workspace)", self.workspace)))?;
        let agent = text(&self.agent).ok_or_else(|| bad(format!("no {:?} claim (the agent)", self.agent)))?;
        let workspace = WorkspaceId::parse(ws).map_err(|e| bad(e.to_string()))?;
        let agent = AgentId::parse(agent).map_err(|e| bad(e.to_string()))?;
        if agent.as_str() == domain::consent::SYSTEM_AGENT {
            return Err(bad("the agent id \"system\" is reserved".into()));
        }
        let values = claims.get(&self.role).map(role_values).unwrap_or_default();
        let role = [Role::Admin, Role::Supervisor, Role::Agent, Role::Finance]
            .into_iter()
            .find(|r| values.iter().any(|v| v == r.as_str()))
            .ok_or_else(|| {
                ApiError::Forbidden(format!(
                    "the token's {:?} claim names no Switchboard role (admin, supervisor, agent, finance)",
                    self.role
                ))
            })?;
        let name = text(&self.name).or_else(|| text("email")).map(str::to_owned);
        let expires_at = claims
            .get("exp")
            .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok());
        Ok(Principal { workspace, agent, name, role, expires_at })
    }
}

#[derive(Clone)]
pub struct Authenticator {
    /// Local dev tokens (HS256, `JWT_SECRET`): absent in AWS.
    dev: Option<Hs256>,
    /// Web chat visitors' tokens (`VISITOR_TOKEN_SECRET`).
    visitor: Option<Hs256>,
    /// Signs the satisfaction survey's email rating links (`LINK_SIGNING_SECRET`).
    link_key: Option<Vec<u8>>,
    claims: ClaimNames,
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

/// A key derived from a secret for one purpose, so one secret never signs two kinds of thing.
fn derived(secret: &[u8], purpose: &str) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

impl Authenticator {
    /// Everything from one secret: for tests and local tools. Dev tokens are signed with it,
    /// visitor tokens and rating links with keys derived from it.
    pub fn new(secret: &str) -> Self {
        Self {
            dev: Some(Hs256::new(secret.as_bytes(), ISSUER)),
            visitor: Some(Hs256::new(&derived(secret.as_bytes(), "switchboard visitor tokens"), VISITOR_ISSUER)),
            link_key: Some(domain::csat::link_key(secret.as_bytes())),
            claims: ClaimNames::default(),
        }
    }

    /// Only verified identity-provider claims (from the authorizer) are accepted: how every
    /// function runs in AWS.
    pub fn claims_only(claims: ClaimNames) -> Self {
        Self { dev: None, visitor: None, link_key: None, claims }
    }

    pub fn with_claim_names(mut self, claims: ClaimNames) -> Self {
        self.claims = claims;
        self
    }

    pub fn claim_names(&self) -> &ClaimNames {
        &self.claims
    }

    /// From the configuration: whichever of `JWT_SECRET` (local only), `VISITOR_TOKEN_SECRET` and
    /// `LINK_SIGNING_SECRET` the function is given (Secrets Manager in AWS, the environment
    /// locally), and the claim names.
    pub async fn from_config(config: &crate::Config, aws: &aws_config::SdkConfig) -> Result<Self, crate::ConfigError> {
        let mut auth = Self::claims_only(ClaimNames::from_config(config));
        if config.has_secret("JWT_SECRET") {
            auth.dev = Some(Hs256::new(config.secret("JWT_SECRET", aws).await?.as_bytes(), ISSUER));
        }
        if config.has_secret("VISITOR_TOKEN_SECRET") {
            let secret = config.secret("VISITOR_TOKEN_SECRET", aws).await?;
            auth.visitor = Some(Hs256::new(secret.as_bytes(), VISITOR_ISSUER));
        }
        if config.has_secret("LINK_SIGNING_SECRET") {
            auth.link_key = Some(domain::csat::link_key(config.secret("LINK_SIGNING_SECRET", aws).await?.as_bytes()));
        }
        Ok(auth)
    }

    /// The key of the satisfaction survey's rating links; an error where none is configured.
    pub fn link_key(&self) -> Result<&[u8], ApiError> {
        self.link_key.as_deref().ok_or_else(|| ApiError::Unavailable("rating links are not configured here".into()))
    }

    fn visitor_keys(&self) -> Result<&Hs256, ApiError> {
        self.visitor.as_ref().ok_or_else(|| ApiError::Unauthorized("visitor tokens are not accepted here".into()))
    }

    /// A token for a web chat visitor of the widget `key`, valid for `ttl`.
    pub fn issue_visitor_token(
        &self,
        workspace: &WorkspaceId,
        visitor: &domain::channels::webchat::VisitorId,
        key: &str,
        ttl: time::Duration,
    ) -> Result<(String, time::OffsetDateTime), ApiError> {
        let keys = self.visitor_keys()?;
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
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding)
            .expect("HS256 signing with an in-memory key cannot fail");
        Ok((token, now + ttl))
    }

    pub fn verify_visitor_token(&self, token: &str) -> Result<Visitor, ApiError> {
        let keys = self.visitor_keys()?;
        let bad = |e: String| ApiError::Unauthorized(format!("invalid visitor token: {e}"));
        let c = jsonwebtoken::decode::<VisitorClaims>(token, &keys.decoding, &keys.validation)
            .map_err(|e| bad(e.to_string()))?
            .claims;
        Ok(Visitor {
            workspace: WorkspaceId::parse(&c.ws).map_err(|e| bad(e.to_string()))?,
            visitor: domain::channels::webchat::VisitorId::parse(&c.sub).map_err(|e| bad(e.to_string()))?,
            key: c.key,
            expires_at: time::OffsetDateTime::from_unix_timestamp(c.exp).map_err(|e| bad(e.to_string()))?,
        })
    }

    /// Verifies a local dev token (HS256); refused where dev tokens are not configured (AWS).
    pub fn verify_token(&self, token: &str) -> Result<Principal, ApiError> {
        let keys = self.dev.as_ref().ok_or_else(|| {
            ApiError::Unauthorized(
                "invalid token: sign in with the identity provider (dev tokens are local only)".into(),
            )
        })?;
        let data = jsonwebtoken::decode::<Claims>(token, &keys.decoding, &keys.validation)
            .map_err(|e| ApiError::Unauthorized(format!("invalid token: {e}")))?;
        let c = data.claims;
        let workspace = WorkspaceId::parse(&c.ws).map_err(|e| ApiError::Unauthorized(format!("invalid token: {e}")))?;
        let agent = AgentId::parse(&c.sub).map_err(|e| ApiError::Unauthorized(format!("invalid token: {e}")))?;
        if agent.as_str() == domain::consent::SYSTEM_AGENT {
            return Err(ApiError::Unauthorized("invalid token: the agent id \"system\" is reserved".into()));
        }
        let expires_at = time::OffsetDateTime::from_unix_timestamp(c.exp).ok();
        Ok(Principal { workspace, agent, name: c.name, role: c.role, expires_at })
    }

    /// Whether a token is a dev token (HS256) by its header, without verifying it.
    pub fn is_dev_token(token: &str) -> bool {
        jsonwebtoken::decode_header(token).is_ok_and(|h| h.alg == Algorithm::HS256)
    }

    /// Authenticates a request: the claims the HTTP API's JWT authorizer verified, or (locally) a
    /// dev token in `Authorization: Bearer <jwt>`.
    pub fn authenticate(&self, req: &Request) -> Result<Principal, ApiError> {
        if let Some(claims) = authorizer_claims(req) {
            return self.claims.principal(&claims);
        }
        let header = crate::http::header(req, "authorization")
            .ok_or_else(|| ApiError::Unauthorized("missing Authorization header".into()))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::Unauthorized("expected Authorization: Bearer <token>".into()))?;
        self.verify_token(token.trim())
    }
}

/// The claims API Gateway's JWT authorizer verified (`requestContext.authorizer.jwt.claims`; every
/// value a string, as the HTTP API renders them).
fn authorizer_claims(req: &Request) -> Option<serde_json::Map<String, serde_json::Value>> {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    let RequestContext::ApiGatewayV2(ctx) = req.request_context_ref()? else { return None };
    let jwt = ctx.authorizer.as_ref()?.jwt.as_ref()?;
    if jwt.claims.is_empty() {
        return None;
    }
    Some(jwt.claims.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone()))).collect())
}

/// Mints a dev token: for the local stack and for tests. In AWS tokens come from the team's
/// identity provider.
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
        let (t, exp) = auth.issue_visitor_token(&ws, &v, "wk_demo_site", time::Duration::days(30)).unwrap();
        let got = auth.verify_visitor_token(&t).unwrap();
        assert_eq!(
            (got.workspace, got.visitor, got.key.as_str(), got.expires_at),
            (ws.clone(), v.clone(), "wk_demo_site", exp)
        );
        assert!(auth.verify_token(&t).is_err(), "a visitor token is not an agent's");
        let agent_token = issue_token("secret", &ws, &agent, None, Role::Admin, time::Duration::hours(1));
        assert!(auth.verify_visitor_token(&agent_token).is_err(), "an agent token is not a visitor's");
        let (forged, _) =
            Authenticator::new("other").issue_visitor_token(&ws, &v, "wk_demo_site", time::Duration::days(1)).unwrap();
        assert!(auth.verify_visitor_token(&forged).is_err());
        let (expired, _) = auth.issue_visitor_token(&ws, &v, "wk_demo_site", time::Duration::hours(-1)).unwrap();
        assert!(auth.verify_visitor_token(&expired).is_err());
        // A function with no visitor key (every agent route in AWS) refuses every visitor token.
        assert!(Authenticator::claims_only(ClaimNames::default()).verify_visitor_token(&t).is_err());
    }

    #[test]
    fn a_function_without_dev_tokens_accepts_only_verified_claims() {
        let (ws, agent) = ids();
        let t = issue_token("secret", &ws, &agent, None, Role::Admin, time::Duration::hours(1));
        let aws = Authenticator::claims_only(ClaimNames::default());
        assert!(aws.verify_token(&t).is_err(), "a dev token is refused where no dev secret is configured");
        assert!(aws.link_key().is_err());
    }

    #[test]
    fn a_request_through_the_jwt_authorizer_is_authenticated_by_its_verified_claims() {
        let verified: std::collections::HashMap<String, String> = [
            ("sub", "ann"),
            ("custom:workspace", "acme"),
            ("cognito:groups", "[agent]"),
            ("iss", "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let event = crate::apigw::HttpEvent {
            method: "GET",
            route_path: "/conversations",
            raw_path: "/conversations",
            headers: vec![("authorization".into(), "Bearer eyJ.from.the-idp".into())],
            domain_name: "api.test",
            authorizer_claims: Some(verified),
            ..Default::default()
        };
        let aws = Authenticator::claims_only(ClaimNames::default());
        let p = aws.authenticate(&event.to_request()).unwrap();
        assert_eq!((p.workspace.as_str(), p.agent.as_str(), p.role), ("acme", "ann", Role::Agent));
        // Without the authorizer's claims, the same function (no dev secret) refuses the bearer.
        let bare = crate::apigw::test_request(
            "GET",
            "/conversations",
            "/conversations",
            &[],
            &[("authorization", "Bearer x.y.z")],
            None,
        );
        assert!(matches!(aws.authenticate(&bare), Err(ApiError::Unauthorized(_))));
    }

    fn claims(pairs: &[(&str, serde_json::Value)]) -> serde_json::Map<String, serde_json::Value> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn identity_provider_claims_map_to_workspace_agent_and_the_most_privileged_role() {
        let names = ClaimNames::default();
        let cognito = claims(&[
            ("sub", "7d8e-11aa".into()),
            ("custom:workspace", "acme".into()),
            // API Gateway renders a list claim as "[a b]".
            ("cognito:groups", "[agent supervisor]".into()),
            ("email", "sue@acme.test".into()),
        ]);
        let p = names.principal(&cognito).unwrap();
        assert_eq!((p.workspace.as_str(), p.agent.as_str(), p.role), ("acme", "7d8e-11aa", Role::Supervisor));
        assert_eq!(p.name.as_deref(), Some("sue@acme.test"), "the email when there is no name");
        let mut arr = cognito.clone();
        arr.insert("cognito:groups".into(), serde_json::json!(["Finance"]));
        assert_eq!(names.principal(&arr).unwrap().role, Role::Finance);
        let custom = ClaimNames {
            workspace: "workspace".into(),
            role: "roles".into(),
            agent: "preferred_username".into(),
            name: "name".into(),
        };
        let okta = claims(&[
            ("preferred_username", "ann".into()),
            ("workspace", "acme".into()),
            ("roles", "agent".into()),
            ("name", "Ann".into()),
        ]);
        assert_eq!(custom.principal(&okta).unwrap().agent.as_str(), "ann");
        let mut none = cognito.clone();
        none.insert("cognito:groups".into(), "[everyone]".into());
        assert!(matches!(names.principal(&none), Err(ApiError::Forbidden(_))));
        let mut no_ws = cognito.clone();
        no_ws.remove("custom:workspace");
        assert!(matches!(names.principal(&no_ws), Err(ApiError::Unauthorized(_))));
        let mut system = cognito;
        system.insert("sub".into(), "system".into());
        assert!(names.principal(&system).is_err());
    }
}
