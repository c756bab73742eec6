//! The agent directory of the local OpenID provider (infra/oidc/server.mjs, the local stack
//! only): its `/_local/users` list plays Cognito's user pool. An invited person signs in with
//! the login this makes of their email address (`ann@acme.example` → `ann.acme.example`), which
//! is also their agent id (`sub`).

use async_trait::async_trait;
use domain::model::Role;
use domain::ports::{AgentDirectory, DirectoryError, Invite, Invited};
use domain::{AgentId, WorkspaceId};
use serde::{Deserialize, Serialize};

pub struct LocalDirectory {
    http: reqwest::Client,
    issuer: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct User {
    login: String,
    workspace: String,
    roles: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    disabled: bool,
}

impl LocalDirectory {
    pub fn new(http: reqwest::Client, issuer: impl Into<String>) -> Self {
        Self { http, issuer: issuer.into().trim_end_matches('/').to_owned() }
    }

    /// The login (and agent id) an email address signs in as.
    pub fn login_for(email: &str) -> String {
        email
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '.' })
            .take(64)
            .collect()
    }

    async fn get(&self, login: &str) -> Result<Option<User>, DirectoryError> {
        let res = self
            .http
            .get(format!("{}/_local/users/{login}", self.issuer))
            .send()
            .await
            .map_err(|e| DirectoryError::Unavailable(Box::new(e)))?;
        if res.status() == 404 {
            return Ok(None);
        }
        let res = res.error_for_status().map_err(|e| DirectoryError::Unavailable(Box::new(e)))?;
        Ok(Some(res.json().await.map_err(|e| DirectoryError::Rejected(e.to_string()))?))
    }

    async fn put(&self, user: &User) -> Result<(), DirectoryError> {
        self.http
            .post(format!("{}/_local/users", self.issuer))
            .json(user)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| DirectoryError::Unavailable(Box::new(e)))?;
        Ok(())
    }

    async fn of(&self, ws: &WorkspaceId, agent: &AgentId) -> Result<Option<User>, DirectoryError> {
        Ok(self.get(agent.as_str()).await?.filter(|u| u.workspace == ws.as_str()))
    }
}

#[async_trait]
impl AgentDirectory for LocalDirectory {
    async fn invite(&self, ws: &WorkspaceId, invite: &Invite) -> Result<Invited, DirectoryError> {
        let login = Self::login_for(invite.email.as_str());
        let agent = AgentId::parse(&login).map_err(|e| DirectoryError::Rejected(e.to_string()))?;
        if let Some(existing) = self.get(&login).await? {
            return if existing.workspace == ws.as_str() {
                Ok(Invited { agent, created: false })
            } else {
                Err(DirectoryError::Taken)
            };
        }
        let user = User {
            login,
            workspace: ws.to_string(),
            roles: vec![invite.role.as_str().to_owned()],
            name: invite.name.clone(),
            email: Some(invite.email.as_str().to_owned()),
            disabled: false,
        };
        self.put(&user).await?;
        Ok(Invited { agent, created: true })
    }

    async fn set_enabled(&self, ws: &WorkspaceId, agent: &AgentId, enabled: bool) -> Result<bool, DirectoryError> {
        let Some(mut user) = self.of(ws, agent).await? else { return Ok(false) };
        user.disabled = !enabled;
        self.put(&user).await?;
        Ok(true)
    }

    async fn set_role(&self, ws: &WorkspaceId, agent: &AgentId, role: Role) -> Result<bool, DirectoryError> {
        let Some(mut user) = self.of(ws, agent).await? else { return Ok(false) };
        user.roles = vec![role.as_str().to_owned()];
        self.put(&user).await?;
        Ok(true)
    }
}
