//! On SQLite the relay is handed the rows its own process commits, instead of reading
//! them back from the outbox: that read was a hand-off to a reader connection's thread
//! and back for every batch, a large part of what relaying cost.
//!
//! The table stays the truth; the feed is a shortcut the relay takes only while it
//! provably sees every row. SQLite's `AUTOINCREMENT` ids come one after another in
//! commit order (one writer at a time; a rolled-back insert gives its id back), and a
//! commit queues its rows here still holding the writer. So while the queue starts
//! exactly after the last row the relay handled and runs on without a hole, it holds
//! every row still to be sent, in order. Anything else (rows from before the process
//! started, rows left pending by a failed send, a commit whose queuing was cut short, a
//! row written by another connection, a full queue) shows as a gap, and the relay reads
//! the table until it has caught up.
//!
//! Marking what the relay sent as published rides on the next commit of the service
//! ([`Feed::take_marks`]) instead of being a write transaction of its own: with handed-over
//! rows the mark only keeps a restarted relay from sending them again. The relay writes
//! the marks itself when no commit came for a moment, before it reads the table (which
//! would find those rows pending), and when it stops.
//!
//! A row that [`Tx::publish_again`](crate::db::Tx::publish_again) replaces while it is
//! still queued goes out twice, at its old place and its new one; consumers drop the
//! second by its id.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::OutboxRow;

/// Rows queued at most: past it commits stop queuing (the rows are in the table), so a
/// relay that cannot send holds no more than this in memory.
const CAPACITY: usize = 10_000;

/// An outbox row with its id: one the relay has read or been handed.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) id: i64,
    pub(crate) row: OutboxRow,
}

/// The rows committed by one [`Db`](crate::db::Db)'s writer, waiting for its relay.
#[derive(Debug, Default)]
pub(crate) struct Feed {
    queued: Mutex<VecDeque<Pending>>,
    /// A commit's rows were not queued: the next take is a gap, even if the queue is
    /// empty by then.
    missed: AtomicBool,
    /// The relays' turn, held across a whole batch (read, send, mark), and with it the
    /// relay's mark: every row with an id up to it is published or has been sent. `None`
    /// until the relay has sent a row it read from the table.
    pub(crate) turn: tokio::sync::Mutex<Option<i64>>,
    /// Ids sent and acknowledged but not yet marked published: one run without a hole,
    /// as handed-over rows are sent in id order.
    marks: Mutex<Option<(i64, i64)>>,
}

/// What [`Feed::take`] found.
#[derive(Debug)]
pub(crate) enum Taken {
    /// The rows right after the mark, in id order.
    Rows(Vec<Pending>),
    /// Nothing was committed since the relay's last batch.
    Nothing,
    /// The queue does not follow on from the mark: only the table has every row.
    Gap,
}

impl Feed {
    /// Queues the rows a commit wrote, given `returned`, the rows its script returned:
    /// they end with each row's id and event id (see [`super::insert_rows`]). Called
    /// after the commit, still holding the writer, so commits queue in commit order.
    pub(crate) fn queue(&self, rows: Vec<OutboxRow>, returned: &[AnyRow]) {
        if !self.try_queue(rows, returned) {
            self.missed();
        }
    }

    /// Tells the relay that rows were committed, or may have been, without being queued:
    /// they are left to the table, where it finds them at its next take.
    pub(crate) fn missed(&self) {
        self.missed.store(true, Ordering::Release);
    }

    fn try_queue(&self, rows: Vec<OutboxRow>, returned: &[AnyRow]) -> bool {
        let Some(skip) = returned.len().checked_sub(rows.len()) else { return false };
        let ids: Result<Vec<(i64, &str)>, sqlx::Error> =
            returned[skip..].iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect();
        let Ok(mut ids) = ids else { return false };
        // `RETURNING` gives no order; ids follow the `VALUES`, which follow `rows`.
        ids.sort_unstable_by_key(|(id, _)| *id);
        if ids.len() != rows.len()
            || ids.iter().zip(&rows).any(|((_, event_id), row)| *event_id != row.event_id)
        {
            return false;
        }
        let mut queued = lock(&self.queued);
        if queued.len() + rows.len() > CAPACITY {
            return false;
        }
        queued.extend(ids.into_iter().zip(rows).map(|((id, _), row)| Pending { id, row }));
        true
    }

