//! The board's tables: the messages as they came (`board_events`, `board_dead_letters`)
//! and each order's view computed from them (`board_orders`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use platform::db::{Backend, Db, Tx, optional_text_at, text_at};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};
use uuid::Uuid;

use crate::domain::{self, Position, SagaPath, Status, Step, View};
use crate::record::{DeadLetterRecord, EventRecord};

/// This store's consumer group: `base` and a suffix chosen when the store was created,
/// so that a new store is a new group, which reads every topic from the beginning.
pub async fn consumer_group(db: &Db, base: &str) -> Result<String, sqlx::Error> {
    let fresh = format!("{base}.{}", &Uuid::new_v4().simple().to_string()[..8]);
    let mut tx = db.begin_write().await?;
    tx.write("INSERT INTO board_store (id, consumer_group) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
        .bind(fresh)
        .await?;
    let group = sqlx::query_scalar("SELECT consumer_group FROM board_store WHERE id = 1")
        .fetch_one(tx.conn().await?)
        .await?;
    tx.commit().await?;
    Ok(group)
}

/// Keeps messages of the saga topics, in as few statements as it can. A message seen
/// before (same position) is ignored.
pub async fn insert_events(tx: &mut Tx, events: &[EventRecord]) -> Result<(), sqlx::Error> {
    let head = "INSERT INTO board_events (topic, kafka_partition, kafka_offset, order_id, event_id, event_type, \
                source, time_ms, trace_id, user_id, reason, message_key, payload, headers, replayed_from)";
    tx.write_rows((head, "ON CONFLICT DO NOTHING"), 15, events, |insert, event| {
        insert
            .bind(event.position.topic.as_str())
            .bind(i64::from(event.position.partition))
            .bind(event.position.offset)
            .bind(event.order_id.map(|id| id.to_string()))
            .bind(event.event_id.as_deref())
            .bind(event.event_type.as_deref())
            .bind(event.source.as_deref())
            .bind(event.time_ms)
            .bind(event.trace_id.as_deref())
            .bind(event.user_id.as_deref())
            .bind(event.reason.as_deref())
            .bind(event.key.as_deref())
            .bind(event.payload.as_deref())
            .bind(headers_json(&event.headers))
            .bind(event.replayed_from.as_deref())
    })
    .await
}

/// Keeps a message of a dead-letter topic. One seen before (same position) is ignored.
pub async fn insert_dead_letter(tx: &mut Tx, letter: &DeadLetterRecord) -> Result<(), sqlx::Error> {
    let original = letter.original.as_ref();
    let message = &letter.message;
    tx.write(
        "INSERT INTO board_dead_letters (topic, kafka_partition, kafka_offset, original_topic, \
         original_partition, original_offset, consumer_group, error, attempts, first_failure_at, \
         last_failure_at, last_failure_ms, order_id, event_id, event_type, trace_id, message_key, payload, \
         headers, replayed_from) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) \
         ON CONFLICT DO NOTHING",
    )
    .bind(letter.position.topic.clone())
    .bind(i64::from(letter.position.partition))
    .bind(letter.position.offset)
    .bind(original.map(|o| o.topic.clone()))
    .bind(original.map(|o| i64::from(o.partition)))
    .bind(original.map(|o| o.offset))
    .bind(letter.consumer_group.clone())
    .bind(letter.error.clone())
    .bind(letter.attempts.map(i64::from))
    .bind(letter.first_failure_at.clone())
    .bind(letter.last_failure_at.clone())
    .bind(letter.last_failure_ms)
    .bind(message.order_id.map(|id| id.to_string()))
    .bind(message.event_id.clone())
    .bind(message.event_type.clone())
    .bind(message.trace_id.clone())
    .bind(message.key.clone())
    .bind(message.payload.clone())
    .bind(headers_json(&message.headers))
    .bind(message.replayed_from.clone())
    .await?;
    Ok(())
}

/// Recomputes the view of each of `order_ids` from everything kept for it, from one read
/// of all their messages. An order with no valid event yet (only a poison message, say)
/// has no view: its messages are in the timeline and the dead-letter list.
pub async fn refresh_orders(tx: &mut Tx, order_ids: &BTreeSet<Uuid>) -> Result<(), sqlx::Error> {
    if order_ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = order_ids.iter().map(Uuid::to_string).collect();
    let list = platform::db::params(ids.len(), 1);
    if tx.backend() == Backend::Postgres {
        // Waits for any other transaction recomputing these orders, then reads what it
        // wrote. Locked in one order (the set's), so two such transactions never wait on
        // each other in a cycle. (On SQLite this transaction is the only writer already.)
        let sql = format!(
            "INSERT INTO board_order_locks (order_id) VALUES {} ON CONFLICT DO NOTHING",
            platform::db::values(ids.len(), 1, 1)
        );
        tx.write(sqlx::AssertSqlSafe(sql)).bind_all(&ids).await?;
        let sql = format!(
            "SELECT order_id FROM board_order_locks WHERE order_id IN ({list}) ORDER BY order_id FOR UPDATE"
        );
        tx.read(sqlx::AssertSqlSafe(sql)).bind_all(&ids).fetch_all().await?;
    }
    let sql = format!("{PROJECTION_SQL} WHERE e.order_id IN ({list}) ORDER BY e.order_id, {EVENT_ORDER}");
    let rows = tx.read(sqlx::AssertSqlSafe(sql)).bind_all(&ids).fetch_all().await?;
    // Rows come grouped by order, each group in the order the view is computed in.
    let order_of = |row: &AnyRow| row.try_get::<Option<String>, _>(3).ok().flatten();
    let mut views = Vec::with_capacity(order_ids.len());
    for group in rows.chunk_by(|a, b| order_of(a) == order_of(b)) {
        if let Some(order) = order_of(&group[0])
            && let Some(view) = view_of(order, group)?
        {
            views.push(view);
        }
    }
    write_views(tx, &views).await
}

/// An order's view, as its row in `board_orders` keeps it.
struct OrderView {
    order_id: String,
    view: View,
    trace_id: Option<String>,
    dead_letters: i64,
}

/// Computes one order's view from `rows` (its messages by [`PROJECTION_SQL`]); `None`
/// while it has no valid event.
fn view_of(order_id: String, rows: &[AnyRow]) -> Result<Option<OrderView>, sqlx::Error> {
    let events = rows.iter().map(event_at).collect::<Result<Vec<_>, _>>()?;
    let seen: Vec<_> = events.iter().filter_map(EventRecord::seen).collect();
    if seen.is_empty() {
        return Ok(None);
    }
    let view = domain::project(&seen);
    let dead_letters: i64 = rows[0].try_get(EVENT_COLUMN_COUNT)?;
    // The trace the order started: order.created's, else the first one seen.
    let trace_id = events
        .iter()
        .find(|e| e.position.topic == Step::Created.topic() && e.trace_id.is_some())
        .or_else(|| events.iter().find(|e| e.trace_id.is_some()))
        .and_then(|e| e.trace_id.clone());
    Ok(Some(OrderView { order_id, view, trace_id, dead_letters }))
}

/// Stores the views, in as few statements as it can. Each order is in `views` at most
/// once (an upsert may not touch one row twice).
async fn write_views(tx: &mut Tx, views: &[OrderView]) -> Result<(), sqlx::Error> {
    let head = "INSERT INTO board_orders (order_id, user_id, status, reason, path, created_ms, updated_ms, \
                settled_ms, saga_ms, terminal, waiting_for, steps, trace_id, dead_letters)";
    let tail = "ON CONFLICT (order_id) DO UPDATE SET user_id = excluded.user_id, status = excluded.status, \
                reason = excluded.reason, path = excluded.path, created_ms = excluded.created_ms, \
                updated_ms = excluded.updated_ms, settled_ms = excluded.settled_ms, saga_ms = excluded.saga_ms, \
                terminal = excluded.terminal, waiting_for = excluded.waiting_for, steps = excluded.steps, \
                trace_id = excluded.trace_id, dead_letters = excluded.dead_letters";
    tx.write_rows((head, tail), 14, views, |upsert, OrderView { order_id, view, trace_id, dead_letters }| {
        upsert
            .bind(order_id.as_str())
            .bind(view.user_id.as_deref())
            .bind(view.status.as_str())
            .bind(view.reason.as_deref())
            .bind(view.path.as_str())
            .bind(view.created_ms)
            .bind(view.updated_ms)
            .bind(view.settled_ms)
            .bind(view.saga_ms)
            .bind(i64::from(view.is_terminal()))
            .bind(view.waiting_for.iter().map(|s| s.topic()).collect::<Vec<_>>().join(" "))
            .bind(steps_json(view))
            .bind(trace_id.as_deref())
            .bind(*dead_letters)
    })
    .await
}

/// A step of a saga as the API shows it, kept ready as JSON in the order's row.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepJson {
    /// The topic, which names the step.
    topic: &'static str,
    event_type: Option<String>,
    at: Option<String>,
    /// Time since the step before.
    hop_millis: Option<i64>,
    /// Undoing or unwinding: drawn as the reversed path.
    reversed: bool,
    /// Reports a failure (stock refused, payment failed).
    failed: bool,
}

