//! librdkafka's statistics as metrics: the requests each client sent, by kind, and each
//! partition's consumer lag. The broker's work grows with the requests it answers rather
//! than with the messages in them (librdkafka sends one partition per produce request),
//! so these counts explain its CPU time; the load generator divides them by the sagas.
//!
//! Only the fields used are read from the raw JSON: the statistics of a consumer of every
//! topic (the saga board's) are large, and the crate's full parse would build all of it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use rdkafka::client::ClientContext;
use serde::Deserialize;

use crate::metrics;

/// How often librdkafka reports, in milliseconds: the consumer's interval since before
/// these counts, and what `loadgen` waits for before its readings. (A CI hang once
/// suspected of the one-second interval was librdkafka issue #4884, a member that joined
/// and never polled; see `EventConsumer::start`.)
pub(crate) const INTERVAL_MS: &str = "5000";

/// The part of one statistics report that this system uses.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ClientStatistics {
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    brokers: HashMap<String, BrokerStatistics>,
    #[serde(default)]
    topics: HashMap<String, TopicStatistics>,
}

#[derive(Debug, Default, Deserialize)]
struct BrokerStatistics {
    /// Requests sent to this broker connection so far, by kind.
    #[serde(default)]
    req: HashMap<String, i64>,
}

#[derive(Debug, Default, Deserialize)]
struct TopicStatistics {
    /// By partition number, as text; -1 is librdkafka's unassigned partition.
    #[serde(default)]
    partitions: HashMap<String, PartitionStatistics>,
}

#[derive(Debug, Deserialize)]
struct PartitionStatistics {
    /// -1 where the consumer does not know it (no committed offset yet, not assigned).
    #[serde(default = "unknown")]
    consumer_lag: i64,
}

fn unknown() -> i64 {
    -1
}

impl ClientStatistics {
    /// Reads a report; `None`, with a warning, for one that is not librdkafka's JSON.
    pub(crate) fn parse(raw: &[u8]) -> Option<Self> {
        serde_json::from_slice(raw)
            .inspect_err(|error| tracing::warn!(%error, "librdkafka statistics not understood"))
            .ok()
    }

    /// Requests sent so far over all of the client's broker connections (the bootstrap
    /// and coordinator connections too: the broker answers those as well), by kind.
    /// Kinds never sent are left out.
    pub(crate) fn requests(&self) -> BTreeMap<&str, i64> {
        let mut requests = BTreeMap::new();
        for broker in self.brokers.values() {
            for (kind, n) in broker.req.iter().filter(|(_, n)| **n > 0) {
                *requests.entry(kind.as_str()).or_default() += n;
            }
        }
        requests
    }

    /// Each assigned partition's lag, where the consumer knows it.
    pub(crate) fn lags(&self) -> impl Iterator<Item = (&str, i32, i64)> {
        self.topics.iter().flat_map(|(topic, stats)| {
            stats.partitions.iter().filter_map(move |(partition, stats)| {
                let partition: i32 = partition.parse().ok()?;
                (partition >= 0 && stats.consumer_lag >= 0).then_some((
                    topic.as_str(),
                    partition,
                    stats.consumer_lag,
                ))
            })
        })
    }
}

/// One client's request counts as it last reported them: each report adds to
/// `kafka_client_requests_total` only what is new since. Setting the counter to the
/// reported total instead would hide a client made again under the same id (the dead
/// letters' replay makes one per replay) below the old one's count.
#[derive(Debug, Default)]
pub(crate) struct RequestCounts(Mutex<HashMap<String, i64>>);

impl RequestCounts {
    /// Adds this report's new requests to the client's counters.
    pub(crate) fn record(&self, statistics: &ClientStatistics) {
        for (kind, n) in self.new_since_last(statistics) {
            metrics::kafka_requests(&statistics.client_id, kind, n);
        }
    }

