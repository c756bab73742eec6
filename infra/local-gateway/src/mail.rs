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

/// The SES event of the receipt rule's Lambda action (the shape Lambda gets in AWS).
pub fn ses_event(message_id: &str, recipients: &[String], raw: &[u8]) -> serde_json::Value {
    let parsed = mail_header_summary(raw);
    let now =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let pass = serde_json::json!({ "status": "PASS" });
    serde_json::json!({
        "Records": [{
            "eventSource": "aws:ses",
            "eventVersion": "1.0",
            "ses": {
                "mail": {
                    "timestamp": now,
                    "source": parsed.get("from").cloned().unwrap_or_default(),
                    "messageId": message_id,
                    "destination": recipients,
                    "headersTruncated": false,
                    "headers": [],
                    "commonHeaders": {
                        "from": parsed.get("from").map(|f| vec![f.clone()]).unwrap_or_default(),
                        "to": recipients,
                        "subject": parsed.get("subject"),
                        "messageId": parsed.get("message-id"),
                    },
                },
                "receipt": {
                    "timestamp": now,
                    "processingTimeMillis": 1,
                    "recipients": recipients,
                    "spamVerdict": pass, "virusVerdict": pass, "spfVerdict": pass,
                    "dkimVerdict": pass, "dmarcVerdict": pass,
                    "action": { "type": "Lambda", "invocationType": "Event" },
                },
            },
        }]
    })
}

/// A few unfolded headers of a raw message (From, To, Cc, Subject, Message-ID), lower-cased names.
fn mail_header_summary(raw: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let head = head.split("\n\n").next().unwrap_or_default();
    let mut out: HashMap<String, String> = HashMap::new();
    let mut last: Option<String> = None;
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(v) = last.as_ref().and_then(|k| out.get_mut(k)) {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_lowercase();
            if ["from", "to", "cc", "subject", "message-id"].contains(&k.as_str()) {
                out.insert(k.clone(), v.trim().to_owned());
                last = Some(k);
            } else {
                last = None;
            }
        }
    }
    out
}

/// The bare addresses of a header value (`Ann <a@x>, b@y` → a@x, b@y).
fn addresses(v: &str) -> Vec<String> {
    v.split(',')
        .filter_map(|part| {
            let part = part.trim();
            let a = match (part.rfind('<'), part.rfind('>')) {
                (Some(s), Some(e)) if s < e => &part[s + 1..e],
                _ => part,
            };
            a.contains('@').then(|| a.trim().to_lowercase())
        })
        .collect()
}

pub async fn receive(State(mail): State<Arc<Receiving>>, RawQuery(query): RawQuery, body: Bytes) -> Response {
    let Some((bucket, prefix, function)) = &mail.rule else {
        return (StatusCode::NOT_FOUND, "template.yaml has no SES receipt rule").into_response();
    };
    let mut recipients: Vec<String> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "to")
        .map(|(_, v)| v.trim().to_lowercase())
        .collect();
    if recipients.is_empty() {
        let h = mail_header_summary(&body);
        recipients = ["to", "cc"].iter().filter_map(|k| h.get(*k)).flat_map(|v| addresses(v)).collect();
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
    match f(ses_event(&message_id, &recipients, &body)).await {
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
        let h = mail_header_summary(raw);
        assert_eq!(addresses(&h["to"]), vec!["support@acme.example", "b@acme.example"]);
        assert_eq!(h["subject"], "hi");
        let ev = ses_event("m1", &["support@acme.example".into()], raw);
        let parsed: aws_lambda_events::ses::SimpleEmailEvent = serde_json::from_value(ev).unwrap();
        assert_eq!(parsed.records[0].ses.receipt.recipients, vec!["support@acme.example"]);
        assert_eq!(parsed.records[0].ses.mail.message_id.as_deref(), Some("m1"));
    }
}
