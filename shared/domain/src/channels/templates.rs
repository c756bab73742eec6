//! The per-workspace registry of WhatsApp message templates (seed 000: outside the 24-hour window
//! WhatsApp accepts only templates Meta approved). Each entry mirrors a template of the WhatsApp
//! Business Account: name, language, category (which prices it), body with its `{{1}}`…`{{n}}`
//! variables, its optional header, footer and buttons, and Meta's review status. Admins submit
//! templates to Meta through the API (`POST /whatsapp/templates`), Meta's
//! `message_template_status_update`, `template_category_update` and
//! `message_template_quality_update` webhooks keep the entry in step, and templates made in
//! WhatsApp Manager can be registered by hand. A send is checked against the entry before anything
//! is queued (approved, exactly its parameters), and its category prices the message.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

pub use super::whatsapp::TemplateSend;

use crate::error::ParseError;
use crate::finance::pricing::WhatsappCategory;
use crate::ids::AgentId;

/// Meta's review status of a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TemplateStatus {
    Approved,
    Pending,
    Rejected,
    Paused,
    Disabled,
}

impl TemplateStatus {
    /// Meta's review event (`event` of `message_template_status_update`) as the status it leaves
    /// the template in; `None` for events that do not change whether it may be sent (locks).
    pub fn from_meta_event(event: &str) -> Option<TemplateStatus> {
        Some(match event {
            "APPROVED" | "REINSTATED" | "UNARCHIVED" | "UNPAUSED" => TemplateStatus::Approved,
            "PENDING" | "IN_APPEAL" | "PENDING_INTERNAL" => TemplateStatus::Pending,
            "REJECTED" => TemplateStatus::Rejected,
            "PAUSED" | "FLAGGED" => TemplateStatus::Paused,
            "DISABLED" | "DELETED" | "PENDING_DELETION" | "ARCHIVED" => TemplateStatus::Disabled,
            _ => return None,
        })
    }
}

/// Meta's quality rating of a template, from its customers' feedback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TemplateQuality {
    Green,
    Yellow,
    Red,
    Unknown,
}

impl TemplateQuality {
    pub fn from_meta(score: &str) -> TemplateQuality {
        match score {
            "GREEN" | "HIGH" => TemplateQuality::Green,
            "YELLOW" | "MEDIUM" => TemplateQuality::Yellow,
            "RED" | "LOW" => TemplateQuality::Red,
            _ => TemplateQuality::Unknown,
        }
    }
}

/// A template's header: text (with at most one variable, `{{1}}`) or a media type whose file each
/// send names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum TemplateHeader {
    Text { text: String },
    Image,
    Video,
    Document,
}

/// A template's button, as Meta's `BUTTONS` component lists them (their order is their index).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TemplateButton {
    /// Its tap comes back as a `button` message carrying the send's payload.
    QuickReply {
        text: String,
    },
    /// A link; a `{{1}}` at its end is completed by each send.
    Url {
        text: String,
        url: String,
    },
    PhoneNumber {
        text: String,
        phone_number: String,
    },
}

/// What a send gives a template's header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum HeaderParameter {
    /// A text header's `{{1}}`.
    Text { text: String },
    /// A media header's file: a public HTTPS link Meta fetches.
    Media { link: String },
}

/// What a send gives one of a template's buttons, by its index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ButtonParameter {
    /// The end of a URL button's link (its `{{1}}`).
    Url { index: usize, text: String },
    /// What the tap of a quick-reply button brings back.
    QuickReply { index: usize, payload: String },
}

impl ButtonParameter {
    pub fn index(&self) -> usize {
        match self {
            ButtonParameter::Url { index, .. } | ButtonParameter::QuickReply { index, .. } => *index,
        }
    }
}

