//! A container's memory of what every message reads of a workspace: routing rules, teams and
//! budgets, and (for at most [`ROSTER_TTL`]) the routing roster. At one workspace's 10,000
//! messages a second those reads alone would take a partition several times over
//! (docs/scaling.md); remembered, each container reads them once per TTL. A change made through
//! this store is seen at once by it, and by every other container within the TTL (the trade an
//! eventually consistent read makes, a little longer).
//!
//! Off unless asked for ([`DynamoStore::with_settings_cache`]): the inbound processor turns it on
//! (`SETTINGS_CACHE_SECONDS`, 5 in the template).
//!
//! [`DynamoStore::with_settings_cache`]: super::DynamoStore::with_settings_cache

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use domain::finance::Budget;
use domain::routing::{AgentState, RoutingRules, Team};
use domain::{AgentId, WorkspaceId};

/// The roster changes with every assignment: remembered a second at most. Choosing from it is
/// safe (an assignment is conditional on the agent being online with room; a refused one forgets
/// it; a decision to wait reads it again), and this container's own assignments and releases are
/// applied to it as they commit.
pub(crate) const ROSTER_TTL: Duration = Duration::from_secs(1);

/// One kind of setting, by workspace, with when it was read.
pub(crate) struct Remembered<T> {
    ttl: Duration,
    by_workspace: Mutex<HashMap<WorkspaceId, (Instant, T)>>,
}

impl<T: Clone> Remembered<T> {
    fn new(ttl: Duration) -> Self {
        Self { ttl, by_workspace: Mutex::default() }
    }

    /// What is remembered of `ws`, if still fresh.
    pub(crate) fn fresh(&self, ws: &WorkspaceId) -> Option<T> {
        self.lock().get(ws).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }

    pub(crate) fn keep(&self, ws: &WorkspaceId, value: T) {
        self.lock().insert(ws.clone(), (Instant::now(), value));
    }

    pub(crate) fn forget(&self, ws: &WorkspaceId) {
        self.lock().remove(ws);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WorkspaceId, (Instant, T)>> {
        // Plain data: a panic elsewhere cannot leave it half-written.
        self.by_workspace.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Remembered<Vec<AgentState>> {
    /// Applies a committed change of an agent's load to the remembered roster.
    pub(crate) fn loaded(&self, ws: &WorkspaceId, agent: &AgentId, change: impl Fn(&mut AgentState)) {
        if let Some((_, roster)) = self.lock().get_mut(ws) {
            roster.iter_mut().filter(|a| &a.id == agent).for_each(change);
        }
    }
}

pub(crate) struct SettingsCache {
    pub(crate) rules: Remembered<RoutingRules>,
    pub(crate) teams: Remembered<Vec<Team>>,
    pub(crate) budgets: Remembered<Vec<Budget>>,
    pub(crate) roster: Remembered<Vec<AgentState>>,
}

impl SettingsCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            rules: Remembered::new(ttl),
            teams: Remembered::new(ttl),
            budgets: Remembered::new(ttl),
            roster: Remembered::new(ttl.min(ROSTER_TTL)),
        }
    }
}
