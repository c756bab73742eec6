//! The browser apps on their own origin, as CloudFront serves them from the console bucket in AWS:
//! the agent console (web/dist, a single-page app: unknown paths such as `/callback` get its
//! index.html), the widget's script (`/widget.js`) and its demo page (`/demo/`), and the
//! `config.json` the deploy writes beside them, here naming the local stack.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use axum::response::IntoResponse;
use tokio::task::JoinHandle;
use tower_http::services::{ServeDir, ServeFile};

/// What the console and the demo page read at start (`web/console/src/config.ts`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct WebConfig {
    pub api_url: String,
    pub socket_url: String,
    pub oidc: Option<Oidc>,
    /// Local stacks only: HS256 development tokens may be pasted instead of signing in.
    pub dev_tokens: bool,
    /// The demo page's widget key.
    pub widget_key: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Oidc {
    pub issuer: String,
    pub client_id: String,
}

/// Serves `dist` (the output of `npm run build` in web/) and `config` on `addr`.
pub async fn serve(dist: &Path, addr: SocketAddr, config: WebConfig) -> Result<(String, JoinHandle<()>)> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding the console's address {addr}"))?;
    let origin = format!("http://{}", listener.local_addr()?);
    let config = serde_json::to_string(&config)?;
    let files = ServeDir::new(dist).fallback(ServeFile::new(dist.join("index.html")));
    let app =
        axum::Router::new()
            .route(
                "/config.json",
                axum::routing::get(move || {
                    let body = config.clone();
                    async move {
                        ([("content-type", "application/json"), ("cache-control", "no-store")], body).into_response()
                    }
                }),
            )
            .fallback_service(files);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the console's server stopped");
        }
    });
    Ok((origin, task))
}
