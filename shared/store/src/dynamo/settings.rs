//! A container's memory of a workspace's settings that every new conversation's routing reads:
//! routing rules, teams and the agents' roster (read through the store, by the domain's routing service). At one
//! workspace's 10,000 messages a second those reads alone would take a partition several times over (docs/scaling.md); remembered for a few seconds, each container
//! reads them once per TTL. A change made through this store is seen at once by it, and by every
//! other container within the TTL (the trade an eventually consistent read makes, a little longer).
//!
//! Off unless asked for ([`DynamoStore::with_settings_cache`]): the inbound processor turns it on
//! (`SETTINGS_CACHE_SECONDS`, 5 in the template).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use domain::ports::StoreError;
use domain::routing::{AgentState, RoutingRules, Team};
use domain::WorkspaceId;

type Remembered<T> = Mutex<HashMap<WorkspaceId, (Instant, T)>>;

pub(crate) struct SettingsCache {
    ttl: Duration,
    pub(crate) rules: Remembered<RoutingRules>,
    pub(crate) teams: Remembered<Vec<Team>>,
    /// The agents' profiles (the roster, loads apart: routing reads its candidates' loads fresh).
    pub(crate) roster: Remembered<Vec<AgentState>>,
}

impl SettingsCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self { ttl, rules: Mutex::default(), teams: Mutex::default(), roster: Mutex::default() }
    }

    /// What `which` remembers of `ws` if still fresh, else what `read` reads (then remembered).
    pub(crate) async fn remembered<T, F, Fut>(
        &self,
        which: &Remembered<T>,
        ws: &WorkspaceId,
        read: F,
    ) -> Result<T, StoreError>
    where
        T: Clone,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let fresh = lock(which).get(ws).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone());
        if let Some(known) = fresh {
            return Ok(known);
        }
        let value = read().await?;
        lock(which).insert(ws.clone(), (Instant::now(), value.clone()));
        Ok(value)
    }

    pub(crate) fn forget<T>(&self, which: &Remembered<T>, ws: &WorkspaceId) {
        lock(which).remove(ws);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data: a panic elsewhere cannot leave it half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
