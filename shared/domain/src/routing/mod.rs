//! The routing brain (seed 000 "Hybrid Routing", seed 001 rules, seed 004 "one brain across
//! channels"): who gets a conversation, as a pure function of the work and the agents' state.
//!
//! In order:
//! 1. Business hours: outside them nothing is assigned; the work waits (the caller acknowledges the
//!    customer on their channel).
//! 2. Who qualifies: online (not away, not do-not-disturb, not offline), in the work's team if it
//!    has one, holding every required skill, and with room for the work's channel weight under their
//!    capacity.
//! 3. Continuity: the previous owner, if they qualify.
//! 4. Otherwise the qualified agent with the lowest utilisation (weighted load ÷ capacity, compared
//!    exactly by cross-multiplication); ties go to the lower load, then to whoever was assigned
//!    longest ago (never first), then to the agent id — so the result is deterministic.
//! 5. Nobody qualifies: the work waits in a queue ordered by priority, then waiting time.
//!
//! Loads and capacities are in hundredths of a conversation so that channel weights (live chat
//! 1.5, messaging 1.0, email 0.5 by default) stay integers. Applying a decision must be a
//! conditional write on the agent's load (the store's job) so concurrent routing can never push an
//! agent past capacity; [`drain`] shows the policy itself never does.

pub mod hours;
pub mod service;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{AgentId, ConversationId, TeamId};
use crate::model::{Channel, Conversation, Priority};
pub use hours::BusinessHours;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Online,
    Away,
    DoNotDisturb,
    #[default]
    Offline,
}

/// Channel weights in hundredths of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Weights {
    pub live_chat: u32,
    pub messaging: u32,
    pub email: u32,
    pub voice: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights { live_chat: 150, messaging: 100, email: 50, voice: 100 }
    }
}

