//! Validating an OpenID Connect provider's tokens in a function, as the HTTP API's JWT authorizer
//! does before one: the WebSocket `$connect` (WebSocket APIs have no JWT authorizer) and the local
//! gateway playing that authorizer use it.
//!
//! A token is accepted when it is signed (RS256/384/512, ES256/384) by a key of the issuer's JWKS
//! (found through `<issuer>/.well-known/openid-configuration`), and its `iss`, `aud`, `exp` and
//! `nbf` check out (30 s leeway). The key set is cached; a token naming a key the cache does not
//! hold fetches it again (the provider rotated its keys), at most once a minute, so a flood of
//! tokens with made-up key ids cannot make us hammer the provider. A key the provider no longer
//! publishes (rotated out) verifies nothing.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::http::ApiError;

/// How soon an unknown key id may fetch the key set again.
const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(60);
/// How long a fetched key set is trusted before it is fetched again anyway.
const MAX_AGE: Duration = Duration::from_secs(3600);

const ALGORITHMS: [Algorithm; 5] =
    [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::ES256, Algorithm::ES384];

pub type Claims = serde_json::Map<String, serde_json::Value>;

enum Source {
    /// The issuer's discovery document names the key set's URL.
    Discovery { client: reqwest::Client, issuer: String },
    /// A fixed key set (tests).
    Fixed(JwkSet),
}

#[derive(Default)]
struct Cache {
    keys: Option<JwkSet>,
    fetched_at: Option<Instant>,
}

pub struct OidcVerifier {
    issuer: String,
    audiences: Vec<String>,
    source: Source,
    cache: RwLock<Cache>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

fn refused(why: impl std::fmt::Display) -> ApiError {
    ApiError::Unauthorized(format!("invalid token: {why}"))
}

impl OidcVerifier {
    /// For `issuer` (its discovery document and JWKS fetched over HTTPS, or HTTP on loopback), and
    /// the audiences a token must name one of (the app client ids).
    pub fn new(issuer: &str, audiences: Vec<String>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client builds");
        let issuer = issuer.trim_end_matches('/').to_owned();
        Self::with_source(issuer.clone(), audiences, Source::Discovery { client, issuer })
    }

    /// With a fixed key set: for tests.
    pub fn with_keys(issuer: &str, audiences: Vec<String>, keys: JwkSet) -> Self {
        Self::with_source(issuer.to_owned(), audiences, Source::Fixed(keys))
    }

    fn with_source(issuer: String, audiences: Vec<String>, source: Source) -> Self {
        Self { issuer, audiences, source, cache: RwLock::new(Cache::default()) }
    }

