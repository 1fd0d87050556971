//! Prometheus metrics: what `/metrics` shows, and the one place their names are spelled.
//!
//! The outbox: `outbox_backlog` (pending rows, read at scrape), `outbox_published_total`,
//! `outbox_publish_latency_seconds` (commit to Kafka's acknowledgement). Consumers:
//! `consumer_lag` (per topic and partition, from librdkafka's statistics),
//! `handler_duration_seconds` and `events_handled_total` (per topic and outcome),
//! `consumer_retries_total`, `consumer_dead_lettered_total`.

use std::sync::OnceLock;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets for latencies, in seconds: from half a millisecond to ten seconds.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once (later calls reuse it); `None` if another
/// recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &LATENCY_BUCKETS)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// The text exposition of every metric recorded so far, plus `extra` lines.
pub fn render(extra: &str) -> String {
    let mut text = install().map(PrometheusHandle::render).unwrap_or_default();
    text.push_str(extra);
    text
}

/// `n` outbox rows were acknowledged by Kafka and marked published.
pub fn outbox_published(n: usize) {
    if n > 0 {
        counter!("outbox_published_total").increment(n as u64);
    }
}

/// One event took `ms` from its commit to Kafka's acknowledgement.
pub fn outbox_publish_latency(ms: i64) {
    histogram!("outbox_publish_latency_seconds").record(ms.max(0) as f64 / 1000.0);
}

/// A handler finished with `outcome` (`applied`, `duplicate`, `retry`, `dead_letter`).
pub fn handled(topic: &str, outcome: &'static str, seconds: f64) {
    histogram!("handler_duration_seconds", "topic" => topic.to_owned(), "outcome" => outcome).record(seconds);
    counter!("events_handled_total", "topic" => topic.to_owned(), "outcome" => outcome).increment(1);
}

/// A message of `topic` was sent to a retry topic.
pub fn retried(topic: &str) {
    counter!("consumer_retries_total", "topic" => topic.to_owned()).increment(1);
}

/// A message of `topic` was sent to its dead-letter topic.
pub fn dead_lettered(topic: &str) {
    counter!("consumer_dead_lettered_total", "topic" => topic.to_owned()).increment(1);
}

/// The consumer is `lag` messages behind on a partition.
pub fn consumer_lag(topic: &str, partition: i32, lag: i64) {
    gauge!("consumer_lag", "topic" => topic.to_owned(), "partition" => partition.to_string()).set(lag as f64);
}

/// The `outbox_backlog` gauge line, written at scrape time from the database.
pub fn backlog_line(pending: i64) -> String {
    format!("# TYPE outbox_backlog gauge\noutbox_backlog {pending}\n")
}
