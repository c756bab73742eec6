//! The outbound webhooks' HTTP transport: one POST per attempt with the Standard Webhooks headers,
//! 15 s for the whole exchange, no redirects (a redirect could lead to an address the URL check
//! refused), no proxy from the environment, and — in AWS — a resolver that refuses names resolving
//! to private, loopback or link-local addresses, checked at every connection (a name that passed
//! when the endpoint was saved can be re-pointed at the metadata service later: DNS rebinding).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::hooks::{is_public_ip, Reach, Signed};
use domain::ports::{HookResponse, HookTransport};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The whole exchange of one attempt.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(15);

pub struct HttpHookTransport {
    client: reqwest::Client,
}

impl HttpHookTransport {
    pub fn new(reach: Reach) -> Result<Self, reqwest::Error> {
        let builder = reqwest::Client::builder()
            .connect_timeout(crate::http::CONNECT_TIMEOUT)
            .timeout(HOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent("Switchboard-Webhooks/1");
        let builder = match reach {
            Reach::Public => builder.dns_resolver(Arc::new(PublicOnly)),
            Reach::Local => builder,
        };
        Ok(Self { client: builder.build()? })
    }
}

#[async_trait]
impl HookTransport for HttpHookTransport {
    async fn post(&self, url: &str, signed: &Signed, body: &str) -> HookResponse {
        let started = Instant::now();
        let res = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &signed.id)
            .header("webhook-timestamp", signed.timestamp.to_string())
            .header("webhook-signature", &signed.signature)
            .body(body.to_owned())
            .send()
            .await;
        let latency_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
        match res {
            // The body is not read: a receiver's answer is its status.
            Ok(r) => HookResponse { status: Some(r.status().as_u16()), latency_ms, error: None },
            Err(e) => {
                let why = if e.is_timeout() {
                    "timed out".to_owned()
                } else if e.is_connect() {
                    format!("could not connect: {}", root_cause(&e))
                } else {
                    root_cause(&e)
                };
                HookResponse { status: None, latency_ms, error: Some(why) }
            }
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The system resolver, keeping public addresses only (none left: the connection fails).
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public_ip(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_in_aws_and_allowed_locally() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new().route("/in", axum::routing::post(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let signed = Signed { id: "msg_1".into(), timestamp: 1, signature: "v1,x".into() };
        let url = format!("http://localhost:{port}/in");
        let local = HttpHookTransport::new(Reach::Local).unwrap().post(&url, &signed, "{}").await;
        assert_eq!(local.status, Some(200), "{local:?}");
        let public = HttpHookTransport::new(Reach::Public).unwrap().post(&url, &signed, "{}").await;
        assert_eq!(public.status, None);
        assert!(public.error.unwrap().contains("no public address"));
    }
}
