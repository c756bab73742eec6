//! POST /finance/preview — what a draft would cost before it is sent.
//!
//! Body: `{"channel": "sms", "text": "...", "to"?: "+14155552671", "conversation_id"?: "...",
//! "media"?: false, "whatsapp_category"?: "marketing", "recipients"?: 1}`. With a conversation the
//! recipient and the WhatsApp window come from it; otherwise `to` names the recipient (its country
//! picks the rate). Answers the encoding and segments (SMS), the estimated provider cost with its
//! lines and rate-card version, for WhatsApp whether the 24-hour window is open (a free-form reply
//! is free) or a template is required (and what each category costs), and whether a hard-stop
//! budget would refuse the send. Anyone who works the inbox may preview (not the finance role).

use domain::finance::default_provider;
use domain::finance::ledger::Month;
use domain::finance::pricing::{estimate, PricingError, PricingInput, WhatsappCategory};
use domain::finance::report::Amount;
use domain::finance::service::hard_stop;
use domain::model::{Channel, Direction};
use domain::{ConversationId, PhoneNumber};
use kit::http::{body_bytes, respond, ApiError};
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub use api::Deps;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = PreviewCostRequest)]
#[serde(deny_unknown_fields)]
struct Draft {
    channel: Channel,
    #[serde(default)]
    text: String,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    media: bool,
    #[serde(default)]
    whatsapp_category: Option<WhatsappCategory>,
    #[serde(default)]
    recipients: Option<u32>,
    /// SMS: which of the workspace's numbers would send (default: the conversation's, else the
    /// workspace's first).
    #[serde(default)]
    from: Option<String>,
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    Ok(respond(preview(deps, &req).await))
}

#[utoipa::path(post, path = "/finance/preview", operation_id = "previewCost", tag = "finance",
    request_body = Draft,
    responses((status = 200, description = "What a message would cost, before it is sent", body = CostPreview), (status = 404, body = kit::http::ErrorBody), (status = 422, body = kit::http::ErrorBody)))]
async fn preview(deps: &Deps, req: &Request) -> Result<Response<Body>, ApiError> {
    let who = deps.auth.authenticate(req)?;
    // Finance reads costs, never customers' messages.
    who.require(kit::auth::INBOX)?;
    let draft: Draft = serde_json::from_slice(body_bytes(req))
        .map_err(|e| ApiError::BadRequest(format!("body must be {{\"channel\": ..., \"text\": ...}}: {e}")))?;
    let now = time::OffsetDateTime::now_utc();
    // The recipient and the window: from the conversation when one is named.
    let (to, window_open, from) = match &draft.conversation_id {
        Some(id) => {
            let id = ConversationId::parse(id)?;
            let c = deps
                .store
                .conversation(&who.workspace, id)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no conversation {id}")))?;
            let route = c.reply_route(Some(draft.channel)).ok();
            let open = c.reply_window_open(draft.channel, now);
            let from = route.as_ref().map(|r| r.our_address.clone()).or(draft.from.clone());
            (route.map(|r| r.contact_address).or(draft.to.clone()), open, from)
        }
        None => (draft.to.clone(), false, draft.from.clone()),
    };
    let country = match (&to, draft.channel) {
        (Some(t), Channel::Sms | Channel::Whatsapp | Channel::Voice) => Some(
            PhoneNumber::parse(t)
                .map_err(|e| ApiError::Unprocessable(format!("to: {e}")))?
                .country()
                .unwrap_or_else(|| "*".into()),
        ),
        _ => None,
    };
    let sms = (draft.channel == Channel::Sms).then(|| domain::sms::segment(&draft.text));
    // Which kind of number sends, and the carriers' rules for it towards this recipient.
    let sender = match (draft.channel, from) {
        (Channel::Sms, Some(from)) => Some(domain::channels::twilio::sender_rules(&from, country.as_deref())),
        (Channel::Sms, None) => {
            let accounts = deps.store.channel_accounts(&who.workspace).await?;
            accounts.into_iter().find(|a| a.channel == Channel::Sms).map(|a| {
                let mut rules = domain::channels::twilio::sender_rules(&a.address, country.as_deref());
                if a.messaging_service_sid.is_some() {
                    rules.notes.push("sent through the number's Messaging Service".into());
                }
                rules
            })
        }
        _ => None,
    };
    let card = deps.rates.card_at(&*deps.store, &who.workspace, now).await?;
    let input = PricingInput {
        channel: Some(draft.channel),
        direction: Some(Direction::Outbound),
        provider: default_provider(draft.channel).to_owned(),
        country: country.clone(),
        sms_segments: sms.as_ref().map_or(0, |s| s.segments),
        has_media: draft.media,
        whatsapp_category: draft.whatsapp_category,
        whatsapp_window_open: window_open,
        email_recipients: draft.recipients.unwrap_or(1),
        ..PricingInput::default()
    };
    let priced = estimate(&card, &input);
    let template_required = matches!(priced, Err(PricingError::TemplateRequired));
    let est = match priced {
        Ok(e) => Some(e),
        Err(PricingError::TemplateRequired) => None,
        Err(e) => return Err(ApiError::Unprocessable(e.to_string())),
    };
    let whatsapp = (draft.channel == Channel::Whatsapp).then(|| {
        let template_costs: std::collections::BTreeMap<String, Amount> = [
            WhatsappCategory::Marketing,
            WhatsappCategory::Utility,
            WhatsappCategory::Authentication,
            WhatsappCategory::AuthenticationInternational,
        ]
        .into_iter()
        .filter_map(|cat| {
            let i = PricingInput { whatsapp_category: Some(cat), ..input.clone() };
            estimate(&card, &i).ok().map(|e| (cat.as_str().to_owned(), Amount::of(e.provider_micros)))
        })
        .collect();
        WhatsappPreview { window_open, free_form_free: window_open, template_required, template_costs }
    });
    let budgets = deps.store.budgets(&who.workspace).await?;
    let refused = hard_stop(&*deps.store, &budgets, &who.workspace, Month::of(now), draft.channel).await?;
    Ok(kit::http::json(
        200,
        &CostPreview {
            channel: draft.channel,
            country,
            sms,
            estimate: est.map(|e| EstimateView {
                provider: Amount::of(e.provider_micros),
                currency: e.currency,
                rate_card_version: e.rate_card_version,
                lines: e.lines,
            }),
            whatsapp,
            refused_by_budget: refused,
            sender,
        },
    ))
}

