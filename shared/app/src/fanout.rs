//! Fan-out: an event of the notification queue pushed to exactly the agent connections that
//! should see it (`domain::realtime::audience`), and an agent's typing or "seen" to the web chat
//! visitor's tabs. A 410 Gone removes that connection; stale connections (past API Gateway's
//! limits) are removed when met.
//!
//! A push is best-effort: a connection that fails for another reason is logged and skipped, never
//! retried through the queue (which would repeat the frame to every other connection); clients
//! re-read through the REST API when they reconnect. Store failures are errors (the event is
//! redelivered).

use domain::events::Notification;
use domain::ports::{AgentStore, ConnectionPusher, ConnectionStore, ConversationReader, PushError, VisitorStore};
use domain::realtime::{audience, reach, Push, Reach};
use time::OffsetDateTime;

use crate::Error;

/// What fanning out needs from the store.
pub trait FanOutPorts: ConversationReader + ConnectionStore + AgentStore + VisitorStore {}
impl<T: ConversationReader + ConnectionStore + AgentStore + VisitorStore + ?Sized> FanOutPorts for T {}

/// The connection lists (`domain::realtime::Reach`) a batch of events has read, each read once
/// for the batch: every event of a batch was queued before the batch was received, so one read is
/// as fresh for all of them, and a busy workspace's overseers (or everyone, for unassigned work)
/// are read once per batch instead of once per event.
#[derive(Default)]
pub struct ConnectionSnapshot {
    lists: std::sync::Mutex<ConnectionLists>,
}

type ConnectionLists = std::collections::HashMap<(domain::WorkspaceId, Reach), Vec<domain::realtime::Connection>>;

impl ConnectionSnapshot {
    fn lock(&self) -> std::sync::MutexGuard<'_, ConnectionLists> {
        // Plain data: a panic elsewhere cannot leave it half-written.
        self.lists.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn list<S: ConnectionStore + ?Sized>(
        &self,
        store: &S,
        ws: &domain::WorkspaceId,
        reach: &Reach,
    ) -> Result<Vec<domain::realtime::Connection>, domain::ports::StoreError> {
        let key = (ws.clone(), reach.clone());
        if let Some(known) = self.lock().get(&key) {
            return Ok(known.clone());
        }
        let read = match reach {
            Reach::Everyone => store.connections(ws).await?,
            Reach::Overseers => store.overseer_connections(ws).await?,
            Reach::Agent(a) => store.agent_connections(ws, a).await?,
            Reach::Watching(conv) => store.watching(ws, *conv).await?,
        };
        self.lock().insert(key, read.clone());
        Ok(read)
    }

    /// The connections of every list in `reach`, each once (read concurrently).
    async fn get<S: ConnectionStore + ?Sized>(
        &self,
        store: &S,
        ws: &domain::WorkspaceId,
        reach: &[Reach],
    ) -> Result<Vec<domain::realtime::Connection>, domain::ports::StoreError> {
        let lists = futures::future::try_join_all(reach.iter().map(|r| self.list(store, ws, r))).await?;
        let mut seen = std::collections::HashSet::new();
        Ok(lists.into_iter().flatten().filter(|c| seen.insert(c.id.clone())).collect())
    }

    /// A connection removed (gone or stale) is not pushed to again within the batch.
    fn forget(&self, ws: &domain::WorkspaceId, id: &domain::ConnectionId) {
        for ((w, _), known) in self.lock().iter_mut() {
            if w == ws {
                known.retain(|c| &c.id != id);
            }
        }
    }
}

/// The store and the two socket APIs.
pub struct Sockets<'a, S: ?Sized> {
    pub store: &'a S,
    /// This batch's connections.
    pub connections: &'a ConnectionSnapshot,
    /// The agents' socket API.
    pub agents: &'a dyn ConnectionPusher,
    /// The web chat visitors' socket API: agents' typing and "seen" reach the visitor.
    pub visitors: &'a dyn ConnectionPusher,
}

/// What one event did: frames delivered, and connections removed (gone or stale).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FanOut {
    pub delivered: usize,
    pub removed: usize,
    pub failed: usize,
}

