//! Erasing a contact (GDPR's right to erasure). Every item and object about the contact goes:
//! identities and their consent, conversations with their messages, notes and audit trail,
//! provider message ids, attachments and raw mail, web chat visitors and their uploads, exports,
//! webhook deliveries that carried them. What stays is what a business must keep and that names
//! nobody: the cost ledger's rows (moved to the all-zero contact and conversation,
//! [`crate::ContactId::ERASED`]), the workspace audit trail's entries (actor, action and time;
//! their details gone where they named the contact) and one receipt (who erased which contact id,
//! when) — the contact id is a random ULID nothing else resolves any more.
//!
//! The work runs in steps, each idempotent, so a large contact is erased by a Step Functions loop
//! and a failed step is simply run again: the first step makes the contact unreachable (no
//! message can thread into it while the rest goes), then conversations go a few at a time (each
//! one's files before its items, its pointer from the contact last, so a retry finds what is
//! left), then the contact item goes in the same transaction that writes the receipt.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::finance::ledger::Month;
use crate::ids::{AgentId, ContactId, MessageId, WorkspaceId};
use crate::model::{Contact, Message};

/// What proves an erasure happened: kept for as long as the workspace exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ErasureReceipt)]
pub struct Receipt {
    pub contact: ContactId,
    /// The admin who asked.
    pub by: AgentId,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub erased_at: OffsetDateTime,
}

/// One erasure in progress: the Step Functions execution's input and each step's output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub workspace: WorkspaceId,
    pub contact: ContactId,
    pub by: AgentId,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// Set by the step that finished: the loop stops.
    #[serde(default)]
    pub done: bool,
}

impl Job {
    /// The execution's name: one per contact and minute (asking again within the minute starts
    /// nothing new; a later ask after a failed run starts a fresh one; steps tolerate overlap).
    pub fn execution_name(&self, now: OffsetDateTime) -> String {
        let name = format!("erase-{}-{}-{}", self.contact, now.unix_timestamp() / 60, self.workspace);
        name.chars().take(80).collect()
    }
}

/// Where an erasure stands after a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Nothing left; the receipt.
    Done(Receipt),
    /// More conversations remain: run another step.
    More,
    /// The workspace is under a legal hold (its matter): nothing more is erased until it is lifted.
    Held(String),
}

/// The metadata entry naming the idempotency key a message of ours was queued under
/// (`{"agent", "key"}`): its record (which keeps the route's answer for 24 h) goes with it.
pub const META_IDEMPOTENCY: &str = "idempotency";

/// What erasing one conversation's items needs to know about its messages, read before they go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConversationTrace {
    /// Each message and when it was created (its ledger rows live under that day).
    pub messages: Vec<(MessageId, OffsetDateTime)>,
    /// `(provider, provider message id)` pointers to delete.
    pub provider_ids: Vec<(String, String)>,
    /// `s3://` URLs of every file the messages hold (attachments, raw mail).
    pub files: Vec<String>,
    /// The idempotency keys our messages were queued under.
    pub idempotency: Vec<(AgentId, crate::ids::IdempotencyKey)>,
}

impl ConversationTrace {
    pub fn add(&mut self, m: &Message) {
        self.messages.push((m.id, m.created_at));
        if let (Some(p), Some(id)) = (&m.provider, &m.provider_message_id) {
            self.provider_ids.push((p.clone(), id.clone()));
        }
        for a in &m.attachments {
            if a.url.starts_with("s3://") {
                self.files.push(a.url.clone());
            }
        }
        if let Some(k) = m.metadata.get(META_IDEMPOTENCY) {
            let agent = k.get("agent").and_then(|a| a.as_str()).and_then(|a| AgentId::parse(a).ok());
            let key = k.get("key").and_then(|a| a.as_str()).and_then(|a| crate::ids::IdempotencyKey::parse(a).ok());
            if let (Some(agent), Some(key)) = (agent, key) {
                self.idempotency.push((agent, key));
            }
        }
        for v in m.metadata.values() {
            if let Some(url) = v.as_str().filter(|u| u.starts_with("s3://")) {
                self.files.push(url.to_owned());
            }
        }
    }

    /// The months the messages' ledger rows and counters are in.
    pub fn months(&self) -> Vec<Month> {
        let mut months: Vec<Month> = self.messages.iter().map(|(_, at)| Month::of(*at)).collect();
        months.sort();
        months.dedup();
        months
    }
}

/// A ledger row of an erased conversation: it names the erased conversation, and the erased
/// contact too when the contact goes (retention keeps the contact, so its rows keep it). `false`
/// when the row already was.
pub fn anonymise(entry: &mut crate::finance::LedgerEntry, forget_contact: bool) -> bool {
    let contact_done = !forget_contact || entry.contact_id == ContactId::ERASED;
    if entry.conversation_id == crate::ids::ConversationId::ERASED && contact_done {
        return false;
    }
    entry.conversation_id = crate::ids::ConversationId::ERASED;
    if forget_contact {
        entry.contact_id = ContactId::ERASED;
    }
    true
}

