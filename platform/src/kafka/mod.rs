//! Kafka clients: client settings, topic creation at start, the readiness probe, and
//! the clients' statistics as metrics ([`stats`]).

mod stats;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, FutureProducer, Producer};

pub use self::stats::CountRequests;
pub(crate) use self::stats::{ClientStatistics, INTERVAL_MS as STATISTICS_INTERVAL_MS, RequestCounts};
use crate::config::KafkaConfig;

/// The platform's producer: its requests are counted in `kafka_client_requests_total`.
pub type CountedProducer = FutureProducer<CountRequests>;

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
        // A topic created elsewhere is seen within seconds, not the default five minutes.
        .set("topic.metadata.refresh.interval.ms", "10000")
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
    // A name twice in one request makes the broker answer once, and rdkafka 0.39 then
    // reads past the results (a segfault, seen here): ask once per name.
    let mut topics = topics.to_vec();
    topics.sort_unstable();
    topics.dedup();
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|topic| {
            NewTopic::new(topic, kafka.topic_partitions, TopicReplication::Fixed(kafka.replication_factor))
        })
        .collect();
    // Creating many topics at once (a service with retries and dead letters on a busy
    // broker) can take longer than a probe may.
    let timeout = Some(Duration::from_secs(30));
    let options = AdminOptions::new().operation_timeout(timeout).request_timeout(timeout);
    let results = admin.create_topics(&new_topics, &options).await.map_err(client_error)?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaSetupError::CreateTopic { topic, code }),
        }
    }
    wait_until_visible(admin, topics.iter().map(|t| (*t).to_owned()).collect()).await.map_err(client_error)
}

/// Waits until the cluster's metadata shows every topic with a leader for each partition.
/// A consumer that subscribes before that does not see the topic until its next metadata
/// refresh, minutes later: retries and dead letters would wait that long.
async fn wait_until_visible(
    admin: AdminClient<DefaultClientContext>,
    topics: Vec<String>,
) -> Result<(), KafkaError> {
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let metadata = admin.inner().fetch_metadata(None, BROKER_TIMEOUT)?;
            let visible = |name: &String| {
                metadata.topics().iter().any(|t| {
                    t.name() == name
                        && t.error().is_none()
                        && !t.partitions().is_empty()
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                })
            };
            if topics.iter().all(visible) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .map_err(|_| KafkaError::Canceled)?
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

/// A producer that never loses or reorders a message it accepted: idempotent (acks=all,
/// in-flight retries keep order) and without a delivery deadline, so a broker outage
/// delays the relay instead of failing rows out of order.
pub fn producer(kafka: &KafkaConfig, client_id: &str) -> Result<CountedProducer, KafkaError> {
    client_config(kafka, client_id)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "0")
        // No linger: a lone event goes at once. Under load librdkafka still batches what
        // queues up while earlier requests are in flight.
        .set("linger.ms", "0")
        .set("queue.buffering.max.messages", "200000")
        .set("statistics.interval.ms", stats::INTERVAL_MS)
        .create_with_context(CountRequests::default())
}
