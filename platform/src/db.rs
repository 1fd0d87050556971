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

use futures::future::BoxFuture;
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{
    Any, AnyConnection, AnyPool, Arguments, Connection, Encode, Executor, SqlSafeStr, Transaction, Type,
};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard};
use uuid::Uuid;

use crate::outbox::feed::Feed;

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

/// Rows in one statement of [`Tx::write_rows`] at most: larger ones gain nothing more.
const ROWS_PER_STATEMENT: usize = 500;

/// A pool on the service's database, with the backend it talks to.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    /// What write transactions use.
    writer: Writer,
    backend: Backend,
    /// The URL it was opened with, for connections outside the pool (LISTEN).
    url: Arc<str>,
    /// Signalled when a transaction that wrote outbox rows commits: the relay's doorbell.
    outbox_written: Arc<Notify>,
    /// On PostgreSQL, this instance's name in the outbox's notifications (its connections'
    /// `outbox.writer` setting): its relay skips them, as the doorbell rang already.
    writer_id: Arc<str>,
    /// On SQLite, the rows its commits wrote to the outbox, handed to the relay.
    feed: Option<Arc<Feed>>,
}

/// Where write transactions run.
#[derive(Debug, Clone)]
enum Writer {
    /// SQLite's one write connection. Writers queue for it here, in order: waiting in a
    /// pool instead, a writer behind a long queue would give up at its acquire timeout.
    Sqlite(Arc<Mutex<SqliteWriter>>),
    /// The pool itself.
    Postgres(AnyPool),
}

/// The connection every SQLite write goes through.
#[derive(Debug)]
struct SqliteWriter {
    /// `None` once the database is closed.
    conn: Option<AnyConnection>,
    /// A transaction may be open on it: one that was dropped, or failed, before it
    /// ended. The next writer rolls it back first.
    open: bool,
    /// Where commits queue the outbox rows they wrote.
    feed: Arc<Feed>,
}

impl Db {
    /// Opens the database at `url` (creating a SQLite file and its folder if missing) and
    /// applies the platform's migrations, then `migrations` in order.
    pub async fn connect(url: &str, migrations: &[&Migrations]) -> Result<Self, DbError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        let connect_error = |source| DbError::Connect { url: mask_password(url), source };
        let writer_id: Arc<str> = Uuid::new_v4().to_string().into();
        let (pool, writer, feed) = match backend {
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
                let mut conn = AnyConnection::connect(url).await.map_err(connect_error)?;
                conn.execute(SQLITE_SYNCHRONOUS).await.map_err(connect_error)?;
                let feed = Arc::new(Feed::default());
                let writer = SqliteWriter { conn: Some(conn), open: false, feed: feed.clone() };
                (readers, Writer::Sqlite(Arc::new(Mutex::new(writer))), Some(feed))
            }
            Backend::Postgres => {
                let writer_id = writer_id.clone();
                let pool = pool_options()
                    .max_connections(16)
                    .after_connect(move |conn, _| {
                        let writer_id = writer_id.clone();
                        Box::pin(async move {
                            sqlx::query("SELECT set_config('outbox.writer', $1, false)")
                                .bind(&*writer_id)
                                .execute(conn)
                                .await
                                .map(|_| ())
                        })
                    })
                    .connect(url)
                    .await
                    .map_err(connect_error)?;
                (pool.clone(), Writer::Postgres(pool), None)
            }
        };
        let outbox_written = Arc::new(Notify::new());
        let db = Self { pool, writer, backend, url: url.into(), outbox_written, writer_id, feed };
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

    /// This instance's name in the outbox's notifications on PostgreSQL.
    pub(crate) fn writer_id(&self) -> &str {
        &self.writer_id
    }

    /// The engine behind the pool.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// On SQLite, what its commits hand the relay.
    pub(crate) fn feed(&self) -> Option<&Feed> {
        self.feed.as_deref()
    }

    /// Starts a transaction that will write. On SQLite writers queue in this process first,
    /// then take the write lock at once (`BEGIN IMMEDIATE`), so two writers never fail or
    /// back off when one upgrades its read lock. The `BEGIN` goes to SQLite with the
    /// transaction's first statement (see [`Tx::write`]).
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        let inner = match &self.writer {
            Writer::Sqlite(writer) => {
                let mut writer = writer.clone().lock_owned().await;
                let SqliteWriter { conn, open, .. } = &mut *writer;
                let conn = conn.as_mut().ok_or(sqlx::Error::PoolClosed)?;
                if *open {
                    // Left by a transaction that was dropped or failed; it may have ended
                    // already, and then this fails harmlessly.
                    let _ = conn.execute("ROLLBACK").await;
                    *open = false;
                }
                let mut pending = Pending::default();
                pending.sql.push_str("BEGIN IMMEDIATE");
                Inner::Sqlite { writer, pending }
            }
            Writer::Postgres(pool) => Inner::Postgres(pool.begin().await?),
        };
        Ok(Tx {
            inner,
            outbox: Vec::new(),
            outbox_written: self.outbox_written.clone(),
            backend: self.backend,
            after_commit: Vec::new(),
            deferred: Vec::new(),
            savepoints: 0,
        })
    }

    /// Completes once the SQLite writers waiting now have had their turn (at once on
    /// PostgreSQL): the relay paces its batches by them.
    pub(crate) async fn writers_queued_now(&self) {
        if let Writer::Sqlite(writer) = &self.writer {
            drop(writer.lock().await);
        }
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
        match &self.writer {
            Writer::Sqlite(writer) => {
                let mut writer = writer.lock().await;
                if let Some(mut conn) = writer.conn.take() {
                    if writer.open {
                        let _ = conn.execute("ROLLBACK").await;
                    }
                    let _ = conn.close().await;
                }
            }
            Writer::Postgres(pool) => pool.close().await,
        }
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
                conn.execute(SQLITE_SYNCHRONOUS).await?;
                Ok(())
            })
        })
}

