//! The one place errors become HTTP responses: a status and a stable JSON body
//! `{"error": {"code": "...", "message": "..."}}`.

use domain::ports::{QueueError, StoreError};
use domain::ParseError;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    /// A hard-stop budget is spent: paid sends are refused until it is raised or the month ends.
    #[error("{0}")]
    BudgetExceeded(String),
    /// A rate limit was reached: try again later.
    #[error("{0}")]
    TooManyRequests(String),
    /// A dependency is down: the client should retry (Twilio does, on any 5xx).
    #[error("temporarily unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::Conflict(_) => 409,
            ApiError::Unprocessable(_) => 422,
            ApiError::BudgetExceeded(_) => 402,
            ApiError::TooManyRequests(_) => 429,
            ApiError::Unavailable(_) => 503,
            ApiError::Internal(_) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::BudgetExceeded(_) => "budget_exceeded",
            ApiError::TooManyRequests(_) => "too_many_requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The response. Server-side failures are logged with their cause chain here, once; clients see
    /// only the stable code.
    pub fn into_response(self) -> Response<Body> {
        let (status, body) = self.logged_body();
        json(status, &body)
    }

    /// The status and JSON body, logged once (also the WebSocket routes' error frame).
    pub fn logged_body(&self) -> (u16, serde_json::Value) {
        let status = self.status();
        if status >= 500 {
            let mut chain = String::new();
            let mut source = std::error::Error::source(&self);
            while let Some(s) = source {
                chain.push_str(&format!(": {s}"));
                source = s.source();
            }
            tracing::error!(status, code = self.code(), cause = %chain, "request failed");
        } else {
            // The code, not the message: messages can quote the caller's input.
            tracing::info!(status, code = self.code(), "request rejected");
        }
        let body = ErrorBody { error: ErrorDetail { code: self.code().to_owned(), message: self.to_string() } };
        (status, serde_json::to_value(body).unwrap_or_default())
    }
}

/// Every error the API answers: a stable `code` to branch on and a `message` for people.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// One of `bad_request` (400), `unauthorized` (401), `budget_exceeded` (402), `forbidden`
    /// (403), `not_found` (404), `conflict` (409), `unprocessable` (422), `too_many_requests`
    /// (429), `internal` (500), `unavailable` (503: retry).
    #[schema(example = "not_found")]
    pub code: String,
    /// What was wrong, in words (may quote the request).
    pub message: String,
}

impl From<domain::routing::service::RoutingError> for ApiError {
    fn from(e: domain::routing::service::RoutingError) -> Self {
        match e {
            domain::routing::service::RoutingError::Store(e) => e.into(),
            domain::routing::service::RoutingError::Queue(e) => e.into(),
        }
    }
}

impl From<domain::inbox::Refusal> for ApiError {
    fn from(e: domain::inbox::Refusal) -> Self {
        use domain::inbox::Refusal;
        match e {
            Refusal::Forbidden(m) => ApiError::Forbidden(m),
            Refusal::Invalid(m) => ApiError::Unprocessable(m),
            Refusal::Conflict(m) => ApiError::Conflict(m),
        }
    }
}

impl From<domain::routing::service::ActError> for ApiError {
    fn from(e: domain::routing::service::ActError) -> Self {
        use domain::routing::service::ActError;
        match e {
            ActError::Refused(r) => r.into(),
            ActError::NotFound(id) => ApiError::NotFound(format!("no conversation {id}")),
            ActError::Routing(r) => r.into(),
        }
    }
}

impl From<domain::contacts::ContactError> for ApiError {
    fn from(e: domain::contacts::ContactError) -> Self {
        use domain::contacts::ContactError;
        match e {
            ContactError::Refused(r) => r.into(),
            ContactError::NotFound(id) => ApiError::NotFound(format!("no contact {id}")),
            ContactError::Store(s) => s.into(),
        }
    }
}

/// A domain refusal of a well-formed request (a policy, a limit, an invalid value): 422 with the
/// domain's own explanation. One list, instead of a `map_err` in every route.
macro_rules! unprocessable {
    ($($error:ty),* $(,)?) => {
        $(impl From<$error> for ApiError {
            fn from(e: $error) -> Self {
                ApiError::Unprocessable(e.to_string())
            }
        })*
    };
}

unprocessable!(
    domain::threading::RouteError,
    domain::channels::ReplyRefusal,
    domain::channels::templates::TemplateError,
    domain::channels::constraints::Violation,
    domain::finance::PricingError,
    domain::finance::ratecard::RateCardError,
    domain::finance::budget::BudgetError,
    domain::canned::RenderError,
);

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::BadCursor => ApiError::BadRequest("invalid pagination cursor".into()),
            StoreError::Conflict | StoreError::Duplicate => {
                ApiError::Conflict("a concurrent change got there first; retry the request".into())
            }
            StoreError::Unavailable(_) => ApiError::Unavailable(Box::new(e)),
            StoreError::Invalid(why) => ApiError::Unprocessable(format!("the request is too large to store: {why}")),
            StoreError::Rejected(_) | StoreError::Corrupt(_) => ApiError::Internal(Box::new(e)),
        }
    }
}

