//! The dedupe layer: an event's effects happen once per consumer group. Its id goes into
//! `processed_events` in the transaction of its effects, so a redelivered copy finds it
//! there and is dropped; the forwards to retry and dead-letter topics are recorded there
//! too, so a failure starts one retry chain however often it is redelivered.

use std::collections::HashSet;

use sqlx::Row as _;

use crate::clock::now_ms;
use crate::db::{self, Db, Tx};

/// Rows per claiming INSERT: 3 parameters each, well under SQLite's limit per statement.
const ROWS_PER_CLAIM: usize = 500;

/// Records `id` as processed by `group`; false if it already was.
pub(crate) async fn first_time(tx: &mut Tx, group: &str, id: &str) -> Result<bool, sqlx::Error> {
    Ok(claim(tx, group, &[id]).await?[0])
}

/// Records every id of `ids` as processed by `group` in one statement (per 500), and says
/// for each whether this is its first time. An id that appears twice in `ids` is new at
/// most once: at its first place.
pub(crate) async fn claim(tx: &mut Tx, group: &str, ids: &[&str]) -> Result<Vec<bool>, sqlx::Error> {
    let now = now_ms();
    let mut new: HashSet<String> = HashSet::with_capacity(ids.len());
    for chunk in ids.chunks(ROWS_PER_CLAIM) {
        let sql = insert_sql(chunk.len(), " ON CONFLICT DO NOTHING RETURNING event_id");
        for row in bind_rows(tx.read(sql), group, chunk, now).fetch_all().await? {
            new.insert(row.try_get(0)?);
        }
    }
    // `remove`: the second copy of an id in the same batch is a duplicate.
    Ok(ids.iter().map(|id| new.remove(*id)).collect())
}

/// Records every id of `ids` as processed by `group`, without looking first: queued with
/// the transaction's next statement, where an id recorded before fails it on its key.
pub(crate) async fn record_unseen(tx: &mut Tx, group: &str, ids: &[&str]) -> Result<(), sqlx::Error> {
    let now = now_ms();
    for chunk in ids.chunks(ROWS_PER_CLAIM) {
        bind_rows(tx.write(insert_sql(chunk.len(), "")), group, chunk, now).await?;
    }
    Ok(())
}

/// Takes back what [`claim`] recorded for `ids` in this transaction: their messages were
/// not applied in it after all.
pub(crate) async fn release(tx: &mut Tx, group: &str, ids: &[&str]) -> Result<(), sqlx::Error> {
    for chunk in ids.chunks(ROWS_PER_CLAIM) {
        let sql = format!(
            "DELETE FROM processed_events WHERE consumer_group = $1 AND event_id IN ({})",
            db::params(chunk.len(), 2)
        );
        tx.write(sqlx::AssertSqlSafe(sql)).bind(group).bind_all(chunk.iter().copied()).await?;
    }
    Ok(())
}

/// The INSERT of `rows` ids into `processed_events`, then `tail`.
fn insert_sql(rows: usize, tail: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!(
        "INSERT INTO processed_events (consumer_group, event_id, processed_at_ms) VALUES {}{tail}",
        db::values(rows, 3, 1)
    ))
}

/// Binds one row of [`insert_sql`] per id.
fn bind_rows<'t>(mut insert: db::Statement<'t>, group: &str, ids: &[&str], now: i64) -> db::Statement<'t> {
    for id in ids {
        insert = insert.bind(group).bind(*id).bind(now);
    }
    insert
}

/// Whether `marker` was recorded for `group`. Unknown (database down) counts as no: a
/// duplicate forward is better than a lost one.
pub(crate) async fn recorded(db: &Db, group: &str, marker: &str) -> bool {
    let found = sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM processed_events WHERE consumer_group = $1 AND event_id = $2",
    )
    .bind(group)
    .bind(marker)
    .fetch_one(db.pool())
    .await;
    found.is_ok_and(|count| count > 0)
}

/// Records `marker` for `group`, in a transaction of its own.
pub(crate) async fn record(db: &Db, group: &str, marker: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    first_time(&mut tx, group, marker).await?;
    tx.commit().await
}
