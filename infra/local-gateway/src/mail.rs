//! SES receiving, played locally: `POST /_local/ses/receive` takes a raw MIME message (the body)
//! and does what the template's receipt rule does in AWS: stores it in the mail bucket under the
//! rule's prefix, then invokes the rule's function with the SES event Lambda would get. The
//! recipients are the `to` query parameters (repeatable), else the message's To and Cc.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::gateway::InvokeFn;
use crate::provision::Provisioned;
use crate::template::ReceiptRuleDef;

pub struct Receiving {
    /// (bucket name, prefix, local function name) of the receipt rule, when the template has one.
    rule: Option<(String, String, String)>,
    functions: Arc<HashMap<String, InvokeFn>>,
    s3: aws_sdk_s3::Client,
}

impl Receiving {
    pub fn new(
        rules: &[ReceiptRuleDef],
        provisioned: &Provisioned,
        stack: &str,
        functions: Arc<HashMap<String, InvokeFn>>,
        s3: aws_sdk_s3::Client,
    ) -> Result<Self> {
        let rule = match rules.first() {
            Some(r) => {
                let bucket = provisioned
                    .buckets
                    .get(&r.bucket_logical_id)
                    .ok_or_else(|| anyhow!("receipt rule names unknown bucket {}", r.bucket_logical_id))?;
                Some((bucket.clone(), r.prefix.clone(), format!("{stack}--{}", r.binary)))
            }
            None => None,
        };
        Ok(Self { rule, functions, s3 })
    }
}

/// The SES event of the receipt rule's Lambda action (the shape Lambda gets in AWS). Locally nothing
/// checks SPF, DKIM or DMARC: they pass, unless the caller says the mail is spoofed (`?auth=fail`),
/// when all three fail as SES reports for forged mail.
pub fn ses_event(message_id: &str, recipients: &[String], raw: &[u8], spoofed: bool) -> serde_json::Value {
    let parsed = mail_parser::MessageParser::default().parse(raw);
    let from = parsed.as_ref().and_then(|m| m.from()).and_then(|a| a.first()).and_then(|a| a.address());
    let subject = parsed.as_ref().and_then(|m| m.subject());
    let header_id = parsed.as_ref().and_then(|m| m.message_id());
    let now =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let pass = serde_json::json!({ "status": "PASS" });
    let auth = serde_json::json!({ "status": if spoofed { "FAIL" } else { "PASS" } });
    serde_json::json!({
        "Records": [{
            "eventSource": "aws:ses",
            "eventVersion": "1.0",
            "ses": {
                "mail": {
                    "timestamp": now,
                    "source": from.unwrap_or_default(),
                    "messageId": message_id,
                    "destination": recipients,
                    "headersTruncated": false,
                    "headers": [],
                    "commonHeaders": {
                        "from": from.into_iter().collect::<Vec<_>>(),
                        "to": recipients,
                        "subject": subject,
                        "messageId": header_id,
                    },
                },
                "receipt": {
                    "timestamp": now,
                    "processingTimeMillis": 1,
                    "recipients": recipients,
                    "spamVerdict": pass, "virusVerdict": pass, "spfVerdict": auth,
                    "dkimVerdict": auth, "dmarcVerdict": auth,
                    "action": { "type": "Lambda", "invocationType": "Event" },
                },
            },
        }]
    })
}

/// The addresses of a raw message's To and Cc headers, lower case.
fn recipients_of(raw: &[u8]) -> Vec<String> {
    let Some(m) = mail_parser::MessageParser::default().parse(raw) else { return vec![] };
    m.to().into_iter().chain(m.cc()).flat_map(|a| a.iter()).filter_map(|a| a.address()).map(str::to_lowercase).collect()
}

pub async fn receive(State(mail): State<Arc<Receiving>>, RawQuery(query): RawQuery, body: Bytes) -> Response {
    let Some((bucket, prefix, function)) = &mail.rule else {
        return (StatusCode::NOT_FOUND, "template.yaml has no SES receipt rule").into_response();
    };
    let query = query.unwrap_or_default();
    let spoofed = url::form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == "auth" && v == "fail");
    let mut recipients: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "to")
        .map(|(_, v)| v.trim().to_lowercase())
        .collect();
    if recipients.is_empty() {
        recipients = recipients_of(&body);
    }
    if recipients.is_empty() {
        return (StatusCode::BAD_REQUEST, "no recipients: pass ?to=address or a To header").into_response();
    }
    let message_id = format!("local{}", ulid::Ulid::new().to_string().to_lowercase());
    let put = mail
        .s3
        .put_object()
        .bucket(bucket)
        .key(format!("{prefix}{message_id}"))
        .body(body.to_vec().into())
        .send()
        .await;
    if let Err(e) = put {
        let e = aws_sdk_s3::error::DisplayErrorContext(e).to_string();
        return (StatusCode::BAD_GATEWAY, format!("storing the message in S3: {e}")).into_response();
    }
    let Some(f) = mail.functions.get(function) else {
        return (StatusCode::NOT_FOUND, format!("{function} is not served")).into_response();
    };
    match f(ses_event(&message_id, &recipients, &body, spoofed)).await {
        Ok(out) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            serde_json::json!({ "ses_message_id": message_id, "result": out }).to_string(),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_and_headers_are_read_from_the_message() {
        let raw = b"From: Ann <ann@example.com>\r\nTo: Support <support@acme.example>,\r\n b@acme.example\r\nSubject: hi\r\n\r\nbody";
        assert_eq!(recipients_of(raw), vec!["support@acme.example", "b@acme.example"]);
        let ev = ses_event("m1", &["support@acme.example".into()], raw, false);
        assert_eq!(ev["Records"][0]["ses"]["mail"]["commonHeaders"]["subject"], "hi");
        assert_eq!(ev["Records"][0]["ses"]["mail"]["source"], "ann@example.com");
        let parsed: aws_lambda_events::ses::SimpleEmailEvent = serde_json::from_value(ev).unwrap();
        assert_eq!(parsed.records[0].ses.receipt.recipients, vec!["support@acme.example"]);
        assert_eq!(parsed.records[0].ses.mail.message_id.as_deref(), Some("m1"));
    }
}
