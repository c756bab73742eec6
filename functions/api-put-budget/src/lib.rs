//! PUT /finance/budgets/{scope} — sets the monthly budget of the workspace (`workspace`) or of one
//! channel (`sms`, `whatsapp`, …). Body: `{"monthly_limit": "250.00", "currency"?: "USD",
//! "thresholds"?: [50, 80, 100], "hard_stop"?: false}`. Spend is compared with the estimated total
//! (provider estimate plus AWS share). With `hard_stop`, paid sends are refused once the limit is
//! reached; free channels keep working. Roles: finance, admin.

use domain::finance::money::UnitPrice;
use domain::finance::{Budget, BudgetScope, Currency};
use kit::auth::FINANCE_ADMINS;
use kit::http::{body_bytes, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::Deps;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PutBudgetRequest)]
#[serde(deny_unknown_fields)]
struct BudgetDraft {
    /// A decimal amount in the currency, e.g. `"250.00"`.
    monthly_limit: String,
    #[serde(default)]
    currency: Option<Currency>,
    #[serde(default)]
    thresholds: Option<Vec<u8>>,
    #[serde(default)]
    hard_stop: bool,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(put(deps, &req).await))
}

#[utoipa::path(put, path = "/finance/budgets/{scope}", operation_id = "putBudget", tag = "finance",
    params(("scope" = String, Path, description = "workspace, or a channel (sms, whatsapp…)")),
    request_body = BudgetDraft,
    responses((status = 200, body = BudgetBody), (status = 422, body = kit::http::ErrorBody)))]
async fn put(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(FINANCE_ADMINS)?;
    let scope = path_param(req, "scope", BudgetScope::parse)?;
    let draft: BudgetDraft = serde_json::from_slice(body_bytes(req)).map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be {{\"monthly_limit\": \"250.00\", \"thresholds\"?: [50, 80, 100], \"hard_stop\"?: bool}}: {e}"
        ))
    })?;
    let limit = UnitPrice::parse(&draft.monthly_limit)
        .map_err(|e| ApiError::Unprocessable(format!("monthly_limit: {e}")))?
        .picos()
        / 1_000_000;
    let now = time::OffsetDateTime::now_utc();
    // Spend is counted in the rate card's currency; a budget in another one could never compare.
    let card_currency = deps.rates.card_at(&*deps.store, &who.workspace, now).await?.currency;
    let currency = draft.currency.unwrap_or_else(|| card_currency.clone());
    if currency != card_currency {
        return Err(ApiError::Unprocessable(format!(
            "costs in this workspace are counted in {card_currency} (its rate card); a budget in {currency} cannot be compared"
        )));
    }
    let budget = Budget::new(scope, currency, limit, draft.thresholds, draft.hard_stop, who.agent.clone(), now)?;
    let before = deps.store.budgets(&who.workspace).await?.into_iter().find(|b| b.scope == budget.scope);
    deps.store.put_budget(&who.workspace, &budget).await?;
    let details = serde_json::json!({ "scope": scope.as_str(), "before": before, "after": budget });
    api::record_workspace_change(&*deps.store, &who, "budget_set", details).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, scope = scope.as_str(), hard_stop = budget.hard_stop,
        "budget set");
    Ok(kit::http::json(200, &BudgetBody { budget }))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct BudgetBody {
    pub budget: Budget,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::BudgetStore;
    use domain::{AgentId, WorkspaceId};
    use kit::auth::Authenticator;
    use kit::auth::Role;
    use std::sync::Arc;
    use store::MemoryStore;

    fn put_req(ws: &WorkspaceId, role: Role, scope: &str, body: &str) -> Request {
        let t = kit::auth::issue_token("s", ws, &AgentId::parse("f").unwrap(), None, role, time::Duration::hours(1));
        let auth = format!("Bearer {t}");
        kit::apigw::test_request(
            "PUT",
            "/finance/budgets/{scope}",
            &format!("/finance/budgets/{scope}"),
            &[("scope", scope)],
            &[("authorization", auth.as_str()), ("content-type", "application/json")],
            Some(body.as_bytes()),
        )
    }

    #[tokio::test]
    async fn budgets_are_validated_and_replaced() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps::new(store.clone(), Authenticator::new("s"));
        let ws = WorkspaceId::parse("acme").unwrap();
        let ok = handle(&deps, put_req(&ws, Role::Finance, "sms", r#"{"monthly_limit":"250.50","hard_stop":true}"#));
        assert_eq!(ok.await.unwrap().status(), 200);
        let r = handle(&deps, put_req(&ws, Role::Admin, "sms", r#"{"monthly_limit":"300","thresholds":[90,75]}"#));
        assert_eq!(r.await.unwrap().status(), 200);
        let b = store.budgets(&ws).await.unwrap();
        assert_eq!(b.len(), 1);
        let audit = domain::ports::AuditLog::audit_trail(&*store, &ws, None, 5, None).await.unwrap().items;
        assert_eq!(audit.iter().filter(|e| e.action == "budget_set").count(), 2, "every change audited");
        assert!(
            audit.iter().any(|e| e.details["before"]["monthly_limit_micros"] == 250_500_000),
            "with what it replaced"
        );
        assert_eq!(
            (b[0].monthly_limit_micros, b[0].thresholds.clone(), b[0].hard_stop),
            (300_000_000, vec![75, 90], false)
        );
        for (scope, body, status) in [
            ("sms", r#"{"monthly_limit":"-5"}"#, 422),
            ("sms", r#"{"monthly_limit":"0"}"#, 422),
            ("sms", r#"{"monthly_limit":"10","currency":"EUR"}"#, 422),
            ("sms", r#"{"limit":"10"}"#, 400),
            ("fax", r#"{"monthly_limit":"10"}"#, 404),
        ] {
            let got = handle(&deps, put_req(&ws, Role::Finance, scope, body)).await.unwrap().status();
            assert_eq!(got, status, "{scope} {body}");
        }
        assert_eq!(
            handle(&deps, put_req(&ws, Role::Supervisor, "sms", r#"{"monthly_limit":"1"}"#)).await.unwrap().status(),
            403
        );
    }

    #[tokio::test]
    async fn the_fixture_sets_an_sms_budget() {
        let store = Arc::new(MemoryStore::new());
        let deps = Deps::new(store.clone(), Authenticator::new("fixture-jwt-secret"));
        let req = lambda_http::request::from_str(include_str!("../../../events/api-put-budget/put-sms.json")).unwrap();
        assert_eq!(handle(&deps, req).await.unwrap().status(), 200);
        let b = store.budgets(&WorkspaceId::parse("demo").unwrap()).await.unwrap();
        assert_eq!((b[0].monthly_limit_micros, b[0].hard_stop), (250_000_000, true));
    }
}
