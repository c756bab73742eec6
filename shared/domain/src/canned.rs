//! Canned responses (seed 000): three scopes (workspace, team, personal), a shortcut such as
//! `/refund`, a search that autocompletes ranked by how often this agent uses each response, and
//! variables filled from the conversation.
//!
//! Variables are `{{contact.first_name}}`, `{{contact.name}}`, `{{contact.email}}`,
//! `{{contact.phone}}`, `{{conversation.id}}`, `{{agent.name}}`, `{{agent.first_name}}` and
//! `{{contact.attributes.<key>}}` for custom contact attributes; `{{name | default}}` gives a
//! fallback. Rendering fails — listing every problem — on an unknown variable, a known one with no
//! value and no default, or an unclosed `{{`: a literal `{{…}}` must never reach a customer.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::ParseError;
use crate::ids::{AgentId, TeamId};

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum Scope {
    Workspace,
    Team { team: TeamId },
    Personal { agent: AgentId },
}

/// `/` followed by 1–32 lower-case letters, digits, `-` or `_`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Shortcut(String);

crate::string_schema!(Shortcut, "A canned response shortcut (typed after /)");

impl Shortcut {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let body = s.strip_prefix('/').unwrap_or("");
        let ok = !body.is_empty()
            && body.len() <= 32
            && body.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::Invalid {
                kind: "shortcut",
                reason: "expected / and 1-32 of a-z 0-9 - _, like /refund".into(),
            })
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for Shortcut {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}
impl From<Shortcut> for String {
    fn from(s: Shortcut) -> String {
        s.0
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CannedResponse {
    pub id: String,
    pub scope: Scope,
    pub shortcut: Shortcut,
    pub title: String,
    pub body: String,
}

/// A response id as a path names it: a ULID, in its canonical spelling.
pub fn parse_id(s: &str) -> Result<String, ParseError> {
    ulid::Ulid::from_string(s)
        .map(|u| u.to_string())
        .map_err(|e| ParseError::Invalid { kind: "canned response id", reason: e.to_string() })
}

/// Who may create, change or delete a response of `scope`: workspace responses supervisors and
/// admins; team ones the team's members (`teams`: the caller's) and supervisors; personal ones their
/// owner alone.
pub fn may_manage(
    scope: &Scope,
    agent: &AgentId,
    role: crate::model::Role,
    teams: &[TeamId],
) -> Result<(), crate::inbox::Refusal> {
    use crate::inbox::Refusal::Forbidden;
    match scope {
        Scope::Workspace if !role.oversees() => {
            Err(Forbidden("workspace responses are for supervisors and admins".into()))
        }
        Scope::Team { team } if !role.oversees() && !teams.contains(team) => {
            Err(Forbidden(format!("only members of {team} (or supervisors) manage its responses")))
        }
        Scope::Personal { agent: owner } if owner != agent => {
            Err(Forbidden("personal responses belong to their owner".into()))
        }
        _ => Ok(()),
    }
}

pub const MAX_TITLE_CHARS: usize = 100;
pub const MAX_BODY_CHARS: usize = 5000;

/// A title (trimmed, 1-100 characters) and a body (1-5000 characters, a valid template): the
/// trimmed title, or why not.
pub fn check_fields(title: &str, body: &str) -> Result<String, crate::inbox::Refusal> {
    use crate::inbox::Refusal::Invalid;
    let title = title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(Invalid(format!("title must be 1-{MAX_TITLE_CHARS} characters")));
    }
    if body.trim().is_empty() || body.chars().count() > MAX_BODY_CHARS {
        return Err(Invalid(format!("body must be 1-{MAX_BODY_CHARS} characters")));
    }
    check_template(body).map_err(|e| Invalid(e.to_string()))?;
    Ok(title.to_owned())
}

/// A response already using `shortcut` in `scope`, other than `except`: shortcuts are unique per scope.
pub fn shortcut_taken<'a>(
    all: &'a [CannedResponse],
    scope: &Scope,
    shortcut: &Shortcut,
    except: Option<&str>,
) -> Option<&'a CannedResponse> {
    all.iter().find(|r| &r.scope == scope && &r.shortcut == shortcut && Some(r.id.as_str()) != except)
}

/// What an agent may use: the workspace's, their teams', their own.
pub fn visible_to(r: &CannedResponse, agent: &AgentId, teams: &[TeamId]) -> bool {
    match &r.scope {
        Scope::Workspace => true,
        Scope::Team { team } => teams.contains(team),
        Scope::Personal { agent: owner } => owner == agent,
    }
}

