//! Analytics: what happened, aggregated per workspace × hour × dimension (a channel, an agent, a
//! team), with durations kept as mergeable DDSketches (`sketches-ddsketch`, 1% relative error), so
//! a day, a week or a month is the merge of its hours and its percentiles stay within that error —
//! never an average of averages. Pure: facts in, aggregates and reports out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};
use time::{Duration, OffsetDateTime};

use crate::ids::WorkspaceId;
use crate::model::Channel;

/// The sketches' relative accuracy: a reported percentile is within 1% of the exact one.
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// A notification on its way to analytics, with when it happened (its notification's queue time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnalyticsEvent {
    pub event: crate::events::Notification,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// One thing that happened, with the dimensions it counts under.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Fact {
    /// Unique per fact: a fact seen twice counts once (the consumer keeps a marker per id).
    pub id: String,
    pub workspace: WorkspaceId,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// None for what belongs to no channel (an agent's online time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    pub kind: FactKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FactKind {
    ConversationCreated,
    MessageIn,
    MessageOut,
    /// With the new owner's load against their capacity, the assignment included, when known.
    Assigned {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        load: Option<crate::events::AgentLoad>,
    },
    /// An agent was online `seconds` within the hour of `at` (one fact per hour of a period).
    Online {
        seconds: f64,
    },
    /// The first answer of an agent, `seconds` after the conversation started.
    FirstResponse {
        seconds: f64,
    },
    /// Resolved `seconds` after it started.
    Resolved {
        seconds: f64,
    },
    Reopened,
    Csat {
        score: u8,
    },
    SlaWarning,
    SlaBreach,
    /// The customer moved to `channel` from `from` within one conversation.
    ChannelMigration {
        from: Channel,
    },
}

/// A sketch of durations (seconds), stored as the Java-compatible DDSketch encoding.
#[derive(Clone)]
pub struct Sketch(DDSketch);

impl Sketch {
    /// Every sketch is built from the same decoded empty sketch, so any two merge (a sketch built
    /// with `DDSketch::new` and one decoded from bytes do not compare equal in configuration).
    fn empty() -> DDSketch {
        let proto = DDSketch::new(Config::new(RELATIVE_ACCURACY, 2048, 1e-3));
        DDSketch::from_java_bytes(&proto.to_java_bytes()).expect("an empty sketch decodes")
    }

    pub fn add(&mut self, seconds: f64) {
        self.0.add(seconds.max(0.0));
    }

    pub fn merge(&mut self, other: &Sketch) {
        // Same configuration by construction; a mismatch would be a bug, not data.
        let _ = self.0.merge(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.count() as u64
    }

    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.0.quantile(q).ok().flatten()
    }
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch(Self::empty())
    }
}

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sketch(n={})", self.count())
    }
}

impl PartialEq for Sketch {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_java_bytes() == other.0.to_java_bytes()
    }
}

crate::string_schema!(Sketch, "A DDSketch (base64 of its Java encoding)");

impl Serialize for Sketch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        s.serialize_str(&base64::engine::general_purpose::STANDARD_NO_PAD.encode(self.0.to_java_bytes()))
    }
}

impl<'de> Deserialize<'de> for Sketch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine;
        let s = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD.decode(s).map_err(serde::de::Error::custom)?;
        let mut out = Sketch::default();
        let decoded = DDSketch::from_java_bytes(&bytes).map_err(|e| serde::de::Error::custom(format!("{e:?}")))?;
        out.0.merge(&decoded).map_err(|e| serde::de::Error::custom(format!("{e:?}")))?;
        Ok(out)
    }
}

/// Counters of one hour of one dimension.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Counts {
    #[serde(default)]
    pub conversations: u64,
    #[serde(default)]
    pub messages_in: u64,
    #[serde(default)]
    pub messages_out: u64,
    #[serde(default)]
    pub assigned: u64,
    #[serde(default)]
    pub resolved: u64,
    #[serde(default)]
    pub reopened: u64,
    #[serde(default)]
    pub sla_warnings: u64,
    #[serde(default)]
    pub sla_breaches: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.conversations += o.conversations;
        self.messages_in += o.messages_in;
        self.messages_out += o.messages_out;
        self.assigned += o.assigned;
        self.resolved += o.resolved;
        self.reopened += o.reopened;
        self.sla_warnings += o.sla_warnings;
        self.sla_breaches += o.sla_breaches;
    }
}