/// Durable across a process crash (not a power cut), and no fsync per commit.
const SQLITE_SYNCHRONOUS: &str = "PRAGMA synchronous = NORMAL";

/// The first key of the advisory locks [`Tx::lock_names`] takes: their own space, apart
/// from the relay's and the clean-up's single-key locks.
const NAMED_LOCKS: i32 = 0x4e41_4d45;

/// A name's advisory lock key: FNV-1a, the same in every instance and build. Two names
/// that share a key only wait on each other more often.
fn name_key(name: &str) -> i32 {
    let hash =
        name.bytes().fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
    hash as i32
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
/// Statements whose only result is success go through [`Tx::write`], reads through
/// [`Tx::read`], and what neither covers (a row count looked at, a helper that takes a
/// connection) through [`Tx::conn`]; [`Tx::publish`](crate::outbox) adds an event to the
/// outbox; [`Tx::commit`] commits and, when events were written, wakes
/// the relay at once. Dropped without a commit, it rolls back and nothing is published.
///
/// On SQLite every statement is a hand-off to the connection's own thread and back, and
/// those thread switches were most of what a saga cost. So there [`Tx::write`] only
/// queues its statement; the queue goes to SQLite as one script with the next read, or
/// with the `COMMIT`. A transaction that only writes (a new order with its lines, history
/// and outbox rows) is then one hand-off from `BEGIN` to `COMMIT`.
pub struct Tx {
    inner: Inner,
    /// Events published so far, written to the outbox at commit.
    pub(crate) outbox: Vec<crate::outbox::OutboxRow>,
    outbox_written: Arc<Notify>,
    backend: Backend,
    /// Run after the commit, in order; dropped with the transaction if it rolls back.
    after_commit: Vec<Box<dyn FnOnce() + Send>>,
    /// What [`Tx::deferred`] gathered, run just before the commit, in the order first asked for.
    deferred: Vec<Box<dyn AnyDeferred>>,
    /// Savepoints taken so far, for their names.
    savepoints: u32,
}

/// Work that a transaction gathers across its statements and does once, just before it
/// commits: recomputing a view once for all the changes of a batch, say, instead of
/// once per change. See [`Tx::deferred`].
pub trait Deferred: Default + Send + 'static {
    /// Does the work, in `tx`. An error fails the commit.
    fn run(self, tx: &mut Tx) -> BoxFuture<'_, Result<(), sqlx::Error>>;
}

/// [`Deferred`] with its type erased, so one list holds every kind.
trait AnyDeferred: Send {
    fn as_any(&mut self) -> &mut dyn std::any::Any;
    fn run_boxed(self: Box<Self>, tx: &mut Tx) -> BoxFuture<'_, Result<(), sqlx::Error>>;
}

impl<T: Deferred> AnyDeferred for T {
    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn run_boxed(self: Box<Self>, tx: &mut Tx) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        (*self).run(tx)
    }
}

