//! DELETE /canned-responses/{id} — delete a canned response. Whoever may create a response in its
//! scope may delete it (workspace: supervisors and admins; team: its members and supervisors;
//! personal: the owner). 204; deleting one already gone is a 404. Audited with the response as it
//! was, so it can be recreated.

use domain::canned::parse_id;
use kit::auth::INBOX;
use kit::http::{path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(delete(deps, &req).await))
}

#[utoipa::path(delete, path = "/canned-responses/{id}", operation_id = "deleteCanned", tag = "canned responses",
    params(("id" = String, Path, description = "The canned response")),
    responses((status = 204, description = "Deleted"), (status = 404, body = kit::http::ErrorBody)))]
async fn delete(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let id = path_param(req, "id", parse_id)?;
    let current = api::managed_canned_response(&*deps.store, &who, &id).await?;
    // Audited first: a failure between the two leaves a trail entry for a response still there,
    // never a deletion nobody can trace.
    let details = serde_json::json!({ "id": id, "before": current });
    api::record_workspace_change(&*deps.store, &who, "canned_response_deleted", details).await?;
    deps.store.delete_canned_response(&who.workspace, &id).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, id = %id, "canned response deleted");
    Ok(Response::builder().status(204).body(Body::Empty).expect("a static response"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::canned::{CannedResponse, Scope, Shortcut};
    use domain::ports::{AgentStore, AuditLog, CannedStore};
    use domain::routing::Presence;
    use domain::{Role, TeamId, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    const TEAM_REPLY: &str = "01JD3XQ7Z9K2M4N6P8R0S2T4V7";

    async fn world(ws: &str) -> (Deps, Arc<MemoryStore>, WorkspaceId) {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse(ws).unwrap();
        let r = CannedResponse {
            id: TEAM_REPLY.into(),
            scope: Scope::Team { team: TeamId::parse("billing").unwrap() },
            shortcut: Shortcut::parse("/invoice").unwrap(),
            title: "Invoice".into(),
            body: "Your invoice is attached.".into(),
        };
        store.put_canned_response(&ws, &r).await.unwrap();
        let mut alice = store::contract::seed_agent(store.as_ref(), &ws, "alice", 500, Presence::Online).await;
        alice.teams.insert(TeamId::parse("billing").unwrap());
        store.put_agent(&ws, &alice).await.unwrap();
        (Deps::new(store.clone(), Authenticator::new("s")), store, ws)
    }

    async fn delete(deps: &Deps, who: (&str, Role), id: &str) -> u16 {
        let auth = bearer("s", "acme", who.0, who.1);
        let req = kit::apigw::test_request(
            "DELETE",
            "/canned-responses/{id}",
            &format!("/canned-responses/{id}"),
            &[("id", id)],
            &[("authorization", &auth)],
            None,
        );
        handle(deps, req).await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn team_members_delete_their_teams_responses_once_and_it_is_audited() {
        let (deps, store, ws) = world("acme").await;
        assert_eq!(delete(&deps, ("bob", Role::Agent), TEAM_REPLY).await, 403, "not in billing");
        assert_eq!(delete(&deps, ("fiona", Role::Finance), TEAM_REPLY).await, 403);
        assert_eq!(delete(&deps, ("alice", Role::Agent), "nope").await, 404, "no such id");
        assert_eq!(delete(&deps, ("alice", Role::Agent), TEAM_REPLY).await, 204);
        assert!(store.canned_response(&ws, TEAM_REPLY).await.unwrap().is_none());
        assert_eq!(delete(&deps, ("alice", Role::Agent), TEAM_REPLY).await, 404);
        let trail = store.audit_trail(&ws, None, 10, None).await.unwrap().items;
        let deleted: Vec<_> = trail.iter().filter(|e| e.action == "canned_response_deleted").collect();
        assert_eq!(deleted.len(), 1);
        assert_eq!(deleted[0].details["before"]["shortcut"], "/invoice");
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        // The fixture's caller is alice, of billing; the response is billing's.
        let (deps, _, _) = world("demo").await;
        let deps = Deps::new(deps.store, Authenticator::new("fixture-jwt-secret"));
        let req =
            lambda_http::request::from_str(include_str!("../../../events/api-delete-canned/delete.json")).unwrap();
        assert_eq!(handle(&deps, req).await.unwrap().status(), 204);
    }
}