impl Weights {
    pub fn of(&self, channel: Channel) -> u32 {
        match channel {
            Channel::Webchat => self.live_chat,
            Channel::Email => self.email,
            Channel::Voice => self.voice,
            Channel::Sms | Channel::Whatsapp | Channel::Messenger | Channel::Instagram | Channel::Telegram => {
                self.messaging
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentState {
    pub id: AgentId,
    pub presence: Presence,
    pub teams: BTreeSet<TeamId>,
    pub skills: BTreeSet<String>,
    /// Hundredths of a conversation (a capacity of 6 live chats at weight 1.5 is 900).
    pub capacity: u32,
    /// Current weighted load, same unit.
    pub load: u32,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_assigned_at: Option<OffsetDateTime>,
}

impl AgentState {
    /// The profile an agent gets when they first set a presence: no teams or skills, the
    /// workspace's default capacity, nothing assigned.
    pub fn first_seen(id: AgentId, presence: Presence, capacity: u32) -> Self {
        AgentState {
            id,
            presence,
            teams: Default::default(),
            skills: Default::default(),
            capacity,
            load: 0,
            last_assigned_at: None,
        }
    }
}

/// A conversation that needs an owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Work {
    pub conversation: ConversationId,
    pub channel: Channel,
    pub priority: Priority,
    #[serde(with = "time::serde::rfc3339")]
    pub waiting_since: OffsetDateTime,
    pub required_skills: BTreeSet<String>,
    pub team: Option<TeamId>,
    pub previous_owner: Option<AgentId>,
    /// When its earliest service-level clock breaches (none: no clock runs).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub due_at: Option<OffsetDateTime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Continuity,
    LowestLoad,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitReason {
    OutsideBusinessHours,
    NoAgentQualifies,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Assign { agent: AgentId, reason: Reason },
    Wait(WaitReason),
}

/// Whether `agent` may take `work` now.
pub fn qualifies(agent: &AgentState, work: &Work, weights: &Weights) -> bool {
    agent.presence == Presence::Online
        && work.team.as_ref().is_none_or(|t| agent.teams.contains(t))
        && work.required_skills.is_subset(&agent.skills)
        && agent.load.saturating_add(weights.of(work.channel)) <= agent.capacity
}

/// Lower is a better candidate: utilisation, then load, then least recently assigned, then id.
fn candidate_order(a: &AgentState, b: &AgentState) -> Ordering {
    let util = (u64::from(a.load) * u64::from(b.capacity)).cmp(&(u64::from(b.load) * u64::from(a.capacity)));
    util.then(a.load.cmp(&b.load)).then(a.last_assigned_at.cmp(&b.last_assigned_at)).then(a.id.cmp(&b.id))
}

pub fn route(work: &Work, agents: &[AgentState], weights: &Weights, within_hours: bool) -> Decision {
    if !within_hours {
        return Decision::Wait(WaitReason::OutsideBusinessHours);
    }
    let qualified: Vec<&AgentState> = agents.iter().filter(|a| qualifies(a, work, weights)).collect();
    if let Some(prev) = &work.previous_owner {
        if qualified.iter().any(|a| &a.id == prev) {
            return Decision::Assign { agent: prev.clone(), reason: Reason::Continuity };
        }
    }
    match qualified.into_iter().min_by(|a, b| candidate_order(a, b)) {
        Some(a) => Decision::Assign { agent: a.id.clone(), reason: Reason::LowestLoad },
        None => Decision::Wait(WaitReason::NoAgentQualifies),
    }
}

/// How many candidates routing reads first: a workspace with at most this many who could take the
/// work is routed exactly as if every agent were read. Past it, routing asks a sample (the
/// least-loaded of a few random choices spreads load almost as well as the least-loaded of all, and
/// concurrent routers, each with its own sample, do not all pick the same agent).
pub const FIRST_SAMPLE: usize = 8;

/// Whom routing asks for `work`, in the order it asks: the agents whose profile could take it
/// (online, in its team, with its skills, with the capacity for its weight at no load; the load is
/// read afterwards), the previous owner first, the rest in an order drawn from `seed` (the
/// conversation and attempt), so different conversations sample different agents.
pub fn candidates(work: &Work, roster: &[AgentState], weights: &Weights, seed: u64) -> Vec<AgentId> {
    let mut out: Vec<(bool, u64, &AgentId)> = roster
        .iter()
        .filter(|a| qualifies(&AgentState { load: 0, ..(*a).clone() }, work, weights))
        .map(|a| (work.previous_owner.as_ref() != Some(&a.id), mix(seed, a.id.as_str()), &a.id))
        .collect();
    out.sort();
    out.into_iter().map(|(_, _, id)| id.clone()).collect()
}

/// The rounds `candidates` are read in: [`FIRST_SAMPLE`], then doubling what has been read, until
/// every candidate has been asked (work waits only when none of them has room).
pub fn sample_rounds(candidates: &[AgentId]) -> Vec<&[AgentId]> {
    let mut rounds = Vec::new();
    let (mut start, mut size) = (0, FIRST_SAMPLE);
    while start < candidates.len() {
        let end = (start + size).min(candidates.len());
        rounds.push(&candidates[start..end]);
        start = end;
        size = end;
    }
    rounds
}

/// A 64-bit mix of `seed` and `s` (FNV-1a, then a finaliser): an order that looks random and is
/// the same for the same inputs.
fn mix(seed: u64, s: &str) -> u64 {
    let mut h = crate::ids::fnv1a(seed, s.as_bytes());
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// A seed for sampling `conversation`'s candidates on its `attempt`-th try.
pub fn sample_seed(conversation: ConversationId, attempt: usize) -> u64 {
    mix(attempt as u64, &conversation.to_string())
}

/// The waiting queue's order: the soonest to breach its service level first (work with no clock
/// after all that has one), then higher priority, then longer waiting, then conversation id.
pub fn queue_order(a: &Work, b: &Work) -> Ordering {
    let due = match (a.due_at, b.due_at) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    due.then(b.priority.cmp(&a.priority))
        .then(a.waiting_since.cmp(&b.waiting_since))
        .then(a.conversation.cmp(&b.conversation))
}

/// Assigns waiting work in queue order to whoever qualifies, updating loads as it goes (an agent
/// came online or freed capacity). Work nobody can take stays waiting, in order; work behind it may
/// still go to an agent with the right skills (a waiting billing question does not block a sales one).
pub fn drain(
    queue: &[Work],
    agents: &[AgentState],
    weights: &Weights,
    within_hours: impl Fn(&Work) -> bool,
    now: OffsetDateTime,
) -> (Vec<(ConversationId, AgentId)>, Vec<Work>) {
    let mut ordered: Vec<Work> = queue.to_vec();
    ordered.sort_by(queue_order);
    let mut state: BTreeMap<AgentId, AgentState> = agents.iter().map(|a| (a.id.clone(), a.clone())).collect();
    let mut assigned = Vec::new();
    let mut waiting = Vec::new();
    for w in ordered {
        let current: Vec<AgentState> = state.values().cloned().collect();
        match route(&w, &current, weights, within_hours(&w)) {
            Decision::Assign { agent, .. } => {
                if let Some(a) = state.get_mut(&agent) {
                    a.load += weights.of(w.channel);
                    a.last_assigned_at = Some(now);
                }
                assigned.push((w.conversation, agent));
            }
            Decision::Wait(_) => waiting.push(w),
        }
    }
    (assigned, waiting)
}

impl Work {
    /// The routing work a conversation represents (`None` before the customer has written).
    pub fn of(c: &Conversation, now: OffsetDateTime) -> Option<Work> {
        Some(Work {
            conversation: c.id,
            channel: c.last_inbound.as_ref()?.channel,
            priority: c.priority,
            waiting_since: c.waiting_since.unwrap_or(now),
            required_skills: c.skills.clone(),
            team: c.team.clone(),
            previous_owner: c.previous_owner.clone(),
            due_at: c.sla.next_due(),
        })
    }
}

/// A team: its members are the agents whose profile names it; its hours gate assignment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Team {
    pub id: TeamId,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<BusinessHours>,
}

impl Team {
    /// A name of 1-100 characters and valid hours.
    pub fn validate(&self) -> Result<(), crate::ParseError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(crate::ParseError::Invalid { kind: "team", reason: "name must be 1-100 characters".into() });
        }
        self.hours.as_ref().map_or(Ok(()), BusinessHours::validate)
    }
}

/// An admin's profile of an agent: teams that exist, skills as routing matches them (lower-case,
/// 1-50 characters), a capacity of at most 1000 conversations (100 000 hundredths).
pub fn validate_profile(agent: &AgentState, teams: &[Team]) -> Result<(), crate::ParseError> {
    let invalid = |reason: String| crate::ParseError::Invalid { kind: "agent profile", reason };
    if agent.capacity > 100_000 {
        return Err(invalid("capacity is at most 100000 hundredths (1000 conversations)".into()));
    }
    if let Some(t) = agent.teams.iter().find(|t| !teams.iter().any(|x| &x.id == *t)) {
        return Err(invalid(format!("unknown team {t}: create it first")));
    }
    if let Some(s) = agent.skills.iter().find(|s| s.is_empty() || s.chars().count() > 50 || s.to_lowercase() != **s) {
        return Err(invalid(format!("skill {s:?}: lower-case, 1-50 characters")));
    }
    Ok(())
}

/// A workspace's routing rules, changed through the admin API without a deploy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoutingRules {
    #[serde(default)]
    pub weights: Weights,
    #[serde(default)]
    pub skills: SkillRules,
    /// The team that owns new conversations of a channel (none: anyone may take them).
    #[serde(default)]
    pub team_by_channel: BTreeMap<Channel, TeamId>,
    /// Capacity of an agent who has no profile yet, in hundredths (default five conversations).
    #[serde(default = "default_capacity")]
    pub default_capacity: u32,
    /// Hours for conversations without a team, or whose team has none (none: always open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<BusinessHours>,
    /// Sent once per conversation when it arrives outside business hours.
    #[serde(default = "default_after_hours")]
    pub after_hours_message: String,
    /// The satisfaction survey asked when a conversation is resolved (on by default).
    #[serde(default)]
    pub csat: crate::csat::Policy,
    /// The Net Promoter Score survey (off by default).
    #[serde(default)]
    pub nps: crate::nps::Policy,
}

fn default_capacity() -> u32 {
    500
}

pub const DEFAULT_AFTER_HOURS_MESSAGE: &str =
    "Thanks for your message. We're closed right now and will answer as soon as we're back.";

fn default_after_hours() -> String {
    DEFAULT_AFTER_HOURS_MESSAGE.to_owned()
}

impl Default for RoutingRules {
    fn default() -> Self {
        RoutingRules {
            weights: Weights::default(),
            skills: SkillRules::default(),
            team_by_channel: BTreeMap::new(),
            default_capacity: default_capacity(),
            hours: None,
            after_hours_message: default_after_hours(),
            csat: crate::csat::Policy::default(),
            nps: crate::nps::Policy::default(),
        }
    }
}

impl RoutingRules {
    pub fn validate(&self, teams: &[Team]) -> Result<(), crate::ParseError> {
        let invalid = |reason: String| crate::ParseError::Invalid { kind: "routing rules", reason };
        for (name, w) in [
            ("live_chat", self.weights.live_chat),
            ("messaging", self.weights.messaging),
            ("email", self.weights.email),
            ("voice", self.weights.voice),
        ] {
            if w == 0 || w > 10_000 {
                return Err(invalid(format!("weight {name} must be between 1 and 10000 hundredths")));
            }
        }
        if self.default_capacity > 100_000 {
            return Err(invalid("default_capacity is at most 100000 hundredths".into()));
        }
        if let Some((ch, t)) = self.team_by_channel.iter().find(|(_, t)| !teams.iter().any(|x| &x.id == *t)) {
            return Err(invalid(format!("team_by_channel.{ch} names unknown team {t}")));
        }
        if self.after_hours_message.trim().is_empty() || self.after_hours_message.chars().count() > 1000 {
            return Err(invalid("after_hours_message must be 1-1000 characters".into()));
        }
        if let Some(h) = &self.hours {
            h.validate()?;
        }
        self.csat.validate().map_err(|e| invalid(format!("csat.{e}")))?;
        self.nps.validate().map_err(|e| invalid(format!("nps.{e}")))?;
        Ok(())
    }

