//! The consumer runtime: typed handlers, effects exactly once, non-blocking retries and
//! dead-letter topics.
//!
//! Each service is one consumer group. A handler gets the typed event, its metadata and
//! an open write transaction; the event id is recorded in `processed_events` in that same
//! transaction, so a redelivered event is dropped without a second effect. The offset is
//! stored only after the transaction (or the forward to a retry or dead-letter topic) is
//! done, and committed in the background: a crash redelivers, and the id check absorbs it.
//!
//! Partitions are worked concurrently, each in order. The messages already fetched for a
//! partition are applied in one transaction (on PostgreSQL only for handlers that lock in
//! one order, [`Subscriptions::batched_on_postgres`]), and one by one only when one of
//! them fails (see [`EventConsumer::process_batch`]). A worker that dies (a panic)
//! ends the consumer with [`ConsumerDied`], so the service stops and is restarted rather
//! than leave its partition unconsumed; so does a client error that cannot pass (another
//! instance joined under this one's static name). A handler error that may pass
//! ([`HandlerError::Transient`]) sends the message to the retry topic of its attempt,
//! `<group>.retry-<n>` (one per attempt, shared by every topic the group consumes), whose
//! messages wait out the backoff before they run again, so the original partition moves
//! on. After the last attempt, or at once for a message that can never succeed (not
//! JSON, wrong shape, unknown type, a [`HandlerError::Permanent`]), it goes to
//! `<topic>.dlt`, key and value unchanged, with headers saying where it came from and why.
//!
//! The parts: `handler` (what services write and the table routing topics to it),
//! `delivery` (a message's headers and where it stands in its retries), `dedupe`,
//! `forward` (retry and dead-letter topics), `span` (tracing), and `pipeline`, the step
//! that composes them; this module runs the group membership and the partition workers.

mod dedupe;
mod delivery;
mod forward;
mod handler;
mod pipeline;
mod span;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::topic_partition_list::TopicPartitionList;
use shared_events::topics;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use self::delivery::{retry_headers, retry_topic};
use self::forward::Forwarder;
pub use self::handler::{EventMeta, Handler, HandlerError, RawHandler, RawMessage, Subscriptions};
use self::pipeline::Pipeline;
pub use self::pipeline::{BatchOutcome, Outcome};
use crate::background::panic_message;
use crate::config::{KafkaConfig, RetryPolicy};
use crate::db::Db;
use crate::kafka::{
    ClientStatistics, KafkaSetupError, RequestCounts, STATISTICS_INTERVAL_MS, client_config, ensure_topics,
    producer,
};
use crate::metrics;

/// The most messages of one partition applied in one transaction.
const MAX_BATCH: usize = 128;

/// How often the stored offsets are committed: what a crash redelivers at most.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// What the consumer does on librdkafka's callbacks: reports its requests and each
/// partition's lag as metrics, and logs commits that failed. It does not commit before a
/// revoke: a commit made in the rebalance callback while the consumer closes trips
/// librdkafka's assertion `!rd_kafka_assignment_in_progress` in `rd_kafka_cgrp_terminated`
/// (an abort, seen once in CI), so a new owner may apply again the last second's
/// messages, which the event ids absorb.
#[derive(Default)]
struct GroupEvents {
    requests: RequestCounts,
}

impl ClientContext for GroupEvents {
    fn stats_raw(&self, statistics: &[u8]) {
        let Some(statistics) = ClientStatistics::parse(statistics) else { return };
        self.requests.record(&statistics);
        for (topic, partition, lag) in statistics.lags() {
            metrics::consumer_lag(topic, partition, lag);
        }
    }
}

impl ConsumerContext for GroupEvents {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => tracing::warn!(%error, "offsets not committed (they are again within a second)"),
        }
    }
}

/// A running consumer group member with its handlers.
pub struct EventConsumer {
    consumer: Arc<StreamConsumer<GroupEvents>>,
    /// The topics `run` subscribes to: the group is joined there, not in `start`.
    subscribed: Vec<String>,
    pipeline: Arc<Pipeline>,
}

impl std::fmt::Debug for EventConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventConsumer").field("group", &self.pipeline.group).finish()
    }
}

