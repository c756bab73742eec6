//! PATCH /conversations/{id} — resolve, reopen, snooze until a time, set the priority, add or
//! remove tags. Body (every field optional, at least one):
//! `{"status": "resolved" | "open" | "snoozed", "snoozed_until": "2026-11-23T09:00:00Z",
//!   "priority": "low" | "normal" | "high" | "urgent", "tags": {"add": [...], "remove": [...]}}`.
//!
//! Each change is its own audited, announced step: tags and priority first, status last, so a
//! resolve never blocks the edits that came with it. Resolving
//! gives the owner's capacity back and lets waiting work in; reopening a resolved conversation
//! gives it back to its owner (or the queue). Status changes belong to the owner, anyone while it is
//! unowned, and supervisors; priority and tags to any agent.
//!
//! A snooze starts a timer (a Step Functions execution named after the conversation and the time)
//! that reopens the conversation at `snoozed_until` unless it was reopened, resolved or snoozed
//! again before. If the timer cannot be started the answer is 503 and the same request again
//! starts it (the snooze itself is already stored, so the retry changes nothing else).

use std::collections::BTreeSet;

use domain::inbox::Command;
use domain::timers::{SnoozeTimers, SnoozeWake};
use domain::{ConversationId, Priority};
use kit::auth::INBOX;
use kit::http::{json_body, path_param, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub struct Deps {
    pub inbox: api::Inbox,
    pub timers: std::sync::Arc<dyn SnoozeTimers>,
    /// The service-level timers of clocks a reopen resumes.
    pub sla_timers: std::sync::Arc<dyn domain::timers::SlaTimers>,
}

impl Deps {
    /// The inbox wiring, `SNOOZE_STATE_MACHINE_ARN` (the timer that wakes snoozed conversations)
    /// and `SLA_STATE_MACHINE_ARN`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let timers = std::sync::Arc::new(
            timers::SfnTimers::new(aws_sdk_sfn::Client::new(aws))
                .snooze(config.required("SNOOZE_STATE_MACHINE_ARN")?)
                .sla(config.required("SLA_STATE_MACHINE_ARN")?),
        );
        Ok(Self { inbox: api::Inbox::from_config(config, aws).await?, timers: timers.clone(), sla_timers: timers })
    }
}

const SHAPE: &str = r#"{"status"?: "open" | "resolved" | "snoozed", "snoozed_until"?: RFC 3339, "priority"?: "low" | "normal" | "high" | "urgent", "tags"?: {"add"?: [...], "remove"?: [...]}}"#;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = UpdateConversationRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    snoozed_until: Option<time::OffsetDateTime>,
    #[serde(default)]
    priority: Option<Priority>,
    #[serde(default)]
    tags: Option<TagDraft>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = UpdateConversationTags)]
#[serde(deny_unknown_fields)]
struct TagDraft {
    #[serde(default)]
    add: BTreeSet<String>,
    #[serde(default)]
    remove: BTreeSet<String>,
}

/// The commands a draft asks for, edits first, status last.
fn commands(d: Draft) -> Result<Vec<Command>, ApiError> {
    let mut out = vec![];
    if let Some(t) = d.tags {
        out.push(Command::Tag { add: t.add, remove: t.remove });
    }
    if let Some(p) = d.priority {
        out.push(Command::SetPriority(p));
    }
    match (d.status.as_deref(), d.snoozed_until) {
        (None, None) => {}
        (Some("snoozed"), Some(until)) => out.push(Command::Snooze { until }),
        (Some("snoozed"), None) => return Err(ApiError::BadRequest("status snoozed needs snoozed_until".into())),
        (_, Some(_)) => return Err(ApiError::BadRequest("snoozed_until goes with status snoozed".into())),
        (Some("resolved"), None) => out.push(Command::Resolve),
        (Some("open"), None) => out.push(Command::Reopen),
        (Some(other), None) => {
            return Err(ApiError::Unprocessable(format!("status {other:?}: set open, resolved or snoozed")))
        }
    }
    if out.is_empty() {
        return Err(ApiError::BadRequest(format!("nothing to change: body must be {SHAPE}")));
    }
    Ok(out)
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(update(deps, &req).await))
}

