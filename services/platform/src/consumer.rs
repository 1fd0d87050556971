//! The consumer runtime: typed handlers, effects exactly once, non-blocking retries and
//! dead-letter topics.
//!
//! Each service is one consumer group. A handler gets the typed event, its metadata and
//! an open write transaction; the event id is recorded in `processed_events` in that same
//! transaction, so a redelivered event is dropped without a second effect. The offset is
//! stored only after the transaction (or the forward to a retry or dead-letter topic) is
//! done, and committed in the background: a crash redelivers, and the id check absorbs it.
//!
//! Partitions are worked concurrently, each in order. On SQLite the messages already
//! fetched for a partition are applied in one transaction, and one by one only when one
//! of them fails (see `Inner::process_batch`). A worker that dies (a panic) ends the
//! consumer with [`WorkerDied`], so the service stops and is restarted rather than leave
//! its partition unconsumed. A handler error that may pass
//! ([`HandlerError::Transient`]) sends the message to the retry topic of its attempt,
//! `<group>.retry-<n>` (one per attempt, shared by every topic the group consumes), whose
//! messages wait out the backoff before they run again, so the original partition moves
//! on. After the last attempt, or at once for a message
//! that can never succeed (not JSON, wrong shape, unknown type, a
//! [`HandlerError::Permanent`]), it goes to `<topic>.dlt`, key and value unchanged, with
//! headers saying where it came from and why.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use shared_events::headers::{self, dead_letter};
use shared_events::{Event, topics};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::background::panic_message;
use crate::config::{KafkaConfig, RetryPolicy};
use crate::db::{Backend, Db, Tx};
use crate::kafka::{KafkaSetupError, client_config, ensure_topics};
use crate::outbox::{now_ms, producer, rfc3339_ms};
use crate::{error_chain, metrics};

/// The most messages of one partition applied in one transaction.
const MAX_BATCH: usize = 128;

/// Headers a message carries on a retry topic (they are replaced, not kept, on the next hop).
pub mod retry_headers {
    /// The topic the message was first consumed from.
    pub const ORIGINAL_TOPIC: &str = "retry_original_topic";
    /// Its partition there.
    pub const ORIGINAL_PARTITION: &str = "retry_original_partition";
    /// Its offset there.
    pub const ORIGINAL_OFFSET: &str = "retry_original_offset";
    /// Attempts made so far.
    pub const ATTEMPTS: &str = "retry_attempts";
    /// When the first attempt failed, in epoch milliseconds.
    pub const FIRST_FAILURE_AT_MS: &str = "retry_first_failure_at_ms";
    /// Not to be tried before this time, in epoch milliseconds.
    pub const NOT_BEFORE_MS: &str = "retry_not_before_ms";
    /// The error of the last attempt.
    pub const LAST_ERROR: &str = "retry_last_error";
}

/// The retry topic of consumer group `group` holding the messages (of any of its topics)
/// whose attempt `attempt` failed. One topic per attempt: all its messages wait the same
/// backoff, so they fall due in the order they arrive.
pub fn retry_topic(group: &str, attempt: u32) -> String {
    format!("{group}.retry-{attempt}")
}

/// What a handler knows about the event besides its payload.
#[derive(Debug, Clone)]
pub struct EventMeta {
    /// `ce_id`: the event's unique id.
    pub id: Uuid,
    /// `ce_type`, e.g. `order.created.v1`.
    pub event_type: String,
    /// `ce_source`: the producing service.
    pub source: Option<String>,
    /// `ce_time`: when it was committed (RFC 3339).
    pub time: Option<String>,
    /// The topic it was first published on (not the retry topic).
    pub topic: String,
    /// Its partition there.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// 1 on the first delivery, n on the n-th attempt.
    pub attempt: u32,
    /// Every header of the message, as text.
    pub headers: HashMap<String, String>,
}

