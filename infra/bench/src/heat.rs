//! Partition heat: which DynamoDB partitions a workload heats, and how close each comes to its limit.
//!
//! The real pipeline runs on the local stack (webhooks, queues, the processor, routing, the
//! notifier, the reply API, the sender, the provider's status callbacks, the ledger), its DynamoDB
//! traffic through a recording proxy in front of DynamoDB Local. For every request the proxy
//! records, by partition key, the capacity units DynamoDB would charge, on the table and on each
//! global secondary index:
//!
//! - reads: the items returned (GetItem, BatchGetItem, TransactGetItems, Query), `ceil(size / 4 KB)`
//!   per item (per page for a Query), half for eventually consistent reads, double in a transaction;
//! - writes: the item before and after the write (the proxy reads both, uncounted, around the
//!   write; writes pass through it one at a time so nothing interleaves), `ceil(max size / 1 KB)` on
//!   the table (double in a transaction), and on each index whose key the item has before or
//!   after: one write where the index entry is updated in place, a delete on the old partition and
//!   a put on the new one where its key moved (every index projects ALL attributes).
//!
//! Partition heat is rate-proportional: a key's units per second at a target rate are its units
//! over the sampled messages × (rate ÷ sampled messages). The report compares the hottest keys
//! with AWS's per-partition limits (1,000 WCU and 3,000 RCU a second).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// Per-partition limits (AWS: a partition serves at most 1,000 WCU and 3,000 RCU a second).
pub const PARTITION_WCU: f64 = 1000.0;
pub const PARTITION_RCU: f64 = 3000.0;

/// Where a partition lives: the table itself, or one of its indexes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition {
    pub index: String,
    pub key: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Units {
    pub read: f64,
    pub write: f64,
}

/// The table's key schema: its partition key attribute and each index's.
#[derive(Clone, Debug)]
pub struct Schema {
    pub pk: String,
    pub sk: String,
    /// (index name, partition key attribute)
    pub indexes: Vec<(String, String)>,
}

#[derive(Default)]
struct Recorded {
    parts: HashMap<Partition, Units>,
    requests: BTreeMap<String, u64>,
}

/// The recording: units by partition, requests by operation.
#[derive(Default)]
pub struct Heat {
    rec: Mutex<Recorded>,
    schema: std::sync::OnceLock<Schema>,
    /// While set, nothing is recorded: traffic that follows time, not messages (the agents'
    /// heartbeats), kept out of figures scaled by the message rate.
    paused: std::sync::atomic::AtomicBool,
}

impl Heat {
    /// The table's keys, once it exists: nothing is recorded before.
    pub fn set_schema(&self, schema: Schema) {
        let _ = self.schema.set(schema);
    }

    pub fn reset(&self) {
        *self.rec.lock().expect("lock") = Recorded::default();
    }

    /// Stops (or resumes) recording.
    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, std::sync::atomic::Ordering::SeqCst);
    }

    fn add(&self, index: &str, key: &str, u: Units) {
        if self.paused.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let mut r = self.rec.lock().expect("lock");
        let e = r.parts.entry(Partition { index: index.to_owned(), key: key.to_owned() }).or_default();
        e.read += u.read;
        e.write += u.write;
    }

    fn request(&self, op: &str) {
        if self.paused.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        *self.rec.lock().expect("lock").requests.entry(op.to_owned()).or_default() += 1;
    }

    pub fn requests(&self) -> u64 {
        self.rec.lock().expect("lock").requests.values().sum()
    }

    pub fn snapshot(&self) -> (HashMap<Partition, Units>, BTreeMap<String, u64>) {
        let r = self.rec.lock().expect("lock");
        (r.parts.clone(), r.requests.clone())
    }
}

