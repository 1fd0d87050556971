//! The transactional outbox: events are written in the transaction of the state change
//! they describe ([`Tx::publish`]), and the [`Relay`] publishes them to Kafka afterwards.
//!
//! Delivery is at least once. The relay marks rows published only after Kafka has
//! acknowledged them (idempotent producer, acks=all); a crash between the ack and the
//! mark publishes them again, and consumers drop the duplicate by event id.
//!
//! Order: pending rows are sent in id order, one aggregate's rows share a key and so a
//! partition, and the idempotent producer keeps a partition's order across retries. A row
//! after an unacknowledged one is not marked, so it cannot overtake it. Ids follow commit
//! order per aggregate because services lock an aggregate's row before writing its events.
//!
//! On PostgreSQL several instances of a service may share the database: a batch is read,
//! sent and marked under one transaction-scoped advisory lock, so the relays take turns
//! instead of all sending the same rows (order would survive that, through the consumers'
//! duplicate check, but every event would go out once per instance). On SQLite there is
//! one process per database file, and its relay is handed the rows its process commits
//! instead of reading them back ([`feed`]).

use std::borrow::Cow;
use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use shared_events::{Event, headers};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::clock::now_ms;
use crate::db::{Backend, Db, Tx};

pub(crate) mod feed;
mod relay;

pub(crate) use relay::mark_range;
pub use relay::{Relay, RelayConfig, RelayError};

impl Tx {
    /// Adds `event` to the outbox, to be published once this transaction commits. The
    /// current span's trace context is kept with it, so its consumers join the trace.
    /// Returns the event id (`ce_id`).
    pub async fn publish<E: Event>(&mut self, event: &E) -> Result<Uuid, sqlx::Error> {
        self.publish_to(E::TOPIC, event).await
    }

    /// [`Tx::publish`] onto another topic than the event's own (tests use fresh topics).
    /// The row is written with the transaction's other events at commit, in one statement.
    pub async fn publish_to<E: Event>(&mut self, topic: &str, event: &E) -> Result<Uuid, sqlx::Error> {
        let payload = serde_json::to_string(event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        // Time-ordered (v7): the outbox and every consumer's `processed_events` index it, and
        // inserts then append to those indexes instead of dirtying a random page each.
        let event_id = Uuid::now_v7();
        let mut trace = current_trace_context();
        self.outbox.push(OutboxRow {
            event_id: event_id.to_string(),
            topic: topic.to_owned(),
            key: event.key(),
            event_type: Cow::Borrowed(E::TYPE),
            payload,
            traceparent: trace.remove(headers::TRACEPARENT),
            tracestate: trace.remove(headers::TRACESTATE),
            created_at_ms: now_ms(),
        });
        Ok(event_id)
    }

    /// Adds an event that was published before to the outbox again, as it was: the same
    /// id, type, key and payload (a dead letter put back on its topic). A consumer that
    /// applied it after all drops it by its id. The current span's trace context goes
    /// with it, as with [`Tx::publish`].
    ///
    /// The outbox keeps event ids unique: a row this event left there (published and kept
    /// for its retention, or still waiting) is replaced, so it goes out once more.
    pub async fn publish_again(&mut self, event: Republish) -> Result<(), sqlx::Error> {
        self.write("DELETE FROM outbox WHERE event_id = $1").bind(&event.event_id).await?;
        let mut trace = current_trace_context();
        self.outbox.push(OutboxRow {
            event_id: event.event_id,
            topic: event.topic,
            key: event.key,
            event_type: Cow::Owned(event.event_type),
            payload: event.payload,
            traceparent: trace.remove(headers::TRACEPARENT),
            tracestate: trace.remove(headers::TRACESTATE),
            created_at_ms: now_ms(),
        });
        Ok(())
    }
}

/// An event to publish once more, exactly as it was published the first time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Republish {
    /// The contract's topic name (the relay puts the topic prefix before it).
    pub topic: String,
    /// Its `ce_id`.
    pub event_id: String,
    /// Its `ce_type`.
    pub event_type: String,
    /// The message key.
    pub key: String,
    /// The JSON payload.
    pub payload: String,
}

/// An event published in a transaction, written to the outbox when it commits.
#[derive(Debug)]
pub(crate) struct OutboxRow {
    event_id: String,
    topic: String,
    key: String,
    event_type: Cow<'static, str>,
    payload: String,
    traceparent: Option<String>,
    tracestate: Option<String>,
    created_at_ms: i64,
}

#[cfg(test)]
impl OutboxRow {
    /// A row of event `event_id`, its other fields made up.
    pub(crate) fn for_test(event_id: &str) -> Self {
        Self {
            event_id: event_id.to_owned(),
            topic: "t".to_owned(),
            key: "k".to_owned(),
            event_type: Cow::Borrowed("test.v1"),
            payload: "{}".to_owned(),
            traceparent: None,
            tracestate: None,
            created_at_ms: 0,
        }
    }
}

/// Writes `rows` to the outbox, in their order, with as few statements as it can. On
/// SQLite the statements return each row's id and event id with the commit's rows, for
/// the relay's [`feed`].
pub(crate) async fn insert_rows(tx: &mut Tx, rows: &[OutboxRow]) -> Result<(), sqlx::Error> {
    let head = "INSERT INTO outbox (event_id, topic, message_key, event_type, payload, traceparent, tracestate, \
                created_at_ms)";
    let tail = match tx.backend() {
        Backend::Sqlite => "RETURNING id, event_id",
        Backend::Postgres => "",
    };
    tx.write_rows((head, tail), 8, rows, |insert, row| {
        insert
            .bind(row.event_id.as_str())
            .bind(row.topic.as_str())
            .bind(row.key.as_str())
            .bind(row.event_type.as_ref())
            .bind(row.payload.as_str())
            .bind(row.traceparent.as_deref())
            .bind(row.tracestate.as_deref())
            .bind(row.created_at_ms)
    })
    .await
}

/// W3C trace context of the current span (empty when nothing is traced).
fn current_trace_context() -> HashMap<String, String> {
    let mut carrier = HashMap::new();
    let context = Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier
}

/// Events of `db` waiting to be published.
pub async fn backlog(db: &Db) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at_ms IS NULL").fetch_one(db.pool()).await
}
