use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use domain::channels::twilio;
use domain::ports::{ChannelAccount, ChannelDirectory};
use domain::{AgentId, Channel, WorkspaceId};
use fake_twilio::{Callbacks, FakeTwilio};
use kit::auth::Role;
use switchboard_local::dev;
use switchboard_local::gateway::{Stack, StackOptions};
use switchboard_local::services::{free_port, repo_root, Services};
use switchboard_local::template::Template;

#[derive(Parser)]
#[command(name = "switchboard-local", about = "Run Switchboard on this machine, no AWS account needed")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole platform until Ctrl-C.
    Up {
        #[arg(long, default_value_t = 3000)]
        port: u16,
        #[arg(long, default_value_t = 8001)]
        dynamodb_port: u16,
        #[arg(long, default_value_t = 5001)]
        moto_port: u16,
        #[arg(long, default_value_t = 3010)]
        twilio_port: u16,
        #[arg(long, default_value_t = 8855)]
        oidc_port: u16,
        /// Where the agent console, the widget and its demo page are served (web/dist), on their
        /// own origin as CloudFront serves them in AWS.
        #[arg(long, default_value_t = 5173)]
        console_port: u16,
        /// Write the stack's addresses (API, console, fakes…) to this file as JSON once it is up
        /// (the browser tests read it).
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
    /// Run only DynamoDB Local and moto (for the test suite); writes their environment to a file.
    Services {
        #[arg(long)]
        env_file: PathBuf,
    },
    /// Sign in through the running local OpenID provider (authorization code + PKCE, as the
    /// console does) and print the ID token to send as `Authorization: Bearer <token>`.
    SignIn {
        /// A demo user: ada (admin), sue (supervisor), alice (agent), fin (finance).
        #[arg(long, default_value = "alice")]
        user: String,
        #[arg(long, default_value = "http://127.0.0.1:8855")]
        issuer: String,
    },
    /// Print the REST API's OpenAPI document (docs/openapi.json is this output).
    Openapi,
    /// Print a development JWT for the local API (HS256, local only; `sign-in` is the real thing).
    Token {
        #[arg(long, default_value = dev::WORKSPACE)]
        workspace: String,
        #[arg(long, default_value = dev::AGENT)]
        agent: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "agent", value_parser = ["agent", "supervisor", "admin", "finance"])]
        role: String,
        #[arg(long, default_value_t = 12)]
        hours: i64,
        #[arg(long, default_value = dev::JWT_SECRET)]
        secret: String,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Token { workspace, agent, name, role, hours, secret } => {
            let role = match role.as_str() {
                "supervisor" => Role::Supervisor,
                "admin" => Role::Admin,
                "finance" => Role::Finance,
                _ => Role::Agent,
            };
            let ws = WorkspaceId::parse(&workspace)?;
            let agent = AgentId::parse(&agent)?;
            println!(
                "{}",
                kit::auth::issue_token(&secret, &ws, &agent, name.as_deref(), role, time::Duration::hours(hours))
            );
            Ok(())
        }
        Command::Services { env_file } => {
            let root = repo_root();
            let services =
                Services::start(&root, free_port()?, free_port()?, free_port()?, &root.join("target/local-logs"))?;
            let exports: String = services.env().iter().map(|(k, v)| format!("export {k}={v}\n")).collect();
            std::fs::write(&env_file, exports).with_context(|| format!("writing {}", env_file.display()))?;
            eprintln!(
                "DynamoDB Local {} and moto {} are up; environment in {}",
                services.dynamodb_url,
                services.moto_url,
                env_file.display()
            );
            runtime()?.block_on(shutdown_signal());
            drop(services);
            Ok(())
        }
        Command::Openapi => {
            print!("{}", switchboard_local::openapi::document());
            Ok(())
        }
        Command::SignIn { user, issuer } => {
            let token = runtime()?.block_on(switchboard_local::oidc::sign_in(&issuer, &user))?;
            println!("{token}");
            Ok(())
        }
        Command::Up { port, dynamodb_port, moto_port, twilio_port, oidc_port, console_port, ready_file } => {
            let root = repo_root();
            let console_origins = console_origins(console_port);
            // The local OpenID provider takes sign-ins back to these consoles (node inherits it).
            std::env::set_var("SWITCHBOARD_CONSOLE_ORIGINS", console_origins.join(","));
            let services = Services::start(&root, dynamodb_port, moto_port, oidc_port, &root.join("target/local-logs"))
                .context("starting the local AWS servers (run infra/scripts/install.sh first)")?;
            // Set before the runtime exists: no other thread can be reading the environment.
            for (k, v) in services.env() {
                std::env::set_var(k, v);
            }
            let ports = Ports { http: port, twilio: twilio_port, console: console_port };
            let result = runtime()?.block_on(up(root, ports, console_origins, ready_file, &services));
            drop(services);
            result
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The console's origins on `port`: by address and by name, as a browser may open either.
fn console_origins(port: u16) -> Vec<String> {
    vec![format!("http://127.0.0.1:{port}"), format!("http://localhost:{port}")]
}

struct Ports {
    http: u16,
    twilio: u16,
    console: u16,
}

async fn up(
    root: PathBuf,
    ports: Ports,
    console_origins: Vec<String>,
    ready_file: Option<PathBuf>,
    services: &Services,
) -> Result<()> {
    let (port, twilio_port) = (ports.http, ports.twilio);
    kit::telemetry::init_pretty();
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let template = Template::load(&root.join("template.yaml"))?;
    let twilio_addr: SocketAddr = ([127, 0, 0, 1], twilio_port).into();
    let fake = FakeTwilio::start_on(
        twilio_addr,
        dev::TWILIO_ACCOUNT_SID,
        dev::TWILIO_AUTH_TOKEN,
        Callbacks::SentThenDelivered,
    )
    .await
    .with_context(|| format!("starting the fake Twilio on {twilio_addr}"))?;
    let whatsapp = fake_channels::FakeWhatsApp::start(dev::WHATSAPP_ACCESS_TOKEN, dev::WHATSAPP_APP_SECRET)
        .await
        .context("starting the fake WhatsApp Cloud API")?;
    let telegram = fake_channels::FakeTelegram::start(dev::TELEGRAM_BOT_TOKEN)
        .await
        .context("starting the fake Telegram Bot API")?;
    let page_tokens =
        [(dev::MESSENGER_PAGE_ID, dev::META_PAGE_TOKEN), (dev::INSTAGRAM_ACCOUNT_ID, dev::META_PAGE_TOKEN)];
    let meta = fake_channels::FakeMeta::start(&page_tokens, dev::META_APP_SECRET)
        .await
        .context("starting the fake Messenger Platform")?;
    let meta_base = meta.base_url();
    let meta_env = switchboard_local::MetaEnv {
        base_url: &meta_base,
        app_secret: dev::META_APP_SECRET,
        verify_token: dev::META_VERIFY_TOKEN,
        page_tokens: &page_tokens,
    };
    let opts = StackOptions {
        extra_env: switchboard_local::channel_env(
            &whatsapp.base_url(),
            (dev::WHATSAPP_APP_SECRET, dev::WHATSAPP_VERIFY_TOKEN, dev::WHATSAPP_ACCESS_TOKEN),
            &telegram.base_url(),
            (dev::TELEGRAM_BOT_TOKEN, dev::TELEGRAM_SECRET_TOKEN),
            &meta_env,
        ),
        stack_name: "switchboard-local".into(),
        email_domains: vec![dev::EMAIL_DOMAIN.into()],
        http_addr: ([127, 0, 0, 1], port).into(),
        twilio_api_base: fake.base_url(),
        twilio_account_sid: dev::TWILIO_ACCOUNT_SID.into(),
        twilio_auth_token: dev::TWILIO_AUTH_TOKEN.into(),
        jwt_secret: dev::JWT_SECRET.into(),
        oidc_issuer: Some(services.oidc_issuer.clone()),
        send_retry_base_ms: 200,
        // moto (5.2) keeps a FIFO group it saw in flight at the start of a long poll blocked for the
        // whole poll, even once its message is deleted: a 5 s wait held every next event of a
        // conversation 5 s (agents saw typing and assignments late). SQS does not; 1 s keeps the
        // local console live.
        poll_wait_secs: 1,
        pollers_per_queue: 4,
        batching_windows: false,
        ws_idle: std::time::Duration::from_secs(600),
        ws_max_age: std::time::Duration::from_secs(7200),
        console_origins,
    };
    let stack = Stack::start(&template, opts, &aws).await?;
    let store = store::DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), stack.provisioned.table.clone());
    store
        .put_channel_account(&ChannelAccount {
            display_name: Some("Demo support line".into()),
            ..ChannelAccount::new(WorkspaceId::parse(dev::WORKSPACE)?, Channel::Sms, dev::SMS_NUMBER)
        })
        .await?;
    for (channel, address) in [
        (Channel::Whatsapp, dev::WHATSAPP_PHONE_NUMBER_ID),
        (Channel::Telegram, dev::TELEGRAM_BOT_ID),
        (Channel::Email, dev::EMAIL_ADDRESS),
        (Channel::Voice, dev::SMS_NUMBER),
        (Channel::Messenger, dev::MESSENGER_PAGE_ID),
        (Channel::Instagram, dev::INSTAGRAM_ACCOUNT_ID),
        (Channel::Webchat, dev::WEBCHAT_KEY),
    ] {
        store.put_channel_account(&ChannelAccount::new(WorkspaceId::parse(dev::WORKSPACE)?, channel, address)).await?;
    }
    // Outbound webhooks: the demo workspace sends every event to the local receiver, which
    // verifies each with the Standard Webhooks library.
    let receiver = switchboard_local::receiver::WebhookReceiver::start(&root).await?;
    let hook_secret = {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        domain::hooks::Secret::from_bytes(&bytes, time::OffsetDateTime::now_utc())?
    };
    let now = time::OffsetDateTime::now_utc();
    let hook = domain::hooks::Endpoint {
        id: domain::hooks::endpoint_id(ulid::Ulid::new()),
        workspace: WorkspaceId::parse(dev::WORKSPACE)?,
        url: format!("{}/switchboard", receiver.base_url),
        description: Some("the local receiver (make run)".into()),
        events: Default::default(),
        enabled: true,
        secrets: vec![hook_secret.clone()],
        created_at: now,
        updated_at: now,
        failing_since: None,
        last_success_at: None,
        disabled_reason: None,
        version: 1,
    };
    domain::ports::HookStore::put_endpoint(&store, &hook, None).await?;
    receiver.set(&[&hook_secret.key], 0).await?;
    whatsapp.deliver_statuses_to(&format!("{}/webhooks/whatsapp", stack.base_url));
    meta.deliver_statuses_to(&format!("{}/webhooks/meta", stack.base_url));

    let dist = root.join("web/dist");
    if !dist.join("index.html").exists() {
        eprintln!(
            "web/dist is missing: `npm --prefix web run build` (make run does it) builds the console and the widget"
        );
    }
    let (console_url, _console) = switchboard_local::web::serve(
        &dist,
        ([127, 0, 0, 1], ports.console).into(),
        switchboard_local::web::WebConfig {
            api_url: stack.base_url.clone(),
            socket_url: stack.ws_url.clone(),
            oidc: Some(switchboard_local::web::Oidc {
                issuer: services.oidc_issuer.clone(),
                client_id: dev::OIDC_CLIENT_ID.into(),
            }),
            dev_tokens: true,
            widget_key: dev::WEBCHAT_KEY.into(),
        },
    )
    .await?;
    if let Some(file) = &ready_file {
        let ready = serde_json::json!({
            "api_url": stack.base_url,
            "socket_url": stack.ws_url,
            "visitor_socket_url": stack.visitor_ws_url,
            "console_url": console_url,
            "oidc_issuer": services.oidc_issuer,
            "twilio_url": fake.base_url(),
            "twilio_auth_token": dev::TWILIO_AUTH_TOKEN,
            "twilio_account_sid": dev::TWILIO_ACCOUNT_SID,
            "sms_number": dev::SMS_NUMBER,
            "widget_key": dev::WEBCHAT_KEY,
            "workspace": dev::WORKSPACE,
            "jwt_secret": dev::JWT_SECRET,
        });
        std::fs::write(file, ready.to_string()).with_context(|| format!("writing {}", file.display()))?;
    }

    let form_path = root.join("events/twilio-sms-webhook/inbound-sms.form");
    let form = std::fs::read_to_string(&form_path).with_context(|| format!("reading {}", form_path.display()))?;
    let params = twilio::parse_form(form.trim().as_bytes())?;
    let sms_url = format!("{}/webhooks/twilio/sms", stack.base_url);
    let signature = twilio::compute_signature(dev::TWILIO_AUTH_TOKEN, &sms_url, &params);
    let token = kit::auth::issue_token(
        dev::JWT_SECRET,
        &WorkspaceId::parse(dev::WORKSPACE)?,
        &AgentId::parse(dev::AGENT)?,
        Some("Alice"),
        Role::Agent,
        time::Duration::hours(12),
    );
    println!(
        r#"
Switchboard is running locally (Ctrl-C stops everything).

  agent console     {console_url}   (sign in as alice, sue, ada or fin: the local identity provider)
  web chat demo     {console_url}/demo/   (a page embedding the widget; chat with the console)
  API and webhooks  {base}
  DynamoDB Local    {ddb}   table {table}
  moto (SQS ...)    {moto}
  fake Twilio       {twilio}   (replies land here; it posts signed delivery callbacks back)
  fake WhatsApp     {whatsapp}   (Cloud API; posts signed statuses to /webhooks/whatsapp)
  fake Telegram     {telegram}   (Bot API)
  fake Messenger    {meta}   (Send API; posts signed deliveries and reads to /webhooks/meta)
  workspace         {ws}, receiving SMS on {number}, WhatsApp on number id {wa_id},
                    Telegram as bot {bot} (POST /webhooks/telegram/{bot},
                    header X-Telegram-Bot-Api-Secret-Token: {tg_secret}),
                    email on {email}: SES receiving is played by
                    curl -sS -X POST '{base}/_local/ses/receive' --data-binary @events/inbound-email/gmail-reply.eml
                    (recipients from the To header, or ?to=address); replies are in moto's SES,
                    {moto}/moto-api/data.json under ses.RawMessage;
                    Messenger on Page {page} and Instagram on account {ig} (POST /webhooks/meta,
                    signed with the app secret {meta_secret}); calls to {number} are voicemail
                    (POST /webhooks/twilio/voice, signed like SMS); the contact form:
                    curl -sS -X POST '{base}/webhooks/form/{ws}' -d 'email=ana%40example.com&message=Hello'
  webhooks          every event of {ws} goes to {receiver} (the local receiver verifies it
                    with the Standard Webhooks library): curl -sS {receiver}/_received;
                    the endpoint and its log: GET {base}/webhook-endpoints (as an admin token:
                    `cargo run -p switchboard-local -- token --role admin`)
  web chat          widget key {webchat_key}: curl -sS -X POST '{base}/webchat/{webchat_key}/visitors'
                    gives a visitor token; the visitor's socket is {visitor_ws}?key={webchat_key}&token=<token>

1. A customer texts you (a request signed exactly as Twilio signs it):

  curl -sS -X POST '{sms_url}' \
    -H 'Content-Type: application/x-www-form-urlencoded' \
    -H 'X-Twilio-Signature: {signature}' \
    --data-binary @{form}

2. Sign in as agent {agent} through the local OpenID provider ({issuer}; demo users ada (admin),
   sue (supervisor), alice (agent), fin (finance); the sign-in page is {issuer}/auth?… as the
   console opens it). From a shell, the same authorization-code + PKCE flow:

  export TOKEN=$(cargo run -q -p switchboard-local -- sign-in --user {agent} --issuer {issuer})

   (or a local-only HS256 dev token: export TOKEN={token})

  curl -sS '{base}/conversations' -H "Authorization: Bearer $TOKEN"
  curl -sS '{base}/conversations/<id>/messages' -H "Authorization: Bearer $TOKEN"
  curl -sS -X POST '{base}/conversations/<id>/messages' -H "Authorization: Bearer $TOKEN" \
    -H 'Idempotency-Key: reply-1' -H 'Content-Type: application/json' -d '{{"text":"Sorry! It ships today."}}'
"#,
        base = stack.base_url,
        ddb = services.dynamodb_url,
        table = stack.provisioned.table,
        moto = services.moto_url,
        twilio = fake.base_url(),
        whatsapp = whatsapp.base_url(),
        telegram = telegram.base_url(),
        meta = meta_base,
        page = dev::MESSENGER_PAGE_ID,
        webchat_key = dev::WEBCHAT_KEY,
        visitor_ws = stack.visitor_ws_url,
        ig = dev::INSTAGRAM_ACCOUNT_ID,
        meta_secret = dev::META_APP_SECRET,
        wa_id = dev::WHATSAPP_PHONE_NUMBER_ID,
        bot = dev::TELEGRAM_BOT_ID,
        tg_secret = dev::TELEGRAM_SECRET_TOKEN,
        email = dev::EMAIL_ADDRESS,
        ws = dev::WORKSPACE,
        number = dev::SMS_NUMBER,
        form = form_path.display(),
        agent = dev::AGENT,
        receiver = receiver.base_url,
        issuer = services.oidc_issuer,
        console_url = console_url,
    );
    shutdown_signal().await;
    eprintln!("stopping");
    drop(stack);
    Ok(())
}