    /// From `OIDC_ISSUER` and `OIDC_AUDIENCE` (comma-separated); none without an issuer.
    pub fn from_config(config: &crate::Config) -> Result<Option<Self>, crate::ConfigError> {
        let Some(issuer) = config.optional("OIDC_ISSUER") else { return Ok(None) };
        let audiences: Vec<String> = config
            .required("OIDC_AUDIENCE")?
            .split(',')
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        if !(issuer.starts_with("https://")
            || issuer.starts_with("http://127.0.0.1")
            || issuer.starts_with("http://localhost"))
        {
            return Err(crate::ConfigError::Invalid {
                name: "OIDC_ISSUER".into(),
                reason: "an https:// URL (plain http only on loopback, for the local stack)".into(),
            });
        }
        Ok(Some(Self::new(&issuer, audiences)))
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    async fn fetch(&self) -> Result<JwkSet, ApiError> {
        let unavailable = |e: String| ApiError::Unavailable(format!("the identity provider's keys: {e}").into());
        match &self.source {
            Source::Fixed(keys) => Ok(keys.clone()),
            Source::Discovery { client, issuer } => {
                let d: Discovery = get_json(client, &format!("{issuer}/.well-known/openid-configuration"))
                    .await
                    .map_err(unavailable)?;
                if d.issuer.trim_end_matches('/') != issuer {
                    return Err(unavailable(format!("the discovery document names issuer {}", d.issuer)));
                }
                get_json(client, &d.jwks_uri).await.map_err(unavailable)
            }
        }
    }

    /// The key `kid` names: from the cache, or the key set fetched again when the cache is old or
    /// does not hold it (and was not fetched within the last minute).
    async fn key(&self, kid: &str) -> Result<Jwk, ApiError> {
        let (found, stale) = {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            let found = cache.keys.as_ref().and_then(|k| k.find(kid)).cloned();
            let age = cache.fetched_at.map(|t| t.elapsed());
            let refetch = match (&found, age) {
                (_, None) => true,
                (Some(_), Some(age)) => age > MAX_AGE,
                (None, Some(age)) => age > REFRESH_AT_MOST_EVERY,
            };
            (found, refetch)
        };
        if !stale {
            return found.ok_or_else(|| refused(format!("the identity provider publishes no key {kid:?}")));
        }
        let keys = match self.fetch().await {
            Ok(keys) => keys,
            // The provider is down: a key we hold still verifies.
            Err(e) => return found.ok_or(e),
        };
        let found = keys.find(kid).cloned();
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        *cache = Cache { keys: Some(keys), fetched_at: Some(Instant::now()) };
        found.ok_or_else(|| refused(format!("the identity provider publishes no key {kid:?}")))
    }

    /// The verified claims of `token`.
    pub async fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(refused)?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(refused(format!("{:?} tokens are not accepted", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| refused("no key id (kid)"))?;
        let jwk = self.key(&kid).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(refused)?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        Ok(jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(refused)?.claims)
    }
}

/// A JSON document over HTTP: a non-2xx status is an error like any other.
async fn get_json<T: serde::de::DeserializeOwned>(client: &reqwest::Client, url: &str) -> Result<T, String> {
    let res = client.get(url).send().await.and_then(|r| r.error_for_status()).map_err(|e| e.to_string())?;
    res.json().await.map_err(|e| e.to_string())
}

/// Claims as API Gateway's JWT authorizer hands them to a function: every value a string, lists
/// as `[a b]`.
pub fn as_authorizer_claims(claims: &Claims) -> std::collections::HashMap<String, String> {
    claims
        .iter()
        .map(|(k, v)| {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(items) => {
                    let parts: Vec<String> =
                        items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned)).collect();
                    format!("[{}]", parts.join(" "))
                }
                other => other.to_string(),
            };
            (k.clone(), s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    const KEYS: &str = include_str!("../../../events/oidc/test-keys.json");
    const ISSUER: &str = "https://id.example.test";

    fn keys() -> serde_json::Value {
        serde_json::from_str(KEYS).unwrap()
    }

    fn jwks(kids: &[&str]) -> JwkSet {
        let k = keys();
        serde_json::from_value(
            serde_json::json!({ "keys": kids.iter().map(|id| k[*id]["jwk"].clone()).collect::<Vec<_>>() }),
        )
        .unwrap()
    }

    fn sign(kid: &str, claims: serde_json::Value) -> String {
        let k = keys();
        let pem = k[kid]["pem"].as_str().unwrap().as_bytes();
        let (alg, key) = if kid.starts_with("ec") {
            (Algorithm::ES256, EncodingKey::from_ec_pem(pem).unwrap())
        } else {
            (Algorithm::RS256, EncodingKey::from_rsa_pem(pem).unwrap())
        };
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    fn claims(iss: &str, aud: &str, exp_in: i64) -> serde_json::Value {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        serde_json::json!({ "iss": iss, "aud": aud, "sub": "ann", "exp": now + exp_in, "iat": now, "nbf": now - 5,
            "custom:workspace": "acme", "cognito:groups": ["agent"] })
    }

    #[tokio::test]
    async fn tokens_from_the_issuer_for_our_audience_verify_and_every_other_is_refused() {
        let v = OidcVerifier::with_keys(ISSUER, vec!["console".into()], jwks(&["rsa-key-1", "ec-key-1"]));
        let ok = v.verify(&sign("rsa-key-1", claims(ISSUER, "console", 600))).await.unwrap();
        assert_eq!(ok["sub"], "ann");
        assert!(v.verify(&sign("ec-key-1", claims(ISSUER, "console", 600))).await.is_ok(), "ES256 too");
        let p = crate::auth::ClaimNames::default().principal(&ok).unwrap();
        assert_eq!(p.role, crate::auth::Role::Agent);

        for (why, token) in [
            ("another issuer", sign("rsa-key-1", claims("https://evil.example.test", "console", 600))),
            ("the wrong audience", sign("rsa-key-1", claims(ISSUER, "someone-else", 600))),
            ("expired", sign("rsa-key-1", claims(ISSUER, "console", -120))),
            ("a key the issuer does not publish (rotated out)", sign("rsa-key-2", claims(ISSUER, "console", 600))),
        ] {
            assert!(matches!(v.verify(&token).await, Err(ApiError::Unauthorized(_))), "{why} must be refused");
        }
        let mut early = claims(ISSUER, "console", 600);
        early["nbf"] = (time::OffsetDateTime::now_utc().unix_timestamp() + 600).into();
        assert!(v.verify(&sign("rsa-key-1", early)).await.is_err(), "not valid before nbf");
        let dev = crate::auth::issue_token(
            "secret",
            &domain::WorkspaceId::parse("acme").unwrap(),
            &domain::AgentId::parse("ann").unwrap(),
            None,
            crate::auth::Role::Admin,
            time::Duration::hours(1),
        );
        assert!(v.verify(&dev).await.is_err(), "an HS256 token is never an identity provider's");
    }

    #[test]
    fn claims_are_rendered_as_the_http_apis_authorizer_renders_them() {
        let c: Claims = serde_json::from_value(serde_json::json!({
            "sub": "ann", "cognito:groups": ["agent", "admin"], "exp": 1700000000, "email_verified": true
        }))
        .unwrap();
        let r = as_authorizer_claims(&c);
        assert_eq!(r["cognito:groups"], "[agent admin]");
        assert_eq!(r["exp"], "1700000000");
        assert_eq!(r["email_verified"], "true");
    }
}
