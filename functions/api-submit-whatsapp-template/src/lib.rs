//! POST /whatsapp/templates — an admin submits a WhatsApp template to Meta for review, and the
//! registry keeps it: body, optional header (text or media), footer and buttons, with the examples
//! Meta's review needs for each variable:
//!
//! ```json
//! {"name": "order_update", "language": "en_US", "category": "utility",
//!  "body": "Hi {{1}}, order {{2}} ships today.",
//!  "header": {"format": "text", "text": "Order {{1}}"}, "footer": "Acme Shop",
//!  "buttons": [{"type": "url", "text": "Track it", "url": "https://acme.example/t/{{1}}"}],
//!  "examples": {"body": ["Ana", "8812"], "header_text": "8812", "urls": ["https://acme.example/t/8812"]}}
//! ```
//!
//! It is created under the workspace's WhatsApp Business Account (the `business_account_id` its
//! WhatsApp number was connected with, or the one named) and kept as Meta answered: usually
//! `pending`, with Meta's id and the category Meta filed it under. Meta's review then arrives by
//! webhook (`message_template_status_update`) and makes it sendable, or rejected with a reason.
//!
//! Idempotent: the same template again answers 200 and submits nothing; a changed template that
//! Meta rejected, paused or approved is submitted again as an edit of the same template (Meta
//! reviews it again, so it is `pending` until then); a changed one still pending is 409. 422 when
//! Meta refuses it (its words), when the template breaks Meta's limits, or when no business
//! account is known. Admins only; audited.

use std::sync::Arc;

use domain::channels::templates::{Examples, TemplateButton, TemplateHeader, TemplateStatus, WhatsAppTemplate};
use domain::finance::pricing::WhatsappCategory;
use domain::ports::{BotApiError, TemplateSubmissions};
use domain::Channel;
use kit::auth::ADMINS;
use kit::http::{json, json_body, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub struct Deps {
    pub api: api::Deps,
    pub meta: Arc<dyn TemplateSubmissions>,
}

impl Deps {
    /// `WHATSAPP_CREDENTIALS` (its `access_token` manages the templates), optional
    /// `WHATSAPP_API_BASE`.
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let whatsapp: domain::channels::whatsapp::WhatsApp = config.json_secret("WHATSAPP_CREDENTIALS", aws).await?;
        let meta = providers::outbound::GraphTemplates {
            http: providers::http::client(providers::http::API_TIMEOUT)
                .map_err(|e| kit::ConfigError::Invalid { name: "http client".into(), reason: e.to_string() })?,
            base_url: config
                .optional("WHATSAPP_API_BASE")
                .unwrap_or_else(|| domain::channels::whatsapp::API_BASE.into()),
            // A workspace's own business account with its own token (kept with its numbers).
            tokens: Arc::new(providers::accounts::whatsapp_numbers(
                api::credentials::vault(config, aws),
                Some(whatsapp.access_token.clone()),
            )),
        };
        Ok(Self { api: api::Deps::from_config(config, aws).await?, meta: Arc::new(meta) })
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = SubmitWhatsappTemplateRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    name: String,
    language: String,
    category: WhatsappCategory,
    body: String,
    #[serde(default)]
    header: Option<TemplateHeader>,
    #[serde(default)]
    footer: Option<String>,
    #[serde(default)]
    buttons: Vec<TemplateButton>,
    #[serde(default)]
    examples: Examples,
    /// Which WhatsApp Business Account (else the one the workspace's WhatsApp numbers belong to).
    #[serde(default)]
    business_account_id: Option<String>,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(submit(deps, &req).await))
}

fn meta_answer(e: BotApiError) -> ApiError {
    match e {
        BotApiError::Refused(m) => ApiError::Unprocessable(m),
        BotApiError::Unavailable(m) => ApiError::Unavailable(m.into()),
    }
}