    /// The requests sent since the last report, by kind. A total that went down (a broker
    /// connection gone from the report) counts from its new value on.
    fn new_since_last<'s>(&self, statistics: &'s ClientStatistics) -> Vec<(&'s str, u64)> {
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut new = Vec::new();
        for (kind, n) in statistics.requests() {
            let before = last.insert(kind.to_owned(), n).unwrap_or(0);
            if let Ok(sent @ 1..) = u64::try_from(n - before) {
                new.push((kind, sent));
            }
        }
        new
    }
}

/// The context of the platform's producers: it counts their requests in metrics.
#[derive(Debug, Default)]
pub struct CountRequests(RequestCounts);

impl ClientContext for CountRequests {
    fn stats_raw(&self, statistics: &[u8]) {
        if let Some(statistics) = ClientStatistics::parse(statistics) {
            self.0.record(&statistics);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped as librdkafka 2.x writes it, cut to a few fields of each kind.
    const REPORT: &str = r#"{
        "name": "order-service-consumer#consumer-1", "client_id": "order-service-consumer",
        "type": "consumer", "ts": 1, "msg_cnt": 0,
        "brokers": {
            "127.0.0.1:9092/bootstrap": {"name": "127.0.0.1:9092/bootstrap", "nodeid": -1,
                "req": {"Produce": 0, "Fetch": 0, "Metadata": 2, "ApiVersion": 1}},
            "localhost:9092/1": {"name": "localhost:9092/1", "nodeid": 1, "tx": 42,
                "req": {"Produce": 0, "Fetch": 40, "Metadata": 1, "OffsetCommit": 0}},
            "GroupCoordinator": {"name": "GroupCoordinator", "nodeid": 1,
                "req": {"Heartbeat": 7, "OffsetCommit": 3}}
        },
        "topics": {
            "order.created": {"topic": "order.created", "partitions": {
                "0": {"partition": 0, "consumer_lag": 5},
                "1": {"partition": 1, "consumer_lag": -1},
                "-1": {"partition": -1, "consumer_lag": -1}
            }}
        }
    }"#;

    #[test]
    fn requests_are_summed_over_the_connections_and_unsent_kinds_left_out() {
        let statistics = ClientStatistics::parse(REPORT.as_bytes()).expect("parses");
        assert_eq!(statistics.client_id, "order-service-consumer");
        let requests = statistics.requests();
        let expected = BTreeMap::from([
            ("ApiVersion", 1),
            ("Fetch", 40),
            ("Heartbeat", 7),
            ("Metadata", 3),
            ("OffsetCommit", 3),
        ]);
        assert_eq!(requests, expected);
    }

    #[test]
    fn each_report_counts_only_what_was_sent_since_the_last() {
        let report = |fetches: i64, commits: i64| {
            let json = format!(
                r#"{{"client_id": "c", "brokers": {{"b/1": {{"req": {{"Fetch": {fetches}, "OffsetCommit": {commits}}}}}}}}}"#
            );
            ClientStatistics::parse(json.as_bytes()).expect("parses")
        };
        let counts = RequestCounts::default();
        assert_eq!(counts.new_since_last(&report(40, 3)), [("Fetch", 40), ("OffsetCommit", 3)]);
        assert_eq!(counts.new_since_last(&report(45, 3)), [("Fetch", 5)]);
        // A connection gone from the report: nothing new, and the count goes on from there.
        assert_eq!(counts.new_since_last(&report(30, 3)), []);
        assert_eq!(counts.new_since_last(&report(32, 4)), [("Fetch", 2), ("OffsetCommit", 1)]);
        // A client made again under the same id has counts of its own: all of them new.
        assert_eq!(RequestCounts::default().new_since_last(&report(2, 0)), [("Fetch", 2)]);
    }

    #[test]
    fn only_known_lags_of_real_partitions_are_reported() {
        let statistics = ClientStatistics::parse(REPORT.as_bytes()).expect("parses");
        assert_eq!(statistics.lags().collect::<Vec<_>>(), [("order.created", 0, 5)]);
    }

    #[test]
    fn a_report_that_is_not_json_is_refused() {
        assert!(ClientStatistics::parse(b"not json").is_none());
        assert!(ClientStatistics::parse(br#"{"brokers": 3}"#).is_none());
    }
}
