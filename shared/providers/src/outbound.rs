//! The way out for the channel adapters: a request the domain's adapter rendered (Twilio,
//! WhatsApp, Messenger and Instagram, Telegram) performed over the one shared HTTP client, and the
//! answer handed back to the adapter to classify. Plus Twilio's price lookup for finished messages.

use std::collections::HashMap;
use std::sync::Arc;

use domain::channels::twilio;
use domain::channels::{Auth, ChannelAdapter, Method, Payload, ProviderRequest, SendOutcome};
use domain::finance::{Currency, Micros};
use domain::model::Channel;
use domain::ports::{PriceError, PriceLookup, ProviderApi, TransportError, VaultError};

/// One channel's way out: its adapter and the provider's API base URL.
pub struct Provider {
    pub adapter: Arc<dyn ChannelAdapter>,
    pub base_url: String,
}

/// The providers this deployment sends through, by channel, and the one HTTP client they share.
pub struct Providers {
    pub http: reqwest::Client,
    pub by_channel: HashMap<Channel, Provider>,
    /// Workspaces' own Telegram bots (their tokens from the vault); the stack's bot is in
    /// `by_channel` and is the fallback for its own id.
    pub telegram_bots: Option<Arc<crate::telegram::TelegramBots>>,
    /// SMS from a number whose workspace connected its own Twilio account sends with that
    /// account; every other number with the stack's (`by_channel`).
    pub twilio_numbers: Option<TwilioSenders>,
    /// Messenger and Instagram from a Page whose workspace connected it with its own token (the
    /// stack's Meta app receives every Page's webhooks; each workspace brings its Pages' tokens).
    pub meta_pages: Option<MetaSenders>,
    /// WhatsApp from a number whose workspace connected it with its own business account's
    /// access token; every other number with the stack's (`by_channel`).
    pub whatsapp_numbers: Option<WhatsAppSenders>,
}

/// WhatsApp adapters by our phone number id: its token, with the stack app's secrets (the app
/// signs webhooks; sending needs only the token).
pub struct WhatsAppSenders {
    pub tokens: Arc<crate::accounts::WhatsAppNumbers>,
    pub app: Arc<domain::channels::whatsapp::WhatsApp>,
}

impl WhatsAppSenders {
    pub async fn adapter(&self, number: &str) -> Result<Option<Arc<domain::channels::whatsapp::WhatsApp>>, VaultError> {
        Ok(self.tokens.get(number).await?.map(|token| {
            Arc::new(domain::channels::whatsapp::WhatsApp {
                app_secret: self.app.app_secret.clone(),
                verify_token: self.app.verify_token.clone(),
                access_token: (*token).clone(),
            })
        }))
    }
}

/// Meta adapters by our Page or Instagram account: its token, with the stack app's secrets (the
/// app signs webhooks; sending needs only the token).
pub struct MetaSenders {
    pub pages: Arc<crate::accounts::MetaPages>,
    pub app: Arc<domain::channels::meta::Meta>,
}

impl MetaSenders {
    pub async fn adapter(&self, page: &str) -> Result<Option<Arc<domain::channels::meta::Meta>>, VaultError> {
        Ok(self.pages.get(page).await?.map(|token| {
            Arc::new(domain::channels::meta::Meta {
                app_secret: self.app.app_secret.clone(),
                verify_token: self.app.verify_token.clone(),
                page_tokens: HashMap::from([(page.to_owned(), (*token).clone())]),
                app_id: self.app.app_id.clone(),
            })
        }))
    }
}

/// Meta's Graph API: whether an access token reaches a Page, an Instagram account or a WhatsApp
/// phone number id (`GET /{id}?fields=id`) before it is kept.
pub struct GraphPages {
    pub http: reqwest::Client,
    pub base_url: String,
}

