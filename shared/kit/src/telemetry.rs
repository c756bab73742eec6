//! Structured JSON logs for CloudWatch, and metrics in CloudWatch's embedded metric format: a
//! function with `METRICS_NAMESPACE` set collects what the `metrics` facade records (delivery
//! outcomes per channel, `app::delivery`) and writes it as one EMF log line per label set when an
//! invocation ends ([`flushed`]); CloudWatch turns those lines into metrics with no API call.
//! Message bodies and secrets are never logged at info level: handlers log ids, channels and
//! outcomes only.

use std::future::Future;
use std::sync::OnceLock;

use metrics_cloudwatch_embedded::Collector;
use tracing_subscriber::EnvFilter;

static METRICS: OnceLock<Option<&'static Collector>> = OnceLock::new();

/// The function's metrics collector, installed as the `metrics` recorder on first use when
/// `METRICS_NAMESPACE` names a namespace (the local stack sets none: recording is then a no-op).
fn collector() -> Option<&'static Collector> {
    *METRICS.get_or_init(|| {
        let namespace = std::env::var("METRICS_NAMESPACE").ok().filter(|n| !n.is_empty())?;
        match metrics_cloudwatch_embedded::Builder::new().cloudwatch_namespace(namespace).init() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "metrics are off");
                None
            }
        }
    })
}

/// Writes what was recorded since the last flush to stdout, as EMF documents.
pub fn flush_metrics() {
    if let Some(c) = collector() {
        if let Err(e) = c.flush(std::io::stdout().lock()) {
            tracing::warn!(error = %e, "metrics not written");
        }
    }
}

/// Runs one invocation and then flushes its metrics (before Lambda may freeze the container).
pub async fn flushed<F: Future>(invocation: F) -> F::Output {
    let out = invocation.await;
    flush_metrics();
    out
}

/// Initialises JSON logging once. The level comes from `RUST_LOG`, else Lambda's
/// `AWS_LAMBDA_LOG_LEVEL`, else `info`.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().map(|l| l.to_lowercase()))
        .unwrap_or_else(|| "info".to_owned());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::new(filter))
        .with_current_span(false)
        .with_ansi(false)
        .with_target(false)
        .try_init();
    collector();
}

/// Human-readable logs for the local stack.
pub fn init_pretty() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let _ = tracing_subscriber::fmt().with_env_filter(EnvFilter::new(filter)).with_target(false).try_init();
}

#[cfg(test)]
mod tests {
    use domain::model::{Channel, DeliveryStatus};

    /// What a delivery outcome becomes in the log: an EMF document CloudWatch reads as the
    /// `DeliveryFailed` metric with the `Channel` dimension, in the stack's namespace.
    #[test]
    fn delivery_outcomes_become_embedded_metric_documents_per_channel() {
        let collector = metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace("Switchboard/test")
            .init()
            .expect("the only recorder of this test binary");
        app::delivery::record_outcome(Channel::Sms, DeliveryStatus::Undelivered);
        app::delivery::record_outcome(Channel::Sms, DeliveryStatus::Failed);
        app::delivery::record_outcome(Channel::Whatsapp, DeliveryStatus::Delivered);
        app::delivery::record_outcome(Channel::Whatsapp, DeliveryStatus::Read);
        let mut out = vec![];
        collector.flush(&mut out).unwrap();
        let docs: Vec<serde_json::Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let find = |channel: &str, metric: &str| {
            docs.iter().find(|d| d[app::delivery::METRIC_CHANNEL] == channel && d.get(metric).is_some()).cloned()
        };
        let failed = find("sms", app::delivery::METRIC_FAILED).expect("sms failures");
        assert_eq!(failed[app::delivery::METRIC_FAILED], 2);
        let spec = &failed["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], "Switchboard/test");
        assert_eq!(spec["Dimensions"][0][0], app::delivery::METRIC_CHANNEL);
        assert_eq!(find("whatsapp", app::delivery::METRIC_DELIVERED).unwrap()[app::delivery::METRIC_DELIVERED], 1);
        assert!(find("whatsapp", "Read").is_none(), "read is not an outcome the metrics follow");
    }
}
