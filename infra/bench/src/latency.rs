//! Webhook → agent socket: the time from posting a signed Twilio SMS webhook to the moment the
//! assigned agent's WebSocket receives the `message_created` frame, through the whole local
//! pipeline (webhook, inbound FIFO queue, processor, notification FIFO queue, notifier,
//! @connections). Event-source-mapping polls are long polls, as Lambda's are.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use domain::channels::twilio;
use domain::ports::AgentStore;
use domain::routing::{AgentState, Presence};
use domain::{AgentId, WorkspaceId};
use futures::{SinkExt, StreamExt};
use switchboard_local::gateway::Stack;
use switchboard_local::template::Template;
use tokio_tungstenite::tungstenite::Message;

pub(crate) const JWT: &str = "bench-jwt";

/// The `p` quantile of sorted samples (zero for none).
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) type AgentSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A stack of its own (named `prefix…`, long polls of 20 s as Lambda's) receiving SMS on `number`
/// for the `bench` workspace, with one agent of unbounded capacity online on the socket. The fake
/// Twilio is returned to be kept alive.
pub(crate) async fn agent_online(
    prefix: &str,
    number: &str,
    template: &Template,
    aws: &aws_config::SdkConfig,
) -> Result<(fake_twilio::FakeTwilio, Stack, AgentSocket)> {
    let twilio = fake_twilio::FakeTwilio::start(crate::SID, crate::TOKEN, fake_twilio::Callbacks::None).await?;
    let stack = Stack::start(template, crate::stack_options(prefix, &twilio.base_url(), 20)?, aws).await?;
    let ws = WorkspaceId::parse("bench")?;
    let store = store::DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), stack.provisioned.table.clone());
    crate::own_number(&store, &ws, number).await?;
    let ann = AgentId::parse("ann")?;
    let agent = AgentState {
        id: ann.clone(),
        presence: Presence::Offline,
        teams: Default::default(),
        skills: Default::default(),
        capacity: 1_000_000,
        load: 0,
        last_assigned_at: None,
    };
    store.put_agent(&ws, &agent).await?;
    let jwt = kit::auth::issue_token(JWT, &ws, &ann, None, kit::auth::Role::Agent, time::Duration::hours(4));
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("{}?token={jwt}", stack.ws_url)).await.context("agent socket")?;
    socket.send(Message::Text(r#"{"action":"presence","status":"online"}"#.into())).await?;
    Ok((twilio, stack, socket))
}

pub async fn webhook_to_socket(runs: usize, template: &Template, aws: &aws_config::SdkConfig) -> Result<String> {
    let token = crate::TOKEN;
    let number = "+14155550177";
    let (_twilio, stack, mut socket) = agent_online("lat", number, template, aws).await?;
    let http = reqwest::Client::new();
    let url = format!("{}/webhooks/twilio/sms", stack.base_url);
    let mut total = Vec::with_capacity(runs);
    let mut acked = Vec::with_capacity(runs);
    // A few warm-up messages first: the first receive of each queue and the first DynamoDB calls
    // pay connection set-up, which a deployed function does once per container, not per message.
    let warmup = 3;
    for i in 0..runs + warmup {
        let marker = format!("latency probe {i} {}", ulid::Ulid::new());
        let form = crate::sms_form(format!("+1415558{:04}", i % 20), number, &marker);
        let sig = twilio::compute_signature(token, &url, &form);
        let start = Instant::now();
        let res = http.post(&url).header("x-twilio-signature", sig).form(&form).send().await?;
        let ack = start.elapsed();
        if res.status() != 200 {
            bail!("webhook answered {}", res.status());
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let frame = tokio::time::timeout_at(deadline, socket.next()).await.context("no frame within 30 s")?;
            let Some(Ok(Message::Text(t))) = frame else { continue };
            let v: serde_json::Value = serde_json::from_str(&t)?;
            if v["event"]["type"] == "message_created" && v["message"]["text"] == marker.as_str() {
                break;
            }
        }
        if i >= warmup {
            total.push(start.elapsed());
            acked.push(ack);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    total.sort();
    acked.sort();
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    Ok(format!(
        "## Webhook → agent socket latency\n\n{runs} SMS, one at a time, each to a connected, online agent \
         (20 contacts, so most are follow-ups to an assigned conversation).\n\n\
         | measure | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|\n\
         | webhook answered (stored + enqueued) | {} | {} | {} |\n\
         | `message_created` frame on the agent's socket | {} | {} | {} |\n\n",
        ms(percentile(&acked, 0.5)),
        ms(percentile(&acked, 0.99)),
        ms(*acked.last().unwrap_or(&Duration::ZERO)),
        ms(percentile(&total, 0.5)),
        ms(percentile(&total, 0.99)),
        ms(*total.last().unwrap_or(&Duration::ZERO)),
    ))
}
