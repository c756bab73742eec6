//! The audit trail: who did what to which conversation (or to the workspace's rules), when. Entries
//! are immutable; a conversation's entries are written in the same transaction as the change.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{AgentId, ConversationId, WorkspaceId};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// A ULID: entries sort by time.
    pub id: String,
    pub workspace: WorkspaceId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationId>,
    /// The agent who acted, or `system` for routing.
    pub actor: AgentId,
    /// `assigned`, `queued`, `transferred`, `unassigned`, `resolved`, `reopened`, `snoozed`,
    /// `priority_changed`, `tags_changed`, `note_added`, `rules_changed`, `agent_changed`, …
    pub action: String,
    #[serde(default)]
    pub details: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl AuditEntry {
    pub fn new(
        workspace: WorkspaceId,
        conversation: Option<ConversationId>,
        actor: AgentId,
        action: &str,
        details: serde_json::Value,
        at: OffsetDateTime,
    ) -> Self {
        let id = crate::ids::ordered_ulid(at).to_string();
        AuditEntry { id, workspace, conversation, actor, action: action.to_owned(), details, at }
    }

    /// The reserved `system` agent, for what routing does on its own.
    pub fn system() -> AgentId {
        AgentId::parse(crate::consent::SYSTEM_AGENT).expect("the system agent id is a valid slug")
    }
}