enum Inner {
    /// The writer's turn, held until the transaction ends, and what is queued for it.
    Sqlite {
        writer: OwnedMutexGuard<SqliteWriter>,
        pending: Pending,
    },
    Postgres(Transaction<'static, Any>),
}

/// Statements queued on SQLite: one script, its placeholders numbered through.
#[derive(Default)]
struct Pending {
    sql: String,
    arguments: AnyArguments,
    /// A script of this transaction failed, and SQLite's transaction is rolled back: what
    /// is queued after it must not run on its own, outside any transaction.
    failed: bool,
}

/// A point in a [`Tx`] to roll back to ([`Tx::savepoint`]).
#[derive(Debug)]
pub(crate) struct Savepoint {
    /// Its SQL name is `p` and this number, unique in its transaction.
    number: u32,
    outbox: usize,
    after_commit: usize,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("backend", &self.backend)
            .field("outbox", &self.outbox.len())
            .field("after_commit", &self.after_commit.len())
            .field("deferred", &self.deferred.len())
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

    /// Takes PostgreSQL's transaction-scoped advisory lock of each of `names` (say
    /// `wallet:<user id>`), in one order that does not depend on the caller's: transactions
    /// that lock their rows only after naming them here cannot wait on each other in a
    /// circle. Nothing on SQLite, where this transaction already excludes every other writer.
    pub async fn lock_names(&mut self, names: &[String]) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Sqlite || names.is_empty() {
            return Ok(());
        }
        let mut keys: Vec<i32> = names.iter().map(|name| name_key(name)).collect();
        keys.sort_unstable();
        keys.dedup();
        // A `VALUES` list is scanned in its order; the count only gives the statement a
        // result the `Any` driver can decode (the lock function returns `void`).
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock({NAMED_LOCKS}, key) FROM (VALUES {}) AS named(key)) AS locked",
            values(keys.len(), 1, 1)
        );
        self.read(sqlx::AssertSqlSafe(sql)).bind_all(keys).fetch_one().await?;
        Ok(())
    }

    /// Runs `action` once the transaction has committed, and never if it rolls back: to
    /// tell others about a change only when it is there for them to read.
    pub fn after_commit(&mut self, action: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(action));
    }

    /// The `T` this transaction is gathering, new (its `Default`) on the first call: it
    /// [runs](Deferred::run) once, just before the commit, with all that was added to it.
    /// Nothing of it runs if the transaction rolls back.
    pub fn deferred<T: Deferred>(&mut self) -> &mut T {
        let index = match self.deferred.iter_mut().position(|d| d.as_any().is::<T>()) {
            Some(index) => index,
            None => {
                self.deferred.push(Box::new(T::default()));
                self.deferred.len() - 1
            }
        };
        self.deferred[index].as_any().downcast_mut::<T>().expect("the entry found by its type")
    }

    /// A statement whose only result is success or failure (an `INSERT`, `UPDATE` or
    /// `DELETE` whose row count nobody reads): bind its `$n` parameters in order, then
    /// await it. On SQLite it is queued and runs with the transaction's next read or its
    /// commit, whose error is then its error too; on PostgreSQL it runs at once. A
    /// statement whose failure the caller handles, or whose row count it reads, goes
    /// through [`Tx::conn`] instead.
    pub fn write(&mut self, sql: impl SqlSafeStr) -> Statement<'_> {
        self.statement(sql)
    }

    /// Writes `rows`, in their order, with as few multi-row statements as the parameter
    /// limit allows: each is `{head} VALUES (…), (…) {tail}`, with `columns` parameters
    /// per row, which `bind` binds for one row. Queued on SQLite, as [`Tx::write`] is.
    pub async fn write_rows<R>(
        &mut self,
        (head, tail): (&str, &str),
        columns: usize,
        rows: &[R],
        bind: impl for<'s> Fn(Statement<'s>, &R) -> Statement<'s>,
    ) -> Result<(), sqlx::Error> {
        // Never more than SQLite's 32,766 parameters in one statement.
        let per_statement = (32_766 / columns.max(1)).min(ROWS_PER_STATEMENT);
        for chunk in rows.chunks(per_statement) {
            let sql = format!("{head} VALUES {} {tail}", values(chunk.len(), columns, 1));
            let mut statement = self.write(sqlx::AssertSqlSafe(sql));
            for row in chunk {
                statement = bind(statement, row);
            }
            statement.await?;
        }
        Ok(())
    }

    /// A statement whose rows are read (a `SELECT`, or a write `RETURNING` rows): bind its
    /// parameters, then `fetch_all`, `fetch_optional` or `fetch_one`. On SQLite the
    /// statements queued by [`Tx::write`] go with it, in one hand-off.
    pub fn read(&mut self, sql: impl SqlSafeStr) -> Statement<'_> {
        self.statement(sql)
    }

    fn statement(&mut self, sql: impl SqlSafeStr) -> Statement<'_> {
        let sql = sql.into_sql_str();
        let kind = match &mut self.inner {
            Inner::Sqlite { writer, pending } => {
                let first = pending.arguments.len();
                if !pending.sql.is_empty() {
                    pending.sql.push_str(";\n");
                }
                let parameters = renumber(sql.as_str(), first, &mut pending.sql);
                Kind::Queued { writer, pending, expected: first + parameters }
            }
            Inner::Postgres(tx) => Kind::Now { conn: tx, query: sqlx::query(sql) },
        };
        Statement { kind, error: None }
    }

    /// The connection, for what [`Tx::write`] and [`Tx::read`] do not cover (a write whose
    /// row count is read, a helper that takes a connection). On SQLite the statements
    /// queued by [`Tx::write`] run first.
    pub async fn conn(&mut self) -> Result<&mut AnyConnection, sqlx::Error> {
        match &mut self.inner {
            Inner::Sqlite { writer, pending } => {
                if !pending.sql.is_empty() || pending.failed {
                    run_script(writer, pending).await?;
                }
                Ok(writer.conn.as_mut().ok_or(sqlx::Error::PoolClosed)?)
            }
            Inner::Postgres(tx) => Ok(&mut **tx),
        }
    }

    /// Marks a point to come back to with [`Tx::rollback_to`]: an SQL `SAVEPOINT`, with
    /// the events published and the after-commit actions so far.
    pub(crate) async fn savepoint(&mut self) -> Result<Savepoint, sqlx::Error> {
        self.savepoints += 1;
        let number = self.savepoints;
        self.write(sqlx::AssertSqlSafe(format!("SAVEPOINT p{number}"))).await?;
        Ok(Savepoint { number, outbox: self.outbox.len(), after_commit: self.after_commit.len() })
    }

    /// Keeps what was done since `point`, and forgets the point (`RELEASE`).
    pub(crate) async fn release(&mut self, point: Savepoint) -> Result<(), sqlx::Error> {
        self.write(sqlx::AssertSqlSafe(format!("RELEASE SAVEPOINT p{}", point.number))).await
    }

    /// Undoes what was written, published and set to run after commit since `point`,
    /// keeping what came before it. Work gathered for [`Tx::deferred`] cannot be partly
    /// undone: with any, this refuses.
    pub(crate) async fn rollback_to(&mut self, point: Savepoint) -> Result<(), sqlx::Error> {
        if !self.deferred.is_empty() {
            return Err(sqlx::Error::Protocol("deferred work cannot be rolled back to a savepoint".into()));
        }
        self.write(sqlx::AssertSqlSafe(format!("ROLLBACK TO SAVEPOINT p{}", point.number))).await?;
        self.outbox.truncate(point.outbox);
        self.after_commit.truncate(point.after_commit);
        Ok(())
    }

    /// Runs its [deferred](Tx::deferred) work, writes the events it published to the
    /// outbox and commits; then, if there were any, tells the relay. On SQLite it also
    /// marks published what the relay sent since the last commit, and hands the relay
    /// the rows it wrote ([`crate::outbox`]'s feed).
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        // Deferred work may write, publish, or defer more: until none is left.
        while !self.deferred.is_empty() {
            let deferred = self.deferred.remove(0);
            deferred.run_boxed(&mut self).await?;
        }
        let rows = std::mem::take(&mut self.outbox);
        let wrote_events = !rows.is_empty();
        // On SQLite the relay's marks ride on this commit (see `outbox::feed`).
        let mut owed = match &self.inner {
            Inner::Sqlite { writer, .. } => Some(FeedOwed {
                feed: writer.feed.clone(),
                marks: writer.feed.take_marks(),
                rows: wrote_events,
            }),
            Inner::Postgres(_) => None,
        };
        if let Some((first, last)) = owed.as_ref().and_then(|owed| owed.marks) {
            crate::outbox::mark_range(&mut self, first, last).await?;
        }
        if wrote_events {
            crate::outbox::insert_rows(&mut self, &rows).await?;
        }
        match self.inner {
            Inner::Sqlite { mut writer, mut pending } => {
                pending.sql.push_str(";\nCOMMIT");
                let returned = run_script(&mut writer, &mut pending).await?;
                writer.open = false;
                if let Some(owed) = owed.as_mut() {
                    owed.paid();
                }
                if wrote_events {
                    // Still holding the writer, so in commit order.
                    writer.feed.queue(rows, &returned);
                }
            }
            Inner::Postgres(tx) => tx.commit().await?,
        }
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
        match self.inner {
            Inner::Sqlite { mut writer, .. } => {
                if writer.open {
                    if let Some(conn) = writer.conn.as_mut() {
                        conn.execute("ROLLBACK").await?;
                    }
                    writer.open = false;
                }
                Ok(())
            }
            Inner::Postgres(tx) => tx.rollback().await,
        }
    }
}