/// Meta's review of a template, from its WhatsApp Business Account webhooks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateReview {
    /// Meta's id of the template (`message_template_id`).
    pub meta_id: String,
    pub name: String,
    pub language: String,
    /// When Meta sent it (the entry's `time`): an older review never overrides a newer one.
    pub at: OffsetDateTime,
    pub change: ReviewChange,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReviewChange {
    Status { status: TemplateStatus, reason: Option<String> },
    Category(WhatsappCategory),
    Quality(TemplateQuality),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhatsAppTemplate {
    pub name: String,
    pub language: String,
    pub category: WhatsappCategory,
    pub body: String,
    pub status: TemplateStatus,
    pub updated_by: AgentId,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<TemplateHeader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<TemplateButton>,
    /// Meta's id, once submitted through the API (its reviews find the template by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_id: Option<String>,
    /// Why Meta rejected or paused it, as Meta says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<TemplateQuality>,
    /// The time of the last review of Meta's applied.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub reviewed_at: Option<OffsetDateTime>,
}

/// What Meta needs to review variables: an example for each (`POST /{waba}/message_templates`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Examples {
    /// One per body variable, in order.
    #[serde(default)]
    pub body: Vec<String>,
    /// A text header's variable.
    #[serde(default)]
    pub header_text: Option<String>,
    /// A media header's sample, as Meta's Resumable Upload API named it (`4::aW…`).
    #[serde(default)]
    pub header_handle: Option<String>,
    /// A full example link for each URL button with a variable, in button order.
    #[serde(default)]
    pub urls: Vec<String>,
}

/// Limits of Meta's template components.
pub const MAX_HEADER_TEXT: usize = 60;
pub const MAX_FOOTER: usize = 60;
pub const MAX_BUTTONS: usize = 10;
pub const MAX_BUTTON_TEXT: usize = 25;

/// Why a template send is refused: always the sender's to fix (422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("no WhatsApp template {name:?} in {language:?} is registered (see GET /whatsapp/templates)")]
    Unknown { name: String, language: String },
    #[error("WhatsApp template {name:?} is {status:?}, not approved: Meta refuses it")]
    NotApproved { name: String, status: TemplateStatus },
    #[error("WhatsApp template {name:?} takes {expected} parameters, {given} given")]
    Parameters { name: String, expected: usize, given: usize },
    #[error("WhatsApp template {name:?}: {reason}")]
    Components { name: String, reason: String },
}

/// Template names as WhatsApp allows them: lower-case letters, digits and underscores.
pub fn parse_name(name: &str) -> Result<String, ParseError> {
    let ok = !name.is_empty()
        && name.len() <= 512
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(name.to_owned())
    } else {
        Err(ParseError::Invalid { kind: "template name", reason: "lower-case letters, digits and _ only".into() })
    }
}

/// Language codes as WhatsApp spells them (`en`, `en_US`, `pt_BR`).
pub fn parse_language(language: &str) -> Result<String, ParseError> {
    let ok = (2..=8).contains(&language.len())
        && language.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
        && language.as_bytes()[..2].iter().all(u8::is_ascii_lowercase);
    if ok {
        Ok(language.to_owned())
    } else {
        Err(ParseError::Invalid { kind: "template language", reason: "a code such as en or en_US".into() })
    }
}

/// The number of variables in a body: `{{1}}` to `{{n}}`, each used at least once, none skipped.
pub fn variables(body: &str) -> Result<usize, ParseError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| ParseError::Invalid { kind: "template body", reason: "a {{ without its }}".into() })?;
        let n: usize = after[..end].trim().parse().map_err(|_| ParseError::Invalid {
            kind: "template body",
            reason: format!("{{{{{}}}}} is not a numbered variable", &after[..end]),
        })?;
        seen.insert(n);
        rest = &after[end + 2..];
    }
    let count = seen.len();
    if seen.iter().copied().eq(1..=count) {
        Ok(count)
    } else {
        Err(ParseError::Invalid {
            kind: "template body",
            reason: "variables must be {{1}}..{{n}} with none skipped".into(),
        })
    }
}