/// DynamoDB's size of an item: attribute names plus values (strings by their UTF-8 bytes, numbers
/// by about one byte per two digits plus one, binaries by their bytes, 1 for a boolean or null,
/// 3 plus one per element for lists and maps).
pub fn item_size(item: &Map<String, Value>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &Value) -> usize {
    let Some((t, x)) = v.as_object().and_then(|o| o.iter().next()) else { return 0 };
    match t.as_str() {
        "S" => x.as_str().map_or(0, str::len),
        "N" => x.as_str().map_or(1, |n| n.trim_start_matches('-').len().div_ceil(2) + 1),
        "B" => x.as_str().map_or(0, |b| b.len() * 3 / 4),
        "BOOL" | "NULL" => 1,
        "SS" | "NS" | "BS" => x.as_array().map_or(0, |a| a.iter().map(|s| s.as_str().map_or(0, str::len)).sum()),
        "L" => 3 + x.as_array().map_or(0, |a| a.iter().map(|e| value_size(e) + 1).sum()),
        "M" => 3 + x.as_object().map_or(0, |m| m.iter().map(|(k, e)| k.len() + value_size(e) + 1).sum()),
        _ => 0,
    }
}

fn read_units(bytes: usize, consistent: bool) -> f64 {
    let u = bytes.div_ceil(4096).max(1) as f64;
    if consistent {
        u
    } else {
        u / 2.0
    }
}

fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

fn s_attr<'a>(item: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.get("S")).and_then(Value::as_str)
}

struct Proxy {
    upstream: String,
    http: reqwest::Client,
    heat: Arc<Heat>,
    /// Writes go through one at a time: the images around each are its own.
    writes: tokio::sync::Mutex<()>,
}

/// One item a write names: its table and key, what the write does to it, and the unit multiplier
/// (2 in a transaction).
struct Target {
    table: String,
    key: Map<String, Value>,
    check_only: bool,
    factor: f64,
}

impl Proxy {
    fn schema(&self) -> &Schema {
        self.heat.schema.get().expect("recording starts once the schema is known")
    }

    fn key_of(&self, item: &Map<String, Value>) -> Map<String, Value> {
        item.iter()
            .filter(|(k, _)| **k == self.schema().pk || **k == self.schema().sk)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn targets(&self, op: &str, req: &Value) -> Vec<Target> {
        let obj = |v: &Value| v.as_object().cloned().unwrap_or_default();
        let table = |v: &Value| v["TableName"].as_str().unwrap_or_default().to_owned();
        match op {
            "PutItem" => {
                vec![Target { table: table(req), key: self.key_of(&obj(&req["Item"])), check_only: false, factor: 1.0 }]
            }
            "UpdateItem" | "DeleteItem" => {
                vec![Target { table: table(req), key: obj(&req["Key"]), check_only: false, factor: 1.0 }]
            }
            "TransactWriteItems" => req["TransactItems"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    let (kind, body) = t.as_object()?.iter().next()?;
                    let key = if kind == "Put" { self.key_of(&obj(&body["Item"])) } else { obj(&body["Key"]) };
                    Some(Target { table: table(body), key, check_only: kind == "ConditionCheck", factor: 2.0 })
                })
                .collect(),
            "BatchWriteItem" => req["RequestItems"]
                .as_object()
                .into_iter()
                .flatten()
                .flat_map(|(t, reqs)| {
                    reqs.as_array().into_iter().flatten().map(move |r| {
                        let key = match r.get("PutRequest") {
                            Some(p) => self.key_of(&obj(&p["Item"])),
                            None => obj(&r["DeleteRequest"]["Key"]),
                        };
                        Target { table: t.clone(), key, check_only: false, factor: 1.0 }
                    })
                })
                .collect(),
            _ => vec![],
        }
    }

    /// The item under `key`, read strongly consistently around the recording.
    async fn image(&self, headers: &HeaderMap, t: &Target) -> Option<Map<String, Value>> {
        let body = serde_json::json!({"TableName": t.table, "Key": t.key, "ConsistentRead": true});
        let res = self.send(headers, "DynamoDB_20120810.GetItem", serde_json::to_vec(&body).ok()?).await.ok()?;
        let v: Value = serde_json::from_slice(&res.2).ok()?;
        v["Item"].as_object().cloned()
    }

    async fn send(
        &self,
        headers: &HeaderMap,
        target: &str,
        body: Vec<u8>,
    ) -> reqwest::Result<(StatusCode, HeaderMap, Bytes)> {
        let mut req = self.http.post(format!("{}/", self.upstream)).body(body);
        for (k, v) in headers {
            if k != "host" && k != "content-length" && k != "x-amz-target" {
                req = req.header(k, v);
            }
        }
        let res = req.header("x-amz-target", target).send().await?;
        let (status, headers) = (res.status(), res.headers().clone());
        Ok((status, headers, res.bytes().await?))
    }

