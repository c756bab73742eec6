//! Service levels: how fast a conversation must be answered and resolved, per channel and
//! priority, counted in business hours or calendar time — and the clocks that measure it.
//!
//! Two clocks run on a conversation ([`Sla`], stored on it so the inbox and reports read it
//! directly):
//! - the **response** clock starts when a customer message waits for an answer — the first
//!   response target for the conversation's first wait, the next response target after that — and
//!   stops at an agent's reply (automatic answers do not count);
//! - the **resolution** clock starts with the conversation (and again when it is reopened after
//!   being resolved) and stops when it is resolved.
//!
//! Both pause while the conversation is snoozed or pending on the customer and resume, with what
//! was left, when it opens again. Each start (or resume) gives the clock a new `id`; its timer
//! carries that id, so a timer of a clock that was stopped, paused or restarted since finds it
//! changed and does nothing — no timer ever has to be cancelled.
//!
//! Everything here is pure: the caller passes the policy, the calendar and the time.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::error::ParseError;
use crate::ids::{ConversationId, TeamId, WorkspaceId};
use crate::model::{Channel, Conversation, ConversationStatus, Priority};
use crate::routing::hours::BusinessHours;

/// The two clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClockKind {
    FirstResponse,
    NextResponse,
    Resolution,
}

impl ClockKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockKind::FirstResponse => "first_response",
            ClockKind::NextResponse => "next_response",
            ClockKind::Resolution => "resolution",
        }
    }
    fn slot(self) -> Slot {
        match self {
            ClockKind::FirstResponse | ClockKind::NextResponse => Slot::Response,
            ClockKind::Resolution => Slot::Resolution,
        }
    }
}

/// Which of the conversation's two clocks a timer watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    Response,
    Resolution,
}

/// Targets in seconds; `None`: no target for that clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Targets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_response_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_response_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution_secs: Option<u32>,
}

impl Targets {
    fn of(&self, kind: ClockKind) -> Option<u32> {
        match kind {
            ClockKind::FirstResponse => self.first_response_secs,
            ClockKind::NextResponse => self.next_response_secs,
            ClockKind::Resolution => self.resolution_secs,
        }
    }
}

/// Targets for a channel and/or a priority. The most specific rule that matches wins (channel and
/// priority, then channel, then priority, then the rule naming neither); a clock with no target
/// in it falls through to the next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(flatten)]
    pub targets: Targets,
}

/// Whether due times count every hour or only the conversation's business hours (its team's,
/// else the workspace's routing hours; always-open without either).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Counting {
    #[default]
    BusinessHours,
    Calendar,
}

/// What a breach does, besides telling the assignee and supervisors (always).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum BreachAction {
    /// One step up, up to urgent.
    RaisePriority,
    /// Taken from its owner and routed again — to `team` when given — so the next best agent
    /// who is online and has room takes it.
    Reroute {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        team: Option<TeamId>,
    },
}

/// A workspace's service levels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = SlaPolicy)]
pub struct Policy {
    /// Off: no clock starts (running ones finish as they were).
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_rules")]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub counting: Counting,
    /// When the warning fires, in percent of the target (50-99).
    #[serde(default = "default_warn")]
    pub warn_at_percent: u8,
    #[serde(default = "default_breach")]
    pub on_breach: Vec<BreachAction>,
    /// An agent away or offline this long gets their conversations with a waiting customer taken
    /// back and routed to someone online (`null`: never).
    #[serde(default = "default_away")]
    pub reroute_when_away_secs: Option<u32>,
}

fn default_away() -> Option<u32> {
    Some(5 * MINUTE)
}

fn yes() -> bool {
    true
}

fn default_warn() -> u8 {
    80
}

fn default_breach() -> Vec<BreachAction> {
    vec![BreachAction::RaisePriority]
}

const MINUTE: u32 = 60;
const HOUR: u32 = 60 * MINUTE;