/// One hour of one dimension of one workspace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Aggregate {
    #[serde(default)]
    pub counts: Counts,
    #[serde(default)]
    pub first_response: Sketch,
    #[serde(default)]
    pub resolution: Sketch,
    /// Ratings 1 to 5: `csat[0]` counts the 1s.
    #[serde(default)]
    pub csat: [u64; 5],
    /// `from>to` → conversations that moved so.
    #[serde(default)]
    pub migrations: BTreeMap<String, u64>,
    /// Seconds agents were online.
    #[serde(default)]
    pub online_seconds: f64,
    /// The owner's load as a percentage of their capacity at each assignment (utilisation).
    #[serde(default)]
    pub load: Sketch,
    #[serde(default)]
    pub version: u64,
}

impl Aggregate {
    pub fn apply(&mut self, f: &Fact) {
        match &f.kind {
            FactKind::ConversationCreated => self.counts.conversations += 1,
            FactKind::MessageIn => self.counts.messages_in += 1,
            FactKind::MessageOut => self.counts.messages_out += 1,
            FactKind::Assigned { load } => {
                self.counts.assigned += 1;
                if let Some(l) = load.filter(|l| l.capacity > 0) {
                    self.load.add(100.0 * f64::from(l.load) / f64::from(l.capacity));
                }
            }
            FactKind::Online { seconds } => self.online_seconds += seconds.max(0.0),
            FactKind::FirstResponse { seconds } => self.first_response.add(*seconds),
            FactKind::Resolved { seconds } => {
                self.counts.resolved += 1;
                self.resolution.add(*seconds);
            }
            FactKind::Reopened => self.counts.reopened += 1,
            FactKind::Csat { score } => {
                if let Some(slot) = usize::from(*score).checked_sub(1).and_then(|i| self.csat.get_mut(i)) {
                    *slot += 1;
                }
            }
            FactKind::SlaWarning => self.counts.sla_warnings += 1,
            FactKind::SlaBreach => self.counts.sla_breaches += 1,
            FactKind::ChannelMigration { from } => {
                if let Some(to) = f.channel {
                    *self.migrations.entry(format!("{from}>{to}")).or_default() += 1;
                }
            }
        }
    }

    pub fn merge(&mut self, o: &Aggregate) {
        self.counts.add(&o.counts);
        self.first_response.merge(&o.first_response);
        self.resolution.merge(&o.resolution);
        for (a, b) in self.csat.iter_mut().zip(o.csat) {
            *a += b;
        }
        for (k, v) in &o.migrations {
            *self.migrations.entry(k.clone()).or_default() += v;
        }
        self.online_seconds += o.online_seconds;
        self.load.merge(&o.load);
    }
}

/// The dimensions a fact counts under: its channel, and its agent and team when it has them.
pub fn dimensions(f: &Fact) -> Vec<String> {
    let mut out: Vec<String> = f.channel.iter().map(|c| format!("channel:{c}")).collect();
    if let Some(a) = &f.agent {
        out.push(format!("agent:{a}"));
    }
    if let Some(t) = &f.team {
        out.push(format!("team:{t}"));
    }
    out
}

/// The hour a time falls in, as the aggregates name it: `2026-12-06T22` (UTC).
pub fn hour_of(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02}T{:02}", at.year(), u8::from(at.month()), at.day(), at.hour())
}

/// Every hour from `from` to `to` (inclusive of the hour `to` falls in), as `hour_of` names them.
pub fn hours_between(from: OffsetDateTime, to: OffsetDateTime) -> Vec<String> {
    let mut out = vec![];
    let mut at =
        from.replace_minute(0).and_then(|t| t.replace_second(0)).and_then(|t| t.replace_nanosecond(0)).unwrap_or(from);
    while at <= to {
        out.push(hour_of(at));
        at += Duration::hours(1);
    }
    out
}

/// The longest an online period counts: a period whose end was never recorded (a socket that
/// vanished without its disconnect) must not fill days.
pub const MAX_ONLINE_PERIOD: Duration = Duration::hours(12);

