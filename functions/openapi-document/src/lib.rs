//! `GET /openapi.json` — the REST API's OpenAPI 3.1 document, for the console's generated client
//! and any tool. Public: it describes routes, never data. The document is generated from the
//! handlers' own annotations and types (`switchboard-local openapi`) and checked in as
//! docs/openapi.json; tests fail when it drifts from the code or the template's routes.

use lambda_http::{Body, Error, Request, Response};

/// The checked-in document, compiled into the function.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// Nothing to configure: the document is part of the code.
pub struct Deps;

impl Deps {
    pub async fn from_config(_config: &kit::Config, _aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        Ok(Deps)
    }
}

#[utoipa::path(get, path = "/openapi.json", operation_id = "openapiDocument", tag = "public",
    responses((status = 200, description = "This document", body = Object)))]
pub async fn handle(_deps: &Deps, _req: Request) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("cache-control", "public, max-age=300")
        .body(Body::Text(DOCUMENT.to_owned()))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_checked_in_document() {
        let req = kit::apigw::test_request("GET", "/openapi.json", "/openapi.json", &[], &[], None);
        let res = handle(&Deps, req).await.unwrap();
        assert_eq!(res.status(), 200);
        let doc = kit::apigw::json_of(&res);
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"]["/conversations/{id}/messages"]["post"].is_object());
    }
}