impl WhatsAppTemplate {
    pub fn new(
        name: &str,
        language: &str,
        category: WhatsappCategory,
        body: &str,
        status: TemplateStatus,
        by: AgentId,
        at: OffsetDateTime,
    ) -> Result<Self, ParseError> {
        if body.trim().is_empty() || body.chars().count() > 1024 {
            return Err(ParseError::Invalid { kind: "template body", reason: "1-1024 characters".into() });
        }
        variables(body)?;
        Ok(Self {
            name: parse_name(name)?,
            language: parse_language(language)?,
            category,
            body: body.to_owned(),
            status,
            updated_by: by,
            updated_at: at,
            header: None,
            footer: None,
            buttons: Vec::new(),
            meta_id: None,
            reason: None,
            quality: None,
            reviewed_at: None,
        })
    }

    /// The template with a header, footer and buttons, each within Meta's limits.
    pub fn with_components(
        mut self,
        header: Option<TemplateHeader>,
        footer: Option<String>,
        buttons: Vec<TemplateButton>,
    ) -> Result<Self, ParseError> {
        let invalid = |kind: &'static str, reason: &str| ParseError::Invalid { kind, reason: reason.into() };
        if let Some(TemplateHeader::Text { text }) = &header {
            if text.trim().is_empty() || text.chars().count() > MAX_HEADER_TEXT {
                return Err(invalid("template header", "1-60 characters"));
            }
            if variables(text)? > 1 {
                return Err(invalid("template header", "at most one variable, {{1}}"));
            }
        }
        if let Some(f) = &footer {
            if f.trim().is_empty() || f.chars().count() > MAX_FOOTER || f.contains("{{") {
                return Err(invalid("template footer", "1-60 characters, no variables"));
            }
        }
        if buttons.len() > MAX_BUTTONS {
            return Err(invalid("template buttons", "at most 10"));
        }
        let count = |f: fn(&TemplateButton) -> bool| buttons.iter().filter(|b| f(b)).count();
        if count(|b| matches!(b, TemplateButton::Url { .. })) > 2 {
            return Err(invalid("template buttons", "at most 2 URL buttons"));
        }
        if count(|b| matches!(b, TemplateButton::PhoneNumber { .. })) > 1 {
            return Err(invalid("template buttons", "at most 1 phone number button"));
        }
        for b in &buttons {
            let text = match b {
                TemplateButton::QuickReply { text } => text,
                TemplateButton::Url { text, url } => {
                    let var = url.find("{{");
                    let ok =
                        url.starts_with("https://") && url.len() <= 2000 && var.is_none_or(|i| &url[i..] == "{{1}}");
                    if !ok {
                        return Err(invalid("template URL button", "an https:// link, with {{1}} only at its end"));
                    }
                    text
                }
                TemplateButton::PhoneNumber { text, phone_number } => {
                    crate::address::PhoneNumber::parse(phone_number)
                        .map_err(|_| invalid("template phone button", "an E.164 number"))?;
                    text
                }
            };
            if text.trim().is_empty() || text.chars().count() > MAX_BUTTON_TEXT {
                return Err(invalid("template button text", "1-25 characters"));
            }
        }
        self.header = header;
        self.footer = footer;
        self.buttons = buttons;
        Ok(self)
    }

    /// The variables a header takes (0 or 1).
    fn header_variables(&self) -> usize {
        match &self.header {
            Some(TemplateHeader::Text { text }) => variables(text).unwrap_or(0),
            _ => 0,
        }
    }

