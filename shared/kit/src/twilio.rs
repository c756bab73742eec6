//! Verifying that a webhook request really comes from Twilio, shared by every Twilio webhook.

use domain::channels::twilio;
use lambda_http::Request;

use crate::http::{body_bytes, header, public_url, ApiError};

/// The request's form parameters, once `X-Twilio-Signature` checked out against the public URL Twilio
/// called. Missing or wrong signature → 403; an unparseable body → 400.
pub fn verified_form(
    req: &Request,
    auth_token: &str,
    public_base: Option<&str>,
) -> Result<Vec<(String, String)>, ApiError> {
    let signature =
        header(req, "x-twilio-signature").ok_or_else(|| ApiError::Forbidden("missing X-Twilio-Signature".into()))?;
    let params = twilio::parse_form(body_bytes(req))?;
    let url = public_url(req, public_base);
    if !twilio::signature_is_valid(auth_token, &url, &params, signature) {
        tracing::warn!(%url, "rejected a request with an invalid Twilio signature");
        return Err(ApiError::Forbidden("invalid X-Twilio-Signature".into()));
    }
    Ok(params)
}
