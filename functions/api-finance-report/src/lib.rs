//! GET /finance/reports/{month} — what a month cost, from the ledger's counters (a handful of items,
//! never every message).
//!
//! Query: `by` = `channel` (default), `total`, `team`, `agent`, `conversation` or `contact`;
//! `format` = `json` (default) or `csv`; for conversations and contacts, `limit` (1-1000, default
//! 100) and `cursor`. Each row: messages, provider estimate, AWS share, estimated total, the
//! provider-reported cost of the reconciled messages, and how many were reconciled.
//! Roles: finance, supervisor, admin.

use domain::finance::ledger::{Grouping, Month};
use domain::finance::report::{row, row_of, to_csv, ReportRow};
use domain::finance::Totals;
use domain::ports::Cursor;
use kit::auth::FINANCE_READERS;
use kit::http::{limit_param, path_param, query_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(report(deps, &req).await))
}

#[utoipa::path(get, path = "/finance/reports/{month}", operation_id = "financeReport", tag = "finance",
    params(("month" = String, Path, description = "YYYY-MM"),
           ("by" = Option<String>, Query, description = "channel (default), direction, country, agent, team, total"),
           ("format" = Option<String>, Query, description = "json (default) or csv"),
           ("limit" = Option<u16>, Query, description = "1-1000, default 100"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "The report (JSON, or CSV with format=csv)",
               content((Report = "application/json"), (String = "text/csv")))))]
async fn report(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(FINANCE_READERS)?;
    let month = path_param(req, "month", Month::parse)?;
    let by = match query_param(req, "by") {
        None => Grouping::Channel,
        Some(b) => Grouping::parse(&b)?,
    };
    let csv = match query_param(req, "format").as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(ApiError::BadRequest(format!("format {other:?}: expected json or csv"))),
    };
    let limit = limit_param(req, 100, 1000)?;
    let cursor = query_param(req, "cursor").map(Cursor);
    let page = deps.store.counters(&who.workspace, month, by, limit, cursor.as_ref()).await?;
    let mut rows: Vec<ReportRow> = page.items.iter().map(row).collect();
    rows.sort_by(|a, b| b.estimated_total.micros.cmp(&a.estimated_total.micros).then(a.key.cmp(&b.key)));
    let total: Totals = page.items.iter().fold(Totals::default(), |t, c| t + c.totals);
    // Amounts are in the currency of the workspace's rate card for that month.
    let currency = deps.rates.card_at(&*deps.store, &who.workspace, month_end(month)).await?.currency;
    if csv {
        let body = to_csv(month, by, &currency, &rows).map_err(|e| ApiError::Internal(Box::new(e)))?;
        let name = format!("switchboard-costs-{}-{month}-by-{}.csv", who.workspace, by.as_str());
        return Ok(kit::http::csv(200, &name, body));
    }
    Ok(kit::http::json(
        200,
        &Report {
            month,
            by: by.as_str().to_owned(),
            currency,
            rows,
            total: row_of("total".into(), None, &total),
            next_cursor: page.next.map(|c| c.0),
        },
    ))
}

/// The last instant of a month (the rate card in force then names the month's currency).
fn month_end(m: Month) -> time::OffsetDateTime {
    let last = m.days().last().copied().unwrap_or(time::Date::MIN);
    last.with_hms(23, 59, 59).map(|t| t.assume_utc()).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// A month's costs grouped one way, most expensive first.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Report {
    pub month: Month,
    pub by: String,
    pub currency: domain::finance::Currency,
    pub rows: Vec<ReportRow>,
    pub total: ReportRow,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::finance::{EntryKind, Totals};
    use domain::ports::{ConversationReader, CostLedger, Order};
    use domain::{AgentId, WorkspaceId};
    use kit::auth::Authenticator;
    use kit::auth::Role;
    use std::sync::Arc;
    use store::contract::{cost_entry, seed_conversation};
    use store::MemoryStore;

    fn get(ws: &WorkspaceId, role: Role, path: &str, query: &str) -> Request {
        let t = kit::auth::issue_token("s", ws, &AgentId::parse("fin").unwrap(), None, role, time::Duration::hours(1));
        let auth = format!("Bearer {t}");
        let month = path.rsplit('/').next().unwrap().to_owned();
        let uri = if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") };
        kit::apigw::test_request(
            "GET",
            "/finance/reports/{month}",
            &uri,
            &[("month", &month)],
            &[("authorization", auth.as_str())],
            None,
        )
    }

    fn text(r: &Response<Body>) -> String {
        match r.body() {
            Body::Text(t) => t.clone(),
            _ => panic!("text body"),
        }
    }

    #[tokio::test]
    async fn reports_by_channel_in_json_and_csv_for_finance_only() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        let (contact, conv) = seed_conversation(store.as_ref(), &ws, 1, time::OffsetDateTime::now_utc()).await;
        let m = store.messages(&ws, conv.id, Order::Oldest, 1, None).await.unwrap().items.remove(0);
        let t = Totals { messages: 1, provider_micros: 10_800, aws_micros: 11, ..Totals::default() };
        store.record_cost(&cost_entry(&m, contact.id, EntryKind::Estimate, t)).await.unwrap();
        let deps = Deps::new(store.clone(), Authenticator::new("s"));
        let month = Month::of(m.created_at).to_string();
        let path = format!("/finance/reports/{month}");

        let r = handle(&deps, get(&ws, Role::Finance, &path, "")).await.unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = serde_json::from_str(&text(&r)).unwrap();
        assert_eq!(v["rows"][0]["key"], "sms");
        assert_eq!(v["rows"][0]["direction"], "inbound");
        assert_eq!(v["total"]["estimated_total"]["amount"], "0.010811");
        assert_eq!(v["currency"], "USD");

        let r = handle(&deps, get(&ws, Role::Supervisor, &path, "by=contact&format=csv")).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
        let csv = text(&r);
        assert!(csv.lines().nth(1).unwrap().contains(&format!(",contact,{},", contact.id)), "{csv}");

        assert_eq!(handle(&deps, get(&ws, Role::Agent, &path, "")).await.unwrap().status(), 403);
        assert_eq!(handle(&deps, get(&ws, Role::Finance, "/finance/reports/2026-13", "")).await.unwrap().status(), 404);
        assert_eq!(handle(&deps, get(&ws, Role::Finance, &path, "by=planet")).await.unwrap().status(), 400);
        // Another workspace's finance user sees nothing of it.
        let other = WorkspaceId::parse("other").unwrap();
        let r = handle(&deps, get(&other, Role::Finance, &path, "")).await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&text(&r)).unwrap();
        assert_eq!(v["rows"].as_array().unwrap().len(), 0);
    }

    #[tokio::test]
    async fn the_fixtures_answer() {
        let deps = Deps::new(Arc::new(MemoryStore::new()), Authenticator::new("fixture-jwt-secret"));
        for (fixture, content_type) in [
            (include_str!("../../../events/api-finance-report/by-channel.json"), "application/json"),
            (include_str!("../../../events/api-finance-report/by-agent-csv.json"), "text/csv; charset=utf-8"),
        ] {
            let res = handle(&deps, lambda_http::request::from_str(fixture).unwrap()).await.unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["content-type"], content_type);
        }
    }
}
