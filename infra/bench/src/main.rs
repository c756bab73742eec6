//! `switchboard-bench`: the baseline figures recorded in docs/benchmarks.md. Run it through
//! `infra/scripts/bench.sh`, which builds the release binaries first.
//!
//! - sizes: release binary sizes, beside a hello-world lambda_runtime binary of the same profile.
//! - cold start: process start → first invocation answered, against a local Lambda Runtime API,
//!   for the SMS webhook and the inbound processor (real work: DynamoDB Local and moto), and for the
//!   hello-world binary; plus each process's peak resident memory.
//! - capacity: DynamoDB capacity units and AWS requests per inbound message and per reply, counted
//!   by a proxy in front of DynamoDB Local and moto while the pipeline runs.

mod channels;
mod heat;
mod latency;
mod proxy;
mod runtime_api;
mod simulate;
mod throughput;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use domain::channels::twilio;
use domain::ports::{AssigneeFilter, ChannelAccount, ChannelDirectory, ConversationQuery, ConversationReader, Order};
use domain::{Channel, ConversationStatus, WorkspaceId};
use switchboard_local::gateway::{Stack, StackOptions};
use switchboard_local::services::{free_port, repo_root, Services};
use switchboard_local::template::Template;

#[derive(Parser)]
#[command(about = "Measure Switchboard's baseline figures")]
struct Args {
    /// Where the release binaries are.
    #[arg(long, default_value = "target/release")]
    release_dir: PathBuf,
    /// Cold starts per binary.
    #[arg(long, default_value_t = 15)]
    runs: usize,
    /// Messages per capacity scenario.
    #[arg(long, default_value_t = 20)]
    messages: usize,
    /// Messages in the webhook → agent socket latency run.
    #[arg(long, default_value_t = 200)]
    latency_runs: usize,
    /// Only the webhook → socket latency (no release binaries needed).
    #[arg(long)]
    latency_only: bool,
    /// Offered rates (msg/s) of the open-loop throughput curve; empty skips it.
    #[arg(long, value_delimiter = ',', default_values_t = [10u32, 25, 50, 75, 100, 150])]
    throughput: Vec<u32>,
    /// Seconds per offered rate.
    #[arg(long, default_value_t = 60)]
    throughput_secs: u64,
    /// Only the throughput curve (no release binaries needed).
    #[arg(long)]
    throughput_only: bool,
    /// Only the partition-heat simulation (no release binaries needed).
    #[arg(long)]
    heat_only: bool,
    /// Inbound messages sampled per heat scenario.
    #[arg(long, default_value_t = 2000)]
    heat_messages: usize,
    /// Agents of the one-workspace heat scenario (all with the console open).
    #[arg(long, default_value_t = 500)]
    heat_agents: usize,
    /// Which heat scenarios run: `one` (one workspace), `many` (100 workspaces) or `both`.
    #[arg(long, default_value = "both")]
    heat_scenario: String,
    /// Every benchmark once, as small as it can be: one cold start, three messages per scenario,
    /// three latency probes, one throughput step of two seconds. For CI: it fails on an error,
    /// never on a time (the figures of a smoke run mean nothing).
    #[arg(long)]
    smoke: bool,
}

impl Args {
    fn smoke(mut self) -> Self {
        if self.smoke {
            self.runs = 1;
            self.messages = 3;
            self.latency_runs = 3;
            self.throughput = vec![5];
            self.throughput_secs = 2;
            self.heat_messages = 30;
            self.heat_agents = 10;
        }
        self
    }
}

const FUNCTIONS: [&str; 8] = [
    "twilio-sms-webhook",
    "twilio-status-webhook",
    "inbound-processor",
    "outbound-sender",
    "api-list-conversations",
    "api-get-conversation",
    "api-list-messages",
    "api-send-message",
];
const TOKEN: &str = "bench-twilio-token";
const SID: &str = "AC22222222222222222222222222222222";

