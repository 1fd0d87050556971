//! Prometheus metrics: what `/metrics` shows, and the one place their names are spelled.
//!
//! HTTP, in every service: `http_requests_total` (per method, route template and status)
//! and `http_request_duration_seconds` (per method and route). The gateway's upstreams:
//! `gateway_upstream_requests_total` (per service and status),
//! `gateway_upstream_duration_seconds` (per service) and `gateway_upstream_errors_total`
//! (per service and kind: `timeout`, `unavailable`).
//!
//! The process: `process_cpu_seconds_total` (user and system CPU time) and
//! `process_start_time_seconds`, the standard names, read at scrape time on Linux; the
//! load generator works out CPU time per saga from them (and leaves out a process that
//! was restarted meanwhile).
//!
//! The outbox: `outbox_backlog` (pending rows, read at scrape), `outbox_published_total`,
//! `outbox_publish_latency_seconds` (commit to Kafka's acknowledgement). Consumers:
//! `consumer_lag` (per topic and partition, from librdkafka's statistics),
//! `handler_duration_seconds` and `events_handled_total` (per topic and outcome),
//! `consumer_retries_total`, `consumer_dead_lettered_total`, `consumer_batch_size`
//! (messages applied in one transaction) and `consumer_batch_fallbacks_total` (batches
//! rolled back and applied one by one because a message failed).
//!
//! Kafka clients: `kafka_client_requests_total` (per client id and request kind, from
//! librdkafka's statistics every five seconds), for the producers of the relay and of retries
//! and dead letters and for the consumer.

use std::sync::OnceLock;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets for batch sizes, up to the consumer's largest batch.
const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

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
                .set_buckets_for_metric(Matcher::Full("consumer_batch_size".to_owned()), &BATCH_BUCKETS)
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

/// `n` messages of `topic` were applied in one transaction.
pub fn batch_applied(topic: &str, n: usize) {
    histogram!("consumer_batch_size", "topic" => topic.to_owned()).record(n as f64);
}

/// A batch of `topic` was rolled back, all of it or (handlers acting outside) from its
/// failing message on, to be applied one message at a time.
pub fn batch_fell_back(topic: &str) {
    counter!("consumer_batch_fallbacks_total", "topic" => topic.to_owned()).increment(1);
}

/// A request to `route` (the route's template, never the raw path: the label set must
/// stay small) was answered with `status` after `seconds`.
pub fn http_request(method: &str, route: &str, status: u16, seconds: f64) {
    histogram!("http_request_duration_seconds", "method" => method.to_owned(), "route" => route.to_owned())
        .record(seconds);
    counter!(
        "http_requests_total",
        "method" => method.to_owned(), "route" => route.to_owned(), "status" => status.to_string()
    )
    .increment(1);
}

/// The gateway's call to `service` was answered with `status` after `seconds`.
pub fn upstream_answered(service: &'static str, status: u16, seconds: f64) {
    histogram!("gateway_upstream_duration_seconds", "service" => service).record(seconds);
    counter!("gateway_upstream_requests_total", "service" => service, "status" => status.to_string())
        .increment(1);
}

/// The gateway's call to `service` failed: `kind` is `timeout` or `unavailable`.
pub fn upstream_failed(service: &'static str, kind: &'static str) {
    counter!("gateway_upstream_errors_total", "service" => service, "kind" => kind).increment(1);
}

/// `rows` expired rows of `table` deleted by the clean-up.
pub fn cleaned_up(table: &'static str, rows: u64) {
    counter!("cleanup_deleted_total", "table" => table).increment(rows);
}

/// A message of `topic` was sent to a retry topic.
pub fn retried(topic: &str) {
    counter!("consumer_retries_total", "topic" => topic.to_owned()).increment(1);
}

/// A message of `topic` was sent to its dead-letter topic.
pub fn dead_lettered(topic: &str) {
    counter!("consumer_dead_lettered_total", "topic" => topic.to_owned()).increment(1);
}

/// Kafka client `client` has sent `n` more requests of kind `request` (librdkafka's
/// name: `Produce`, `Fetch`, ...).
pub fn kafka_requests(client: &str, request: &str, n: u64) {
    counter!("kafka_client_requests_total", "client" => client.to_owned(), "request" => request.to_owned())
        .increment(n);
}

/// The consumer is `lag` messages behind on a partition.
pub fn consumer_lag(topic: &str, partition: i32, lag: i64) {
    gauge!("consumer_lag", "topic" => topic.to_owned(), "partition" => partition.to_string()).set(lag as f64);
}

/// The `outbox_backlog` gauge line, written at scrape time from the database.
pub fn backlog_line(pending: i64) -> String {
    format!("# TYPE outbox_backlog gauge\noutbox_backlog {pending}\n")
}

/// The process lines, read now from `/proc`: `process_cpu_seconds_total` and
/// `process_start_time_seconds` (the standard names); empty where there is no `/proc`.
pub fn process_lines() -> String {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return String::new() };
    let mut lines = String::new();
    if let Some(seconds) = cpu_seconds(&stat) {
        lines += &format!("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {seconds}\n");
    }
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| boot_time(&s));
    if let Some(started) = boot.and_then(|boot| start_time_seconds(&stat, boot)) {
        lines += &format!("# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {started}\n");
    }
    lines
}

/// When the machine booted (`btime` of `/proc/stat`), in seconds since the epoch.
fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat.lines().find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())
}

/// When the process of a `/proc/<pid>/stat` line started, in seconds since the epoch:
/// its `starttime` (field 22, ticks after boot) plus the boot time.
pub fn start_time_seconds(stat: &str, boot_time: u64) -> Option<f64> {
    Some(boot_time as f64 + stat_field(stat, 22)? as f64 / 100.0)
}

/// Field `n` (counted from 1, as in proc(5)) of a `/proc/<pid>/stat` line, as a number.
/// The fields are counted after the command name, which is in parentheses and may hold
/// spaces.
fn stat_field(stat: &str, n: usize) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    // After the name comes field 3 (the state).
    after_name.split_whitespace().nth(n.checked_sub(3)?)?.parse().ok()
}

/// User plus system time from a `/proc/<pid>/stat` line, in seconds: fields 14 and 15,
/// in USER_HZ ticks, 100 a second in Linux's user-space ABI.
pub fn cpu_seconds(stat: &str) -> Option<f64> {
    Some((stat_field(stat, 14)? + stat_field(stat, 15)?) as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_user_plus_system_ticks_even_with_a_space_in_the_name() {
        let stat = "4242 (order service) S 1 4242 4242 0 -1 4194560 2711 0 0 0 1234 566 0 0 20 0 9 0 \
                    12345 1 2 3";
        assert_eq!(cpu_seconds(stat), Some(18.0));
        assert_eq!(cpu_seconds("garbage"), None);
        assert_eq!(start_time_seconds(stat, 1_000), Some(1_123.45));
        assert_eq!(boot_time("cpu  1 2 3\nbtime 1764000000\nprocesses 9\n"), Some(1_764_000_000));
    }

    #[test]
    fn this_process_reports_its_cpu_time() {
        let lines = process_lines();
        assert!(
            lines.contains("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total "),
            "{lines}"
        );
        let started: f64 = lines
            .lines()
            .find_map(|line| line.strip_prefix("process_start_time_seconds "))
            .expect("a start time")
            .parse()
            .expect("a number");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
        // This test process started a moment ago.
        assert!(started <= now.as_secs_f64() + 1.0 && started > now.as_secs_f64() - 3600.0, "{started}");
    }
}
