//! What an agent sends on WhatsApp beyond text and files, checked against the Cloud API's limits
//! before anything is stored: reply buttons, a list, a reaction to one of the customer's messages,
//! a location. Each becomes the message's `rich` content, which the adapter sends as Meta
//! documents it (`type: interactive | reaction | location`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ParseError;

/// Reply buttons (up to 3) or a list (up to 10 rows in up to 10 sections), with the text above
/// them and an optional header and footer.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Interactive {
    Buttons {
        body: String,
        buttons: Vec<Choice>,
        #[serde(default)]
        header: Option<String>,
        #[serde(default)]
        footer: Option<String>,
    },
    List {
        body: String,
        /// The label of the button that opens the list.
        button: String,
        sections: Vec<Section>,
        #[serde(default)]
        header: Option<String>,
        #[serde(default)]
        footer: Option<String>,
    },
}

/// A button or a list row: what the customer taps comes back with its `id`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    pub id: String,
    pub title: String,
    /// List rows only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Section {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub rows: Vec<Choice>,
}

/// A pin on the map.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

fn invalid(kind: &'static str, reason: impl Into<String>) -> ParseError {
    ParseError::Invalid { kind, reason: reason.into() }
}

fn within(kind: &'static str, text: &str, max: usize) -> Result<(), ParseError> {
    if text.trim().is_empty() || text.chars().count() > max {
        return Err(invalid(kind, format!("1-{max} characters")));
    }
    Ok(())
}

fn optional_within(kind: &'static str, text: &Option<String>, max: usize) -> Result<(), ParseError> {
    text.as_deref().map_or(Ok(()), |t| within(kind, t, max))
}