fn steps_json(view: &View) -> String {
    let steps: Vec<StepJson> = view
        .steps
        .iter()
        .map(|s| StepJson {
            topic: s.step.topic(),
            event_type: s.event_type.clone(),
            at: s.time_ms.map(platform::clock::rfc3339_ms),
            hop_millis: s.hop_ms,
            reversed: s.reversed,
            failed: s.step.is_failure(),
        })
        .collect();
    serde_json::to_string(&steps).unwrap_or_else(|_| "[]".to_owned())
}

fn headers_json(headers: &BTreeMap<String, String>) -> String {
    serde_json::to_string(headers).unwrap_or_else(|_| "{}".to_owned())
}

fn headers_at(row: &AnyRow, index: usize) -> Result<BTreeMap<String, String>, sqlx::Error> {
    let text: &str = row.try_get(index)?;
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

const EVENT_COLUMNS: &str = "topic, kafka_partition, kafka_offset, order_id, event_id, event_type, source, \
     time_ms, trace_id, user_id, reason, message_key, payload, headers, replayed_from";
const EVENT_COLUMN_COUNT: usize = 15;

/// What an order's view is computed from, at each of its events: its messages as
/// [`event_at`] reads them, but without the columns the view does not use (source, key,
/// headers, replay), whose decoding cost grew with every event of the order; and, in a
/// last column, how many of its messages were dead-lettered.
const PROJECTION_SQL: &str = "SELECT topic, kafka_partition, kafka_offset, order_id, event_id, event_type, NULL, \
     time_ms, trace_id, user_id, reason, NULL, payload, '{}', NULL, \
     (SELECT COUNT(*) FROM board_dead_letters d WHERE d.order_id = e.order_id) \
     FROM board_events e";

/// An order's messages by time (those without one last), then position: the same order
/// on both backends, whatever order they were written in.
const EVENT_ORDER: &str = "time_ms IS NULL, time_ms, topic, kafka_partition, kafka_offset";

fn event_at(row: &AnyRow) -> Result<EventRecord, sqlx::Error> {
    Ok(EventRecord {
        position: position_at(row, 0)?,
        order_id: optional_text_at(row, 3)?,
        event_id: row.try_get(4)?,
        event_type: row.try_get(5)?,
        source: row.try_get(6)?,
        time_ms: row.try_get(7)?,
        trace_id: row.try_get(8)?,
        user_id: row.try_get(9)?,
        reason: row.try_get(10)?,
        key: row.try_get(11)?,
        payload: row.try_get(12)?,
        headers: headers_at(row, 13)?,
        replayed_from: row.try_get(14)?,
    })
}

fn position_at(row: &AnyRow, first: usize) -> Result<Position, sqlx::Error> {
    let partition: i64 = row.try_get(first + 1)?;
    Ok(Position { topic: row.try_get(first)?, partition: partition as i32, offset: row.try_get(first + 2)? })
}

/// Every message kept for `order_id`, by time (those without one last), then position:
/// the same order on both backends, whatever order they were written in.
pub async fn events_of(conn: &mut AnyConnection, order_id: &str) -> Result<Vec<EventRecord>, sqlx::Error> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM board_events WHERE order_id = $1 ORDER BY {EVENT_ORDER}");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(order_id.to_owned()).fetch_all(conn).await?;
    rows.iter().map(event_at).collect()
}

