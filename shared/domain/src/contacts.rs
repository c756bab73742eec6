//! One customer, one contact (seed 000 "Contact Identity Resolution"): what agents may do to a
//! contact's identities, how two contacts merge, and which contacts are probably the same person.
//!
//! - **Automatic linking** happens only on exact matches of a normalised identifier: the inbound
//!   processor looks an identity up, and the same E.164 number on SMS, WhatsApp and voice (or the
//!   same lower-cased email on email, the form and web chat) is one identity, hence one contact.
//! - **Linking by hand**: an agent adds an identity to a contact ([`link`]). An identity belongs to
//!   one contact at most; one that belongs to another contact is refused with that contact's id:
//!   merge the two instead. Removing ([`unlink`]) keeps at least one identity, because a contact
//!   nobody can reach is a contact nobody can find. Conversations keep their routes: an unlinked
//!   address that writes again starts a new contact.
//! - **Merging** contact `source` into `target` ([`start_merge`]) moves every identity and every
//!   conversation. The source stays, emptied, as a forwarding record (`merged_into`), so a repeated
//!   request is recognised and resumes or answers the same result. The current-conversation slot:
//!   if only the source had an unresolved conversation, it becomes the target's thread; if both had
//!   one, the target's stays the thread and the source's stays open in the inbox, where an agent can
//!   merge the two conversations (now of one contact) with `POST /conversations/{id}/merge`. The
//!   source's slot is retired, so an inbound message that read the source before the merge cannot
//!   start a conversation under it: its commit fails and it re-reads.
//! - **Probable matches** ([`probable_match`]) — a similar name plus a similar phone number or
//!   email — are only ever suggested to an agent, never merged automatically. Candidates come from
//!   a blocking key on the name ([`name_key`]): the last name and the first initial.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use crate::audit::AuditEntry;
use crate::ids::{AgentId, ContactId, ConversationId, WorkspaceId};
use crate::inbox::Refusal;
use crate::model::{Contact, Conversation, ConversationStatus, Identity, IdentityKind};
use crate::ports::{
    ContactHistory, ContactMergeCommit, ContactStore, ConversationReader, InboundStore, StoreError, CONTACT_MOVE_CHUNK,
};

/// A contact holds at most this many identities: every one is a pointer item written in the same
/// DynamoDB transaction as a merge (which holds 100 items).
pub const MAX_IDENTITIES: usize = 25;

/// The contact with `identity` added; `None` when it already has it.
pub fn link(contact: &Contact, identity: Identity, now: OffsetDateTime) -> Result<Option<Contact>, Refusal> {
    usable(contact)?;
    if contact.identities.contains(&identity) {
        return Ok(None);
    }
    if contact.identities.len() >= MAX_IDENTITIES {
        return Err(Refusal::Invalid(format!("a contact holds at most {MAX_IDENTITIES} identities")));
    }
    let mut next = contact.clone();
    next.identities.push(identity);
    next.version += 1;
    next.updated_at = Some(now);
    Ok(Some(next))
}

/// The contact without `identity`; `None` when it does not have it.
pub fn unlink(contact: &Contact, identity: &Identity, now: OffsetDateTime) -> Result<Option<Contact>, Refusal> {
    usable(contact)?;
    if !contact.identities.contains(identity) {
        return Ok(None);
    }
    if contact.identities.len() == 1 {
        return Err(Refusal::Invalid(
            "a contact keeps at least one identity: merge it into another contact instead".into(),
        ));
    }
    let mut next = contact.clone();
    next.identities.retain(|i| i != identity);
    next.version += 1;
    next.updated_at = Some(now);
    Ok(Some(next))
}

fn usable(contact: &Contact) -> Result<(), Refusal> {
    match contact.merged_into {
        Some(into) => Err(Refusal::Conflict(format!("contact {} was merged into {into}: change that one", contact.id))),
        None => Ok(()),
    }
}

/// What happens to the contacts' current-conversation slots in a merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotMove {
    /// The source had no unresolved conversation.
    Empty,
    /// The source's unresolved conversation becomes the target's thread (the target had none).
    Hand(ConversationId),
    /// Both had one: the target keeps its own; the source's stays open, no longer the thread.
    Keep(ConversationId),
}

