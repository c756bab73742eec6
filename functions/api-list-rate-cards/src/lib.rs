//! GET /finance/rate-cards — the built-in card, the workspace's own versions (oldest first), and the
//! version in force now (or at `?at=<RFC 3339 time>`). Roles: finance, supervisor, admin.

use domain::finance::ratecard::{effective_at, RateCard};
use kit::auth::FINANCE_READERS;
use kit::http::{query_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(list(deps, &req).await))
}

#[utoipa::path(get, path = "/finance/rate-cards", operation_id = "listRateCards", tag = "finance",
    params(("at" = Option<String>, Query, description = "RFC 3339 time the card in force is shown for (default: now)")),
    responses((status = 200, body = RateCards)))]
async fn list(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(FINANCE_READERS)?;
    let at = match query_param(req, "at") {
        None => OffsetDateTime::now_utc(),
        Some(t) => OffsetDateTime::parse(&t, &Rfc3339).map_err(|e| {
            ApiError::BadRequest(format!("at must be an RFC 3339 time such as 2026-11-01T00:00:00Z: {e}"))
        })?,
    };
    let mut versions = deps.store.rate_cards(&who.workspace).await?;
    versions.sort_by_key(|c| c.version);
    let in_force = effective_at(&versions, at);
    Ok(kit::http::json(
        200,
        &RateCards {
            in_force: InForce { version: in_force.version, effective_from: in_force.effective_from, at },
            builtin: RateCard::builtin(),
            versions,
        },
    ))
}

/// Every version of the workspace's rate card, the built-in list prices, and which is in force.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RateCards {
    pub in_force: InForce,
    pub builtin: RateCard,
    pub versions: Vec<RateCard>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct InForce {
    /// 0: the built-in card.
    pub version: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub effective_from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kit::auth::Authenticator;
    use std::sync::Arc;
    use store::MemoryStore;

    #[tokio::test]
    async fn the_fixture_answers() {
        let deps = Deps::new(Arc::new(MemoryStore::new()), Authenticator::new("fixture-jwt-secret"));
        let req =
            lambda_http::request::from_str(include_str!("../../../events/api-list-rate-cards/list.json")).unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 200);
        let v = kit::apigw::json_of(&res);
        assert!(v.is_object());
    }
}