    /// Leaves ids `first..=last` to be marked published by the next commit.
    pub(crate) fn mark_later(&self, first: i64, last: i64) {
        let mut marks = lock(&self.marks);
        *marks = Some(match *marks {
            Some((from, to)) => (from.min(first), to.max(last)),
            None => (first, last),
        });
    }

    /// The ids left to mark, for a commit to mark them; it gives them back with
    /// [`Feed::mark_later`] if it fails.
    pub(crate) fn take_marks(&self) -> Option<(i64, i64)> {
        lock(&self.marks).take()
    }

    /// Whether ids wait to be marked.
    pub(crate) fn has_marks(&self) -> bool {
        lock(&self.marks).is_some()
    }

    /// Takes up to `max` queued rows that follow `mark` without a hole. Rows up to the
    /// mark (read from the table meanwhile) are dropped; on a gap the queue is cleared,
    /// as the table holds all of it.
    pub(crate) fn take(&self, mark: Option<i64>, max: usize) -> Taken {
        let mut queued = lock(&self.queued);
        let missed = self.missed.swap(false, Ordering::Acquire);
        let Some(mark) = mark.filter(|_| !missed) else {
            queued.clear();
            return Taken::Gap;
        };
        while queued.front().is_some_and(|row| row.id <= mark) {
            queued.pop_front();
        }
        let Some(first) = queued.front() else { return Taken::Nothing };
        if first.id != mark + 1 {
            queued.clear();
            return Taken::Gap;
        }
        // A hole further on ends the batch there; the next take finds the gap.
        let run = queued.iter().zip(mark + 1..).take(max).take_while(|(row, id)| row.id == *id).count();
        Taken::Rows(queued.drain(..run).collect())
    }
}

