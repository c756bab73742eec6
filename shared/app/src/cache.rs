//! What a container may remember between invocations: data that changes rarely, read on every
//! message. A warm container serves it from memory, so a message costs no read for it; a change
//! reaches every container within the TTL (the same trade as an eventually consistent read).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::ports::{ChannelAccount, ChannelDirectory, StoreError};
use domain::{Channel, WorkspaceId};

/// How long a known channel account is remembered. Connecting a number takes effect at once in
/// the table; a container that looked it up as unknown sees it within [`MISS_TTL`].
pub const HIT_TTL: Duration = Duration::from_secs(300);
pub const MISS_TTL: Duration = Duration::from_secs(15);

type Entries = HashMap<(Channel, String), (Instant, Option<ChannelAccount>)>;

/// The channel directory with the container's memory in front: which workspace owns a number,
/// page or mailbox is read once per container and TTL, not once per message.
pub struct CachedDirectory {
    inner: Arc<dyn ChannelDirectory>,
    entries: Mutex<Entries>,
}

impl CachedDirectory {
    pub fn new(inner: Arc<dyn ChannelDirectory>) -> Self {
        Self { inner, entries: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // Plain data: a panic elsewhere cannot leave it half-written.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ChannelDirectory for CachedDirectory {
    async fn channel_account(&self, channel: Channel, address: &str) -> Result<Option<ChannelAccount>, StoreError> {
        let key = (channel, address.to_owned());
        if let Some((at, found)) = self.lock().get(&key) {
            let ttl = if found.is_some() { HIT_TTL } else { MISS_TTL };
            if at.elapsed() < ttl {
                return Ok(found.clone());
            }
        }
        let found = self.inner.channel_account(channel, address).await?;
        self.lock().insert(key, (Instant::now(), found.clone()));
        Ok(found)
    }

    async fn put_channel_account(&self, account: &ChannelAccount) -> Result<(), StoreError> {
        self.inner.put_channel_account(account).await?;
        self.lock().remove(&(account.channel, account.address.clone()));
        Ok(())
    }

    async fn connect_channel_account(&self, account: &ChannelAccount) -> Result<bool, StoreError> {
        let connected = self.inner.connect_channel_account(account).await?;
        self.lock().remove(&(account.channel, account.address.clone()));
        Ok(connected)
    }

    async fn disconnect_channel_account(
        &self,
        ws: &WorkspaceId,
        channel: Channel,
        address: &str,
    ) -> Result<Option<ChannelAccount>, StoreError> {
        let removed = self.inner.disconnect_channel_account(ws, channel, address).await?;
        self.lock().remove(&(channel, address.to_owned()));
        Ok(removed)
    }

    async fn channel_accounts(&self, ws: &WorkspaceId) -> Result<Vec<ChannelAccount>, StoreError> {
        self.inner.channel_accounts(ws).await
    }
}

/// A workspace's settings (help text, greeting, segment cap), remembered per container for
/// [`SETTINGS_TTL`]: the voice webhook and the send route read them on every call; an admin's
/// change reaches every container within a minute.
pub struct SettingsCache(TtlCache<WorkspaceId, Arc<domain::workspace::Settings>>);

pub const SETTINGS_TTL: Duration = Duration::from_secs(60);

impl Default for SettingsCache {
    fn default() -> Self {
        Self(TtlCache::new(SETTINGS_TTL))
    }
}

impl SettingsCache {
    pub async fn get<S: domain::ports::WorkspaceStore + ?Sized>(
        &self,
        store: &S,
        ws: &WorkspaceId,
    ) -> Result<Arc<domain::workspace::Settings>, StoreError> {
        self.0.get_or_load(ws, || async { Ok(Arc::new(store.workspace_settings(ws).await?)) }).await
    }
}

/// A workspace's budgets, remembered per container for [`BUDGET_TTL`], for the alert check after
/// every inbound message's cost write (level-triggered: a change seen a minute late alerts a minute
/// late). The spend they are compared with is always read fresh; the reply's hard stop reads the
/// budgets fresh too, so a budget finance raises lets replies through at once.
pub struct BudgetCache(TtlCache<WorkspaceId, Budgets>);

pub const BUDGET_TTL: Duration = Duration::from_secs(60);

type Budgets = Arc<Vec<domain::finance::Budget>>;

impl Default for BudgetCache {
    fn default() -> Self {
        Self(TtlCache::new(BUDGET_TTL))
    }
}

impl BudgetCache {
    pub async fn budgets<S: domain::ports::BudgetStore + ?Sized>(
        &self,
        store: &S,
        ws: &WorkspaceId,
    ) -> Result<Budgets, StoreError> {
        self.0.get_or_load(ws, || async { Ok(Arc::new(store.budgets(ws).await?)) }).await
    }
}

/// A value per key, remembered per container for a fixed time: the shape of every cache here.
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// The remembered value of `key`, or `load`'s (remembered from now on).
    pub async fn get_or_load<E, F, Fut>(&self, key: &K, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<V, E>>,
    {
        let lock = || self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, v)) = lock().get(key) {
            if at.elapsed() < self.ttl {
                return Ok(v.clone());
            }
        }
        let fresh = load().await?;
        lock().insert(key.clone(), (Instant::now(), fresh.clone()));
        Ok(fresh)
    }
}