impl EventConsumer {
    /// Makes a member of consumer group `group`, creating the subscribed topics, their
    /// retry topics and their dead-letter topics if missing. It joins the group in
    /// [`run`](Self::run): a member that joined and never polled would hold its partitions
    /// unconsumed, stall the group's next rebalance, and can hang librdkafka's close in
    /// `rd_kafka_assign` (librdkafka issue #4884, seen in CI from a test that never ran
    /// its consumer).
    pub async fn start(
        db: Db,
        kafka: &KafkaConfig,
        group: &str,
        retry: RetryPolicy,
        subscriptions: Subscriptions,
    ) -> Result<Self, KafkaSetupError> {
        let client_error =
            |source| KafkaSetupError::Client { bootstrap: kafka.bootstrap_servers.clone(), source };
        let mut topics = Vec::new();
        let retry_topics: Vec<String> =
            (1..retry.max_attempts).map(|attempt| retry_topic(group, attempt)).collect();
        for topic in subscriptions.topics().iter().map(|t| kafka.topic(t)) {
            topics.push(topics::dead_letter(&topic));
            topics.push(topic);
        }
        topics.extend(retry_topics.iter().cloned());
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        ensure_topics(kafka, group, &topic_refs).await?;

        let mut config = client_config(kafka, &format!("{group}-consumer"));
        if let Some(linger) = kafka.fetch_linger.filter(|linger| !linger.is_zero()) {
            // The broker answers a fetch once it holds 1 MiB for it or the linger is up:
            // under any load this system sees, the linger. An idle consumer then asks once
            // per linger rather than once per 500 ms, a few requests a second.
            config.set("fetch.wait.max.ms", linger.as_millis().to_string()).set("fetch.min.bytes", "1048576");
        }
        if let Some(instance) = &kafka.group_instance_id {
            // Static membership: a restart under the same name gets its partitions back
            // from the coordinator at once, where a new member would wait for the dead
            // one's session to time out and then for a rebalance of the whole group.
            config.set("group.instance.id", instance);
        }
        let consumer: StreamConsumer<GroupEvents> = config
            .set("group.id", group)
            // A new group starts at the beginning: nothing published before it joined is lost.
            .set("auto.offset.reset", "earliest")
            // Offsets are stored by the workers once an event is applied, and committed
            // by `run` every second. Not librdkafka's auto-commit: up
            // to 2.12 it commits the offsets of an assignment lost to a session timeout,
            // with the member id already reset, which the coordinator answers for a static
            // member with FENCED_INSTANCE_ID, fatal to the client (librdkafka PR #5585).
            // The scale-out chaos run saw every instance of three services stop that way
            // when a broker that coordinated their groups was killed. A commit of ours
            // parked while the coordinator is away can still go out after such a reset;
            // that is rarer, and the service then stops and is restarted.
            .set("enable.auto.offset.store", "false")
            .set("enable.auto.commit", "false")
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
            // An instance that crashed holds its partitions until its session times out
            // (45 s by default): the chaos run saw sagas stall that long after a SIGKILL.
            // 10 s (with a heartbeat every 3 s) bounds the stall and still rides out a
            // pause of a few seconds without a rebalance.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "3000")
            .create_with_context(GroupEvents::default())
            .map_err(client_error)?;
        let subscribed: Vec<String> =
            subscriptions.topics().iter().map(|t| kafka.topic(t)).chain(retry_topics).collect();
        let producer = producer(kafka, &format!("{group}-forwarder")).map_err(client_error)?;
        Ok(Self {
            consumer: Arc::new(consumer),
            subscribed,
            pipeline: Arc::new(Pipeline {
                db: db.clone(),
                group: group.to_owned(),
                routes: subscriptions,
                topic_prefix: kafka.topic_prefix.clone(),
                forwarder: Forwarder { group: group.to_owned(), retry, producer, db },
            }),
        })
    }

