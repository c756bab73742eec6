//! The local webhook receiver (infra/webhook-receiver/receiver.py): a child process that verifies
//! every delivery with the Standard Webhooks specification's own Python library and records it.
//! `make run` points the demo workspace's endpoint at it; the end-to-end tests read what it got.

use std::path::Path;
use std::process::Stdio;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncBufReadExt, BufReader};

pub struct WebhookReceiver {
    _child: tokio::process::Child,
    pub base_url: String,
    client: reqwest::Client,
}

impl WebhookReceiver {
    /// Starts the receiver on a free loopback port (the child is killed when this is dropped).
    pub async fn start(root: &Path) -> Result<Self> {
        let python = root.join(".local/venv/bin/python");
        if !python.exists() {
            bail!("{} is missing: run infra/scripts/install.sh", python.display());
        }
        let mut child = tokio::process::Command::new(python)
            .arg(root.join("infra/webhook-receiver/receiver.py"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting the webhook receiver")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .context("the webhook receiver did not start in time")??
            .ok_or_else(|| anyhow!("the webhook receiver exited (is standardwebhooks installed?)"))?;
        let port = line.strip_prefix("listening ").ok_or_else(|| anyhow!("unexpected receiver output {line:?}"))?;
        Ok(Self { _child: child, base_url: format!("http://127.0.0.1:{port}"), client: reqwest::Client::new() })
    }

    /// The secrets it verifies with, and how many of the next deliveries it fails with a 500.
    pub async fn set(&self, secrets: &[&str], fail: u32) -> Result<()> {
        let body = serde_json::json!({ "secrets": secrets, "fail": fail });
        self.client.post(format!("{}/_control", self.base_url)).json(&body).send().await?.error_for_status()?;
        Ok(())
    }

    /// Every delivery so far: `id`, `timestamp`, `type`, `verified`, `status`, `path`, `payload`.
    pub async fn received(&self) -> Result<Vec<serde_json::Value>> {
        let v: serde_json::Value =
            self.client.get(format!("{}/_received", self.base_url)).send().await?.error_for_status()?.json().await?;
        Ok(v["deliveries"].as_array().cloned().unwrap_or_default())
    }
}