impl From<app::Error> for ApiError {
    fn from(e: app::Error) -> Self {
        match e {
            app::Error::Store(e) => e.into(),
            app::Error::Queue(e) => e.into(),
            app::Error::Contended(why) => ApiError::Conflict(why),
            app::Error::Invalid(why) => ApiError::Unprocessable(why),
            e @ app::Error::Unavailable(_) => ApiError::Unavailable(Box::new(e)),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Unavailable(_) => ApiError::Unavailable(Box::new(e)),
            QueueError::Rejected(_) => ApiError::Internal(Box::new(e)),
        }
    }
}

pub fn json<T: Serialize>(status: u16, body: &T) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(text))
        .expect("static response parts are valid")
}

pub fn xml(status: u16, body: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/xml; charset=utf-8")
        .body(Body::Text(body.to_owned()))
        .expect("static response parts are valid")
}

/// A CSV download named `filename`.
pub fn csv(status: u16, filename: &str, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/csv; charset=utf-8")
        .header("content-disposition", format!("attachment; filename=\"{filename}\""))
        .body(Body::Text(body))
        .expect("static response parts are valid")
}

/// Turns a handler's result into the response Lambda returns: errors through [`ApiError`].
pub fn respond(result: Result<Response<Body>, ApiError>) -> Response<Body> {
    result.unwrap_or_else(ApiError::into_response)
}

/// The JSON body as `T`, or 400 naming the expected `shape` and what was wrong.
pub fn json_body<T: serde::de::DeserializeOwned>(req: &Request, shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body_bytes(req)).map_err(|e| ApiError::BadRequest(format!("body must be {shape}: {e}")))
}

/// The raw body bytes (lambda_http has already decoded API Gateway's base64).
pub fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A path parameter of the route (`{id}`), parsed into its domain type.
pub fn path_param<T>(
    req: &Request,
    name: &'static str,
    parse: impl Fn(&str) -> Result<T, ParseError>,
) -> Result<T, ApiError> {
    use lambda_http::RequestExt;
    let params = req.path_parameters();
    let raw = params.first(name).ok_or(ApiError::BadRequest(format!("missing path parameter {name}")))?;
    parse(raw).map_err(|e| ApiError::NotFound(e.to_string()))
}

/// The caller's IP address as API Gateway saw it.
pub fn source_ip(req: &Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.clone(),
        _ => None,
    }
}

pub fn query_param(req: &Request, name: &str) -> Option<String> {
    use lambda_http::RequestExt;
    req.query_string_parameters_ref().and_then(|q| q.first(name)).map(str::to_owned)
}

/// The public URL a provider called, for signature checks: the configured public base (a custom
/// domain, or the local gateway), else `https://` + the API's domain name; then the raw path and query
/// exactly as received.
pub fn public_url(req: &Request, public_base: Option<&str>) -> String {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    let base = match public_base {
        Some(b) => b.trim_end_matches('/').to_owned(),
        None => {
            let domain = match req.request_context_ref() {
                Some(RequestContext::ApiGatewayV2(ctx)) => ctx.domain_name.clone(),
                _ => None,
            }
            .or_else(|| header(req, "host").map(str::to_owned))
            .unwrap_or_default();
            format!("https://{domain}")
        }
    };
    let path = req.raw_http_path();
    match req.uri().query() {
        Some(q) if !q.is_empty() => format!("{base}{path}?{q}"),
        _ => format!("{base}{path}"),
    }
}

/// The `limit` query parameter: `default` when absent, 1..=`max` otherwise.
pub fn limit_param(req: &Request, default: u16, max: u16) -> Result<u16, ApiError> {
    match query_param(req, "limit") {
        None => Ok(default),
        Some(raw) => match raw.parse::<u16>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!("limit must be a whole number from 1 to {max}"))),
        },
    }
}

/// A page of a list endpoint: pass `next_cursor` as `cursor` for the next page (`null`: the last).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PageBody<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A whole list (no pages: the list is small by nature, such as a workspace's agents).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// A page of a list endpoint as a 200 response ([`PageBody`]).
pub fn page_response<T: Serialize>(page: domain::ports::Page<T>) -> Response<Body> {
    json(200, &PageBody { items: page.items, next_cursor: page.next.map(|c| c.0) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_a_stable_json_shape() {
        let r = ApiError::NotFound("no such conversation".into()).into_response();
        assert_eq!(r.status(), 404);
        let Body::Text(t) = r.body() else { panic!("text body") };
        let v: serde_json::Value = serde_json::from_str(t).unwrap();
        assert_eq!(v["error"]["code"], "not_found");
        assert_eq!(v["error"]["message"], "no such conversation");
    }

    #[test]
    fn store_errors_map_to_statuses() {
        assert_eq!(ApiError::from(StoreError::BadCursor).status(), 400);
        assert_eq!(ApiError::from(StoreError::Conflict).status(), 409);
        assert_eq!(ApiError::from(StoreError::Unavailable("x".into())).status(), 503);
        assert_eq!(ApiError::from(StoreError::Corrupt("x".into())).status(), 500);
    }
}