/// What a SQLite commit owes the relay's feed should it end early, failed or its future
/// dropped: the marks it took go back, and the rows it wrote (committed or not, it cannot
/// tell) are left to the table.
struct FeedOwed {
    feed: Arc<Feed>,
    marks: Option<(i64, i64)>,
    rows: bool,
}

impl FeedOwed {
    /// The commit went through: it wrote the marks, and hands its rows over itself.
    fn paid(&mut self) {
        self.marks = None;
        self.rows = false;
    }
}

impl Drop for FeedOwed {
    fn drop(&mut self) {
        if let Some((first, last)) = self.marks {
            self.feed.mark_later(first, last);
        }
        if self.rows {
            self.feed.missed();
        }
    }
}

/// Sends what is queued as one script and returns the rows it gave. The transaction
/// counts as open from here until a commit succeeds: a failure or a cancelled future
/// leaves it to the next writer to roll back.
async fn run_script(writer: &mut SqliteWriter, pending: &mut Pending) -> Result<Vec<AnyRow>, sqlx::Error> {
    if pending.failed {
        return Err(sqlx::Error::Protocol(
            "an earlier statement of this transaction failed and rolled it back".into(),
        ));
    }
    let Pending { sql, arguments, .. } = std::mem::take(pending);
    writer.open = true;
    let conn = writer.conn.as_mut().ok_or(sqlx::Error::PoolClosed)?;
    let outcome = sqlx::query_with(sqlx::AssertSqlSafe(sql), arguments).fetch_all(&mut *conn).await;
    if outcome.is_err() {
        // Release the write lock now rather than at the next writer's turn.
        let _ = conn.execute("ROLLBACK").await;
        writer.open = false;
        pending.failed = true;
    }
    outcome
}