/// The identity-and-slot half of a merge, written in one transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct ContactMerge {
    /// Emptied, pointing at the target, version bumped.
    pub source: Contact,
    /// With the source's identities (and name and attributes it lacked), version bumped.
    pub target: Contact,
    /// The source's identities: their pointers move to the target.
    pub identities: Vec<Identity>,
    pub slot: SlotMove,
    /// What each slot held when read (resolved or not): the write is conditional on it.
    pub source_slot: Option<ConversationId>,
    pub target_slot: Option<ConversationId>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum MergeStart {
    /// The source already points at the target: only conversations may be left to move.
    Resume,
    Begin(Box<ContactMerge>),
}

/// Checks a merge of `source` into `target` and plans its first write. `*_slot`: the conversation
/// each contact's current slot names (the latest; it may be resolved).
pub fn start_merge(
    source: &Contact,
    target: &Contact,
    source_slot: Option<&Conversation>,
    target_slot: Option<&Conversation>,
    now: OffsetDateTime,
) -> Result<MergeStart, Refusal> {
    if source.id == target.id {
        return Err(Refusal::Invalid("a contact cannot be merged into itself".into()));
    }
    if let Some(into) = target.merged_into {
        return Err(Refusal::Conflict(format!("contact {} was merged into {into}: merge into that one", target.id)));
    }
    match source.merged_into {
        Some(into) if into == target.id => return Ok(MergeStart::Resume),
        Some(into) => return Err(Refusal::Conflict(format!("contact {} was already merged into {into}", source.id))),
        None => {}
    }
    let mut identities = target.identities.clone();
    let moving: Vec<Identity> = source.identities.iter().filter(|i| !identities.contains(i)).cloned().collect();
    identities.extend(moving.iter().cloned());
    if identities.len() > MAX_IDENTITIES {
        return Err(Refusal::Invalid(format!(
            "together the contacts hold {} identities, more than the {MAX_IDENTITIES} one contact may hold",
            identities.len()
        )));
    }
    let mut next_target = target.clone();
    next_target.identities = identities;
    if next_target.name.is_none() {
        next_target.name.clone_from(&source.name);
    }
    for (k, v) in &source.attributes {
        next_target.attributes.entry(k.clone()).or_insert_with(|| v.clone());
    }
    next_target.version += 1;
    next_target.updated_at = Some(now);
    let mut next_source = source.clone();
    next_source.identities.clear();
    next_source.merged_into = Some(target.id);
    next_source.version += 1;
    next_source.updated_at = Some(now);
    let open = |c: Option<&Conversation>| c.filter(|c| c.status != ConversationStatus::Resolved).map(|c| c.id);
    let slot = match (open(source_slot), open(target_slot)) {
        (None, _) => SlotMove::Empty,
        (Some(c), None) => SlotMove::Hand(c),
        (Some(c), Some(_)) => SlotMove::Keep(c),
    };
    Ok(MergeStart::Begin(Box::new(ContactMerge {
        source: next_source,
        target: next_target,
        identities: source.identities.clone(),
        slot,
        source_slot: source_slot.map(|c| c.id),
        target_slot: target_slot.map(|c| c.id),
    })))
}

/// The blocking key probable matches are looked up by: the normalised last name and the first
/// initial (`"smith j"`), so "Jon Smith" and "John Smith" meet. `None` for a name of fewer than
/// two words: one word is too common a key to suggest anything by.
pub fn name_key(name: &str) -> Option<String> {
    let words = name_words(name);
    match words.as_slice() {
        [first, .., last] => Some(format!("{last} {}", first.chars().next()?)),
        _ => None,
    }
}

fn name_words(name: &str) -> Vec<String> {
    name.split(|c: char| c.is_whitespace() || c == ',' || c == '.' || c == '-')
        .map(|w| w.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect::<String>())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Why two contacts are probably one person.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = SuggestionScore)]
pub struct Suggestion {
    pub contact: ContactId,
    /// 0-100: how alike the names are.
    pub name_similarity: u8,
    /// The identities that look alike: `(this contact's, the other's)`.
    pub similar: Vec<(Identity, Identity)>,
}

/// Names at least this alike (Jaro-Winkler, 0-1) count as similar.
const NAME_THRESHOLD: f64 = 0.88;

