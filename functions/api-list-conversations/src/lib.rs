//! GET /conversations — the inbox views, most recent activity first, one status at a time
//! (default `open`):
//! - `view=mine` (the caller's), `view=unassigned`, `view=team` (the caller's team, or `team=<id>`;
//!   whoever owns them), `view=all` (the default);
//! - or, for any agent's view, `assignee=me | none | any | <agent id>`.
//!
//! Query: `view` or `assignee`, `team`, `status`, `limit` (1-100, default 25), `cursor` (from
//! `next_cursor`). Every agent sees every view of their own workspace, never another's.
//!
//! `sort=breaching`: the view's conversations whose service-level clock is still running, the
//! soonest due first (`sla_due_at` on each) — what is about to breach. It reads up to
//! [`BREACHING_SCAN`] conversations of the view and answers the `limit` soonest, without a cursor.

use domain::ports::{AssigneeFilter, ConversationQuery, Cursor};
use domain::{AgentId, ConversationStatus, TeamId};
use kit::http::{limit_param, page_response, query_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};

pub use api::Deps;

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(list(deps, &req).await))
}

#[utoipa::path(get, path = "/conversations", operation_id = "listConversations", tag = "conversations",
    params(("view" = Option<String>, Query, description = "mine, unassigned, team or all"),
           ("assignee" = Option<String>, Query, description = "me, none, any or an agent id (instead of view)"),
           ("team" = Option<String>, Query, description = "With view=team: which team (default: the caller's one)"),
           ("status" = Option<String>, Query, description = "open (default), snoozed or resolved"),
           ("sort" = Option<String>, Query, description = "activity (default: most recent first) or breaching (soonest service-level due first, each with sla_due_at)"),
           ("limit" = Option<u16>, Query, description = "1-100, default 25"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = kit::http::PageBody<domain::model::Conversation>), (status = 422, body = kit::http::ErrorBody)))]
async fn list(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    let status = match query_param(req, "status") {
        None => ConversationStatus::Open,
        Some(s) => ConversationStatus::parse(&s)?,
    };
    who.require(kit::auth::INBOX)?;
    let team = query_param(req, "team").map(|t| TeamId::parse(&t)).transpose()?;
    let assignee = match (query_param(req, "view").as_deref(), query_param(req, "assignee").as_deref()) {
        (Some(_), Some(_)) => return Err(ApiError::BadRequest("use view or assignee, not both".into())),
        (Some("team"), None) => AssigneeFilter::Team(match team {
            Some(t) => t,
            None => callers_team(deps, &who).await?,
        }),
        (_, _) if team.is_some() => return Err(ApiError::BadRequest("team goes with view=team".into())),
        (Some("mine"), None) | (None, Some("me")) => AssigneeFilter::Agent(who.agent.clone()),
        (Some("unassigned"), None) | (None, Some("none")) => AssigneeFilter::Unassigned,
        (Some("all"), None) | (None, Some("any")) | (None, None) => AssigneeFilter::Any,
        (Some(v), None) => {
            return Err(ApiError::BadRequest(format!("view {v:?}: expected mine, unassigned, team or all")))
        }
        (None, Some(a)) => AssigneeFilter::Agent(AgentId::parse(a)?),
    };
    let limit = limit_param(req, 25, 100)?;
    match query_param(req, "sort").as_deref() {
        None | Some("activity") => {}
        Some("breaching") => return breaching(deps, &who, status, assignee, limit).await,
        Some(other) => return Err(ApiError::BadRequest(format!("sort {other:?}: expected activity or breaching"))),
    }
    let q = ConversationQuery { status, assignee, limit, cursor: query_param(req, "cursor").map(Cursor) };
    let page = deps.store.conversations(&who.workspace, &q).await?;
    Ok(page_response(page))
}

/// How many conversations of a view `sort=breaching` reads at most.
pub const BREACHING_SCAN: usize = 1000;

