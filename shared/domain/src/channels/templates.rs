//! The per-workspace registry of WhatsApp message templates (seed 000: outside the 24-hour window
//! WhatsApp accepts only templates Meta approved). Each entry mirrors a template of the WhatsApp
//! Business Account: name, language, category (which prices it), body with its `{{1}}`…`{{n}}`
//! variables, and Meta's review status. Admins keep it in step with WhatsApp Manager; a send is
//! checked against it before anything is queued, and its category prices the message.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

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
}

/// Why a template send is refused: always the sender's to fix (422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("no WhatsApp template {name:?} in {language:?} is registered (see GET /whatsapp/templates)")]
    Unknown { name: String, language: String },
    #[error("WhatsApp template {name:?} is {status:?}, not approved: Meta refuses it")]
    NotApproved { name: String, status: TemplateStatus },
    #[error("WhatsApp template {name:?} takes {expected} parameters, {given} given")]
    Parameters { name: String, expected: usize, given: usize },
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
        })
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
}