#[async_trait::async_trait]
impl domain::ports::PageTokenCheck for GraphPages {
    async fn check(&self, page_id: &str, page_token: &str) -> Result<(), domain::ports::BotApiError> {
        let url = format!("{}/{page_id}?fields=id", self.base_url.trim_end_matches('/'));
        let req = self.http.get(url).bearer_auth(page_token);
        credentials_check(req, "Meta", "Meta does not accept this access token for this account").await
    }
}

/// Meta's template management (Graph API), with the access token of the number it goes through
/// (its workspace's own business account's, else the stack's).
pub struct GraphTemplates {
    pub http: reqwest::Client,
    pub base_url: String,
    pub tokens: Arc<crate::accounts::WhatsAppNumbers>,
}

impl GraphTemplates {
    /// Sends a template request: Meta's answer when accepted, its own words when it refuses (the
    /// admin must change the template), unavailable when it is down or throttling.
    async fn call(
        &self,
        url: String,
        via: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, domain::ports::BotApiError> {
        use domain::ports::BotApiError;
        let token = self
            .tokens
            .get(via)
            .await
            .map_err(|e| BotApiError::Unavailable(e.to_string()))?
            .ok_or_else(|| BotApiError::Refused("no WhatsApp access token is configured for this number".into()))?;
        let res = self
            .http
            .post(url)
            .bearer_auth(&*token)
            .json(body)
            .send()
            .await
            .map_err(|e| BotApiError::Unavailable(format!("Meta did not answer: {}", e.without_url())))?;
        let status = res.status().as_u16();
        let answer: serde_json::Value = res.json().await.unwrap_or_default();
        match status {
            200..=299 => Ok(answer),
            429 | 500.. => Err(BotApiError::Unavailable(format!("Meta answered HTTP {status}"))),
            _ => {
                let e = &answer["error"];
                let said = e["error_user_msg"].as_str().or(e["message"].as_str()).unwrap_or("no reason given");
                Err(BotApiError::Refused(format!("Meta refused the template: {said}")))
            }
        }
    }
}

#[async_trait::async_trait]
impl domain::ports::TemplateSubmissions for GraphTemplates {
    async fn create(
        &self,
        business_account_id: &str,
        via: &str,
        submission: &serde_json::Value,
    ) -> Result<domain::ports::Submitted, domain::ports::BotApiError> {
        let url = format!("{}/{business_account_id}/message_templates", self.base_url.trim_end_matches('/'));
        let answer = self.call(url, via, submission).await?;
        let meta_id = match &answer["id"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return Err(domain::ports::BotApiError::Unavailable("Meta named no template id".into())),
        };
        let status = answer["status"]
            .as_str()
            .and_then(domain::channels::templates::TemplateStatus::from_meta_event)
            .unwrap_or(domain::channels::templates::TemplateStatus::Pending);
        let category =
            answer["category"].as_str().and_then(|c| serde_json::from_value(c.to_ascii_lowercase().into()).ok());
        Ok(domain::ports::Submitted { meta_id, status, category })
    }

