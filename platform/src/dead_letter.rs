//! Reading dead-letter topics and replaying their messages onto the original topics.
//!
//! A replayed message keeps its key, value and CloudEvents headers (so its `ce_id` too:
//! if it was applied after all, the consumer drops it); the `dlt_` headers are left
//! behind, and `replayed_from` says which dead letter it was. The command `dlt-replay` wraps [`replay`].

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use shared_events::headers::{REPLAYED_FROM, dead_letter};

use crate::config::KafkaConfig;
use crate::kafka::client_config;
use crate::kafka::producer;

/// How long a read waits for the broker before giving up.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Which messages of a dead-letter topic to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Every message in the topic now.
    All,
    /// The one message at this partition and offset.
    One {
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
    },
}

/// Why reading or replaying failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Kafka refused or did not answer.
    #[error("kafka")]
    Kafka(#[from] KafkaError),
    /// The topic does not exist.
    #[error("no topic {0}")]
    NoTopic(String),
    /// The selected message does not exist.
    #[error("no message at {topic} partition {partition} offset {offset}")]
    NoMessage {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
    },
    /// A message lacks the header naming where it came from.
    #[error("message at partition {partition} offset {offset} has no {} header", dead_letter::ORIGINAL_TOPIC)]
    NoOrigin {
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
    },
}

/// Every message in `topic` from the beginning up to its end when called, partition by
/// partition. Reads without a consumer group, so nobody's offsets move.
pub async fn read_all(kafka: &KafkaConfig, topic: &str) -> Result<Vec<OwnedMessage>, ReplayError> {
    let consumer: BaseConsumer = client_config(kafka, "dead-letter-reader")
        .set("group.id", "dead-letter-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || read_blocking(&consumer, &topic))
        .await
        .map_err(|_| ReplayError::Kafka(KafkaError::Canceled))?
}

fn read_blocking(consumer: &BaseConsumer, topic: &str) -> Result<Vec<OwnedMessage>, ReplayError> {
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    let extent = loop {
        match extent(consumer, topic) {
            Err(ReplayError::Kafka(error))
                if leader_moving(&error) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            extent => break extent?,
        }
    };
    let mut messages = Vec::new();
    if extent.is_empty() {
        return Ok(messages);
    }
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for (partition, low, high) in extent {
        assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
        ends.push((partition, high));
    }
    consumer.assign(&assignment)?;
    let done = |messages: &[OwnedMessage]| {
        ends.iter().all(|(partition, high)| {
            messages.iter().filter(|m| m.partition() == *partition).map(|m| m.offset()).max()
                >= Some(high - 1)
        })
    };
    while !done(&messages) {
        if std::time::Instant::now() > deadline {
            return Err(KafkaError::Canceled.into());
        }
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            messages.push(message?.detach());
        }
    }
    messages.sort_by_key(|m| (m.partition(), m.offset()));
    Ok(messages)
}

/// The partitions of `topic` that hold messages, with their first and end offsets.
fn extent(consumer: &BaseConsumer, topic: &str) -> Result<Vec<(i32, i64, i64)>, ReplayError> {
    let metadata = consumer.fetch_metadata(Some(topic), READ_TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .ok_or_else(|| ReplayError::NoTopic(topic.to_owned()))?;
    let mut extent = Vec::new();
    for partition in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, READ_TIMEOUT)?;
        if high > low {
            extent.push((partition, low, high));
        }
    }
    Ok(extent)
}

/// Whether the broker answered that a partition's leader is moving or not elected yet: a
/// topic created a moment ago (a first dead letter's) answers so briefly, as does one
/// whose broker just changed (CI once failed a read on `NotLeaderForPartition`).
fn leader_moving(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::NotLeaderForPartition | RDKafkaErrorCode::LeaderNotAvailable)
    )
}

/// Puts the selected messages of dead-letter topic `topic` back on their original topics;
/// returns how many.
pub async fn replay(kafka: &KafkaConfig, topic: &str, selection: Selection) -> Result<usize, ReplayError> {
    let messages: Vec<OwnedMessage> = read_all(kafka, topic)
        .await?
        .into_iter()
        .filter(|m| match selection {
            Selection::All => true,
            Selection::One { partition, offset } => m.partition() == partition && m.offset() == offset,
        })
        .collect();
    if let (Selection::One { partition, offset }, true) = (selection, messages.is_empty()) {
        return Err(ReplayError::NoMessage { topic: topic.to_owned(), partition, offset });
    }
    let producer = producer(kafka, "dead-letter-replay")?;
    for message in &messages {
        let headers = message.headers();
        let origin = headers
            .and_then(|h| h.iter().find(|h| h.key == dead_letter::ORIGINAL_TOPIC))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .ok_or(ReplayError::NoOrigin { partition: message.partition(), offset: message.offset() })?;
        let from = format!("{topic}/{}/{}", message.partition(), message.offset());
        let kept = headers
            .map(|h| {
                h.iter()
                    .filter(|h| !h.key.starts_with("dlt_") && h.key != REPLAYED_FROM)
                    .fold(OwnedHeaders::new(), |all, h| all.insert(Header { key: h.key, value: h.value }))
            })
            .unwrap_or_default()
            .insert(Header { key: REPLAYED_FROM, value: Some(from.as_str()) });
        let mut record = FutureRecord::to(&origin).headers(kept);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        producer.send(record, READ_TIMEOUT).await.map_err(|(error, _)| error)?;
        tracing::info!(from = topic, to = %origin, partition = message.partition(), offset = message.offset(), "replayed");
    }
    Ok(messages.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_waits_out_a_moving_leader_and_nothing_else() {
        assert!(leader_moving(&KafkaError::MetadataFetch(RDKafkaErrorCode::NotLeaderForPartition)));
        assert!(leader_moving(&KafkaError::MetadataFetch(RDKafkaErrorCode::LeaderNotAvailable)));
        assert!(!leader_moving(&KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition)));
        assert!(!leader_moving(&KafkaError::MetadataFetch(RDKafkaErrorCode::BrokerTransportFailure)));
        assert!(!leader_moving(&KafkaError::Canceled));
    }
}