/// How alike two contacts' names are (Jaro-Winkler over their normalised words, 0-1); `None` when
/// either has no name.
fn name_similarity(a: &Contact, b: &Contact) -> Option<f64> {
    let (a, b) = (a.name.as_deref()?, b.name.as_deref()?);
    Some(strsim::jaro_winkler(&name_words(a).join(" "), &name_words(b).join(" ")))
}

/// Whether `other` is probably the same person as `contact`: a similar name plus a similar (not
/// identical: identical identities link automatically) phone number or email.
pub fn probable_match(contact: &Contact, other: &Contact) -> Option<Suggestion> {
    if contact.id == other.id || other.merged_into.is_some() {
        return None;
    }
    let similarity = name_similarity(contact, other)?;
    if similarity < NAME_THRESHOLD {
        return None;
    }
    let similar: Vec<(Identity, Identity)> = contact
        .identities
        .iter()
        .flat_map(|x| other.identities.iter().map(move |y| (x, y)))
        .filter(|(x, y)| similar_identity(x, y))
        .map(|(x, y)| (x.clone(), y.clone()))
        .collect();
    if similar.is_empty() {
        return None;
    }
    Some(Suggestion { contact: other.id, name_similarity: (similarity * 100.0).round() as u8, similar })
}

/// Two phone numbers ending in the same eight digits (the same line written with another country
/// code or trunk prefix, or a typo there), or two emails whose local parts agree once dots and
/// `+tags` are dropped (another domain), or differ by one typo (the same domain).
fn similar_identity(x: &Identity, y: &Identity) -> bool {
    if x == y || x.kind != y.kind {
        return false;
    }
    match x.kind {
        IdentityKind::Phone => {
            let (dx, dy) = (digits(&x.value), digits(&y.value));
            dx.len() >= 8 && dy.len() >= 8 && dx[dx.len() - 8..] == dy[dy.len() - 8..]
        }
        IdentityKind::Email => {
            let (Some((lx, hx)), Some((ly, hy))) = (x.value.rsplit_once('@'), y.value.rsplit_once('@')) else {
                return false;
            };
            let (lx, ly) = (canonical_local(lx), canonical_local(ly));
            if hx == hy {
                lx != ly && strsim::levenshtein(&lx, &ly) <= 1 && lx.len().min(ly.len()) >= 4
            } else {
                lx == ly && lx.len() >= 4
            }
        }
        _ => false,
    }
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn canonical_local(local: &str) -> String {
    local.split('+').next().unwrap_or(local).replace('.', "")
}

/// The suggestions for `contact` among `candidates`, best first (each candidate once).
pub fn suggestions(contact: &Contact, candidates: &[Contact]) -> Vec<Suggestion> {
    let mut by_id: BTreeMap<ContactId, Suggestion> = BTreeMap::new();
    for c in candidates {
        if let Some(s) = probable_match(contact, c) {
            by_id.insert(c.id, s);
        }
    }
    let mut out: Vec<Suggestion> = by_id.into_values().collect();
    out.sort_by(|a, b| b.similar.len().cmp(&a.similar.len()).then(b.name_similarity.cmp(&a.name_similarity)));
    out
}

/// How often a write that lost a race is read and tried again before giving up with `Conflict`.
const TRIES: usize = 8;

/// Why a change to a contact did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("no contact {0}")]
    NotFound(ContactId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The ports the contact services use.
pub trait ContactPorts: ConversationReader + InboundStore + ContactHistory + ContactStore {}
impl<T: ConversationReader + InboundStore + ContactHistory + ContactStore + ?Sized> ContactPorts for T {}

/// A contact after a change, and whether this request changed anything (a repeat does not).
#[derive(Clone, Debug, PartialEq)]
pub struct Changed {
    pub contact: Contact,
    pub changed: bool,
}

async fn read<S: ContactPorts + ?Sized>(store: &S, ws: &WorkspaceId, id: ContactId) -> Result<Contact, ContactError> {
    store.contact(ws, id).await?.ok_or(ContactError::NotFound(id))
}

fn taken(identity: &Identity, owner: ContactId) -> Refusal {
    Refusal::Conflict(format!(
        "{} {} belongs to contact {owner}: merge the two contacts instead",
        identity.kind.as_str(),
        identity.value
    ))
}

/// Adds an identity to a contact (see [`link`]), audited on the workspace's trail.
pub async fn add_identity<S: ContactPorts + ?Sized>(
    store: &S,
    ws: &WorkspaceId,
    id: ContactId,
    identity: Identity,
    actor: &AgentId,
    now: OffsetDateTime,
) -> Result<Changed, ContactError> {
    for _ in 0..TRIES {
        let contact = read(store, ws, id).await?;
        let Some(next) = link(&contact, identity.clone(), now)? else {
            return Ok(Changed { contact, changed: false });
        };
        if let Some(owner) = store.identity_owner(ws, &identity).await? {
            return Err(taken(&identity, owner).into());
        }
        let audit = identity_audit(ws, id, "identity_added", &identity, actor, now);
        match store.link_identity(&next, contact.version, &identity, &audit).await {
            Ok(()) => return Ok(Changed { contact: next, changed: true }),
            // Taken meanwhile (an inbound message created a contact for it) or the contact changed.
            Err(StoreError::Duplicate | StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Removes an identity from a contact (see [`unlink`]), audited on the workspace's trail.
pub async fn remove_identity<S: ContactPorts + ?Sized>(
    store: &S,
    ws: &WorkspaceId,
    id: ContactId,
    identity: &Identity,
    actor: &AgentId,
    now: OffsetDateTime,
) -> Result<Changed, ContactError> {
    for _ in 0..TRIES {
        let contact = read(store, ws, id).await?;
        let Some(next) = unlink(&contact, identity, now)? else {
            return Ok(Changed { contact, changed: false });
        };
        let audit = identity_audit(ws, id, "identity_removed", identity, actor, now);
        match store.unlink_identity(&next, contact.version, identity, &audit).await {
            Ok(()) => return Ok(Changed { contact: next, changed: true }),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

fn identity_audit(
    ws: &WorkspaceId,
    contact: ContactId,
    action: &str,
    identity: &Identity,
    actor: &AgentId,
    now: OffsetDateTime,
) -> AuditEntry {
    let details = serde_json::json!({ "contact": contact, "kind": identity.kind, "value": identity.value });
    AuditEntry::new(ws.clone(), None, actor.clone(), action, details, now)
}

/// A finished merge: the surviving contact, the forwarding record, how many conversations this
/// request moved, and whether it changed anything.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    pub contact: Contact,
    pub source: Contact,
    pub moved: usize,
    pub changed: bool,
}

/// Merges contact `source` into `into` (see [`start_merge`]): first the identities and slots in
/// one write, then the conversations in chunks. A repeated or interrupted request resumes where
/// the last one stopped; a finished one changes nothing.
pub async fn merge<S: ContactPorts + ?Sized>(
    store: &S,
    ws: &WorkspaceId,
    source: ContactId,
    into: ContactId,
    actor: &AgentId,
    now: OffsetDateTime,
) -> Result<Merged, ContactError> {
    let mut changed = false;
    let mut tries = 0;
    loop {
        tries += 1;
        if tries > TRIES {
            return Err(StoreError::Conflict.into());
        }
        let from = read(store, ws, source).await?;
        let to = match store.contact(ws, into).await? {
            Some(c) => c,
            None => return Err(Refusal::Invalid(format!("no contact {into} to merge into")).into()),
        };
        let (source_slot, target_slot) =
            (store.current_conversation(ws, &from).await?, store.current_conversation(ws, &to).await?);
        match start_merge(&from, &to, source_slot.as_ref(), target_slot.as_ref(), now)? {
            MergeStart::Resume => break,
            MergeStart::Begin(m) => {
                let details = serde_json::json!({
                    "source": source,
                    "into": into,
                    "identities": m.identities,
                    "slot": format!("{:?}", m.slot),
                });
                let audit = AuditEntry::new(ws.clone(), None, actor.clone(), "contacts_merged", details, now);
                let commit =
                    ContactMergeCommit { merge: *m, source_version: from.version, target_version: to.version, audit };
                match store.commit_contact_merge(commit).await {
                    Ok(()) => {
                        changed = true;
                        break;
                    }
                    Err(StoreError::Conflict) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    let mut moved = 0;
    let mut conflicts = 0;
    loop {
        let chunk = CONTACT_MOVE_CHUNK as u16;
        let page = store.contact_conversations(ws, source, chunk, None).await?;
        if page.items.is_empty() {
            break;
        }
        match store.move_conversations(ws, into, &page.items).await {
            Ok(()) => moved += page.items.len(),
            // A conversation changed between the read and the move (a message arrived): read again.
            Err(StoreError::Conflict) if conflicts < TRIES => conflicts += 1,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Merged {
        contact: read(store, ws, into).await?,
        source: read(store, ws, source).await?,
        moved,
        changed: changed || moved > 0,
    })
}

/// The contacts that are probably the same person as `id`, best first (see [`probable_match`]).
pub async fn suggest<S: ContactPorts + ?Sized>(
    store: &S,
    ws: &WorkspaceId,
    id: ContactId,
) -> Result<(Contact, Vec<(Suggestion, Contact)>), ContactError> {
    let contact = read(store, ws, id).await?;
    // First: whoever holds the proven twin of an identity this contact only claimed (a form or a
    // widget that named a customer's address, spoofed mail): the likeliest merge, an agent's call.
    let mut out: Vec<(Suggestion, Contact)> = Vec::new();
    for claimed in contact.identities.iter().filter(|i| i.unverified) {
        let proven = claimed.clone().proven();
        let Some(holder) = store.contact_by_identity(ws, &proven).await? else { continue };
        if holder.id == contact.id || out.iter().any(|(s, _)| s.contact == holder.id) {
            continue;
        }
        let name_similarity = name_similarity(&contact, &holder).map_or(0, |s| (s * 100.0).round() as u8);
        let suggestion = Suggestion { contact: holder.id, name_similarity, similar: vec![(claimed.clone(), proven)] };
        out.push((suggestion, holder));
    }
    let Some(key) = contact.name.as_deref().and_then(name_key) else {
        return Ok((contact, out));
    };
    let candidates = store.contacts_named(ws, &key, 50).await?;
    let found = suggestions(&contact, &candidates);
    out.extend(
        found
            .into_iter()
            .filter(|s| !out.iter().any(|(o, _)| o.contact == s.contact))
            .filter_map(|s| candidates.iter().find(|c| c.id == s.contact).cloned().map(|c| (s, c)))
            .collect::<Vec<_>>(),
    );
    Ok((contact, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::WorkspaceId;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-22 10:00 UTC);

    fn phone(v: &str) -> Identity {
        Identity::parse(IdentityKind::Phone, v).unwrap()
    }
    fn email(v: &str) -> Identity {
        Identity::parse(IdentityKind::Email, v).unwrap()
    }
    fn contact(name: Option<&str>, ids: &[Identity]) -> Contact {
        let mut c = Contact::new(WorkspaceId::parse("acme").unwrap(), ids[0].clone(), name.map(Into::into), NOW);
        c.identities = ids.to_vec();
        c
    }

    #[test]
    fn linking_is_idempotent_bounded_and_unlinking_keeps_one() {
        let c = contact(None, &[phone("+14155550100")]);
        let linked = link(&c, email("Ana@Example.com"), NOW).unwrap().unwrap();
        assert_eq!(linked.identities.len(), 2);
        assert_eq!(linked.version, c.version + 1);
        assert_eq!(link(&linked, email("ana@example.com"), NOW).unwrap(), None, "already there");
        let mut full = c.clone();
        full.identities = (0..MAX_IDENTITIES).map(|i| phone(&format!("+1415555{i:04}"))).collect();
        assert!(matches!(link(&full, email("x@example.com"), NOW), Err(Refusal::Invalid(_))));
        let back = unlink(&linked, &phone("+14155550100"), NOW).unwrap().unwrap();
        assert_eq!(back.identities, vec![email("ana@example.com")]);
        assert_eq!(unlink(&back, &phone("+14155550100"), NOW).unwrap(), None);
        assert!(matches!(unlink(&back, &email("ana@example.com"), NOW), Err(Refusal::Invalid(_))));
    }

    #[test]
    fn a_merge_moves_identities_fills_gaps_and_hands_over_the_thread_only_when_the_target_has_none() {
        let mut source = contact(Some("Ana Silva"), &[phone("+14155550100"), email("ana@example.com")]);
        source.attributes.insert("plan".into(), "pro".into());
        let mut target = contact(None, &[email("ana@example.com")]);
        target.attributes.insert("plan".into(), "free".into());
        let conv = |c: &Contact, status: ConversationStatus| {
            let mut x = Conversation::start(c.workspace.clone(), c, NOW);
            x.status = status;
            x
        };
        let (x, y) = (conv(&source, ConversationStatus::Open), conv(&target, ConversationStatus::Pending));
        let done = conv(&target, ConversationStatus::Resolved);
        let MergeStart::Begin(m) = start_merge(&source, &target, Some(&x), Some(&done), NOW).unwrap() else { panic!() };
        assert_eq!(m.target.identities, vec![email("ana@example.com"), phone("+14155550100")]);
        assert_eq!(m.target.name.as_deref(), Some("Ana Silva"));
        assert_eq!(m.target.attributes["plan"], "free", "the target's own values win");
        assert_eq!((m.source.merged_into, m.source.identities.len()), (Some(target.id), 0));
        assert_eq!((m.slot, m.source_slot, m.target_slot), (SlotMove::Hand(x.id), Some(x.id), Some(done.id)));
        let MergeStart::Begin(both) = start_merge(&source, &target, Some(&x), Some(&y), NOW).unwrap() else { panic!() };
        assert_eq!(both.slot, SlotMove::Keep(x.id));
        let old = conv(&source, ConversationStatus::Resolved);
        let MergeStart::Begin(none) = start_merge(&source, &target, Some(&old), Some(&y), NOW).unwrap() else {
            panic!()
        };
        assert_eq!((none.slot, none.source_slot), (SlotMove::Empty, Some(old.id)));
        // Repeated, crossed and self merges.
        assert_eq!(start_merge(&m.source, &target, None, None, NOW).unwrap(), MergeStart::Resume);
        let other = contact(None, &[phone("+14155550199")]);
        assert!(matches!(start_merge(&m.source, &other, None, None, NOW), Err(Refusal::Conflict(_))));
        assert!(matches!(start_merge(&other, &m.source, None, None, NOW), Err(Refusal::Conflict(_))));
        assert!(matches!(start_merge(&other, &other, None, None, NOW), Err(Refusal::Invalid(_))));
        assert!(matches!(link(&m.source, phone("+14155550111"), NOW), Err(Refusal::Conflict(_))));
    }

    #[test]
    fn names_block_by_last_name_and_initial() {
        assert_eq!(name_key("John Smith").as_deref(), Some("smith j"));
        assert_eq!(name_key("  jon   SMITH ").as_deref(), Some("smith j"));
        assert_eq!(name_key("Anne-Marie O'Neil").as_deref(), Some("oneil a"));
        assert_eq!(name_key("Madonna"), None);
        assert_eq!(name_key(""), None);
    }

    #[test]
    fn a_probable_match_needs_a_similar_name_and_a_similar_identity() {
        let a = contact(Some("John Smith"), &[phone("+14155550100"), email("john.smith@gmail.com")]);
        // The same line under another country code: similar.
        let b = contact(Some("Jon Smith"), &[phone("+447955550100")]);
        let s = probable_match(&a, &b).expect("similar name and phone");
        assert!(s.name_similarity >= 88, "{s:?}");
        assert_eq!(s.similar, vec![(phone("+14155550100"), phone("+447955550100"))]);
        // The same local part at work, and a one-letter typo at the same domain.
        let c = contact(Some("John Smith"), &[email("johnsmith@acme.io")]);
        assert!(probable_match(&a, &c).is_some());
        let d = contact(Some("John Smith"), &[email("john.smyth@gmail.com")]);
        assert!(probable_match(&a, &d).is_some());
        // A similar identity with another name, or a similar name with nothing alike: no.
        let e = contact(Some("Maria Gomez"), &[phone("+447955550100")]);
        assert_eq!(probable_match(&a, &e), None);
        let f = contact(Some("John Smith"), &[phone("+14155559999"), email("jsmith@other.org")]);
        assert_eq!(probable_match(&a, &f), None);
        // No name, or merged away: no.
        assert_eq!(probable_match(&a, &contact(None, &[phone("+447955550100")])), None);
        let mut gone = b.clone();
        gone.merged_into = Some(a.id);
        assert_eq!(probable_match(&a, &gone), None);
        let all = suggestions(&a, &[e, b.clone(), c.clone(), a.clone()]);
        assert_eq!(all.iter().map(|s| s.contact).collect::<Vec<_>>().len(), 2);
    }
}