/// Autocomplete: shortcut prefix matches first, then title matches, then body matches; within each,
/// the agent's most used first, then the narrower scope (personal, team, workspace), then shortcut.
pub fn search<'a>(
    responses: &'a [CannedResponse],
    query: &str,
    agent: &AgentId,
    teams: &[TeamId],
    usage: &HashMap<String, u32>,
    limit: usize,
) -> Vec<&'a CannedResponse> {
    let q = query.trim().trim_start_matches('/').to_lowercase();
    let tier = |r: &CannedResponse| -> Option<u8> {
        if r.shortcut.as_str()[1..].starts_with(&q) {
            Some(0)
        } else if r.title.to_lowercase().contains(&q) {
            Some(1)
        } else if r.body.to_lowercase().contains(&q) {
            Some(2)
        } else {
            None
        }
    };
    let narrowness = |s: &Scope| match s {
        Scope::Personal { .. } => 0,
        Scope::Team { .. } => 1,
        Scope::Workspace => 2,
    };
    let mut hits: Vec<(u8, &CannedResponse)> =
        responses.iter().filter(|r| visible_to(r, agent, teams)).filter_map(|r| tier(r).map(|t| (t, r))).collect();
    hits.sort_by(|(ta, a), (tb, b)| {
        ta.cmp(tb)
            .then(usage.get(&b.id).copied().unwrap_or(0).cmp(&usage.get(&a.id).copied().unwrap_or(0)))
            .then(narrowness(&a.scope).cmp(&narrowness(&b.scope)))
            .then(a.shortcut.cmp(&b.shortcut))
    });
    hits.into_iter().take(limit).map(|(_, r)| r).collect()
}

/// The values a conversation offers to a template.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Variables {
    pub values: BTreeMap<String, String>,
}

impl Variables {
    /// Fills the standard variables; `None` leaves a known variable without a value.
    pub fn new(
        contact_name: Option<&str>,
        contact_email: Option<&str>,
        contact_phone: Option<&str>,
        conversation_id: &str,
        agent_name: Option<&str>,
        attributes: &BTreeMap<String, String>,
    ) -> Variables {
        let mut v = BTreeMap::new();
        let first = |n: &str| n.split_whitespace().next().unwrap_or("").to_owned();
        if let Some(n) = contact_name.filter(|n| !n.trim().is_empty()) {
            v.insert("contact.name".into(), n.trim().to_owned());
            v.insert("contact.first_name".into(), first(n));
        }
        if let Some(e) = contact_email {
            v.insert("contact.email".into(), e.to_owned());
        }
        if let Some(p) = contact_phone {
            v.insert("contact.phone".into(), p.to_owned());
        }
        v.insert("conversation.id".into(), conversation_id.to_owned());
        if let Some(n) = agent_name.filter(|n| !n.trim().is_empty()) {
            v.insert("agent.name".into(), n.trim().to_owned());
            v.insert("agent.first_name".into(), first(n));
        }
        for (k, val) in attributes {
            v.insert(format!("contact.attributes.{k}"), val.clone());
        }
        Variables { values: v }
    }
}

impl Variables {
    /// What a conversation offers: its contact's name, email, phone and custom attributes, its id,
    /// and the agent's name.
    pub fn for_conversation(
        contact: &crate::model::Contact,
        conversation: &crate::model::Conversation,
        agent_name: Option<&str>,
    ) -> Variables {
        use crate::model::IdentityKind;
        let first_of = |kind| contact.identities.iter().find(|i| i.kind == kind).map(|i| i.value.as_str());
        Variables::new(
            contact.name.as_deref(),
            first_of(IdentityKind::Email),
            first_of(IdentityKind::Phone),
            &conversation.id.to_string(),
            agent_name,
            &contact.attributes,
        )
    }
}

/// Checks a template when it is saved: every `{{…}}` closed and known. (Whether a known variable
/// has a value depends on the conversation: that is the preview's check.)
pub fn check_template(body: &str) -> Result<(), RenderError> {
    match render(body, &Variables::default()) {
        Ok(_) => Ok(()),
        Err(RenderError(problems)) => {
            let real: Vec<RenderProblem> =
                problems.into_iter().filter(|p| !matches!(p, RenderProblem::NoValue(_))).collect();
            if real.is_empty() {
                Ok(())
            } else {
                Err(RenderError(real))
            }
        }
    }
}

const KNOWN: [&str; 7] = [
    "contact.name",
    "contact.first_name",
    "contact.email",
    "contact.phone",
    "conversation.id",
    "agent.name",
    "agent.first_name",
];

