//! Reads template.yaml, the single definition of Switchboard's resources, into what the local stack
//! needs: the table, the queues (with their dead-letter wiring), the HTTP routes and the SQS event
//! source mappings. Intrinsics are resolved the way CloudFormation would for a given stack name.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_yaml::Value;

#[derive(Debug, Clone)]
pub struct Template {
    resources: serde_yaml::Mapping,
    parameters: serde_yaml::Mapping,
}

/// The HTTP API's CORS configuration, with parameters at their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cors {
    pub allow_origins: Vec<String>,
    pub allow_headers: Vec<String>,
    pub allow_methods: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableDef {
    pub logical_id: String,
    pub name: String,
    pub properties: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueDef {
    pub logical_id: String,
    pub name: String,
    /// Attributes for CreateQueue, with RedrivePolicy still naming its target by logical id.
    pub attributes: BTreeMap<String, String>,
    pub dead_letter_target: Option<(String, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    pub method: String,
    pub path: String,
    pub binary: String,
    /// The HTTP API's JWT authorizer guarding it (the API's default unless the event says
    /// `Auth: { Authorizer: NONE }`).
    pub authorizer: Option<String>,
}

/// A route of a WebSocket API (`$connect`, `$disconnect`, `$default` or an action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsRoute {
    /// The WebSocket API it belongs to (its logical id).
    pub api: String,
    pub route_key: String,
    pub binary: String,
    /// A route response is configured: the function's answer goes back to the client.
    pub two_way: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsMapping {
    pub queue_logical_id: String,
    pub binary: String,
    pub batch_size: i32,
    pub report_batch_item_failures: bool,
    /// `ScalingConfig.MaximumConcurrency`: the most concurrent invocations Lambda runs for it.
    pub maximum_concurrency: Option<usize>,
    /// `MaximumBatchingWindowInSeconds`: how long Lambda gathers a batch of more than ten.
    pub batching_window_secs: u64,
}

/// A Step Functions state machine, its definition resolved for a stack.
#[derive(Debug, Clone, PartialEq)]
pub struct StateMachineDef {
    pub logical_id: String,
    pub name: String,
    /// The definition as JSON, `DefinitionSubstitutions` applied (function ARNs are local ones).
    pub definition: String,
    /// The functions its tasks invoke (binaries).
    pub invokes: Vec<String>,
}

/// An SES receipt rule: raw messages stored under `prefix` in a bucket, then a function invoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRuleDef {
    pub bucket_logical_id: String,
    pub prefix: String,
    pub binary: String,
}

/// The ARN a function has on the local stack: its name is `<stack>--<binary>`, so the Lambda
/// endpoint (shared by every stack of a run) knows which gateway serves it.
pub fn local_function_arn(stack: &str, binary: &str) -> String {
    format!("arn:aws:lambda:us-east-1:000000000000:function:{stack}--{binary}")
}

fn tagged<'a>(v: &'a Value, tag: &str) -> Option<&'a Value> {
    match v {
        Value::Tagged(t) if t.tag == tag => Some(&t.value),
        _ => None,
    }
}

/// Resolves `!Sub "${AWS::StackName}-x"` (and plain strings) for a stack.
fn resolve_string(v: &Value, stack: &str) -> Result<String> {
    // Tags first: serde_yaml's `as_str` looks through them.
    match v {
        Value::Tagged(_) => match tagged(v, "!Sub") {
            Some(Value::String(s)) => Ok(s
                .replace("${AWS::StackName}", stack)
                .replace("${AWS::Region}", "us-east-1")
                .replace("${AWS::AccountId}", "000000000000")),
            _ => bail!("cannot resolve {v:?} locally"),
        },
        Value::String(s) => Ok(s.clone()),
        _ => bail!("cannot resolve {v:?} locally"),
    }
}

