//! The notification-service's tables: recipients, sent notifications, failures.

use platform::db::{Tx, optional_text_at, text_at};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::domain::{Channel, Kind};

/// A sent notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Id.
    pub id: Uuid,
    /// E-mail or SMS.
    pub channel: Channel,
    /// Address or phone number.
    pub recipient: String,
    /// Subject (e-mail only).
    pub subject: Option<String>,
    /// Text.
    pub body: String,
    /// What it is about.
    pub kind: Kind,
    /// The user it is about, if any.
    pub user_id: Option<Uuid>,
    /// The order it is about, if any.
    pub order_id: Option<Uuid>,
    /// The delivery attempt that succeeded.
    pub attempts: i32,
    /// One notification per fact ([`Kind::about`]), none for ad hoc messages.
    pub about: Option<String>,
    /// When it was sent.
    pub created_at_ms: i64,
}

/// Remembers where `user_id`'s mail goes (the first address wins: it never changes here).
pub async fn save_recipient(tx: &mut Tx, user_id: Uuid, email: &str, name: &str) -> Result<(), sqlx::Error> {
    tx.write("INSERT INTO recipients (user_id, email, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(user_id.to_string())
        .bind(email)
        .bind(name)
        .await
}

/// Address and name of `user_id`, if its sign-up has been seen.
pub async fn recipient(tx: &mut Tx, user_id: Uuid) -> Result<Option<(String, String)>, sqlx::Error> {
    let row = tx
        .read("SELECT email, name FROM recipients WHERE user_id = $1")
        .bind(user_id.to_string())
        .fetch_optional()
        .await?;
    row.map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).transpose()
}

/// Records a sent notification, unless one about the same fact exists already.
pub async fn record(tx: &mut Tx, n: &Notification) -> Result<(), sqlx::Error> {
    tx.write(
        "INSERT INTO notifications (id, channel, recipient, subject, body, kind, user_id, order_id, attempts, about, \
         created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
    )
    .bind(n.id.to_string())
    .bind(n.channel.as_str())
    .bind(&n.recipient)
    .bind(n.subject.clone())
    .bind(&n.body)
    .bind(n.kind.as_str())
    .bind(n.user_id.map(|id| id.to_string()))
    .bind(n.order_id.map(|id| id.to_string()))
    .bind(n.attempts)
    .bind(n.about.clone())
    .bind(n.created_at_ms)
    .await
}

/// Which notifications to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only about this user.
    pub user_id: Option<Uuid>,
    /// Only about this order.
    pub order_id: Option<Uuid>,
    /// Only on this channel.
    pub channel: Option<Channel>,
}

/// Notifications matching `filter`, newest first, at most `limit`.
pub async fn list(
    conn: &mut AnyConnection,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    sqlx::query(
        "SELECT id, channel, recipient, subject, body, kind, user_id, order_id, attempts, about, created_at_ms \
         FROM notifications \
         WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR order_id = $2) AND ($3 IS NULL OR channel = $3) \
         ORDER BY created_at_ms DESC, id DESC LIMIT $4",
    )
    .bind(filter.user_id.map(|id| id.to_string()))
    .bind(filter.order_id.map(|id| id.to_string()))
    .bind(filter.channel.map(Channel::as_str))
    .bind(limit)
    .fetch_all(conn)
    .await?
    .iter()
    .map(notification)
    .collect()
}

fn notification(row: &AnyRow) -> Result<Notification, sqlx::Error> {
    Ok(Notification {
        id: text_at(row, 0)?,
        channel: text_at(row, 1)?,
        recipient: row.try_get(2)?,
        subject: row.try_get(3)?,
        body: row.try_get(4)?,
        kind: text_at(row, 5)?,
        user_id: optional_text_at(row, 6)?,
        order_id: optional_text_at(row, 7)?,
        attempts: row.try_get(8)?,
        about: row.try_get(9)?,
        created_at_ms: row.try_get(10)?,
    })
}