/// Pushes one event to the agents' sockets that should see it and, for an agent's activity in a
/// web chat, to the visitor's.
pub async fn fan_out<S: FanOutPorts + ?Sized>(
    sockets: &Sockets<'_, S>,
    event: &Notification,
    now: OffsetDateTime,
) -> Result<FanOut, Error> {
    let mut out = to_visitor(sockets, event, now).await?;
    let agents = to_agents(sockets, event, now).await?;
    out.delivered += agents.delivered;
    out.removed += agents.removed;
    out.failed += agents.failed;
    Ok(out)
}

/// What a web chat visitor sees of agents' activity: typing, and "seen" when an agent opens the
/// conversation. Only for a conversation the visitor chats in (its web chat route names them).
async fn to_visitor<S: FanOutPorts + ?Sized>(
    deps: &Sockets<'_, S>,
    event: &Notification,
    now: OffsetDateTime,
) -> Result<FanOut, Error> {
    use domain::channels::webchat::{self, VisitorFrame, VisitorId};
    use domain::events::Activity;
    let out = FanOut::default();
    let Notification::AgentActivity { workspace: ws, conversation_id, activity, .. } = event else { return Ok(out) };
    let frame = match activity {
        Activity::Typing => VisitorFrame::Typing { typing: true },
        Activity::StoppedTyping => VisitorFrame::Typing { typing: false },
        Activity::Viewing => VisitorFrame::Seen { at: now },
        Activity::StoppedViewing => return Ok(out),
    };
    let Some(conversation) = deps.store.conversation(ws, *conversation_id).await? else { return Ok(out) };
    let Some(seen) = conversation.channels.get(&domain::model::Channel::Webchat) else { return Ok(out) };
    let Ok(visitor) = VisitorId::parse(&seen.route.contact_address) else { return Ok(out) };
    let pushed = webchat::push_to_visitor(deps.store, deps.visitors, ws, &visitor, &frame).await?;
    Ok(FanOut { delivered: pushed.delivered, removed: pushed.removed, failed: pushed.failed })
}

