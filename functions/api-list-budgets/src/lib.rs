//! GET /finance/budgets — the workspace's monthly budgets, each with the month's estimated spend,
//! the share of the limit it is, the thresholds already alerted, and whether paid sends are stopped.
//! `?month=YYYY-MM` (default: this month). Roles: finance, supervisor, admin.

use domain::finance::ledger::Month;
use domain::finance::report::Amount;
use kit::auth::FINANCE_READERS;
use kit::http::{query_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(list(deps, &req).await))
}

#[utoipa::path(get, path = "/finance/budgets", operation_id = "listBudgets", tag = "finance",
    params(("month" = Option<String>, Query, description = "YYYY-MM (default: this month)")),
    responses((status = 200, body = Budgets)))]
async fn list(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(FINANCE_READERS)?;
    let month = match query_param(req, "month") {
        None => Month::of(time::OffsetDateTime::now_utc()),
        Some(m) => Month::parse(&m)?,
    };
    let ws = &who.workspace;
    let mut budgets = deps.store.budgets(ws).await?;
    budgets.sort_by_key(|b| b.scope);
    let alerted = deps.store.alerted(ws, month).await?;
    let mut out = Vec::with_capacity(budgets.len());
    for b in budgets {
        let spent = deps.store.spend(ws, month, b.scope).await?.estimated_micros();
        let mut thresholds_alerted: Vec<u8> = alerted.iter().filter(|(s, _)| *s == b.scope).map(|(_, t)| *t).collect();
        thresholds_alerted.sort_unstable();
        out.push(BudgetStatus {
            paid_sends_stopped: b.refuses(spent),
            scope: b.scope,
            currency: b.currency,
            monthly_limit: Amount::of(b.monthly_limit_micros),
            thresholds: b.thresholds,
            hard_stop: b.hard_stop,
            spent: Amount::of(spent),
            percent_used: (i128::from(spent) * 10_000 / i128::from(b.monthly_limit_micros.max(1))) as f64 / 100.0,
            thresholds_alerted,
            updated_at: b.updated_at,
            updated_by: b.updated_by,
        });
    }
    Ok(kit::http::json(200, &Budgets { month, budgets: out }))
}

/// The month's budgets with what has been spent against each.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Budgets {
    pub month: Month,
    pub budgets: Vec<BudgetStatus>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct BudgetStatus {
    pub scope: domain::finance::budget::BudgetScope,
    pub currency: domain::finance::Currency,
    pub monthly_limit: Amount,
    /// Percentages that alert finance once each per month.
    pub thresholds: Vec<u8>,
    /// Paid sends are refused (402) once the limit is spent.
    pub hard_stop: bool,
    pub spent: Amount,
    pub percent_used: f64,
    pub thresholds_alerted: Vec<u8>,
    pub paid_sends_stopped: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
    pub updated_by: domain::AgentId,
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
        let req = lambda_http::request::from_str(include_str!("../../../events/api-list-budgets/list.json")).unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 200);
        let v = kit::apigw::json_of(&res);
        assert!(v.is_object());
    }
}