/// A message this service gave up on, as read from a dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Id.
    pub id: Uuid,
    /// The dead-letter topic it is in.
    pub dead_letter_topic: String,
    /// Its partition there.
    pub dead_letter_partition: i32,
    /// Its offset there.
    pub dead_letter_offset: i64,
    /// The topic it failed on, as the cluster names it (with the deployment's prefix).
    pub original_topic: String,
    /// Its partition there.
    pub original_partition: Option<i32>,
    /// Its offset there.
    pub original_offset: Option<i64>,
    /// `ce_id`, as the message carried it: text, not a [`Uuid`], because a message may
    /// have been dead-lettered for a `ce_id` that is no UUID, and is recorded all the same.
    pub event_id: Option<String>,
    /// `ce_type`.
    pub event_type: Option<String>,
    /// The message key.
    pub message_key: Option<String>,
    /// The message value.
    pub payload: Option<String>,
    /// The last error.
    pub error: String,
    /// Attempts made.
    pub attempts: i32,
    /// When the first attempt failed.
    pub first_failure_at: Option<String>,
    /// When the last attempt failed.
    pub last_failure_at: Option<String>,
    /// When it was recorded here.
    pub created_at_ms: i64,
    /// When it was last put back on its topic from here.
    pub retried_at_ms: Option<i64>,
}

/// Records a failure (once per dead-letter position).
pub async fn record_failure(conn: &mut AnyConnection, f: &Failure) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO failed_notifications (id, dead_letter_topic, dead_letter_partition, dead_letter_offset, \
         original_topic, original_partition, original_offset, event_id, event_type, message_key, payload, error, \
         attempts, first_failure_at, last_failure_at, created_at_ms, retried_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, NULL) ON CONFLICT DO NOTHING",
    )
    .bind(f.id.to_string())
    .bind(&f.dead_letter_topic)
    .bind(f.dead_letter_partition)
    .bind(f.dead_letter_offset)
    .bind(&f.original_topic)
    .bind(f.original_partition)
    .bind(f.original_offset)
    .bind(f.event_id.clone())
    .bind(f.event_type.clone())
    .bind(f.message_key.clone())
    .bind(f.payload.clone())
    .bind(&f.error)
    .bind(f.attempts)
    .bind(f.first_failure_at.clone())
    .bind(f.last_failure_at.clone())
    .bind(f.created_at_ms)
    .execute(conn)
    .await
    .map(|_| ())
}

const FAILURE_COLUMNS: &str = "id, dead_letter_topic, dead_letter_partition, dead_letter_offset, original_topic, \
     original_partition, original_offset, event_id, event_type, message_key, payload, error, attempts, \
     first_failure_at, last_failure_at, created_at_ms, retried_at_ms";

/// Every recorded failure, newest first.
pub async fn failures(conn: &mut AnyConnection) -> Result<Vec<Failure>, sqlx::Error> {
    let sql =
        format!("SELECT {FAILURE_COLUMNS} FROM failed_notifications ORDER BY created_at_ms DESC, id DESC");
    sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(conn).await?.iter().map(failure).collect()
}

/// The failure `id`, if any, locked until the transaction ends.
pub async fn lock_failure(tx: &mut Tx, id: Uuid) -> Result<Option<Failure>, sqlx::Error> {
    let sql = format!("SELECT {FAILURE_COLUMNS} FROM failed_notifications WHERE id = $1{}", tx.for_update());
    tx.read(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional()
        .await?
        .as_ref()
        .map(failure)
        .transpose()
}

/// Notes that failure `id` was put back on its topic at `at_ms`.
pub async fn mark_retried(tx: &mut Tx, id: Uuid, at_ms: i64) -> Result<(), sqlx::Error> {
    tx.write("UPDATE failed_notifications SET retried_at_ms = $1 WHERE id = $2")
        .bind(at_ms)
        .bind(id.to_string())
        .await
}

fn failure(row: &AnyRow) -> Result<Failure, sqlx::Error> {
    Ok(Failure {
        id: text_at(row, 0)?,
        dead_letter_topic: row.try_get(1)?,
        dead_letter_partition: row.try_get(2)?,
        dead_letter_offset: row.try_get(3)?,
        original_topic: row.try_get(4)?,
        original_partition: row.try_get(5)?,
        original_offset: row.try_get(6)?,
        event_id: row.try_get(7)?,
        event_type: row.try_get(8)?,
        message_key: row.try_get(9)?,
        payload: row.try_get(10)?,
        error: row.try_get(11)?,
        attempts: row.try_get(12)?,
        first_failure_at: row.try_get(13)?,
        last_failure_at: row.try_get(14)?,
        created_at_ms: row.try_get(15)?,
        retried_at_ms: row.try_get(16)?,
    })
}
