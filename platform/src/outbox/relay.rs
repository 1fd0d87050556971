//! The relay: publishes what the outbox holds, in id order, and marks it published.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use shared_events::headers;
use sqlx::Row;
use sqlx::any::AnyRow;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::OutboxRow;
use super::feed::{Feed, Pending, Taken};
use crate::cleanup::{self, Retention};
use crate::clock::{now_ms, rfc3339_ms};
use crate::config::KafkaConfig;
use crate::db::{Backend, Db, Tx};
use crate::kafka::{CountedProducer, producer};
use crate::metrics;

/// How the relay batches, waits and cleans up.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Rows claimed and sent together at most.
    pub batch_size: usize,
    /// How often to look for rows when no commit woke the relay (a safety net: commits
    /// in this process and, on PostgreSQL, in every process wake it at once).
    pub poll_interval: Duration,
    /// On SQLite, how long rows sent wait for a commit of the service to mark them
    /// published before the relay writes the marks itself ([`super::feed`]).
    pub mark_delay: Duration,
    /// How long published rows and processed event ids are kept.
    pub retention: Retention,
    /// How often old rows are deleted.
    pub cleanup_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            poll_interval: Duration::from_secs(1),
            mark_delay: Duration::from_millis(100),
            retention: Retention::default(),
            cleanup_interval: Duration::from_secs(60),
        }
    }
}

/// Why a relay step failed; the relay logs it and tries again.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading or marking the outbox failed.
    #[error("outbox database")]
    Db(#[from] sqlx::Error),
    /// Kafka did not acknowledge a message.
    #[error("publishing to kafka")]
    Kafka(#[from] KafkaError),
}

/// Publishes the outbox of one service database to Kafka.
#[derive(Clone)]
pub struct Relay {
    db: Db,
    producer: CountedProducer,
    source: &'static str,
    config: RelayConfig,
    topic_prefix: String,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("source", &self.source).field("config", &self.config).finish()
    }
}

/// Key of the PostgreSQL advisory lock that serialises the relays of one database.
const RELAY_LOCK: i64 = 0x6f75_7462_6f78; // "outbox"

/// How long a stopping relay lets a batch in flight finish.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// What became of a batch: how many rows Kafka acknowledged, in order up to the first
/// failure, and that failure.
struct Sent {
    acked: Vec<i64>,
    failed: Option<KafkaError>,
}

impl Sent {
    /// How many went out, or the failure that stopped the rest.
    fn into_result(self) -> Result<usize, RelayError> {
        match self.failed {
            Some(error) => Err(error.into()),
            None => Ok(self.acked.len()),
        }
    }
}

/// Marks ids `first..=last` published.
pub(crate) async fn mark_range(tx: &mut Tx, first: i64, last: i64) -> Result<(), sqlx::Error> {
    tx.write("UPDATE outbox SET published_at_ms = $1 WHERE id BETWEEN $2 AND $3")
        .bind(now_ms())
        .bind(first)
        .bind(last)
        .await
}

/// Pending rows as the relay's `SELECT` returns them.
fn decode(rows: Vec<AnyRow>) -> Result<Vec<Pending>, sqlx::Error> {
    rows.iter()
        .map(|row| {
            Ok(Pending {
                id: row.try_get(0)?,
                row: OutboxRow {
                    event_id: row.try_get(1)?,
                    topic: row.try_get(2)?,
                    key: row.try_get(3)?,
                    event_type: std::borrow::Cow::Owned(row.try_get(4)?),
                    payload: row.try_get(5)?,
                    traceparent: row.try_get(6)?,
                    tracestate: row.try_get(7)?,
                    created_at_ms: row.try_get(8)?,
                },
            })
        })
        .collect()
}