/// A message's price before it is sent: the estimate on the workspace's rate card, SMS
/// segmentation, WhatsApp's window and template prices, and whether a budget would refuse it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct CostPreview {
    pub channel: Channel,
    /// ISO country of the recipient's number (`*` when unknown).
    pub country: Option<String>,
    pub sms: Option<domain::sms::Segmentation>,
    /// None when WhatsApp needs a template (outside the window): see `whatsapp.template_costs`.
    pub estimate: Option<EstimateView>,
    pub whatsapp: Option<WhatsappPreview>,
    /// Why a hard-stop budget would refuse the send, if it would.
    pub refused_by_budget: Option<String>,
    /// SMS: the sending number's kind (long code, toll-free, short code) and the carriers' rules
    /// towards this recipient; `deliverable: false` means the send would be refused.
    pub sender: Option<domain::channels::twilio::SenderRules>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct EstimateView {
    pub provider: Amount,
    pub currency: domain::finance::Currency,
    pub rate_card_version: u32,
    pub lines: Vec<domain::finance::pricing::CostLine>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct WhatsappPreview {
    pub window_open: bool,
    /// Inside the 24-hour window a free-form reply costs nothing.
    pub free_form_free: bool,
    pub template_required: bool,
    /// Per template category (marketing, utility, authentication…).
    pub template_costs: std::collections::BTreeMap<String, Amount>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{AgentId, WorkspaceId};
    use kit::auth::Authenticator;
    use kit::auth::Role;
    use std::sync::Arc;
    use store::contract::seed_conversation;
    use store::MemoryStore;

    async fn call(deps: &Deps, ws: &WorkspaceId, body: serde_json::Value) -> (u16, serde_json::Value) {
        let t =
            kit::auth::issue_token("s", ws, &AgentId::parse("a").unwrap(), None, Role::Agent, time::Duration::hours(1));
        let auth = format!("Bearer {t}");
        let b = body.to_string();
        let req = kit::apigw::test_request(
            "POST",
            "/finance/preview",
            "/finance/preview",
            &[],
            &[("authorization", auth.as_str()), ("content-type", "application/json")],
            Some(b.as_bytes()),
        );
        let r = handle(deps, req).await.unwrap();
        (r.status().as_u16(), kit::apigw::json_of(&r))
    }

    #[tokio::test]
    async fn previews_sms_segments_and_whatsapp_windows() {
        let store = Arc::new(MemoryStore::new());
        let ws = WorkspaceId::parse("acme").unwrap();
        let deps = Deps::new(store.clone(), Authenticator::new("s"));
        // 71 characters with an emoji: UCS-2, two segments, to the UK.
        let text = format!("{}😀", "a".repeat(69));
        let (s, v) = call(&deps, &ws, serde_json::json!({"channel":"sms","text":text,"to":"+447400123456"})).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["sms"]["encoding"], "ucs2");
        assert_eq!(v["sms"]["segments"], 2);
        assert_eq!(v["country"], "GB");
        assert_eq!(v["estimate"]["provider"]["amount"], "0.104800");
        assert_eq!(v["refused_by_budget"], serde_json::Value::Null);

        // WhatsApp with no recent customer message: a template is required; its costs are shown.
        let (s, v) = call(&deps, &ws, serde_json::json!({"channel":"whatsapp","text":"hi","to":"+14155552671"})).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["whatsapp"]["template_required"], true);
        assert_eq!(v["whatsapp"]["template_costs"]["marketing"]["amount"], "0.025000");
        assert_eq!(v["estimate"], serde_json::Value::Null);

        // Inside the window (the customer wrote on WhatsApp a minute ago) a free-form reply is free.
        let (_, conv) = seed_conversation(store.as_ref(), &ws, 3, time::OffsetDateTime::now_utc()).await;
        let mut c = conv.clone();
        c.last_inbound = Some(domain::Route { channel: Channel::Whatsapp, ..c.last_inbound.clone().unwrap() });
        let v0 = c.version;
        c.version += 1;
        use domain::ports::{ConversationWrite, InboundCommit, InboundStore};
        let m = store::contract::inbound_message(
            &ws,
            &c,
            &store::contract::contact_of(&c),
            time::OffsetDateTime::now_utc(),
        );
        store
            .commit_inbound(InboundCommit {
                hint: None,
                consent: None,
                new_contact: None,
                conversation: ConversationWrite::Update { conversation: c.clone(), expected_version: v0 },
                message: m.clone(),
                provider: "seed".into(),
                provider_message_id: m.id.to_string(),
                cost: None,
            })
            .await
            .unwrap();
        let body = serde_json::json!({"channel":"whatsapp","text":"hi","conversation_id":conv.id.to_string()});
        let (s, v) = call(&deps, &ws, body).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["whatsapp"]["window_open"], true);
        assert_eq!(v["estimate"]["provider"]["micros"], 0);

        let (s, _) = call(&deps, &ws, serde_json::json!({"channel":"sms","text":"x","to":"12"})).await;
        assert_eq!(s, 422);
        // The sending number's rules: a toll-free number cannot reach the UK; a US long code
        // writing to the US needs 10DLC.
        let tf = serde_json::json!({"channel":"sms","text":"x","to":"+447400123456","from":"+18885550100"});
        let (s, v) = call(&deps, &ws, tf).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            (v["sender"]["kind"].as_str(), v["sender"]["deliverable"].as_bool()),
            (Some("toll_free"), Some(false))
        );
        let lc = serde_json::json!({"channel":"sms","text":"x","to":"+14155552671","from":"+14155550100"});
        let (_, v) = call(&deps, &ws, lc).await;
        assert_eq!(v["sender"]["kind"], "long_code");
        assert!(v["sender"]["notes"][0].as_str().unwrap().contains("10DLC"), "{v}");
        let (s, _) = call(&deps, &ws, serde_json::json!({"channel":"fax","text":"x"})).await;
        assert_eq!(s, 400);
    }

    #[tokio::test]
    async fn the_fixtures_preview_an_sms_and_a_whatsapp_draft() {
        let deps = Deps::new(Arc::new(MemoryStore::new()), Authenticator::new("fixture-jwt-secret"));
        let body = |r: Response<Body>| {
            assert_eq!(r.status(), 200);
            kit::apigw::json_of(&r)
        };
        let sms = include_str!("../../../events/api-preview-cost/preview-sms.json");
        let v = body(handle(&deps, lambda_http::request::from_str(sms).unwrap()).await.unwrap());
        assert_eq!((v["sms"]["encoding"].as_str(), v["sms"]["segments"].as_u64()), (Some("ucs2"), Some(1)));
        assert_eq!(v["estimate"]["provider"]["micros"], 11_300);
        let wa = include_str!("../../../events/api-preview-cost/preview-whatsapp.json");
        let v = body(handle(&deps, lambda_http::request::from_str(wa).unwrap()).await.unwrap());
        assert_eq!(v["country"], "IN");
        assert_eq!(v["whatsapp"]["template_required"], true);
        assert_eq!(v["whatsapp"]["template_costs"]["authentication_international"]["amount"], "0.028000");
    }
}