fn main() -> Result<()> {
    let args = Args::parse().smoke();
    let root = repo_root();
    let release = if args.release_dir.is_absolute() { args.release_dir.clone() } else { root.join(&args.release_dir) };
    let services = Services::start(&root, free_port()?, free_port()?, free_port()?, &root.join("target/local-logs"))?;
    let (ddb_proxy, sqs_proxy) = (free_port()?, free_port()?);
    // The in-process pipeline (capacity run) talks to the servers through the counting proxies;
    // set before the runtime starts, so no other thread reads the environment meanwhile.
    for (k, v) in services.env() {
        std::env::set_var(k, v);
    }
    if args.heat_only {
        std::env::set_var("AWS_ENDPOINT_URL_DYNAMODB", format!("http://127.0.0.1:{ddb_proxy}"));
    } else if !args.latency_only && !args.throughput_only {
        std::env::set_var("AWS_ENDPOINT_URL_DYNAMODB", format!("http://127.0.0.1:{ddb_proxy}"));
        std::env::set_var("AWS_ENDPOINT_URL_SQS", format!("http://127.0.0.1:{sqs_proxy}"));
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(&args, &root, &release, &services, ddb_proxy, sqs_proxy))?;
    Ok(())
}

/// Report sections, printed (and flushed) as they are added.
struct Printed;

impl std::ops::AddAssign<&String> for Printed {
    fn add_assign(&mut self, section: &String) {
        use std::io::Write;
        print!("{section}");
        let _ = std::io::stdout().flush();
    }
}

async fn run(
    args: &Args,
    root: &Path,
    release: &Path,
    services: &Services,
    ddb_proxy: u16,
    sqs_proxy: u16,
) -> Result<()> {
    // Each section is printed as soon as it is measured (a long run shows its progress, and a
    // failure late in the run keeps what came before).
    let mut out = Printed;
    // CPU per process in the throughput run: the two AWS emulators, and this process, which hosts
    // the local gateway and every function.
    if args.heat_only {
        return partition_heat(args, root, services, ddb_proxy).await;
    }
    let mut processes: Vec<(String, u32)> =
        services.pids().into_iter().map(|(name, pid)| (name.to_owned(), pid)).collect();
    processes.push(("gateway + functions".into(), std::process::id()));
    if args.latency_only || args.throughput_only {
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let template = Template::load(&root.join("template.yaml"))?;
        if args.latency_only {
            out += &latency::webhook_to_socket(args.latency_runs, &template, &aws).await?;
        }
        if args.throughput_only {
            out += &throughput::load_curve(&args.throughput, args.throughput_secs, &template, &aws, &processes).await?;
        }
        return Ok(());
    }
    out += &sizes(release)?;
    let counters = Arc::new(proxy::Counters::default());
    proxy::start("dynamodb", ([127, 0, 0, 1], ddb_proxy).into(), services.dynamodb_url.clone(), counters.clone())
        .await?;
    proxy::start("sqs", ([127, 0, 0, 1], sqs_proxy).into(), services.moto_url.clone(), counters.clone()).await?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let template = Template::load(&root.join("template.yaml"))?;
    out += &cold_starts(args, release, services, &template, &aws).await?;
    out += &capacity(args, &template, &aws, &counters, &services.dynamodb_url).await?;
    out += &latency::webhook_to_socket(args.latency_runs, &template, &aws).await?;
    if !args.throughput.is_empty() {
        out += &throughput::load_curve(&args.throughput, args.throughput_secs, &template, &aws, &processes).await?;
    }
    Ok(())
}