    /// An edit names the template by Meta's id and takes its components and category only.
    async fn edit(
        &self,
        meta_id: &str,
        via: &str,
        submission: &serde_json::Value,
    ) -> Result<domain::ports::Submitted, domain::ports::BotApiError> {
        let url = format!("{}/{meta_id}", self.base_url.trim_end_matches('/'));
        let body = serde_json::json!({ "category": submission["category"], "components": submission["components"] });
        self.call(url, via, &body).await?;
        Ok(domain::ports::Submitted {
            meta_id: meta_id.to_owned(),
            status: domain::channels::templates::TemplateStatus::Pending,
            category: None,
        })
    }
}

/// Twilio adapters by our number: the account that owns it, and the status callbacks' base.
pub struct TwilioSenders {
    pub numbers: Arc<crate::accounts::TwilioNumbers>,
    pub public_base_url: String,
    /// Which numbers send through a Messaging Service (their channel account says; cached per
    /// container by the caller's directory).
    pub directory: Option<Arc<dyn domain::ports::ChannelDirectory>>,
}

impl TwilioSenders {
    pub async fn adapter(&self, number: &str) -> Result<Option<Arc<twilio::Twilio>>, VaultError> {
        let Some(a) = self.numbers.get(number).await? else { return Ok(None) };
        let messaging_service_sid = match &self.directory {
            Some(d) => d
                .channel_account(Channel::Sms, number)
                .await
                .map_err(|e| VaultError(format!("the channel directory: {e}")))?
                .and_then(|acct| acct.messaging_service_sid),
            None => None,
        };
        Ok(Some(Arc::new(twilio::Twilio {
            account_sid: a.account_sid.clone(),
            auth_token: a.auth_token.clone(),
            public_base_url: self.public_base_url.clone(),
            messaging_service_sid,
        })))
    }
}

impl Providers {
    /// Performs a rendered request and lets the adapter read the answer.
    pub async fn send(&self, provider: &Provider, req: &ProviderRequest) -> Result<SendOutcome, TransportError> {
        self.send_via(&provider.base_url, &*provider.adapter, req).await
    }

    /// Performs a rendered request against `base_url`; `adapter` reads the answer.
    pub async fn send_via(
        &self,
        base_url: &str,
        adapter: &dyn ChannelAdapter,
        req: &ProviderRequest,
    ) -> Result<SendOutcome, TransportError> {
        let url = format!("{}{}", base_url.trim_end_matches('/'), req.path);
        let mut builder = match req.method {
            Method::Post => self.http.post(url),
            Method::Get => self.http.get(url),
        };
        builder = match &req.auth {
            Auth::None => builder,
            Auth::Bearer(token) => builder.bearer_auth(token),
            Auth::Basic { user, password } => builder.basic_auth(user, Some(password)),
        };
        builder = match &req.payload {
            Payload::Json(v) => builder.json(v),
            Payload::Form(f) => builder.form(f),
        };
        // The error's text never includes the URL: Telegram's carries the bot token.
        let res = builder.send().await.map_err(|e| {
            let e = e.without_url();
            if e.is_connect() || e.is_builder() {
                TransportError::NotSent(e.to_string())
            } else {
                TransportError::Ambiguous(e.to_string())
            }
        })?;
        let status = res.status().as_u16();
        let body = res.bytes().await.map_err(|e| TransportError::Ambiguous(e.without_url().to_string()))?;
        Ok(adapter.classify(status, &body))
    }
}

#[async_trait::async_trait]
impl ProviderApi for Providers {
    async fn adapter(&self, channel: Channel, account: &str) -> Result<Option<Arc<dyn ChannelAdapter>>, VaultError> {
        if let (Channel::Telegram, Some(bots)) = (channel, &self.telegram_bots) {
            let bot: Option<Arc<dyn ChannelAdapter>> = bots.bot(account).await?.map(|b| b as Arc<dyn ChannelAdapter>);
            return Ok(bot);
        }
        if let (Channel::Messenger | Channel::Instagram, Some(senders)) = (channel, &self.meta_pages) {
            let meta: Option<Arc<dyn ChannelAdapter>> =
                senders.adapter(account).await?.map(|m| m as Arc<dyn ChannelAdapter>);
            return Ok(meta);
        }
        if let (Channel::Whatsapp, Some(senders)) = (channel, &self.whatsapp_numbers) {
            if self.by_channel.contains_key(&channel) {
                let wa: Option<Arc<dyn ChannelAdapter>> =
                    senders.adapter(account).await?.map(|w| w as Arc<dyn ChannelAdapter>);
                return Ok(wa);
            }
        }
        if let (Channel::Sms, Some(senders)) = (channel, &self.twilio_numbers) {
            if self.by_channel.contains_key(&channel) {
                let sms: Option<Arc<dyn ChannelAdapter>> =
                    senders.adapter(account).await?.map(|t| t as Arc<dyn ChannelAdapter>);
                return Ok(sms);
            }
        }
        Ok(self.by_channel.get(&channel).map(|p| p.adapter.clone()))
    }