/// An online period cut at hour boundaries: each piece's start and its seconds, which sum to the
/// period's length (capped at [`MAX_ONLINE_PERIOD`]).
pub fn online_pieces(since: OffsetDateTime, until: OffsetDateTime) -> Vec<(OffsetDateTime, f64)> {
    let until = until.min(since + MAX_ONLINE_PERIOD);
    let mut out = vec![];
    let mut at = since;
    while at < until {
        let hour = at.replace_minute(0).and_then(|t| t.replace_second(0)).and_then(|t| t.replace_nanosecond(0));
        let next = hour.map_or(until, |h| (h + Duration::hours(1)).min(until));
        out.push((at, (next - at).as_seconds_f64()));
        at = next;
    }
    out
}

/// Percentiles of a duration sketch.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Percentiles {
    pub count: u64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl Percentiles {
    pub fn of(s: &Sketch) -> Self {
        Percentiles {
            count: s.count(),
            p50: s.quantile(0.5),
            p90: s.quantile(0.9),
            p95: s.quantile(0.95),
            p99: s.quantile(0.99),
        }
    }
}

/// One row of a report: a dimension value (or an hour of day) over the range.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Row {
    pub key: String,
    pub counts: Counts,
    pub first_response_seconds: Percentiles,
    pub resolution_seconds: Percentiles,
    pub csat: [u64; 5],
    /// The share of ratings of 4 or 5 (none without ratings).
    pub csat_score: Option<f64>,
    pub migrations: BTreeMap<String, u64>,
    /// Hours agents were online (agent and team rows).
    pub online_hours: f64,
    /// Conversations assigned per online hour (when anyone was online).
    pub assigned_per_online_hour: Option<f64>,
    /// The owner's load as a percentage of their capacity when each conversation was assigned.
    pub load_at_assignment_pct: Percentiles,
}

impl Row {
    pub fn of(key: String, a: &Aggregate) -> Row {
        let rated: u64 = a.csat.iter().sum();
        Row {
            key,
            counts: a.counts.clone(),
            first_response_seconds: Percentiles::of(&a.first_response),
            resolution_seconds: Percentiles::of(&a.resolution),
            csat: a.csat,
            csat_score: (rated > 0).then(|| (a.csat[3] + a.csat[4]) as f64 / rated as f64),
            migrations: a.migrations.clone(),
            online_hours: a.online_seconds / 3600.0,
            assigned_per_online_hour: (a.online_seconds >= 1.0)
                .then(|| a.counts.assigned as f64 / (a.online_seconds / 3600.0)),
            load_at_assignment_pct: Percentiles::of(&a.load),
        }
    }
}

/// A report over stored hours: one row per dimension value, and one per hour of day (UTC) merged
/// across the dimension values of `kind`.
pub fn report(hours: &[(String, String, Aggregate)], kind: &str) -> (Vec<Row>, Vec<Row>) {
    let mut by_key: BTreeMap<String, Aggregate> = BTreeMap::new();
    let mut by_hour: BTreeMap<String, Aggregate> = BTreeMap::new();
    let prefix = format!("{kind}:");
    for (hour, dimension, a) in hours {
        let Some(value) = dimension.strip_prefix(&prefix) else { continue };
        by_key.entry(value.to_owned()).or_default().merge(a);
        let hod = hour.rsplit('T').next().unwrap_or("00").to_owned();
        by_hour.entry(hod).or_default().merge(a);
    }
    let rows = by_key.into_iter().map(|(k, a)| Row::of(k, &a)).collect();
    let hod = by_hour.into_iter().map(|(k, a)| Row::of(k, &a)).collect();
    (rows, hod)
}