#[utoipa::path(patch, path = "/conversations/{id}", operation_id = "updateConversation", tag = "conversations",
    params(("id" = String, Path, description = "The conversation")),
    request_body = Draft,
    responses((status = 200, body = api::ActedBody), (status = 404, body = kit::http::ErrorBody), (status = 409, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn update(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.inbox.auth.authenticate(req)?;
    who.require(INBOX)?;
    let id = path_param(req, "id", ConversationId::parse)?;
    let cmds = commands(json_body(req, SHAPE)?)?;
    let mut last = None;
    let mut changed = false;
    let mut assigned = vec![];
    for cmd in &cmds {
        let acted = api::act(&deps.inbox, &who, id, cmd).await?;
        changed |= acted.changed;
        assigned.extend(acted.assigned.iter().cloned());
        last = Some(acted);
    }
    let mut acted = last.expect("commands() never returns an empty list");
    if let (Some(Command::Snooze { until }), Some(&stored)) =
        (cmds.iter().find(|c| matches!(c, Command::Snooze { .. })), acted.conversation.snoozed_until.as_ref())
    {
        // Only the snooze this request set (a repeat finds it stored and starts its timer again).
        if *until == stored {
            let wake = SnoozeWake { workspace: who.workspace.clone(), conversation_id: id, snoozed_until: stored };
            deps.timers.start_snooze_timer(&wake).await.map_err(|e| ApiError::Unavailable(Box::new(e)))?;
        }
    }
    if changed && cmds.contains(&Command::Reopen) {
        // Clocks paused by a snooze run again: their timers (a repeat starts the same ones).
        app::sla::start_timers(&*deps.sla_timers, &acted.conversation).await?;
    }
    acted.changed = changed;
    acted.assigned = assigned;
    tracing::info!(workspace = %who.workspace, by = %who.agent, conversation = %id, changed,
        status = acted.conversation.status.as_str(), "conversation updated");
    Ok(api::acted_response(&acted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{AgentStore, AuditLog, ConversationReader};
    use domain::routing::Presence;
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use queue::memory::MemoryQueue;
    use std::sync::Arc;
    use store::contract::{seed_agent, seed_conversation};
    use store::MemoryStore;

    struct World {
        deps: Deps,
        store: Arc<MemoryStore>,
        timers: Arc<timers::RecordingTimers>,
        ws: WorkspaceId,
    }

    fn deps(store: Arc<MemoryStore>, secret: &str, timers: Arc<timers::RecordingTimers>) -> Deps {
        let sla_timers = timers.clone();
        let notifications = Arc::new(MemoryQueue::new());
        Deps { inbox: api::Inbox { store, auth: Authenticator::new(secret), notifications }, timers, sla_timers }
    }

    fn world() -> World {
        let store = Arc::new(MemoryStore::new());
        let timers = Arc::new(timers::RecordingTimers::default());
        World { deps: deps(store.clone(), "s", timers.clone()), store, timers, ws: WorkspaceId::parse("acme").unwrap() }
    }

    async fn patch(w: &World, conv: ConversationId, as_: (&str, Role), body: &str) -> (u16, serde_json::Value) {
        let auth = bearer("s", w.ws.as_str(), as_.0, as_.1);
        let id = conv.to_string();
        let req = kit::apigw::test_request(
            "PATCH",
            "/conversations/{id}",
            &format!("/conversations/{id}"),
            &[("id", &id)],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        let res = handle(&w.deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    async fn owned_by_alice(w: &World, n: u32) -> ConversationId {
        let now = time::OffsetDateTime::now_utc();
        let (_, c) = seed_conversation(w.store.as_ref(), &w.ws, n, now).await;
        let notify = &*w.deps.inbox.notifications;
        let routed = domain::routing::service::route_conversation(&*w.store, notify, &w.ws, c.id, now);
        routed.await.unwrap();
        c.id
    }

    const ALICE: (&str, Role) = ("alice", Role::Agent);
    const BOB: (&str, Role) = ("bob", Role::Agent);

    #[tokio::test]
    async fn resolve_frees_capacity_for_waiting_work_and_reopen_gives_it_back() {
        let w = world();
        seed_agent(w.store.as_ref(), &w.ws, "alice", 100, Presence::Online).await;
        let first = owned_by_alice(&w, 1).await;
        let second = owned_by_alice(&w, 2).await;
        assert!(w.store.conversation(&w.ws, second).await.unwrap().unwrap().waiting_since.is_some(), "alice is full");

        let (status, body) = patch(&w, first, BOB, r#"{"status": "resolved"}"#).await;
        assert_eq!(status, 403, "bob cannot resolve alice's conversation: {body}");
        let (status, body) = patch(&w, first, ALICE, r#"{"status": "resolved", "tags": {"add": ["Refund"]}}"#).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["conversation"]["status"], "resolved");
        assert_eq!(body["conversation"]["tags"], serde_json::json!(["refund"]));
        assert_eq!(body["assigned"][0]["conversation_id"], second.to_string(), "the queue moved into the room");
        let again = patch(&w, first, ALICE, r#"{"status": "resolved"}"#).await;
        assert_eq!((again.0, again.1["changed"].clone()), (200, serde_json::json!(false)));

        // Still its contact's latest thread (the seeds are separate contacts): it reopens.
        let (status, body) = patch(&w, first, ALICE, r#"{"status": "open"}"#).await;
        assert_eq!(status, 200, "{body}");
        let trail = w.store.audit_trail(&w.ws, Some(first), 20, None).await.unwrap().items;
        let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["assigned", "tags_changed", "resolved", "reopened"]);
        let alice = w.store.agents(&w.ws).await.unwrap().into_iter().find(|a| a.id.as_str() == "alice").unwrap();
        assert_eq!(alice.load, 200, "the reopened conversation came back to its owner, past capacity");
    }

    #[tokio::test]
    async fn snooze_priority_and_bad_bodies() {
        let w = world();
        seed_agent(w.store.as_ref(), &w.ws, "alice", 500, Presence::Online).await;
        let c = owned_by_alice(&w, 1).await;
        let until = (time::OffsetDateTime::now_utc() + time::Duration::hours(3))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let body = format!(r#"{{"status": "snoozed", "snoozed_until": "{until}", "priority": "urgent"}}"#);
        let (status, res) = patch(&w, c, ALICE, &body).await;
        assert_eq!(status, 200, "{res}");
        assert_eq!(
            (res["conversation"]["status"].as_str(), res["conversation"]["priority"].as_str()),
            (Some("snoozed"), Some("urgent"))
        );
        let started = w.timers.started();
        assert_eq!(started.len(), 1, "a timer wakes it");
        assert_eq!((started[0].conversation_id, started[0].workspace.clone()), (c, w.ws.clone()));
        assert_eq!(
            Some(started[0].snoozed_until),
            w.store.conversation(&w.ws, c).await.unwrap().unwrap().snoozed_until
        );
        let (status, _) = patch(&w, c, BOB, r#"{"priority": "low"}"#).await;
        assert_eq!(status, 200, "priority is anyone's");
        assert_eq!(w.timers.started().len(), 1, "no snooze, no timer");

        for (body, want) in [
            ("{}", 400),
            ("[]", 400),
            (r#"{"status": "snoozed"}"#, 400),
            (r#"{"snoozed_until": "2026-01-01T00:00:00Z"}"#, 400),
            (r#"{"status": "closed"}"#, 422),
            (r#"{"status": "snoozed", "snoozed_until": "2020-01-01T00:00:00Z"}"#, 422),
            (r#"{"priority": "meh"}"#, 400),
            (r#"{"tags": {"add": ["a#b"]}}"#, 422),
            (r#"{"colour": "red"}"#, 400),
        ] {
            assert_eq!(patch(&w, c, ALICE, body).await.0, want, "{body}");
        }
        assert_eq!(patch(&w, c, ("fay", Role::Finance), r#"{"priority": "low"}"#).await.0, 403);

        // A timer that cannot start is a 503; the same request again starts it.
        let later = (time::OffsetDateTime::now_utc() + time::Duration::hours(5))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let body = format!(r#"{{"status": "snoozed", "snoozed_until": "{later}"}}"#);
        w.timers.fail(true);
        assert_eq!(patch(&w, c, ALICE, &body).await.0, 503);
        w.timers.fail(false);
        let (status, res) = patch(&w, c, ALICE, &body).await;
        assert_eq!((status, res["changed"].clone()), (200, serde_json::json!(false)));
        assert_eq!(w.timers.started().len(), 2);
        assert_eq!(patch(&w, ConversationId::new(), ALICE, r#"{"priority": "low"}"#).await.0, 404);
    }

    #[tokio::test]
    async fn the_fixture_request_is_served() {
        let w = world();
        let ws = WorkspaceId::parse("demo").unwrap();
        let conv = ConversationId::parse("01JD3XQ7Z9K2M4N6P8R0S2T4V6").unwrap();
        store::contract::seed_queued_reply(w.store.as_ref(), &ws, "+14155552671", Some(conv), None).await;
        let deps = deps(w.store.clone(), "fixture-jwt-secret", w.timers.clone());
        let req = lambda_http::request::from_str(include_str!("../../../events/api-update-conversation/resolve.json"))
            .unwrap();
        let res = handle(&deps, req).await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.body());
    }
}
