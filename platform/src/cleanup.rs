//! Deleting what is kept only for a while: published outbox rows, processed event ids
//! (the consumers' duplicate check) and idempotency keys, each past its retention.
//!
//! In bounded batches, each its own short transaction: the relay and the consumers write
//! to the same database (on SQLite one writer at a time), and get their turn between two
//! batches instead of waiting behind one long delete of a large backlog. On PostgreSQL the
//! instances of a service share the database: a batch runs under a transaction-scoped
//! advisory lock, and an instance that finds it taken leaves this round to the other.

use std::time::Duration;

use crate::clock::now_ms;
use crate::db::{Backend, Db};
use crate::{idempotency, metrics};

/// Rows one batch deletes at most.
pub const BATCH: i64 = 1000;

/// Key of the PostgreSQL advisory lock that lets one instance clean up at a time.
const CLEANUP_LOCK: i64 = 0x0063_6c65_616e_7570; // "cleanup"

/// How long each kind of row is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Published outbox rows.
    pub published: Duration,
    /// Processed event ids: longer than the topics keep messages, so a redelivery is
    /// always recognised.
    pub processed: Duration,
}

impl Default for Retention {
    /// An hour of published rows; eight days of event ids (the topics keep seven).
    fn default() -> Self {
        Self { published: Duration::from_secs(3600), processed: Duration::from_secs(8 * 24 * 3600) }
    }
}

/// What one clean-up deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// Published outbox rows.
    pub outbox: u64,
    /// Processed event ids.
    pub processed_events: u64,
    /// Idempotency keys.
    pub idempotency_keys: u64,
    /// Transactions it took.
    pub batches: u64,
}

/// One table's expired rows, oldest first, [`BATCH`] at a time (`$1`: the cut-off,
/// `$2`: the batch size). Only published outbox rows: a pending one is never deleted.
const SWEEPS: [(&str, &str); 3] = [
    (
        "outbox",
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
         WHERE published_at_ms IS NOT NULL AND published_at_ms < $1 ORDER BY published_at_ms LIMIT $2)",
    ),
    (
        "processed_events",
        "DELETE FROM processed_events WHERE (consumer_group, event_id) IN (SELECT consumer_group, event_id \
         FROM processed_events WHERE processed_at_ms < $1 ORDER BY processed_at_ms LIMIT $2)",
    ),
    (
        "idempotency_keys",
        "DELETE FROM idempotency_keys WHERE (scope, idempotency_key) IN (SELECT scope, idempotency_key \
         FROM idempotency_keys WHERE created_at_ms < $1 ORDER BY created_at_ms LIMIT $2)",
    ),
];

/// Deletes every row past its retention, [`BATCH`] rows per transaction.
pub async fn delete_expired(db: &Db, retention: Retention) -> Result<Deleted, sqlx::Error> {
    delete_expired_in_batches(db, retention, BATCH).await
}

/// [`delete_expired`] with batches of `batch` rows.
pub async fn delete_expired_in_batches(
    db: &Db,
    retention: Retention,
    batch: i64,
) -> Result<Deleted, sqlx::Error> {
    let now = now_ms();
    let before = |kept: Duration| now - kept.as_millis() as i64;
    let cut_offs = [before(retention.published), before(retention.processed), before(idempotency::RETENTION)];
    let mut deleted = Deleted::default();
    for ((table, sql), cut_off) in SWEEPS.into_iter().zip(cut_offs) {
        loop {
            let mut tx = db.begin_write().await?;
            if db.backend() == Backend::Postgres {
                let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                    .bind(CLEANUP_LOCK)
                    .fetch_one(tx.conn().await?)
                    .await?;
                if !ours {
                    return Ok(deleted); // another instance is cleaning up
                }
            }
            let n =
                sqlx::query(sql).bind(cut_off).bind(batch).execute(tx.conn().await?).await?.rows_affected();
            tx.commit().await?;
            deleted.batches += 1;
            metrics::cleaned_up(table, n);
            match table {
                "outbox" => deleted.outbox += n,
                "processed_events" => deleted.processed_events += n,
                _ => deleted.idempotency_keys += n,
            }
            if n < batch as u64 {
                break;
            }
        }
    }
    Ok(deleted)
}
