//! GET /finance/reports/{month}/reconciliation — the proof that the month's counters (what reports
//! read) equal the sum of its immutable ledger entries, for every grouping. It reads every entry of
//! the month, so it is an audit, not a dashboard: run it at month end or when a figure is doubted.
//! Roles: finance, supervisor, admin.

use domain::finance::ledger::{reconcile, Grouping, LedgerEntry, Month};
use domain::finance::report::row_of;
use domain::finance::Totals;
use domain::ports::Cursor;
use kit::auth::FINANCE_READERS;
use kit::http::{path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

const PAGE: u16 = 500;

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(check(deps, &req).await))
}

#[utoipa::path(get, path = "/finance/reports/{month}/reconciliation", operation_id = "financeReconcile", tag = "finance",
    params(("month" = String, Path, description = "YYYY-MM")),
    responses((status = 200, body = Reconciliation)))]
async fn check(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(FINANCE_READERS)?;
    let month = path_param(req, "month", Month::parse)?;
    let ws = &who.workspace;
    let mut entries: Vec<LedgerEntry> = Vec::new();
    for day in month.days() {
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = deps.store.entries(ws, day, PAGE, cursor.as_ref()).await?;
            entries.extend(page.items);
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    let mut counters = Vec::new();
    for g in Grouping::ALL {
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = deps.store.counters(ws, month, g, 1000, cursor.as_ref()).await?;
            counters.extend(page.items);
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    let mismatches = reconcile(&entries, &counters);
    let from_entries = entries.iter().fold(Totals::default(), |t, e| t + e.totals);
    let from_counters = counters
        .iter()
        .filter(|c| c.dimension.grouping() == Grouping::Total)
        .fold(Totals::default(), |t, c| t + c.totals);
    if !mismatches.is_empty() {
        tracing::error!(workspace = %ws, %month, mismatches = mismatches.len(), "ledger counters disagree with entries");
    }
    Ok(kit::http::json(
        200,
        &Reconciliation {
            month,
            balanced: mismatches.is_empty(),
            entries: entries.len(),
            counters: counters.len(),
            total_from_entries: row_of("total".into(), None, &from_entries),
            total_from_counters: row_of("total".into(), None, &from_counters),
            mismatches,
        },
    ))
}

/// The month's ledger entries summed, against its counters.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Reconciliation {
    pub month: Month,
    pub balanced: bool,
    pub entries: usize,
    pub counters: usize,
    pub total_from_entries: domain::finance::report::ReportRow,
    pub total_from_counters: domain::finance::report::ReportRow,
    pub mismatches: Vec<domain::finance::ledger::Mismatch>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::finance::EntryKind;
    use domain::ports::{ConversationReader, CostLedger, Order};
    use domain::{AgentId, WorkspaceId};
    use kit::auth::Authenticator;
    use kit::auth::Role;
    use std::sync::Arc;
    use store::contract::{cost_entry, seed_conversation};
    use store::MemoryStore;

    #[tokio::test]
    async fn counters_balance_with_their_entries() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        let (contact, conv) = seed_conversation(store.as_ref(), &ws, 1, time::OffsetDateTime::now_utc()).await;
        let m = store.messages(&ws, conv.id, Order::Oldest, 1, None).await.unwrap().items.remove(0);
        let est = Totals { messages: 1, provider_micros: 10_800, aws_micros: 11, ..Totals::default() };
        store.record_cost(&cost_entry(&m, contact.id, EntryKind::Estimate, est)).await.unwrap();
        let (contact2, conv2) = seed_conversation(store.as_ref(), &ws, 2, time::OffsetDateTime::now_utc()).await;
        let m2 = store.messages(&ws, conv2.id, Order::Oldest, 1, None).await.unwrap().items.remove(0);
        let est2 = Totals { messages: 1, provider_micros: 10_800, aws_micros: 9, actual_micros: 7_500, reconciled: 1 };
        store.record_cost(&cost_entry(&m2, contact2.id, EntryKind::Estimate, est2)).await.unwrap();
        let deps = Deps::new(store, Authenticator::new("s"));
        let month = Month::of(m.created_at).to_string();
        let t = kit::auth::issue_token(
            "s",
            &ws,
            &AgentId::parse("f").unwrap(),
            None,
            Role::Finance,
            time::Duration::hours(1),
        );
        let auth = format!("Bearer {t}");
        let req = kit::apigw::test_request(
            "GET",
            "/finance/reports/{month}/reconciliation",
            &format!("/finance/reports/{month}/reconciliation"),
            &[("month", &month)],
            &[("authorization", auth.as_str())],
            None,
        );
        let r = handle(&deps, req).await.unwrap();
        assert_eq!(r.status(), 200);
        let Body::Text(body) = r.body() else { panic!("text") };
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["balanced"], true, "{v}");
        assert_eq!(v["entries"], 2);
        assert_eq!(v["total_from_entries"], v["total_from_counters"]);
        assert_eq!(v["total_from_counters"]["actual"]["micros"], 7_500);
    }

    #[tokio::test]
    async fn the_fixture_answers_balanced_for_an_empty_month() {
        let deps = Deps::new(Arc::new(MemoryStore::new()), Authenticator::new("fixture-jwt-secret"));
        let req = lambda_http::request::from_str(include_str!("../../../events/api-finance-reconcile/reconcile.json"))
            .unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(kit::apigw::json_of(&res)["balanced"], true);
    }
}