/// Marks `ids` published: a range when they run on without a hole, as handed-over rows
/// always do (one statement text, which the statement cache keeps), a list otherwise.
async fn mark_published(tx: &mut Tx, ids: &[i64]) -> Result<(), sqlx::Error> {
    let (first, last) = (ids[0], ids[ids.len() - 1]);
    if last - first + 1 == ids.len() as i64 {
        mark_range(tx, first, last).await
    } else {
        let sql = format!(
            "UPDATE outbox SET published_at_ms = $1 WHERE id IN ({})",
            crate::db::params(ids.len(), 2)
        );
        tx.write(sqlx::AssertSqlSafe(sql)).bind(now_ms()).bind_all(ids.iter().copied()).await
    }
}

impl Relay {
    /// A relay for `db`, publishing as `source` (the `ce_source` of its events).
    pub fn new(
        db: Db,
        kafka: &KafkaConfig,
        source: &'static str,
        config: RelayConfig,
    ) -> Result<Self, KafkaError> {
        let producer = producer(kafka, &format!("{source}-relay"))?;
        Ok(Self { db, producer, source, config, topic_prefix: kafka.topic_prefix.clone() })
    }

    /// Publishes one batch of pending events and marks them published; returns how many.
    /// Tests call this step directly instead of waiting on [`Relay::run`].
    pub async fn publish_pending(&self) -> Result<usize, RelayError> {
        self.step(true, true).await
    }

    /// One batch. On SQLite, when no commit handed the relay rows since its last batch
    /// and none missed doing so, it reads the table only if `read_when_idle`: woken by a
    /// commit whose rows an earlier batch took, it would find nothing there. Unless
    /// `mark_now`, handed-over rows are marked published by a later commit
    /// ([`super::feed`]).
    async fn step(&self, read_when_idle: bool, mark_now: bool) -> Result<usize, RelayError> {
        match self.db.feed() {
            Some(feed) => self.publish_fed(feed, read_when_idle, mark_now).await,
            None => self.publish_locked().await,
        }
    }

    /// PostgreSQL's step: read, send and mark a batch under the relays' advisory lock.
    async fn publish_locked(&self) -> Result<usize, RelayError> {
        let mut tx = self.db.begin_write().await?;
        sqlx::query("SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock($1)) AS relay_lock")
            .bind(RELAY_LOCK)
            .execute(tx.conn().await?)
            .await?;
        let batch = decode(self.select_pending().fetch_all(tx.conn().await?).await?)?;
        if batch.is_empty() {
            return Ok(0);
        }
        let sent = self.send(&batch).await;
        if !sent.acked.is_empty() {
            mark_published(&mut tx, &sent.acked).await?;
        }
        tx.commit().await?;
        sent.into_result()
    }

    /// SQLite's step: the rows the feed hands over while it follows on from the relay's
    /// mark, the table's otherwise. Handed-over rows are marked published by a later
    /// commit unless `mark_now`.
    async fn publish_fed(
        &self,
        feed: &Feed,
        read_when_idle: bool,
        mark_now: bool,
    ) -> Result<usize, RelayError> {
        let mut mark = feed.turn.lock().await;
        let (batch, handed_over) = match feed.take(*mark, self.config.batch_size) {
            Taken::Rows(rows) => (rows, true),
            Taken::Nothing if !read_when_idle => return Ok(0),
            Taken::Nothing | Taken::Gap => {
                // Rows sent but not yet marked would read as pending, and go twice.
                self.write_marks(feed).await?;
                // Outside a transaction: one held open across the publish would block
                // the service's writers.
                (decode(self.select_pending().fetch_all(self.db.pool()).await?)?, false)
            }
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let sent = self.send(&batch).await;
        if let (Some(&first), Some(&last)) = (sent.acked.first(), sent.acked.last()) {
            if handed_over && !mark_now {
                feed.mark_later(first, last);
            } else {
                // A commit, which takes any marks left for later with it.
                let mut tx = self.db.begin_write().await?;
                mark_published(&mut tx, &sent.acked).await?;
                tx.commit().await?;
            }
            // Every row before it was in this batch or published already: rows are read
            // and handed over in id order, and sent in that order.
            *mark = Some(mark.map_or(last, |mark| mark.max(last)));
        }
        sent.into_result()
    }

    /// [`Relay::write_marks`] of the feed, if any, logging a failure: its rows are sent
    /// again then, and consumers drop them by their ids.
    async fn write_waiting_marks(&self) {
        if let Some(feed) = self.db.feed()
            && let Err(error) = self.write_marks(feed).await
        {
            tracing::warn!(%error, "marking sent outbox rows published failed");
        }
    }

    /// Marks published what was left to mark, in a commit of its own, when there is any.
    async fn write_marks(&self, feed: &Feed) -> Result<(), sqlx::Error> {
        // The writer first: a commit that took the marks may be running still, and until
        // it ends the table shows their rows pending.
        let tx = self.db.begin_write().await?;
        if feed.has_marks() {
            // The commit takes them.
            tx.commit().await?;
        }
        Ok(())
    }

    /// The oldest pending rows, a batch of them at most.
    fn select_pending(&self) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
        sqlx::query(
            "SELECT id, event_id, topic, message_key, event_type, payload, traceparent, tracestate, created_at_ms \
             FROM outbox WHERE published_at_ms IS NULL ORDER BY id LIMIT $1",
        )
        .bind(self.config.batch_size as i64)
    }

