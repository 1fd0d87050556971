//! What changed in the view, for the live stream: the projection records each change in
//! its transaction, and once that has committed every open stream hears of it, on every
//! instance of the board. On SQLite (one process per store) the change goes straight to
//! this process's streams; on PostgreSQL, where several instances share the store and
//! each consumes only its own partitions, it goes out as a `NOTIFY`, which the database
//! delivers at commit to each instance's listener, this one's included.

use std::time::Duration;

use futures::future::BoxFuture;
use platform::db::{Backend, Deferred, Tx};
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::Position;
use crate::record::{parse_position_id, position_id};

/// The PostgreSQL channel the instances of one store tell each other on.
const CHANNEL: &str = "saga_board_changes";

/// The `NOTIFY` payloads of a transaction, sent in one statement just before it commits
/// (the database delivers them at the commit anyway).
#[derive(Default)]
struct Notifications(Vec<String>);

impl Deferred for Notifications {
    fn run(self, tx: &mut Tx) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT pg_notify($1, payload) FROM (VALUES {}) AS changes (payload)",
                platform::db::values(self.0.len(), 1, 2)
            );
            tx.read(sqlx::AssertSqlSafe(sql)).bind(CHANNEL).bind_all(self.0).fetch_all().await.map(|_| ())
        })
    }
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An order's view changed.
    Order(Uuid),
    /// A dead letter arrived, or came back after a replay.
    DeadLetter(Position),
    /// Changes may have been missed (the listener's connection was lost): streams end,
    /// and their clients read the lists afresh.
    Missed,
}

impl Change {
    /// As a `NOTIFY` payload.
    fn payload(&self) -> String {
        match self {
            Self::Order(id) => format!("order {id}"),
            Self::DeadLetter(position) => format!("dead-letter {}", position_id(position)),
            Self::Missed => "missed".to_owned(),
        }
    }

    /// From a `NOTIFY` payload.
    fn from_payload(payload: &str) -> Option<Self> {
        match payload.split_once(' ') {
            Some(("order", id)) => id.parse().ok().map(Self::Order),
            Some(("dead-letter", id)) => parse_position_id(id).map(Self::DeadLetter),
            _ => (payload == "missed").then_some(Self::Missed),
        }
    }
}

/// The channel changes go out on.
#[derive(Debug, Clone)]
pub struct Changes {
    sender: broadcast::Sender<Change>,
}

impl Default for Changes {
    fn default() -> Self {
        Self::new()
    }
}

impl Changes {
    /// A channel with no listener yet. Its buffer absorbs a burst; a stream that falls
    /// further behind ends, and its client starts again from the current lists.
    pub fn new() -> Self {
        Self { sender: broadcast::channel(8192).0 }
    }

    /// Tells this process's streams (none listening is fine).
    pub fn announce(&self, change: Change) {
        let _ = self.sender.send(change);
    }

    /// Tells the streams of every instance about `change` once `tx` has committed, and
    /// never if it rolls back.
    pub fn record(&self, tx: &mut Tx, change: Change) {
        match tx.backend() {
            Backend::Postgres => tx.deferred::<Notifications>().0.push(change.payload()),
            Backend::Sqlite => {
                let changes = self.clone();
                tx.after_commit(move || changes.announce(change));
            }
        }
    }

    /// A new listener, hearing of changes from now on.
    pub fn listen(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }

    /// Hears what every instance records on the PostgreSQL store at `url` and tells this
    /// process's streams, until `stopping`. Runs for the life of the service. Whenever
    /// the connection was lost, what was sent meanwhile is lost with it: once listening
    /// again, it tells the streams to start again.
    pub async fn relay_from_postgres(self, url: String, stopping: CancellationToken) {
        let mut listener: Option<PgListener> = None;
        let mut lost = false;
        while !stopping.is_cancelled() {
            let Some(connected) = listener.as_mut() else {
                match connect(&url).await {
                    Ok(connected) => {
                        listener = Some(connected);
                        if lost {
                            self.announce(Change::Missed);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot LISTEN for the board's changes: trying again in 1 s");
                        lost = true;
                        tokio::select! {
                            () = stopping.cancelled() => {}
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
                continue;
            };
            let heard = tokio::select! {
                () = stopping.cancelled() => break,
                heard = connected.try_recv() => heard,
            };
            match heard {
                Ok(Some(notification)) => match Change::from_payload(notification.payload()) {
                    Some(change) => self.announce(change),
                    None => tracing::warn!(payload = notification.payload(), "not a change of the board"),
                },
                // The connection was lost and the listener is listening again already.
                Ok(None) => {
                    tracing::warn!("the board's LISTEN connection was lost: open streams start again");
                    self.announce(Change::Missed);
                }
                Err(error) => {
                    tracing::warn!(%error, "the board's LISTEN connection failed: connecting again");
                    listener = None;
                    lost = true;
                }
            }
        }
    }
}

async fn connect(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_survives_its_notify_payload() {
        let letter = Position { topic: "order.created.dlt".into(), partition: 2, offset: 41 };
        for change in [Change::Order(Uuid::now_v7()), Change::DeadLetter(letter), Change::Missed] {
            assert_eq!(Change::from_payload(&change.payload()), Some(change));
        }
        assert_eq!(Change::from_payload("order not-a-uuid"), None);
        assert_eq!(Change::from_payload("something else"), None);
    }
}