/// A statement of [`Tx::write`] or [`Tx::read`], taking its parameters.
#[must_use = "a statement must be awaited or fetched: its mistakes come back there"]
pub struct Statement<'t> {
    kind: Kind<'t>,
    /// The first parameter that would not encode.
    error: Option<sqlx::error::BoxDynError>,
}

enum Kind<'t> {
    /// Appended to the SQLite script; `expected` is the script's parameter count once
    /// every parameter of this statement is bound.
    Queued {
        writer: &'t mut SqliteWriter,
        pending: &'t mut Pending,
        expected: usize,
    },
    Now {
        conn: &'t mut Transaction<'static, Any>,
        query: sqlx::query::Query<'static, Any, AnyArguments>,
    },
}

impl<'t> Statement<'t> {
    /// Binds the next `$n`.
    pub fn bind<'e, T: Encode<'e, Any> + Type<Any>>(mut self, value: T) -> Self {
        self.kind = match self.kind {
            Kind::Queued { writer, pending, expected } => {
                if let Err(error) = pending.arguments.add(value) {
                    self.error.get_or_insert(error);
                }
                Kind::Queued { writer, pending, expected }
            }
            Kind::Now { conn, query } => Kind::Now { conn, query: query.bind(value) },
        };
        self
    }

    /// Binds each of `values` as the next `$n`, in order (an `IN (...)` or `VALUES` list).
    pub fn bind_all<'e, T: Encode<'e, Any> + Type<Any>>(
        mut self,
        values: impl IntoIterator<Item = T>,
    ) -> Self {
        for value in values {
            self = self.bind(value);
        }
        self
    }