async fn to_agents<S: FanOutPorts + ?Sized>(
    deps: &Sockets<'_, S>,
    event: &Notification,
    now: OffsetDateTime,
) -> Result<FanOut, Error> {
    let ws = event.workspace();
    // A message's event reads its conversation and the message in one request.
    let about_message = match event {
        Notification::MessageCreated { conversation_id, message_id, .. }
        | Notification::DeliveryStatusChanged { conversation_id, message_id, .. }
        | Notification::MessageUpdated { conversation_id, message_id, .. } => Some((*conversation_id, *message_id)),
        _ => None,
    };
    let (conversation, message) = match (about_message, event.conversation()) {
        (Some((conv, msg)), _) => deps.store.conversation_with_message(ws, conv, msg).await?,
        (None, Some(id)) => (deps.store.conversation(ws, id).await?, None),
        (None, None) => (None, None),
    };
    // Only the lists the audience can be in: for assigned work, its owner's tabs, the overseers'
    // and its watchers', not every agent's.
    let connections = deps.connections.get(deps.store, ws, &reach(event, conversation.as_ref())).await?;
    let mut out = FanOut::default();
    for stale in connections.iter().filter(|c| c.is_stale(now)) {
        deps.store.delete_connection(ws, &stale.id).await?;
        deps.connections.forget(ws, &stale.id);
        out.removed += 1;
        // Its sign-in expired while the socket is still open: close it (the console reconnects
        // with a fresh token, and with it any change of role).
        if stale.token_expires_at.is_some_and(|t| t <= now) {
            if let Err(e) = deps.agents.close(&stale.id).await {
                tracing::warn!(connection = %stale.id, error = %e, "closing an expired socket failed");
            }
        }
    }
    if connections.iter().all(|c| c.is_stale(now)) {
        return Ok(out);
    }
    // Teams only matter for unassigned work that has a team.
    let agents = match &conversation {
        Some(c) if c.assignee.is_none() && c.team.is_some() => deps.store.roster(ws).await?,
        _ => vec![],
    };
    let targets = audience(event, conversation.as_ref(), &connections, &agents, now);
    if targets.is_empty() {
        return Ok(out);
    }
    let frame = serde_json::to_vec(&Push { event, conversation: conversation.as_ref(), message: message.as_ref() })
        .map_err(|e| Error::Invalid(format!("the frame does not serialize: {e}")))?;
    let results = futures::future::join_all(targets.iter().map(|id| deps.agents.push(id, &frame))).await;
    for (id, result) in targets.iter().zip(results) {
        match result {
            Ok(()) => out.delivered += 1,
            Err(PushError::Gone) => {
                deps.store.delete_connection(ws, id).await?;
                deps.connections.forget(ws, id);
                out.removed += 1;
            }
            Err(PushError::Failed(e)) => {
                tracing::warn!(workspace = %ws, connection = %id, error = %e, "push failed; the client re-reads on reconnect");
                out.failed += 1;
            }
        }
    }
    tracing::info!(workspace = %ws, delivered = out.delivered, removed = out.removed, failed = out.failed, "event pushed");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::model::Role;
    use domain::ports::{ConnectionStore, ConversationReader, RoutingStore};
    use domain::realtime::Connection;
    use domain::{AgentId, ConnectionId, WorkspaceId};
    use std::sync::{Arc, Mutex};
    use store::MemoryStore;

    /// Records frames; some connections are gone, some fail.
    #[derive(Default)]
    struct Recorder {
        frames: Mutex<Vec<(String, serde_json::Value)>>,
        gone: Vec<String>,
        broken: Vec<String>,
    }

    #[async_trait::async_trait]
    impl ConnectionPusher for Recorder {
        async fn push(&self, id: &ConnectionId, frame: &[u8]) -> Result<(), PushError> {
            if self.gone.contains(&id.to_string()) {
                return Err(PushError::Gone);
            }
            if self.broken.contains(&id.to_string()) {
                return Err(PushError::Failed("socket error".into()));
            }
            self.frames.lock().unwrap().push((id.to_string(), serde_json::from_slice(frame).unwrap()));
            Ok(())
        }
    }

    fn conn(id: &str, agent: &str, role: Role, now: OffsetDateTime) -> Connection {
        Connection {
            id: ConnectionId::parse(id).unwrap(),
            workspace: WorkspaceId::parse("demo").unwrap(),
            agent: AgentId::parse(agent).unwrap(),
            name: None,
            role,
            connected_at: now,
            last_seen_at: now,
            viewing: None,
            subscriptions: Default::default(),
            token_expires_at: None,
        }
    }

    #[tokio::test]
    async fn a_new_message_reaches_the_right_tabs_and_gone_ones_are_removed() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("demo").unwrap();
        let now = OffsetDateTime::now_utc();
        let (_, mut conv) = store::contract::seed_conversation(&*store, &ws, 1, now).await;
        // Hand the conversation to ann.
        let mut owned = conv.clone();
        owned.assignee = Some(AgentId::parse("ann").unwrap());
        owned.version += 1;
        store
            .commit_routing(domain::ports::RoutingCommit {
                conversation: owned.clone(),
                expected_version: conv.version,
                take: None,
                give_back: None,
                queue: domain::ports::QueueChange::Keep,
                audit: None,
            })
            .await
            .unwrap();
        conv = owned;
        let msg = store.messages(&ws, conv.id, domain::ports::Order::Oldest, 1, None).await.unwrap().items.remove(0);
        let mut stale = conn("ann-old", "ann", Role::Agent, now - time::Duration::hours(3));
        stale.last_seen_at = now - time::Duration::hours(3);
        for c in [
            conn("ann-1", "ann", Role::Agent, now),
            conn("ann-2", "ann", Role::Agent, now),
            conn("ann-gone", "ann", Role::Agent, now),
            conn("ann-broken", "ann", Role::Agent, now),
            conn("bob-1", "bob", Role::Agent, now),
            conn("sue-1", "sue", Role::Supervisor, now),
            stale,
        ] {
            store.put_connection(&c).await.unwrap();
        }
        let sockets = Arc::new(Recorder {
            gone: vec!["ann-gone".into()],
            broken: vec!["ann-broken".into()],
            ..Default::default()
        });
        let none = Recorder::default();
        let snapshot = super::ConnectionSnapshot::default();
        let deps = super::Sockets { store: &*store, connections: &snapshot, agents: &*sockets, visitors: &none };
        let event = Notification::MessageCreated {
            workspace: ws.clone(),
            conversation_id: conv.id,
            message_id: msg.id,
            direction: domain::model::Direction::Inbound,
            channel: domain::model::Channel::Sms,
            opened: false,
        };
        let out = fan_out(&deps, &event, now).await.unwrap();
        assert_eq!(out, FanOut { delivered: 3, removed: 2, failed: 1 });
        let frames = sockets.frames.lock().unwrap().clone();
        let mut ids: Vec<&str> = frames.iter().map(|(id, _)| id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["ann-1", "ann-2", "sue-1"], "bob does not see ann's conversation");
        assert_eq!(frames[0].1["event"]["type"], "message_created");
        assert_eq!(frames[0].1["message"]["text"], "hello", "the message rides along");
        assert_eq!(frames[0].1["conversation"]["assignee"], "ann");
        let left: Vec<String> = store.connections(&ws).await.unwrap().into_iter().map(|c| c.id.to_string()).collect();
        assert!(!left.contains(&"ann-gone".to_owned()) && !left.contains(&"ann-old".to_owned()));
        assert_eq!(left.len(), 5);

        // The next event of the same batch reuses the batch's read of the connections: a tab
        // opened since is not read (the next batch sees it), and what was removed is not tried.
        store.put_connection(&conn("ann-3", "ann", Role::Agent, now)).await.unwrap();
        sockets.frames.lock().unwrap().clear();
        let out = fan_out(&deps, &event, now).await.unwrap();
        assert_eq!(out, FanOut { delivered: 3, removed: 0, failed: 1 });
        let next = super::ConnectionSnapshot::default();
        let fresh = super::Sockets { connections: &next, ..deps };
        assert_eq!(fan_out(&fresh, &event, now).await.unwrap().delivered, 4, "the next batch reads ann-3");
    }

    #[tokio::test]
    async fn an_agent_typing_or_opening_a_web_chat_reaches_the_visitors_tabs() {
        use domain::channels::webchat::VisitorId;
        use domain::events::Activity;
        use domain::ports::VisitorStore;
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("demo").unwrap();
        let now = OffsetDateTime::now_utc();
        let visitor = VisitorId::new();
        let conv = store::contract::seed_visitor_message(&*store, &ws, &visitor, "hello").await;
        for id in ["tab-1", "tab-gone"] {
            store::contract::seed_visitor_socket(&*store, &ws, &visitor, id).await;
        }
        let visitors = Arc::new(Recorder { gone: vec!["tab-gone".into()], ..Default::default() });
        let none = Recorder::default();
        let snapshot = super::ConnectionSnapshot::default();
        let deps = super::Sockets { store: &*store, connections: &snapshot, agents: &none, visitors: &*visitors };
        let activity = |activity| Notification::AgentActivity {
            workspace: ws.clone(),
            conversation_id: conv.id,
            agent: AgentId::parse("ann").unwrap(),
            name: Some("Ann".into()),
            activity,
            id: ulid_like(),
        };
        let out = fan_out(&deps, &activity(Activity::Typing), now).await.unwrap();
        assert_eq!((out.delivered, out.removed), (1, 1));
        fan_out(&deps, &activity(Activity::Viewing), now).await.unwrap();
        fan_out(&deps, &activity(Activity::StoppedViewing), now).await.unwrap();
        let frames: Vec<serde_json::Value> = visitors.frames.lock().unwrap().iter().map(|(_, f)| f.clone()).collect();
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert_eq!((frames[0]["type"].as_str(), frames[0]["typing"].as_bool()), (Some("typing"), Some(true)));
        assert_eq!(frames[1]["type"], "seen");
        assert!(frames.iter().all(|f| f.get("agent").is_none()), "the visitor sees no agent ids");
        assert_eq!(store.visitor_connections(&ws, &visitor).await.unwrap().len(), 1, "the gone tab is forgotten");
    }

    fn ulid_like() -> String {
        format!("{}", OffsetDateTime::now_utc().unix_timestamp_nanos())
    }
}
