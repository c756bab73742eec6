//! A web chat visitor proves the email address they typed: the widget's `identify` mails a signed
//! link to it (`domain::channels::webchat::proof_token`, 24 h); opening it and pressing the button
//! (`functions/webchat-verify`) proves it (`webchat::prove_email`): the visitor's contact gets the
//! address as a proven identity, or merges into the customer who holds it. Until then the address
//! stays claimed and never reaches anyone's history.

use domain::channels::email;
use domain::channels::webchat::{self, EmailProof, VisitorId};
use domain::ports::{ChannelDirectory, ConsentStore, EmailTransport, RateLimiter, VisitorStore};
use domain::{EmailAddress, WorkspaceId};
use time::OffsetDateTime;

use crate::send::MailFrom;
use crate::Error;

/// What sending a proof link needs from the store.
pub trait ProofPorts: ChannelDirectory + ConsentStore + RateLimiter + VisitorStore {}
impl<T: ChannelDirectory + ConsentStore + RateLimiter + VisitorStore + ?Sized> ProofPorts for T {}

/// How proof links are mailed: the transport, the key that signs them and the public base URL
/// the link starts with.
pub struct ProofMail {
    pub transport: std::sync::Arc<dyn EmailTransport>,
    pub key: Vec<u8>,
    pub base_url: String,
}

/// What became of a request for a proof link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Offer {
    Sent,
    /// The visitor proved this address already.
    AlreadyProven,
    /// Too many links for this visitor or this address lately.
    Limited,
    /// The address refuses our mail (a hard bounce or a complaint).
    Suppressed,
    /// The workspace receives no email, so it has no address to send from.
    Unavailable,
}

/// Mails a proof link for `email` to visitor `visitor` of `ws`, within the limits.
pub async fn offer<S: ProofPorts + ?Sized>(
    store: &S,
    mail: &ProofMail,
    ws: &WorkspaceId,
    visitor: &VisitorId,
    email: &EmailAddress,
    now: OffsetDateTime,
) -> Result<Offer, Error> {
    if store.visitor_profile(ws, visitor).await?.and_then(|p| p.proven_email).as_ref() == Some(email) {
        return Ok(Offer::AlreadyProven);
    }
    let from = match crate::send::mail_from(store, ws, email.as_str()).await? {
        MailFrom::Account(from) => from,
        MailFrom::NoMailbox => return Ok(Offer::Unavailable),
        MailFrom::Suppressed => return Ok(Offer::Suppressed),
    };
    let hour = time::Duration::hours(1);
    if !store.take(ws, &format!("proof:{visitor}"), now, hour, webchat::PROOFS_PER_VISITOR_PER_HOUR).await? {
        return Ok(Offer::Limited);
    }
    let day = time::Duration::days(1);
    let to_key = format!("proof-to:{}", email.digest());
    if !store.take(ws, &to_key, now, day, webchat::PROOFS_PER_ADDRESS_PER_DAY).await? {
        return Ok(Offer::Limited);
    }
    let proof = EmailProof { workspace: ws.clone(), visitor: visitor.clone(), email: email.clone() };
    let token = webchat::proof_token(&mail.key, &proof, now + webchat::PROOF_LINK_TTL);
    let link = format!("{}/webchat/verify/{token}", mail.base_url.trim_end_matches('/'));
    let outgoing = webchat::proof_email(&from, email, &link, now);
    let raw = email::render(&outgoing).map_err(|e| Error::Invalid(format!("the proof mail: {}", e.message)))?;
    mail.transport
        .send_raw(&from.address, email.as_str(), raw)
        .await
        .map_err(|e| Error::Unavailable(format!("the proof mail was not sent: {e}")))?;
    tracing::info!(workspace = %ws, %visitor, "proof link mailed");
    Ok(Offer::Sent)
}