    /// Sends `batch` and sees which rows Kafka acknowledged, in id order up to the first
    /// failure: only those are marked, as a row after a failed one waits, so a retry
    /// cannot overtake it.
    async fn send(&self, batch: &[Pending]) -> Sent {
        let sent = self.send_all(batch).await;
        let acked: Vec<i64> =
            batch.iter().zip(&sent).map_while(|(row, sent)| sent.is_ok().then_some(row.id)).collect();
        metrics::outbox_published(acked.len());
        Sent { acked, failed: sent.into_iter().find_map(Result::err) }
    }

    /// Sends every row, then waits for every acknowledgement.
    async fn send_all(&self, batch: &[Pending]) -> Vec<Result<(), KafkaError>> {
        let topics: Vec<String> =
            batch.iter().map(|pending| format!("{}{}", self.topic_prefix, pending.row.topic)).collect();
        let deliveries = batch.iter().zip(&topics).map(|(Pending { row, .. }, topic)| {
            let span = send_span(row);
            let headers = self.headers(row, &span);
            let record = FutureRecord::to(topic).key(&row.key).payload(&row.payload).headers(headers);
            let created_at_ms = row.created_at_ms;
            // Queue the message now (sending is synchronous up to the producer's buffer);
            // only the acknowledgement is awaited.
            let queued = self.producer.send_result(record).map_err(|(error, _)| error);
            async move {
                let delivered = match queued {
                    Ok(delivery) => match delivery.await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err((error, _))) => Err(error),
                        Err(_canceled) => Err(KafkaError::Canceled),
                    },
                    Err(error) => Err(error),
                };
                if delivered.is_ok() {
                    metrics::outbox_publish_latency(now_ms() - created_at_ms);
                }
                delivered
            }
            .instrument(span)
        });
        join_all(deliveries).await
    }

    fn headers(&self, row: &OutboxRow, send_span: &Span) -> OwnedHeaders {
        let time = rfc3339_ms(row.created_at_ms);
        let mut headers = OwnedHeaders::new_with_capacity(8)
            .insert(Header { key: headers::CE_SPECVERSION, value: Some(headers::SPEC_VERSION) })
            .insert(Header { key: headers::CE_ID, value: Some(&row.event_id) })
            .insert(Header { key: headers::CE_TYPE, value: Some(row.event_type.as_ref()) })
            .insert(Header { key: headers::CE_SOURCE, value: Some(self.source) })
            .insert(Header { key: headers::CE_TIME, value: Some(&time) })
            .insert(Header { key: headers::CONTENT_TYPE, value: Some(headers::JSON) });
        // The send span continues the trace stored with the row; consumers continue it.
        let mut trace = HashMap::new();
        TraceContextPropagator::new().inject_context(&send_span.context(), &mut trace);
        let traceparent = trace.get(headers::TRACEPARENT).or(row.traceparent.as_ref());
        let tracestate = trace.get(headers::TRACESTATE).or(row.tracestate.as_ref());
        for (key, value) in [(headers::TRACEPARENT, traceparent), (headers::TRACESTATE, tracestate)] {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                headers = headers.insert(Header { key, value: Some(value) });
            }
        }
        headers
    }

    /// Events waiting to be published (on SQLite, until the commit that marks them, also
    /// those sent in the last moments).
    pub async fn backlog(&self) -> Result<i64, sqlx::Error> {
        super::backlog(&self.db).await
    }

    /// Publishes until `shutdown` is cancelled: a batch whenever a commit rings, at least
    /// every poll interval, batch after batch while a backlog lasts.
    pub async fn run(self, shutdown: CancellationToken) {
        // Beside the relay, not in its loop: a large clean-up never holds up publishing.
        let cleaning = tokio::spawn(clean_up_every(
            self.db.clone(),
            self.config.retention,
            self.config.cleanup_interval,
            shutdown.clone(),
        ));
        let written = self.db.outbox_written();
        let mut listener = listen(&self.db).await;
        let mut failures = 0u32;
        // Whether to read the table when no rows were handed over: not when a commit
        // rang, as that commit's rows are handed over, taken already, or noted as missed.
        let mut read_when_idle = true;
        while !shutdown.is_cancelled() {
            let step = self.step(read_when_idle, false);
            tokio::pin!(step);
            let outcome = tokio::select! {
                outcome = &mut step => outcome,
                () = shutdown.cancelled() => {
                    // A batch in flight gets a moment to finish (its acks come within
                    // milliseconds while Kafka is up), so that its rows are marked, not
                    // sent again after a restart.
                    let _ = tokio::time::timeout(STOP_GRACE, step).await;
                    break;
                }
            };
            read_when_idle = true;
            match outcome {
                // A full batch: there is likely more, go on without waiting.
                Ok(n) if n == self.config.batch_size => {
                    failures = 0;
                    continue;
                }
                Ok(n) => {
                    failures = 0;
                    // Let the writers queued now have their turn before the next batch,
                    // as when the relay wrote its marks itself: under load the rows they
                    // commit then go out together, where a relay going round faster
                    // sends more, smaller requests, each a cost to the broker and to
                    // every consumer.
                    if n > 0 {
                        tokio::select! {
                            () = self.db.writers_queued_now() => {}
                            () = shutdown.cancelled() => break,
                        }
                    }
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(error = %crate::error_chain(&error), failures, "outbox relay step failed");
                    let pause = Duration::from_millis(100 * 2u64.pow(failures.min(6)));
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = shutdown.cancelled() => break,
                    }
                    continue;
                }
            }
            let marks_waiting = self.db.feed().is_some_and(Feed::has_marks);
            tokio::select! {
                () = written.notified() => read_when_idle = false,
                () = notified_by_others(&mut listener, self.db.writer_id()) => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
                // No commit came to take the marks with it: write them.
                () = tokio::time::sleep(self.config.mark_delay), if marks_waiting => {
                    read_when_idle = false;
                    self.write_waiting_marks().await;
                }
                () = shutdown.cancelled() => break,
            }
        }
        // So that a restarted relay does not send again what this one sent.
        self.write_waiting_marks().await;
        let _ = cleaning.await;
        tracing::info!(source = self.source, "outbox relay stopped");
    }
}

