//! A service's own database: SQLite by default, PostgreSQL when the URL says so.
//!
//! One pool type ([`sqlx::AnyPool`]) serves both backends, so every store module writes
//! its SQL once. The schema keeps to types both understand the same way (TEXT ids,
//! BIGINT epoch milliseconds, TEXT JSON); where the two really differ (how a writer
//! locks, how a waiting relay is woken) the difference sits behind [`Backend`].

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyConnection, AnyPool, Connection, Executor, Transaction};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard};

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file: one writer at a time, readers in parallel (WAL).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// The migrations of one schema for each backend (the same folder for both when its SQL
/// is portable), each given as `|| sqlx::migrate!("...")` so the files are embedded in
/// the binary.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// Applied on SQLite.
    pub sqlite: fn() -> Migrator,
    /// Applied on PostgreSQL.
    pub postgres: fn() -> Migrator,
}

impl Migrations {
    /// One folder of portable SQL for both backends.
    pub const fn portable(migrator: fn() -> Migrator) -> Self {
        Self { sqlite: migrator, postgres: migrator }
    }
}

/// Failure to open, migrate or reach the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no usable database.
    #[error("cannot use database {url}")]
    Connect {
        /// The URL with any password masked.
        url: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed to apply.
    #[error("migrating the database failed")]
    Migrate(
        #[from]
        #[source]
        sqlx::migrate::MigrateError,
    ),
    /// A query failed.
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}

/// The platform's own tables in every service database: the outbox and the record of
/// processed events. Applied before the service's schema.
pub const PLATFORM_MIGRATIONS: Migrations = Migrations {
    sqlite: || sqlx::migrate!("../migrations/platform/sqlite"),
    postgres: || sqlx::migrate!("../migrations/platform/postgres"),
};

/// A pool on the service's database, with the backend it talks to.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    /// What write transactions use: on SQLite a pool of one connection, on PostgreSQL
    /// `pool` itself.
    writes: AnyPool,
    backend: Backend,
    /// The URL it was opened with, for connections outside the pool (LISTEN).
    url: Arc<str>,
    /// Signalled when a transaction that wrote outbox rows commits: the relay's doorbell.
    outbox_written: Arc<Notify>,
    /// SQLite writers queue here, in order, for the one write connection: waiting in the
    /// pool instead, a writer behind a long queue would give up at its acquire timeout.
    sqlite_writer: Arc<Mutex<()>>,
}

impl Db {
    /// Opens the database at `url` (creating a SQLite file and its folder if missing) and
    /// applies the platform's migrations, then `migrations` in order.
    pub async fn connect(url: &str, migrations: &[&Migrations]) -> Result<Self, DbError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        let connect_error = |source| DbError::Connect { url: mask_password(url), source };
        let (pool, writes) = match backend {
            Backend::Sqlite => {
                create_sqlite_parent(url).map_err(|e| connect_error(sqlx::Error::Io(e)))?;
                // WAL lets readers run beside the one writer, and a commit appends to the
                // log instead of syncing the database file. It is a property of the file:
                // set once, on one connection, before the pool opens more.
                let mut first = AnyConnection::connect(url).await.map_err(connect_error)?;
                first.execute("PRAGMA journal_mode = WAL").await.map_err(connect_error)?;
                first.close().await.map_err(connect_error)?;
                // Every write goes through one connection: SQLite takes one writer at a
                // time anyway, and a connection's page cache stays valid only across its
                // own commits. Writers taking turns on eight connections re-read from
                // the file, at each transaction, the pages another one changed.
                let readers = sqlite_pool(8).connect(url).await.map_err(connect_error)?;
                let writer = sqlite_pool(1).connect(url).await.map_err(connect_error)?;
                (readers, writer)
            }
            Backend::Postgres => {
                let pool = pool_options().max_connections(16).connect(url).await.map_err(connect_error)?;
                (pool.clone(), pool)
            }
        };
        let db = Self {
            pool,
            writes,
            backend,
            url: url.into(),
            outbox_written: Arc::new(Notify::new()),
            sqlite_writer: Arc::default(),
        };
        for set in std::iter::once(&&PLATFORM_MIGRATIONS).chain(migrations) {
            let mut migrator = match backend {
                Backend::Sqlite => (set.sqlite)(),
                Backend::Postgres => (set.postgres)(),
            };
            // Several schemas (the platform's own tables, the service's) share one history
            // table, so each set must tolerate versions that are not its own.
            migrator.set_ignore_missing(true).run(&db.pool).await?;
        }
        Ok(db)
    }

    /// The connection pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The engine behind the pool.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a transaction that will write. On SQLite writers queue in this process first,
    /// then take the write lock at once (`BEGIN IMMEDIATE`), so two writers never fail or
    /// back off when one upgrades its read lock.
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        let (inner, writer) = match self.backend {
            Backend::Sqlite => {
                let writer = self.sqlite_writer.clone().lock_owned().await;
                (self.writes.begin_with("BEGIN IMMEDIATE").await?, Some(writer))
            }
            Backend::Postgres => (self.writes.begin().await?, None),
        };
        Ok(Tx {
            inner,
            outbox: Vec::new(),
            outbox_written: self.outbox_written.clone(),
            backend: self.backend,
            after_commit: Vec::new(),
            _writer: writer,
        })
    }

    /// The notification a relay waits on: signalled after every commit that wrote events.
    pub fn outbox_written(&self) -> Arc<Notify> {
        self.outbox_written.clone()
    }

    /// Answers whether the database takes a query.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.writes.close().await;
        self.pool.close().await;
    }
}

