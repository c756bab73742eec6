//! Each workspace's provider credentials in Secrets Manager (the [`CredentialVault`] port): one
//! secret per provider account, named by `domain::credentials` under the stack's prefix, tagged
//! with the workspace that connected it. Values never reach a log.

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use domain::credentials::CredentialKey;
use domain::ports::{CredentialVault, VaultError};
use domain::WorkspaceId;

pub struct SecretsManagerVault {
    client: aws_sdk_secretsmanager::Client,
    /// `<stack>/credentials/` (`CREDENTIALS_PREFIX`).
    prefix: String,
}

impl SecretsManagerVault {
    pub fn new(client: aws_sdk_secretsmanager::Client, prefix: impl Into<String>) -> Self {
        Self { client, prefix: prefix.into() }
    }
}

fn unavailable<E: ProvideErrorMetadata + std::fmt::Debug>(what: &str, e: &E) -> VaultError {
    VaultError(format!("{what}: {}", e.code().unwrap_or("unknown error")))
}

#[async_trait]
impl CredentialVault for SecretsManagerVault {
    async fn get(&self, key: &CredentialKey) -> Result<Option<String>, VaultError> {
        match self.client.get_secret_value().secret_id(key.secret_name(&self.prefix)).send().await {
            Ok(out) => Ok(out.secret_string),
            Err(e) => match e.code() {
                Some("ResourceNotFoundException") => Ok(None),
                _ => Err(unavailable("GetSecretValue", &e)),
            },
        }
    }

    async fn put(&self, key: &CredentialKey, workspace: &WorkspaceId, value: &str) -> Result<(), VaultError> {
        let name = key.secret_name(&self.prefix);
        let created = self
            .client
            .create_secret()
            .name(&name)
            .secret_string(value)
            .description(format!(
                "Switchboard: {} credentials of {} for workspace {workspace}",
                key.provider, key.account
            ))
            .tags(
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key("switchboard:workspace")
                    .value(workspace.as_str())
                    .build(),
            )
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceExistsException") => {
                self.client
                    .put_secret_value()
                    .secret_id(&name)
                    .secret_string(value)
                    .send()
                    .await
                    .map_err(|e| unavailable("PutSecretValue", &e))?;
                Ok(())
            }
            Err(e) => Err(unavailable("CreateSecret", &e)),
        }
    }

    async fn delete(&self, key: &CredentialKey) -> Result<(), VaultError> {
        match self
            .client
            .delete_secret()
            .secret_id(key.secret_name(&self.prefix))
            .force_delete_without_recovery(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(()),
            Err(e) => Err(unavailable("DeleteSecret", &e)),
        }
    }
}