/// The seeds' expectations: live chat answered in minutes, messaging apps within the hour, email
/// within a business day (eight business hours); voicemail is called back within four hours.
pub fn default_rules() -> Vec<Rule> {
    let rule = |channel, first, next, resolution| Rule {
        channel: Some(channel),
        priority: None,
        targets: Targets {
            first_response_secs: Some(first),
            next_response_secs: Some(next),
            resolution_secs: Some(resolution),
        },
    };
    let messaging = [Channel::Sms, Channel::Whatsapp, Channel::Messenger, Channel::Instagram, Channel::Telegram];
    let mut rules = vec![rule(Channel::Webchat, 5 * MINUTE, 5 * MINUTE, 8 * HOUR)];
    rules.extend(messaging.into_iter().map(|c| rule(c, HOUR, HOUR, 24 * HOUR)));
    rules.push(rule(Channel::Email, 8 * HOUR, 8 * HOUR, 24 * HOUR));
    rules.push(rule(Channel::Voice, 4 * HOUR, 4 * HOUR, 24 * HOUR));
    rules
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            enabled: true,
            rules: default_rules(),
            counting: Counting::default(),
            warn_at_percent: default_warn(),
            on_breach: default_breach(),
            reroute_when_away_secs: default_away(),
        }
    }
}

/// A target may be at most 90 days.
const MAX_TARGET_SECS: u32 = 90 * 24 * HOUR;

impl Policy {
    pub fn validate(&self, teams: &[crate::routing::Team]) -> Result<(), ParseError> {
        let bad = |reason: String| ParseError::Invalid { kind: "SLA policy", reason };
        if !(50..=99).contains(&self.warn_at_percent) {
            return Err(bad("warn_at_percent must be 50-99".into()));
        }
        if self.rules.len() > 100 {
            return Err(bad("at most 100 rules".into()));
        }
        let mut seen = BTreeSet::new();
        for r in &self.rules {
            if !seen.insert((r.channel, r.priority)) {
                return Err(bad(format!("two rules for channel {:?} and priority {:?}", r.channel, r.priority)));
            }
            for secs in [r.targets.first_response_secs, r.targets.next_response_secs, r.targets.resolution_secs]
                .into_iter()
                .flatten()
            {
                if secs == 0 || secs > MAX_TARGET_SECS {
                    return Err(bad("every target is 1 second to 90 days".into()));
                }
            }
        }
        if self.reroute_when_away_secs.is_some_and(|s| s == 0 || s > MAX_TARGET_SECS) {
            return Err(bad("reroute_when_away_secs is 1 second to 90 days, or null".into()));
        }
        let mut actions = std::collections::HashSet::new();
        for a in &self.on_breach {
            if !actions.insert(std::mem::discriminant(a)) {
                return Err(bad("each breach action at most once".into()));
            }
            if let BreachAction::Reroute { team: Some(t) } = a {
                if !teams.iter().any(|x| &x.id == t) {
                    return Err(bad(format!("no team {t} in this workspace")));
                }
            }
        }
        Ok(())
    }

    /// The target of `kind` for a conversation on `channel` at `priority`: the most specific
    /// matching rule that sets one.
    pub fn target(&self, kind: ClockKind, channel: Channel, priority: Priority) -> Option<u32> {
        let specificity = |r: &Rule| -> Option<u8> {
            let c = match r.channel {
                Some(x) if x == channel => 2,
                Some(_) => return None,
                None => 0,
            };
            let p = match r.priority {
                Some(x) if x == priority => 1,
                Some(_) => return None,
                None => 0,
            };
            Some(c + p)
        };
        self.rules
            .iter()
            .filter_map(|r| Some((specificity(r)?, r.targets.of(kind)?)))
            .max_by_key(|(specificity, _)| *specificity)
            .map(|(_, target)| target)
    }
}

/// One clock: running (`due_at` set), paused (`remaining_secs` set) or stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Clock {
    pub kind: ClockKind,
    /// Increases with every start and resume of this conversation's clocks: a timer names it.
    pub id: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub target_secs: u32,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub warn_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub due_at: Option<OffsetDateTime>,
    /// While paused: the counted time that was left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub warned: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub breached: bool,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub stopped_at: Option<OffsetDateTime>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Clocks keep whole seconds: Step Functions waits in seconds, and the conversation item (written