async fn breaching(
    deps: &Deps,
    who: &kit::auth::Principal,
    status: ConversationStatus,
    assignee: AssigneeFilter,
    limit: u16,
) -> Result<Response<Body>, ApiError> {
    let mut q = ConversationQuery { status, assignee, limit: 100, cursor: None };
    let mut due = vec![];
    let mut read = 0;
    loop {
        let page = deps.store.conversations(&who.workspace, &q).await?;
        read += page.items.len();
        due.extend(page.items.into_iter().filter_map(|c| c.sla.next_due().map(|at| (at, c))));
        match page.next {
            Some(next) if read < BREACHING_SCAN => q.cursor = Some(next),
            _ => break,
        }
    }
    due.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
    let items = due
        .into_iter()
        .take(usize::from(limit))
        .map(|(at, conversation)| Breaching { conversation, sla_due_at: at })
        .collect();
    Ok(kit::http::json(200, &kit::http::PageBody::<Breaching> { items, next_cursor: None }))
}

/// The caller's one team (an agent in several names it with `team=`).
async fn callers_team(deps: &Deps, who: &kit::auth::Principal) -> Result<TeamId, ApiError> {
    let mut it = api::callers_teams(&*deps.store, who).await?.into_iter();
    match (it.next(), it.next()) {
        (Some(t), None) => Ok(t),
        (None, _) => Err(ApiError::Unprocessable("you are in no team: an admin adds you to one".into())),
        (Some(_), Some(_)) => Err(ApiError::BadRequest("you are in several teams: name one with team=".into())),
    }
}