fn pool_options() -> AnyPoolOptions {
    AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10))
}

/// A pool of up to `connections` on a SQLite file.
fn sqlite_pool(connections: u32) -> AnyPoolOptions {
    pool_options()
        .max_connections(connections)
        // A file connection cannot go stale the way a network one can, and the test is a
        // round trip to the connection's thread on every acquire.
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // Durable across a process crash (not a power cut), and no fsync per commit.
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                Ok(())
            })
        })
}

/// The `VALUES` list of a multi-row statement: `rows` tuples of `columns` numbered
/// parameters each, numbered from `$first` (`values(2, 3, 1)` is `($1, $2, $3), ($4, $5, $6)`).
/// `$n` is the placeholder both backends take.
pub fn values(rows: usize, columns: usize, first: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(first + row * columns + column).to_string());
        }
        sql.push(')');
    }
    sql
}

/// `$first, $first + 1, ...`: `count` numbered parameters, for an `IN (...)` list.
pub fn params(count: usize, first: usize) -> String {
    (first..first + count).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
}

/// Column `index` of `row`, stored as text and read back with [`FromStr`]: ids (a
/// [`uuid::Uuid`]) and statuses (an enum) are written with `to_string()`/`as_str()` and
/// read with this, the one decoding point of every store. Text that does not parse is a
/// decode error naming the column's value.
pub fn text_at<T>(row: &sqlx::any::AnyRow, index: usize) -> Result<T, sqlx::Error>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    use sqlx::Row as _;
    let text: &str = row.try_get(index)?;
    text.parse().map_err(|error| decode_error(text, error))
}

/// [`text_at`] for a nullable column.
pub fn optional_text_at<T>(row: &sqlx::any::AnyRow, index: usize) -> Result<Option<T>, sqlx::Error>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    use sqlx::Row as _;
    let text: Option<&str> = row.try_get(index)?;
    text.map(|text| text.parse().map_err(|error| decode_error(text, error))).transpose()
}

fn decode_error(text: &str, error: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("stored value {text:?}: {error}").into())
}

/// A write transaction: a state change and the events it publishes commit together.
///
/// Store functions take [`Tx::conn`]; [`Tx::publish`](crate::outbox) adds an event to the
/// outbox; [`Tx::commit`] commits and, when events were written, wakes the relay at once.
/// Dropped without a commit, it rolls back and nothing is published.
pub struct Tx {
    // Dropped before the writer's turn below: the rollback is queued before the next
    // writer starts.
    inner: Transaction<'static, sqlx::Any>,
    /// Events published so far, written to the outbox at commit.
    pub(crate) outbox: Vec<crate::outbox::OutboxRow>,
    outbox_written: Arc<Notify>,
    backend: Backend,
    /// Run after the commit, in order; dropped with the transaction if it rolls back.
    after_commit: Vec<Box<dyn FnOnce() + Send>>,
    _writer: Option<OwnedMutexGuard<()>>,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("backend", &self.backend)
            .field("outbox", &self.outbox.len())
            .field("after_commit", &self.after_commit.len())
            .finish_non_exhaustive()
    }
}

impl Tx {
    /// The engine it runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// What to end a `SELECT` with to lock the rows it reads until commit: `FOR UPDATE` on
    /// PostgreSQL, nothing on SQLite, where this transaction already excludes every other
    /// writer.
    pub fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    /// Runs `action` once the transaction has committed, and never if it rolls back: to
    /// tell others about a change only when it is there for them to read.
    pub fn after_commit(&mut self, action: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(action));
    }

    /// The connection, for queries inside the transaction.
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }

    /// Writes the events it published to the outbox and commits; then, if there were
    /// any, tells the relay.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let wrote_events = !self.outbox.is_empty();
        if wrote_events {
            crate::outbox::insert_rows(&mut self.inner, &self.outbox).await?;
        }
        self.inner.commit().await?;
        if wrote_events {
            self.outbox_written.notify_one();
        }
        for action in self.after_commit.drain(..) {
            action();
        }
        Ok(())
    }

    /// Rolls back explicitly (dropping does the same).
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }
}

fn create_sqlite_parent(url: &str) -> std::io::Result<()> {
    let Ok(options) = SqliteConnectOptions::from_str(url) else {
        return Ok(());
    };
    match Path::new(options.get_filename()).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, for messages.
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            mask_password("postgres://app:s3cret@db:5432/orders"),
            "postgres://app:***@db:5432/orders"
        );
        assert_eq!(mask_password("postgres://app@db/orders"), "postgres://app@db/orders");
        assert_eq!(mask_password("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