    fn record_write(&self, t: &Target, before: Option<&Map<String, Value>>, after: Option<&Map<String, Value>>) {
        let pk = |m: &Map<String, Value>| s_attr(m, &self.schema().pk).map(str::to_owned);
        let key = pk(&t.key).unwrap_or_default();
        let (b, a) = (before.map_or(0, item_size), after.map_or(0, item_size));
        // The table pays for the larger image, a failed condition or a check for the item read.
        self.heat.add("table", &key, Units { read: 0.0, write: write_units(b.max(a)) * t.factor });
        if t.check_only || before == after {
            return;
        }
        for (index, attr) in &self.schema().indexes {
            let old = before.and_then(|m| s_attr(m, attr));
            let new = after.and_then(|m| s_attr(m, attr));
            match (old, new) {
                (Some(o), Some(n)) if o == n => self.heat.add(index, n, Units { read: 0.0, write: write_units(a) }),
                _ => {
                    if let Some(o) = old {
                        self.heat.add(index, o, Units { read: 0.0, write: write_units(b) });
                    }
                    if let Some(n) = new {
                        self.heat.add(index, n, Units { read: 0.0, write: write_units(a) });
                    }
                }
            }
        }
    }

    fn record_read(&self, op: &str, req: &Value, res: &Value) {
        let consistent = req["ConsistentRead"].as_bool().unwrap_or(false);
        let pk_of = |m: &Map<String, Value>| s_attr(m, &self.schema().pk).unwrap_or_default().to_owned();
        match op {
            "GetItem" => {
                let key = req["Key"].as_object().map(pk_of).unwrap_or_default();
                let size = res["Item"].as_object().map_or(0, item_size);
                self.heat.add("table", &key, Units { read: read_units(size, consistent), write: 0.0 });
            }
            "BatchGetItem" => {
                for (table, ask) in req["RequestItems"].as_object().into_iter().flatten() {
                    let consistent = ask["ConsistentRead"].as_bool().unwrap_or(false);
                    let got: Vec<&Map<String, Value>> =
                        res["Responses"][table].as_array().into_iter().flatten().filter_map(Value::as_object).collect();
                    for key in ask["Keys"].as_array().into_iter().flatten().filter_map(Value::as_object) {
                        let item = got.iter().find(|i| self.key_of(i) == *key);
                        let size = item.map_or(0, |i| item_size(i));
                        self.heat.add("table", &pk_of(key), Units { read: read_units(size, consistent), write: 0.0 });
                    }
                }
            }
            "TransactGetItems" => {
                let items = res["Responses"].as_array().cloned().unwrap_or_default();
                for (i, t) in req["TransactItems"].as_array().into_iter().flatten().enumerate() {
                    let key = t["Get"]["Key"].as_object().map(pk_of).unwrap_or_default();
                    let size = items.get(i).and_then(|r| r["Item"].as_object()).map_or(0, item_size);
                    self.heat.add("table", &key, Units { read: 2.0 * read_units(size, true), write: 0.0 });
                }
            }
            "Query" => {
                let index = req["IndexName"].as_str();
                let attr = match index {
                    Some(i) => self.schema().indexes.iter().find(|(n, _)| n == i).map(|(_, a)| a.as_str()),
                    None => Some(self.schema().pk.as_str()),
                };
                let key = attr.and_then(|a| query_partition(req, a)).unwrap_or_else(|| "?".into());
                let size: usize =
                    res["Items"].as_array().into_iter().flatten().filter_map(Value::as_object).map(item_size).sum();
                self.heat.add(index.unwrap_or("table"), &key, Units { read: read_units(size, consistent), write: 0.0 });
            }
            "Scan" => {
                let size: usize =
                    res["Items"].as_array().into_iter().flatten().filter_map(Value::as_object).map(item_size).sum();
                self.heat.add("table", "(scan)", Units { read: read_units(size, consistent), write: 0.0 });
            }
            _ => {}
        }
    }
}

