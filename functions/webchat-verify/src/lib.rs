//! POST /webchat/verify/{token} — a web chat visitor proves the email address the link was mailed
//! to (`domain::channels::webchat::prove_email`): the address becomes a proven identity of their
//! contact, or — when a customer already holds it proven — their contact merges into that
//! customer's. Pressing the button twice changes nothing more. A forged or altered link is 400, an
//! expired one 410, as a small page.

use std::sync::Arc;

use domain::channels::webchat::{self, Proven};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use store::Store;
use time::OffsetDateTime;

pub struct Deps {
    pub store: Arc<dyn Store>,
    /// The key proof links are signed with; `None` where links are not configured.
    pub key: Option<Vec<u8>>,
}

impl Deps {
    /// `TABLE_NAME`, `LINK_SIGNING_SECRET`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let api = api::Deps::from_config(config, aws).await?;
        let key = api.auth.link_key().ok().map(webchat::proof_key);
        Ok(Self { store: api.store, key })
    }
}

#[utoipa::path(post, path = "/webchat/verify/{token}", operation_id = "webchatVerify", tag = "public",
    params(("token" = String, Path, description = "The signed proof link")),
    responses((status = 200, description = "Proven", body = String, content_type = "text/html"),
              (status = 400, description = "A forged or altered link", body = String, content_type = "text/html"),
              (status = 410, description = "The link expired", body = String, content_type = "text/html")))]
pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    const TITLE: &str = api::csat::PROOF_TITLE;
    let token = req.path_parameters().first("token").unwrap_or_default().to_owned();
    let now = OffsetDateTime::now_utc();
    let proof = match api::csat::proof_from_link(deps.key.as_deref(), &token, now) {
        Ok(p) => p,
        Err(page) => return Ok(*page),
    };
    match webchat::prove_email(&*deps.store, &proof.workspace, &proof.visitor, &proof.email, now).await {
        Ok(outcome) => {
            let how = match outcome {
                Proven::Remembered => "remembered",
                Proven::Linked => "linked",
                Proven::Merged { .. } => "merged",
            };
            tracing::info!(workspace = %proof.workspace, visitor = %proof.visitor, how, "visitor proved their email");
            Ok(api::csat::page(200, "Thank you", "Your email address is confirmed. You can go back to the chat."))
        }
        Err(domain::contacts::ContactError::Store(e)) => {
            tracing::warn!(workspace = %proof.workspace, error = %e, "proof not recorded: store unavailable");
            Ok(api::csat::page(503, TITLE, "Please try again in a moment."))
        }
        Err(why) => {
            tracing::warn!(workspace = %proof.workspace, visitor = %proof.visitor, %why, "proof not recorded");
            Ok(api::csat::page(
                409,
                TITLE,
                "We could not confirm this address automatically; an agent will help you in the chat.",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::channels::webchat::{EmailProof, VisitorId};
    use domain::model::Identity;
    use domain::ports::{ContactStore, ConversationReader, InboundStore, VisitorStore};
    use domain::{EmailAddress, WorkspaceId};
    use store::MemoryStore;

    fn post(token: &str) -> Request {
        kit::apigw::test_request(
            "POST",
            "/webchat/verify/{token}",
            &format!("/webchat/verify/{token}"),
            &[("token", token)],
            &[],
            None,
        )
    }

    #[tokio::test]
    async fn a_proven_address_replaces_the_claimed_one_or_merges_the_visitor_into_its_customer() {
        let store = Arc::new(MemoryStore::new());
        let key = webchat::proof_key(b"k");
        let deps = Deps { store: store.clone(), key: Some(key.clone()) };
        let ws = WorkspaceId::parse("acme").unwrap();
        let now = OffsetDateTime::now_utc();
        let system = domain::audit::AuditEntry::system();
        // A visitor who wrote and typed an address nobody holds: proven, it replaces the claim.
        let v = VisitorId::new();
        let (visitor_contact, _) = store::contract::seed_conversation(&*store, &ws, 1, now).await;
        domain::contacts::add_identity(&*store, &ws, visitor_contact.id, v.identity(), &system, now).await.unwrap();
        let email = EmailAddress::parse("rui@example.com").unwrap();
        webchat::link_email(&*store, &ws, visitor_contact.id, &email, now).await.unwrap();
        let token = |v: &VisitorId, e: &EmailAddress| {
            let proof = EmailProof { workspace: ws.clone(), visitor: v.clone(), email: e.clone() };
            webchat::proof_token(&key, &proof, now + webchat::PROOF_LINK_TTL)
        };
        assert_eq!(handle(&deps, post(&token(&v, &email))).await.unwrap().status(), 200);
        let c = store.contact(&ws, visitor_contact.id).await.unwrap().unwrap();
        assert!(c.identities.contains(&Identity::email(&email)), "proven");
        assert!(!c.identities.contains(&Identity::email(&email).claimed()), "the claim gave way");
        assert!(store.visitor_profile(&ws, &v).await.unwrap().unwrap().email_proven());
        assert_eq!(handle(&deps, post(&token(&v, &email))).await.unwrap().status(), 200, "twice is fine");

        // Another visitor proves the address of a customer who holds it proven: they are that customer.
        let w = VisitorId::new();
        let (other, _) = store::contract::seed_conversation(&*store, &ws, 2, now).await;
        domain::contacts::add_identity(&*store, &ws, other.id, w.identity(), &system, now).await.unwrap();
        assert_eq!(handle(&deps, post(&token(&w, &email))).await.unwrap().status(), 200);
        assert_eq!(store.identity_owner(&ws, &w.identity()).await.unwrap(), Some(visitor_contact.id), "merged in");
        assert_eq!(store.contact(&ws, other.id).await.unwrap().unwrap().merged_into, Some(visitor_contact.id));

        // A visitor who never wrote: remembered for their first message.
        let u = VisitorId::new();
        let fresh = EmailAddress::parse("new@example.com").unwrap();
        assert_eq!(handle(&deps, post(&token(&u, &fresh))).await.unwrap().status(), 200);
        assert_eq!(store.visitor_profile(&ws, &u).await.unwrap().unwrap().proven_email, Some(fresh));
        assert!(store.contact_by_identity(&ws, &u.identity()).await.unwrap().is_none());

        assert_eq!(handle(&deps, post("p1.forged")).await.unwrap().status(), 400);
    }
}