/// `mutex`'s guard. Nothing under these locks panics halfway, so a poisoned one holds
/// whole data: go on with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: i64) -> Pending {
        Pending { id, row: OutboxRow::for_test(&format!("e{id}")) }
    }

    fn feed(ids: &[i64]) -> Feed {
        let feed = Feed::default();
        feed.queued.lock().expect("unpoisoned").extend(ids.iter().map(|id| pending(*id)));
        feed
    }

    fn ids(taken: Taken) -> Vec<i64> {
        match taken {
            Taken::Rows(rows) => rows.iter().map(|row| row.id).collect(),
            other => panic!("rows expected, got {other:?}"),
        }
    }

    #[test]
    fn rows_that_follow_the_mark_are_taken_in_batches() {
        let feed = feed(&[4, 5, 6, 7]);
        assert_eq!(ids(feed.take(Some(3), 3)), [4, 5, 6]);
        assert_eq!(ids(feed.take(Some(6), 3)), [7]);
        assert!(matches!(feed.take(Some(7), 3), Taken::Nothing));
    }

    #[test]
    fn rows_read_from_the_table_meanwhile_are_dropped() {
        let feed = feed(&[4, 5, 6, 7]);
        assert_eq!(ids(feed.take(Some(5), 10)), [6, 7]);
        let feed = self::feed(&[4, 5]);
        assert!(matches!(feed.take(Some(9), 10), Taken::Nothing));
    }

    #[test]
    fn a_gap_or_an_unknown_mark_sends_the_relay_to_the_table() {
        let gap = feed(&[5, 6]);
        assert!(matches!(gap.take(Some(3), 10), Taken::Gap));
        assert!(gap.queued.lock().expect("unpoisoned").is_empty(), "cleared: the table has those rows");
        assert!(matches!(feed(&[4]).take(None, 10), Taken::Gap));
    }

    /// A transaction on `db` publishing events `event_ids`.
    async fn publish(db: &crate::db::Db, event_ids: &[&str]) -> crate::db::Tx {
        let mut tx = db.begin_write().await.expect("begin");
        for event_id in event_ids {
            let event = crate::outbox::Republish {
                topic: "t".to_owned(),
                event_id: (*event_id).to_owned(),
                event_type: "test.v1".to_owned(),
                key: "k".to_owned(),
                payload: "{}".to_owned(),
            };
            tx.publish_again(event).await.expect("publish");
        }
        tx
    }

    #[tokio::test]
    async fn commits_hand_their_rows_over_with_the_ids_the_table_gave_them() {
        let database = testkit::TestDatabase::create_on(testkit::TestBackend::Sqlite).await;
        let db = crate::db::Db::connect(&database.url, &[]).await.expect("connect");
        publish(&db, &["a", "b", "c"]).await.commit().await.expect("commit");
        publish(&db, &["gone"]).await.rollback().await.expect("rollback");
        publish(&db, &["d", "e"]).await.commit().await.expect("commit");

        let stored: Vec<(i64, String)> = sqlx::query_as("SELECT id, event_id FROM outbox ORDER BY id")
            .fetch_all(db.pool())
            .await
            .expect("rows");
        let first = stored[0].0;
        let Taken::Rows(rows) = db.feed().expect("SQLite's").take(Some(first - 1), 100) else {
            panic!("the committed rows, following on")
        };
        let handed: Vec<(i64, String)> = rows.into_iter().map(|p| (p.id, p.row.event_id)).collect();
        assert_eq!(handed, stored);
        assert_eq!(handed.iter().map(|(_, e)| e.as_str()).collect::<Vec<_>>(), ["a", "b", "c", "d", "e"]);
        db.close().await;
    }

    #[test]
    fn marks_left_for_later_gather_into_one_run() {
        let feed = Feed::default();
        assert!(!feed.has_marks());
        feed.mark_later(4, 6);
        feed.mark_later(7, 9);
        assert_eq!(feed.take_marks(), Some((4, 9)));
        assert_eq!(feed.take_marks(), None);
        // Given back by a failed commit while the relay left newer ones.
        feed.mark_later(10, 12);
        feed.mark_later(4, 9);
        assert_eq!(feed.take_marks(), Some((4, 12)));
    }

    /// Whether the row of `event_id` is marked published.
    async fn published(db: &crate::db::Db, event_id: &str) -> bool {
        let at: Option<i64> = sqlx::query_scalar("SELECT published_at_ms FROM outbox WHERE event_id = $1")
            .bind(event_id)
            .fetch_one(db.pool())
            .await
            .expect("the row");
        at.is_some()
    }

    #[tokio::test]
    async fn marks_left_for_later_ride_on_the_next_commit_and_survive_a_failed_one() {
        let database = testkit::TestDatabase::create_on(testkit::TestBackend::Sqlite).await;
        let db = crate::db::Db::connect(&database.url, &[]).await.expect("connect");
        publish(&db, &["a", "b"]).await.commit().await.expect("commit");
        let feed = db.feed().expect("SQLite's");
        let Taken::Rows(rows) = feed.take(Some(0), 10) else { panic!("rows a and b") };
        feed.mark_later(rows[0].id, rows[1].id);

        // A commit that fails gives them back...
        let mut failing = db.begin_write().await.expect("begin");
        failing.write("INSERT INTO no_such_table VALUES (1)").await.expect("queued");
        assert!(failing.commit().await.is_err(), "no such table");
        assert!(feed.has_marks(), "given back");
        assert!(!published(&db, "a").await);

        // ...and the next one, about something else entirely, writes them.
        publish(&db, &["c"]).await.commit().await.expect("commit");
        assert!(!feed.has_marks());
        assert!(published(&db, "a").await && published(&db, "b").await);
        assert!(!published(&db, "c").await, "not sent yet");
        db.close().await;
    }

    #[tokio::test]
    async fn rows_a_commit_could_not_queue_send_the_relay_to_the_table() {
        let database = testkit::TestDatabase::create_on(testkit::TestBackend::Sqlite).await;
        let db = crate::db::Db::connect(&database.url, &[]).await.expect("connect");
        publish(&db, &["a"]).await.commit().await.expect("commit");
        let feed = db.feed().expect("SQLite's");
        let Taken::Rows(rows) = feed.take(Some(0), 10) else { panic!("row a") };
        // A commit whose returned rows do not match what it wrote (none here).
        feed.queue(vec![OutboxRow::for_test("b")], &[]);
        assert!(matches!(feed.take(Some(rows[0].id), 10), Taken::Gap));
        assert!(matches!(feed.take(Some(rows[0].id), 10), Taken::Nothing), "once");
        db.close().await;
    }

    #[test]
    fn a_hole_further_on_ends_the_batch_before_it() {
        let feed = feed(&[4, 5, 7, 8]);
        assert_eq!(ids(feed.take(Some(3), 10)), [4, 5]);
        assert!(matches!(feed.take(Some(5), 10), Taken::Gap));
    }
}
