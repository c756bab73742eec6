//! The `identify` route of the web chat visitors' WebSocket API (two-way):
//! `{"action":"identify","name"?:"…","email"?:"…"}` — what the widget asks for when nobody is
//! online (seed 001: "We will respond by email").
//!
//! Kept on the visitor's profile (their later messages carry it). The email is linked to the
//! visitor's contact as a *claimed* identity (anyone can type any address) at once when they have
//! written already; before their first message the inbound processor links it when it makes them
//! a contact. A claimed address never reaches the contact who holds it proven (real mail), nor the
//! other way round: an agent merges them if they are one person. The answer never says whether
//! another contact holds the address (a visitor must not learn who is a customer).
//!
//! A given address is mailed a proof link (`app::proof`, within per-visitor and per-address
//! limits); opening it proves the address (`functions/webchat-verify`). The answer's `proof` says
//! `sent`, `already_proven`, `limited`, `suppressed`, `unavailable` (the workspace receives no
//! email, or links are not configured) or `not_sent` (the mail service failed).

use std::sync::Arc;

use domain::channels::webchat::{self, EmailLink};
use domain::EmailAddress;
use kit::http::ApiError;
use kit::ws::{body, ok, respond, WsRequest, WsResponse};
use serde::Deserialize;
use store::Store;
use time::OffsetDateTime;

pub struct Deps {
    pub store: Arc<dyn Store>,
    /// Mails proof links; `None` where links or email are not configured.
    pub proof: Option<app::proof::ProofMail>,
}

