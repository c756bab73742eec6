//! GET /analytics — what the workspace's conversations looked like over a range (supervisors and
//! admins): per channel (or `dimension=agent|team`) volumes, first-response and resolution time
//! percentiles (p50/p90/p95/p99, within 1% of the exact values: merged DDSketches of the hours in
//! range), CSAT counts and the share of 4–5 ratings, channel migrations, agent utilisation (online
//! hours, load against capacity at assignment), and the same per hour of day (UTC). Query: `from`, `to` (dates `YYYY-MM-DD`, inclusive; the last 7 days by default; at
//! most 92 days), `dimension`, `format=csv` (the rows, like the finance report).

use domain::analytics::{report, to_csv};
use kit::auth::SUPERVISORS;
use kit::http::{json, query_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use time::{Date, Duration, OffsetDateTime, Time};

pub use api::Deps;

/// The longest range one request reads (about a quarter: ~2,200 hourly items per channel).
pub const MAX_DAYS: i64 = 92;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(analytics(deps, &req).await))
}

fn date_param(req: &Request, name: &str) -> Result<Option<Date>, ApiError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    query_param(req, name)
        .map(|v| Date::parse(&v, &format).map_err(|_| ApiError::BadRequest(format!("{name}: a date YYYY-MM-DD"))))
        .transpose()
}

#[utoipa::path(get, path = "/analytics", operation_id = "getAnalytics", tag = "analytics",
    params(("from" = Option<String>, Query, description = "YYYY-MM-DD (default: six days before `to`)"),
           ("to" = Option<String>, Query, description = "YYYY-MM-DD (default: today, UTC)"),
           ("dimension" = Option<String>, Query, description = "channel (default), agent or team"),
           ("format" = Option<String>, Query, description = "json (default) or csv")),
    responses((status = 200, description = "The report (JSON, or CSV with format=csv)",
               content((Analytics = "application/json"), (String = "text/csv")))))]
async fn analytics(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(SUPERVISORS)?;
    let today = OffsetDateTime::now_utc().date();
    let to = date_param(req, "to")?.unwrap_or(today);
    let from = date_param(req, "from")?.unwrap_or(to - Duration::days(6));
    if from > to {
        return Err(ApiError::BadRequest("from is after to".into()));
    }
    if (to - from).whole_days() >= MAX_DAYS {
        return Err(ApiError::BadRequest(format!("at most {MAX_DAYS} days per request")));
    }
    let dimension = query_param(req, "dimension").unwrap_or_else(|| "channel".into());
    if !matches!(dimension.as_str(), "channel" | "agent" | "team") {
        return Err(ApiError::BadRequest("dimension: channel, agent or team".into()));
    }
    let first = domain::analytics::hour_of(from.with_time(Time::MIDNIGHT).assume_utc());
    let last = domain::analytics::hour_of(to.with_time(Time::MIDNIGHT).assume_utc() + Duration::hours(23));
    let hours = deps.store.aggregates(&who.workspace, &dimension, &first, &last).await?;
    let (rows, by_hour) = report(&hours, &dimension);
    if query_param(req, "format").as_deref() == Some("csv") {
        return Response::builder()
            .status(200)
            .header("content-type", "text/csv; charset=utf-8")
            .header("content-disposition", format!("attachment; filename=\"analytics-{from}-{to}.csv\""))
            .body(Body::Text(to_csv(&rows)))
            .map_err(|e| ApiError::Internal(Box::new(e)));
    }
    Ok(json(
        200,
        &Analytics {
            from: from.to_string(),
            to: to.to_string(),
            dimension,
            relative_accuracy: domain::analytics::RELATIVE_ACCURACY,
            rows,
            by_hour_of_day: by_hour,
        },
    ))
}

/// Volumes, response-time percentiles and CSAT per channel, agent or team, and per hour of day.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Analytics {
    pub from: String,
    pub to: String,
    pub dimension: String,
    /// Percentiles are within this relative error (DDSketch).
    pub relative_accuracy: f64,
    pub rows: Vec<domain::analytics::Row>,
    /// Keyed `00`-`23` (UTC).
    pub by_hour_of_day: Vec<domain::analytics::Row>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::analytics::{Fact, FactKind};
    use domain::ports::AnalyticsStore;
    use domain::{Channel, Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    fn get(role: Role, query: &str) -> Request {
        let auth = bearer("s", "acme", "sue", role);
        kit::apigw::test_request(
            "GET",
            "/analytics",
            &format!("/analytics{query}"),
            &[],
            &[("authorization", &auth)],
            None,
        )
    }

    #[tokio::test]
    async fn supervisors_read_percentiles_per_channel_as_json_or_csv() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        let at = OffsetDateTime::now_utc();
        for (i, secs) in [60.0, 120.0, 600.0].into_iter().enumerate() {
            let f = Fact {
                id: format!("r{i}"),
                workspace: ws.clone(),
                at,
                channel: Some(Channel::Sms),
                agent: None,
                team: None,
                kind: FactKind::Resolved { seconds: secs },
            };
            store.apply_facts(std::slice::from_ref(&f)).await.unwrap();
        }
        let deps = Deps::new(store, Authenticator::new("s"));
        let res = handle(&deps, get(Role::Supervisor, "")).await.unwrap();
        assert_eq!(res.status(), 200);
        let v = kit::apigw::json_of(&res);
        assert_eq!(v["rows"][0]["key"], "sms");
        assert_eq!(v["rows"][0]["counts"]["resolved"], 3);
        let p50 = v["rows"][0]["resolution_seconds"]["p50"].as_f64().unwrap();
        assert!((p50 - 120.0).abs() <= 1.2, "{p50}");
        let csv = handle(&deps, get(Role::Admin, "?format=csv")).await.unwrap();
        assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
        assert_eq!(handle(&deps, get(Role::Agent, "")).await.unwrap().status(), 403);
        assert_eq!(handle(&deps, get(Role::Supervisor, "?from=2026-01-02&to=2026-01-01")).await.unwrap().status(), 400);
        assert_eq!(handle(&deps, get(Role::Supervisor, "?dimension=planet")).await.unwrap().status(), 400);
    }
}