fn getatt_target(v: &Value) -> Option<String> {
    match tagged(v, "!GetAtt")? {
        Value::String(s) => s.split_once('.').map(|(id, _)| id.to_owned()),
        Value::Sequence(seq) => seq.first().and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(_) => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

impl Template {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self> {
        let doc: Value = serde_yaml::from_str(text).context("template.yaml is not valid YAML")?;
        let resources = doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .cloned()
            .ok_or_else(|| anyhow!("template.yaml has no Resources"))?;
        let parameters = doc.get("Parameters").and_then(Value::as_mapping).cloned().unwrap_or_default();
        Ok(Self { resources, parameters })
    }

    /// A list the way the template gives it: literal, or `!Ref` a parameter (its default, split on
    /// commas for a `CommaDelimitedList`).
    fn list(&self, v: Option<&Value>) -> Vec<String> {
        let Some(v) = v else { return vec![] };
        if let Some(name) = tagged(v, "!Ref").and_then(Value::as_str) {
            let default = self.parameters.get(name).and_then(|p| p.get("Default")).and_then(Value::as_str);
            return default.map(|d| d.split(',').map(|s| s.trim().to_owned()).collect()).unwrap_or_default();
        }
        v.as_sequence()
            .map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// The HTTP API's `CorsConfiguration`, if it has one.
    pub fn cors(&self) -> Option<Cors> {
        let api = self.of_type("AWS::Serverless::HttpApi").next()?.1;
        let c = api.get("Properties")?.get("CorsConfiguration")?;
        Some(Cors {
            allow_origins: self.list(c.get("AllowOrigins")),
            allow_headers: self.list(c.get("AllowHeaders")),
            allow_methods: self.list(c.get("AllowMethods")),
            expose_headers: self.list(c.get("ExposeHeaders")),
            max_age: c.get("MaxAge").and_then(Value::as_u64),
        })
    }

    fn of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = (String, &'a Value)> + 'a {
        self.resources
            .iter()
            .filter(move |(_, v)| v.get("Type").and_then(Value::as_str) == Some(ty))
            .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), v))
    }

    pub fn table(&self, stack: &str) -> Result<TableDef> {
        let mut tables = self.of_type("AWS::DynamoDB::Table");
        let (logical_id, res) = tables.next().ok_or_else(|| anyhow!("template.yaml defines no DynamoDB table"))?;
        if tables.next().is_some() {
            bail!("single-table design: template.yaml must define exactly one table");
        }
        let properties = res.get("Properties").cloned().unwrap_or(Value::Null);
        let name =
            resolve_string(properties.get("TableName").ok_or_else(|| anyhow!("table has no TableName"))?, stack)?;
        Ok(TableDef { logical_id, name, properties })
    }

    /// Queues, dead-letter queues first so their ARNs exist when a redrive policy names them.
    pub fn queues(&self, stack: &str) -> Result<Vec<QueueDef>> {
        let mut out = vec![];
        for (logical_id, res) in self.of_type("AWS::SQS::Queue") {
            let props = res.get("Properties").and_then(Value::as_mapping).cloned().unwrap_or_default();
            let mut name = None;
            let mut attributes = BTreeMap::new();
            let mut dead_letter_target = None;
            for (k, v) in &props {
                let key = k.as_str().unwrap_or_default();
                match key {
                    "QueueName" => name = Some(resolve_string(v, stack)?),
                    "RedrivePolicy" => {
                        let target = v.get("deadLetterTargetArn").and_then(getatt_target).ok_or_else(|| {
                            anyhow!("{logical_id}: RedrivePolicy needs deadLetterTargetArn: !GetAtt X.Arn")
                        })?;
                        let max = v.get("maxReceiveCount").and_then(Value::as_u64).unwrap_or(5) as u32;
                        dead_letter_target = Some((target, max));
                    }
                    // Server-side encryption is not emulated locally.
                    "SqsManagedSseEnabled" | "KmsMasterKeyId" | "KmsDataKeyReusePeriodSeconds" | "Tags" => {}
                    _ => {
                        let s = scalar_string(v).ok_or_else(|| anyhow!("{logical_id}.{key}: unsupported value"))?;
                        attributes.insert(key.to_owned(), s);
                    }
                }
            }
            let name = name.ok_or_else(|| anyhow!("{logical_id} has no QueueName"))?;
            out.push(QueueDef { logical_id, name, attributes, dead_letter_target });
        }
        out.sort_by_key(|q| q.dead_letter_target.is_some());
        Ok(out)
    }

    fn functions(&self) -> impl Iterator<Item = (String, &Value, String)> + '_ {
        self.of_type("AWS::Serverless::Function").filter_map(|(id, res)| {
            let binary = res.get("Metadata")?.get("BuildProperties")?.get("Binary")?.as_str()?.to_owned();
            Some((id, res, binary))
        })
    }

    /// The binary of the function with this logical id.
    fn binary_of(&self, logical_id: &str) -> Option<String> {
        self.functions().find(|(id, _, _)| id == logical_id).map(|(_, _, b)| b)
    }

    fn events<'a>(res: &'a Value, ty: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        res.get("Properties")
            .and_then(|p| p.get("Events"))
            .and_then(Value::as_mapping)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(move |e| e.get("Type").and_then(Value::as_str) == Some(ty))
            .filter_map(|e| e.get("Properties"))
    }

    pub fn http_routes(&self) -> Vec<HttpRoute> {
        let mut out = vec![];
        let default_authorizer = self
            .resources
            .values()
            .find(|r| r.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::HttpApi"))
            .and_then(|api| api.get("Properties")?.get("Auth")?.get("DefaultAuthorizer")?.as_str())
            .map(str::to_owned);
        for (_, res, binary) in self.functions() {
            for p in Self::events(res, "HttpApi") {
                if let (Some(method), Some(path)) =
                    (p.get("Method").and_then(Value::as_str), p.get("Path").and_then(Value::as_str))
                {
                    let authorizer = match p.get("Auth").and_then(|a| a.get("Authorizer")).and_then(Value::as_str) {
                        Some("NONE") => None,
                        Some(name) => Some(name.to_owned()),
                        None => default_authorizer.clone(),
                    };
                    out.push(HttpRoute {
                        method: method.to_uppercase(),
                        path: path.to_owned(),
                        binary: binary.clone(),
                        authorizer,
                    });
                }
            }
        }
        out
    }

    pub fn sqs_mappings(&self) -> Result<Vec<SqsMapping>> {
        let mut out = vec![];
        for (id, res, binary) in self.functions() {
            for p in Self::events(res, "SQS") {
                let queue = p
                    .get("Queue")
                    .and_then(getatt_target)
                    .ok_or_else(|| anyhow!("{id}: SQS event needs Queue: !GetAtt X.Arn"))?;
                let report = p
                    .get("FunctionResponseTypes")
                    .and_then(Value::as_sequence)
                    .is_some_and(|s| s.iter().any(|t| t.as_str() == Some("ReportBatchItemFailures")));
                let batch_size = p.get("BatchSize").and_then(Value::as_i64).unwrap_or(10) as i32;
                let maximum_concurrency = p
                    .get("ScalingConfig")
                    .and_then(|c| c.get("MaximumConcurrency"))
                    .and_then(Value::as_u64)
                    .map(|n| n as usize);
                let batching_window_secs = p.get("MaximumBatchingWindowInSeconds").and_then(Value::as_u64).unwrap_or(0);
                out.push(SqsMapping {
                    queue_logical_id: queue,
                    binary: binary.clone(),
                    batch_size,
                    report_batch_item_failures: report,
                    maximum_concurrency,
                    batching_window_secs,
                });
            }
        }
        Ok(out)
    }

    /// The WebSocket API's routes: Route → `integrations/${Integration}` → the integration's
    /// `${SomeFunction.Arn}` → that function's binary.
    pub fn ws_routes(&self) -> Result<Vec<WsRoute>> {
        let binaries: BTreeMap<String, String> = self.functions().map(|(id, _, b)| (id, b)).collect();
        let sub_ref = |v: &Value, open: &str| -> Option<String> {
            let s = tagged(v, "!Sub")?.as_str()?;
            let start = s.find(open)? + open.len();
            let rest = &s[start..];
            Some(rest[..rest.find(['}', '.'])?].to_owned())
        };
        let mut out = vec![];
        for (id, res) in self.of_type("AWS::ApiGatewayV2::Route") {
            let props = res.get("Properties").ok_or_else(|| anyhow!("{id} has no Properties"))?;
            let route_key =
                props.get("RouteKey").and_then(Value::as_str).ok_or_else(|| anyhow!("{id}: no RouteKey"))?;
            let integration = props
                .get("Target")
                .and_then(|t| sub_ref(t, "integrations/${"))
                .ok_or_else(|| anyhow!("{id}: Target must be !Sub \"integrations/${{Integration}}\""))?;
            let uri = self
                .resources
                .get(integration.as_str())
                .and_then(|r| r.get("Properties"))
                .and_then(|p| p.get("IntegrationUri"))
                .ok_or_else(|| anyhow!("{id}: integration {integration} has no IntegrationUri"))?;
            let function = sub_ref(uri, "/functions/${")
                .ok_or_else(|| anyhow!("{integration}: IntegrationUri names no function"))?;
            let binary = binaries
                .get(&function)
                .cloned()
                .ok_or_else(|| anyhow!("{integration}: {function} is not a function"))?;
            let two_way = props.get("RouteResponseSelectionExpression").is_some();
            let api = props
                .get("ApiId")
                .and_then(|v| tagged(v, "!Ref"))
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("{id}: ApiId must be !Ref <WebSocket API>"))?;
            out.push(WsRoute { api: api.to_owned(), route_key: route_key.to_owned(), binary, two_way });
        }
        Ok(out)
    }

    /// State machines with their definitions resolved for `stack` (name `<stack>-<logical id>`).
    pub fn state_machines(&self, stack: &str) -> Result<Vec<StateMachineDef>> {
        let mut out = vec![];
        for (logical_id, res) in self.of_type("AWS::Serverless::StateMachine") {
            let props = res.get("Properties").ok_or_else(|| anyhow!("{logical_id} has no Properties"))?;
            let definition =
                props.get("Definition").ok_or_else(|| anyhow!("{logical_id}: inline Definition expected"))?;
            let mut json = serde_json::to_string(definition).with_context(|| format!("{logical_id}: Definition"))?;
            let mut invokes = vec![];
            for (k, v) in props.get("DefinitionSubstitutions").and_then(Value::as_mapping).into_iter().flatten() {
                let key = k.as_str().unwrap_or_default();
                let target = getatt_target(v)
                    .ok_or_else(|| anyhow!("{logical_id}.{key}: only !GetAtt Function.Arn is resolved locally"))?;
                let binary =
                    self.binary_of(&target).ok_or_else(|| anyhow!("{logical_id}.{key}: {target} is not a function"))?;
                json = json.replace(&format!("${{{key}}}"), &local_function_arn(stack, &binary));
                invokes.push(binary);
            }
            out.push(StateMachineDef { name: format!("{stack}-{logical_id}"), logical_id, definition: json, invokes });
        }
        Ok(out)
    }

    /// The S3 buckets: (logical id, the bucket's local name, lower case as S3 wants).
    pub fn buckets(&self, stack: &str) -> Vec<(String, String)> {
        self.of_type("AWS::S3::Bucket").map(|(id, _)| (id.clone(), format!("{stack}-{id}").to_lowercase())).collect()
    }

    /// SES receipt rules whose actions store the message in S3 and invoke a function.
    pub fn receipt_rules(&self) -> Result<Vec<ReceiptRuleDef>> {
        let mut out = vec![];
        for (id, res) in self.of_type("AWS::SES::ReceiptRule") {
            let actions = res
                .get("Properties")
                .and_then(|p| p.get("Rule"))
                .and_then(|r| r.get("Actions"))
                .and_then(Value::as_sequence)
                .ok_or_else(|| anyhow!("{id}: no Rule.Actions"))?;
            let s3 = actions.iter().find_map(|a| a.get("S3Action")).ok_or_else(|| anyhow!("{id}: no S3Action"))?;
            let bucket = s3
                .get("BucketName")
                .and_then(|b| tagged(b, "!Ref"))
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("{id}: S3Action.BucketName must be !Ref Bucket"))?;
            let prefix = s3.get("ObjectKeyPrefix").and_then(Value::as_str).unwrap_or_default();
            let target = actions
                .iter()
                .find_map(|a| a.get("LambdaAction"))
                .and_then(|l| l.get("FunctionArn"))
                .and_then(getatt_target)
                .ok_or_else(|| anyhow!("{id}: LambdaAction.FunctionArn must be !GetAtt Function.Arn"))?;
            let binary = self.binary_of(&target).ok_or_else(|| anyhow!("{id}: {target} is not a function"))?;
            out.push(ReceiptRuleDef { bucket_logical_id: bucket.to_owned(), prefix: prefix.to_owned(), binary });
        }
        Ok(out)
    }

    /// Functions EventBridge Scheduler invokes (`ScheduleV2` events): nothing fires them on the
    /// local stack; they are invocable (`switchboard-local` and the tests invoke them).
    pub fn scheduled_functions(&self) -> Vec<String> {
        self.functions()
            .filter(|(_, res, _)| Self::events(res, "ScheduleV2").next().is_some())
            .map(|(_, _, b)| b)
            .collect()
    }

    /// Functions an operator invokes by hand (`sam remote invoke`; `Metadata: {Invocation: manual}`),
    /// as `switchboard-local` and the tests do on the local stack.
    pub fn manual_functions(&self) -> Vec<String> {
        self.functions()
            .filter(|(_, res, _)| {
                res.get("Metadata").and_then(|m| m.get("Invocation")).and_then(Value::as_str) == Some("manual")
            })
            .map(|(_, _, b)| b)
            .collect()
    }

    /// Functions subscribed to an SNS topic (invoked directly on the local stack).
    pub fn sns_functions(&self) -> Vec<String> {
        self.functions().filter(|(_, res, _)| Self::events(res, "SNS").next().is_some()).map(|(_, _, b)| b).collect()
    }

    /// Environment variables that name a bucket (`!Ref MailBucket`).
    pub fn bucket_env(&self, binary: &str) -> Vec<(String, String)> {
        self.ref_env(binary, "AWS::S3::Bucket")
    }

    /// Environment variables a function's template gives it that name a state machine
    /// (`!Ref SomeStateMachine`, its ARN).
    pub fn state_machine_env(&self, binary: &str) -> Vec<(String, String)> {
        self.ref_env(binary, "AWS::Serverless::StateMachine")
    }

    /// Environment variables a function's template gives it that name a queue (`!Ref SomeQueue`).
    pub fn queue_env(&self, binary: &str) -> Vec<(String, String)> {
        self.ref_env(binary, "AWS::SQS::Queue")
    }

    /// A function's environment variables that `!Ref` a resource of type `ty`, directly or as the
    /// true branch of an `!If` (conditions hold on the local stack, which runs every channel):
    /// (variable, logical id).
    fn ref_env(&self, binary: &str, ty: &str) -> Vec<(String, String)> {
        let mut out = vec![];
        for (_, res, b) in self.functions() {
            if b != binary {
                continue;
            }
            let vars = res.get("Properties").and_then(|p| p.get("Environment")).and_then(|e| e.get("Variables"));
            for (k, v) in vars.and_then(Value::as_mapping).into_iter().flatten() {
                let target = match tagged(v, "!If") {
                    Some(Value::Sequence(branches)) => branches.get(1).and_then(|t| tagged(t, "!Ref")),
                    _ => tagged(v, "!Ref"),
                };
                if let (Some(k), Some(Value::String(target))) = (k.as_str(), target) {
                    if self.of_type(ty).any(|(id, _)| id == *target) {
                        out.push((k.to_owned(), target.clone()));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Template {
        Template::parse(include_str!("../../../template.yaml")).unwrap()
    }

    #[test]
    fn the_real_template_yields_one_table_and_fifo_queues_with_dlqs() {
        let t = template();
        let table = t.table("sb").unwrap();
        assert_eq!(table.name, "sb-switchboard");
        let queues = t.queues("sb").unwrap();
        assert_eq!(queues.len(), 11);
        let inbound = queues.iter().find(|q| q.logical_id == "InboundQueue").unwrap();
        assert_eq!(inbound.name, "sb-inbound.fifo");
        assert_eq!(inbound.attributes["FifoQueue"], "true");
        assert_eq!(inbound.dead_letter_target, Some(("InboundDeadLetterQueue".into(), 5)));
        // Dead-letter queues come first.
        let first_redriven = queues.iter().position(|q| q.dead_letter_target.is_some()).unwrap();
        assert!(queues[..first_redriven].iter().all(|q| q.logical_id.contains("DeadLetter")));
    }

    #[test]
    fn routes_and_mappings_come_from_the_function_events() {
        let t = template();
        let routes = t.http_routes();
        assert!(routes.contains(&HttpRoute {
            method: "POST".into(),
            path: "/webhooks/twilio/sms".into(),
            binary: "twilio-sms-webhook".into(),
            authorizer: None,
        }));
        assert!(routes.iter().any(|r| r.path == "/conversations/{id}/messages" && r.method == "POST"));
        let maps = t.sqs_mappings().unwrap();
        let inbound = maps.iter().find(|m| m.binary == "inbound-processor").unwrap();
        assert_eq!(inbound.queue_logical_id, "InboundQueue");
        assert!(inbound.report_batch_item_failures);
        assert!(t.queue_env("api-send-message").contains(&("OUTBOUND_QUEUE_URL".into(), "OutboundQueue".into())));
        assert!(maps.iter().any(|m| m.binary == "notifier" && m.queue_logical_id == "NotificationQueue"));
    }

    #[test]
    fn every_agent_route_is_behind_the_jwt_authorizer_and_only_public_routes_are_not() {
        let routes = template().http_routes();
        let public = ["/webhooks/", "/webchat/", "/csat/", "/openapi.json"];
        for r in &routes {
            let is_public = public.iter().any(|p| r.path.starts_with(p));
            assert_eq!(r.authorizer.is_none(), is_public, "{} {} ({})", r.method, r.path, r.binary);
            assert_eq!(r.binary.starts_with("api-"), !is_public, "{} is named as what it is", r.binary);
        }
        assert!(routes.iter().any(|r| r.authorizer.as_deref() == Some("OidcAuthorizer")));
    }

    #[test]
    fn cors_comes_from_the_http_api_with_parameter_defaults() {
        let cors = template().cors().unwrap();
        assert_eq!(cors.allow_origins, ["http://localhost:5173"]);
        assert!(cors.allow_headers.contains(&"idempotency-key".to_owned()));
        assert!(cors.allow_methods.contains(&"PATCH".to_owned()));
    }

    #[test]
    fn websocket_routes_lead_to_their_functions() {
        let all = template().ws_routes().unwrap();
        let (routes, visitors): (Vec<WsRoute>, Vec<WsRoute>) = all.into_iter().partition(|r| r.api == "AgentSocketApi");
        let find = |k: &str| routes.iter().find(|r| r.route_key == k).cloned().unwrap();
        assert_eq!((find("$connect").binary.as_str(), find("$connect").two_way), ("ws-connect", false));
        assert_eq!(find("$disconnect").binary, "ws-disconnect");
        assert_eq!((find("heartbeat").binary.as_str(), find("heartbeat").two_way), ("ws-presence", true));
        assert_eq!(find("viewing").binary, "ws-activity");
        assert_eq!(routes.len(), 8);
        // The web chat visitors' API is its own.
        assert!(visitors.iter().all(|r| r.api == "VisitorSocketApi"));
        let find = |k: &str| visitors.iter().find(|r| r.route_key == k).cloned().unwrap();
        assert_eq!((find("$connect").binary.as_str(), find("$connect").two_way), ("webchat-connect", false));
        assert_eq!((find("message").binary.as_str(), find("message").two_way), ("webchat-message", true));
        assert_eq!(find("history").binary, "webchat-activity");
        assert_eq!(visitors.len(), 8);
    }

    #[test]
    fn email_resources_come_from_the_receipt_rule_and_sns_subscriptions() {
        let t = template();
        let buckets = t.buckets("T1");
        assert!(buckets.contains(&("MailBucket".to_owned(), "t1-mailbucket".to_owned())), "{buckets:?}");
        assert!(buckets.contains(&("MediaBucket".to_owned(), "t1-mediabucket".to_owned())), "{buckets:?}");
        let rules = t.receipt_rules().unwrap();
        assert_eq!(
            rules,
            vec![ReceiptRuleDef {
                bucket_logical_id: "MailBucket".into(),
                prefix: "inbound/".into(),
                binary: "inbound-email".into()
            }]
        );
        assert_eq!(t.sns_functions(), vec!["ses-events".to_owned()]);
        assert_eq!(t.bucket_env("inbound-email"), vec![("MAIL_BUCKET".to_owned(), "MailBucket".to_owned())]);
        assert_eq!(
            t.bucket_env("outbound-sender"),
            vec![
                ("MAIL_BUCKET".to_owned(), "MailBucket".to_owned()),
                ("MEDIA_BUCKET".to_owned(), "MediaBucket".to_owned())
            ]
        );
    }

    #[test]
    fn state_machines_invoke_local_function_arns() {
        let sms = template().state_machines("st").unwrap();
        let snooze = sms.iter().find(|m| m.logical_id == "SnoozeTimerStateMachine").unwrap();
        assert_eq!(snooze.name, "st-SnoozeTimerStateMachine");
        assert_eq!(snooze.invokes, vec!["conversation-wake".to_owned()]);
        let def: serde_json::Value = serde_json::from_str(&snooze.definition).unwrap();
        assert_eq!(def["States"]["Wake"]["Parameters"]["FunctionName"], local_function_arn("st", "conversation-wake"));
        assert_eq!(def["States"]["WaitUntil"]["TimestampPath"], "$.snoozed_until");
        let env = template().state_machine_env("api-update-conversation");
        assert_eq!(
            env,
            vec![
                ("SNOOZE_STATE_MACHINE_ARN".to_owned(), "SnoozeTimerStateMachine".to_owned()),
                ("SLA_STATE_MACHINE_ARN".to_owned(), "SlaTimerStateMachine".to_owned())
            ]
        );
        let sla = sms.iter().find(|m| m.logical_id == "SlaTimerStateMachine").unwrap();
        assert_eq!(sla.invokes, vec!["sla-timer".to_owned()]);
        let def: serde_json::Value = serde_json::from_str(&sla.definition).unwrap();
        assert_eq!(def["States"]["Breach"]["Parameters"]["FunctionName"], local_function_arn("st", "sla-timer"));
    }

    /// Operational hardening the deployment must keep; each check fails if its item is removed.
    #[test]
    fn the_template_keeps_its_operational_hardening() {
        let doc: Value = serde_yaml::from_str(include_str!("../../../template.yaml")).unwrap();
        let resources = doc["Resources"].as_mapping().unwrap();
        let of_type = |ty: &str| -> Vec<(String, Value)> {
            resources
                .iter()
                .filter(|(_, v)| v.get("Type").and_then(Value::as_str) == Some(ty))
                .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone()))
                .collect()
        };
        let alarms = of_type("AWS::CloudWatch::Alarm");
        // Every dead-letter queue has an alarm that tells someone.
        for (queue, _) in of_type("AWS::SQS::Queue").into_iter().filter(|(id, _)| id.contains("DeadLetter")) {
            let watched = alarms.iter().any(|(_, a)| {
                let dims = a["Properties"]["Dimensions"].as_sequence().cloned().unwrap_or_default();
                let names_queue = dims.iter().any(|d| getatt_target(&d["Value"]).as_deref() == Some(queue.as_str()));
                names_queue && !a["Properties"]["AlarmActions"].as_sequence().unwrap().is_empty()
            });
            assert!(watched, "{queue} has no alarm with an action");
        }
        // Asynchronously invoked functions keep what failed after Lambda's retries.
        for binary in ["inbound-email", "ses-events"] {
            let (id, f) = of_type("AWS::Serverless::Function")
                .into_iter()
                .find(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary))
                .unwrap();
            let on_failure = &f["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"];
            assert!(on_failure.get("Destination").is_some(), "{id} has no failure destination");
        }
        // Logs are kept for a set time.
        let group = doc["Globals"]["Function"]["LoggingConfig"]["LogGroup"].clone();
        let group = tagged(&group, "!Ref").and_then(Value::as_str).expect("functions log to the stack's log group");
        assert!(resources[group]["Properties"].get("RetentionInDays").is_some(), "{group} keeps logs forever");
        assert!(doc["Resources"]["HttpApi"]["Properties"].get("AccessLogSettings").is_some(), "HTTP API access logs");
        // Topics are encrypted.
        for (id, topic) in of_type("AWS::SNS::Topic") {
            assert!(topic["Properties"].get("KmsMasterKeyId").is_some(), "{id} is not encrypted");
        }
        // Public routes cannot take every execution.
        for binary in ["contact-form", "webchat-session"] {
            let (id, f) = of_type("AWS::Serverless::Function")
                .into_iter()
                .find(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary))
                .unwrap();
            assert!(f["Properties"].get("ReservedConcurrentExecutions").is_some(), "{id} has no reserved concurrency");
        }
        // Sending mail is allowed from the workspace's identities only.
        fn statements(v: &Value, out: &mut Vec<Value>) {
            match v {
                Value::Mapping(m) => {
                    if m.contains_key("Action") && m.contains_key("Resource") {
                        out.push(v.clone());
                    }
                    m.values().for_each(|x| statements(x, out));
                }
                Value::Sequence(s) => s.iter().for_each(|x| statements(x, out)),
                Value::Tagged(t) => statements(&t.value, out),
                _ => {}
            }
        }
        let mut all = vec![];
        statements(&doc["Resources"], &mut all);
        for st in all {
            let actions = serde_yaml::to_string(&st["Action"]).unwrap();
            if actions.contains("ses:Send") {
                assert_ne!(st["Resource"].as_str(), Some("*"), "SES sending on every resource: {actions}");
            }
        }
        // Functions write delivery metrics in the namespace the dashboard charts, under the names
        // the code records; every queue's age and every dead-letter queue are on it.
        let namespace = doc["Globals"]["Function"]["Environment"]["Variables"]["METRICS_NAMESPACE"].clone();
        let namespace = tagged(&namespace, "!Sub").and_then(Value::as_str).expect("functions have a metrics namespace");
        let dashboard = of_type("AWS::CloudWatch::Dashboard");
        assert_eq!(dashboard.len(), 1, "one operations dashboard");
        let body = tagged(&dashboard[0].1["Properties"]["DashboardBody"], "!Sub").and_then(Value::as_str).unwrap();
        let widgets: serde_json::Value = serde_json::from_str(body).expect("the dashboard body is JSON");
        let text = widgets.to_string();
        for metric in [app::delivery::METRIC_SENT, app::delivery::METRIC_DELIVERED, app::delivery::METRIC_FAILED] {
            assert!(text.contains(&format!("{{{namespace},{}}}", app::delivery::METRIC_CHANNEL)), "namespace");
            assert!(text.contains(&format!("MetricName=\\\"{metric}\\\"")), "{metric} is not charted");
        }
        for (queue, _) in of_type("AWS::SQS::Queue") {
            assert!(text.contains(&format!("${{{queue}.QueueName}}")), "{queue} is not on the dashboard");
        }
        // Both WebSocket stages write access logs when the deployment opts in.
        for (id, stage) in of_type("AWS::ApiGatewayV2::Stage") {
            let logs = &stage["Properties"]["AccessLogSettings"];
            assert!(tagged(logs, "!If").is_some() || logs.is_mapping(), "{id} has no access logs");
        }
    }
}