/// How a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// It may pass (database busy, a service down): tried again after the backoff.
    #[error("transient failure")]
    Transient(#[source] anyhow::Error),
    /// It never will (the event breaks a rule): straight to the dead-letter topic.
    #[error("permanent failure")]
    Permanent(#[source] anyhow::Error),
}

impl HandlerError {
    /// A permanent failure with a message.
    pub fn permanent(message: impl std::fmt::Display) -> Self {
        Self::Permanent(anyhow::anyhow!("{message}"))
    }

    /// A transient failure with a message.
    pub fn transient(message: impl std::fmt::Display) -> Self {
        Self::Transient(anyhow::anyhow!("{message}"))
    }
}

impl From<sqlx::Error> for HandlerError {
    fn from(error: sqlx::Error) -> Self {
        Self::Transient(error.into())
    }
}

/// Applies one kind of event. The effect goes through `tx`, which commits (with any
/// events the handler publishes) only if it returns `Ok`.
#[async_trait]
pub trait Handler<E: Event>: Send + Sync + 'static {
    /// Applies `event`.
    async fn handle(&self, event: E, meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError>;
}

/// What happened to a message that was applied or dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    Now,
    Before,
}

impl Applied {
    /// Its `outcome` label in the handler metrics.
    fn outcome(self) -> &'static str {
        match self {
            Self::Now => "applied",
            Self::Before => "duplicate",
        }
    }
}

/// A handler with its event type erased, so one table can route every topic.
#[async_trait]
trait Route: Send + Sync {
    /// Applies `received` through `tx` unless `group` applied it before; the caller commits.
    async fn apply(&self, received: Received<'_>, tx: &mut Tx, group: &str) -> Result<Applied, HandlerError>;
}

/// A message as a route sees it.
struct Received<'a> {
    message: &'a OwnedMessage,
    delivery: &'a Delivery,
    headers: HashMap<String, String>,
}

struct Typed<E, H> {
    handler: H,
    event: PhantomData<fn() -> E>,
}

#[async_trait]
impl<E: Event, H: Handler<E>> Route for Typed<E, H> {
    async fn apply(&self, received: Received<'_>, tx: &mut Tx, group: &str) -> Result<Applied, HandlerError> {
        let meta = event_meta(received.delivery, received.headers, E::TYPE)?;
        let payload = received.message.payload().ok_or_else(|| HandlerError::permanent("empty message"))?;
        let event: E = serde_json::from_slice(payload)
            .map_err(|e| HandlerError::permanent(format!("payload is not a valid {}: {e}", E::TYPE)))?;
        if !first_time(tx, group, &meta.id.to_string()).await? {
            return Ok(Applied::Before);
        }
        self.handler.handle(event, &meta, tx).await?;
        Ok(Applied::Now)
    }
}

/// Records `id` as processed by `group`; false if it already was.
async fn first_time(tx: &mut Tx, group: &str, id: &str) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO processed_events (consumer_group, event_id, processed_at_ms) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(group)
    .bind(id)
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The CloudEvents metadata of a message, checked against the type its topic carries.
fn event_meta(
    delivery: &Delivery,
    headers: HashMap<String, String>,
    expected: &str,
) -> Result<EventMeta, HandlerError> {
    let id = headers
        .get(headers::CE_ID)
        .ok_or_else(|| HandlerError::permanent("no ce_id header"))?
        .parse::<Uuid>()
        .map_err(|e| HandlerError::permanent(format!("ce_id is not a UUID: {e}")))?;
    let event_type =
        headers.get(headers::CE_TYPE).ok_or_else(|| HandlerError::permanent("no ce_type header"))?;
    if event_type != expected {
        return Err(HandlerError::permanent(format!(
            "unknown event type {event_type} on {} (expected {expected})",
            delivery.topic
        )));
    }
    Ok(EventMeta {
        id,
        event_type: event_type.clone(),
        source: headers.get(headers::CE_SOURCE).cloned(),
        time: headers.get(headers::CE_TIME).cloned(),
        topic: delivery.topic.clone(),
        partition: delivery.partition,
        offset: delivery.offset,
        attempt: delivery.attempt,
        headers,
    })
}

/// A message read from a dead-letter topic, whatever its payload (it may not even be JSON).
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The dead-letter topic.
    pub topic: String,
    /// Its partition there.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// The key, as text.
    pub key: Option<String>,
    /// The value, as text (lossy for bytes that are not UTF-8).
    pub payload: Option<String>,
    /// Every header, as text: the `dlt_` ones say where it came from and why.
    pub headers: HashMap<String, String>,
}

/// Applies messages of a dead-letter topic (records them, alerts someone).
#[async_trait]
pub trait DeadLetterHandler: Send + Sync + 'static {
    /// Applies `letter` through `tx`.
    async fn handle(&self, letter: DeadLetter, tx: &mut Tx) -> Result<(), HandlerError>;
}