    /// The body of Meta's `POST /{waba-id}/message_templates` (and of an edit, `POST
    /// /{template-id}`), with the examples its review needs for each variable.
    pub fn submission(&self, examples: &Examples) -> Result<Value, ParseError> {
        let missing = |reason: String| ParseError::Invalid { kind: "template examples", reason };
        let body_vars = variables(&self.body)?;
        if examples.body.len() != body_vars {
            return Err(missing(format!("the body has {body_vars} variables: give as many examples.body")));
        }
        let mut components = Vec::new();
        match &self.header {
            None => {}
            Some(TemplateHeader::Text { text }) => {
                let mut h = json!({ "type": "HEADER", "format": "TEXT", "text": text });
                if self.header_variables() == 1 {
                    let ex = examples
                        .header_text
                        .as_ref()
                        .ok_or_else(|| missing("the header has a variable: give examples.header_text".into()))?;
                    h["example"] = json!({ "header_text": [ex] });
                }
                components.push(h);
            }
            Some(media) => {
                let format = match media {
                    TemplateHeader::Image => "IMAGE",
                    TemplateHeader::Video => "VIDEO",
                    _ => "DOCUMENT",
                };
                let handle = examples.header_handle.as_ref().ok_or_else(|| {
                    missing("a media header needs examples.header_handle (a sample uploaded to Meta)".into())
                })?;
                components
                    .push(json!({ "type": "HEADER", "format": format, "example": { "header_handle": [handle] } }));
            }
        }
        let mut body = json!({ "type": "BODY", "text": self.body });
        if body_vars > 0 {
            body["example"] = json!({ "body_text": [examples.body] });
        }
        components.push(body);
        if let Some(f) = &self.footer {
            components.push(json!({ "type": "FOOTER", "text": f }));
        }
        if !self.buttons.is_empty() {
            let mut urls = examples.urls.iter();
            let mut buttons = Vec::new();
            for b in &self.buttons {
                buttons.push(match b {
                    TemplateButton::QuickReply { text } => json!({ "type": "QUICK_REPLY", "text": text }),
                    TemplateButton::PhoneNumber { text, phone_number } => {
                        json!({ "type": "PHONE_NUMBER", "text": text, "phone_number": phone_number })
                    }
                    TemplateButton::Url { text, url } => {
                        let mut j = json!({ "type": "URL", "text": text, "url": url });
                        if url.ends_with("{{1}}") {
                            let ex = urls.next().ok_or_else(|| {
                                missing("each URL button with {{1}} needs an example in examples.urls".into())
                            })?;
                            j["example"] = json!([ex]);
                        }
                        j
                    }
                });
            }
            components.push(json!({ "type": "BUTTONS", "buttons": buttons }));
        }
        Ok(json!({
            "name": self.name,
            "language": self.language,
            "category": self.category.as_str().to_ascii_uppercase(),
            "components": components,
        }))
    }

    /// Applies one of Meta's reviews; `false` (nothing changed) when it is older than the last one
    /// applied, so a redelivered or late webhook never moves the template back.
    pub fn apply(&mut self, review: &TemplateReview) -> bool {
        if self.reviewed_at.is_some_and(|at| review.at < at) {
            return false;
        }
        match &review.change {
            ReviewChange::Status { status, reason } => {
                self.status = *status;
                self.reason = reason.clone().filter(|r| !r.is_empty() && r != "NONE");
            }
            ReviewChange::Category(c) => self.category = *c,
            ReviewChange::Quality(q) => self.quality = Some(*q),
        }
        self.meta_id.get_or_insert_with(|| review.meta_id.clone());
        self.reviewed_at = Some(review.at);
        true
    }

