//! POST /finance/rate-cards — a new rate-card version. The body is a whole card (start from
//! `GET /finance/rate-cards`' `builtin`, drop `version`) with its `effective_from`; the next version
//! number is assigned. Versions never change in place: a correction is a new version, and every
//! cost already recorded keeps naming the version it used. Roles: finance, admin.

use domain::finance::ratecard::RateCardDraft;
use domain::ports::StoreError;
use kit::auth::FINANCE_ADMINS;
use kit::http::{body_bytes, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

const MAX_ATTEMPTS: u32 = 5;

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(create(deps, &req).await))
}

#[utoipa::path(post, path = "/finance/rate-cards", operation_id = "createRateCard", tag = "finance",
    request_body(content = domain::finance::ratecard::RateCardDraft, description = "A whole card without its version"),
    responses((status = 201, body = RateCardBody), (status = 409, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn create(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(FINANCE_ADMINS)?;
    let draft: RateCardDraft = serde_json::from_slice(body_bytes(req))
        .map_err(|e| ApiError::BadRequest(format!("body must be a rate card without its version: {e}")))?;
    for _ in 0..MAX_ATTEMPTS {
        let next = deps.store.rate_cards(&who.workspace).await?.iter().map(|c| c.version).max().unwrap_or(0) + 1;
        let card = draft.clone().into_card(next)?;
        match deps.store.create_rate_card(&who.workspace, &card).await {
            Ok(()) => {
                let details = serde_json::json!({ "version": next, "rate_card": card });
                api::record_workspace_change(&*deps.store, &who, "rate_card_created", details).await?;
                tracing::info!(workspace = %who.workspace, by = %who.agent, version = next, "rate card version created");
                return Ok(kit::http::json(201, &RateCardBody { rate_card: card }));
            }
            // Another admin took this number a moment ago: take the next one.
            Err(StoreError::Duplicate) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict("rate cards are being created concurrently; retry".into()))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RateCardBody {
    pub rate_card: domain::finance::ratecard::RateCard,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::finance::RateCard;
    use domain::ports::RateCardStore;
    use domain::{AgentId, WorkspaceId};
    use kit::auth::Authenticator;
    use kit::auth::Role;
    use std::sync::Arc;
    use store::MemoryStore;

    fn post(ws: &WorkspaceId, role: Role, body: &str) -> Request {
        let t = kit::auth::issue_token("s", ws, &AgentId::parse("f").unwrap(), None, role, time::Duration::hours(1));
        let auth = format!("Bearer {t}");
        kit::apigw::test_request(
            "POST",
            "/finance/rate-cards",
            "/finance/rate-cards",
            &[],
            &[("authorization", auth.as_str()), ("content-type", "application/json")],
            Some(body.as_bytes()),
        )
    }

    #[tokio::test]
    async fn versions_are_numbered_validated_and_finance_only() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps::new(store.clone(), Authenticator::new("s"));
        let ws = WorkspaceId::parse("acme").unwrap();
        let mut v = serde_json::to_value(RateCard::builtin()).unwrap();
        v.as_object_mut().unwrap().remove("version");
        v["effective_from"] = "2026-12-01T00:00:00Z".into();
        let body = v.to_string();
        assert_eq!(handle(&deps, post(&ws, Role::Finance, &body)).await.unwrap().status(), 201);
        assert_eq!(handle(&deps, post(&ws, Role::Admin, &body)).await.unwrap().status(), 201);
        let versions: Vec<u32> = store.rate_cards(&ws).await.unwrap().iter().map(|c| c.version).collect();
        assert_eq!(versions, vec![1, 2]);
        let audit = domain::ports::AuditLog::audit_trail(&*store, &ws, None, 5, None).await.unwrap().items;
        assert_eq!(audit.iter().filter(|e| e.action == "rate_card_created").count(), 2, "every version audited");
        assert_eq!(handle(&deps, post(&ws, Role::Agent, &body)).await.unwrap().status(), 403);
        assert_eq!(handle(&deps, post(&ws, Role::Supervisor, &body)).await.unwrap().status(), 403);
        let mut bad = v.clone();
        bad["sms"][0]["per_segment"] = "0.0083.1".into();
        assert_eq!(handle(&deps, post(&ws, Role::Finance, &bad.to_string())).await.unwrap().status(), 400);
        let mut dup = v.clone();
        let first = dup["sms"][0].clone();
        dup["sms"].as_array_mut().unwrap().push(first);
        assert_eq!(handle(&deps, post(&ws, Role::Finance, &dup.to_string())).await.unwrap().status(), 422);
    }

    #[tokio::test]
    async fn the_fixture_creates_version_one() {
        let deps = Deps::new(Arc::new(MemoryStore::new()), Authenticator::new("fixture-jwt-secret"));
        let req =
            lambda_http::request::from_str(include_str!("../../../events/api-create-rate-card/create.json")).unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 201);
        let v = kit::apigw::json_of(&res);
        assert_eq!(v["rate_card"]["version"], 1);
    }
}
