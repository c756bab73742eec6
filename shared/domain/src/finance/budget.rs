//! Monthly budgets with alert thresholds and an optional hard stop.
//!
//! Spend is the estimated total (provider estimate plus AWS share) of the month's counters:
//! estimates are known the moment a message exists, provider prices only later. Each threshold
//! alerts once per month and scope: the store keeps a marker per (month, scope, threshold), and the
//! alert's deduplication id makes a retry within SQS's window a no-op.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::money::{Currency, Micros};
use crate::error::ParseError;
use crate::ids::AgentId;
use crate::model::Channel;

pub const DEFAULT_THRESHOLDS: [u8; 3] = [50, 80, 100];

/// What a budget covers: the whole workspace or one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BudgetScope {
    Workspace,
    Channel(Channel),
}

crate::string_schema!(BudgetScope, "What a budget caps: workspace, or a channel name");

impl BudgetScope {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s == "workspace" {
            return Ok(BudgetScope::Workspace);
        }
        Channel::parse(s).map(BudgetScope::Channel).map_err(|_| ParseError::Invalid {
            kind: "budget scope",
            reason: format!("{s:?}: expected \"workspace\" or a channel such as \"sms\""),
        })
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            BudgetScope::Workspace => "workspace",
            BudgetScope::Channel(c) => c.as_str(),
        }
    }
}

impl Serialize for BudgetScope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
impl<'de> Deserialize<'de> for BudgetScope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        BudgetScope::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Budget {
    pub scope: BudgetScope,
    pub currency: Currency,
    pub monthly_limit_micros: Micros,
    /// Percentages of the limit that alert, ascending.
    pub thresholds: Vec<u8>,
    /// Once spend reaches the limit, refuse paid sends (free channels keep working).
    pub hard_stop: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub updated_by: AgentId,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid budget: {0}")]
pub struct BudgetError(pub String);

impl Budget {
    /// Checks limits and thresholds (1..=1000 %, sorted and deduplicated; default 50 / 80 / 100).
    pub fn new(
        scope: BudgetScope,
        currency: Currency,
        monthly_limit_micros: Micros,
        thresholds: Option<Vec<u8>>,
        hard_stop: bool,
        by: AgentId,
        at: OffsetDateTime,
    ) -> Result<Budget, BudgetError> {
        if monthly_limit_micros <= 0 {
            return Err(BudgetError("monthly_limit must be greater than zero".into()));
        }
        let mut thresholds = thresholds.unwrap_or_else(|| DEFAULT_THRESHOLDS.to_vec());
        if thresholds.is_empty() || thresholds.len() > 10 {
            return Err(BudgetError("give between 1 and 10 thresholds".into()));
        }
        if thresholds.contains(&0) {
            return Err(BudgetError("thresholds are percentages from 1 to 255".into()));
        }
        thresholds.sort_unstable();
        thresholds.dedup();
        Ok(Budget { scope, currency, monthly_limit_micros, thresholds, hard_stop, updated_at: at, updated_by: by })
    }

    /// Every threshold `spent` has reached (the store's markers make each alert once).
    pub fn reached(&self, spent: Micros) -> Vec<u8> {
        self.thresholds
            .iter()
            .copied()
            .filter(|&t| i128::from(spent) * 100 >= i128::from(self.monthly_limit_micros) * i128::from(t))
            .collect()
    }

    /// Whether this budget refuses a paid send after `spent`.
    pub fn refuses(&self, spent: Micros) -> bool {
        self.hard_stop && spent >= self.monthly_limit_micros
    }

    /// Does this budget cover a message on `channel`?
    pub fn covers(&self, channel: Channel) -> bool {
        match self.scope {
            BudgetScope::Workspace => true,
            BudgetScope::Channel(c) => c == channel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn budget(limit: Micros, thresholds: Option<Vec<u8>>, hard_stop: bool) -> Budget {
        Budget::new(
            BudgetScope::Workspace,
            Currency::usd(),
            limit,
            thresholds,
            hard_stop,
            AgentId::parse("alice").unwrap(),
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap()
    }

    #[test]
    fn thresholds_default_sort_and_reach() {
        let b = budget(1_000_000, None, false);
        assert_eq!(b.thresholds, vec![50, 80, 100]);
        assert!(b.reached(499_999).is_empty());
        assert_eq!(b.reached(500_000), vec![50]);
        assert_eq!(b.reached(1_000_000), vec![50, 80, 100]);
        assert_eq!(budget(10, Some(vec![90, 10, 90]), false).thresholds, vec![10, 90]);
        assert!(Budget::new(
            BudgetScope::Workspace,
            Currency::usd(),
            0,
            None,
            false,
            AgentId::parse("a").unwrap(),
            OffsetDateTime::UNIX_EPOCH
        )
        .is_err());
    }

    #[test]
    fn hard_stop_refuses_only_at_the_limit() {
        let b = budget(1_000, None, true);
        assert!(!b.refuses(999));
        assert!(b.refuses(1_000));
        assert!(!budget(1_000, None, false).refuses(5_000));
        assert_eq!(BudgetScope::parse("sms").unwrap(), BudgetScope::Channel(Channel::Sms));
        assert!(BudgetScope::parse("fax").is_err());
        assert!(BudgetScope::Channel(Channel::Sms).as_str() == "sms");
    }

    proptest! {
        #[test]
        fn reached_is_monotonic_in_spend(limit in 1i64..10_000_000, a in 0i64..20_000_000, b in 0i64..20_000_000) {
            let bud = budget(limit, None, true);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let (rl, rh) = (bud.reached(lo), bud.reached(hi));
            prop_assert!(rl.iter().all(|t| rh.contains(t)));
            prop_assert_eq!(bud.refuses(hi) || !bud.refuses(lo), true);
        }
    }
}
