//! POST /csat/{token} — records an email survey's rating (form-encoded, optional `comment` up to
//! 1000 characters) and answers a thank-you page. The first score counts: another link of the same
//! message afterwards keeps it (the page says so); the same link again may add the comment. The
//! score reaches agents, outbound webhooks (`csat.received`) and the audit trail.

use std::sync::Arc;

use app::csat::{rate, RateError, Rated};
use domain::csat::{verify_rating, TokenError};
use domain::ports::NotificationQueue;
use kit::auth::Authenticator;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use store::Store;
use time::OffsetDateTime;

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
    pub notifications: Arc<dyn NotificationQueue>,
}

impl Deps {
    /// `TABLE_NAME`, `NOTIFICATION_QUEUE_URL` and the key that signs the links (`LINK_SIGNING_SECRET`).
    pub async fn from_config(config: &kit::Config, aws: &aws_config::SdkConfig) -> Result<Self, kit::ConfigError> {
        let api = api::Deps::from_config(config, aws).await?;
        if api.auth.link_key().is_err() {
            return Err(kit::ConfigError::Missing("LINK_SIGNING_SECRET_ARN (or LINK_SIGNING_SECRET locally)".into()));
        }
        let notifications =
            queue::SqsQueue::new(aws_sdk_sqs::Client::new(aws), config.required("NOTIFICATION_QUEUE_URL")?);
        Ok(Self { store: api.store, auth: api.auth, notifications: Arc::new(notifications) })
    }
}

#[utoipa::path(post, path = "/csat/{token}", operation_id = "csatRate", tag = "public",
    params(("token" = String, Path, description = "The signed rating link")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Optional comment (up to 1000 characters)"),
    responses((status = 200, description = "Thank-you page", body = String, content_type = "text/html"),
              (status = 410, description = "The link expired", body = String, content_type = "text/html")))]
pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, Error> {
    let token = req.path_parameters().first("token").unwrap_or_default().to_owned();
    let now = OffsetDateTime::now_utc();
    let Ok(key) = deps.auth.link_key() else {
        return Ok(api::csat::page(503, "Rating link", "Ratings are not configured here."));
    };
    let rating = match verify_rating(key, &token, now) {
        Ok(r) => r,
        Err(e @ TokenError::Invalid) => return Ok(api::csat::page(400, "Rating link", &e.to_string())),
        Err(e @ TokenError::Expired) => return Ok(api::csat::page(410, "Rating link", &e.to_string())),
    };
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(req.body().as_ref()).unwrap_or_default();
    let comment = form.iter().find(|(k, _)| k == "comment").map(|(_, v)| v.as_str());
    match rate(&*deps.store, &*deps.notifications, &rating, comment, now).await {
        Ok(Rated::Recorded) => {
            tracing::info!(workspace = %rating.workspace, conversation = %rating.conversation, score = rating.score,
                "satisfaction rating recorded");
            Ok(api::csat::page(
                200,
                "Thank you",
                &format!("You rated this conversation {} out of 5. Thank you!", rating.score),
            ))
        }
        Ok(Rated::AlreadyRated(score)) => Ok(api::csat::page(
            200,
            "Thank you",
            &format!("You already rated this conversation {score} out of 5. Thank you!"),
        )),
        Err(RateError::NoSurvey) => {
            Ok(api::csat::page(404, "Rating link", "There is no survey for this conversation."))
        }
        Err(RateError::App(e)) => {
            tracing::warn!(error = %e, "rating not recorded");
            Ok(api::csat::page(503, "Rating link", "Please try again in a moment."))
        }
    }
}
