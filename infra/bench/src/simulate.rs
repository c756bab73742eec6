//! The partition-heat simulation's workload: workspaces with SMS numbers and WhatsApp numbers,
//! agents online on the socket, a storm of customers writing in (a first message, then
//! follow-ups), and agents answering half as many replies, sent through fake Twilio and the fake
//! Cloud API with Twilio's status callbacks. Everything runs through the deployed code on the
//! local stack; [`crate::heat`] records what each DynamoDB partition took.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use domain::channels::twilio;
use domain::ports::{
    AgentStore, AssigneeFilter, ChannelAccount, ChannelDirectory, ConversationQuery, ConversationReader,
};
use domain::routing::{AgentState, Presence};
use domain::{AgentId, Channel, ConversationStatus, WorkspaceId};
use futures::{SinkExt, StreamExt};
use switchboard_local::gateway::Stack;
use switchboard_local::template::Template;
use tokio_tungstenite::tungstenite::Message;

use crate::channels::{WHATSAPP_ACCESS_TOKEN, WHATSAPP_APP_SECRET};
use crate::heat::{self, Heat};

/// One simulated workload.
#[derive(Clone, Debug)]
pub struct Workload {
    pub title: String,
    pub workspaces: usize,
    /// Inbound messages in all (spread evenly over the workspaces).
    pub messages: usize,
    /// Agents per workspace, all online, with room together for three quarters of the
    /// conversations (the rest wait in the routing queue), and for at least one each.
    pub agents: usize,
    /// Agents per workspace with the console open (a socket).
    pub sockets: usize,
    /// The rate the sample stands for (msg/s, all workspaces together).
    pub rate: f64,
}

/// Concurrent webhook posts and replies (the pipeline's own pollers set its pace).
const IN_FLIGHT: usize = 8;
/// Posts per wave.
const WAVE: usize = 40;

fn workspace_name(i: usize, of: usize) -> String {
    if of == 1 {
        "heat".to_owned()
    } else {
        format!("heat{i:03}")
    }
}

/// A valid US mobile number of one contact of workspace `w` (up to 10,000 contacts a workspace).
fn customer(w: usize, contact: usize) -> String {
    const AREAS: [u32; 10] = [415, 212, 646, 312, 213, 617, 305, 206, 512, 702];
    format!("+1{}{:07}", AREAS[w % 10], 2_000_000 + (w / 10) * 10_000 + contact)
}

fn sms_number(w: usize) -> String {
    format!("+1415600{w:04}")
}

fn whatsapp_number(w: usize) -> String {
    format!("1065403500{w:05}")
}