const DEAD_LETTER_COLUMNS: &str = "topic, kafka_partition, kafka_offset, original_topic, original_partition, \
     original_offset, consumer_group, error, attempts, first_failure_at, last_failure_at, last_failure_ms, \
     order_id, event_id, event_type, trace_id, message_key, payload, headers, replayed_from";

fn dead_letter_at(row: &AnyRow) -> Result<DeadLetterRecord, sqlx::Error> {
    let position = position_at(row, 0)?;
    let original_topic: Option<String> = row.try_get(3)?;
    let original_partition: Option<i64> = row.try_get(4)?;
    let original_offset: Option<i64> = row.try_get(5)?;
    let attempts: Option<i64> = row.try_get(8)?;
    let headers = headers_at(row, 18)?;
    Ok(DeadLetterRecord {
        original: original_topic.map(|topic| Position {
            topic,
            partition: original_partition.unwrap_or(-1) as i32,
            offset: original_offset.unwrap_or(-1),
        }),
        consumer_group: row.try_get(6)?,
        error: row.try_get(7)?,
        attempts: attempts.map(|a| a as i32),
        first_failure_at: row.try_get(9)?,
        last_failure_at: row.try_get(10)?,
        last_failure_ms: row.try_get(11)?,
        message: EventRecord {
            position: position.clone(),
            order_id: optional_text_at(row, 12)?,
            event_id: row.try_get(13)?,
            event_type: row.try_get(14)?,
            source: headers.get(shared_events::headers::CE_SOURCE).cloned(),
            time_ms: None,
            trace_id: row.try_get(15)?,
            user_id: None,
            reason: None,
            key: row.try_get(16)?,
            payload: row.try_get(17)?,
            replayed_from: row.try_get(19)?,
            headers,
        },
        position,
    })
}