struct DeadLetters<H> {
    handler: H,
}

#[async_trait]
impl<H: DeadLetterHandler> Route for DeadLetters<H> {
    async fn apply(&self, received: Received<'_>, tx: &mut Tx, group: &str) -> Result<Applied, HandlerError> {
        let Received { message, delivery, headers } = received;
        let text = |bytes: Option<&[u8]>| bytes.map(|b| String::from_utf8_lossy(b).into_owned());
        let letter = DeadLetter {
            topic: delivery.topic.clone(),
            partition: delivery.partition,
            offset: delivery.offset,
            key: text(message.key()),
            payload: text(message.payload()),
            headers,
        };
        // Keyed by position, not by ce_id: the same event replayed and applied later must
        // not look processed already.
        let id = format!("dlt:{}:{}:{}", letter.topic, letter.partition, letter.offset);
        if !first_time(tx, group, &id).await? {
            return Ok(Applied::Before);
        }
        self.handler.handle(letter, tx).await?;
        Ok(Applied::Now)
    }
}

/// Which handler applies the events of which topic.
#[derive(Default, Clone)]
pub struct Subscriptions {
    routes: HashMap<String, Arc<dyn Route>>,
}

impl std::fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.routes.keys()).finish()
    }
}

impl Subscriptions {
    /// No subscriptions yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies events of type `E` from their topic with `handler`.
    pub fn on<E: Event>(self, handler: impl Handler<E>) -> Self {
        self.on_topic::<E>(E::TOPIC, handler)
    }

    /// Applies events of type `E` read from `topic` (a dead-letter topic, say) with `handler`.
    pub fn on_topic<E: Event>(mut self, topic: &str, handler: impl Handler<E>) -> Self {
        self.routes.insert(topic.to_owned(), Arc::new(Typed { handler, event: PhantomData::<fn() -> E> }));
        self
    }

    /// Applies what lands in `<topic>.dlt` with `handler`.
    pub fn on_dead_letters(mut self, topic: &str, handler: impl DeadLetterHandler) -> Self {
        self.routes.insert(topics::dead_letter(topic), Arc::new(DeadLetters { handler }));
        self
    }

    /// The topics subscribed to.
    pub fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.routes.keys().cloned().collect();
        topics.sort();
        topics
    }

    /// Whether there is nothing to consume.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// Reports librdkafka's per-partition consumer lag as a metric.
struct LagReporter;

