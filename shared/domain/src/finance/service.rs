//! Finance steps every function shares, written against the ports: the rate card in force (cached
//! for a minute per workspace), budget alerts after a cost was written, and the hard stop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::budget::Budget;
use super::ledger::Month;
use super::pricing::is_paid;
use super::ratecard::{effective_at, RateCard};
use crate::events::Notification;
use crate::ids::WorkspaceId;
use crate::model::Channel;
use crate::ports::{BudgetStore, CostLedger, NotificationQueue, QueueError, RateCardStore, StoreError};

/// A workspace's rate-card versions, re-read at most once a minute: a new version applies within
/// a minute, and every cost names the version it used either way.
type CardsByWorkspace = HashMap<WorkspaceId, (Instant, Arc<Vec<RateCard>>)>;

pub struct RateCardCache {
    ttl: Duration,
    cards: Mutex<CardsByWorkspace>,
}

impl Default for RateCardCache {
    fn default() -> Self {
        Self::new(Duration::from_secs(60))
    }
}

impl RateCardCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, cards: Mutex::new(HashMap::new()) }
    }

    /// The card in force at `at` for `ws`.
    pub async fn card_at<S: RateCardStore + ?Sized>(
        &self,
        store: &S,
        ws: &WorkspaceId,
        at: OffsetDateTime,
    ) -> Result<RateCard, StoreError> {
        let cached = self.lock().get(ws).filter(|(t, _)| t.elapsed() < self.ttl).map(|(_, c)| c.clone());
        let cards = match cached {
            Some(c) => c,
            None => {
                let fresh = Arc::new(store.rate_cards(ws).await?);
                self.lock().insert(ws.clone(), (Instant::now(), fresh.clone()));
                fresh
            }
        };
        Ok(effective_at(&cards, at))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CardsByWorkspace> {
        // The map holds plain data; a panic elsewhere cannot leave it half-written.
        self.cards.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BudgetCheckError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// After a cost was written to `month` on `channel`: one alert for each threshold of a covering
/// budget that spend has reached and that has not alerted yet this month.
///
/// Thresholds are level-triggered: a check that fails (or a crash) is caught up by the next cost
/// write's check. The marker is claimed before the alert is published and released if publishing
/// fails; the alert's deduplication id makes a concurrent double publish one message.
/// `budgets` are the workspace's budgets as the caller read them (a reply reads them once for
/// the hard stop and this check).
pub async fn check_budgets<L: CostLedger + ?Sized, A: BudgetStore + ?Sized>(
    ledger: &L,
    alerts: &A,
    notify: &dyn NotificationQueue,
    budgets: &[Budget],
    ws: &WorkspaceId,
    month: Month,
    channel: Channel,
) -> Result<Vec<Notification>, BudgetCheckError> {
    let covering: Vec<&Budget> = budgets.iter().filter(|b| b.covers(channel)).collect();
    if covering.is_empty() {
        return Ok(vec![]);
    }
    let alerted = alerts.alerted(ws, month).await?;
    let mut sent = Vec::new();
    for b in covering {
        let spent = ledger.spend(ws, month, b.scope).await?.estimated_micros();
        for t in b.reached(spent) {
            if alerted.contains(&(b.scope, t)) || !alerts.claim_alert(ws, month, b.scope, t).await? {
                continue;
            }
            let alert = Notification::BudgetThresholdReached {
                workspace: ws.clone(),
                month,
                scope: b.scope,
                threshold_percent: t,
                spent_micros: spent,
                limit_micros: b.monthly_limit_micros,
                currency: b.currency.clone(),
                hard_stop: b.hard_stop,
            };
            if let Err(e) = notify.publish(&alert).await {
                alerts.release_alert(ws, month, b.scope, t).await?;
                return Err(e.into());
            }
            sent.push(alert);
        }
    }
    Ok(sent)
}

/// Why a paid send must be refused this month, if a hard-stop budget covering `channel` is spent.
pub async fn hard_stop<L: CostLedger + ?Sized>(
    ledger: &L,
    budgets: &[Budget],
    ws: &WorkspaceId,
    month: Month,
    channel: Channel,
) -> Result<Option<String>, StoreError> {
    if !is_paid(channel) {
        return Ok(None);
    }
    for b in budgets.iter().filter(|b| b.hard_stop && b.covers(channel)) {
        let spent = ledger.spend(ws, month, b.scope).await?.estimated_micros();
        if b.refuses(spent) {
            return Ok(Some(format!(
                "the {} budget for {month} is spent ({} of {} {}) and stops paid sends; free channels still work",
                b.scope.as_str(),
                super::money::format_micros(spent),
                super::money::format_micros(b.monthly_limit_micros),
                b.currency
            )));
        }
    }
    Ok(None)
}
