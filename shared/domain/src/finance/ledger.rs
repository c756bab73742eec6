//! The cost ledger: immutable entries, each adding its totals to a handful of monthly counters.
//!
//! An entry's identity is its message and its kind, so a retried write finds it already there and
//! adds nothing. Entries and counters are placed by the month (and day) the *message* was created,
//! not by when the entry was written: a retry after midnight lands on the same key, and a
//! November message reconciled on 2 December stays a November cost.

use std::fmt;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use super::money::{Currency, Micros};
use super::pricing::CostLine;
use super::usage::Usage;
use crate::error::ParseError;
use crate::ids::{AgentId, ContactId, ConversationId, MessageId, WorkspaceId};
use crate::model::{Channel, Direction};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// The provider estimate and the AWS share measured so far, written with the message itself.
    Estimate,
    /// AWS usage spent later in the message's life (sending it).
    Usage,
    /// The price the provider reported: kept beside the estimate, never replacing it.
    Actual,
    /// The provider's fee for a message that failed.
    FailedFee,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Estimate => "estimate",
            EntryKind::Usage => "usage",
            EntryKind::Actual => "actual",
            EntryKind::FailedFee => "failed_fee",
        }
    }
}

/// What an entry adds to every counter it touches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Totals {
    /// Messages (only an estimate counts one).
    pub messages: i64,
    /// Estimated provider cost.
    pub provider_micros: Micros,
    /// AWS share.
    pub aws_micros: Micros,
    /// Provider-reported cost, for the messages it was reported for.
    pub actual_micros: Micros,
    /// Messages with a provider-reported cost.
    pub reconciled: i64,
}

impl Totals {
    /// Estimated total: provider estimate plus AWS share. Budgets are checked against this.
    pub fn estimated_micros(&self) -> Micros {
        self.provider_micros + self.aws_micros
    }
}

impl Add for Totals {
    type Output = Totals;
    fn add(self, o: Totals) -> Totals {
        Totals {
            messages: self.messages + o.messages,
            provider_micros: self.provider_micros + o.provider_micros,
            aws_micros: self.aws_micros + o.aws_micros,
            actual_micros: self.actual_micros + o.actual_micros,
            reconciled: self.reconciled + o.reconciled,
        }
    }
}
impl AddAssign for Totals {
    fn add_assign(&mut self, o: Totals) {
        *self = *self + o;
    }
}

/// A calendar month, `YYYY-MM`: the period of every report and budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Month {
    pub year: i32,
    pub month: time::Month,
}

crate::string_schema!(Month, "A calendar month, YYYY-MM");

impl Month {
    pub fn of(at: OffsetDateTime) -> Month {
        let d = at.to_offset(time::UtcOffset::UTC).date();
        Month { year: d.year(), month: d.month() }
    }
    pub fn parse(s: &str) -> Result<Month, ParseError> {
        let invalid = || ParseError::Invalid { kind: "month", reason: format!("{s:?} is not a month like 2026-11") };
        let (y, m) = s.split_once('-').ok_or_else(invalid)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(invalid());
        }
        let year: i32 = y.parse().map_err(|_| invalid())?;
        let month: u8 = m.parse().map_err(|_| invalid())?;
        let month = time::Month::try_from(month).map_err(|_| invalid())?;
        Ok(Month { year, month })
    }
    /// The month after this one.
    pub fn next(self) -> Month {
        match self.month {
            time::Month::December => Month { year: self.year + 1, month: time::Month::January },
            m => Month { year: self.year, month: m.next() },
        }
    }
    /// Every month from this one through `last` (empty when `last` is earlier).
    pub fn through(self, last: Month) -> Vec<Month> {
        let mut out = vec![];
        let mut m = self;
        while m <= last {
            out.push(m);
            m = m.next();
        }
        out
    }
    /// Every day of the month.
    pub fn days(self) -> Vec<Date> {
        let mut out = Vec::with_capacity(31);
        let Ok(mut d) = Date::from_calendar_date(self.year, self.month, 1) else { return out };
        while d.month() == self.month {
            out.push(d);
            match d.next_day() {
                Some(n) => d = n,
                None => break,
            }
        }
        out
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, u8::from(self.month))
    }
}
impl TryFrom<String> for Month {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}
impl From<Month> for String {
    fn from(m: Month) -> String {
        m.to_string()
    }
}

/// One way to slice the monthly totals. Each entry adds to one counter of every dimension.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Dimension {
    Total,
    Channel {
        channel: Channel,
        direction: Direction,
    },
    /// `None`: work no team owned.
    Team {
        team: Option<String>,
    },
    /// `None`: messages no agent handled (an unassigned conversation's inbound messages).
    Agent {
        agent: Option<AgentId>,
    },
    Conversation {
        conversation: ConversationId,
    },
    Contact {
        contact: ContactId,
    },
}

/// The report groupings, as `?by=` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Grouping {
    Total,
    Channel,
    Team,
    Agent,
    Conversation,
    Contact,
}

impl Grouping {
    pub const ALL: [Grouping; 6] = [
        Grouping::Total,
        Grouping::Channel,
        Grouping::Team,
        Grouping::Agent,
        Grouping::Conversation,
        Grouping::Contact,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Grouping::Total => "total",
            Grouping::Channel => "channel",
            Grouping::Team => "team",
            Grouping::Agent => "agent",
            Grouping::Conversation => "conversation",
            Grouping::Contact => "contact",
        }
    }
    pub fn parse(s: &str) -> Result<Grouping, ParseError> {
        Self::ALL.into_iter().find(|g| g.as_str() == s).ok_or_else(|| ParseError::Invalid {
            kind: "grouping",
            reason: "expected total, channel, team, agent, conversation or contact".into(),
        })
    }
}