/// What a web chat widget's availability is computed from (routing rules, teams, agents),
/// remembered for [`AVAILABILITY_TTL`]: every visitor message is answered with it, and a
/// presence change shows in the widget within that time.
pub type AvailabilityInputs =
    Arc<(domain::routing::RoutingRules, Vec<domain::routing::Team>, Vec<domain::routing::AgentState>)>;
pub const AVAILABILITY_TTL: Duration = Duration::from_secs(10);

/// The widget's availability for a visitor (`email_known`), from the cache or the store.
pub async fn availability<S: domain::ports::RoutingStore + domain::ports::AgentStore + ?Sized>(
    cache: &TtlCache<WorkspaceId, AvailabilityInputs>,
    store: &S,
    ws: &WorkspaceId,
    now: time::OffsetDateTime,
    email_known: bool,
) -> Result<domain::channels::webchat::Availability, StoreError> {
    let inputs = cache
        .get_or_load(ws, || async {
            Ok::<_, StoreError>(Arc::new((
                store.routing_rules(ws).await?,
                store.teams(ws).await?,
                store.roster(ws).await?,
            )))
        })
        .await?;
    let (rules, teams, agents) = &*inputs;
    Ok(domain::channels::webchat::availability(rules, teams, agents, now, email_known))
}

/// What ingest needs of a workspace's settings, read in one Query: the service levels with the
/// hours they count in, and the redaction policy with its patterns compiled.
pub struct Settings {
    pub setup: domain::sla::Setup,
    pub redactor: domain::redact::Redactor,
}

/// A workspace's [`Settings`], remembered for [`SLA_TTL`]: read by every inbound message (to mask
/// its text, and to start a clock). A policy change applies to messages and clocks after it (a
/// minute late at most); running clocks keep the due times they started with.
pub struct SlaCache(TtlCache<WorkspaceId, Arc<Settings>>);

pub const SLA_TTL: Duration = Duration::from_secs(60);

impl Default for SlaCache {
    fn default() -> Self {
        Self(TtlCache::new(SLA_TTL))
    }
}

impl SlaCache {
    pub async fn settings<S: domain::ports::RoutingStore + ?Sized>(
        &self,
        store: &S,
        ws: &WorkspaceId,
    ) -> Result<Arc<Settings>, StoreError> {
        self.0
            .get_or_load(ws, || async {
                let setup = store.sla_setup(ws).await?;
                let redactor = domain::redact::Redactor::new(&setup.privacy);
                Ok(Arc::new(Settings { setup, redactor }))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(store::MemoryStore, AtomicUsize);

    #[async_trait]
    impl ChannelDirectory for Counting {
        async fn channel_account(&self, c: Channel, a: &str) -> Result<Option<ChannelAccount>, StoreError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.channel_account(c, a).await
        }
        async fn put_channel_account(&self, account: &ChannelAccount) -> Result<(), StoreError> {
            self.0.put_channel_account(account).await
        }
        async fn connect_channel_account(&self, account: &ChannelAccount) -> Result<bool, StoreError> {
            self.0.connect_channel_account(account).await
        }
        async fn disconnect_channel_account(
            &self,
            ws: &WorkspaceId,
            c: Channel,
            a: &str,
        ) -> Result<Option<ChannelAccount>, StoreError> {
            self.0.disconnect_channel_account(ws, c, a).await
        }
        async fn channel_accounts(&self, ws: &WorkspaceId) -> Result<Vec<ChannelAccount>, StoreError> {
            self.0.channel_accounts(ws).await
        }
    }

    #[tokio::test]
    async fn one_read_per_container_and_a_change_through_it_is_seen_at_once() {
        let inner = Arc::new(Counting(store::MemoryStore::new(), AtomicUsize::new(0)));
        let cached = CachedDirectory::new(inner.clone());
        assert_eq!(cached.channel_account(Channel::Sms, "+14155550100").await.unwrap(), None);
        let account = ChannelAccount::new(WorkspaceId::parse("acme").unwrap(), Channel::Sms, "+14155550100");
        cached.put_channel_account(&account).await.unwrap();
        for _ in 0..5 {
            assert_eq!(cached.channel_account(Channel::Sms, "+14155550100").await.unwrap(), Some(account.clone()));
        }
        assert_eq!(inner.1.load(Ordering::SeqCst), 2, "the miss, then one read for five hits");
        // Disconnecting through the cache is seen at once too.
        assert!(cached
            .disconnect_channel_account(&account.workspace, Channel::Sms, "+14155550100")
            .await
            .unwrap()
            .is_some());
        assert_eq!(cached.channel_account(Channel::Sms, "+14155550100").await.unwrap(), None);
    }
}