/// A conversation of `sort=breaching`, with its soonest service-level due time.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Breaching {
    #[serde(flatten)]
    pub conversation: domain::model::Conversation,
    #[serde(with = "time::serde::rfc3339")]
    pub sla_due_at: time::OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::WorkspaceId;
    use kit::auth::Authenticator;
    use std::sync::Arc;
    use store::contract::seed_conversation;
    use store::MemoryStore;

    fn get(uri: &str, token: &str) -> Request {
        let auth = format!("Bearer {token}");
        kit::apigw::test_request("GET", "/conversations", uri, &[], &[("authorization", &auth)], None)
    }

    fn token(ws: &str) -> String {
        kit::auth::issue_token(
            "s",
            &WorkspaceId::parse(ws).unwrap(),
            &AgentId::parse("alice").unwrap(),
            None,
            kit::auth::Role::Agent,
            time::Duration::hours(1),
        )
    }

    #[tokio::test]
    async fn lists_only_the_callers_workspace_and_validates_filters() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        for i in 0..3 {
            seed_conversation(store.as_ref(), &ws, i, time::OffsetDateTime::now_utc()).await;
        }
        let deps = Deps::new(store, Authenticator::new("s"));
        let res = handle(&deps, get("/conversations?limit=2", &token("acme"))).await.unwrap();
        assert_eq!(res.status(), 200);
        let v = kit::apigw::json_of(&res);
        assert_eq!(v["items"].as_array().unwrap().len(), 2);
        assert!(v["next_cursor"].is_string());

        let other = handle(&deps, get("/conversations", &token("globex"))).await.unwrap();
        assert_eq!(kit::apigw::json_of(&other)["items"].as_array().unwrap().len(), 0);

        assert_eq!(handle(&deps, get("/conversations?status=closed", &token("acme"))).await.unwrap().status(), 400);
        assert_eq!(handle(&deps, get("/conversations?limit=0", &token("acme"))).await.unwrap().status(), 400);
        assert_eq!(handle(&deps, get("/conversations?cursor=zzz", &token("acme"))).await.unwrap().status(), 400);
        assert_eq!(handle(&deps, get("/conversations", "forged")).await.unwrap().status(), 401);
        for bad in ["?view=odd", "?view=mine&assignee=me", "?team=billing", "?view=team&team=no%20way"] {
            let res = handle(&deps, get(&format!("/conversations{bad}"), &token("acme"))).await.unwrap();
            assert_eq!(res.status(), 400, "{bad}");
        }
        let res = handle(&deps, get("/conversations?view=team", &token("acme"))).await.unwrap();
        assert_eq!(res.status(), 422, "alice is in no team");
    }

    #[tokio::test]
    async fn views_mine_unassigned_and_team() {
        use domain::ports::{AgentStore, ConversationReader, QueueChange, RoutingCommit, RoutingStore};
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        let now = time::OffsetDateTime::now_utc();
        let billing = TeamId::parse("billing").unwrap();
        let mut ids = vec![];
        for i in 0..3 {
            ids.push(seed_conversation(store.as_ref(), &ws, i, now + time::Duration::seconds(i.into())).await.1.id);
        }
        // The first is alice's, the second billing's.
        for (id, owner, team) in [(ids[0], Some("alice"), None), (ids[1], None, Some(billing.clone()))] {
            let mut c = store.conversation(&ws, id).await.unwrap().unwrap();
            let expected_version = c.version;
            c.assignee = owner.map(|a| AgentId::parse(a).unwrap());
            c.team = team;
            c.version += 1;
            let commit = RoutingCommit {
                conversation: c,
                expected_version,
                take: None,
                give_back: None,
                queue: QueueChange::Keep,
                audit: None,
            };
            store.commit_routing(commit).await.unwrap();
        }
        let mut alice =
            store::contract::seed_agent(store.as_ref(), &ws, "alice", 500, domain::routing::Presence::Online).await;
        alice.teams.insert(billing);
        store.put_agent(&ws, &alice).await.unwrap();
        let deps = Deps::new(store, Authenticator::new("s"));
        let listed = |uri: &'static str| {
            let deps = &deps;
            async move {
                let res = handle(deps, get(uri, &token("acme"))).await.unwrap();
                let v = kit::apigw::json_of(&res);
                v["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
            }
        };
        let s = |i: usize| ids[i].to_string();
        assert_eq!(listed("/conversations?view=mine").await, [s(0)]);
        assert_eq!(listed("/conversations?view=unassigned").await, [s(2), s(1)]);
        assert_eq!(listed("/conversations?view=team").await, [s(1)]);
        assert_eq!(listed("/conversations?view=team&team=sales").await, Vec::<String>::new());
        assert_eq!(listed("/conversations?view=all").await, [s(2), s(1), s(0)]);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("demo").unwrap();
        let conv = domain::ConversationId::parse("01JD3XQ7Z9K2M4N6P8R0S2T4V6").unwrap();
        store::contract::seed_queued_reply(store.as_ref(), &ws, "+14155552671", Some(conv), None).await;
        let deps = Deps::new(store, Authenticator::new("fixture-jwt-secret"));
        let req = lambda_http::request::from_str(include_str!("../../../events/api-list-conversations/list-open.json"))
            .unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 200);
    }

    #[tokio::test]
    async fn breaching_soon_lists_running_clocks_soonest_first() {
        let store = std::sync::Arc::new(store::MemoryStore::new());
        let deps = Deps::new(store.clone(), kit::auth::Authenticator::new("s"));
        let ws = domain::WorkspaceId::parse("acme").unwrap();
        let now = time::OffsetDateTime::now_utc();
        let policy = domain::sla::Policy { counting: domain::sla::Counting::Calendar, ..Default::default() };
        let mut ids = vec![];
        for (n, ago) in [(1u32, 0i64), (2, 1800), (3, 600)] {
            let (_, c) = store::contract::seed_conversation(&*store, &ws, n, now).await;
            let mut next = c.clone();
            let clocks = domain::sla::Clocks { policy: &policy, calendar: domain::sla::Calendar::Always };
            clocks.customer_wrote(&mut next, domain::Channel::Sms, now - time::Duration::seconds(ago));
            store::contract::replace_conversation(&*store, &c, next).await;
            ids.push(c.id.to_string());
        }
        store::contract::seed_conversation(&*store, &ws, 4, now).await; // no clock: not listed
        let res = handle(&deps, get("/conversations?sort=breaching&limit=2", &token("acme"))).await.unwrap();
        assert_eq!(res.status(), 200);
        let v = kit::apigw::json_of(&res);
        let got: Vec<&str> = v["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!(got, [ids[1].as_str(), ids[2].as_str()], "waited longest, due soonest");
        assert!(v["items"][0]["sla_due_at"].is_string());
        let bad = handle(&deps, get("/conversations?sort=priority", &token("acme"))).await.unwrap();
        assert_eq!(bad.status(), 400);
    }
}
