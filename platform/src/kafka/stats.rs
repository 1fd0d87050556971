//! librdkafka's statistics as metrics: the requests each client sent, by kind, and each
//! partition's consumer lag. The broker's work grows with the requests it answers rather
//! than with the messages in them (librdkafka sends one partition per produce request),
//! so these counts explain its CPU time; the load generator divides them by the sagas.
//!
//! Only the fields used are read from the raw JSON: the statistics of a consumer of every
//! topic (the saga board's) are large, and the crate's full parse would build all of it.

use std::collections::{BTreeMap, HashMap};

use rdkafka::client::ClientContext;
use serde::Deserialize;

use crate::metrics;

/// How often librdkafka reports, in milliseconds: often enough that a load run's counts
/// are current within a second of its end.
pub(crate) const INTERVAL_MS: &str = "1000";

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

    /// Sets `kafka_client_requests_total` for this client.
    pub(crate) fn record_requests(&self) {
        for (kind, n) in self.requests() {
            metrics::kafka_requests(&self.client_id, kind, n);
        }
    }
}

/// The context of the platform's producers: it records their requests as metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountRequests;

impl ClientContext for CountRequests {
    fn stats_raw(&self, statistics: &[u8]) {
        if let Some(statistics) = ClientStatistics::parse(statistics) {
            statistics.record_requests();
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