/// On PostgreSQL, a listener on the `outbox` channel: commits of other processes on the
/// same database wake the relay too.
async fn listen(db: &Db) -> Option<sqlx::postgres::PgListener> {
    if db.backend() != Backend::Postgres {
        return None;
    }
    let listener = async {
        let mut listener = sqlx::postgres::PgListener::connect(db.url()).await?;
        listener.listen("outbox").await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match listener.await {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::warn!(%error, "LISTEN outbox failed: the relay falls back to polling");
            None
        }
    }
}

/// Deletes what is past its retention every `interval`, until `shutdown`.
async fn clean_up_every(db: Db, retention: Retention, interval: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
        match cleanup::delete_expired(&db, retention).await {
            Ok(deleted) => tracing::debug!(?deleted, "clean-up"),
            Err(error) => tracing::warn!(%error, "clean-up failed"),
        }
    }
}

/// Completes on a notification on the listener from another writer than `own`, or never
/// without a listener. This instance's own commits ring the in-process doorbell, so their
/// notifications would only run the relay again for nothing.
async fn notified_by_others(listener: &mut Option<sqlx::postgres::PgListener>, own: &str) {
    let Some(listening) = listener else { return std::future::pending().await };
    loop {
        match listening.recv().await {
            Ok(notification) if notification.payload() == own => {}
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%error, "LISTEN outbox lost: the relay falls back to polling");
                *listener = None;
                return;
            }
        }
    }
}