/// The partition a Query's key condition names: the value compared with `=` to `attr` (by name or
/// through `ExpressionAttributeNames`).
fn query_partition(req: &Value, attr: &str) -> Option<String> {
    let cond = req["KeyConditionExpression"].as_str()?;
    let names = req["ExpressionAttributeNames"].as_object();
    for clause in cond.split(" AND ").chain(cond.split(" and ")) {
        let Some((lhs, rhs)) = clause.split_once('=') else { continue };
        let (lhs, rhs) = (lhs.trim().trim_start_matches('('), rhs.trim().trim_end_matches(')'));
        if lhs.ends_with('<') || lhs.ends_with('>') || lhs.ends_with('!') {
            continue;
        }
        let name = match names.and_then(|n| n.get(lhs)).and_then(Value::as_str) {
            Some(n) => n,
            None => lhs,
        };
        if name == attr {
            return req["ExpressionAttributeValues"][rhs]["S"].as_str().map(str::to_owned);
        }
    }
    None
}

const WRITES: [&str; 5] = ["PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"];
const READS: [&str; 5] = ["GetItem", "BatchGetItem", "TransactGetItems", "Query", "Scan"];

async fn forward(State(p): State<Arc<Proxy>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let op = target.rsplit('.').next().unwrap_or("").to_owned();
    let req: Value = serde_json::from_slice(&body).unwrap_or_default();
    let recording = p.heat.schema.get().is_some();
    let is_write = recording && WRITES.contains(&op.as_str());
    let _one_at_a_time = if is_write { Some(p.writes.lock().await) } else { None };
    let targets = if is_write { p.targets(&op, &req) } else { vec![] };
    let mut before = Vec::with_capacity(targets.len());
    for t in &targets {
        before.push(p.image(&headers, t).await);
    }
    let url = format!("{}{}", p.upstream, uri.path_and_query().map(|x| x.as_str()).unwrap_or("/"));
    let mut fwd = p.http.request(method, url).body(body.to_vec());
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            fwd = fwd.header(k, v);
        }
    }
    let res = match fwd.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = res.status();
    let res_headers = res.headers().clone();
    let bytes = res.bytes().await.unwrap_or_default();
    if recording && !op.is_empty() {
        p.heat.request(&op);
    }
    for (t, b) in targets.iter().zip(&before) {
        let after = p.image(&headers, t).await;
        p.record_write(t, b.as_ref(), after.as_ref());
    }
    if recording && READS.contains(&op.as_str()) && status.is_success() {
        let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        p.record_read(&op, &req, &v);
    }
    let mut out = Response::new(axum::body::Body::from(bytes));
    *out.status_mut() = status;
    for (k, v) in &res_headers {
        if k != "content-length" && k != "transfer-encoding" {
            out.headers_mut().insert(k, v.clone());
        }
    }
    out
}

/// Starts the recording proxy on `addr`, in front of DynamoDB at `upstream`.
pub async fn start(addr: SocketAddr, upstream: String, heat: Arc<Heat>) -> std::io::Result<()> {
    let p = Arc::new(Proxy { upstream, http: reqwest::Client::new(), heat, writes: Default::default() });
    let app = axum::Router::new().fallback(forward).with_state(p);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}

