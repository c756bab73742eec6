//! PUT /teams/{id} — creates or changes a team: its name and business hours (IANA time zone, weekly
//! spans, holidays; none: the workspace's hours apply). Body: `{"name": "Billing", "hours"?: {
//! "time_zone": "Europe/Paris", "weekly": {"monday": [{"open": "09:00", "close": "17:30"}]},
//! "holidays": ["2026-12-25"]}}`. Admins only; audited; waiting work the new hours open is assigned
//! at once. Members are the agents whose profile names the team (PUT /agents/{id}).

use domain::routing::{BusinessHours, Team};
use domain::TeamId;
use kit::auth::ADMINS;
use kit::http::{json, json_body, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::Inbox as Deps;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PutTeamRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    name: String,
    #[serde(default)]
    hours: Option<BusinessHours>,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(put(deps, &req).await))
}

#[utoipa::path(put, path = "/teams/{id}", operation_id = "putTeam", tag = "routing",
    params(("id" = String, Path, description = "The team")),
    request_body = Draft,
    responses((status = 200, body = TeamSaved), (status = 422, body = kit::http::ErrorBody)))]
async fn put(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(ADMINS)?;
    let id = path_param(req, "id", TeamId::parse)?;
    let draft: Draft = json_body(req, r#"{"name": "...", "hours"?: {"time_zone", "weekly", "holidays"}}"#)?;
    let team = Team { id: id.clone(), name: draft.name.trim().to_owned(), hours: draft.hours };
    team.validate().map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    deps.store.put_team(&who.workspace, &team).await?;
    let assigned = api::after_admin_change(deps, &who, "team_changed", serde_json::json!({ "team": team })).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, team = %id, "team saved");
    Ok(json(200, &TeamSaved { team, assigned: assigned.len() }))
}

/// The team saved, and how many waiting conversations flowed to agents after it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TeamSaved {
    pub team: Team,
    pub assigned: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{AuditLog, RoutingStore};
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use queue::memory::MemoryQueue;
    use std::sync::Arc;
    use store::MemoryStore;

    async fn put_req(deps: &Deps, team: &str, role: Role, body: &str) -> u16 {
        let auth = bearer("s", "acme", "ada", role);
        let req = kit::apigw::test_request(
            "PUT",
            "/teams/{id}",
            &format!("/teams/{team}"),
            &[("id", team)],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        handle(deps, req).await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn admins_save_valid_teams_and_it_is_audited() {
        let store = Arc::new(MemoryStore::new());
        let deps =
            Deps { store: store.clone(), auth: Authenticator::new("s"), notifications: Arc::new(MemoryQueue::new()) };
        let ws = WorkspaceId::parse("acme").unwrap();
        let hours = r#"{"name": "Billing", "hours": {"time_zone": "Europe/Paris", "weekly": {"monday": [{"open": "09:00", "close": "17:30"}]}, "holidays": ["2026-12-25"]}}"#;
        assert_eq!(put_req(&deps, "billing", Role::Admin, hours).await, 200);
        let teams = store.teams(&ws).await.unwrap();
        assert_eq!(teams[0].hours.as_ref().unwrap().time_zone, "Europe/Paris");
        assert_eq!(store.audit_trail(&ws, None, 5, None).await.unwrap().items[0].action, "team_changed");
        assert_eq!(put_req(&deps, "billing", Role::Supervisor, r#"{"name": "B"}"#).await, 403);
        assert_eq!(put_req(&deps, "billing", Role::Admin, r#"{"name": "  "}"#).await, 422);
        let bad_zone = r#"{"name": "B", "hours": {"time_zone": "Mars/Olympus", "weekly": {}}}"#;
        assert_eq!(put_req(&deps, "billing", Role::Admin, bad_zone).await, 422);
        let inverted = r#"{"name": "B", "hours": {"time_zone": "UTC", "weekly": {"monday": [{"open": "18:00", "close": "09:00"}]}}}"#;
        assert_eq!(put_req(&deps, "billing", Role::Admin, inverted).await, 422);
        assert_eq!(put_req(&deps, "Bad Id", Role::Admin, r#"{"name": "B"}"#).await, 404);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let deps = Deps {
            store: Arc::new(MemoryStore::new()),
            auth: Authenticator::new("fixture-jwt-secret"),
            notifications: Arc::new(MemoryQueue::new()),
        };
        let req = lambda_http::request::from_str(include_str!("../../../events/api-put-team/put.json")).unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.body());
    }
}