/// The workspace's WhatsApp numbers connected with a business account: `(account, number)`, in
/// order. A number's token speaks for its account (its workspace's own, else the stack's).
async fn numbers_by_account(deps: &Deps, ws: &domain::WorkspaceId) -> Result<Vec<(String, String)>, ApiError> {
    let accounts = deps.api.store.channel_accounts(ws).await?;
    let mut numbers: Vec<(String, String)> = accounts
        .into_iter()
        .filter(|a| a.channel == Channel::Whatsapp)
        .filter_map(|a| a.business_account_id.map(|waba| (waba, a.address)))
        .collect();
    numbers.sort();
    Ok(numbers)
}

/// The business account to submit under (the one named, else the single one the workspace's
/// WhatsApp numbers were connected with), and the number in it whose token speaks for it.
fn business_account(numbers: &[(String, String)], named: Option<String>) -> Result<(String, String), ApiError> {
    let mut known: Vec<String> = numbers.iter().map(|(waba, _)| waba.clone()).collect();
    known.dedup();
    let chosen = match (named, known.as_slice()) {
        (Some(n), _) if known.contains(&n) => Ok(n),
        (Some(n), _) => Err(ApiError::Unprocessable(format!(
            "business account {n} is not one of this workspace's WhatsApp numbers' (PUT /channels/whatsapp/{{id}} with business_account_id)"
        ))),
        (None, [one]) => Ok(one.clone()),
        (None, []) => Err(ApiError::Unprocessable(
            "no WhatsApp Business Account is known: connect a WhatsApp number with its business_account_id".into(),
        )),
        (None, _) => Err(ApiError::Unprocessable(format!(
            "this workspace has several WhatsApp Business Accounts ({}): name one in business_account_id",
            known.join(", ")
        ))),
    }?;
    let number = numbers.iter().find(|(waba, _)| *waba == chosen).map(|(_, n)| n.clone()).unwrap_or_default();
    Ok((chosen, number))
}

/// Whether two registry entries are the same template as submitted (review fields aside).
fn same_template(a: &WhatsAppTemplate, b: &WhatsAppTemplate) -> bool {
    (&a.body, &a.header, &a.footer, &a.buttons, a.category) == (&b.body, &b.header, &b.footer, &b.buttons, b.category)
}

#[utoipa::path(post, path = "/whatsapp/templates", operation_id = "submitWhatsappTemplate", tag = "whatsapp",
    request_body = Draft,
    responses((status = 201, description = "Submitted to Meta and registered (usually pending Meta's review)", body = api::TemplateBody),
              (status = 200, description = "Already submitted as it is, or resubmitted as an edit", body = api::TemplateBody),
              (status = 403, body = kit::http::ErrorBody), (status = 409, body = kit::http::ErrorBody),
              (status = 422, description = "Meta refused it, it breaks Meta's limits, or no business account is known", body = kit::http::ErrorBody),
              (status = 503, description = "Meta is unavailable: retry", body = kit::http::ErrorBody)))]
