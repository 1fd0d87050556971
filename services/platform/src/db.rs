//! A service's own database: SQLite by default, PostgreSQL when the URL says so.
//!
//! One pool type ([`sqlx::AnyPool`]) serves both backends, so every store module writes
//! its SQL once. The schema keeps to types both understand the same way (TEXT ids,
//! BIGINT epoch milliseconds, TEXT JSON); where the two really differ (how a writer
//! locks, how a waiting relay is woken) the difference sits behind [`Backend`].

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, Executor};

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file: one writer at a time, readers in parallel (WAL).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// The migrations of one schema, for each backend (`migrations/<name>/{sqlite,postgres}`),
/// each given as `|| sqlx::migrate!("...")` so the files are embedded in the binary.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// Applied on SQLite.
    pub sqlite: fn() -> Migrator,
    /// Applied on PostgreSQL.
    pub postgres: fn() -> Migrator,
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

/// A pool on the service's database, with the backend it talks to.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Opens the database at `url` (creating a SQLite file and its folder if missing) and
    /// applies `migrations` in order.
    pub async fn connect(url: &str, migrations: &[&Migrations]) -> Result<Self, DbError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        let connect_error = |source| DbError::Connect { url: mask_password(url), source };
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        let pool = match backend {
            Backend::Sqlite => {
                create_sqlite_parent(url).map_err(|e| connect_error(sqlx::Error::Io(e)))?;
                options
                    // One connection per core would serialise readers behind the writer;
                    // WAL lets these read while one writes.
                    .max_connections(8)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL and a busy timeout are sqlx's defaults; NORMAL sync is
                            // durable across process crashes (not power loss) and much faster.
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await
            }
            Backend::Postgres => options.max_connections(16).connect(url).await,
        }
        .map_err(connect_error)?;
        let db = Self { pool, backend };
        for set in migrations {
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

    /// The engine behind the pool.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so two writers queue instead of failing when one upgrades
    /// its read lock.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Answers whether the database takes a query.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
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