    /// Whether work may be assigned now: its team's hours, else the workspace's, else always.
    pub fn within_hours(&self, teams: &[Team], work: &Work, at: OffsetDateTime) -> bool {
        let team_hours =
            work.team.as_ref().and_then(|t| teams.iter().find(|x| &x.id == t)).and_then(|t| t.hours.as_ref());
        team_hours.or(self.hours.as_ref()).is_none_or(|h| h.is_open(at))
    }

    /// A new conversation's team and required skills, from its channel and first message.
    pub fn classify(&self, c: &mut Conversation, channel: Channel, text: &str) {
        c.team = self.team_by_channel.get(&channel).cloned();
        c.skills = self.skills.required(channel, text);
    }
}

/// Skills a conversation needs: its channel's (workspace rules) plus every keyword rule whose
/// keyword appears in the text as a whole word, case-insensitively.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SkillRules {
    pub by_channel: BTreeMap<Channel, BTreeSet<String>>,
    /// keyword → skill
    pub keywords: BTreeMap<String, String>,
}

impl SkillRules {
    pub fn required(&self, channel: Channel, text: &str) -> BTreeSet<String> {
        let mut skills = self.by_channel.get(&channel).cloned().unwrap_or_default();
        let words: BTreeSet<String> =
            text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
        for (keyword, skill) in &self.keywords {
            if words.contains(&keyword.to_lowercase()) {
                skills.insert(skill.clone());
            }
        }
        skills
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn agent(id: &str, presence: Presence, capacity: u32, load: u32, skills: &[&str]) -> AgentState {
        AgentState {
            id: AgentId::parse(id).unwrap(),
            presence,
            teams: BTreeSet::new(),
            skills: skills.iter().map(|s| (*s).to_owned()).collect(),
            capacity,
            load,
            last_assigned_at: None,
        }
    }

    fn work(channel: Channel, skills: &[&str]) -> Work {
        Work {
            conversation: ConversationId::new(),
            channel,
            priority: Priority::Normal,
            waiting_since: datetime!(2026-11-21 10:00 UTC),
            required_skills: skills.iter().map(|s| (*s).to_owned()).collect(),
            team: None,
            previous_owner: None,
            due_at: None,
        }
    }

    #[test]
    fn the_queue_serves_the_soonest_to_breach_first() {
        let at = |m: i64| Some(datetime!(2026-11-21 10:00 UTC) + time::Duration::minutes(m));
        let urgent_no_clock = Work { priority: Priority::Urgent, ..work(Channel::Sms, &[]) };
        let due_late = Work { due_at: at(30), ..work(Channel::Email, &[]) };
        let due_soon = Work { due_at: at(5), ..work(Channel::Webchat, &[]) };
        let mut q = [urgent_no_clock.clone(), due_late.clone(), due_soon.clone()];
        q.sort_by(queue_order);
        assert_eq!(
            q.iter().map(|w| w.conversation).collect::<Vec<_>>(),
            [due_soon.conversation, due_late.conversation, urgent_no_clock.conversation]
        );
    }

    fn assigned(d: Decision) -> String {
        match d {
            Decision::Assign { agent, .. } => agent.to_string(),
            Decision::Wait(w) => format!("wait {w:?}"),
        }
    }

    #[test]
    fn continuity_then_skills_then_lowest_utilisation() {
        let w = Weights::default();
        let agents = vec![
            agent("ann", Presence::Online, 600, 300, &["billing"]),
            agent("bob", Presence::Online, 600, 100, &[]),
            agent("cat", Presence::Online, 1200, 300, &["billing"]),
        ];
        // Lowest utilisation: bob (1/6) over cat (1/4) over ann (1/2).
        assert_eq!(assigned(route(&work(Channel::Sms, &[]), &agents, &w, true)), "bob");
        // A skill narrows it to ann and cat: cat is less utilised.
        assert_eq!(assigned(route(&work(Channel::Sms, &["billing"]), &agents, &w, true)), "cat");
        // Continuity wins when the previous owner qualifies...
        let mut again = work(Channel::Sms, &[]);
        again.previous_owner = Some(AgentId::parse("ann").unwrap());
        assert_eq!(
            route(&again, &agents, &w, true),
            Decision::Assign { agent: again.previous_owner.clone().unwrap(), reason: Reason::Continuity }
        );
        // ...and not when they are away.
        let away = vec![agent("ann", Presence::Away, 600, 0, &[]), agents[1].clone()];
        assert_eq!(assigned(route(&again, &away, &w, true)), "bob");
    }

    #[test]
    fn nobody_online_or_with_room_means_waiting() {
        let w = Weights::default();
        let agents =
            vec![agent("ann", Presence::DoNotDisturb, 600, 0, &[]), agent("bob", Presence::Online, 600, 500, &[])];
        // A live chat weighs 1.5: bob has room for 1.0 only.
        assert_eq!(
            route(&work(Channel::Webchat, &[]), &agents, &w, true),
            Decision::Wait(WaitReason::NoAgentQualifies)
        );
        assert_eq!(assigned(route(&work(Channel::Email, &[]), &agents, &w, true)), "bob");
        assert_eq!(
            route(&work(Channel::Email, &[]), &agents, &w, false),
            Decision::Wait(WaitReason::OutsideBusinessHours)
        );
    }

    #[test]
    fn ties_go_to_whoever_waited_longest_then_by_id() {
        let w = Weights::default();
        let mut a = agent("ann", Presence::Online, 600, 0, &[]);
        let mut b = agent("bob", Presence::Online, 600, 0, &[]);
        assert_eq!(assigned(route(&work(Channel::Sms, &[]), &[b.clone(), a.clone()], &w, true)), "ann");
        a.last_assigned_at = Some(datetime!(2026-11-21 9:00 UTC));
        b.last_assigned_at = Some(datetime!(2026-11-21 8:00 UTC));
        assert_eq!(assigned(route(&work(Channel::Sms, &[]), &[a, b], &w, true)), "bob");
    }

    #[test]
    fn the_queue_is_served_by_priority_then_waiting_time() {
        let w = Weights::default();
        let mut old = work(Channel::Sms, &[]);
        old.waiting_since = datetime!(2026-11-21 9:00 UTC);
        let mut urgent = work(Channel::Sms, &[]);
        urgent.priority = Priority::Urgent;
        let newer = work(Channel::Sms, &[]);
        // Room for exactly two.
        let agents = vec![agent("ann", Presence::Online, 200, 0, &[])];
        let (done, waiting) = drain(
            &[newer.clone(), old.clone(), urgent.clone()],
            &agents,
            &w,
            |_| true,
            datetime!(2026-11-21 11:00 UTC),
        );
        assert_eq!(done.iter().map(|(c, _)| *c).collect::<Vec<_>>(), vec![urgent.conversation, old.conversation]);
        assert_eq!(waiting, vec![newer]);
    }

    #[test]
    fn keyword_and_channel_rules_make_required_skills() {
        let rules = SkillRules {
            by_channel: BTreeMap::from([(Channel::Whatsapp, BTreeSet::from(["whatsapp".to_owned()]))]),
            keywords: BTreeMap::from([
                ("refund".to_owned(), "billing".to_owned()),
                ("invoice".to_owned(), "billing".to_owned()),
            ]),
        };
        assert_eq!(rules.required(Channel::Sms, "I want a REFUND!"), BTreeSet::from(["billing".to_owned()]));
        assert!(rules.required(Channel::Sms, "refunded").is_empty(), "whole words only");
        assert_eq!(rules.required(Channel::Whatsapp, "hi").len(), 1);
    }

    fn arb_agent() -> impl Strategy<Value = AgentState> {
        arb_agent_of(6)
    }

    fn arb_agent_of(ids: u8) -> impl Strategy<Value = AgentState> {
        (
            0u8..ids,
            0u8..4,
            0u32..1200,
            0u32..1200,
            proptest::collection::btree_set("[ab]", 0..3),
            proptest::option::of(0i64..1000),
        )
            .prop_map(|(id, p, cap, load, skills, last)| AgentState {
                id: AgentId::parse(&format!("agent-{id}")).unwrap(),
                presence: [Presence::Online, Presence::Away, Presence::DoNotDisturb, Presence::Offline][usize::from(p)],
                teams: BTreeSet::new(),
                skills,
                capacity: cap,
                load: load.min(cap),
                last_assigned_at: last.map(|s| OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s)),
            })
    }