    /// Joins the group and consumes until `shutdown` is cancelled; then lets each worker
    /// finish the message in hand, commits the stored offsets and leaves the group (a
    /// static member does not leave: its partitions wait for it for the session timeout).
    /// Returns an error, after the same shutdown, when a partition's worker died (a panic)
    /// or the client failed for good: its partitions would otherwise stay unconsumed while
    /// the service looks well.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ConsumerDied> {
        let topics: Vec<&str> = self.subscribed.iter().map(String::as_str).collect();
        if let Err(error) = self.consumer.subscribe(&topics) {
            return Err(ConsumerDied::Fatal(format!("subscribing to {topics:?}: {error}")));
        }
        // Workers stop on the caller's shutdown or when one of them dies.
        let stopping = shutdown.child_token();
        let mut workers: JoinSet<()> = JoinSet::new();
        let mut partitions: HashMap<tokio::task::Id, (String, i32)> = HashMap::new();
        let mut queues: HashMap<(String, i32), mpsc::Sender<OwnedMessage>> = HashMap::new();
        let mut died = None;
        let mut commits = tokio::time::interval(COMMIT_INTERVAL);
        commits.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let received = tokio::select! {
                received = self.consumer.recv() => received,
                _ = commits.tick() => {
                    self.commit_stored();
                    continue;
                }
                Some(ended) = workers.join_next_with_id() => {
                    // Workers end by themselves once told to stop: that is no death, only
                    // the shutdown that this select! may see second.
                    if shutdown.is_cancelled() {
                        break;
                    }
                    let (id, outcome) = match ended {
                        Ok((id, ())) => (id, None),
                        Err(error) => (error.id(), Some(error)),
                    };
                    let (topic, partition) = partitions.remove(&id).unwrap_or_default();
                    let reason = match outcome {
                        Some(error) if error.is_panic() => format!("panicked: {}", panic_message(error.into_panic().as_ref())),
                        _ => "stopped without being told to".to_owned(),
                    };
                    died = Some(ConsumerDied::Worker { topic, partition, reason });
                    break;
                }
                () = shutdown.cancelled() => break,
            };
            let message = match received {
                Ok(message) => message.detach(),
                Err(error) => {
                    if let Some((code, reason)) = self.consumer.client().fatal_error() {
                        died = Some(ConsumerDied::Fatal(format!("{code:?}: {reason}")));
                        break;
                    }
                    tracing::warn!(group = %self.pipeline.group, error = %error, "kafka consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let key = (message.topic().to_owned(), message.partition());
            let queue = queues.entry(key.clone()).or_insert_with(|| {
                let (queue, id) = self.spawn_worker(&mut workers, &stopping);
                partitions.insert(id, key);
                queue
            });
            if let Err(mpsc::error::SendError(message)) = queue.send(message).await {
                // The worker is gone (it died: the next turn of the loop sees it end); the
                // message's offset was not stored, so it is redelivered after the restart.
                tracing::debug!(topic = message.topic(), "worker gone, message left for redelivery");
            }
        }
        stopping.cancel();
        drop(queues);
        while workers.join_next().await.is_some() {}
        let consumer = self.consumer.clone();
        // Committing and closing block in librdkafka, and closing can hang while the broker
        // is gone: both run off the runtime.
        let closed = tokio::task::spawn_blocking(move || {
            if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(%error, "final offset commit");
            }
            drop(consumer);
        });
        if tokio::time::timeout(Duration::from_secs(10), closed).await.is_err() {
            tracing::warn!(group = %self.pipeline.group, "consumer did not close within 10 s");
        }
        tracing::info!(group = %self.pipeline.group, "consumer stopped");
        died.map_or(Ok(()), Err)
    }

    /// Commits the offsets the workers stored, without waiting for the answer.
    fn commit_stored(&self) {
        // The outcome comes to `GroupEvents::commit_callback`.
        if let Err(error) = self.consumer.commit_consumer_state(CommitMode::Async) {
            tracing::debug!(group = %self.pipeline.group, %error, "offset commit");
        }
    }

    /// Applies `batch` (messages of one partition, in offset order) as a partition's
    /// worker does, without storing offsets: the step the workers repeat, for tests to
    /// drive directly. `None` when `shutdown` interrupted it.
    pub async fn process_batch(
        &self,
        batch: &[OwnedMessage],
        shutdown: &CancellationToken,
    ) -> Option<BatchOutcome> {
        self.pipeline.process_batch(batch, shutdown).await.ok()
    }

    fn spawn_worker(
        &self,
        workers: &mut JoinSet<()>,
        stopping: &CancellationToken,
    ) -> (mpsc::Sender<OwnedMessage>, tokio::task::Id) {
        let (queue, mut messages) = mpsc::channel::<OwnedMessage>(256);
        let consumer = self.consumer.clone();
        let pipeline = self.pipeline.clone();
        let stopping = stopping.clone();
        let worker = workers.spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            // What is already fetched for the partition, up to MAX_BATCH: a batch never
            // waits for messages to come, so a lone message goes at once.
            while messages.recv_many(&mut batch, MAX_BATCH).await > 0 {
                if stopping.is_cancelled() {
                    break;
                }
                if pipeline.process_batch(&batch, &stopping).await.is_err() {
                    break; // shut down mid-batch: leave what is not stored for redelivery
                }
                if let Some(last) = batch.last()
                    && let Err(error) = consumer.store_offset(last.topic(), last.partition(), last.offset())
                {
                    // The partition was reassigned meanwhile; its new owner redelivers.
                    tracing::debug!(%error, topic = last.topic(), "offset not stored");
                }
                batch.clear();
            }
            // Told to stop, or the queue closed: wait for the loop to notice and end.
            stopping.cancelled().await;
        });
        (queue, worker.id())
    }
}

/// Why the consumer ended before it was told to stop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumerDied {
    /// A partition's worker ended: a handler panicked.
    #[error("the worker of {topic}[{partition}] {reason}")]
    Worker {
        /// The topic of its partition.
        topic: String,
        /// The partition.
        partition: i32,
        /// How it ended (the panic's message).
        reason: String,
    },
    /// librdkafka reported an error it cannot recover from, such as being fenced by
    /// another instance that joined under the same `KAFKA_GROUP_INSTANCE_ID`, or refused
    /// the subscription.
    #[error("the Kafka consumer failed for good ({0})")]
    Fatal(String),
}

/// Shutdown came before the message was done with.
struct Interrupted;