    async fn perform(
        &self,
        channel: Channel,
        adapter: &dyn ChannelAdapter,
        request: &ProviderRequest,
    ) -> Result<SendOutcome, TransportError> {
        let base_url = match (channel, &self.telegram_bots) {
            // A workspace's bot: its token is in the rendered path.
            (Channel::Telegram, Some(bots)) => bots.api_base(),
            _ => {
                &self
                    .by_channel
                    .get(&channel)
                    .ok_or_else(|| {
                        TransportError::NotSent(format!("this deployment has no {channel} credentials configured"))
                    })?
                    .base_url
            }
        };
        self.send_via(base_url, adapter, request).await
    }
}

/// Twilio's Messages API, for the prices of finished messages: asked of the account that owns the
/// number the message went from.
pub struct TwilioApi {
    pub http: reqwest::Client,
    pub base_url: String,
    pub numbers: Arc<crate::accounts::TwilioNumbers>,
}

#[async_trait::async_trait]
impl PriceLookup for TwilioApi {
    /// The price Twilio rated a message at, `None` while it has not.
    async fn price(&self, from: &str, sid: &str) -> Result<Option<(Micros, Currency)>, PriceError> {
        let account = self
            .numbers
            .get(from)
            .await
            .map_err(|e| PriceError::Retryable(e.to_string()))?
            .ok_or_else(|| PriceError::Permanent(format!("no Twilio account is configured for {from}")))?;
        let url = format!("{}{}", self.base_url.trim_end_matches('/'), twilio::message_path(&account.account_sid, sid));
        let res = self
            .http
            .get(url)
            .basic_auth(&account.account_sid, Some(&account.auth_token))
            .send()
            .await
            .map_err(|e| PriceError::Retryable(e.without_url().to_string()))?;
        let status = res.status();
        let body = res.bytes().await.map_err(|e| PriceError::Retryable(e.without_url().to_string()))?;
        if status.is_success() {
            return twilio::parse_price(&body).map_err(|e| PriceError::Permanent(e.to_string()));
        }
        let why = format!("Twilio answered HTTP {status} to a price lookup");
        if status.is_server_error() || status.as_u16() == 429 {
            Err(PriceError::Retryable(why))
        } else {
            Err(PriceError::Permanent(why))
        }
    }
}

/// Twilio's Accounts API: whether a workspace's account credentials are good before they are kept.
pub struct TwilioAccounts {
    pub http: reqwest::Client,
    pub base_url: String,
}

#[async_trait::async_trait]
impl domain::ports::TwilioAccountCheck for TwilioAccounts {
    async fn check(&self, account: &domain::credentials::TwilioAccount) -> Result<(), domain::ports::BotApiError> {
        let url = format!("{}/2010-04-01/Accounts/{}.json", self.base_url.trim_end_matches('/'), account.account_sid);
        let req = self.http.get(url).basic_auth(&account.account_sid, Some(&account.auth_token));
        credentials_check(req, "Twilio", "Twilio does not accept this account SID and auth token").await
    }
}

/// Asks a provider whether credentials are good: 2xx yes; 400/401/403/404 refused (the admin must
/// act); anything else, or no answer, unavailable (retry). Errors never carry the URL.
async fn credentials_check(
    req: reqwest::RequestBuilder,
    provider: &str,
    refused: &str,
) -> Result<(), domain::ports::BotApiError> {
    use domain::ports::BotApiError;
    let res = req
        .send()
        .await
        .map_err(|e| BotApiError::Unavailable(format!("{provider} did not answer: {}", e.without_url())))?;
    match res.status().as_u16() {
        200..=299 => Ok(()),
        400 | 401 | 403 | 404 => Err(BotApiError::Refused(refused.into())),
        s => Err(BotApiError::Unavailable(format!("{provider} answered HTTP {s}"))),
    }
}