    fn arb_work() -> impl Strategy<Value = Work> {
        let due = proptest::option::of(0i64..2000);
        (0usize..8, 0u8..4, 0i64..1000, proptest::collection::btree_set("[ab]", 0..2), due).prop_map(
            |(c, p, t, skills, due)| Work {
                conversation: ConversationId::new(),
                channel: Channel::ALL[c],
                priority: [Priority::Low, Priority::Normal, Priority::High, Priority::Urgent][usize::from(p)],
                waiting_since: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(t),
                required_skills: skills,
                team: None,
                previous_owner: None,
                due_at: due.map(|d| OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(d)),
            },
        )
    }

    proptest! {
        #[test]
        fn never_over_capacity_never_to_someone_not_online(
            agents in proptest::collection::vec(arb_agent(), 0..6),
            queue in proptest::collection::vec(arb_work(), 0..50),
        ) {
            // Unique agent ids, as in a real workspace.
            let mut seen = BTreeSet::new();
            let agents: Vec<AgentState> = agents.into_iter().filter(|a| seen.insert(a.id.clone())).collect();
            let w = Weights::default();
            let (done, waiting) = drain(&queue, &agents, &w, |_| true, OffsetDateTime::UNIX_EPOCH);
            prop_assert_eq!(done.len() + waiting.len(), queue.len());
            let mut load: BTreeMap<AgentId, u32> = agents.iter().map(|a| (a.id.clone(), a.load)).collect();
            for (conv, agent) in &done {
                let a = agents.iter().find(|a| &a.id == agent).unwrap();
                prop_assert_eq!(a.presence, Presence::Online);
                let work = queue.iter().find(|w| &w.conversation == conv).unwrap();
                prop_assert!(work.required_skills.is_subset(&a.skills));
                *load.get_mut(agent).unwrap() += w.of(work.channel);
                prop_assert!(load[agent] <= a.capacity, "over capacity");
            }
            // Waiting work keeps queue order.
            for pair in waiting.windows(2) {
                prop_assert_ne!(queue_order(&pair[0], &pair[1]), Ordering::Greater);
            }
        }

        #[test]
        fn asking_sampled_candidates_assigns_whenever_asking_everyone_would(
            agents in proptest::collection::vec((arb_agent_of(60), 0u8..4, any::<bool>()), 0..60),
            work in arb_work(),
            previous in proptest::option::of(0u8..60),
            seed in any::<u64>(),
        ) {
            // Mostly online, half of them full: the first sample often has no room and later ones do.
            let mut seen = BTreeSet::new();
            let agents: Vec<AgentState> = agents
                .into_iter()
                .map(|(a, online, full)| AgentState {
                    presence: if online > 0 { Presence::Online } else { a.presence },
                    load: if full { a.capacity } else { a.load },
                    ..a
                })
                .filter(|a| seen.insert(a.id.clone()))
                .collect();
            let work = Work { previous_owner: previous.map(|p| AgentId::parse(&format!("agent-{p}")).unwrap()), ..work };
            let w = Weights::default();
            // The roster's loads are not to be trusted: routing reads them in rounds, as the service does.
            let roster: Vec<AgentState> = agents.iter().map(|a| AgentState { load: 0, ..a.clone() }).collect();
            let asked = candidates(&work, &roster, &w, seed);
            let mut read: Vec<AgentState> = vec![];
            let mut sampled = Decision::Wait(WaitReason::NoAgentQualifies);
            for round in sample_rounds(&asked) {
                read.extend(agents.iter().filter(|a| round.contains(&a.id)).cloned());
                sampled = route(&work, &read, &w, true);
                if matches!(sampled, Decision::Assign { .. }) { break; }
            }
            let everyone = route(&work, &agents, &w, true);
            match (&sampled, &everyone) {
                (Decision::Assign { agent, reason }, Decision::Assign { reason: all, .. }) => {
                    let a = agents.iter().find(|a| &a.id == agent).unwrap();
                    prop_assert!(qualifies(a, &work, &w));
                    prop_assert_eq!(reason, all, "continuity whenever the previous owner has room");
                }
                (Decision::Wait(_), Decision::Wait(_)) => {}
                _ => prop_assert!(false, "sampled {:?}, everyone {:?}", sampled, everyone),
            }
            // A workspace with few candidates is routed exactly as before.
            if asked.len() <= FIRST_SAMPLE {
                prop_assert_eq!(sampled, everyone);
            }
        }

        #[test]
        fn routing_is_deterministic_whatever_the_agents_order(
            agents in proptest::collection::vec(arb_agent(), 1..6),
            work in arb_work(),
        ) {
            let mut seen = BTreeSet::new();
            let agents: Vec<AgentState> = agents.into_iter().filter(|a| seen.insert(a.id.clone())).collect();
            let mut reversed = agents.clone();
            reversed.reverse();
            let w = Weights::default();
            prop_assert_eq!(route(&work, &agents, &w, true), route(&work, &reversed, &w, true));
        }
    }
}
