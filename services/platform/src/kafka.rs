//! Kafka clients: client settings, topic creation at start, and the readiness probe.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer};

use crate::config::KafkaConfig;

/// How long start-up and probes wait for the broker before they report it down.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

/// A Kafka call that failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    /// The client could not be created or the broker did not answer.
    #[error("kafka at {bootstrap}")]
    Client {
        /// The bootstrap servers tried.
        bootstrap: String,
        /// Why.
        #[source]
        source: KafkaError,
    },
    /// The broker refused to create a topic.
    #[error("creating topic {topic} failed: {code}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
}

/// Settings every client of this service starts from: servers and client id.
pub fn client_config(kafka: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("client.id", client_id)
        // Fail fast on a missing broker instead of retrying for the default minute.
        .set("socket.connection.setup.timeout.ms", "5000")
        // Small requests go out at once: Nagle's algorithm would hold them for an ACK.
        .set("socket.nagle.disable", "true");
    config
}

/// Creates `topics` with the configured partitions and replication factor, leaving any
/// that exist as they are, so every instance of every service can call it at start.
pub async fn ensure_topics(
    kafka: &KafkaConfig,
    client_id: &str,
    topics: &[&str],
) -> Result<(), KafkaSetupError> {
    if topics.is_empty() {
        return Ok(());
    }
    let client_error =
        |source| KafkaSetupError::Client { bootstrap: kafka.bootstrap_servers.clone(), source };
    let admin: AdminClient<DefaultClientContext> =
        client_config(kafka, client_id).create().map_err(client_error)?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|topic| {
            NewTopic::new(topic, kafka.topic_partitions, TopicReplication::Fixed(kafka.replication_factor))
        })
        .collect();
    let options =
        AdminOptions::new().operation_timeout(Some(BROKER_TIMEOUT)).request_timeout(Some(BROKER_TIMEOUT));
    let results = admin.create_topics(&new_topics, &options).await.map_err(client_error)?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaSetupError::CreateTopic { topic, code }),
        }
    }
    Ok(())
}

/// A cheap client that answers whether the brokers are reachable.
#[derive(Clone)]
pub struct KafkaProbe {
    producer: Arc<BaseProducer>,
    bootstrap: String,
}

impl std::fmt::Debug for KafkaProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProbe").field("bootstrap", &self.bootstrap).finish()
    }
}

impl KafkaProbe {
    /// Creates the probe's client; this does not contact the broker yet.
    pub fn new(kafka: &KafkaConfig, client_id: &str) -> Result<Self, KafkaSetupError> {
        let producer = client_config(kafka, &format!("{client_id}-probe")).create().map_err(|source| {
            KafkaSetupError::Client { bootstrap: kafka.bootstrap_servers.clone(), source }
        })?;
        Ok(Self { producer: Arc::new(producer), bootstrap: kafka.bootstrap_servers.clone() })
    }

    /// Asks the cluster for its brokers; `Ok(n)` is how many answered in the metadata.
    pub async fn ping(&self) -> Result<usize, KafkaSetupError> {
        let producer = self.producer.clone();
        // librdkafka's metadata call blocks its thread.
        let metadata = tokio::task::spawn_blocking(move || {
            producer.client().fetch_metadata(None, BROKER_TIMEOUT).map(|m| m.brokers().len())
        })
        .await
        .map_err(|_| KafkaError::Canceled)
        .and_then(|result| result);
        metadata.map_err(|source| KafkaSetupError::Client { bootstrap: self.bootstrap.clone(), source })
    }
}