impl Interactive {
    /// Checks Meta's limits (WhatsApp refuses the whole message otherwise).
    pub fn check(&self) -> Result<(), ParseError> {
        let (body, header, footer) = match self {
            Interactive::Buttons { body, header, footer, .. } | Interactive::List { body, header, footer, .. } => {
                (body, header, footer)
            }
        };
        within("interactive body", body, 1024)?;
        optional_within("interactive header", header, 60)?;
        optional_within("interactive footer", footer, 60)?;
        let mut ids = std::collections::BTreeSet::new();
        match self {
            Interactive::Buttons { buttons, .. } => {
                if !(1..=3).contains(&buttons.len()) {
                    return Err(invalid("reply buttons", "1 to 3 buttons"));
                }
                for b in buttons {
                    within("button title", &b.title, 20)?;
                    within("button id", &b.id, 256)?;
                    if b.description.is_some() {
                        return Err(invalid("reply buttons", "buttons have no description (list rows do)"));
                    }
                    if !ids.insert(b.id.as_str()) {
                        return Err(invalid("reply buttons", format!("the id {:?} is used twice", b.id)));
                    }
                }
            }
            Interactive::List { button, sections, .. } => {
                within("list button", button, 20)?;
                if !(1..=10).contains(&sections.len()) {
                    return Err(invalid("list", "1 to 10 sections"));
                }
                let rows: usize = sections.iter().map(|s| s.rows.len()).sum();
                if !(1..=10).contains(&rows) {
                    return Err(invalid("list", "1 to 10 rows in all"));
                }
                for s in sections {
                    if sections.len() > 1 && s.title.is_none() {
                        return Err(invalid("list section", "every section needs a title when there are several"));
                    }
                    optional_within("list section title", &s.title, 24)?;
                    for r in &s.rows {
                        within("list row title", &r.title, 24)?;
                        within("list row id", &r.id, 200)?;
                        optional_within("list row description", &r.description, 72)?;
                        if !ids.insert(r.id.as_str()) {
                            return Err(invalid("list", format!("the row id {:?} is used twice", r.id)));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The text the inbox shows (the body above the choices).
    pub fn body(&self) -> &str {
        match self {
            Interactive::Buttons { body, .. } | Interactive::List { body, .. } => body,
        }
    }

    /// The Cloud API's `interactive` object.
    pub fn cloud_api(&self) -> Value {
        let text = |t: &Option<String>| t.as_ref().map(|t| json!({ "text": t }));
        let (mut v, header, footer) = match self {
            Interactive::Buttons { body, buttons, header, footer } => {
                let buttons: Vec<Value> = buttons
                    .iter()
                    .map(|b| json!({ "type": "reply", "reply": { "id": b.id, "title": b.title } }))
                    .collect();
                (
                    json!({ "type": "button", "body": { "text": body }, "action": { "buttons": buttons } }),
                    header,
                    footer,
                )
            }
            Interactive::List { body, button, sections, header, footer } => {
                let sections: Vec<Value> = sections
                    .iter()
                    .map(|s| {
                        let rows: Vec<Value> =
                            s.rows.iter().map(|r| serde_json::to_value(r).unwrap_or_default()).collect();
                        let mut j = json!({ "rows": rows });
                        if let Some(t) = &s.title {
                            j["title"] = t.clone().into();
                        }
                        j
                    })
                    .collect();
                let v = json!({ "type": "list", "body": { "text": body },
                    "action": { "button": button, "sections": sections } });
                (v, header, footer)
            }
        };
        if let Some(h) = header {
            v["header"] = json!({ "type": "text", "text": h });
        }
        if let Some(f) = text(footer) {
            v["footer"] = f;
        }
        v
    }
}

impl Location {
    pub fn check(&self) -> Result<(), ParseError> {
        if !(-90.0..=90.0).contains(&self.latitude) || !(-180.0..=180.0).contains(&self.longitude) {
            return Err(invalid("location", "latitude -90..90 and longitude -180..180"));
        }
        optional_within("location name", &self.name, 1000)?;
        optional_within("location address", &self.address, 1000)
    }

    /// The text the inbox shows.
    pub fn summary(&self) -> String {
        let at = format!("{:.6}, {:.6}", self.latitude, self.longitude);
        match (&self.name, &self.address) {
            (Some(n), Some(a)) => format!("📍 {n}, {a}"),
            (Some(n), None) => format!("📍 {n} ({at})"),
            (None, Some(a)) => format!("📍 {a}"),
            (None, None) => format!("📍 {at}"),
        }
    }
}

/// An emoji reaction: one emoji (a grapheme of a few code points), or empty to take it back.
pub fn check_emoji(emoji: &str) -> Result<(), ParseError> {
    let chars = emoji.chars().count();
    if chars > 10 || emoji.chars().any(|c| c.is_ascii_alphanumeric() || c.is_whitespace()) {
        return Err(invalid("reaction", "one emoji, or \"\" to remove the reaction"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(id: &str, title: &str) -> Choice {
        Choice { id: id.into(), title: title.into(), description: None }
    }

    #[test]
    fn buttons_follow_metas_limits_and_render_as_documented() {
        let ok = Interactive::Buttons {
            body: "Which day suits you?".into(),
            buttons: vec![choice("mon", "Monday"), choice("tue", "Tuesday")],
            header: Some("Delivery".into()),
            footer: None,
        };
        ok.check().unwrap();
        assert_eq!(
            ok.cloud_api(),
            json!({ "type": "button", "header": { "type": "text", "text": "Delivery" },
                "body": { "text": "Which day suits you?" },
                "action": { "buttons": [
                    { "type": "reply", "reply": { "id": "mon", "title": "Monday" } },
                    { "type": "reply", "reply": { "id": "tue", "title": "Tuesday" } } ] } })
        );
        let four = Interactive::Buttons {
            body: "x".into(),
            buttons: (0..4).map(|i| choice(&i.to_string(), "t")).collect(),
            header: None,
            footer: None,
        };
        assert!(four.check().is_err());
        let long = Interactive::Buttons {
            body: "x".into(),
            buttons: vec![choice("a", "a title longer than twenty")],
            header: None,
            footer: None,
        };
        assert!(long.check().is_err());
        let twice = Interactive::Buttons {
            body: "x".into(),
            buttons: vec![choice("a", "A"), choice("a", "B")],
            header: None,
            footer: None,
        };
        assert!(twice.check().is_err());
    }

    #[test]
    fn lists_follow_metas_limits() {
        let section = |title: Option<&str>, n: usize| Section {
            title: title.map(str::to_owned),
            rows: (0..n).map(|i| choice(&format!("{title:?}{i}"), "Row")).collect(),
        };
        let list = |sections| Interactive::List {
            body: "Pick a store".into(),
            button: "Stores".into(),
            sections,
            header: None,
            footer: Some("Open 9-5".into()),
        };
        let ok = list(vec![section(Some("North"), 2), section(Some("South"), 3)]);
        ok.check().unwrap();
        let v = ok.cloud_api();
        assert_eq!(v["action"]["sections"][1]["rows"].as_array().unwrap().len(), 3);
        assert_eq!(v["footer"]["text"], "Open 9-5");
        assert!(list(vec![section(Some("A"), 6), section(Some("B"), 5)]).check().is_err(), "11 rows");
        assert!(list(vec![section(None, 1), section(Some("B"), 1)]).check().is_err(), "untitled among several");
        assert!(list(vec![]).check().is_err());
    }

    #[test]
    fn locations_and_reactions_are_checked() {
        let l = Location { latitude: 51.5072, longitude: -0.1276, name: Some("Acme London".into()), address: None };
        l.check().unwrap();
        assert!(l.summary().contains("Acme London"));
        assert!(Location { latitude: 91.0, ..l.clone() }.check().is_err());
        assert!(check_emoji("👍").is_ok() && check_emoji("").is_ok() && check_emoji("👍🏽").is_ok());
        assert!(check_emoji("ok").is_err());
    }
}