/// The dead letters of `order_id`.
pub async fn dead_letters_of(
    conn: &mut AnyConnection,
    order_id: &str,
) -> Result<Vec<DeadLetterRecord>, sqlx::Error> {
    let sql = format!("SELECT {DEAD_LETTER_COLUMNS} FROM board_dead_letters WHERE order_id = $1");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(order_id.to_owned()).fetch_all(conn).await?;
    rows.iter().map(dead_letter_at).collect()
}

/// The newest `limit` dead letters, newest first.
pub async fn dead_letters(
    conn: &mut AnyConnection,
    limit: i64,
) -> Result<Vec<DeadLetterRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {DEAD_LETTER_COLUMNS} FROM board_dead_letters \
         ORDER BY last_failure_ms IS NULL, last_failure_ms DESC, topic DESC, kafka_partition DESC, \
         kafka_offset DESC LIMIT $1"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all(conn).await?;
    rows.iter().map(dead_letter_at).collect()
}

/// The dead letter at `position`.
pub async fn dead_letter(
    conn: &mut AnyConnection,
    position: &Position,
) -> Result<Option<DeadLetterRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {DEAD_LETTER_COLUMNS} FROM board_dead_letters \
         WHERE topic = $1 AND kafka_partition = $2 AND kafka_offset = $3"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(position.topic.clone())
        .bind(i64::from(position.partition))
        .bind(position.offset)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(dead_letter_at).transpose()
}

/// Where each of the dead letters `ids` (`<topic>/<partition>/<offset>`) came back after a
/// replay, in offset order.
pub async fn replays_of(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<HashMap<String, Vec<Position>>, sqlx::Error> {
    let mut replays: HashMap<String, Vec<Position>> = HashMap::new();
    if ids.is_empty() {
        return Ok(replays);
    }
    let sql = format!(
        "SELECT replayed_from, topic, kafka_partition, kafka_offset FROM board_events \
         WHERE replayed_from IN ({}) ORDER BY topic, kafka_partition, kafka_offset",
        platform::db::params(ids.len(), 1)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id.clone());
    }
    for row in query.fetch_all(conn).await? {
        replays.entry(row.try_get(0)?).or_default().push(position_at(&row, 1)?);
    }
    Ok(replays)
}

/// An order's view as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    /// The order.
    pub order_id: Uuid,
    /// Its user.
    pub user_id: Option<String>,
    /// Its status.
    pub status: Status,
    /// Why it was cancelled.
    pub reason: Option<String>,
    /// Which way the saga went.
    pub path: SagaPath,
    /// When it was created.
    pub created_ms: Option<i64>,
    /// Its latest event.
    pub updated_ms: Option<i64>,
    /// From created to settled.
    pub saga_ms: Option<i64>,
    /// Whether nothing more is expected.
    pub terminal: bool,
    /// The topics that would move it on.
    pub waiting_for: Vec<String>,
    /// The steps, as the API's JSON.
    pub steps: serde_json::Value,
    /// The trace it started.
    pub trace_id: Option<String>,
    /// How many of its messages are in dead-letter topics.
    pub dead_letters: i64,
}