/// The table's schema, from DynamoDB itself.
pub async fn schema(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<Schema> {
    use aws_sdk_dynamodb::types::KeyType;
    let t = client.describe_table().table_name(table).send().await?.table.context("no table")?;
    let hash = |ks: &[aws_sdk_dynamodb::types::KeySchemaElement], kind: KeyType| {
        ks.iter().find(|k| k.key_type == kind).map(|k| k.attribute_name.clone()).unwrap_or_default()
    };
    Ok(Schema {
        pk: hash(t.key_schema(), KeyType::Hash),
        sk: hash(t.key_schema(), KeyType::Range),
        indexes: t
            .global_secondary_indexes()
            .iter()
            .map(|g| (g.index_name().unwrap_or_default().to_owned(), hash(g.key_schema(), KeyType::Hash)))
            .collect(),
    })
}

/// Waits until no DynamoDB request has passed the proxy for `quiet`.
pub async fn settle(heat: &Heat, quiet: Duration, limit: Duration) -> Result<()> {
    let start = Instant::now();
    let mut last = (heat.requests(), Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = heat.requests();
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= quiet {
            return Ok(());
        }
        anyhow::ensure!(start.elapsed() < limit, "the pipeline did not settle within {limit:?}");
    }
}

/// A key's shape: workspace names, our own numbers, ids, customers' numbers and dates replaced by
/// placeholders, so the keys of one design element group together.
pub fn shape(key: &str, workspaces: &[String], ours: &[String]) -> String {
    key.split('#')
        .map(|seg| {
            let ulid = |x: &str| x.len() == 26 && x.bytes().all(|b| b.is_ascii_alphanumeric());
            // An analytics fact's id: `<kind>:<ulid>`.
            let is_ulid = ulid(seg) || seg.split_once(':').is_some_and(|(_, id)| ulid(id));
            let digits = seg.bytes().filter(u8::is_ascii_digit).count();
            if workspaces.iter().any(|w| w == seg) {
                "<ws>".to_owned()
            } else if ours.iter().any(|o| o == seg) {
                "<our number>".to_owned()
            } else if is_ulid {
                "<id>".to_owned()
            } else if seg.len() == 10 && seg.as_bytes()[4] == b'-' && digits == 8 {
                "<day>".to_owned()
            } else if seg.len() == 7 && seg.as_bytes().get(4) == Some(&b'-') && digits == 6 {
                "<month>".to_owned()
            } else if digits >= 6 {
                "<n>".to_owned()
            } else if !seg.is_empty() && seg.len() <= 3 && digits == seg.len() {
                "<shard>".to_owned()
            } else if seg.len() == 16 && seg.ends_with('=') {
                // API Gateway's connection ids.
                "<connection>".to_owned()
            } else if seg.starts_with("agent-") {
                "<agent>".to_owned()
            } else {
                seg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("#")
}

/// Whether a key shape belongs to one customer or conversation (an id or a customer's number in
/// it): such a key's traffic follows that customer's pace, not the workspace's rate.
pub fn per_customer(shape: &str) -> bool {
    shape.contains("<id>") || shape.contains("<n>")
}

/// The pace of one customer's conversation in a storm: at most one inbound message a second
/// (someone typing as fast as they can), with its share of replies and deliveries.
pub const CUSTOMER_MESSAGES_PER_SECOND: f64 = 1.0;

/// The recording as the design before sharding would have taken it: each shard folded into the
/// one partition that design wrote (the items written are the same; only their partition differs).
pub fn folded(parts: &HashMap<Partition, Units>) -> HashMap<Partition, Units> {
    let mut out: HashMap<Partition, Units> = HashMap::new();
    for (p, u) in parts {
        let key = store::keys::legacy::partition(&p.key).unwrap_or_else(|| p.key.clone());
        let e = out.entry(Partition { index: p.index.clone(), key }).or_default();
        e.read += u.read;
        e.write += u.write;
    }
    out
}

/// What the report says about one run.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    pub title: &'a str,
    /// Inbound messages sampled (replies and deliveries ride along in the mix).
    pub messages: usize,
    /// Inbound messages each customer wrote in the sample.
    pub per_customer: usize,
    /// The rate the sample stands for, messages a second.
    pub rate: f64,
    pub workspaces: &'a [String],
    pub ours: &'a [String],
    pub top: usize,
}

/// One partition's load at the target rate.
pub struct Load {
    pub shape: String,
    pub index: String,
    pub wcu: f64,
    pub rcu: f64,
}

impl Load {
    /// The larger share of the partition's write or read limit.
    pub fn heat(&self) -> f64 {
        (self.wcu / PARTITION_WCU).max(self.rcu / PARTITION_RCU)
    }
}

/// Each partition's units a second at the target rate: workspace-wide keys (and agents' keys, the
/// agents being as many as at the target) scale with the rate; a customer's keys with the
/// customer's own pace.
pub fn loads(run: &Run<'_>, parts: &HashMap<Partition, Units>) -> Vec<Load> {
    let workspace_scale = run.rate / run.messages as f64;
    let customer_scale = CUSTOMER_MESSAGES_PER_SECOND / run.per_customer.max(1) as f64;
    let mut out: Vec<Load> = parts
        .iter()
        .map(|(p, u)| {
            let shape = shape(&p.key, run.workspaces, run.ours);
            let scale = if per_customer(&shape) { customer_scale } else { workspace_scale };
            Load { shape, index: p.index.clone(), wcu: u.write * scale, rcu: u.read * scale }
        })
        .collect();
    out.sort_by(|a, b| b.heat().partial_cmp(&a.heat()).unwrap_or(std::cmp::Ordering::Equal));
    out
}

/// The keys of one shape: how many, their mean load and the hottest one's.
struct ShapeLoad {
    index: String,
    shape: String,
    keys: usize,
    mean: Load,
    hottest: Load,
}

fn by_shape(loads: Vec<Load>) -> Vec<ShapeLoad> {
    let mut out: Vec<ShapeLoad> = vec![];
    for l in loads {
        match out.iter_mut().find(|g| g.index == l.index && g.shape == l.shape) {
            Some(g) => {
                g.keys += 1;
                g.mean.wcu += l.wcu;
                g.mean.rcu += l.rcu;
                if l.heat() > g.hottest.heat() {
                    g.hottest = l;
                }
            }
            None => out.push(ShapeLoad {
                index: l.index.clone(),
                shape: l.shape.clone(),
                keys: 1,
                mean: Load { shape: l.shape.clone(), index: l.index.clone(), wcu: l.wcu, rcu: l.rcu },
                hottest: l,
            }),
        }
    }
    for g in &mut out {
        g.mean.wcu /= g.keys as f64;
        g.mean.rcu /= g.keys as f64;
    }
    out.sort_by(|a, b| b.mean.heat().partial_cmp(&a.mean.heat()).unwrap_or(std::cmp::Ordering::Equal));
    out
}

/// The report of one run: units per message, and for each key shape its keys' mean load and the
/// sample's hottest key against the partition limits. The keys of a shape are alike by design
/// (shards picked uniformly, workspaces at the same rate, agents with the same share), so the mean
/// is the design's steady load; the hottest key adds the sample's noise (in the many-workspace run,
/// ten messages a workspace).
pub fn report(run: &Run<'_>, parts: &HashMap<Partition, Units>, requests: &BTreeMap<String, u64>) -> String {
    let n = run.messages as f64;
    let (mut tr, mut tw, mut ir, mut iw) = (0.0, 0.0, 0.0, 0.0);
    for (p, u) in parts {
        if p.index == "table" {
            tr += u.read;
            tw += u.write;
        } else {
            ir += u.read;
            iw += u.write;
        }
    }
    let reqs: u64 = requests.values().sum();
    let shapes = by_shape(loads(run, parts));
    let mut s = format!(
        "#### {}\n\n{} inbound messages sampled, standing for {:.0} msg/s. Per inbound message (with its share of \
         replies and deliveries): {:.2} DynamoDB requests, table {:.2} RCU + {:.2} WCU, indexes {:.2} RCU + {:.2} WCU.\n\n",
        run.title,
        run.messages,
        run.rate,
        reqs as f64 / n,
        tr / n,
        tw / n,
        ir / n,
        iw / n
    );
    let worst_mean = shapes.first().map_or(0.0, |g| g.mean.heat());
    let worst_key = shapes.iter().map(|g| g.hottest.heat()).fold(0.0, f64::max);
    s += &format!(
        "Hottest shape: **{:.0} %** of a partition's limit on average over its keys (the sample's hottest single key: \
         {:.0} %).\n\n| # | table / index | partition key (shape) | keys | WCU/s a key: mean / hottest | % of 1,000 | \
         RCU/s a key: mean / hottest | % of 3,000 |\n|---:|---|---|---:|---:|---:|---:|---:|\n",
        100.0 * worst_mean,
        100.0 * worst_key
    );
    for (i, g) in shapes.iter().take(run.top).enumerate() {
        s += &format!(
            "| {} | {} | `{}` | {} | {:.0} / {:.0} | {:.1} / {:.1} | {:.0} / {:.0} | {:.1} / {:.1} |\n",
            i + 1,
            g.index,
            g.shape,
            g.keys,
            g.mean.wcu,
            g.hottest.wcu,
            100.0 * g.mean.wcu / PARTITION_WCU,
            100.0 * g.hottest.wcu / PARTITION_WCU,
            g.mean.rcu,
            g.hottest.rcu,
            100.0 * g.mean.rcu / PARTITION_RCU,
            100.0 * g.hottest.rcu / PARTITION_RCU
        );
    }
    s += &format!(
        "\nWorkspace-wide keys (and agents' keys) scale with the rate; a customer's keys (an id or a customer's number in \
         the shape) with one customer writing {CUSTOMER_MESSAGES_PER_SECOND} message a second.\n\n"
    );
    s
}