impl Dimension {
    pub fn grouping(&self) -> Grouping {
        match self {
            Dimension::Total => Grouping::Total,
            Dimension::Channel { .. } => Grouping::Channel,
            Dimension::Team { .. } => Grouping::Team,
            Dimension::Agent { .. } => Grouping::Agent,
            Dimension::Conversation { .. } => Grouping::Conversation,
            Dimension::Contact { .. } => Grouping::Contact,
        }
    }
}

/// An immutable cost entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LedgerEntry {
    pub workspace: WorkspaceId,
    pub kind: EntryKind,
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub contact_id: ContactId,
    pub agent: Option<AgentId>,
    pub team: Option<String>,
    pub channel: Channel,
    pub direction: Direction,
    /// When the message was created: places the entry in its month and day.
    #[serde(with = "time::serde::rfc3339")]
    pub message_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    pub currency: Currency,
    pub rate_card_version: u32,
    pub totals: Totals,
    #[serde(default)]
    pub lines: Vec<CostLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl LedgerEntry {
    pub fn month(&self) -> Month {
        Month::of(self.message_at)
    }
    pub fn day(&self) -> Date {
        self.message_at.to_offset(time::UtcOffset::UTC).date()
    }
    /// Every counter this entry adds to.
    pub fn dimensions(&self) -> [Dimension; 6] {
        [
            Dimension::Total,
            Dimension::Channel { channel: self.channel, direction: self.direction },
            Dimension::Team { team: self.team.clone() },
            Dimension::Agent { agent: self.agent.clone() },
            Dimension::Conversation { conversation: self.conversation_id },
            Dimension::Contact { contact: self.contact_id },
        ]
    }
}

/// The cost summary kept on a message: the estimate, the AWS share, and the provider's price once
/// it reports one (beside the estimate, never replacing it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageCost {
    /// Who the cost is attributed to, as the estimate counted it; later entries follow it.
    pub contact_id: ContactId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    pub currency: Currency,
    pub rate_card_version: u32,
    pub provider_micros: Micros,
    pub aws_micros: Micros,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_micros: Option<Micros>,
    #[serde(default)]
    pub lines: Vec<CostLine>,
}

/// A counter as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Counter {
    pub dimension: Dimension,
    pub totals: Totals,
}

/// Where counters and entries disagree, found by summing the entries of a month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Mismatch {
    pub dimension: Dimension,
    pub counter: Totals,
    pub entries: Totals,
}

/// Sums `entries` by every dimension and compares with `counters`: empty when they agree.
pub fn reconcile(entries: &[LedgerEntry], counters: &[Counter]) -> Vec<Mismatch> {
    use std::collections::BTreeMap;
    let mut sums: BTreeMap<Dimension, Totals> = BTreeMap::new();
    for e in entries {
        for d in e.dimensions() {
            *sums.entry(d).or_default() += e.totals;
        }
    }
    let mut stored: BTreeMap<Dimension, Totals> = BTreeMap::new();
    for c in counters {
        *stored.entry(c.dimension.clone()).or_default() += c.totals;
    }
    let mut dims: Vec<&Dimension> = sums.keys().chain(stored.keys()).collect();
    dims.sort();
    dims.dedup();
    dims.into_iter()
        .filter_map(|d| {
            let counter = stored.get(d).copied().unwrap_or_default();
            let entries = sums.get(d).copied().unwrap_or_default();
            (counter != entries).then(|| Mismatch { dimension: d.clone(), counter, entries })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    pub(crate) fn entry(kind: EntryKind, totals: Totals, at: OffsetDateTime) -> LedgerEntry {
        LedgerEntry {
            workspace: WorkspaceId::parse("demo").unwrap(),
            kind,
            message_id: MessageId::new(),
            conversation_id: ConversationId::new(),
            contact_id: ContactId::new(),
            agent: None,
            team: None,
            channel: Channel::Sms,
            direction: Direction::Outbound,
            message_at: at,
            recorded_at: at,
            currency: Currency::usd(),
            rate_card_version: 0,
            totals,
            lines: vec![],
            usage: None,
        }
    }

    #[test]
    fn months_parse_print_and_list_their_days() {
        let m = Month::parse("2026-02").unwrap();
        assert_eq!(m.to_string(), "2026-02");
        assert_eq!(m.days().len(), 28);
        assert_eq!(Month::parse("2028-02").unwrap().days().len(), 29);
        assert_eq!(Month::parse("2026-12").unwrap().days().len(), 31);
        for bad in ["2026-13", "2026-1", "26-01", "2026/01", ""] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Month::of(datetime!(2026-11-30 23:59:59 -02:00)).to_string(), "2026-12");
    }

    #[test]
    fn reconcile_finds_what_counters_miss() {
        let t = Totals { messages: 1, provider_micros: 8300, aws_micros: 11, ..Totals::default() };
        let a = entry(EntryKind::Estimate, t, datetime!(2026-11-01 10:00 UTC));
        let b = entry(EntryKind::Estimate, t, datetime!(2026-11-02 10:00 UTC));
        let counters: Vec<Counter> = [&a, &b]
            .iter()
            .flat_map(|e| e.dimensions().into_iter().map(|d| Counter { dimension: d, totals: e.totals }))
            .collect();
        assert!(reconcile(&[a.clone(), b.clone()], &counters).is_empty());
        let missing = reconcile(&[a.clone(), b.clone()], &counters[..6]);
        // The total and channel counters are short by b; b's team and agent ("-") too; its
        // conversation and contact counters are missing.
        assert_eq!(missing.len(), 6);
        assert!(missing.iter().any(|m| m.dimension == Dimension::Total && m.counter.messages == 1));
    }
}
