//! GET /csat/{token} — the page an email survey's rating link opens: the score the customer picked
//! and a button (with an optional comment) that records it. Opening the link records nothing:
//! mail scanners open every link of a message, and would otherwise rate every conversation 1.
//! A forged or altered link is 400, an expired one 410, both as a small page.

use std::sync::Arc;

use domain::csat::{verify_rating, TokenError};
use kit::auth::Authenticator;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use store::Store;
use time::OffsetDateTime;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
}

impl Deps {
    /// `TABLE_NAME` and the key that signs the links (`LINK_SIGNING_SECRET`).
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let api = api::Deps::from_config(config, aws).await?;
        if api.auth.link_key().is_err() {
            return Err(kit::ConfigError::Missing("LINK_SIGNING_SECRET_ARN (or LINK_SIGNING_SECRET locally)".into()));
        }
        Ok(Self { store: api.store, auth: api.auth })
    }
}

#[utoipa::path(get, path = "/csat/{token}", operation_id = "csatRatePage", tag = "public",
    params(("token" = String, Path, description = "The signed rating link")),
    responses((status = 200, description = "The confirm page (records nothing)", body = String, content_type = "text/html"),
              (status = 404, description = "The conversation is gone", body = String, content_type = "text/html"),
              (status = 410, description = "The link expired", body = String, content_type = "text/html")))]
pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    let token = req.path_parameters().first("token").unwrap_or_default().to_owned();
    let Ok(key) = deps.auth.link_key() else {
        return Ok(api::csat::page(503, "Rating link", "Ratings are not configured here."));
    };
    let rating = match verify_rating(key, &token, OffsetDateTime::now_utc()) {
        Ok(r) => r,
        Err(e @ TokenError::Invalid) => return Ok(api::csat::page(400, "Rating link", &e.to_string())),
        Err(e @ TokenError::Expired) => return Ok(api::csat::page(410, "Rating link", &e.to_string())),
    };
    let rated = match deps.store.conversation(&rating.workspace, rating.conversation).await {
        Ok(Some(c)) => c.csat.and_then(|s| s.score),
        Ok(None) => return Ok(api::csat::page(404, "Rating link", "This conversation no longer exists.")),
        Err(e) => {
            tracing::warn!(error = %e, "rating page: store unavailable");
            return Ok(api::csat::page(503, "Rating link", "Please try again in a moment."));
        }
    };
    if let Some(score) = rated {
        return Ok(api::csat::page(
            200,
            "Thank you",
            &format!("You rated this conversation {score} out of 5. Thank you!"),
        ));
    }
    Ok(api::csat::confirm_page(&token, rating.score))
}
