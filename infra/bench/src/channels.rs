//! Requests per inbound message on the other channels' paths, counted like the SMS scenarios:
//! WhatsApp (signed Cloud API webhook), email (SES receiving: raw MIME in S3, then inbound-email)
//! and web chat (a visitor's socket frame). Each channel: a first message from each of `n` people,
//! then a follow-up from each; the follow-up is what a live conversation costs.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use domain::ports::{AssigneeFilter, ChannelAccount, ChannelDirectory, ConversationQuery, ConversationReader};
use domain::{Channel, ConversationStatus, WorkspaceId};
use futures::{SinkExt, StreamExt};
use switchboard_local::gateway::Stack;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::proxy;

pub const WHATSAPP_ACCESS_TOKEN: &str = "bench-wa-token";
pub const WHATSAPP_APP_SECRET: &str = "bench-wa-secret";
pub const EMAIL_DOMAIN: &str = "bench.example";

/// Posts a signed Cloud API webhook carrying one text message from `from` (a WhatsApp id) to
/// the phone number id `number_id`, with the provider message id `id`.
pub async fn whatsapp_text_in(
    http: &reqwest::Client,
    url: &str,
    number_id: &str,
    from: &str,
    id: &str,
) -> reqwest::Result<reqwest::Response> {
    let body = serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "102290129340398", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": number_id },
            "contacts": [{ "profile": { "name": "Bench" }, "wa_id": from }],
            "messages": [{ "from": from, "id": id,
                "timestamp": time::OffsetDateTime::now_utc().unix_timestamp().to_string(), "type": "text",
                "text": { "body": "Where is my order?" } }]
        }}]}]
    })
    .to_string();
    let sig = domain::channels::whatsapp::compute_signature(WHATSAPP_APP_SECRET, body.as_bytes());
    http.post(url).header("content-type", "application/json").header("x-hub-signature-256", sig).body(body).send().await
}

pub struct Channels<'a> {
    pub stack: &'a Stack,
    pub store: &'a store::DynamoStore,
    pub counters: &'a proxy::Counters,
    pub http: reqwest::Client,
    pub n: usize,
}

impl Channels<'_> {
    async fn messages_in(&self, ws: &WorkspaceId) -> Result<(usize, usize)> {
        let q = ConversationQuery {
            status: ConversationStatus::Open,
            assignee: AssigneeFilter::Any,
            limit: 100,
            cursor: None,
        };
        let convs = self.store.conversations(ws, &q).await?;
        Ok((convs.items.len(), convs.items.iter().map(|c| c.message_count as usize).sum()))
    }

    async fn wait_for(&self, ws: &WorkspaceId, convs: usize, msgs: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (c, m) = self.messages_in(ws).await?;
            if c == convs && m >= msgs {
                // Let the publishes after the last observed write finish before counting.
                tokio::time::sleep(Duration::from_millis(750)).await;
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "pipeline did not finish: {c} conversations, {m} messages");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn own(&self, ws: &WorkspaceId, channel: Channel, address: &str) -> Result<()> {
        let account = ChannelAccount::new(ws.clone(), channel, address);
        Ok(self.store.put_channel_account(&account).await?)
    }

    /// Runs `send(person, round)` for every person, twice; returns the two rounds' tables.
    async fn two_rounds<F, Fut>(&self, ws: &WorkspaceId, title: &str, mut send: F) -> Result<String>
    where
        F: FnMut(usize, usize) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let mut out = String::new();
        for round in 0..2 {
            self.counters.reset();
            for person in 0..self.n {
                send(person, round).await?;
            }
            self.wait_for(ws, self.n, self.n * (round + 1)).await?;
            let what = if round == 0 { "first message from a new contact" } else { "follow-up" };
            out +=
                &crate::table(&format!("{title}: a {what} ({} messages)", self.n), &self.counters.snapshot(), self.n);
        }
        Ok(out)
    }

    pub async fn whatsapp(&self, number_id: &str) -> Result<String> {
        let ws = WorkspaceId::parse("bench-wa")?;
        self.own(&ws, Channel::Whatsapp, number_id).await?;
        let url = format!("{}/webhooks/whatsapp", self.stack.base_url);
        self.two_rounds(&ws, "WhatsApp", |person, round| {
            let (http, url) = (self.http.clone(), url.clone());
            let from = format!("1415560{person:04}");
            let id = format!("wamid.bench{round}x{person}x{}", ulid::Ulid::new());
            async move {
                let res = whatsapp_text_in(&http, &url, number_id, &from, &id).await?;
                anyhow::ensure!(res.status() == 200, "the WhatsApp webhook answered {}", res.status());
                Ok(())
            }
        })
        .await
    }

    pub async fn email(&self) -> Result<String> {
        let ws = WorkspaceId::parse("bench-mail")?;
        let ours = format!("support@{EMAIL_DOMAIN}");
        self.own(&ws, Channel::Email, &ours).await?;
        let url = format!("{}/_local/ses/receive?to={}", self.stack.base_url, ours.replace('@', "%40"));
        self.two_rounds(&ws, "Email", |person, round| {
            let (http, url) = (self.http.clone(), url.clone());
            let raw = format!(
                "From: Customer {person} <customer{person}@example.com>\r\nTo: {ours}\r\nSubject: Order {person}\r\n\
                 Message-ID: <bench-{round}-{person}-{}@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
                 Where is my order?\r\n",
                ulid::Ulid::new()
            );
            async move {
                let res = http.post(&url).body(raw).send().await?;
                anyhow::ensure!(res.status() == 200, "SES receiving answered {}", res.status());
                Ok(())
            }
        })
        .await
    }

    pub async fn webchat(&self) -> Result<String> {
        let ws = WorkspaceId::parse("bench-chat")?;
        let key = format!("wk_bench{}", ulid::Ulid::new().to_string().to_lowercase());
        self.own(&ws, Channel::Webchat, &key).await?;
        // One visitor per person, each with their socket open (what a widget holds).
        let mut sockets = Vec::with_capacity(self.n);
        for _ in 0..self.n {
            let session: serde_json::Value = self
                .http
                .post(format!("{}/webchat/{key}/visitors", self.stack.base_url))
                .json(&serde_json::json!({}))
                .send()
                .await?
                .json()
                .await?;
            let token = session["token"].as_str().context("a visitor token")?.to_owned();
            let mut req = format!("{}?key={key}", self.stack.visitor_ws_url).into_client_request()?;
            let offer = format!("{}, {token}", domain::channels::webchat::SUBPROTOCOL);
            req.headers_mut().insert("sec-websocket-protocol", offer.parse()?);
            let (socket, _) = tokio_tungstenite::connect_async(req).await.context("visitor socket")?;
            sockets.push(tokio::sync::Mutex::new(socket));
        }
        let sockets = &sockets;
        self.two_rounds(&ws, "Web chat", |person, round| async move {
            let mut socket = sockets[person].lock().await;
            let frame = serde_json::json!({ "action": "message", "client_id": format!("c{round}"), "text": "Where is my order?" });
            socket.send(Message::Text(frame.to_string().into())).await?;
            // Answered once enqueued.
            loop {
                let next = tokio::time::timeout(Duration::from_secs(20), socket.next()).await.context("no answer")?;
                let Some(Ok(Message::Text(t))) = next else { continue };
                let v: serde_json::Value = serde_json::from_str(&t)?;
                if v["status"] == "accepted" {
                    return Ok(());
                }
                anyhow::ensure!(v.get("error").is_none(), "the widget's message was refused: {v}");
            }
        })
        .await
    }
}