/// The report as CSV: one line per row.
pub fn to_csv(rows: &[Row]) -> String {
    let mut w = csv::Writer::from_writer(vec![]);
    let _ = w.write_record([
        "key",
        "conversations",
        "messages_in",
        "messages_out",
        "resolved",
        "reopened",
        "sla_breaches",
        "frt_p50_s",
        "frt_p90_s",
        "frt_p95_s",
        "frt_p99_s",
        "resolution_p50_s",
        "resolution_p90_s",
        "resolution_p95_s",
        "resolution_p99_s",
        "csat_responses",
        "csat_score",
        "assigned",
        "online_hours",
        "load_at_assignment_p50_pct",
        "load_at_assignment_p90_pct",
    ]);
    let f = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_default();
    for r in rows {
        let _ = w.write_record([
            r.key.clone(),
            r.counts.conversations.to_string(),
            r.counts.messages_in.to_string(),
            r.counts.messages_out.to_string(),
            r.counts.resolved.to_string(),
            r.counts.reopened.to_string(),
            r.counts.sla_breaches.to_string(),
            f(r.first_response_seconds.p50),
            f(r.first_response_seconds.p90),
            f(r.first_response_seconds.p95),
            f(r.first_response_seconds.p99),
            f(r.resolution_seconds.p50),
            f(r.resolution_seconds.p90),
            f(r.resolution_seconds.p95),
            f(r.resolution_seconds.p99),
            r.csat.iter().sum::<u64>().to_string(),
            r.csat_score.map(|s| format!("{s:.3}")).unwrap_or_default(),
            r.counts.assigned.to_string(),
            format!("{:.2}", r.online_hours),
            f(r.load_at_assignment_pct.p50),
            f(r.load_at_assignment_pct.p90),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(i: u64, at: OffsetDateTime, channel: Channel, kind: FactKind) -> Fact {
        Fact {
            id: format!("f{i}"),
            workspace: WorkspaceId::parse("acme").unwrap(),
            at,
            channel: Some(channel),
            agent: None,
            team: None,
            kind,
        }
    }

    /// A deterministic generator (no RNG crate): xorshift.
    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % 1_000_000) as f64 / 1_000_000.0
        }
    }

    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() as f64 - 1.0)) as usize]
    }

    #[test]
    fn percentiles_over_a_month_of_hourly_sketches_are_within_the_stated_error_of_the_exact_ones() {
        // 12,000 conversations over 30 days on three channels; durations spread from seconds to
        // days (log-uniform), as real response and resolution times are.
        let start = OffsetDateTime::from_unix_timestamp(1_764_547_200).unwrap();
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let mut stored: BTreeMap<(String, String), Aggregate> = BTreeMap::new();
        let mut raw: BTreeMap<Channel, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for i in 0..12_000u64 {
            let channel = [Channel::Sms, Channel::Email, Channel::Whatsapp][(i % 3) as usize];
            let at = start + Duration::seconds((g.next() * 30.0 * 86_400.0) as i64);
            let frt = 10f64.powf(g.next() * 4.0); // 1 s .. ~3 h
            let res = frt + 10f64.powf(1.0 + g.next() * 4.5); // up to ~3.6 days more
            for kind in [FactKind::FirstResponse { seconds: frt }, FactKind::Resolved { seconds: res }] {
                let f = fact(i, at, channel, kind);
                for d in dimensions(&f) {
                    stored.entry((hour_of(f.at), d)).or_default().apply(&f);
                }
            }
            let e = raw.entry(channel).or_default();
            e.0.push(frt);
            e.1.push(res);
        }
        // Through storage: every hourly aggregate is serialized and read back before merging.
        let hours: Vec<(String, String, Aggregate)> = stored
            .into_iter()
            .map(|((h, d), a)| (h, d, serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap()))
            .collect();
        assert!(hours.len() > 1500, "hourly items: {}", hours.len());
        let (rows, by_hour) = report(&hours, "channel");
        assert_eq!(rows.len(), 3);
        assert_eq!(by_hour.len(), 24);
        for row in rows {
            let ch: Channel = serde_json::from_value(serde_json::Value::from(row.key.clone())).unwrap();
            let (mut frt, mut res) = raw.remove(&ch).unwrap();
            frt.sort_by(f64::total_cmp);
            res.sort_by(f64::total_cmp);
            assert_eq!(row.resolution_seconds.count as usize, res.len());
            assert_eq!(row.counts.resolved as usize, res.len());
            for (q, got_frt, got_res) in [
                (0.5, row.first_response_seconds.p50, row.resolution_seconds.p50),
                (0.9, row.first_response_seconds.p90, row.resolution_seconds.p90),
                (0.95, row.first_response_seconds.p95, row.resolution_seconds.p95),
                (0.99, row.first_response_seconds.p99, row.resolution_seconds.p99),
            ] {
                for (got, sorted) in [(got_frt.unwrap(), &frt), (got_res.unwrap(), &res)] {
                    let want = exact(sorted, q);
                    let err = (got - want).abs() / want;
                    assert!(err <= RELATIVE_ACCURACY + 1e-9, "{ch} p{q}: {got} vs exact {want} ({err:.4})");
                }
            }
        }
    }

    #[test]
    fn facts_count_under_their_dimensions_and_reports_export_as_csv() {
        let at = OffsetDateTime::from_unix_timestamp(1_764_547_200).unwrap();
        let mut f = fact(1, at, Channel::Sms, FactKind::Csat { score: 4 });
        f.agent = Some("ann".into());
        assert_eq!(dimensions(&f), ["channel:sms", "agent:ann"]);
        let mut a = Aggregate::default();
        a.apply(&f);
        a.apply(&fact(2, at, Channel::Sms, FactKind::Csat { score: 1 }));
        a.apply(&fact(3, at, Channel::Email, FactKind::ChannelMigration { from: Channel::Sms }));
        a.apply(&fact(4, at, Channel::Sms, FactKind::Csat { score: 9 }));
        assert_eq!(a.csat, [1, 0, 0, 1, 0], "out-of-range scores are ignored");
        assert_eq!(a.migrations["sms>email"], 1);
        let row = Row::of("sms".into(), &a);
        assert_eq!(row.csat_score, Some(0.5));
        let csv = to_csv(&[row]);
        assert!(csv.starts_with("key,conversations,"));
        assert!(csv.lines().nth(1).unwrap().ends_with(",2,0.500,0,0.00,,"), "{csv}");
        assert_eq!(hour_of(at), "2025-12-01T00");
        assert_eq!(hours_between(at, at + Duration::minutes(150)).len(), 3);
    }

    #[test]
    fn online_time_and_load_make_an_agents_utilisation() {
        let at = OffsetDateTime::from_unix_timestamp(1_764_547_200).unwrap(); // 00:00
        let since = at + Duration::minutes(40);
        let pieces = online_pieces(since, since + Duration::minutes(90));
        assert_eq!(pieces, vec![(since, 1200.0), (at + Duration::hours(1), 3600.0), (at + Duration::hours(2), 600.0)]);
        let capped = online_pieces(since, since + Duration::days(3));
        assert_eq!(capped.iter().map(|p| p.1).sum::<f64>(), MAX_ONLINE_PERIOD.as_seconds_f64());
        assert!(online_pieces(since, since).is_empty() && online_pieces(since, at).is_empty());

        let mut stored: BTreeMap<(String, String), Aggregate> = BTreeMap::new();
        let mut push = |f: Fact| {
            for d in dimensions(&f) {
                stored.entry((hour_of(f.at), d)).or_default().apply(&f);
            }
        };
        for (i, (start, secs)) in pieces.into_iter().enumerate() {
            let mut f = fact(i as u64, start, Channel::Sms, FactKind::Online { seconds: secs });
            f.channel = None;
            f.agent = Some("ann".into());
            push(f);
        }
        for (i, load) in [(10, 300, 600), (11, 600, 600), (12, 150, 600)].map(|(i, l, c)| (i, (l, c))) {
            let kind = FactKind::Assigned { load: Some(crate::events::AgentLoad { load: load.0, capacity: load.1 }) };
            let mut f = fact(i, at + Duration::minutes(70), Channel::Whatsapp, kind);
            f.agent = Some("ann".into());
            push(f);
        }
        let hours: Vec<_> = stored.into_iter().map(|((h, d), a)| (h, d, a)).collect();
        assert!(hours.iter().all(|(_, d, a)| !d.starts_with("channel:") || a.online_seconds == 0.0));
        let (rows, _) = report(&hours, "agent");
        let ann = &rows[0];
        assert_eq!((ann.key.as_str(), ann.online_hours, ann.counts.assigned), ("ann", 1.5, 3));
        assert_eq!(ann.assigned_per_online_hour, Some(2.0));
        let p50 = ann.load_at_assignment_pct.p50.unwrap();
        assert!((p50 - 50.0).abs() <= 0.5 + 1e-9, "median load 50% of capacity, got {p50}");
        let (channels, _) = report(&hours, "channel");
        assert_eq!(channels[0].online_hours, 0.0, "online time belongs to no channel");
    }
}