const ORDER_COLUMNS: &str = "order_id, user_id, status, reason, path, created_ms, updated_ms, saga_ms, terminal, \
     waiting_for, steps, trace_id, dead_letters";

fn order_at(row: &AnyRow) -> Result<OrderRow, sqlx::Error> {
    let terminal: i64 = row.try_get(8)?;
    let waiting_for: &str = row.try_get(9)?;
    let steps: &str = row.try_get(10)?;
    Ok(OrderRow {
        order_id: text_at(row, 0)?,
        user_id: row.try_get(1)?,
        status: text_at(row, 2)?,
        reason: row.try_get(3)?,
        path: text_at(row, 4)?,
        created_ms: row.try_get(5)?,
        updated_ms: row.try_get(6)?,
        saga_ms: row.try_get(7)?,
        terminal: terminal != 0,
        waiting_for: waiting_for.split_whitespace().map(str::to_owned).collect(),
        steps: serde_json::from_str(steps).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        trace_id: row.try_get(11)?,
        dead_letters: row.try_get(12)?,
    })
}

/// Which orders to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// Of this status only.
    pub status: Option<Status>,
    /// Cancelled (or failing) for this reason only.
    pub reason: Option<String>,
    /// Of this user only.
    pub user_id: Option<String>,
    /// Only those not terminal and created before this time.
    pub stuck_before_ms: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// The orders `filter` selects, newest first.
pub async fn orders(conn: &mut AnyConnection, filter: &OrderFilter) -> Result<Vec<OrderRow>, sqlx::Error> {
    // Text filters bound in order, then the stuck bound, then the limit.
    let mut conditions = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    for (column, value) in [
        ("status", filter.status.map(|s| s.as_str().to_owned())),
        ("reason", filter.reason.clone()),
        ("user_id", filter.user_id.clone()),
    ] {
        if let Some(value) = value {
            texts.push(value);
            conditions.push(format!("{column} = ${}", texts.len()));
        }
    }
    if filter.stuck_before_ms.is_some() {
        conditions.push(format!("terminal = 0 AND created_ms < ${}", texts.len() + 1));
    }
    let filter_sql =
        if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    let limit_at = texts.len() + 1 + usize::from(filter.stuck_before_ms.is_some());
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM board_orders {filter_sql} \
         ORDER BY created_ms IS NULL, created_ms DESC, order_id DESC LIMIT ${limit_at}"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for value in texts {
        query = query.bind(value);
    }
    if let Some(before) = filter.stuck_before_ms {
        query = query.bind(before);
    }
    let rows = query.bind(filter.limit).fetch_all(conn).await?;
    rows.iter().map(order_at).collect()
}

/// The view of `order_id`, if it has one.
pub async fn order(conn: &mut AnyConnection, order_id: Uuid) -> Result<Option<OrderRow>, sqlx::Error> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM board_orders WHERE order_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(order_id.to_string()).fetch_optional(conn).await?;
    row.as_ref().map(order_at).transpose()
}

/// The views of `ids` that exist.
pub async fn orders_by_id(conn: &mut AnyConnection, ids: &[Uuid]) -> Result<Vec<OrderRow>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM board_orders WHERE order_id IN ({})",
        platform::db::params(ids.len(), 1)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id.to_string());
    }
    let rows = query.fetch_all(conn).await?;
    rows.iter().map(order_at).collect()
}

/// The times of the sagas that settled since `since_ms`, shortest first.
pub async fn settled_since(conn: &mut AnyConnection, since_ms: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT saga_ms FROM board_orders WHERE settled_ms >= $1 AND saga_ms IS NOT NULL ORDER BY saga_ms",
    )
    .bind(since_ms)
    .fetch_all(conn)
    .await
}

/// How many dead letters there are.
pub async fn dead_letter_count(conn: &mut AnyConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM board_dead_letters").fetch_one(conn).await
}