/// with every message, projected into the indexes) stays small.
fn whole_second(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

impl Clock {
    pub fn is_running(&self) -> bool {
        self.stopped_at.is_none() && self.due_at.is_some()
    }
    pub fn is_paused(&self) -> bool {
        self.stopped_at.is_none() && self.remaining_secs.is_some()
    }
}

/// A conversation's service-level state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Sla {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Clock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Clock>,
    /// When an agent first answered.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub first_response_at: Option<OffsetDateTime>,
    /// When it was last resolved.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    /// The clocks of this conversation that breached, ever.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub breaches: u32,
    /// The last clock id handed out.
    #[serde(default)]
    pub last_clock_id: u32,
}

impl Sla {
    fn clock_mut(&mut self, slot: Slot) -> &mut Option<Clock> {
        match slot {
            Slot::Response => &mut self.response,
            Slot::Resolution => &mut self.resolution,
        }
    }
    pub fn clock(&self, slot: Slot) -> Option<&Clock> {
        match slot {
            Slot::Response => self.response.as_ref(),
            Slot::Resolution => self.resolution.as_ref(),
        }
    }
    /// The earliest due time of a running clock that has not breached: what "breaching soon"
    /// sorts by.
    pub fn next_due(&self) -> Option<OffsetDateTime> {
        [&self.response, &self.resolution]
            .into_iter()
            .flatten()
            .filter(|c| c.is_running() && !c.breached)
            .filter_map(|c| c.due_at)
            .min()
    }
}

/// The timer of one running clock: its Step Functions execution's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Timer {
    pub workspace: WorkspaceId,
    pub conversation_id: ConversationId,
    pub slot: Slot,
    pub clock_id: u32,
    /// RFC 3339 in UTC (`Z`), as Step Functions' `TimestampPath` reads it.
    #[serde(with = "time::serde::rfc3339")]
    pub warn_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
}

impl Timer {
    /// Unique to the conversation and clock (Step Functions execution names: at most 80 of
    /// `[A-Za-z0-9-_]`), so starting the same timer twice starts it once.
    pub fn name(&self) -> String {
        let slot = match self.slot {
            Slot::Response => "r",
            Slot::Resolution => "s",
        };
        format!("sla-{}-{slot}-{}", self.conversation_id, self.clock_id)
    }
}

/// The timers a conversation's running clocks need (started idempotently by name: a redelivery
/// after a crash starts the same ones again, harmlessly).
pub fn timers(c: &Conversation) -> Vec<Timer> {
    [Slot::Response, Slot::Resolution]
        .into_iter()
        .filter_map(|slot| {
            let clock = c.sla.clock(slot)?;
            if !clock.is_running() || clock.breached {
                return None;
            }
            Some(Timer {
                workspace: c.workspace.clone(),
                conversation_id: c.id,
                slot,
                clock_id: clock.id,
                warn_at: clock.warn_at?,
                due_at: clock.due_at?,
            })
        })
        .collect()
}

/// The check, after a grace period, that an agent who went away or offline is still not back: their
/// conversations with a waiting customer then go back to routing. A Step Functions execution's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AwayCheck {
    pub workspace: WorkspaceId,
    pub agent: crate::ids::AgentId,
    /// When the agent left.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// RFC 3339 in UTC, as Step Functions' `TimestampPath` reads it.
    #[serde(with = "time::serde::rfc3339")]
    pub check_at: OffsetDateTime,
}

impl AwayCheck {
    /// The check for `agent` leaving at `now`, by the policy's grace period (`None`: never).
    pub fn after(
        policy: &Policy,
        workspace: WorkspaceId,
        agent: crate::ids::AgentId,
        now: OffsetDateTime,
    ) -> Option<Self> {
        let grace = policy.reroute_when_away_secs?;
        Some(AwayCheck { workspace, agent, since: now, check_at: now + Duration::seconds(i64::from(grace)) })
    }

    /// Unique to the agent and the moment they left (execution names: at most 80 of `[A-Za-z0-9-_]`).
    pub fn name(&self) -> String {
        let ms = self.since.unix_timestamp_nanos() / 1_000_000;
        let agent: String =
            self.agent.as_str().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(48).collect();
        format!("away-{agent}-{ms}")
    }
}

