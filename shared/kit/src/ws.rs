//! API Gateway WebSocket events: the connection id, the agent's token at `$connect`, and responses
//! in the same `{"error": {...}}` shape as the REST API (sent back on two-way routes).

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use domain::ConnectionId;

use crate::http::ApiError;

pub type WsRequest = ApiGatewayWebsocketProxyRequest;
pub type WsResponse = ApiGatewayProxyResponse;

/// The subprotocol a browser offers with its token: `Sec-WebSocket-Protocol: switchboard.v1, <jwt>`
/// (browsers cannot set an Authorization header on a WebSocket). The `$connect` answer names it.
pub const SUBPROTOCOL: &str = "switchboard.v1";

pub fn connection_id(req: &WsRequest) -> Result<ConnectionId, ApiError> {
    let raw =
        req.request_context.connection_id.as_deref().ok_or_else(|| ApiError::BadRequest("no connection id".into()))?;
    ConnectionId::parse(raw).map_err(ApiError::from)
}

/// Where the client put its token: the `token` query parameter, or the subprotocol list. Returns
/// the token and whether the answer must name [`SUBPROTOCOL`].
pub fn token(req: &WsRequest) -> Option<(String, bool)> {
    token_for(req, SUBPROTOCOL)
}

/// [`token`] for another API's subprotocol (web chat visitors offer their own).
pub fn token_for(req: &WsRequest, subprotocol: &str) -> Option<(String, bool)> {
    let offered = req.headers.get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut protocols = offered.split(',').map(str::trim).filter(|p| !p.is_empty());
    if protocols.clone().any(|p| p == subprotocol) {
        if let Some(t) = protocols.find(|p| *p != subprotocol) {
            return Some((t.to_owned(), true));
        }
    }
    req.query_string_parameters.first("token").map(|t| (t.to_owned(), false))
}

fn response(status: u16, body: &serde_json::Value) -> WsResponse {
    let mut r = WsResponse::default();
    r.status_code = i64::from(status);
    r.body = Some(Body::Text(body.to_string()));
    r
}

pub fn ok(body: serde_json::Value) -> WsResponse {
    response(200, &body)
}

/// Names [`SUBPROTOCOL`] in a `$connect` answer (a browser closes a socket whose offered
/// protocol was not accepted).
pub fn accept_subprotocol(res: &mut WsResponse) {
    accept_named_subprotocol(res, SUBPROTOCOL);
}

pub fn accept_named_subprotocol(res: &mut WsResponse, subprotocol: &'static str) {
    res.headers.insert("sec-websocket-protocol", http::HeaderValue::from_static(subprotocol));
}

pub fn respond(result: Result<WsResponse, ApiError>) -> WsResponse {
    result.unwrap_or_else(|e| {
        let (status, body) = e.logged_body();
        response(status, &body)
    })
}

/// A route's answer as JSON (`Null` when it has no JSON body): for tests and the local gateway.
pub fn answer_json(res: &WsResponse) -> serde_json::Value {
    match &res.body {
        Some(Body::Text(t)) => serde_json::from_str(t).unwrap_or_default(),
        Some(Body::Binary(b)) => serde_json::from_slice(b).unwrap_or_default(),
        _ => serde_json::Value::Null,
    }
}

/// The message body of a route: JSON, or a 400.
pub fn body<T: serde::de::DeserializeOwned>(req: &WsRequest) -> Result<T, ApiError> {
    let raw = req.body.as_deref().ok_or_else(|| ApiError::BadRequest("empty message".into()))?;
    serde_json::from_str(raw).map_err(|e| ApiError::BadRequest(format!("invalid message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_subprotocol_or_the_query() {
        let mut req = WsRequest::default();
        req.headers.insert("sec-websocket-protocol", "switchboard.v1, abc.def.ghi".parse().unwrap());
        assert_eq!(token(&req), Some(("abc.def.ghi".into(), true)));
        let mut req = WsRequest::default();
        req.query_string_parameters = std::collections::HashMap::from([("token".to_owned(), "t0k".to_owned())]).into();
        assert_eq!(token(&req), Some(("t0k".into(), false)));
        assert_eq!(token(&WsRequest::default()), None);
        let (status, _) = ApiError::Unauthorized("x".into()).logged_body();
        assert_eq!(respond(Err(ApiError::Unauthorized("x".into()))).status_code, i64::from(status));
    }
}
