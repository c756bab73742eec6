//! The public pages email links open (the satisfaction survey's rating links, a web chat
//! visitor's email proof): small, self-contained HTML, nothing loaded from elsewhere, nothing the
//! customer typed echoed back.

use lambda_http::{Body, Response};

const STYLE: &str =
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#1f2937}\
h1{font-size:1.4rem}.stars{font-size:2rem;letter-spacing:.2rem;color:#f59e0b}textarea{width:100%;min-height:6rem}\
button{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem;border:0;border-radius:.4rem;background:#2563eb;color:#fff}";

fn html(status: u16, title: &str, body: &str) -> Response<Body> {
    let doc = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\"><title>{title}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    );
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
        .header("referrer-policy", "no-referrer")
        .body(Body::Text(doc))
        .expect("static response parts")
}

/// A page with a heading and one sentence (the sentence is ours, never the customer's).
pub fn page(status: u16, title: &str, message: &str) -> Response<Body> {
    html(status, title, &format!("<h1>{title}</h1><p>{message}</p>"))
}

/// The rating link's page: the score picked, a comment box, and the button that records both.
pub fn confirm_page(token: &str, score: u8) -> Response<Body> {
    let stars: String = (1..=5).map(|i| if i <= score { '★' } else { '☆' }).collect();
    // The token is ours (base64url, digits, dots); the form posts back to the same path.
    let token: String = token.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')).collect();
    html(
        200,
        "How did we do?",
        &format!(
            "<h1>How did we do?</h1><p class=\"stars\" aria-label=\"{score} out of 5\">{stars}</p>\
<form method=\"post\" action=\"{token}\"><label for=\"comment\">Anything to add? (optional)</label>\
<textarea id=\"comment\" name=\"comment\" maxlength=\"1000\"></textarea><button type=\"submit\">Send my rating</button></form>"
        ),
    )
}

/// An email proof link's page: one button that proves the address (opening the link alone does
/// not: mail scanners open every link).
pub fn proof_page(token: &str) -> Response<Body> {
    let token: String = token.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')).collect();
    html(
        200,
        "Confirm your email address",
        &format!(
            "<h1>Confirm your email address</h1><p>You gave this address in a chat with us. Confirm it is yours, \
and we will keep your conversations together.</p><form method=\"post\" action=\"{token}\">\
<button type=\"submit\">Yes, this is my address</button></form>"
        ),
    )
}

/// The title of the email proof link's pages.
pub const PROOF_TITLE: &str = "Email confirmation";

/// An email proof link's token checked under `key`: the proof, or the page to answer instead
/// (503 not configured, 400 forged or altered, 410 expired).
pub fn proof_from_link(
    key: Option<&[u8]>,
    token: &str,
    now: time::OffsetDateTime,
) -> Result<domain::channels::webchat::EmailProof, Box<Response<Body>>> {
    let Some(key) = key else {
        return Err(Box::new(page(503, PROOF_TITLE, "Email confirmation is not configured here.")));
    };
    domain::channels::webchat::verify_proof(key, token, now).map_err(|e| {
        Box::new(match e {
            domain::csat::TokenError::Invalid => page(400, PROOF_TITLE, "This confirmation link is not valid."),
            domain::csat::TokenError::Expired => {
                page(410, PROOF_TITLE, "This confirmation link has expired: ask for a new one in the chat.")
            }
        })
    })
}