/// Whether a customer in `c` waits for an answer (its response clock runs).
pub fn customer_waiting(c: &Conversation) -> bool {
    c.sla.response.as_ref().is_some_and(|r| r.stopped_at.is_none())
}

/// The calendar a conversation's clocks count in.
#[derive(Clone, Copy, Debug)]
pub enum Calendar<'a> {
    Always,
    Hours(&'a BusinessHours),
}

impl<'a> Calendar<'a> {
    pub fn of(policy: &Policy, hours: Option<&'a BusinessHours>) -> Self {
        match (policy.counting, hours) {
            (Counting::BusinessHours, Some(h)) => Calendar::Hours(h),
            _ => Calendar::Always,
        }
    }

    /// The instant `secs` of counted time after `from`.
    pub fn add(&self, from: OffsetDateTime, secs: u32) -> OffsetDateTime {
        match self {
            Calendar::Always => from + Duration::seconds(i64::from(secs)),
            // Hours that never open (validated hours always do): count calendar time rather than
            // never come due.
            Calendar::Hours(h) => h
                .add_open_time(from, Duration::seconds(i64::from(secs)))
                .unwrap_or(from + Duration::seconds(i64::from(secs))),
        }
    }

    /// Counted time between `from` and `to`.
    pub fn between(&self, from: OffsetDateTime, to: OffsetDateTime) -> Duration {
        if to <= from {
            return Duration::ZERO;
        }
        match self {
            Calendar::Always => to - from,
            Calendar::Hours(h) => h.open_time_between(from, to),
        }
    }
}

/// A workspace's policy with the calendars it counts in: the routing rules' hours and each
/// team's — and, read in the same Query of the routing partition, what its inbound text must have
/// masked (`redact::Policy`): everything ingest needs of the workspace's settings in one request,
/// cached per container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Setup {
    pub policy: Policy,
    pub privacy: crate::redact::Policy,
    /// The workspace's routing hours (conversations without a team, or whose team has none).
    pub hours: Option<BusinessHours>,
    pub team_hours: std::collections::BTreeMap<TeamId, BusinessHours>,
}

impl Setup {
    /// The clocks of conversation `c`: its team's hours, else the workspace's.
    pub fn clocks_for(&self, c: &Conversation) -> Clocks<'_> {
        let hours = c.team.as_ref().and_then(|t| self.team_hours.get(t)).or(self.hours.as_ref());
        Clocks { policy: &self.policy, calendar: Calendar::of(&self.policy, hours) }
    }
}

/// Starts (or restarts) the clock of `kind` at `now` with its target; no target: none runs.
fn start(sla: &mut Sla, kind: ClockKind, target: Option<u32>, warn_percent: u8, cal: Calendar, now: OffsetDateTime) {
    let now = whole_second(now);
    let slot = kind.slot();
    let Some(target) = target else {
        *sla.clock_mut(slot) = None;
        return;
    };
    sla.last_clock_id += 1;
    let warn = (u64::from(target) * u64::from(warn_percent) / 100) as u32;
    *sla.clock_mut(slot) = Some(Clock {
        kind,
        id: sla.last_clock_id,
        started_at: now,
        target_secs: target,
        warn_at: Some(cal.add(now, warn)),
        due_at: Some(cal.add(now, target)),
        remaining_secs: None,
        warned: false,
        breached: false,
        stopped_at: None,
    });
}

/// What a policy and calendar decide for one conversation.
pub struct Clocks<'a> {
    pub policy: &'a Policy,
    pub calendar: Calendar<'a>,
}