async fn submit(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.api.auth.authenticate(req)?;
    who.require(ADMINS)?;
    let draft: Draft = json_body(
        req,
        r#"{"name": "order_update", "language": "en_US", "category": "utility", "body": "Hi {{1}}", "examples": {"body": ["Ana"]}}"#,
    )?;
    let now = time::OffsetDateTime::now_utc();
    let mut template = WhatsAppTemplate::new(
        &draft.name,
        &draft.language,
        draft.category,
        &draft.body,
        TemplateStatus::Pending,
        who.agent.clone(),
        now,
    )?
    .with_components(draft.header, draft.footer, draft.buttons)?;
    let submission = template.submission(&draft.examples)?;
    let before = deps.api.store.whatsapp_template(&who.workspace, &template.name, &template.language).await?;
    let submitted = match &before {
        Some(held) if held.meta_id.is_some() && same_template(held, &template) => {
            return Ok(json(200, &api::TemplateBody { template: held.clone() }));
        }
        Some(held) if held.meta_id.is_none() => {
            return Err(ApiError::Conflict(format!(
                "{} ({}) was registered by hand from WhatsApp Manager: change it there, or PUT it",
                held.name, held.language
            )))
        }
        Some(held) if held.status == TemplateStatus::Pending => {
            return Err(ApiError::Conflict(format!(
                "{} ({}) is waiting for Meta's review: it can be changed once Meta has answered",
                held.name, held.language
            )))
        }
        Some(held) => {
            let meta_id = held.meta_id.clone().unwrap_or_default();
            // The workspace's templates live in its business account: any of its numbers there.
            let numbers = numbers_by_account(deps, &who.workspace).await?;
            let via = numbers.first().map(|(_, number)| number.clone()).unwrap_or_default();
            deps.meta.edit(&meta_id, &via, &submission).await.map_err(meta_answer)?
        }
        None => {
            let numbers = numbers_by_account(deps, &who.workspace).await?;
            let (account, via) = business_account(&numbers, draft.business_account_id)?;
            deps.meta.create(&account, &via, &submission).await.map_err(meta_answer)?
        }
    };
    template.meta_id = Some(submitted.meta_id);
    template.status = submitted.status;
    template.category = submitted.category.unwrap_or(template.category);
    // What Meta last reviewed stays the baseline: a review arriving now must still apply.
    template.reviewed_at = before.as_ref().and_then(|b| b.reviewed_at);
    template.quality = before.as_ref().and_then(|b| b.quality);
    deps.api.store.put_whatsapp_template(&who.workspace, &template).await?;
    let details = serde_json::json!({ "before": before, "after": template });
    api::record_workspace_change(&*deps.api.store, &who, "whatsapp_template_submitted", details).await?;
    tracing::info!(workspace = %who.workspace, by = %who.agent, template = %template.name, status = ?template.status, "WhatsApp template submitted to Meta");
    Ok(json(if before.is_some() { 200 } else { 201 }, &api::TemplateBody { template }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::{AuditLog, ChannelAccount, ChannelDirectory, Submitted, TemplateStore};
    use domain::{Role, WorkspaceId};
    use kit::auth::{bearer, Authenticator};
    use std::sync::Mutex;
    use store::MemoryStore;

    /// Meta's template API as the tests need it: records what it was asked, answers as scripted.
    #[derive(Default)]
    struct Meta {
        asked: Mutex<Vec<(String, serde_json::Value)>>,
        refuse: Mutex<Option<String>>,
    }

    #[async_trait::async_trait]
    impl TemplateSubmissions for Meta {
        async fn create(&self, waba: &str, _via: &str, s: &serde_json::Value) -> Result<Submitted, BotApiError> {
            if let Some(why) = self.refuse.lock().unwrap().clone() {
                return Err(BotApiError::Refused(why));
            }
            self.asked.lock().unwrap().push((format!("create {waba}"), s.clone()));
            Ok(Submitted {
                meta_id: "5551".into(),
                status: TemplateStatus::Pending,
                category: Some(WhatsappCategory::Marketing),
            })
        }
        async fn edit(&self, id: &str, _via: &str, s: &serde_json::Value) -> Result<Submitted, BotApiError> {
            self.asked.lock().unwrap().push((format!("edit {id}"), s.clone()));
            Ok(Submitted { meta_id: id.into(), status: TemplateStatus::Pending, category: None })
        }
    }

    async fn post(deps: &Deps, role: Role, body: serde_json::Value) -> (u16, serde_json::Value) {
        let auth = bearer("s", "acme", "ada", role);
        let req = kit::apigw::test_request(
            "POST",
            "/whatsapp/templates",
            "/whatsapp/templates",
            &[],
            &[("authorization", &auth)],
            Some(body.to_string().as_bytes()),
        );
        let res = handle(deps, req).await.unwrap();
        (res.status().as_u16(), kit::apigw::json_of(&res))
    }

    fn draft() -> serde_json::Value {
        serde_json::json!({ "name": "order_update", "language": "en_US", "category": "utility",
            "body": "Hi {{1}}, order {{2}} ships today.", "footer": "Acme Shop",
            "buttons": [{ "type": "quick_reply", "text": "Talk to us" }],
            "examples": { "body": ["Ana", "8812"] } })
    }

    #[tokio::test]
    async fn admins_submit_to_the_workspaces_business_account_once() {
        let store = Arc::new(MemoryStore::new());
        let meta = Arc::new(Meta::default());
        let deps = Deps { api: api::Deps::new(store.clone(), Authenticator::new("s")), meta: meta.clone() };
        let ws = WorkspaceId::parse("acme").unwrap();

        // No business account known yet.
        let (status, body) = post(&deps, Role::Admin, draft()).await;
        assert_eq!(status, 422, "{body}");
        let mut number = ChannelAccount::new(ws.clone(), Channel::Whatsapp, "106540352242922");
        number.business_account_id = Some("102290129340398".into());
        store.put_channel_account(&number).await.unwrap();

        assert_eq!(post(&deps, Role::Agent, draft()).await.0, 403);
        let (status, body) = post(&deps, Role::Admin, draft()).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["template"]["status"], "pending");
        assert_eq!(body["template"]["meta_id"], "5551");
        assert_eq!(body["template"]["category"], "marketing", "Meta's category is kept");
        let asked = meta.asked.lock().unwrap().clone();
        assert_eq!(asked[0].0, "create 102290129340398");
        assert_eq!(asked[0].1["components"][0]["example"]["body_text"][0][1], "8812");

        // The same again: nothing submitted. A change while Meta reviews: 409.
        let mut same = draft();
        same["category"] = "marketing".into();
        assert_eq!(post(&deps, Role::Admin, same).await.0, 200);
        assert_eq!(meta.asked.lock().unwrap().len(), 1);
        let mut changed = draft();
        changed["footer"] = "Acme".into();
        assert_eq!(post(&deps, Role::Admin, changed.clone()).await.0, 409);

        // Meta rejects it; the change goes as an edit of the same template.
        let mut t = store.whatsapp_template(&ws, "order_update", "en_US").await.unwrap().unwrap();
        t.status = TemplateStatus::Rejected;
        store.put_whatsapp_template(&ws, &t).await.unwrap();
        let (status, body) = post(&deps, Role::Admin, changed).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(meta.asked.lock().unwrap()[1].0, "edit 5551");
        assert_eq!(body["template"]["footer"], "Acme");
        assert_eq!(body["template"]["status"], "pending");

        let audit = store.audit_trail(&ws, None, 5, None).await.unwrap().items;
        assert_eq!(audit.iter().filter(|e| e.action == "whatsapp_template_submitted").count(), 2);
    }

    #[tokio::test]
    async fn what_meta_or_its_limits_refuse_is_a_422_with_the_reason() {
        let store = Arc::new(MemoryStore::new());
        let meta = Arc::new(Meta::default());
        let deps = Deps { api: api::Deps::new(store.clone(), Authenticator::new("s")), meta: meta.clone() };
        let ws = WorkspaceId::parse("acme").unwrap();
        let mut number = ChannelAccount::new(ws.clone(), Channel::Whatsapp, "106540352242922");
        number.business_account_id = Some("102290129340398".into());
        store.put_channel_account(&number).await.unwrap();

        let mut no_examples = draft();
        no_examples["examples"] = serde_json::json!({});
        let (status, body) = post(&deps, Role::Admin, no_examples).await;
        assert!(matches!(status, 400 | 422), "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("examples"), "{body}");

        *meta.refuse.lock().unwrap() = Some("Meta refused the template: Invalid parameter".into());
        let (status, body) = post(&deps, Role::Admin, draft()).await;
        assert_eq!(status, 422);
        assert!(body["error"]["message"].as_str().unwrap().contains("Invalid parameter"), "{body}");
        assert!(store.whatsapp_template(&ws, "order_update", "en_US").await.unwrap().is_none(), "nothing kept");
    }
}