/// The partition-heat simulation: one workspace at 10,000 msg/s, and 100 workspaces at 100 each.
async fn partition_heat(args: &Args, root: &Path, services: &Services, proxy_port: u16) -> Result<()> {
    let mut out = Printed;
    let recording = Arc::new(heat::Heat::default());
    heat::start(([127, 0, 0, 1], proxy_port).into(), services.dynamodb_url.clone(), recording.clone()).await?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let template = Template::load(&root.join("template.yaml"))?;
    out += &String::from(
        "## Partition heat at 10,000 msg/s\n\nThe whole pipeline on the local stack, its DynamoDB requests recorded by \
         partition (`infra/bench/src/heat.rs`); the sample's units scaled to the rate it stands for. Limits per \
         partition: 1,000 WCU/s and 3,000 RCU/s.\n\n",
    );
    let workspaces = if args.smoke { 3 } else { 100 };
    let loads = [
        simulate::Workload {
            title: "One workspace at 10,000 msg/s".into(),
            workspaces: 1,
            messages: args.heat_messages,
            agents: args.heat_agents,
            sockets: args.heat_agents,
            rate: 10_000.0,
        },
        simulate::Workload {
            title: format!("{workspaces} workspaces at {} msg/s each", 10_000 / workspaces),
            workspaces,
            messages: args.heat_messages,
            agents: 5,
            sockets: 5,
            rate: 10_000.0,
        },
    ];
    let scenarios = match args.heat_scenario.as_str() {
        "one" => &loads[..1],
        "many" => &loads[1..],
        "both" => &loads[..],
        other => bail!("--heat-scenario is one, many or both, not {other}"),
    };
    for load in scenarios {
        recording.reset();
        out += &simulate::run(load, &template, &aws, &recording, &services.dynamodb_url).await?;
    }
    Ok(())
}