    /// A send checked against the registered template (approved; its body, header and button
    /// parameters exactly as it takes them): the text the customer reads.
    pub fn check_send(&self, send: &TemplateSend) -> Result<String, TemplateError> {
        let text = self.render(&send.parameters)?;
        let wrong = |reason: String| TemplateError::Components { name: self.name.clone(), reason };
        match (&self.header, &send.header) {
            (None, None) => {}
            (Some(TemplateHeader::Text { .. }), None) if self.header_variables() == 0 => {}
            (Some(TemplateHeader::Text { .. }), Some(HeaderParameter::Text { text }))
                if self.header_variables() == 1 =>
            {
                if text.trim().is_empty() {
                    return Err(wrong("the header's parameter is empty".into()));
                }
            }
            (Some(TemplateHeader::Text { .. }), _) => {
                return Err(wrong(format!("its text header takes {} text parameter", self.header_variables())))
            }
            (Some(_), Some(HeaderParameter::Media { link })) => {
                if !link.starts_with("https://") {
                    return Err(wrong("the header's file must be an https:// link".into()));
                }
            }
            (Some(_), _) => return Err(wrong("its media header needs {\"link\": \"https://…\"}".into())),
            (None, Some(_)) => return Err(wrong("it has no header".into())),
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &send.buttons {
            if !seen.insert(p.index()) {
                return Err(wrong(format!("button {} is given twice", p.index())));
            }
            match (self.buttons.get(p.index()), p) {
                (Some(TemplateButton::Url { url, .. }), ButtonParameter::Url { text, .. })
                    if url.ends_with("{{1}}") =>
                {
                    if text.is_empty() {
                        return Err(wrong(format!("button {}'s link ending is empty", p.index())));
                    }
                }
                (Some(TemplateButton::QuickReply { .. }), ButtonParameter::QuickReply { payload, .. }) => {
                    if payload.len() > 128 {
                        return Err(wrong("a quick-reply payload is at most 128 characters".into()));
                    }
                }
                _ => return Err(wrong(format!("button {} takes no such parameter", p.index()))),
            }
        }
        for (i, b) in self.buttons.iter().enumerate() {
            if matches!(b, TemplateButton::Url { url, .. } if url.ends_with("{{1}}")) && !seen.contains(&i) {
                return Err(wrong(format!(
                    "URL button {i} needs its link ending: {{\"type\": \"url\", \"index\": {i}, \"text\"}}"
                )));
            }
        }
        Ok(text)
    }

    /// The text the customer will read, once the template may be sent with these parameters.
    pub fn render(&self, parameters: &[String]) -> Result<String, TemplateError> {
        if self.status != TemplateStatus::Approved {
            return Err(TemplateError::NotApproved { name: self.name.clone(), status: self.status });
        }
        let expected = variables(&self.body).unwrap_or(0);
        if parameters.len() != expected {
            return Err(TemplateError::Parameters { name: self.name.clone(), expected, given: parameters.len() });
        }
        let mut text = self.body.clone();
        for (i, p) in parameters.iter().enumerate() {
            text = text.replace(&format!("{{{{{}}}}}", i + 1), p);
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn every_meta_event_we_keep_maps_to_a_status() {
        assert_eq!(TemplateStatus::from_meta_event("APPROVED"), Some(TemplateStatus::Approved));
        assert_eq!(TemplateStatus::from_meta_event("PAUSED"), Some(TemplateStatus::Paused));
        assert_eq!(TemplateStatus::from_meta_event("PENDING_DELETION"), Some(TemplateStatus::Disabled));
        assert_eq!(TemplateStatus::from_meta_event("LOCKED"), None);
    }

    fn template(body: &str, status: TemplateStatus) -> WhatsAppTemplate {
        let by = AgentId::parse("ada").unwrap();
        let at = datetime!(2026-11-01 0:00 UTC);
        WhatsAppTemplate::new("refund_update", "en_US", WhatsappCategory::Utility, body, status, by, at).unwrap()
    }

    #[test]
    fn variables_are_counted_and_must_be_contiguous() {
        assert_eq!(variables("Hi {{1}}, your refund {{2}} is done. Thanks {{1}}!"), Ok(2));
        assert_eq!(variables("No variables"), Ok(0));
        assert!(variables("Hi {{2}}").is_err(), "{{1}} skipped");
        assert!(variables("Hi {{name}}").is_err());
        assert!(variables("Hi {{1").is_err());
    }

    #[test]
    fn names_and_languages_follow_whatsapps_rules() {
        assert!(parse_name("order_update_2").is_ok());
        assert!(parse_name("Order Update").is_err());
        assert!(parse_language("en").is_ok() && parse_language("pt_BR").is_ok());
        assert!(parse_language("english!").is_err() && parse_language("E").is_err());
    }

    #[test]
    fn only_approved_templates_render_with_exactly_their_parameters() {
        let t = template("Hi {{1}}, refund {{2}} is done.", TemplateStatus::Approved);
        assert_eq!(t.render(&["Pablo".into(), "R-88".into()]).unwrap(), "Hi Pablo, refund R-88 is done.");
        assert!(matches!(t.render(&["Pablo".into()]), Err(TemplateError::Parameters { expected: 2, given: 1, .. })));
        let pending = template("Hi {{1}}", TemplateStatus::Pending);
        assert!(matches!(pending.render(&["x".into()]), Err(TemplateError::NotApproved { .. })));
    }

    fn order_update() -> WhatsAppTemplate {
        let by = AgentId::parse("ada").unwrap();
        let at = datetime!(2026-11-01 0:00 UTC);
        let body = "Hi {{1}}, order {{2}} ships today.";
        WhatsAppTemplate::new("order_update", "en_US", WhatsappCategory::Utility, body, TemplateStatus::Pending, by, at)
            .unwrap()
            .with_components(
                Some(TemplateHeader::Text { text: "Order {{1}}".into() }),
                Some("Acme Shop".into()),
                vec![
                    TemplateButton::Url { text: "Track it".into(), url: "https://acme.example/t/{{1}}".into() },
                    TemplateButton::QuickReply { text: "Talk to us".into() },
                ],
            )
            .unwrap()
    }

    #[test]
    fn a_submission_carries_every_component_with_its_examples() {
        let t = order_update();
        let ex = Examples {
            body: vec!["Ana".into(), "8812".into()],
            header_text: Some("8812".into()),
            header_handle: None,
            urls: vec!["https://acme.example/t/8812".into()],
        };
        assert_eq!(
            t.submission(&ex).unwrap(),
            json!({ "name": "order_update", "language": "en_US", "category": "UTILITY", "components": [
                { "type": "HEADER", "format": "TEXT", "text": "Order {{1}}", "example": { "header_text": ["8812"] } },
                { "type": "BODY", "text": "Hi {{1}}, order {{2}} ships today.", "example": { "body_text": [["Ana", "8812"]] } },
                { "type": "FOOTER", "text": "Acme Shop" },
                { "type": "BUTTONS", "buttons": [
                    { "type": "URL", "text": "Track it", "url": "https://acme.example/t/{{1}}", "example": ["https://acme.example/t/8812"] },
                    { "type": "QUICK_REPLY", "text": "Talk to us" } ] } ] })
        );
        // Every variable needs its example; a media header its sample.
        assert!(t.submission(&Examples { body: vec!["Ana".into()], ..ex.clone() }).is_err());
        assert!(t.submission(&Examples { header_text: None, ..ex.clone() }).is_err());
        assert!(t.submission(&Examples { urls: vec![], ..ex.clone() }).is_err());
        let image = t.clone().with_components(Some(TemplateHeader::Image), None, vec![]).unwrap();
        assert!(image.submission(&ex).is_err());
        let sub = image.submission(&Examples { header_handle: Some("4::aW1n".into()), ..ex }).unwrap();
        assert_eq!(
            sub["components"][0],
            json!({ "type": "HEADER", "format": "IMAGE", "example": { "header_handle": ["4::aW1n"] } })
        );
    }

    #[test]
    fn components_outside_metas_limits_are_refused() {
        let t = template("Hi", TemplateStatus::Pending);
        let text = |s: &str| Some(TemplateHeader::Text { text: s.into() });
        assert!(t.clone().with_components(text("{{1}} and {{2}}"), None, vec![]).is_err());
        assert!(t.clone().with_components(text(&"x".repeat(61)), None, vec![]).is_err());
        assert!(t.clone().with_components(None, Some("has {{1}}".into()), vec![]).is_err());
        let url = |u: &str| TemplateButton::Url { text: "Go".into(), url: u.into() };
        assert!(t.clone().with_components(None, None, vec![url("http://plain.example")]).is_err());
        assert!(t.clone().with_components(None, None, vec![url("https://x.example/{{1}}/more")]).is_err());
        assert!(t.clone().with_components(None, None, vec![url("https://a/{{1}}"); 3]).is_err());
        let quick = TemplateButton::QuickReply { text: "a very long button label here".into() };
        assert!(t.clone().with_components(None, None, vec![quick]).is_err());
        let phone = TemplateButton::PhoneNumber { text: "Call".into(), phone_number: "12".into() };
        assert!(t.clone().with_components(None, None, vec![phone]).is_err());
    }

    #[test]
    fn sends_give_exactly_the_headers_and_buttons_parameters() {
        let mut t = order_update();
        t.status = TemplateStatus::Approved;
        let send = |header: Option<HeaderParameter>, buttons: Vec<ButtonParameter>| TemplateSend {
            name: "order_update".into(),
            language: "en_US".into(),
            parameters: vec!["Ana".into(), "8812".into()],
            header,
            buttons,
        };
        let header = Some(HeaderParameter::Text { text: "8812".into() });
        let url = ButtonParameter::Url { index: 0, text: "8812".into() };
        let quick = ButtonParameter::QuickReply { index: 1, payload: "HUMAN".into() };
        assert_eq!(t.check_send(&send(header.clone(), vec![url.clone()])).unwrap(), "Hi Ana, order 8812 ships today.");
        assert!(t.check_send(&send(header.clone(), vec![url.clone(), quick.clone()])).is_ok());
        assert!(t.check_send(&send(None, vec![url.clone()])).is_err(), "the header's variable");
        assert!(t.check_send(&send(header.clone(), vec![])).is_err(), "the URL's ending");
        assert!(t.check_send(&send(header.clone(), vec![url.clone(), url.clone()])).is_err());
        let wrong = ButtonParameter::QuickReply { index: 0, payload: "x".into() };
        assert!(t.check_send(&send(header.clone(), vec![url.clone(), wrong])).is_err());
        let media = Some(HeaderParameter::Media { link: "https://cdn.example/a.jpg".into() });
        assert!(t.check_send(&send(media, vec![url])).is_err(), "a text header");
    }

    #[test]
    fn metas_reviews_are_read_and_applied_in_order() {
        let body = include_bytes!("../../../../events/whatsapp-webhook/payloads/template-reviews.json");
        assert!(super::super::whatsapp::may_carry_template_reviews(body));
        let messages = include_bytes!("../../../../events/whatsapp-webhook/payloads/messages.json");
        assert!(!super::super::whatsapp::may_carry_template_reviews(messages), "parsed once");
        let reviews = super::super::whatsapp::template_reviews(body, datetime!(2026-12-01 0:00 UTC)).unwrap();
        assert_eq!(reviews.len(), 4, "the lock changes nothing we keep");
        assert_eq!(reviews[0].meta_id, "1689556908129832");
        assert_eq!(
            reviews[0].change,
            ReviewChange::Status { status: TemplateStatus::Approved, reason: Some("NONE".into()) }
        );
        assert_eq!(reviews[0].at, datetime!(2025-11-24 16:00 UTC));
        assert_eq!(
            reviews[1].change,
            ReviewChange::Status { status: TemplateStatus::Rejected, reason: Some("INCORRECT_CATEGORY".into()) }
        );
        assert_eq!(reviews[2].change, ReviewChange::Category(WhatsappCategory::Marketing));
        assert_eq!(reviews[3].change, ReviewChange::Quality(TemplateQuality::Yellow));

        let mut t = order_update();
        assert!(t.apply(&reviews[0]));
        assert_eq!(
            (t.status, t.reason.as_deref(), t.meta_id.as_deref()),
            (TemplateStatus::Approved, None, Some("1689556908129832"))
        );
        assert!(t.apply(&reviews[3]));
        assert_eq!(t.quality, Some(TemplateQuality::Yellow));
        // Redelivered late, the approval does not undo what came after it.
        let mut rejected = reviews[1].clone();
        rejected.at = reviews[0].at - time::Duration::seconds(1);
        assert!(!t.apply(&rejected));
        assert_eq!(t.status, TemplateStatus::Approved);
    }
}
