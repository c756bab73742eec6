//! Builds API Gateway HTTP API (payload 2.0) events, as API Gateway sends them to Lambda. The local
//! gateway serves requests through these, and handler tests use them, so both exercise the same
//! event → `lambda_http::Request` conversion that runs on AWS.

use base64::Engine;
use lambda_http::Request;

#[derive(Debug, Clone, Default)]
pub struct HttpEvent<'a> {
    pub method: &'a str,
    /// The route key's path template, e.g. `/conversations/{id}`.
    pub route_path: &'a str,
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: Vec<(String, String)>,
    pub path_parameters: Vec<(String, String)>,
    pub body: Option<&'a [u8]>,
    pub domain_name: &'a str,
    pub source_ip: &'a str,
    /// The claims a JWT authorizer verified (`requestContext.authorizer.jwt.claims`).
    pub authorizer_claims: Option<std::collections::HashMap<String, String>>,
}

/// API Gateway passes text bodies through and base64-encodes everything else (notably
/// `application/x-www-form-urlencoded`, which is what Twilio posts).
fn is_text(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.starts_with("application/json")
        || ct.contains("+json")
        || ct.starts_with("application/xml")
}

impl HttpEvent<'_> {
    pub fn to_json(&self) -> serde_json::Value {
        let headers: serde_json::Map<String, serde_json::Value> = {
            let mut m = serde_json::Map::new();
            for (k, v) in &self.headers {
                let k = k.to_ascii_lowercase();
                // API Gateway joins repeated headers with commas.
                let joined = match m.get(&k).and_then(|e| e.as_str()) {
                    Some(prev) => format!("{prev},{v}"),
                    None => v.clone(),
                };
                m.insert(k, joined.into());
            }
            m
        };
        let mut query = serde_json::Map::new();
        for (k, v) in serde_urlencoded::from_str::<Vec<(String, String)>>(self.raw_query).unwrap_or_default() {
            let joined = match query.get(&k).and_then(|e| e.as_str()) {
                Some(prev) => format!("{prev},{v}"),
                None => v,
            };
            query.insert(k, joined.into());
        }
        let content_type = headers.get("content-type").and_then(|v| v.as_str()).unwrap_or("");
        let (body, b64) = match self.body {
            None => (serde_json::Value::Null, false),
            Some(b) if is_text(content_type) && std::str::from_utf8(b).is_ok() => {
                (String::from_utf8_lossy(b).into_owned().into(), false)
            }
            Some(b) => (base64::engine::general_purpose::STANDARD.encode(b).into(), true),
        };
        let route_key = format!("{} {}", self.method, self.route_path);
        let now = time::OffsetDateTime::now_utc();
        let path_params: serde_json::Map<String, serde_json::Value> =
            self.path_parameters.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
        let user_agent = headers.get("user-agent").cloned().unwrap_or_else(|| "".into());
        let mut event = serde_json::json!({
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": self.raw_path,
            "rawQueryString": self.raw_query,
            "headers": headers,
            "queryStringParameters": if query.is_empty() { serde_json::Value::Null } else { query.into() },
            "pathParameters": if path_params.is_empty() { serde_json::Value::Null } else { path_params.into() },
            "requestContext": {
                "accountId": "000000000000",
                "apiId": "local",
                "domainName": self.domain_name,
                "domainPrefix": self.domain_name.split('.').next().unwrap_or(""),
                "http": {
                    "method": self.method,
                    "path": self.raw_path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": self.source_ip,
                    "userAgent": user_agent,
                },
                "requestId": ulid_like(),
                "routeKey": route_key,
                "stage": "$default",
                "time": now.format(&time::format_description::well_known::Rfc2822).unwrap_or_default(),
                "timeEpoch": now.unix_timestamp() * 1000 + i64::from(now.millisecond()),
            },
            "body": body,
            "isBase64Encoded": b64,
        });
        if let Some(claims) = &self.authorizer_claims {
            event["requestContext"]["authorizer"] = serde_json::json!({ "jwt": { "claims": claims, "scopes": null } });
        }
        event
    }

    /// The `lambda_http::Request` a deployed function would receive for this event.
    pub fn to_request(&self) -> Request {
        lambda_http::request::from_str(&self.to_json().to_string())
            .expect("an HTTP API 2.0 event built here always deserialises")
    }
}

fn ulid_like() -> String {
    domain::MessageId::new().to_string()
}

/// A handler's JSON answer, for tests; panics on anything else.
pub fn json_of(res: &lambda_http::Response<lambda_http::Body>) -> serde_json::Value {
    match res.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).expect("a JSON body"),
        other => panic!("expected a JSON text body, got {other:?}"),
    }
}

/// A request for handler tests: `GET /conversations?status=open` with an optional bearer token.
pub fn test_request(
    method: &str,
    route_path: &str,
    uri: &str,
    path_parameters: &[(&str, &str)],
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Request {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    HttpEvent {
        method,
        route_path,
        raw_path: path,
        raw_query: query,
        headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        path_parameters: path_parameters.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        body,
        domain_name: "api.test",
        source_ip: "127.0.0.1",
        authorizer_claims: None,
    }
    .to_request()
}
