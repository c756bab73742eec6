//! The agent directory in Cognito's user pool (the stack's `UserPool`): an invitation is
//! `AdminCreateUser` (Cognito emails a temporary password) with the workspace in
//! `custom:workspace` and the role as a group; the agent id is the user's `sub` (the claim agents
//! sign in with). Every lookup checks the user's workspace: an admin of one workspace never finds,
//! disables or promotes a person of another, though they share the pool.

use async_trait::async_trait;
use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::types::{AttributeType, DeliveryMediumType, UserType};
use aws_sdk_cognitoidentityprovider::Client;
use domain::model::Role;
use domain::ports::{AgentDirectory, DirectoryError, Invite, Invited};
use domain::{AgentId, WorkspaceId};

pub const WORKSPACE_ATTRIBUTE: &str = "custom:workspace";
const ROLES: [Role; 4] = [Role::Agent, Role::Supervisor, Role::Admin, Role::Finance];

pub struct CognitoDirectory {
    client: Client,
    pool: String,
}

impl CognitoDirectory {
    pub fn new(client: Client, pool: impl Into<String>) -> Self {
        Self { client, pool: pool.into() }
    }

    /// The user `sub` names, if they belong to `ws`: their username.
    async fn username(&self, ws: &WorkspaceId, agent: &AgentId) -> Result<Option<String>, DirectoryError> {
        let filter = format!("sub = \"{}\"", agent.as_str().replace('"', ""));
        let out =
            self.client.list_users().user_pool_id(&self.pool).filter(filter).limit(1).send().await.map_err(classify)?;
        Ok(out
            .users()
            .iter()
            .find(|u| attribute(u.attributes(), WORKSPACE_ATTRIBUTE) == Some(ws.as_str()))
            .and_then(UserType::username)
            .map(str::to_owned))
    }
}

fn attribute<'a>(attrs: &'a [AttributeType], name: &str) -> Option<&'a str> {
    attrs.iter().find(|a| a.name() == name).and_then(AttributeType::value)
}

fn attr(name: &str, value: &str) -> Result<AttributeType, DirectoryError> {
    AttributeType::builder().name(name).value(value).build().map_err(|e| DirectoryError::Rejected(e.to_string()))
}

fn classify<
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
>(
    e: SdkError<E, R>,
) -> DirectoryError {
    match &e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or_default();
            if matches!(code, "TooManyRequestsException" | "InternalErrorException" | "LimitExceededException") {
                DirectoryError::Unavailable(Box::new(e))
            } else {
                DirectoryError::Rejected(format!("{code}: {}", s.err().message().unwrap_or_default()))
            }
        }
        _ => DirectoryError::Unavailable(Box::new(e)),
    }
}

fn agent_id(attrs: &[AttributeType]) -> Result<AgentId, DirectoryError> {
    let sub = attribute(attrs, "sub").ok_or_else(|| DirectoryError::Rejected("the user has no sub".into()))?;
    AgentId::parse(sub).map_err(|e| DirectoryError::Rejected(e.to_string()))
}

#[async_trait]
impl AgentDirectory for CognitoDirectory {
    async fn invite(&self, ws: &WorkspaceId, invite: &Invite) -> Result<Invited, DirectoryError> {
        let email = invite.email.as_str();
        let mut attributes =
            vec![attr("email", email)?, attr("email_verified", "true")?, attr(WORKSPACE_ATTRIBUTE, ws.as_str())?];
        if let Some(name) = &invite.name {
            attributes.push(attr("name", name)?);
        }
        let created = self
            .client
            .admin_create_user()
            .user_pool_id(&self.pool)
            .username(email)
            .set_user_attributes(Some(attributes))
            .desired_delivery_mediums(DeliveryMediumType::Email)
            .send()
            .await;
        let (agent, created) = match created {
            Ok(out) => (agent_id(out.user().map(UserType::attributes).unwrap_or_default())?, true),
            Err(SdkError::ServiceError(s)) if s.err().is_username_exists_exception() => {
                let out = self
                    .client
                    .admin_get_user()
                    .user_pool_id(&self.pool)
                    .username(email)
                    .send()
                    .await
                    .map_err(classify)?;
                if attribute(out.user_attributes(), WORKSPACE_ATTRIBUTE) != Some(ws.as_str()) {
                    return Err(DirectoryError::Taken);
                }
                (agent_id(out.user_attributes())?, false)
            }
            Err(e) => return Err(classify(e)),
        };
        if created {
            self.client
                .admin_add_user_to_group()
                .user_pool_id(&self.pool)
                .username(email)
                .group_name(invite.role.as_str())
                .send()
                .await
                .map_err(classify)?;
        }
        Ok(Invited { agent, created })
    }

    async fn set_enabled(&self, ws: &WorkspaceId, agent: &AgentId, enabled: bool) -> Result<bool, DirectoryError> {
        let Some(username) = self.username(ws, agent).await? else { return Ok(false) };
        if enabled {
            self.client
                .admin_enable_user()
                .user_pool_id(&self.pool)
                .username(&username)
                .send()
                .await
                .map_err(classify)?;
        } else {
            self.client
                .admin_disable_user()
                .user_pool_id(&self.pool)
                .username(&username)
                .send()
                .await
                .map_err(classify)?;
            // Refresh tokens die now; an ID token already issued lives out its hour.
            self.client
                .admin_user_global_sign_out()
                .user_pool_id(&self.pool)
                .username(&username)
                .send()
                .await
                .map_err(classify)?;
        }
        Ok(true)
    }

    async fn set_role(&self, ws: &WorkspaceId, agent: &AgentId, role: Role) -> Result<bool, DirectoryError> {
        let Some(username) = self.username(ws, agent).await? else { return Ok(false) };
        let groups = self
            .client
            .admin_list_groups_for_user()
            .user_pool_id(&self.pool)
            .username(&username)
            .send()
            .await
            .map_err(classify)?;
        for g in groups.groups().iter().filter_map(|g| g.group_name()) {
            if g != role.as_str() && ROLES.iter().any(|r| r.as_str() == g) {
                self.client
                    .admin_remove_user_from_group()
                    .user_pool_id(&self.pool)
                    .username(&username)
                    .group_name(g)
                    .send()
                    .await
                    .map_err(classify)?;
            }
        }
        self.client
            .admin_add_user_to_group()
            .user_pool_id(&self.pool)
            .username(&username)
            .group_name(role.as_str())
            .send()
            .await
            .map_err(classify)?;
        Ok(true)
    }
}
