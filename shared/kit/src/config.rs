//! Configuration, read once at cold start from the environment. A missing or malformed setting fails
//! the cold start with its name, never a request later.

use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing configuration {0}")]
    Missing(String),
    #[error("invalid configuration {name}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("could not read secret {name}")]
    Secret {
        name: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A view of the settings a function was started with. Built from the process environment in
/// Lambda, or from a map by the local gateway and tests, so both run the same parsing.
#[derive(Clone, Debug, Default)]
pub struct Config {
    vars: HashMap<String, String>,
}

impl Config {
    pub fn from_env() -> Self {
        Self { vars: std::env::vars().collect() }
    }

    pub fn from_map<K: Into<String>, V: Into<String>>(vars: impl IntoIterator<Item = (K, V)>) -> Self {
        Self { vars: vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    pub fn optional(&self, name: &str) -> Option<String> {
        self.vars.get(name).filter(|v| !v.trim().is_empty()).cloned()
    }

    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.optional(name).ok_or_else(|| ConfigError::Missing(name.to_owned()))
    }

    pub fn parse<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(v) => {
                v.parse().map_err(|e: T::Err| ConfigError::Invalid { name: name.to_owned(), reason: e.to_string() })
            }
        }
    }

    /// A secret: `<NAME>_SECRET_ARN` names a Secrets Manager secret (how the template deploys it), or,
    /// for local runs only, `<NAME>` holds the value itself. `aws` is the SDK configuration the
    /// function already loaded at cold start.
    pub async fn secret(&self, name: &str, aws: &aws_config::SdkConfig) -> Result<String, ConfigError> {
        let arn_var = format!("{name}_SECRET_ARN");
        if let Some(arn) = self.optional(&arn_var) {
            return fetch_secret(aws, name, &arn).await;
        }
        self.optional(name).ok_or_else(|| ConfigError::Missing(format!("{arn_var} (or {name} for local runs)")))
    }

    /// Whether a secret is configured at all (optional channels' credentials).
    pub fn has_secret(&self, name: &str) -> bool {
        self.optional(&format!("{name}_SECRET_ARN")).is_some() || self.optional(name).is_some()
    }

    /// A secret holding a JSON object (a channel's credentials), parsed into `T`.
    pub async fn json_secret<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        aws: &aws_config::SdkConfig,
    ) -> Result<T, ConfigError> {
        let raw = self.secret(name, aws).await?;
        serde_json::from_str(&raw)
            .map_err(|e| ConfigError::Invalid { name: name.to_owned(), reason: format!("not the expected JSON: {e}") })
    }
}

#[cfg(feature = "secrets")]
async fn fetch_secret(aws: &aws_config::SdkConfig, name: &str, arn: &str) -> Result<String, ConfigError> {
    let client = aws_sdk_secretsmanager::Client::new(aws);
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| ConfigError::Secret { name: name.to_owned(), source: Box::new(e) })?;
    out.secret_string
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConfigError::Invalid { name: name.to_owned(), reason: "the secret has no string value".into() })
}

#[cfg(not(feature = "secrets"))]
async fn fetch_secret(_aws: &aws_config::SdkConfig, name: &str, _arn: &str) -> Result<String, ConfigError> {
    Err(ConfigError::Invalid {
        name: name.to_owned(),
        reason: "this build reads secrets from the environment only (enable the kit's `secrets` feature)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_and_parsed_values() {
        let c = Config::from_map([("A", "1"), ("EMPTY", " ")]);
        assert_eq!(c.required("A").unwrap(), "1");
        assert!(matches!(c.required("EMPTY"), Err(ConfigError::Missing(_))));
        assert_eq!(c.parse::<u32>("A", 5).unwrap(), 1);
        assert_eq!(c.parse::<u32>("B", 5).unwrap(), 5);
        assert!(c.parse::<u32>("EMPTY", 5).is_ok());
        assert!(Config::from_map([("N", "x")]).parse::<u32>("N", 0).is_err());
    }

    #[tokio::test]
    async fn local_secrets_come_from_the_environment() {
        let aws = aws_config::SdkConfig::builder().build();
        let c = Config::from_map([("JWT_SECRET", "s3cret")]);
        assert_eq!(c.secret("JWT_SECRET", &aws).await.unwrap(), "s3cret");
        let err = Config::default().secret("JWT_SECRET", &aws).await.unwrap_err();
        assert!(err.to_string().contains("JWT_SECRET_SECRET_ARN"));
    }
}