fn sizes(release: &Path) -> Result<String> {
    let mut s = String::from("## Release binary sizes\n\n| binary | bytes | MiB |\n|---|---:|---:|\n");
    for b in FUNCTIONS.iter().chain(["hello-lambda"].iter()) {
        // A profile comparison may build only the binaries it measures.
        let Ok(meta) = std::fs::metadata(release.join(b)) else {
            s += &format!("| {b} | not built | |\n");
            continue;
        };
        s += &format!("| {b} | {} | {:.2} |\n", meta.len(), meta.len() as f64 / 1_048_576.0);
    }
    Ok(s + "\n")
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One cold start: init (process start → first poll of the Runtime API, Lambda's "Init Duration"),
/// total (process start → first invocation answered) and peak RSS.
struct Sample {
    init_ms: f64,
    total_ms: f64,
    rss_kib: u64,
}

#[derive(Default)]
struct ColdStart {
    init_ms: Vec<f64>,
    total_ms: Vec<f64>,
    rss_kib: Vec<u64>,
}

impl ColdStart {
    fn push(&mut self, s: &Sample) {
        self.init_ms.push(s.init_ms);
        self.total_ms.push(s.total_ms);
        self.rss_kib.push(s.rss_kib);
    }
}

/// Starts `binary` with `env` against a fresh Runtime API serving `event`; returns the timings, the
/// process's peak RSS, and the response.
async fn cold_start_once(
    binary: &Path,
    env: &[(String, String)],
    event: String,
) -> Result<(Sample, serde_json::Value)> {
    let (addr, done) = runtime_api::serve_one(event).await?;
    let start = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .envs(env.iter().cloned())
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let (outcome, first_poll) =
        tokio::time::timeout(Duration::from_secs(20), done).await.context("no answer in 20 s")??;
    let total_ms = start.elapsed().as_secs_f64() * 1000.0;
    let init_ms = first_poll.map(|t| t.duration_since(start).as_secs_f64() * 1000.0).unwrap_or(total_ms);
    let rss = child.id().and_then(peak_rss_kib).unwrap_or(0);
    let _ = child.kill().await;
    match outcome {
        runtime_api::Outcome::Response(body) => {
            Ok((Sample { init_ms, total_ms, rss_kib: rss }, serde_json::from_str(&body).unwrap_or_default()))
        }
        runtime_api::Outcome::Error(e) => bail!("{} returned an error: {e}", binary.display()),
        runtime_api::Outcome::InitError(e) => bail!("{} failed to initialise: {e}", binary.display()),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn cold_starts(
    args: &Args,
    release: &Path,
    services: &Services,
    template: &Template,
    aws: &aws_config::SdkConfig,
) -> Result<String> {
    let stack = format!("cold{}", ulid::Ulid::new().to_string().to_lowercase());
    let provisioned = switchboard_local::provision::provision(template, &stack, aws).await?;
    let ws = WorkspaceId::parse("bench")?;
    let number = "+14155550177";
    let store = store::DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), provisioned.table.clone());
    own_number(&store, &ws, number).await?;
    // The functions talk straight to the servers, as a deployed function talks to AWS.
    let mut env: Vec<(String, String)> = services.env().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    env.push(("TABLE_NAME".into(), provisioned.table.clone()));
    env.push(("INBOUND_QUEUE_URL".into(), provisioned.queue_urls["InboundQueue"].clone()));
    env.push(("NOTIFICATION_QUEUE_URL".into(), provisioned.queue_urls["NotificationQueue"].clone()));
    // The processor answers a HELP (and after hours) through the sender's queue.
    env.push(("OUTBOUND_QUEUE_URL".into(), provisioned.queue_urls["OutboundQueue"].clone()));
    // Its service-level timers: the state machines the template gives it.
    for (var, machine) in template.state_machine_env("inbound-processor") {
        let arn = provisioned.state_machine_arns.get(&machine).context("a state machine the template names")?;
        env.push((var, arn.clone()));
    }
    env.push(("TWILIO_AUTH_TOKEN".into(), TOKEN.into()));

    let mut results: BTreeMap<&str, ColdStart> = BTreeMap::new();
    for run in 0..args.runs {
        let sid = format!("SM{:032x}", ulid::Ulid::new().0);
        // The webhook: a signed Twilio request, as an API Gateway HTTP API event.
        let form: Vec<(String, String)> = [
            ("MessageSid", sid.as_str()),
            ("AccountSid", SID),
            ("From", "+14155552671"),
            ("To", number),
            ("Body", "Where is my order?"),
            ("NumMedia", "0"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let signature = twilio::compute_signature(TOKEN, "https://bench.local/webhooks/twilio/sms", &form);
        let body = serde_urlencoded::to_string(&form)?;
        let event = kit::apigw::HttpEvent {
            method: "POST",
            route_path: "/webhooks/twilio/sms",
            raw_path: "/webhooks/twilio/sms",
            raw_query: "",
            headers: vec![
                ("content-type".into(), "application/x-www-form-urlencoded".into()),
                ("x-twilio-signature".into(), signature),
            ],
            path_parameters: vec![],
            body: Some(body.as_bytes()),
            domain_name: "bench.local",
            source_ip: "127.0.0.1",
            authorizer_claims: None,
        }
        .to_json()
        .to_string();
        let (sample, res) = cold_start_once(&release.join("twilio-sms-webhook"), &env, event).await?;
        anyhow::ensure!(res["statusCode"] == 200, "the webhook answered {res}");
        results.entry("twilio-sms-webhook").or_default().push(&sample);

        // The processor: one SQS record carrying a canonical inbound event.
        let inbound = serde_json::json!({
            "type": "message", "workspace": "bench", "channel": "sms",
            "identity": {"kind": "phone", "value": format!("+1415556{:04}", run)},
            "contact_address": format!("+1415556{:04}", run), "our_address": number, "contact_name": null,
            "provider": "twilio", "provider_message_id": sid, "text": "Where is my order?", "attachments": [],
            "provider_timestamp": null, "received_at": "2026-11-21T12:00:00Z", "metadata": {}
        });
        let sqs_event = serde_json::json!({ "Records": [{
            "messageId": format!("bench-{run}"), "receiptHandle": "rh", "body": inbound.to_string(),
            "attributes": {"ApproximateReceiveCount": "1", "MessageGroupId": "g"}, "messageAttributes": {},
            "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:bench.fifo",
            "awsRegion": "us-east-1"
        }]});
        let (sample, res) = cold_start_once(&release.join("inbound-processor"), &env, sqs_event.to_string()).await?;
        anyhow::ensure!(res["batchItemFailures"] == serde_json::json!([]), "the processor answered {res}");
        results.entry("inbound-processor").or_default().push(&sample);

        let (sample, _) = cold_start_once(&release.join("hello-lambda"), &env, "{\"hello\":1}".into()).await?;
        results.entry("hello-lambda").or_default().push(&sample);
    }
    // The webhook's runs really enqueued: check the processor's work landed too.
    let stored = store
        .conversations(
            &ws,
            &ConversationQuery {
                status: ConversationStatus::Open,
                assignee: AssigneeFilter::Any,
                limit: 100,
                cursor: None,
            },
        )
        .await?;
    if stored.items.len() != args.runs {
        bail!("expected {} conversations from the processor runs, found {}", args.runs, stored.items.len());
    }
    let mut s = format!(
        "## Cold-start proxy ({} runs each)\n\nAgainst a local Lambda Runtime API. *Init*: process start → the runtime's \
         first poll for work (Lambda's Init Duration: binary load, config, SDK clients). *First invocation*: process start \
         → the first event answered, including the handler's real calls to DynamoDB Local and moto on loopback (so it \
         moves with those servers' latency). Peak RSS from /proc (VmHWM).\n\n\
         | binary | init p50 ms | init p90 ms | first invocation p50 ms | first invocation p90 ms | peak RSS p50 (MiB) |\n\
         |---|---:|---:|---:|---:|---:|\n",
        args.runs
    );
    for (name, r) in &mut results {
        r.init_ms.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        r.total_ms.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        r.rss_kib.sort_unstable();
        s += &format!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            percentile(&r.init_ms, 0.5),
            percentile(&r.init_ms, 0.9),
            percentile(&r.total_ms, 0.5),
            percentile(&r.total_ms, 0.9),
            r.rss_kib[r.rss_kib.len() / 2] as f64 / 1024.0
        );
    }
    Ok(s + "\n")
}

pub(crate) fn table(title: &str, snapshot: &BTreeMap<String, proxy::OpStats>, n: usize) -> String {
    let n = n as f64;
    let mut s = format!(
        "### {title}\n\n| operation | requests / message | RCU / message | WCU / message |\n|---|---:|---:|---:|\n"
    );
    let (mut req, mut rcu, mut wcu) = (0.0, 0.0, 0.0);
    for (op, st) in snapshot {
        if op == "sqs:ReceiveMessage" {
            continue;
        }
        s += &format!(
            "| {op} | {:.2} | {:.2} | {:.2} |\n",
            st.requests as f64 / n,
            st.read_units / n,
            st.write_units / n
        );
        req += st.requests as f64;
        rcu += st.read_units;
        wcu += st.write_units;
    }
    s += &format!(
        "| **total** (without ReceiveMessage) | **{:.2}** | **{:.2}** | **{:.2}** |\n",
        req / n,
        rcu / n,
        wcu / n
    );
    let polls = snapshot.get("sqs:ReceiveMessage").map(|s| s.requests).unwrap_or(0);
    s += &format!(
        "\nReceiveMessage calls during the scenario: {polls} (event-source-mapping polling, including idle long polls; \
         not a per-message cost).\n\n"
    );
    s
}

/// Receives SMS on `number` for `ws`.
pub(crate) async fn own_number(store: &store::DynamoStore, ws: &WorkspaceId, number: &str) -> Result<()> {
    let account = ChannelAccount::new(ws.clone(), Channel::Sms, number);
    Ok(store.put_channel_account(&account).await?)
}

/// A Twilio incoming-SMS webhook form (new MessageSid), to be signed for its URL.
pub(crate) fn sms_form(from: String, to: &str, body: &str) -> Vec<(String, String)> {
    [
        ("MessageSid", format!("SM{:032x}", ulid::Ulid::new().0)),
        ("AccountSid", SID.to_owned()),
        ("From", from),
        ("To", to.to_owned()),
        ("Body", body.to_owned()),
        ("NumMedia", "0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The bench's stacks: their own table and queues, the fake Twilio, API Gateway's WebSocket limits.
pub(crate) fn stack_options(prefix: &str, twilio_base: &str, poll_wait_secs: i32) -> Result<StackOptions> {
    Ok(StackOptions {
        email_domains: vec![],
        stack_name: format!("{prefix}{}", ulid::Ulid::new().to_string().to_lowercase()),
        http_addr: "127.0.0.1:0".parse()?,
        twilio_api_base: twilio_base.to_owned(),
        twilio_account_sid: SID.into(),
        twilio_auth_token: TOKEN.into(),
        jwt_secret: latency::JWT.into(),
        oidc_issuer: None,
        // Every function of the template is configured, the optional channels too; their API
        // bases point nowhere unless a run starts their fakes (the capacity run does).
        extra_env: switchboard_local::channel_env(
            "http://127.0.0.1:9",
            (channels::WHATSAPP_APP_SECRET, "bench-wa-verify", channels::WHATSAPP_ACCESS_TOKEN),
            "http://127.0.0.1:9",
            ("1:bench", "bench-telegram-secret"),
            &switchboard_local::MetaEnv {
                base_url: "http://127.0.0.1:9",
                app_secret: "bench-meta-secret",
                verify_token: "bench-meta-verify",
                page_tokens: &[],
            },
        ),
        send_retry_base_ms: 10,
        poll_wait_secs,
        pollers_per_queue: 4,
        batching_windows: true,
        ws_idle: std::time::Duration::from_secs(600),
        ws_max_age: std::time::Duration::from_secs(7200),
        console_origins: vec![],
    })
}

async fn capacity(
    args: &Args,
    template: &Template,
    aws: &aws_config::SdkConfig,
    counters: &proxy::Counters,
    direct_dynamodb_url: &str,
) -> Result<String> {
    let twilio = fake_twilio::FakeTwilio::start(SID, TOKEN, fake_twilio::Callbacks::SentThenDelivered).await?;
    let whatsapp =
        fake_channels::FakeWhatsApp::start(channels::WHATSAPP_ACCESS_TOKEN, channels::WHATSAPP_APP_SECRET).await?;
    let telegram = fake_channels::FakeTelegram::start("1:bench").await?;
    let meta = fake_channels::FakeMeta::start(&[], "bench-meta-secret").await?;
    let meta_base = meta.base_url();
    let meta_env = switchboard_local::MetaEnv {
        base_url: &meta_base,
        app_secret: "bench-meta-secret",
        verify_token: "bench-meta-verify",
        page_tokens: &[],
    };
    let mut opts = stack_options("cap", &twilio.base_url(), 1)?;
    opts.extra_env = switchboard_local::channel_env(
        &whatsapp.base_url(),
        (channels::WHATSAPP_APP_SECRET, "bench-wa-verify", channels::WHATSAPP_ACCESS_TOKEN),
        &telegram.base_url(),
        ("1:bench", "bench-telegram-secret"),
        &meta_env,
    );
    opts.email_domains = vec![channels::EMAIL_DOMAIN.into()];
    let stack = Stack::start(template, opts, aws).await?;
    // Observation goes around the proxy, straight to DynamoDB Local, so it is not counted.
    let direct = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(aws).endpoint_url(direct_dynamodb_url).build(),
    );
    let ws = WorkspaceId::parse("bench")?;
    let number = "+14155550188";
    let store = store::DynamoStore::new(direct, stack.provisioned.table.clone());
    own_number(&store, &ws, number).await?;
    let http = reqwest::Client::new();
    let n = args.messages;
    let customers: Vec<String> = (0..n).map(|i| format!("+1415557{i:04}")).collect();
    let text_in = |from: String| {
        let http = http.clone();
        let url = format!("{}/webhooks/twilio/sms", stack.base_url);
        async move {
            let form = sms_form(from, number, "Where is my order?");
            let sig = twilio::compute_signature(TOKEN, &url, &form);
            let res = http.post(&url).header("x-twilio-signature", sig).form(&form).send().await?;
            anyhow::ensure!(res.status() == 200, "webhook answered {}", res.status());
            Ok::<_, anyhow::Error>(())
        }
    };
    let total_messages = |store: store::DynamoStore, ws: WorkspaceId| async move {
        let q = ConversationQuery {
            status: ConversationStatus::Open,
            assignee: AssigneeFilter::Any,
            limit: 100,
            cursor: None,
        };
        let convs = store.conversations(&ws, &q).await?;
        Ok::<_, anyhow::Error>((
            convs.items.len(),
            convs.items.iter().map(|c| c.message_count as usize).sum::<usize>(),
            convs.items,
        ))
    };
    let wait_until = |want_convs: usize, want_msgs: usize| {
        let (store, ws) = (store.clone(), ws.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let (c, m, _) = total_messages(store.clone(), ws.clone()).await?;
                if c == want_convs && m >= want_msgs {
                    return Ok::<_, anyhow::Error>(());
                }
                anyhow::ensure!(Instant::now() < deadline, "pipeline did not finish: {c} conversations, {m} messages");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let mut out = String::from(
        "## DynamoDB capacity and AWS requests per message\n\nCounted by a proxy in front of DynamoDB Local and moto while the \
         pipeline runs on the local stack (webhook → inbound queue → processor; reply API → outbound queue → sender → fake \
         Twilio → two status callbacks). Capacity units as DynamoDB Local reports them with ReturnConsumedCapacity=TOTAL \
        . The benchmark \
         watches progress through its own DynamoDB client that bypasses the proxy, so only the pipeline is counted.\n\n",
    );

    // Phase 1: first messages from new contacts.
    counters.reset();
    for c in &customers {
        text_in(c.clone()).await?;
    }
    wait_until(n, n).await?;
    // Let publishes that follow the last observed write finish before counting.
    tokio::time::sleep(Duration::from_millis(750)).await;
    let snap = counters.snapshot();
    out += &table(&format!("A first message from a new contact ({n} messages)"), &snap, n);

    // Phase 2: follow-ups into the open conversations.
    counters.reset();
    for c in &customers {
        text_in(c.clone()).await?;
    }
    wait_until(n, 2 * n).await?;
    // Let publishes that follow the last observed write finish before counting.
    tokio::time::sleep(Duration::from_millis(750)).await;
    let snap = counters.snapshot();
    out += &table(&format!("A follow-up message in an open conversation ({n} messages)"), &snap, n);

    // Phase 3: agent replies, through delivery.
    let (_, _, convs) = total_messages(store.clone(), ws.clone()).await?;
    let token = kit::auth::issue_token(
        "bench-jwt",
        &ws,
        &domain::AgentId::parse("alice")?,
        None,
        kit::auth::Role::Agent,
        time::Duration::hours(1),
    );
    counters.reset();
    for (i, c) in convs.iter().enumerate() {
        let res = http
            .post(format!("{}/conversations/{}/messages", stack.base_url, c.id))
            .bearer_auth(&token)
            .header("idempotency-key", format!("bench-{i}"))
            .json(&serde_json::json!({"text": "It ships today."}))
            .send()
            .await?;
        anyhow::ensure!(res.status() == 202, "reply answered {}", res.status());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut delivered = 0;
        for c in &convs {
            let page = store.messages(&ws, c.id, Order::Newest, 1, None).await?;
            delivered += page.items.iter().filter(|m| m.status == domain::DeliveryStatus::Delivered).count();
        }
        if delivered == convs.len() {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "replies not delivered: {delivered}/{}", convs.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let publishes that follow the last observed write finish before counting.
    tokio::time::sleep(Duration::from_millis(750)).await;
    let snap = counters.snapshot();
    out += &table(&format!("An agent reply, sent and delivered ({n} replies)"), &snap, n);

    // The other channels' inbound paths.
    let others = channels::Channels { stack: &stack, store: &store, counters, http: http.clone(), n };
    out += &others.whatsapp("106540352299999").await?;
    out += &others.email().await?;
    out += &others.webchat().await?;
    drop(stack);
    Ok(out)
}
