//! POST /conversations — an agent writes to a customer first (a callback, an order problem, a
//! reminder): `{"channel": "sms" | "whatsapp" | "email", "to": "+14155550123" | "ann@example.com",
//! "from"?: "<one of the workspace's addresses on that channel>"}`. The conversation is threaded as
//! the customer's own message would be: their unresolved conversation takes the route (opened on
//! that channel if new), otherwise a new one starts (a new contact too when nobody holds the
//! address), open and unassigned with the agent as previous owner, so the answer is routed with
//! continuity. 201 when a conversation started, 200 when an open one took it (a retry too).
//! The first message is an ordinary reply (`POST /conversations/{id}/messages` with the
//! `Idempotency-Key`): WhatsApp allows only an approved template (the customer has not written),
//! and consent, channel limits and budgets are checked there as for any reply. An address that
//! opted out (STOP, a bounce, a complaint) is refused here already, with 422.

use domain::model::{Channel, Identity, Route};
use domain::{EmailAddress, PhoneNumber};
use kit::auth::INBOX;
use kit::http::{json, json_body, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::Deps;

/// Tries at most this often when another writer changes the contact's thread meanwhile.
const ATTEMPTS: usize = 3;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = StartConversationRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    channel: Channel,
    /// The customer's number (E.164) or email address.
    to: String,
    /// Which of the workspace's addresses on the channel writes (default: its first).
    #[serde(default)]
    from: Option<String>,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(start(deps, &req).await))
}

#[utoipa::path(post, path = "/conversations", operation_id = "startConversation", tag = "conversations",
    request_body = Draft,
    responses((status = 201, description = "A conversation started", body = Started),
              (status = 200, description = "The customer's open conversation took the route", body = Started),
              (status = 422, body = kit::http::ErrorBody)))]
async fn start(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    who.require(INBOX)?;
    let draft: Draft = json_body(req, r#"{"channel": "sms" | "whatsapp" | "email", "to": "...", "from"?: "..."}"#)?;
    let ws = &who.workspace;
    let (identity, contact_address, country) = match draft.channel {
        Channel::Sms | Channel::Whatsapp => {
            let n = PhoneNumber::parse(&draft.to).map_err(|e| ApiError::Unprocessable(format!("to: {e}")))?;
            (Identity::phone(&n), n.as_str().to_owned(), n.country())
        }
        Channel::Email => {
            let e = EmailAddress::parse(&draft.to).map_err(|e| ApiError::Unprocessable(format!("to: {e}")))?;
            (Identity::email(&e), e.as_str().to_owned(), None)
        }
        other => {
            return Err(ApiError::Unprocessable(format!(
                "conversations start on SMS, WhatsApp or email; on {other} the customer writes first"
            )))
        }
    };
    let accounts = deps.store.channel_accounts(ws).await?;
    let ours = accounts
        .iter()
        .filter(|a| a.channel == draft.channel)
        .find(|a| draft.from.as_deref().is_none_or(|f| a.address.eq_ignore_ascii_case(f.trim())))
        .ok_or_else(|| {
            ApiError::Unprocessable(match &draft.from {
                Some(f) => format!("{f} is not one of this workspace's {} addresses", draft.channel),
                None => format!("this workspace has no {} account: connect one (PUT /channels/...)", draft.channel),
            })
        })?;
    if let Some(why) = deps.store.consent(ws, &identity).await?.and_then(|r| r.refusal()) {
        return Err(ApiError::Unprocessable(why));
    }
    let route =
        Route { channel: draft.channel, contact_address, our_address: ours.address.clone(), contact_country: country };
    for _ in 0..ATTEMPTS {
        let thread = deps.store.thread_of(ws, &identity).await?;
        let now = time::OffsetDateTime::now_utc();
        let out = domain::threading::open_outreach(ws, &identity, route.clone(), thread, &who.agent, now);
        if let Some(commit) = out.commit {
            match deps.store.commit_outreach(commit).await {
                Ok(()) => {}
                Err(domain::ports::StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let c = out.conversation;
        tracing::info!(workspace = %ws, by = %who.agent, conversation = %c.id, channel = %draft.channel,
            started = out.started, "outreach");
        let status = if out.started { 201 } else { 200 };
        return Ok(json(status, &Started { contact_id: c.contact_id, started: out.started, conversation: c }));
    }
    Err(ApiError::Conflict("the customer's conversation is changing; retry".into()))
}

/// The conversation the first message goes in.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Started {
    pub conversation: domain::model::Conversation,
    pub contact_id: domain::ContactId,
    pub started: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{ChannelAccount, ChannelDirectory};
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Arc;
    use store::MemoryStore;

    async fn post(deps: &Deps, role: Role, body: serde_json::Value) -> (u16, serde_json::Value) {
        let auth = bearer("s", "acme", "ann", role);
        let body = body.to_string();
        let req = kit::apigw::test_request(
            "POST",
            "/conversations",
            "/conversations",
            &[],
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        );
        let res = handle(deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    #[tokio::test]
    async fn an_agent_starts_once_and_the_open_conversation_takes_other_channels() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        store.put_channel_account(&ChannelAccount::new(ws.clone(), Channel::Sms, "+14155550100")).await.unwrap();
        let deps = Deps::new(store.clone(), Authenticator::new("s"));
        let sms = serde_json::json!({ "channel": "sms", "to": "+1 415 555 2671" });
        let (status, first) = post(&deps, Role::Agent, sms.clone()).await;
        assert_eq!(status, 201, "{first}");
        assert_eq!(first["conversation"]["channels"]["sms"]["route"]["our_address"], "+14155550100");
        assert_eq!(first["conversation"]["previous_owner"], "ann");
        let (status, again) = post(&deps, Role::Agent, sms).await;
        assert_eq!((status, &again["conversation"]["id"]), (200, &first["conversation"]["id"]), "a retry");

        // No WhatsApp account: refused; Telegram cannot be started; finance cannot start anything.
        let wa = serde_json::json!({ "channel": "whatsapp", "to": "+14155552671" });
        assert_eq!(post(&deps, Role::Agent, wa.clone()).await.0, 422);
        store.put_channel_account(&ChannelAccount::new(ws.clone(), Channel::Whatsapp, "1065")).await.unwrap();
        let (status, both) = post(&deps, Role::Agent, wa).await;
        assert_eq!((status, &both["conversation"]["id"]), (200, &first["conversation"]["id"]), "the same thread");
        assert!(both["conversation"]["channels"]["whatsapp"].is_object());
        assert_eq!(post(&deps, Role::Agent, serde_json::json!({ "channel": "telegram", "to": "1" })).await.0, 422);
        assert_eq!(
            post(&deps, Role::Finance, serde_json::json!({ "channel": "sms", "to": "+14155552671" })).await.0,
            403
        );
        assert_eq!(post(&deps, Role::Agent, serde_json::json!({ "channel": "sms", "to": "555" })).await.0, 422);
    }
}
