//! Deleting what is kept only for a while: published outbox rows, processed event ids
//! (the consumers' duplicate check) and idempotency keys, each past its retention.

use std::time::Duration;

use crate::clock::now_ms;
use crate::db::Db;
use crate::idempotency;

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

/// Deletes every row past its retention, in one transaction.
pub async fn delete_expired(db: &Db, retention: Retention) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let before = |kept: Duration| now - kept.as_millis() as i64;
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM outbox WHERE published_at_ms IS NOT NULL AND published_at_ms < $1")
        .bind(before(retention.published))
        .execute(tx.conn())
        .await?;
    sqlx::query("DELETE FROM processed_events WHERE processed_at_ms < $1")
        .bind(before(retention.processed))
        .execute(tx.conn())
        .await?;
    sqlx::query("DELETE FROM idempotency_keys WHERE created_at_ms < $1")
        .bind(before(idempotency::RETENTION))
        .execute(tx.conn())
        .await?;
    tx.commit().await
}
