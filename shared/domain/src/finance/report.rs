//! Report rows: a month's counters as finance reads them, in JSON and CSV. Money is shown twice in
//! JSON (integer micro-units for machines, a fixed six-decimal string for people) and as the
//! decimal string in CSV.

use serde::Serialize;

use super::ledger::{Counter, Dimension, Grouping, Month};
use super::money::{format_micros, Currency, Micros};
use super::Totals;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Amount {
    pub micros: Micros,
    pub amount: String,
}

impl Amount {
    pub fn of(micros: Micros) -> Amount {
        Amount { micros, amount: format_micros(micros) }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReportRow {
    /// The channel, team, agent, conversation or contact (`-` for none; `total` for the total).
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    pub messages: i64,
    pub provider_estimate: Amount,
    pub aws: Amount,
    pub estimated_total: Amount,
    /// The provider-reported cost of the `reconciled` messages.
    pub actual: Amount,
    pub reconciled: i64,
}

fn key_of(d: &Dimension) -> (String, Option<String>) {
    match d {
        Dimension::Total => ("total".into(), None),
        Dimension::Channel { channel, direction } => {
            let dir = serde_json::to_value(direction).ok().and_then(|v| v.as_str().map(str::to_owned));
            (channel.to_string(), dir)
        }
        Dimension::Team { team } => (team.clone().unwrap_or_else(|| "-".into()), None),
        Dimension::Agent { agent } => (agent.as_ref().map_or_else(|| "-".into(), |a| a.to_string()), None),
        Dimension::Conversation { conversation } => (conversation.to_string(), None),
        Dimension::Contact { contact } => (contact.to_string(), None),
    }
}

pub fn row(c: &Counter) -> ReportRow {
    let (key, direction) = key_of(&c.dimension);
    row_of(key, direction, &c.totals)
}

pub fn row_of(key: String, direction: Option<String>, t: &Totals) -> ReportRow {
    ReportRow {
        key,
        direction,
        messages: t.messages,
        provider_estimate: Amount::of(t.provider_micros),
        aws: Amount::of(t.aws_micros),
        estimated_total: Amount::of(t.estimated_micros()),
        actual: Amount::of(t.actual_micros),
        reconciled: t.reconciled,
    }
}

pub const CSV_HEADER: [&str; 11] = [
    "month",
    "by",
    "key",
    "direction",
    "messages",
    "provider_estimate",
    "aws",
    "estimated_total",
    "actual",
    "reconciled_messages",
    "currency",
];

/// The rows as CSV (RFC 4180, quoted where needed), with a header line.
pub fn to_csv(month: Month, by: Grouping, currency: &Currency, rows: &[ReportRow]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER)?;
    for r in rows {
        w.write_record([
            month.to_string().as_str(),
            by.as_str(),
            r.key.as_str(),
            r.direction.as_deref().unwrap_or(""),
            r.messages.to_string().as_str(),
            r.provider_estimate.amount.as_str(),
            r.aws.amount.as_str(),
            r.estimated_total.amount.as_str(),
            r.actual.amount.as_str(),
            r.reconciled.to_string().as_str(),
            currency.as_str(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Channel, Direction};

    #[test]
    fn rows_and_csv_show_exact_decimals() {
        let c = Counter {
            dimension: Dimension::Channel { channel: Channel::Sms, direction: Direction::Outbound },
            totals: Totals {
                messages: 3,
                provider_micros: 33_900,
                aws_micros: 41,
                actual_micros: 23_700,
                reconciled: 3,
            },
        };
        let r = row(&c);
        assert_eq!((r.key.as_str(), r.direction.as_deref()), ("sms", Some("outbound")));
        assert_eq!(r.estimated_total.amount, "0.033941");
        let team = row(&Counter { dimension: Dimension::Team { team: Some("Sales, EMEA".into()) }, totals: c.totals });
        let csv = to_csv(Month::parse("2026-11").unwrap(), Grouping::Channel, &Currency::usd(), &[r, team]).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], CSV_HEADER.join(","));
        assert_eq!(lines[1], "2026-11,channel,sms,outbound,3,0.033900,0.000041,0.033941,0.023700,3,USD");
        assert!(lines[2].contains("\"Sales, EMEA\""), "{}", lines[2]);
    }
}