/// The `send` span of one row, child of the context stored with it (none without one).
fn send_span(row: &OutboxRow) -> Span {
    let Some(traceparent) = &row.traceparent else { return Span::none() };
    let mut carrier = HashMap::from([(headers::TRACEPARENT.to_owned(), traceparent.clone())]);
    if let Some(state) = &row.tracestate {
        carrier.insert(headers::TRACESTATE.to_owned(), state.clone());
    }
    let parent = TraceContextPropagator::new().extract(&carrier);
    let span = tracing::info_span!(
        "send",
        otel.name = %format!("{} send", row.topic),
        otel.kind = "producer",
        messaging.system = "kafka",
        messaging.operation = "publish",
        messaging.destination.name = %row.topic,
        messaging.message.id = %row.event_id,
        cloudevents.event_type = %row.event_type,
    );
    let _ = span.set_parent(parent);
    span
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use uuid::Uuid;

    use super::*;
    use crate::outbox::Republish;

    /// Commits a transaction that writes an event, through `db`.
    async fn commit_an_event(db: &Db) {
        let mut tx = db.begin_write().await.expect("begin");
        let event = Republish {
            topic: "it.outbox.listen".to_owned(),
            event_id: Uuid::now_v7().to_string(),
            event_type: "test.v1".to_owned(),
            key: "k".to_owned(),
            payload: "{}".to_owned(),
        };
        tx.publish_again(event).await.expect("publish");
        tx.commit().await.expect("commit");
    }

    /// The writer named by the next notification `listener` hears, within 5 s.
    async fn next_writer(listener: &mut sqlx::postgres::PgListener) -> String {
        let heard = tokio::time::timeout(Duration::from_secs(5), listener.recv()).await;
        heard.expect("within 5 s").expect("a notification").payload().to_owned()
    }

    #[tokio::test]
    async fn a_relay_is_woken_by_other_writers_commits_and_not_by_its_own() {
        // Always PostgreSQL: only there do commits notify.
        let database = testkit::TestDatabase::create_on(testkit::TestBackend::Postgres).await;
        let own = Db::connect(&database.url, &[]).await.expect("this instance");
        let other = Db::connect(&database.url, &[]).await.expect("another instance");
        let mut listener = listen(&own).await;
        let mut watching = listen(&own).await.expect("a second listener");

        // Every commit notifies, naming its writer...
        commit_an_event(&own).await;
        assert_eq!(next_writer(&mut watching).await, own.writer_id());
        assert_ne!(own.writer_id(), other.writer_id());

        // ...and the relay's listener passes over its own writer's, for the other's.
        commit_an_event(&other).await;
        let woken = notified_by_others(&mut listener, own.writer_id());
        tokio::time::timeout(Duration::from_secs(5), woken).await.expect("woken by the other's commit");
        assert_eq!(next_writer(&mut watching).await, other.writer_id());
        commit_an_event(&own).await;
        // Delivered: the second listener has it, so the relay's has it too by now.
        assert_eq!(next_writer(&mut watching).await, own.writer_id());
        let again = notified_by_others(&mut listener, own.writer_id());
        assert!(tokio::time::timeout(Duration::from_millis(500), again).await.is_err(), "woken again");
        assert!(listener.is_some(), "still listening");
    }
}
