//! A counting proxy in front of DynamoDB Local and moto. Every AWS request the pipeline makes passes
//! through it and is counted by operation; DynamoDB requests are asked for their consumed capacity
//! (`ReturnConsumedCapacity: TOTAL`, added here so product code stays untouched) and the units
//! DynamoDB Local reports are summed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct OpStats {
    pub requests: u64,
    pub read_units: f64,
    pub write_units: f64,
}

#[derive(Default)]
pub struct Counters {
    ops: Mutex<BTreeMap<String, OpStats>>,
}

impl Counters {
    pub fn snapshot(&self) -> BTreeMap<String, OpStats> {
        self.ops.lock().expect("lock").clone()
    }
    pub fn reset(&self) {
        self.ops.lock().expect("lock").clear();
    }
    fn record(&self, op: &str, read: f64, write: f64) {
        let mut ops = self.ops.lock().expect("lock");
        let s = ops.entry(op.to_owned()).or_default();
        s.requests += 1;
        s.read_units += read;
        s.write_units += write;
    }
}

struct Proxy {
    service: &'static str,
    upstream: String,
    http: reqwest::Client,
    counters: Arc<Counters>,
}

const CAPACITY_OPS: [&str; 10] = [
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "TransactWriteItems",
    "TransactGetItems",
    "BatchGetItem",
    "BatchWriteItem",
];

/// Capacity units of one response, split into reads and writes by the operation: DynamoDB Local
/// reports only `CapacityUnits`, not the read/write split AWS gives.
fn units(op: &str, v: &serde_json::Value) -> (f64, f64) {
    let total = match &v["ConsumedCapacity"] {
        serde_json::Value::Array(a) => a.iter().map(|c| c["CapacityUnits"].as_f64().unwrap_or(0.0)).sum(),
        c @ serde_json::Value::Object(_) => c["CapacityUnits"].as_f64().unwrap_or(0.0),
        _ => 0.0,
    };
    match op {
        "GetItem" | "Query" | "Scan" | "TransactGetItems" | "BatchGetItem" => (total, 0.0),
        _ => (0.0, total),
    }
}

async fn forward(State(p): State<Arc<Proxy>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut op = target.rsplit('.').next().unwrap_or("").to_owned();
    if op.is_empty() {
        // Query protocol: Action=... in the form body.
        op = String::from_utf8_lossy(&body)
            .split('&')
            .find_map(|kv| kv.strip_prefix("Action=").map(str::to_owned))
            .unwrap_or_else(|| "unknown".into());
    }
    let is_capacity_op = p.service == "dynamodb" && CAPACITY_OPS.contains(&op.as_str());
    let mut body = body.to_vec();
    if is_capacity_op {
        if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&body) {
            v["ReturnConsumedCapacity"] = "TOTAL".into();
            body = serde_json::to_vec(&v).unwrap_or(body);
        }
    }
    let url = format!("{}{}", p.upstream, uri.path_and_query().map(|x| x.as_str()).unwrap_or("/"));
    let mut req = p.http.request(method, url).body(body);
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    let res = match req.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = res.status();
    let res_headers = res.headers().clone();
    let bytes = res.bytes().await.unwrap_or_default();
    let (read, write) = if is_capacity_op {
        serde_json::from_slice::<serde_json::Value>(&bytes).map(|v| units(&op, &v)).unwrap_or((0.0, 0.0))
    } else {
        (0.0, 0.0)
    };
    p.counters.record(&format!("{}:{op}", p.service), read, write);
    let mut out = Response::new(axum::body::Body::from(bytes));
    *out.status_mut() = status;
    for (k, v) in &res_headers {
        if k != "content-length" && k != "transfer-encoding" {
            out.headers_mut().insert(k, v.clone());
        }
    }
    out
}

/// Starts a proxy for one service on `addr`, forwarding to `upstream`.
pub async fn start(
    service: &'static str,
    addr: SocketAddr,
    upstream: String,
    counters: Arc<Counters>,
) -> std::io::Result<()> {
    let p = Arc::new(Proxy { service, upstream, http: reqwest::Client::new(), counters });
    let app = axum::Router::new().fallback(forward).with_state(p);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}