/// Every month a contact can have cost rows in: from its creation through `now`.
pub fn contact_months(contact: &Contact, now: OffsetDateTime) -> Vec<Month> {
    Month::of(contact.created_at).through(Month::of(now))
}

/// The strings that name the contact in free-form records (audit details, webhook bodies): its id
/// and every identity's value (a phone number, an address, a platform id). Not its name: "Ann"
/// would match every record of agent `ann`, and a name is no identifier.
pub fn needles(contact: &Contact) -> Vec<String> {
    let mut out = vec![contact.id.to_string()];
    out.extend(contact.identities.iter().map(|i| i.value.clone()).filter(|v| v.len() >= 5));
    out.sort();
    out.dedup();
    out
}

/// Whether a serialized record mentions any needle.
pub fn mentions(record: &str, needles: &[String]) -> bool {
    needles.iter().any(|n| record.contains(n.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Identity;
    use crate::PhoneNumber;

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    }

    #[test]
    fn months_run_from_the_contacts_creation_through_now_across_years() {
        let ws = WorkspaceId::parse("acme").unwrap();
        let phone = Identity::phone(&PhoneNumber::parse("+14155552671").unwrap());
        let c = Contact::new(ws, phone, None, at("2025-11-20T10:00:00Z"));
        let months: Vec<String> =
            contact_months(&c, at("2026-02-01T00:00:00Z")).iter().map(|m| m.to_string()).collect();
        assert_eq!(months, ["2025-11", "2025-12", "2026-01", "2026-02"]);
        assert!(contact_months(&c, at("2025-01-01T00:00:00Z")).is_empty());
    }

    #[test]
    fn needles_are_the_id_and_identities_never_the_name() {
        let ws = WorkspaceId::parse("acme").unwrap();
        let phone = Identity::phone(&PhoneNumber::parse("+14155552671").unwrap());
        let c = Contact::new(ws, phone, Some("Maria Garcia".into()), at("2026-01-01T00:00:00Z"));
        let n = needles(&c);
        assert!(n.contains(&c.id.to_string()) && n.contains(&"+14155552671".to_owned()));
        assert!(!n.contains(&"Maria Garcia".to_owned()));
        assert!(mentions(r#"{"details":{"value":"+14155552671"}}"#, &n));
        assert!(!mentions(r#"{"details":{"value":"+14155550000"}}"#, &n));
    }

    #[test]
    fn a_trace_collects_files_provider_ids_and_months() {
        let ws = WorkspaceId::parse("acme").unwrap();
        let mut m = crate::model::Message::queued_outbound(
            ws,
            crate::ConversationId::new(),
            crate::model::Route {
                channel: crate::model::Channel::Email,
                contact_address: "a@b.c".into(),
                our_address: "s@x.y".into(),
                contact_country: None,
            },
            crate::model::Sender::System,
            "hi",
            Default::default(),
            at("2026-03-31T23:59:59Z"),
        );
        m.provider = Some("ses".into());
        m.provider_message_id = Some("0100".into());
        m.attachments.push(crate::model::Attachment {
            content_type: "image/png".into(),
            size_bytes: Some(1),
            url: "s3://media/media/acme/mms/x.png".into(),
            filename: None,
        });
        m.metadata.insert("raw".into(), "s3://mail/inbound/abc".into());
        m.metadata.insert(META_IDEMPOTENCY.into(), serde_json::json!({ "agent": "ann", "key": "r-1" }));
        let mut t = ConversationTrace::default();
        t.add(&m);
        assert_eq!(t.files, ["s3://media/media/acme/mms/x.png", "s3://mail/inbound/abc"]);
        assert_eq!(t.provider_ids, [("ses".to_owned(), "0100".to_owned())]);
        assert_eq!(
            t.idempotency,
            [(AgentId::parse("ann").unwrap(), crate::ids::IdempotencyKey::parse("r-1").unwrap())]
        );
        assert_eq!(t.months().iter().map(|m| m.to_string()).collect::<Vec<_>>(), ["2026-03"]);
    }

    #[test]
    fn execution_names_fit_step_functions_limit() {
        let job = Job {
            workspace: WorkspaceId::parse(&"w".repeat(60)).unwrap_or_else(|_| WorkspaceId::parse("acme").unwrap()),
            contact: ContactId::new(),
            by: AgentId::parse("ada").unwrap(),
            requested_at: at("2026-01-01T00:00:00Z"),
            done: false,
        };
        let name = job.execution_name(at("2026-01-01T00:00:30Z"));
        assert!(name.len() <= 80 && name.starts_with("erase-"), "{name}");
        assert_eq!(name, job.execution_name(at("2026-01-01T00:00:59Z")));
    }
}