impl Deps {
    /// `TABLE_NAME`; for proof links `LINK_SIGNING_SECRET`, `PUBLIC_BASE_URL` and optional
    /// `SES_CONFIGURATION_SET`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let auth = kit::auth::Authenticator::from_config(config, aws).await?;
        let proof = match (auth.link_key(), config.optional("PUBLIC_BASE_URL")) {
            (Ok(key), Some(base_url)) => Some(app::proof::ProofMail {
                transport: Arc::new(providers::ses::SesTransport::new(
                    aws_sdk_sesv2::Client::new(aws),
                    config.optional("SES_CONFIGURATION_SET"),
                )),
                key: webchat::proof_key(key),
                base_url,
            }),
            _ => None,
        };
        Ok(Self {
            store: Arc::new(store::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.required("TABLE_NAME")?,
            )),
            proof,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Identify {
    #[serde(default)]
    #[allow(dead_code)]
    action: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

pub async fn handle(deps: &Deps, req: WsRequest) -> WsResponse {
    respond(identify(deps, &req, OffsetDateTime::now_utc()).await)
}

async fn identify(deps: &Deps, req: &WsRequest, now: OffsetDateTime) -> Result<WsResponse, ApiError> {
    let said: Identify = body(req)?;
    if said.name.is_none() && said.email.is_none() {
        return Err(ApiError::BadRequest("give a name, an email or both".into()));
    }
    let name = said.name.as_deref().map(webchat::parse_name).transpose()?;
    let email = said.email.as_deref().map(EmailAddress::parse).transpose()?;
    let conn = api::visitor(&*deps.store, req).await?;
    let ws = &conn.workspace;
    let profile = webchat::remember(&*deps.store, ws, &conn.visitor, name, email.clone(), now).await?;
    if let Some(email) = &email {
        if let Some(contact) = deps.store.contact_by_identity(ws, &conn.visitor.identity()).await? {
            let linked = webchat::link_email(&*deps.store, ws, contact.id, email, now).await?;
            let outcome = match linked {
                EmailLink::Linked => "linked",
                EmailLink::AlreadyLinked => "already linked",
                EmailLink::HeldByAnother => "held by another contact",
                EmailLink::Refused(_) => "refused",
            };
            tracing::info!(workspace = %ws, visitor = %conn.visitor, contact = %contact.id, outcome, "visitor gave an email");
        }
    }
    let proof = match (&email, &deps.proof) {
        (None, _) => None,
        (Some(_), None) => Some("unavailable".to_owned()),
        (Some(email), Some(mail)) => {
            let offered = app::proof::offer(&*deps.store, mail, ws, &conn.visitor, email, now).await;
            Some(match offered {
                Ok(o) => serde_json::to_value(o).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(workspace = %ws, visitor = %conn.visitor, error = %e, "proof link not sent");
                    "not_sent".to_owned()
                }
            })
        }
    };
    Ok(ok(serde_json::json!({
        "action": "identify",
        "name": profile.name,
        "email": profile.email.as_ref().map(EmailAddress::as_str),
        "proof": proof,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::channels::webchat::VisitorId;
    use domain::model::{Contact, Identity};
    use domain::ports::{InboundStore, VisitorStore};
    use domain::WorkspaceId;
    use store::MemoryStore;

    const FIXTURE: &str = include_str!("../../../events/webchat-identify/identify.json");

    async fn connected(store: &MemoryStore) -> VisitorId {
        let v = VisitorId::new();
        store::contract::seed_visitor_socket(store, &WorkspaceId::parse("demo").unwrap(), &v, "Vk9mY2hhdFRhYjE=").await;
        v
    }

    fn request(body: serde_json::Value) -> WsRequest {
        let mut req: WsRequest = serde_json::from_str(FIXTURE).unwrap();
        req.body = Some(body.to_string());
        req
    }

    /// A seeded contact that also holds `identity` (as an agent's link would make it).
    async fn contact_with(store: &MemoryStore, n: u32, identity: Identity) -> Contact {
        let ws = WorkspaceId::parse("demo").unwrap();
        let (contact, _) = store::contract::seed_conversation(store, &ws, n, OffsetDateTime::now_utc()).await;
        let ann = domain::AgentId::parse("ann").unwrap();
        domain::contacts::add_identity(store, &ws, contact.id, identity, &ann, OffsetDateTime::now_utc())
            .await
            .unwrap()
            .contact
    }

    #[tokio::test]
    async fn before_the_first_message_the_profile_keeps_it() {
        let store = Arc::new(MemoryStore::new());
        let v = connected(&store).await;
        let deps = Deps { store: store.clone(), proof: None };
        let res = handle(&deps, serde_json::from_str(FIXTURE).unwrap()).await;
        assert_eq!(res.status_code, 200);
        let p = store.visitor_profile(&WorkspaceId::parse("demo").unwrap(), &v).await.unwrap().unwrap();
        assert_eq!((p.name.as_deref(), p.email.unwrap().as_str()), (Some("Rui Costa"), "rui@example.com"));
        assert_eq!(handle(&deps, request(serde_json::json!({ "action": "identify" }))).await.status_code, 400);
        assert_eq!(
            handle(&deps, request(serde_json::json!({ "action": "identify", "email": "nope" }))).await.status_code,
            400
        );
    }

    #[tokio::test]
    async fn the_email_is_linked_as_claimed_and_never_reaches_whoever_holds_it_proven() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("demo").unwrap();
        let v = connected(&store).await;
        let contact = contact_with(&store, 7, v.identity()).await;
        let deps = Deps { store: store.clone(), proof: None };
        assert_eq!(handle(&deps, serde_json::from_str(FIXTURE).unwrap()).await.status_code, 200);
        let email = Identity::parse(domain::model::IdentityKind::Email, "rui@example.com").unwrap();
        assert_eq!(store.contact_by_identity(&ws, &email.clone().claimed()).await.unwrap().unwrap().id, contact.id);
        assert!(store.contact_by_identity(&ws, &email).await.unwrap().is_none(), "real mail from it stays apart");

        // Someone else's address: same answer, and the real owner keeps it.
        let taken = Identity::parse(domain::model::IdentityKind::Email, "owner@example.com").unwrap();
        let other = contact_with(&store, 8, taken.clone()).await;
        let res =
            handle(&deps, request(serde_json::json!({ "action": "identify", "email": "owner@example.com" }))).await;
        assert_eq!(res.status_code, 200);
        assert_eq!(store.contact_by_identity(&ws, &taken).await.unwrap().unwrap().id, other.id);
    }
}