impl Clocks<'_> {
    fn target(&self, c: &Conversation, kind: ClockKind, channel: Channel) -> Option<u32> {
        self.policy.enabled.then(|| self.policy.target(kind, channel, c.priority)).flatten()
    }

    /// A customer message on `channel` joined the conversation (after `record_inbound`): the
    /// response clock starts unless one is already waiting, and the resolution clock starts if
    /// the conversation has none running (new, or reopened by this message after a resolve).
    pub fn customer_wrote(&self, c: &mut Conversation, channel: Channel, now: OffsetDateTime) {
        self.resume(c, now);
        if !c.sla.response.as_ref().is_some_and(Clock::is_running) {
            let kind =
                if c.sla.first_response_at.is_none() { ClockKind::FirstResponse } else { ClockKind::NextResponse };
            let target = self.target(c, kind, channel);
            start(&mut c.sla, kind, target, self.policy.warn_at_percent, self.calendar, now);
        }
        let resolving = c.sla.resolution.as_ref().is_some_and(|r| r.stopped_at.is_none());
        if !resolving {
            let target = self.target(c, ClockKind::Resolution, channel);
            start(&mut c.sla, ClockKind::Resolution, target, self.policy.warn_at_percent, self.calendar, now);
        }
    }

    /// The conversation's status changed (after the change): resolved stops both clocks; snoozed
    /// or pending pauses them; open again resumes what was paused.
    pub fn status_changed(&self, c: &mut Conversation, now: OffsetDateTime) {
        match c.status {
            ConversationStatus::Resolved => {
                for slot in [Slot::Response, Slot::Resolution] {
                    stop(c.sla.clock_mut(slot), now);
                }
                c.sla.resolved_at = Some(now);
            }
            ConversationStatus::Snoozed | ConversationStatus::Pending => {
                for slot in [Slot::Response, Slot::Resolution] {
                    let cal = self.calendar;
                    if let Some(clock) = c.sla.clock_mut(slot).as_mut().filter(|k| k.is_running()) {
                        let left = cal.between(now, clock.due_at.unwrap_or(now));
                        clock.remaining_secs = Some(left.whole_seconds().clamp(0, i64::from(u32::MAX)) as u32);
                        clock.warn_at = None;
                        clock.due_at = None;
                    }
                }
            }
            ConversationStatus::Open => self.resume(c, now),
        }
    }

    /// Paused clocks run again with what they had left (a breached one stays breached and is not
    /// timed again).
    fn resume(&self, c: &mut Conversation, now: OffsetDateTime) {
        let now = whole_second(now);
        for slot in [Slot::Response, Slot::Resolution] {
            let cal = self.calendar;
            let warn_percent = self.policy.warn_at_percent;
            let next_id = c.sla.last_clock_id + 1;
            let Some(clock) = c.sla.clock_mut(slot).as_mut().filter(|k| k.is_paused()) else { continue };
            let left = clock.remaining_secs.take().unwrap_or(0);
            // The warning comes when the share of the target after it is all that is left.
            let after_warning = (u64::from(clock.target_secs) * u64::from(100 - warn_percent.min(100)) / 100) as u32;
            clock.id = next_id;
            clock.due_at = Some(cal.add(now, left));
            clock.warn_at = Some(cal.add(now, left.saturating_sub(after_warning)));
            c.sla.last_clock_id = next_id;
        }
    }
}

fn stop(clock: &mut Option<Clock>, now: OffsetDateTime) {
    if let Some(k) = clock.as_mut().filter(|k| k.stopped_at.is_none()) {
        k.stopped_at = Some(now);
        k.remaining_secs = None;
    }
}

/// An agent answered (not an automatic answer): the response clock stops.
pub fn agent_replied(sla: &mut Sla, now: OffsetDateTime) {
    sla.first_response_at.get_or_insert(now);
    stop(&mut sla.response, now);
}

/// What a timer's stage found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fired {
    /// The clock is past its warning. `first`: marked now; else a retry of a stage that was
    /// marked but perhaps not announced (announcements are deduplicated).
    Warned { first: bool },
    /// The clock is past its due time (`first` as above).
    Breached { first: bool },
    /// The clock stopped, paused or restarted since: nothing to do, and its timer ends.
    Stale,
    /// Fired before its time (Step Functions waits in whole seconds): try again.
    Early,
}

/// Stage of a timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Warning,
    Breach,
}