    /// Runs it now, with what is queued before it, and returns its rows.
    pub async fn fetch_all(self) -> Result<Vec<AnyRow>, sqlx::Error> {
        match self.checked()? {
            Kind::Queued { writer, pending, .. } => run_script(writer, pending).await,
            Kind::Now { conn, query } => query.fetch_all(&mut **conn).await,
        }
    }

    /// [`Statement::fetch_all`], for at most one row.
    pub async fn fetch_optional(self) -> Result<Option<AnyRow>, sqlx::Error> {
        Ok(self.fetch_all().await?.into_iter().next())
    }

    /// [`Statement::fetch_all`], for exactly one row.
    pub async fn fetch_one(self) -> Result<AnyRow, sqlx::Error> {
        self.fetch_optional().await?.ok_or(sqlx::Error::RowNotFound)
    }

    /// Its kind, once every parameter is known to be bound and encoded.
    fn checked(self) -> Result<Kind<'t>, sqlx::Error> {
        if let Some(error) = self.error {
            return Err(sqlx::Error::Encode(error));
        }
        if let Kind::Queued { pending, expected, .. } = &self.kind
            && pending.arguments.len() != *expected
        {
            // A script with its parameters out of step would bind every later statement
            // wrongly: refuse it here, where the mistake is.
            return Err(sqlx::Error::Protocol(format!(
                "a statement takes {expected} parameters in its script, {} were bound",
                pending.arguments.len()
            )));
        }
        Ok(self.kind)
    }
}

impl<'t> std::future::IntoFuture for Statement<'t> {
    type Output = Result<(), sqlx::Error>;
    type IntoFuture = BoxFuture<'t, Result<(), sqlx::Error>>;

    /// Queues it on SQLite; runs it on PostgreSQL.
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            match self.checked()? {
                Kind::Queued { .. } => Ok(()),
                Kind::Now { conn, query } => query.execute(&mut **conn).await.map(|_| ()),
            }
        })
    }
}

/// Appends `sql` to `out` with each `$n` outside quotes as `$(n + offset)`, so that
/// statements of one script number their parameters through; returns the highest `n`.
fn renumber(sql: &str, offset: usize, out: &mut String) -> usize {
    let mut highest = 0;
    let mut quote: Option<char> = None;
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, '$') if chars.peek().is_some_and(|(_, d)| d.is_ascii_digit()) => {
                let mut n = 0usize;
                while let Some((_, d)) = chars.peek().copied().filter(|(_, d)| d.is_ascii_digit()) {
                    n = n * 10 + d.to_digit(10).unwrap_or(0) as usize;
                    chars.next();
                }
                highest = highest.max(n);
                out.push('$');
                out.push_str(&(n + offset).to_string());
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    highest
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
    fn a_lock_name_hashes_to_its_fnv_1a_key_in_every_build() {
        // FNV-1a's published test vectors: instances built apart must agree on each key.
        assert_eq!(name_key("") as u32, 0x811c_9dc5);
        assert_eq!(name_key("a") as u32, 0xe40c_292c);
        assert_eq!(name_key("foobar") as u32, 0xbf9c_f968);
    }

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            mask_password("postgres://app:s3cret@db:5432/orders"),
            "postgres://app:***@db:5432/orders"
        );
        assert_eq!(mask_password("postgres://app@db/orders"), "postgres://app@db/orders");
        assert_eq!(mask_password("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[test]
    fn statements_of_one_script_number_their_parameters_through() {
        let mut script = String::from("BEGIN IMMEDIATE;\n");
        let highest = renumber(
            "INSERT INTO t (a, b) VALUES ($1, (SELECT COUNT(*) FROM t WHERE a = $1) + $2)",
            3,
            &mut script,
        );
        assert_eq!(highest, 2);
        assert_eq!(
            script,
            "BEGIN IMMEDIATE;\nINSERT INTO t (a, b) VALUES ($4, (SELECT COUNT(*) FROM t WHERE a = $4) + $5)"
        );

        let mut script = String::new();
        assert_eq!(
            renumber("UPDATE t SET a = '$1', b = json_extract(c, '$.x') WHERE d = $10", 1, &mut script),
            10
        );
        assert_eq!(script, "UPDATE t SET a = '$1', b = json_extract(c, '$.x') WHERE d = $11");
        assert_eq!(renumber("DELETE FROM t", 7, &mut String::new()), 0);
    }
}
