//! The local OpenID provider (infra/oidc/server.mjs, the `oidc-provider` package): started with the
//! other local servers, it plays the team's identity provider. [`sign_in`] walks its authorization
//! code flow with PKCE as a browser would (the sign-in form, the redirect, the code exchange) and
//! returns the ID token an agent's console sends to the API.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use sha2::Digest;

use crate::dev::OIDC_CLIENT_ID;

/// Where the provider sends the browser back with the code (never fetched: the code is read off the
/// redirect).
const REDIRECT_URI: &str = "http://127.0.0.1/callback";

/// Spawns the provider on `port` (installed by infra/scripts/install.sh into infra/oidc/node_modules).
pub fn spawn(root: &Path, port: u16, log_dir: &Path) -> Result<Command> {
    let dir = root.join("infra/oidc");
    if !dir.join("node_modules/oidc-provider/package.json").exists() {
        bail!("{} has no node_modules: run infra/scripts/install.sh", dir.display());
    }
    let log = std::fs::File::create(log_dir.join("oidc-provider.log"))?;
    let mut cmd = Command::new("node");
    // Signs with the first test key (events/oidc/test-keys.json): tests sign tokens with it too.
    cmd.arg(dir.join("server.mjs"))
        .args(["--port", &port.to_string()])
        .arg("--keys")
        .arg(root.join("events/oidc/test-keys.json"))
        .args(["--kid", "rsa-key-1"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    Ok(cmd)
}

/// Kills a provider child (used by `Services`' drop).
pub fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Adds (or replaces) a user of the local provider: `login` signs in as agent `login` of
/// `workspace` with `roles`.
pub async fn add_user(issuer: &str, login: &str, workspace: &str, roles: &[&str]) -> Result<()> {
    let body = serde_json::json!({ "login": login, "workspace": workspace, "roles": roles });
    reqwest::Client::new()
        .post(format!("{issuer}/_local/users"))
        .json(&body)
        .send()
        .await?
        .error_for_status()
        .context("adding a user to the local OpenID provider")?;
    Ok(())
}

/// Cookies set along the way, sent back as a browser would (one host, so no domain matching).
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn keep(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all("set-cookie") {
            let Ok(v) = v.to_str() else { continue };
            let pair = v.split(';').next().unwrap_or("");
            if let Some((k, val)) = pair.split_once('=') {
                self.0.insert(k.trim().to_owned(), val.trim().to_owned());
            }
        }
    }
    fn header(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }
}

fn location(res: &reqwest::Response, base: &str) -> Result<String> {
    let loc = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("expected a redirect, got {}", res.status()))?;
    Ok(if loc.starts_with('/') { format!("{base}{loc}") } else { loc.to_owned() })
}

/// Signs `login` in through the authorization code flow with PKCE and returns their ID token.
pub async fn sign_in(issuer: &str, login: &str) -> Result<String> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| anyhow!("no randomness: {e}"))?;
    let verifier = b64.encode(raw);
    let challenge = b64.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let state = ulid::Ulid::new().to_string();
    let query = serde_urlencoded::to_string([
        ("client_id", OIDC_CLIENT_ID),
        ("response_type", "code"),
        ("scope", "openid profile email switchboard"),
        ("redirect_uri", REDIRECT_URI),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("state", &state),
        ("nonce", &ulid::Ulid::new().to_string()),
    ])?;
    let mut jar = Jar::default();
    // 1. The authorization request sends the browser to the sign-in page.
    let res = http.get(format!("{issuer}/auth?{query}")).send().await?;
    jar.keep(&res);
    let interaction = location(&res, issuer)?;
    // 2. The user signs in; the provider resumes the authorization.
    let res = http
        .post(format!("{interaction}/login"))
        .header("cookie", jar.header())
        .form(&[("login", login)])
        .send()
        .await?;
    if !res.status().is_redirection() {
        bail!("signing in as {login} was refused ({})", res.status());
    }
    jar.keep(&res);
    let resume = location(&res, issuer)?;
    let res = http.get(&resume).header("cookie", jar.header()).send().await?;
    let back = location(&res, issuer)?;
    // 3. Back at the console with the code (and our state): exchange it with the verifier.
    let url = reqwest::Url::parse(&back)?;
    let params: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    if params.get("state") != Some(&state) {
        bail!("the provider answered {back}");
    }
    let code = params.get("code").ok_or_else(|| anyhow!("no code in {back}"))?;
    let tokens: serde_json::Value = http
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", OIDC_CLIENT_ID),
            ("code_verifier", &verifier),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    tokens["id_token"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no id_token in {tokens}"))
}