fn is_known(name: &str) -> bool {
    KNOWN.contains(&name)
        || name
            .strip_prefix("contact.attributes.")
            .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderProblem {
    #[error("unknown variable {{{{{0}}}}}")]
    Unknown(String),
    #[error("{{{{{0}}}}} has no value for this conversation; give a default like {{{{{0} | there}}}}")]
    NoValue(String),
    #[error("a {{{{ is never closed")]
    Unclosed,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the response cannot be sent as written: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct RenderError(pub Vec<RenderProblem>);

/// Fills `body`'s variables, or explains every reason it cannot.
pub fn render(body: &str, vars: &Variables) -> Result<String, RenderError> {
    let mut out = String::with_capacity(body.len());
    let mut problems = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            problems.push(RenderProblem::Unclosed);
            rest = "";
            break;
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once('|') {
            Some((n, d)) => (n.trim(), Some(d.trim())),
            None => (inner.trim(), None),
        };
        if !is_known(name) {
            problems.push(RenderProblem::Unknown(name.to_owned()));
        } else {
            match (vars.values.get(name), default) {
                (Some(v), _) => out.push_str(v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => problems.push(RenderProblem::NoValue(name.to_owned())),
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(RenderError(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vars() -> Variables {
        Variables::new(
            Some("Ada Lovelace"),
            None,
            Some("+14155552671"),
            "01JD3XQ7Z9K2M4N6P8R0S2T4V6",
            Some("Alice Smith"),
            &BTreeMap::from([("plan".to_owned(), "Pro".to_owned())]),
        )
    }

    #[test]
    fn a_saved_template_must_only_use_known_closed_variables() {
        assert!(check_template("Hi {{contact.first_name}}, {{contact.attributes.plan}} plan").is_ok());
        let e = check_template("Hi {{contact.nickname}} {{agent.name").unwrap_err();
        assert_eq!(e.0, vec![RenderProblem::Unknown("contact.nickname".into()), RenderProblem::Unclosed]);
    }

    #[test]
    fn variables_fill_from_the_conversation() {
        let body = "Hi {{contact.first_name}}, {{agent.first_name}} here about {{conversation.id}} ({{ contact.attributes.plan }}).";
        assert_eq!(render(body, &vars()).unwrap(), "Hi Ada, Alice here about 01JD3XQ7Z9K2M4N6P8R0S2T4V6 (Pro).");
        assert_eq!(render("Mail: {{contact.email | not on file}}", &vars()).unwrap(), "Mail: not on file");
    }

    #[test]
    fn unknown_empty_and_unclosed_variables_are_errors_listing_each() {
        let err = render("{{contact.nickname}} {{contact.email}} {{agent.name", &vars()).unwrap_err();
        assert_eq!(
            err.0,
            vec![
                RenderProblem::Unknown("contact.nickname".into()),
                RenderProblem::NoValue("contact.email".into()),
                RenderProblem::Unclosed
            ]
        );
        assert!(err.to_string().contains("unknown variable {{contact.nickname}}"), "{err}");
    }

    #[test]
    fn search_ranks_shortcuts_then_usage_and_respects_scopes() {
        let me = AgentId::parse("alice").unwrap();
        let team = TeamId::parse("billing").unwrap();
        let r = |id: &str, scope: Scope, sc: &str, title: &str| CannedResponse {
            id: id.into(),
            scope,
            shortcut: Shortcut::parse(sc).unwrap(),
            title: title.into(),
            body: "…".into(),
        };
        let all = vec![
            r("1", Scope::Workspace, "/refund", "Refund policy"),
            r("2", Scope::Team { team: team.clone() }, "/refund-eu", "EU refunds"),
            r("3", Scope::Personal { agent: AgentId::parse("bob").unwrap() }, "/refund-bob", "Bob's"),
            r("4", Scope::Workspace, "/shipping", "Where is my refund?"),
        ];
        let usage = HashMap::from([("2".to_owned(), 5)]);
        let hits: Vec<&str> =
            search(&all, "/ref", &me, std::slice::from_ref(&team), &usage, 10).iter().map(|r| r.id.as_str()).collect();
        // Shortcut matches first (most used first), Bob's personal one never; then the title match.
        assert_eq!(hits, vec!["2", "1", "4"]);
        let hits: Vec<&str> =
            search(&all, "refund", &me, &[], &HashMap::new(), 10).iter().map(|r| r.id.as_str()).collect();
        assert_eq!(hits, vec!["1", "4"]);
        assert!(Shortcut::parse("refund").is_err());
        assert!(Shortcut::parse("/Refund").is_err());
    }

    proptest! {
        #[test]
        fn a_rendered_response_never_contains_a_variable(
            parts in proptest::collection::vec(prop_oneof![
                "[a-z {}.]{0,8}",
                Just("{{contact.first_name}}".to_owned()),
                Just("{{agent.name}}".to_owned()),
                Just("{{contact.email}}".to_owned()),
                Just("{{contact.nickname}}".to_owned()),
            ], 0..8)
        ) {
            let body = parts.concat();
            // Success means every {{…}} was replaced; otherwise the error names a reason.
            match render(&body, &vars()) {
                Ok(out) => prop_assert!(!out.contains("{{"), "{body:?} rendered as {out:?}"),
                Err(e) => prop_assert!(!e.0.is_empty()),
            }
        }
    }
}
