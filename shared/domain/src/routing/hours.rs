//! Business hours of a team: a time zone, weekly opening spans and holidays. Outside them nothing
//! is assigned; the customer is acknowledged and the conversation waits (seed 001).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::ParseError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Day {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

/// An opening span within one day, `"09:00"` to `"17:30"` (close after open; a span across
/// midnight is two spans, one on each day).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Span {
    pub open: String,
    pub close: String,
}

/// Dates as `YYYY-MM-DD` strings, as people write them.
mod iso_dates {
    use std::collections::BTreeSet;

    use serde::{de::Error, Deserialize, Deserializer, Serializer};
    use time::macros::format_description;

    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
        format_description!("[year]-[month]-[day]");

    pub fn serialize<S: Serializer>(dates: &BTreeSet<time::Date>, s: S) -> Result<S::Ok, S::Error> {
        let texts: Result<Vec<String>, _> = dates.iter().map(|d| d.format(FORMAT)).collect();
        s.collect_seq(texts.map_err(serde::ser::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<time::Date>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| {
                time::Date::parse(t, FORMAT).map_err(|_| D::Error::custom(format!("{t:?} is not a YYYY-MM-DD date")))
            })
            .collect()
    }
}

fn minutes(hhmm: &str) -> Result<u16, ParseError> {
    let bad = || ParseError::Invalid { kind: "business hours", reason: format!("{hhmm:?} is not HH:MM (00:00-24:00)") };
    let (h, m) = hhmm.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BusinessHours {
    /// An IANA time zone (`Europe/Paris`); daylight saving is applied.
    pub time_zone: String,
    pub weekly: BTreeMap<Day, Vec<Span>>,
    /// Closed all day, in the team's time zone (`"2026-12-25"`).
    #[serde(default, with = "iso_dates")]
    pub holidays: BTreeSet<time::Date>,
}

impl BusinessHours {
    /// Refuses an unknown time zone and malformed or inverted spans.
    pub fn validate(&self) -> Result<(), ParseError> {
        jiff::tz::TimeZone::get(&self.time_zone).map_err(|_| ParseError::Invalid {
            kind: "business hours",
            reason: format!("unknown time zone {:?} (use an IANA name such as Europe/Paris)", self.time_zone),
        })?;
        for (day, spans) in &self.weekly {
            for s in spans {
                if minutes(&s.open)? >= minutes(&s.close)? {
                    return Err(ParseError::Invalid {
                        kind: "business hours",
                        reason: format!("{day:?}: {} must be before {}", s.open, s.close),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether `at` falls within the hours. Malformed hours (never stored: [`Self::validate`]) count
    /// as open, so a bad rule can never silently stop all routing.
    pub fn is_open(&self, at: OffsetDateTime) -> bool {
        let Ok(tz) = jiff::tz::TimeZone::get(&self.time_zone) else { return true };
        let Ok(ts) = jiff::Timestamp::from_second(at.unix_timestamp()) else { return true };
        let local = ts.to_zoned(tz);
        let date = local.date();
        let Ok(month) = time::Month::try_from(date.month() as u8) else { return true };
        if let Ok(d) = time::Date::from_calendar_date(i32::from(date.year()), month, date.day() as u8) {
            if self.holidays.contains(&d) {
                return false;
            }
        }
        let day = weekday(date.weekday());
        let now = local.hour() as u16 * 60 + local.minute() as u16;
        self.weekly.get(&day).into_iter().flatten().any(|s| match (minutes(&s.open), minutes(&s.close)) {
            (Ok(o), Ok(c)) => o <= now && now < c,
            _ => true,
        })
    }
}

impl BusinessHours {
    /// The first minute at or after `at` when the hours are open (`None`: never within 8 days —
    /// no open span at all, or a long closure).
    pub fn next_open(&self, at: OffsetDateTime) -> Option<OffsetDateTime> {
        let start = at.replace_second(0).ok()?.replace_nanosecond(0).ok()?;
        let start = if start < at { start + time::Duration::minutes(1) } else { start };
        (0..8 * 24 * 60).map(|m| start + time::Duration::minutes(m)).find(|t| self.is_open(*t))
    }
}

/// How far ahead the open-time arithmetic looks for opening hours (a year and a day covers any
/// closure a calendar can express).
const HORIZON_DAYS: usize = 367;

fn weekday(w: jiff::civil::Weekday) -> Day {
    match w {
        jiff::civil::Weekday::Monday => Day::Monday,
        jiff::civil::Weekday::Tuesday => Day::Tuesday,
        jiff::civil::Weekday::Wednesday => Day::Wednesday,
        jiff::civil::Weekday::Thursday => Day::Thursday,
        jiff::civil::Weekday::Friday => Day::Friday,
        jiff::civil::Weekday::Saturday => Day::Saturday,
        jiff::civil::Weekday::Sunday => Day::Sunday,
    }
}

fn civil_to_time(d: jiff::civil::Date) -> Option<time::Date> {
    let month = time::Month::try_from(d.month() as u8).ok()?;
    time::Date::from_calendar_date(i32::from(d.year()), month, d.day() as u8).ok()
}

impl BusinessHours {
    /// The open intervals `[open, close)` in UTC, in order, of the local days from the one holding
    /// `from` on (those ending after `from`), up to [`HORIZON_DAYS`] days ahead. Daylight saving is
    /// applied per day (a span in a skipped hour starts at the first valid instant).
    fn open_intervals(&self, from: OffsetDateTime) -> impl Iterator<Item = (OffsetDateTime, OffsetDateTime)> + '_ {
        let tz = jiff::tz::TimeZone::get(&self.time_zone).ok();
        let first = tz.as_ref().and_then(|tz| {
            jiff::Timestamp::from_second(from.unix_timestamp()).ok().map(|ts| ts.to_zoned(tz.clone()).date())
        });
        let days = first.into_iter().flat_map(|d| d.series(jiff::Span::new().days(1)).take(HORIZON_DAYS));
        days.flat_map(move |date| {
            let Some(tz) = tz.clone() else { return vec![] };
            if civil_to_time(date).is_some_and(|d| self.holidays.contains(&d)) {
                return vec![];
            }
            let instant = |date: jiff::civil::Date, minutes: u16| -> Option<OffsetDateTime> {
                let (date, minutes) = if minutes == 24 * 60 { (date.tomorrow().ok()?, 0) } else { (date, minutes) };
                let local = date.at((minutes / 60) as i8, (minutes % 60) as i8, 0, 0);
                let zoned = local.to_zoned(tz.clone()).ok()?;
                OffsetDateTime::from_unix_timestamp(zoned.timestamp().as_second()).ok()
            };
            let mut spans: Vec<(OffsetDateTime, OffsetDateTime)> = self
                .weekly
                .get(&weekday(date.weekday()))
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    let (o, c) = (minutes(&s.open).ok()?, minutes(&s.close).ok()?);
                    Some((instant(date, o)?, instant(date, c)?))
                })
                .filter(|(o, c)| o < c)
                .collect();
            spans.sort();
            spans
        })
        .filter(move |(_, close)| *close > from)
    }

    /// The instant at which `amount` of open time has passed since `from` (nights, weekends and
    /// holidays do not count). `None` when the hours never open within a year.
    pub fn add_open_time(&self, from: OffsetDateTime, amount: time::Duration) -> Option<OffsetDateTime> {
        let mut left = amount.max(time::Duration::ZERO);
        let mut last_close = None;
        for (open, close) in self.open_intervals(from) {
            // Overlapping spans of one day are counted once.
            let start = open.max(from).max(last_close.unwrap_or(open));
            if start >= close {
                continue;
            }
            if left <= close - start {
                return Some(start + left);
            }
            left -= close - start;
            last_close = Some(close);
        }
        None
    }

    /// The open time between `from` and `to`.
    pub fn open_time_between(&self, from: OffsetDateTime, to: OffsetDateTime) -> time::Duration {
        let mut total = time::Duration::ZERO;
        let mut last_close: Option<OffsetDateTime> = None;
        for (open, close) in self.open_intervals(from) {
            if open >= to {
                break;
            }
            let start = open.max(from).max(last_close.unwrap_or(open));
            let end = close.min(to);
            if end > start {
                total += end - start;
            }
            last_close = Some(last_close.map_or(close, |l| l.max(close)));
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn paris_weekdays() -> BusinessHours {
        let span = vec![Span { open: "09:00".into(), close: "17:30".into() }];
        BusinessHours {
            time_zone: "Europe/Paris".into(),
            weekly: [Day::Monday, Day::Tuesday, Day::Wednesday, Day::Thursday, Day::Friday]
                .into_iter()
                .map(|d| (d, span.clone()))
                .collect(),
            holidays: BTreeSet::from([date!(2026 - 12 - 25)]),
        }
    }

    #[test]
    fn holidays_read_and_write_as_plain_dates() {
        let json = serde_json::to_value(paris_weekdays()).unwrap();
        assert_eq!(json["holidays"], serde_json::json!(["2026-12-25"]));
        let back: BusinessHours = serde_json::from_value(json).unwrap();
        assert_eq!(back, paris_weekdays());
        let bad = serde_json::json!({ "time_zone": "UTC", "weekly": {}, "holidays": ["25/12/2026"] });
        assert!(serde_json::from_value::<BusinessHours>(bad).is_err());
    }

    #[test]
    fn open_in_local_time_with_daylight_saving() {
        let h = paris_weekdays();
        h.validate().unwrap();
        // Friday 2026-11-20: Paris is UTC+1 in winter.
        assert!(!h.is_open(datetime!(2026-11-20 07:59 UTC)));
        assert!(h.is_open(datetime!(2026-11-20 08:00 UTC)));
        assert!(h.is_open(datetime!(2026-11-20 16:29 UTC)));
        assert!(!h.is_open(datetime!(2026-11-20 16:30 UTC)));
        // Summer: UTC+2, so 07:00 UTC is 09:00 local.
        assert!(h.is_open(datetime!(2026-07-01 07:00 UTC)));
        // Saturday and a holiday are closed.
        assert!(!h.is_open(datetime!(2026-11-21 10:00 UTC)));
        assert!(!h.is_open(datetime!(2026-12-25 10:00 UTC)));
    }

    #[test]
    fn the_next_opening_is_found_across_weekends_and_holidays() {
        let h = paris_weekdays();
        // Saturday noon → Monday 09:00 Paris (08:00 UTC).
        assert_eq!(h.next_open(datetime!(2026-11-21 12:00:30 UTC)), Some(datetime!(2026-11-23 08:00 UTC)));
        assert_eq!(h.next_open(datetime!(2026-11-20 10:00 UTC)), Some(datetime!(2026-11-20 10:00 UTC)), "open now");
        // Thursday 24 December after hours: the 25th is a holiday, then the weekend: Monday the 28th.
        assert_eq!(h.next_open(datetime!(2026-12-24 17:00 UTC)), Some(datetime!(2026-12-28 08:00 UTC)));
        let never = BusinessHours { time_zone: "UTC".into(), weekly: Default::default(), holidays: Default::default() };
        assert_eq!(never.next_open(datetime!(2026-12-24 17:00 UTC)), None);
    }

    #[test]
    fn bad_hours_are_refused() {
        let mut h = paris_weekdays();
        h.time_zone = "Mars/Olympus".into();
        assert!(h.validate().is_err());
        let mut h = paris_weekdays();
        h.weekly.insert(Day::Sunday, vec![Span { open: "18:00".into(), close: "09:00".into() }]);
        assert!(h.validate().is_err());
        assert!(minutes("24:00").is_ok() && minutes("24:01").is_err() && minutes("9:00").is_err());
    }

    #[test]
    fn open_time_skips_nights_weekends_and_holidays() {
        let h = paris_weekdays();
        let hours = |n| time::Duration::hours(n);
        // Friday 2026-11-20 16:00 UTC (17:00 Paris): half an hour left today, then Monday.
        assert_eq!(h.add_open_time(datetime!(2026-11-20 16:00 UTC), hours(1)), Some(datetime!(2026-11-23 08:30 UTC)));
        // Saturday: nothing counts until Monday 09:00 Paris.
        assert_eq!(h.add_open_time(datetime!(2026-11-21 12:00 UTC), hours(8)), Some(datetime!(2026-11-23 16:00 UTC)));
        // Christmas Eve after hours: the 25th is a holiday, then the weekend.
        assert_eq!(
            h.add_open_time(datetime!(2026-12-24 17:00 UTC), time::Duration::minutes(5)),
            Some(datetime!(2026-12-28 08:05 UTC))
        );
        // Across the switch to summer time (Sunday 2026-03-29): Monday opens at 07:00 UTC.
        assert_eq!(h.add_open_time(datetime!(2026-03-27 16:00 UTC), hours(1)), Some(datetime!(2026-03-30 07:30 UTC)));
        assert_eq!(h.open_time_between(datetime!(2026-11-20 16:00 UTC), datetime!(2026-11-23 08:30 UTC)), hours(1));
        let never = BusinessHours { time_zone: "UTC".into(), weekly: Default::default(), holidays: Default::default() };
        assert_eq!(never.add_open_time(datetime!(2026-12-24 17:00 UTC), hours(1)), None);
    }

    proptest::proptest! {
        /// A due time is never outside open hours, counts exactly the time asked, and never comes
        /// sooner than in calendar time.
        #[test]
        fn a_due_time_falls_in_open_hours_and_counts_exactly(
            start in 1_767_225_600i64..1_830_297_600i64, // 2026-01-01 .. 2028-01-01
            secs in 1i64..(200 * 3600),
        ) {
            let h = paris_weekdays();
            let from = OffsetDateTime::from_unix_timestamp(start).unwrap();
            let amount = time::Duration::seconds(secs);
            let due = h.add_open_time(from, amount).unwrap();
            proptest::prop_assert!(due >= from + amount);
            proptest::prop_assert_eq!(h.open_time_between(from, due), amount);
            // The last counted second was open.
            proptest::prop_assert!(h.is_open(due - time::Duration::seconds(1)));
        }
    }
}