impl ClientContext for LagReporter {
    fn stats(&self, statistics: Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, stats) in &stats.partitions {
                if *partition >= 0 && stats.consumer_lag >= 0 {
                    metrics::consumer_lag(topic, *partition, stats.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for LagReporter {}

/// A running consumer group member with its handlers.
pub struct EventConsumer {
    consumer: Arc<StreamConsumer<LagReporter>>,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventConsumer").field("group", &self.inner.group).finish()
    }
}

/// What every partition worker shares.
struct Inner {
    db: Db,
    group: String,
    retry: RetryPolicy,
    routes: Subscriptions,
    producer: FutureProducer,
    topic_prefix: String,
}

impl EventConsumer {
    /// Joins consumer group `group`, creating the subscribed topics, their retry topics and
    /// their dead-letter topics if missing.
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

        let consumer: StreamConsumer<LagReporter> = client_config(kafka, &format!("{group}-consumer"))
            .set("group.id", group)
            // A new group starts at the beginning: nothing published before it joined is lost.
            .set("auto.offset.reset", "earliest")
            // Offsets are stored by the workers once an event is applied, and committed
            // in the background from there.
            .set("enable.auto.offset.store", "false")
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("statistics.interval.ms", "5000")
            // An instance that crashed holds its partitions until its session times out
            // (45 s by default): the chaos run saw sagas stall that long after a SIGKILL.
            // 10 s (with a heartbeat every 3 s) bounds the stall and still rides out a
            // pause of a few seconds without a rebalance.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "3000")
            .create_with_context(LagReporter)
            .map_err(client_error)?;
        let subscribed: Vec<String> =
            subscriptions.topics().iter().map(|t| kafka.topic(t)).chain(retry_topics).collect();
        consumer
            .subscribe(&subscribed.iter().map(String::as_str).collect::<Vec<_>>())
            .map_err(client_error)?;
        let producer = producer(kafka, &format!("{group}-forwarder")).map_err(client_error)?;
        Ok(Self {
            consumer: Arc::new(consumer),
            inner: Arc::new(Inner {
                db,
                group: group.to_owned(),
                retry,
                routes: subscriptions,
                producer,
                topic_prefix: kafka.topic_prefix.clone(),
            }),
        })
    }

    /// Consumes until `shutdown` is cancelled; then lets each worker finish the message in
    /// hand, commits the stored offsets and leaves the group. Returns an error, after the
    /// same shutdown, when a partition's worker died (a panic): its partition would
    /// otherwise stay unconsumed while the service looks well.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WorkerDied> {
        // Workers stop on the caller's shutdown or when one of them dies.
        let stopping = shutdown.child_token();
        let mut workers: JoinSet<()> = JoinSet::new();
        let mut partitions: HashMap<tokio::task::Id, (String, i32)> = HashMap::new();
        let mut queues: HashMap<(String, i32), mpsc::Sender<OwnedMessage>> = HashMap::new();
        let mut died = None;
        loop {
            let received = tokio::select! {
                received = self.consumer.recv() => received,
                Some(ended) = workers.join_next_with_id() => {
                    let (id, outcome) = match ended {
                        Ok((id, ())) => (id, None),
                        Err(error) => (error.id(), Some(error)),
                    };
                    let (topic, partition) = partitions.remove(&id).unwrap_or_default();
                    let reason = match outcome {
                        Some(error) if error.is_panic() => format!("panicked: {}", panic_message(error.into_panic().as_ref())),
                        _ => "stopped without being told to".to_owned(),
                    };
                    died = Some(WorkerDied { topic, partition, reason });
                    break;
                }
                () = shutdown.cancelled() => break,
            };
            let message = match received {
                Ok(message) => message.detach(),
                Err(error) => {
                    tracing::warn!(group = %self.inner.group, error = %error, "kafka consumer error");
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
            tracing::warn!(group = %self.inner.group, "consumer did not close within 10 s");
        }
        tracing::info!(group = %self.inner.group, "consumer stopped");
        died.map_or(Ok(()), Err)
    }

    fn spawn_worker(
        &self,
        workers: &mut JoinSet<()>,
        stopping: &CancellationToken,
    ) -> (mpsc::Sender<OwnedMessage>, tokio::task::Id) {
        let (queue, mut messages) = mpsc::channel::<OwnedMessage>(256);
        let consumer = self.consumer.clone();
        let inner = self.inner.clone();
        let stopping = stopping.clone();
        let worker = workers.spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            // What is already fetched for the partition, up to MAX_BATCH: a batch never
            // waits for messages to come, so a lone message goes at once.
            while messages.recv_many(&mut batch, MAX_BATCH).await > 0 {
                if stopping.is_cancelled() {
                    break;
                }
                if inner.process_batch(&batch, &stopping).await.is_err() {
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

/// A partition's worker ended before the consumer was told to stop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the worker of {topic}[{partition}] {reason}")]
pub struct WorkerDied {
    /// The topic of its partition.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// How it ended (the panic's message).
    pub reason: String,
}

/// Shutdown came before the message was done with.
struct Interrupted;

/// Where a message stands in its retries.
struct Delivery {
    topic: String,
    partition: i32,
    offset: i64,
    attempt: u32,
    first_failure_at_ms: Option<i64>,
    not_before_ms: Option<i64>,
}

impl Delivery {
    fn of(message: &OwnedMessage, headers: &HashMap<String, String>) -> Self {
        let number = |name: &str| headers.get(name).and_then(|v| v.parse::<i64>().ok());
        match headers.get(retry_headers::ORIGINAL_TOPIC) {
            Some(topic) => Self {
                topic: topic.clone(),
                partition: number(retry_headers::ORIGINAL_PARTITION).unwrap_or(-1) as i32,
                offset: number(retry_headers::ORIGINAL_OFFSET).unwrap_or(-1),
                attempt: number(retry_headers::ATTEMPTS).unwrap_or(1) as u32 + 1,
                first_failure_at_ms: number(retry_headers::FIRST_FAILURE_AT_MS),
                not_before_ms: number(retry_headers::NOT_BEFORE_MS),
            },
            None => Self {
                topic: message.topic().to_owned(),
                partition: message.partition(),
                offset: message.offset(),
                attempt: 1,
                first_failure_at_ms: None,
                not_before_ms: None,
            },
        }
    }
}

fn text_headers(message: &OwnedMessage) -> HashMap<String, String> {
    message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .filter_map(|h| Some((h.key.to_owned(), String::from_utf8_lossy(h.value?).into_owned())))
                .collect()
        })
        .unwrap_or_default()
}

impl Inner {
    /// Applies one message, or forwards it to a retry or dead-letter topic. `Err` only
    /// when shutdown interrupted it.
    async fn process(&self, message: &OwnedMessage, shutdown: &CancellationToken) -> Result<(), Interrupted> {
        let headers = text_headers(message);
        let delivery = Delivery::of(message, &headers);
        if let Some(due) = delivery.not_before_ms {
            let wait = Duration::from_millis((due - now_ms()).max(0) as u64);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => return Err(Interrupted),
            }
        }
        let span = consume_span(message, &delivery, &headers);
        let started = Instant::now();
        let outcome = self.apply(message, &delivery, headers.clone()).instrument(span.clone()).await;
        let seconds = started.elapsed().as_secs_f64();
        // Logs and forwards run inside the span by `instrument`, never by an entered
        // guard: a guard held across an await stays entered on the thread the task left,
        // and tracing's registry then panics in whatever task runs there next.
        async {
            match outcome {
                Ok(applied) => {
                    if applied == Applied::Before {
                        tracing::debug!(topic = %delivery.topic, "duplicate event dropped");
                    }
                    metrics::handled(&delivery.topic, applied.outcome(), seconds);
                }
                Err(failure @ HandlerError::Transient(_)) if delivery.attempt < self.retry.max_attempts => {
                    let error = error_chain(&failure);
                    tracing::warn!(topic = %delivery.topic, attempt = delivery.attempt, %error, "handler failed, will retry");
                    metrics::handled(&delivery.topic, "retry", seconds);
                    let forward = self.retry_record(&delivery, &headers, &error);
                    if self.forward(message, &delivery, forward, shutdown).await? {
                        metrics::retried(&delivery.topic);
                    }
                }
                Err(failure) => {
                    let error = error_chain(&failure);
                    tracing::error!(topic = %delivery.topic, attempt = delivery.attempt, %error, "message sent to the dead-letter topic");
                    metrics::handled(&delivery.topic, "dead_letter", seconds);
                    let forward = self.dead_letter_record(&delivery, &headers, &error);
                    if self.forward(message, &delivery, forward, shutdown).await? {
                        metrics::dead_lettered(&delivery.topic);
                    }
                }
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Applies one message in a transaction of its own.
    async fn apply(
        &self,
        message: &OwnedMessage,
        delivery: &Delivery,
        headers: HashMap<String, String>,
    ) -> Result<Applied, HandlerError> {
        let route = self.route(delivery)?;
        let mut tx = self.db.begin_write().await?;
        let applied = route.apply(Received { message, delivery, headers }, &mut tx, &self.group).await?;
        match applied {
            Applied::Now => tx.commit().await?,
            Applied::Before => tx.rollback().await?,
        }
        Ok(applied)
    }

    fn route(&self, delivery: &Delivery) -> Result<&Arc<dyn Route>, HandlerError> {
        self.routes
            .routes
            .get(delivery.topic.strip_prefix(self.topic_prefix.as_str()).unwrap_or(&delivery.topic))
            .ok_or_else(|| HandlerError::permanent(format!("no handler for topic {}", delivery.topic)))
    }

    /// Applies `batch`, messages of one partition in offset order. On SQLite, messages
    /// that are due (all but those waiting out a retry backoff) go through ONE
    /// transaction: one commit, one wake-up of the relay for all their events. If any of
    /// them fails, or the commit does, that transaction rolls back and each message is
    /// applied on its own, so only the failing one is retried or dead-lettered. `Err` only
    /// when shutdown interrupted.
    ///
    /// On PostgreSQL each message keeps a transaction of its own: partitions are applied
    /// in parallel there, and batches that lock rows of several aggregates (the SKUs of
    /// several orders) in different orders deadlock each other; each deadlock stalls both
    /// for PostgreSQL's `deadlock_timeout` (1 s). Measured: 29 sagas/s at saturation with
    /// batches, 126 and 154 (two runs) without. SQLite has one writer at a time, so no
    /// deadlock there.
    async fn process_batch(
        &self,
        batch: &[OwnedMessage],
        shutdown: &CancellationToken,
    ) -> Result<(), Interrupted> {
        if batch.len() > 1 && self.db.backend() == Backend::Sqlite {
            let now = now_ms();
            let prepared: Vec<(HashMap<String, String>, Delivery)> = batch
                .iter()
                .map(|message| {
                    let headers = text_headers(message);
                    let delivery = Delivery::of(message, &headers);
                    (headers, delivery)
                })
                .collect();
            let due =
                prepared.iter().all(|(_, delivery)| delivery.not_before_ms.is_none_or(|due| due <= now));
            let topic = batch[0].topic();
            if due {
                if self.apply_together(batch, prepared).await {
                    metrics::batch_applied(topic, batch.len());
                    return Ok(());
                }
                metrics::batch_fell_back(topic);
            }
        }
        for message in batch {
            self.process(message, shutdown).await?;
        }
        Ok(())
    }

    /// Applies every message of `batch` in one transaction; false (nothing applied) when
    /// one of them or the commit failed.
    async fn apply_together(
        &self,
        batch: &[OwnedMessage],
        prepared: Vec<(HashMap<String, String>, Delivery)>,
    ) -> bool {
        let Ok(mut tx) = self.db.begin_write().await else { return false };
        let mut outcomes = Vec::with_capacity(batch.len());
        for (message, (headers, delivery)) in batch.iter().zip(prepared) {
            let span = consume_span(message, &delivery, &headers);
            let started = Instant::now();
            let Ok(route) = self.route(&delivery) else { return false };
            let received = Received { message, delivery: &delivery, headers };
            match route.apply(received, &mut tx, &self.group).instrument(span).await {
                Ok(applied) => outcomes.push((delivery.topic, applied, started.elapsed().as_secs_f64())),
                Err(_) => return false,
            }
        }
        if tx.commit().await.is_err() {
            return false;
        }
        for (topic, applied, seconds) in outcomes {
            metrics::handled(&topic, applied.outcome(), seconds);
        }
        true
    }

    /// The message for the retry topic of this attempt: due after the backoff.
    fn retry_record(&self, delivery: &Delivery, headers: &HashMap<String, String>, error: &str) -> Forward {
        let now = now_ms();
        let due = now + self.retry.backoff_after(delivery.attempt).as_millis() as i64;
        let first = delivery.first_failure_at_ms.unwrap_or(now);
        Forward {
            topic: retry_topic(&self.group, delivery.attempt),
            headers: carried_headers(headers)
                .insert(text(retry_headers::ORIGINAL_TOPIC, &delivery.topic))
                .insert(text(retry_headers::ORIGINAL_PARTITION, &delivery.partition.to_string()))
                .insert(text(retry_headers::ORIGINAL_OFFSET, &delivery.offset.to_string()))
                .insert(text(retry_headers::ATTEMPTS, &delivery.attempt.to_string()))
                .insert(text(retry_headers::FIRST_FAILURE_AT_MS, &first.to_string()))
                .insert(text(retry_headers::NOT_BEFORE_MS, &due.to_string()))
                .insert(text(retry_headers::LAST_ERROR, error)),
        }
    }

    /// The message for `<topic>.dlt`, with the headers of the contract.
    fn dead_letter_record(
        &self,
        delivery: &Delivery,
        headers: &HashMap<String, String>,
        error: &str,
    ) -> Forward {
        let now = now_ms();
        Forward {
            topic: topics::dead_letter(&delivery.topic),
            headers: carried_headers(headers)
                .insert(text(dead_letter::ORIGINAL_TOPIC, &delivery.topic))
                .insert(text(dead_letter::ORIGINAL_PARTITION, &delivery.partition.to_string()))
                .insert(text(dead_letter::ORIGINAL_OFFSET, &delivery.offset.to_string()))
                .insert(text(dead_letter::CONSUMER_GROUP, &self.group))
                .insert(text(dead_letter::ERROR, error))
                .insert(text(dead_letter::ATTEMPTS, &delivery.attempt.to_string()))
                .insert(text(
                    dead_letter::FIRST_FAILURE_AT,
                    &rfc3339_ms(delivery.first_failure_at_ms.unwrap_or(now)),
                ))
                .insert(text(dead_letter::LAST_FAILURE_AT, &rfc3339_ms(now))),
        }
    }

    /// Produces `forward` with the message's key and value, until Kafka takes it; `false`
    /// when this attempt of this message was forwarded already (a redelivered copy: one
    /// failure must not start two retry chains, nor put two copies in the DLT).
    async fn forward(
        &self,
        message: &OwnedMessage,
        delivery: &Delivery,
        forward: Forward,
        shutdown: &CancellationToken,
    ) -> Result<bool, Interrupted> {
        // Keyed by the original position and the attempt: stable across every hop.
        let marker = format!(
            "forward:{}:{}:{}:{}",
            delivery.topic, delivery.partition, delivery.offset, delivery.attempt
        );
        if self.forwarded_before(&marker).await {
            tracing::debug!(%marker, "already forwarded, copy dropped");
            return Ok(false);
        }
        self.produce(message, &forward, shutdown).await?;
        // Recorded after the send: a crash between the two forwards twice, never zero times.
        if let Err(error) = self.mark_forwarded(&marker).await {
            tracing::warn!(%error, %marker, "could not record the forward");
        }
        Ok(true)
    }

    async fn forwarded_before(&self, marker: &str) -> bool {
        let found = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM processed_events WHERE consumer_group = $1 AND event_id = $2",
        )
        .bind(&self.group)
        .bind(marker)
        .fetch_one(self.db.pool())
        .await;
        // Unknown (database down): forward; a duplicate is better than a loss.
        found.is_ok_and(|count| count > 0)
    }

    async fn mark_forwarded(&self, marker: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin_write().await?;
        first_time(&mut tx, &self.group, marker).await?;
        tx.commit().await
    }

    /// Produces `forward` with the message's key and value, until Kafka takes it.
    async fn produce(
        &self,
        message: &OwnedMessage,
        forward: &Forward,
        shutdown: &CancellationToken,
    ) -> Result<(), Interrupted> {
        let mut pause = Duration::from_millis(100);
        loop {
            let mut record = FutureRecord::to(&forward.topic).headers(forward.headers.clone());
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(payload) = message.payload() {
                record = record.payload(payload);
            }
            let sent = tokio::select! {
                sent = self.producer.send(record, Duration::from_secs(30)) => sent,
                () = shutdown.cancelled() => return Err(Interrupted),
            };
            match sent {
                Ok(_) => return Ok(()),
                Err((error, _)) => {
                    tracing::warn!(topic = %forward.topic, %error, "forwarding failed, trying again");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = shutdown.cancelled() => return Err(Interrupted),
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// A message to produce elsewhere with the original key and value.
struct Forward {
    topic: String,
    headers: OwnedHeaders,
}

fn text<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header { key, value: Some(value) }
}

/// The original headers (CloudEvents, trace context, anything else), without those of an
/// earlier retry hop.
fn carried_headers(headers: &HashMap<String, String>) -> OwnedHeaders {
    let mut carried: Vec<(&String, &String)> =
        headers.iter().filter(|(key, _)| !key.starts_with("retry_") && !key.starts_with("dlt_")).collect();
    carried.sort();
    carried.into_iter().fold(OwnedHeaders::new_with_capacity(headers.len() + 8), |all, (key, value)| {
        all.insert(Header { key, value: Some(value.as_str()) })
    })
}

/// The span of one message's processing, child of the trace in its headers.
fn consume_span(message: &OwnedMessage, delivery: &Delivery, headers: &HashMap<String, String>) -> Span {
    let span = tracing::info_span!(
        "process",
        otel.name = %format!("{} process", delivery.topic),
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.operation = "process",
        messaging.destination.name = %delivery.topic,
        messaging.kafka.source.topic = %message.topic(),
        messaging.kafka.partition = message.partition(),
        messaging.kafka.offset = message.offset(),
        messaging.message.id = headers.get(headers::CE_ID).map(String::as_str).unwrap_or(""),
        cloudevents.event_type = headers.get(headers::CE_TYPE).map(String::as_str).unwrap_or(""),
        attempt = delivery.attempt,
    );
    if headers.contains_key(headers::TRACEPARENT) {
        let _ = span.set_parent(TraceContextPropagator::new().extract(headers));
    }
    span
}