/// A timer's stage fired at `now`: marks the clock warned or breached when it is still the clock
/// the timer watches and still running.
pub fn fire(sla: &mut Sla, timer: &Timer, stage: Stage, now: OffsetDateTime) -> Fired {
    let Some(clock) = sla.clock_mut(timer.slot).as_mut() else { return Fired::Stale };
    if clock.id != timer.clock_id || !clock.is_running() {
        return Fired::Stale;
    }
    match stage {
        Stage::Warning if clock.breached => Fired::Stale,
        Stage::Warning if clock.warned => Fired::Warned { first: false },
        Stage::Warning if clock.warn_at.is_some_and(|w| now < w) => Fired::Early,
        Stage::Warning => {
            clock.warned = true;
            Fired::Warned { first: true }
        }
        Stage::Breach if clock.breached => Fired::Breached { first: false },
        Stage::Breach if clock.due_at.is_some_and(|d| now < d) => Fired::Early,
        Stage::Breach => {
            clock.warned = true;
            clock.breached = true;
            sla.breaches += 1;
            Fired::Breached { first: true }
        }
    }
}

/// The next priority up.
pub fn raised(p: Priority) -> Priority {
    match p {
        Priority::Low => Priority::Normal,
        Priority::Normal => Priority::High,
        Priority::High | Priority::Urgent => Priority::Urgent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Route;
    use crate::routing::hours::{Day, Span};
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-23 10:00 UTC); // a Monday

    fn conversation() -> Conversation {
        let mut c = Conversation::start_for(WorkspaceId::parse("acme").unwrap(), crate::ids::ContactId::new(), T0);
        c.record_inbound(
            Route {
                channel: Channel::Sms,
                contact_address: "+14155552671".into(),
                our_address: "+14155550100".into(),
                contact_country: None,
            },
            T0,
        );
        c
    }

    fn policy(first: u32, next: u32, resolution: u32) -> Policy {
        Policy {
            rules: vec![Rule {
                channel: None,
                priority: None,
                targets: Targets {
                    first_response_secs: Some(first),
                    next_response_secs: Some(next),
                    resolution_secs: Some(resolution),
                },
            }],
            counting: Counting::Calendar,
            warn_at_percent: 80,
            ..Policy::default()
        }
    }

    fn secs(n: i64) -> Duration {
        Duration::seconds(n)
    }

    #[test]
    fn the_defaults_follow_the_seeds_and_bad_policies_are_refused() {
        let p: Policy = serde_json::from_str("{}").unwrap();
        assert_eq!(p, Policy::default());
        p.validate(&[]).unwrap();
        assert_eq!(p.target(ClockKind::FirstResponse, Channel::Webchat, Priority::Normal), Some(300));
        assert_eq!(p.target(ClockKind::FirstResponse, Channel::Whatsapp, Priority::Low), Some(3600));
        assert_eq!(p.target(ClockKind::FirstResponse, Channel::Email, Priority::Normal), Some(8 * 3600));
        let bad = |json: &str| serde_json::from_str::<Policy>(json).map(|p| p.validate(&[]).is_err()).unwrap_or(true);
        assert!(bad(r#"{"warn_at_percent": 100}"#));
        assert!(bad(r#"{"rules": [{"channel": "sms", "first_response_secs": 0}]}"#));
        assert!(bad(r#"{"rules": [{"channel": "sms"}, {"channel": "sms"}]}"#));
        assert!(bad(r#"{"on_breach": [{"action": "reroute", "team": "ghosts"}]}"#));
        assert!(bad(r#"{"on_breach": [{"action": "raise_priority"}, {"action": "raise_priority"}]}"#));
        assert!(!bad(r#"{"on_breach": [{"action": "raise_priority"}, {"action": "reroute"}]}"#));
    }

    #[test]
    fn the_most_specific_rule_with_a_target_wins() {
        let p: Policy = serde_json::from_value(serde_json::json!({ "rules": [
            { "first_response_secs": 7200, "resolution_secs": 86400 },
            { "priority": "urgent", "first_response_secs": 600 },
            { "channel": "email", "first_response_secs": 14400 },
            { "channel": "email", "priority": "urgent", "first_response_secs": 1800 },
        ]}))
        .unwrap();
        let t = |c, pr| p.target(ClockKind::FirstResponse, c, pr);
        assert_eq!(t(Channel::Email, Priority::Urgent), Some(1800));
        assert_eq!(t(Channel::Email, Priority::Normal), Some(14400));
        assert_eq!(t(Channel::Sms, Priority::Urgent), Some(600));
        assert_eq!(t(Channel::Sms, Priority::Normal), Some(7200));
        // No rule sets a next-response target; resolution falls through to the general rule.
        assert_eq!(p.target(ClockKind::NextResponse, Channel::Email, Priority::Urgent), None);
        assert_eq!(p.target(ClockKind::Resolution, Channel::Email, Priority::Urgent), Some(86400));
    }

    #[test]
    fn a_waiting_customer_starts_the_clocks_an_answer_stops_the_response_clock() {
        let p = policy(100, 50, 1000);
        let clocks = Clocks { policy: &p, calendar: Calendar::Always };
        let mut c = conversation();
        clocks.customer_wrote(&mut c, Channel::Sms, T0);
        let r = c.sla.response.clone().unwrap();
        assert_eq!(
            (r.kind, r.warn_at, r.due_at),
            (ClockKind::FirstResponse, Some(T0 + secs(80)), Some(T0 + secs(100)))
        );
        assert_eq!(c.sla.resolution.as_ref().unwrap().due_at, Some(T0 + secs(1000)));
        assert_eq!(timers(&c).len(), 2);
        // A second message while waiting changes nothing: the customer has waited since the first.
        clocks.customer_wrote(&mut c, Channel::Sms, T0 + secs(30));
        assert_eq!(c.sla.response.as_ref().unwrap(), &r);
        c.record_outbound(T0 + secs(60));
        assert_eq!(c.sla.first_response_at, Some(T0 + secs(60)));
        assert!(!c.sla.response.as_ref().unwrap().is_running());
        assert_eq!(timers(&c).len(), 1, "only the resolution clock still runs");
        // The next wait is timed with the next-response target, under a new id.
        clocks.customer_wrote(&mut c, Channel::Sms, T0 + secs(200));
        let next = c.sla.response.clone().unwrap();
        assert_eq!((next.kind, next.due_at), (ClockKind::NextResponse, Some(T0 + secs(250))));
        assert!(next.id > r.id);
        assert_eq!(c.sla.first_response_at, Some(T0 + secs(60)), "the first response is kept");
    }

    #[test]
    fn a_stale_timer_does_nothing_and_a_live_one_warns_then_breaches_once() {
        let p = policy(100, 50, 1000);
        let clocks = Clocks { policy: &p, calendar: Calendar::Always };
        let mut c = conversation();
        clocks.customer_wrote(&mut c, Channel::Sms, T0);
        let timer = timers(&c).into_iter().find(|t| t.slot == Slot::Response).unwrap();
        assert_eq!(timer.name(), format!("sla-{}-r-1", c.id));
        assert!(timer.name().len() <= 80);
        assert_eq!(fire(&mut c.sla, &timer, Stage::Warning, T0 + secs(79)), Fired::Early);
        assert_eq!(fire(&mut c.sla, &timer, Stage::Warning, T0 + secs(80)), Fired::Warned { first: true });
        assert_eq!(fire(&mut c.sla, &timer, Stage::Warning, T0 + secs(81)), Fired::Warned { first: false });
        assert_eq!(fire(&mut c.sla, &timer, Stage::Breach, T0 + secs(100)), Fired::Breached { first: true });
        assert_eq!(fire(&mut c.sla, &timer, Stage::Breach, T0 + secs(101)), Fired::Breached { first: false });
        assert_eq!(c.sla.breaches, 1);
        assert_eq!(timers(&c).len(), 1, "a breached clock is not timed again");
        // Answered before the warning: the timer finds the clock stopped.
        let mut d = conversation();
        clocks.customer_wrote(&mut d, Channel::Sms, T0);
        let timer = timers(&d)[0].clone();
        d.record_outbound(T0 + secs(10));
        assert_eq!(fire(&mut d.sla, &timer, Stage::Warning, T0 + secs(80)), Fired::Stale);
    }

    #[test]
    fn snoozing_pauses_and_reopening_resumes_with_what_was_left() {
        let p = policy(100, 50, 1000);
        let clocks = Clocks { policy: &p, calendar: Calendar::Always };
        let mut c = conversation();
        clocks.customer_wrote(&mut c, Channel::Sms, T0);
        let old = timers(&c);
        c.status = ConversationStatus::Snoozed;
        clocks.status_changed(&mut c, T0 + secs(40));
        assert_eq!(c.sla.response.as_ref().unwrap().remaining_secs, Some(60));
        assert!(timers(&c).is_empty());
        for t in &old {
            assert_eq!(fire(&mut c.sla, t, Stage::Warning, T0 + secs(500)), Fired::Stale);
        }
        c.status = ConversationStatus::Open;
        clocks.status_changed(&mut c, T0 + secs(500));
        let r = c.sla.response.clone().unwrap();
        assert_eq!((r.due_at, r.warn_at), (Some(T0 + secs(560)), Some(T0 + secs(540))));
        assert!(timers(&c).iter().all(|t| !old.iter().any(|o| o.name() == t.name())), "new timers");
        c.status = ConversationStatus::Resolved;
        clocks.status_changed(&mut c, T0 + secs(600));
        assert!(timers(&c).is_empty());
        assert_eq!(c.sla.resolved_at, Some(T0 + secs(600)));
        // Reopened by the customer: both clocks start again.
        clocks.customer_wrote(&mut c, Channel::Sms, T0 + secs(700));
        assert_eq!(timers(&c).len(), 2);
        assert_eq!(c.sla.response.as_ref().unwrap().kind, ClockKind::FirstResponse, "nobody answered yet");
    }

    #[test]
    fn after_hours_the_clock_starts_counting_at_opening_time() {
        let mut p = policy(3600, 3600, 8 * 3600);
        p.counting = Counting::BusinessHours;
        let span = vec![Span { open: "09:00".into(), close: "17:00".into() }];
        let hours = BusinessHours {
            time_zone: "UTC".into(),
            weekly: [Day::Monday, Day::Tuesday].into_iter().map(|d| (d, span.clone())).collect(),
            holidays: Default::default(),
        };
        let clocks = Clocks { policy: &p, calendar: Calendar::of(&p, Some(&hours)) };
        let mut c = conversation();
        // Monday 20:00: closed until Tuesday 09:00.
        clocks.customer_wrote(&mut c, Channel::Sms, datetime!(2026-11-23 20:00 UTC));
        let r = c.sla.response.as_ref().unwrap();
        assert_eq!(r.warn_at, Some(datetime!(2026-11-24 09:48 UTC)));
        assert_eq!(r.due_at, Some(datetime!(2026-11-24 10:00 UTC)));
        // Eight business hours from Tuesday 16:00: one hour Tuesday, then next Monday.
        let mut d = conversation();
        clocks.customer_wrote(&mut d, Channel::Sms, datetime!(2026-11-24 16:00 UTC));
        assert_eq!(d.sla.resolution.as_ref().unwrap().due_at, Some(datetime!(2026-11-30 16:00 UTC)));
        // Calendar counting ignores the hours.
        let cal = Calendar::of(&Policy { counting: Counting::Calendar, ..p.clone() }, Some(&hours));
        assert_eq!(cal.add(datetime!(2026-11-23 20:00 UTC), 3600), datetime!(2026-11-23 21:00 UTC));
    }

    #[test]
    fn a_disabled_policy_starts_nothing() {
        let p = Policy { enabled: false, ..policy(100, 50, 1000) };
        let mut c = conversation();
        Clocks { policy: &p, calendar: Calendar::Always }.customer_wrote(&mut c, Channel::Sms, T0);
        assert!(timers(&c).is_empty() && c.sla.response.is_none());
    }

    #[test]
    fn the_clocks_stay_small_on_the_conversation_item() {
        // The conversation is written with every message and projected into three indexes: every
        // kilobyte it grows costs write units on each.
        let p = Policy::default();
        let mut c = conversation();
        Clocks { policy: &p, calendar: Calendar::Always }.customer_wrote(&mut c, Channel::Sms, T0 + secs(1));
        let json = serde_json::to_string(&c.sla).unwrap();
        assert!(json.len() <= 360, "{} bytes: {json}", json.len());
    }
}