/// Sends `items` in waves of [`WAVE`], [`IN_FLIGHT`] at a time, letting the pipeline drain after
/// each wave (moto's queues slow down with their backlog, and heat does not depend on how fast the
/// sample runs), then waits for it to settle. Fails if any answer is not `status`.
async fn in_waves<T, F, Fut>(heat: &Heat, what: &str, items: &[T], status: u16, send: F) -> Result<()>
where
    T: Clone,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    let refused = AtomicUsize::new(0);
    for (wave, chunk) in items.chunks(WAVE).enumerate() {
        futures::stream::iter(chunk.iter().cloned())
            .map(|item| {
                let (refused, sent) = (&refused, send(item));
                async move {
                    let why = match sent.await {
                        Ok(r) if r.status() == status => return,
                        Ok(r) => format!("answered {}: {}", r.status(), r.text().await.unwrap_or_default()),
                        Err(e) => e.to_string(),
                    };
                    if refused.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("heat: one of the {what} was refused: {why}");
                    }
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect::<Vec<()>>()
            .await;
        heat::settle(heat, Duration::from_millis(400), Duration::from_secs(300)).await?;
        eprintln!("heat: {} of {} {what}", ((wave + 1) * WAVE).min(items.len()), items.len());
    }
    let refused = refused.load(Ordering::Relaxed);
    anyhow::ensure!(refused == 0, "{refused} of the {what} were refused");
    heat::settle(heat, Duration::from_secs(3), Duration::from_secs(900)).await
}

/// Runs `load` on a stack of its own; returns its report section.
pub async fn run(
    load: &Workload,
    template: &Template,
    aws: &aws_config::SdkConfig,
    heat: &Arc<Heat>,
    direct_url: &str,
) -> Result<String> {
    let twilio =
        fake_twilio::FakeTwilio::start(crate::SID, crate::TOKEN, fake_twilio::Callbacks::SentThenDelivered).await?;
    let whatsapp = fake_channels::FakeWhatsApp::start(WHATSAPP_ACCESS_TOKEN, WHATSAPP_APP_SECRET).await?;
    let mut opts = crate::stack_options("heat", &twilio.base_url(), 1)?;
    let meta = switchboard_local::MetaEnv {
        base_url: "http://127.0.0.1:9",
        app_secret: "bench-meta-secret",
        verify_token: "bench-meta-verify",
        page_tokens: &[],
    };
    opts.extra_env = switchboard_local::channel_env(
        &whatsapp.base_url(),
        (WHATSAPP_APP_SECRET, "bench-wa-verify", WHATSAPP_ACCESS_TOKEN),
        "http://127.0.0.1:9",
        ("1:bench", "bench-telegram-secret"),
        &meta,
    );
    // As the template deploys the inbound processor: settings remembered for 5 s a container.
    opts.extra_env.push(("SETTINGS_CACHE_SECONDS".into(), "5".into()));
    let stack = Stack::start(template, opts, aws).await?;
    let direct = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(aws).endpoint_url(direct_url).build(),
    );
    heat.set_schema(heat::schema(&direct, &stack.provisioned.table).await?);
    let store = store::DynamoStore::new(direct, stack.provisioned.table.clone());

    // The workspaces, their numbers and agents, and the agents' sockets.
    let names: Vec<String> = (0..load.workspaces).map(|i| workspace_name(i, load.workspaces)).collect();
    let per_ws = load.messages.div_ceil(load.workspaces);
    let contacts = per_ws.div_ceil(3).max(1);
    let capacity = (contacts * 3 / 4 / load.agents.max(1)).max(1) as u32;
    let frames = Arc::new(AtomicUsize::new(0));
    let beats = Arc::new(AtomicUsize::new(0));
    let mut readers = vec![];
    let mut sinks = vec![];
    for (w, name) in names.iter().enumerate() {
        let ws = WorkspaceId::parse(name)?;
        store.put_channel_account(&ChannelAccount::new(ws.clone(), Channel::Sms, sms_number(w))).await?;
        store.put_channel_account(&ChannelAccount::new(ws.clone(), Channel::Whatsapp, whatsapp_number(w))).await?;
        for a in 0..load.agents {
            let id = AgentId::parse(&format!("agent-{a}"))?;
            // Agents without a socket are online by their stored presence; the others go online
            // through their socket, as the console does.
            let with_socket = a < load.sockets;
            let state = AgentState {
                id: id.clone(),
                presence: if with_socket { Presence::Offline } else { Presence::Online },
                teams: Default::default(),
                skills: Default::default(),
                capacity: capacity * domain::routing::Weights::default().messaging,
                load: 0,
                last_assigned_at: None,
            };
            store.put_agent(&ws, &state).await?;
            if !with_socket {
                continue;
            }
            let jwt = kit::auth::issue_token(
                crate::latency::JWT,
                &ws,
                &id,
                None,
                kit::auth::Role::Agent,
                time::Duration::hours(4),
            );
            let (mut socket, _) = tokio_tungstenite::connect_async(format!("{}?token={jwt}", stack.ws_url))
                .await
                .context("agent socket")?;
            socket.send(Message::Text(r#"{"action":"presence","status":"online"}"#.into())).await?;
            let (sink, mut stream) = socket.split();
            sinks.push(sink);
            let (frames, beats) = (frames.clone(), beats.clone());
            readers.push(tokio::spawn(async move {
                while let Some(Ok(f)) = stream.next().await {
                    match f {
                        // The answer to a heartbeat is not an event.
                        Message::Text(t) if t.contains(r#""action":"heartbeat""#) => {
                            beats.fetch_add(1, Ordering::Relaxed);
                        }
                        Message::Text(_) => {
                            frames.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
            }));
        }
    }
    heat::settle(heat, Duration::from_secs(2), Duration::from_secs(120)).await?;
    heat.reset();
    frames.store(0, Ordering::Relaxed);
    // The consoles' heartbeats, well within API Gateway's ten idle minutes, as the console sends
    // them: a long sample must not see its agents' sockets go stale. They follow time, not
    // messages, so they are kept out of the recording (which scales by the message rate).
    let heartbeats = {
        let (heat, beats) = (heat.clone(), beats.clone());
        tokio::spawn(async move {
            let mut sinks = sinks;
            loop {
                tokio::time::sleep(Duration::from_secs(8 * 60)).await;
                heat.pause(true);
                let before = beats.load(Ordering::Relaxed);
                for sink in sinks.iter_mut() {
                    let _ = sink.send(Message::Text(r#"{"action":"heartbeat"}"#.into())).await;
                }
                let all = before + sinks.len();
                let waited = std::time::Instant::now();
                while beats.load(Ordering::Relaxed) < all && waited.elapsed() < Duration::from_secs(120) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                heat.pause(false);
            }
        })
    };

    // The storm: each contact writes a first message, then follow-ups (three messages a contact).
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let posts: Vec<(usize, usize)> =
        (0..per_ws).flat_map(|i| (0..load.workspaces).map(move |w| (w, i))).take(load.messages).collect();
    let base = stack.base_url.clone();
    in_waves(heat, "inbound messages", &posts, 200, |(w, i)| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let contact = i % contacts;
            if contact % 10 < 6 {
                let url = format!("{base}/webhooks/twilio/sms");
                let form = crate::sms_form(customer(w, contact), &sms_number(w), "Where is my order?");
                let sig = twilio::compute_signature(crate::TOKEN, &url, &form);
                http.post(&url).header("x-twilio-signature", sig).form(&form).send().await
            } else {
                let from = customer(w, contact).trim_start_matches('+').to_owned();
                let id = format!("wamid.heat{w}x{i}x{}", ulid::Ulid::new());
                let url = format!("{base}/webhooks/whatsapp");
                crate::channels::whatsapp_text_in(&http, &url, &whatsapp_number(w), &from, &id).await
            }
        }
    })
    .await?;

    // Agents answer: one reply per two inbound messages, from the assignee (or the first agent).
    let mut convs = vec![];
    let mut stored = 0usize;
    for name in &names {
        let ws = WorkspaceId::parse(name)?;
        let mut cursor = None;
        loop {
            let q = ConversationQuery {
                status: ConversationStatus::Open,
                assignee: AssigneeFilter::Any,
                limit: 100,
                cursor,
            };
            let page = store.conversations(&ws, &q).await?;
            for c in page.items {
                stored += c.message_count as usize;
                convs.push((ws.clone(), c.id, c.assignee.clone()));
            }
            cursor = page.next;
            if cursor.is_none() {
                break;
            }
        }
    }
    anyhow::ensure!(stored >= load.messages, "{stored} of {} messages stored", load.messages);
    let replies: Vec<_> = convs.iter().cycle().take(load.messages / 2).cloned().collect();
    in_waves(heat, "replies", &replies, 202, |(ws, conv, assignee)| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let agent = assignee.unwrap_or_else(|| AgentId::parse("agent-0").expect("an agent id"));
            let role = kit::auth::Role::Agent;
            let jwt = kit::auth::issue_token(crate::latency::JWT, &ws, &agent, None, role, time::Duration::hours(1));
            http.post(format!("{base}/conversations/{conv}/messages"))
                .bearer_auth(jwt)
                .header("idempotency-key", ulid::Ulid::new().to_string())
                .json(&serde_json::json!({"text": "It ships today."}))
                .send()
                .await
        }
    })
    .await?;

    let (parts, requests) = heat.snapshot();
    let ours: Vec<String> = (0..load.workspaces).flat_map(|w| [sms_number(w), whatsapp_number(w)]).collect();
    let pushed = frames.load(Ordering::Relaxed);
    heartbeats.abort();
    for r in readers {
        r.abort();
    }
    drop(stack);
    let run = heat::Run {
        title: &load.title,
        messages: load.messages,
        per_customer: 3,
        rate: load.rate,
        workspaces: &names,
        ours: &ours,
        top: 15,
    };
    let before =
        heat::Run { title: &format!("{} — before: one partition per view, month and day", load.title), ..run };
    let mut s = heat::report(&before, &heat::folded(&parts), &requests);
    let after = heat::Run { title: &format!("{} — now: sharded", load.title), ..run };
    s += &heat::report(&after, &parts, &requests);
    s += &format!(
        "Workload: {} workspace(s), {} agents each ({} with the console open, room for {} conversations each), {} \
         contacts each writing three messages (60 % SMS, 40 % WhatsApp), {} replies sent and delivered. Socket frames \
         pushed (@connections calls): {:.2} per inbound message.\n\n",
        load.workspaces,
        load.agents,
        load.sockets,
        capacity,
        contacts,
        load.messages / 2,
        pushed as f64 / load.messages as f64
    );
    Ok(s)
}
