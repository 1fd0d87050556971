//! Which services have consumed each message of a timeline: their consumer groups'
//! committed offsets, read from Kafka when a timeline is asked for. Not kept in the store:
//! it changes as they consume, and it is what shows where a saga that stalled is waiting
//! (and that notification-service, which publishes nothing for the e-mails it sends, has
//! taken an order's final event).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use platform::config::KafkaConfig;
use platform::kafka::client_config;
use platform::registry;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use crate::domain::Position;

/// How long the broker may take to say where a group stands.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Readers of the services' committed offsets, one per consumer group. They never join
/// their group: fetching a group's offsets is a read.
#[derive(Clone)]
pub struct Consumers {
    kafka: KafkaConfig,
    groups: Arc<Vec<(&'static str, BaseConsumer)>>,
}

impl std::fmt::Debug for Consumers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.groups.iter().map(|(name, _)| name)).finish()
    }
}

impl Consumers {
    /// A reader for every service that consumes (each has a database), but the board.
    pub fn new(kafka: &KafkaConfig) -> Result<Self, KafkaError> {
        let mut groups = Vec::new();
        for service in registry::services().iter().filter(|s| s.owns_database && s.name != "saga-board") {
            let consumer: BaseConsumer = client_config(kafka, "saga-board-offsets")
                .set("group.id", kafka.topic(service.name))
                .set("enable.auto.commit", "false")
                .create()?;
            groups.push((service.name, consumer));
        }
        Ok(Self { kafka: kafka.clone(), groups: Arc::new(groups) })
    }

    /// For each of `positions` (contract topic names), the services whose group has
    /// committed past it.
    pub async fn of(
        &self,
        positions: Vec<Position>,
    ) -> Result<HashMap<Position, Vec<&'static str>>, KafkaError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.read(&positions)).await.map_err(|_| KafkaError::Canceled)?
    }

    fn read(&self, positions: &[Position]) -> Result<HashMap<Position, Vec<&'static str>>, KafkaError> {
        let mut partitions = TopicPartitionList::new();
        for position in positions {
            let topic = self.kafka.topic(&position.topic);
            if partitions.find_partition(&topic, position.partition).is_none() {
                partitions.add_partition(&topic, position.partition);
            }
        }
        let mut passed: HashMap<Position, Vec<&'static str>> =
            positions.iter().map(|p| (p.clone(), Vec::new())).collect();
        for (service, consumer) in self.groups.iter() {
            let committed = consumer.committed_offsets(partitions.clone(), TIMEOUT)?;
            for position in positions {
                let next = committed
                    .find_partition(&self.kafka.topic(&position.topic), position.partition)
                    .map(|p| p.offset());
                if let Some(Offset::Offset(next)) = next
                    && position.offset < next
                    && let Some(services) = passed.get_mut(position)
                {
                    services.push(service);
                }
            }
        }
        Ok(passed)
    }
}
