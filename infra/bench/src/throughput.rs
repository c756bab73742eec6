//! Open-loop throughput: signed SMS webhooks posted at a fixed offered rate (each on its own
//! schedule, whether or not earlier ones were answered — what providers do), one agent online on
//! the socket; per rate, the webhook → `message_created`-on-the-socket latency percentiles, the
//! messages lost (never on the socket), and the CPU each process used (DynamoDB Local, moto, and
//! this process, which hosts the gateway and every function).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use domain::channels::twilio;
use futures::StreamExt;
use switchboard_local::template::Template;
use tokio_tungstenite::tungstenite::Message;

use crate::latency::percentile;

/// CPU seconds a process has used (user + system), from /proc.
pub(crate) fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields start after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / USER_HZ)
}

/// The kernel's clock ticks per second in /proc (USER_HZ: 100 on every Linux architecture we run).
const USER_HZ: f64 = 100.0;

pub struct Step {
    pub rate: u32,
    pub sent: usize,
    pub lost: usize,
    pub errors: usize,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub cpu: Vec<(String, f64)>,
}

/// Runs each offered rate for `secs` seconds. `processes`: (name, pid) to measure CPU of.
pub async fn load_curve(
    rates: &[u32],
    secs: u64,
    template: &Template,
    aws: &aws_config::SdkConfig,
    processes: &[(String, u32)],
) -> Result<String> {
    let token = crate::TOKEN;
    let number = "+14155550199";
    let (_twilio, stack, socket) = crate::latency::agent_online("thr", number, template, aws).await?;
    let (_tx, mut rx) = socket.split();
    // Arrival time of each marker on the agent's socket.
    let arrived: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let reader = {
        let arrived = arrived.clone();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = rx.next().await {
                let Message::Text(t) = frame else { continue };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) else { continue };
                if v["event"]["type"] == "message_created" {
                    if let Some(text) = v["message"]["text"].as_str() {
                        arrived.lock().expect("lock").insert(text.to_owned(), Instant::now());
                    }
                }
            }
        })
    };
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let url = format!("{}/webhooks/twilio/sms", stack.base_url);
    let mut steps = vec![];
    for (round, &rate) in rates.iter().enumerate() {
        let cpu_before: Vec<Option<f64>> = processes.iter().map(|(_, pid)| cpu_secs(*pid)).collect();
        let wall = Instant::now();
        let n = (u64::from(rate) * secs) as usize;
        let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
        let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut sent: Vec<(String, Instant)> = Vec::with_capacity(n);
        let mut posts = Vec::with_capacity(n);
        let start = tokio::time::Instant::now();
        for i in 0..n {
            tokio::time::sleep_until(start + interval * i as u32).await;
            // 200 contacts: most messages are follow-ups to an assigned conversation.
            let marker = format!("load r{round} m{i} {}", ulid::Ulid::new());
            let form = crate::sms_form(format!("+1415559{:04}", i % 200), number, &marker);
            let sig = twilio::compute_signature(token, &url, &form);
            sent.push((marker, Instant::now()));
            let (http, url, errors) = (http.clone(), url.clone(), errors.clone());
            posts.push(tokio::spawn(async move {
                let ok = matches!(http.post(&url).header("x-twilio-signature", sig).form(&form).send().await,
                    Ok(r) if r.status() == 200);
                if !ok {
                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }));
        }
        for p in posts {
            let _ = p.await;
        }
        // Stragglers: up to 60 s for the last messages to reach the socket.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let done = {
                let a = arrived.lock().expect("lock");
                sent.iter().all(|(m, _)| a.contains_key(m))
            };
            if done || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let elapsed = wall.elapsed().as_secs_f64();
        let cpu = processes
            .iter()
            .zip(cpu_before)
            .map(|((name, pid), before)| {
                let used = cpu_secs(*pid).zip(before).map(|(a, b)| a - b).unwrap_or(0.0);
                (name.clone(), 100.0 * used / elapsed)
            })
            .collect();
        let a = arrived.lock().expect("lock").clone();
        let mut lat: Vec<Duration> =
            sent.iter().filter_map(|(m, at)| a.get(m).map(|got| got.saturating_duration_since(*at))).collect();
        lat.sort();
        steps.push(Step {
            rate,
            sent: n,
            lost: n - lat.len(),
            errors: errors.load(std::sync::atomic::Ordering::Relaxed),
            p50: percentile(&lat, 0.5),
            p95: percentile(&lat, 0.95),
            p99: percentile(&lat, 0.99),
            max: lat.last().copied().unwrap_or_default(),
            cpu,
        });
        let saturated = steps.last().is_some_and(|st: &Step| st.lost > 0 || st.p99 > Duration::from_secs(5));
        if saturated {
            // Past saturation the queues hold a backlog that only grows, and moto's receive
            // slows with its length: further rates would measure the backlog, not the rate.
            break;
        }
        // Let the pipeline settle before the next rate.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    reader.abort();
    let ms = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1000.0);
    let names: Vec<String> = processes.iter().map(|(n, _)| format!("CPU {n} %")).collect();
    let mut s = format!(
        "## Throughput: offered load → webhook-to-socket latency\n\nOpen loop: signed SMS webhooks posted on a fixed \
         schedule ({secs} s per rate, 200 contacts, one agent online); latency from the post to the `message_created` \
         frame on the agent's socket; *lost*: never on the socket within 60 s of the last post. CPU: share of one core \
         over the step (200 % = both cores). The curve stops at the first rate that loses messages or passes 5 s at p99 \
         (saturated: the backlog only grows from there).\n\n| offered msg/s | sent | lost | webhook errors | p50 ms | p95 ms | p99 ms | max ms | {} |\n|---:|---:|---:|---:|---:|---:|---:|---:|{}\n",
        names.join(" | "),
        "---:|".repeat(names.len())
    );
    for st in &steps {
        let cpu: Vec<String> = st.cpu.iter().map(|(_, c)| format!("{c:.0}")).collect();
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            st.rate,
            st.sent,
            st.lost,
            st.errors,
            ms(st.p50),
            ms(st.p95),
            ms(st.p99),
            ms(st.max),
            cpu.join(" | ")
        );
    }
    Ok(s + "\n")
}
