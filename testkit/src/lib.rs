//! Helpers for tests that run services against the real stack: a crate of its own, a
//! dev-dependency only, so that no service binary carries it.
//!
//! The stack is the one `./test.sh` starts: Kafka at `KAFKA_BOOTSTRAP_SERVERS`, Zipkin at
//! `ZIPKIN_URL`, PostgreSQL at `TEST_POSTGRES_URL`. `TEST_DATABASE=postgres` runs the
//! database-backed tests on PostgreSQL instead of SQLite. Nothing here skips a test when
//! a part of the stack is missing: the test fails, naming what it could not reach.

mod in_process;
mod tokens;

pub use in_process::{InProcess, assert_documents_refusals, event_meta};
pub use tokens::{admin_bearer, bearer, test_jwks_url, test_signer, token};

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use tokio::sync::oneshot;

use platform::app::{Application, Context, ServiceSpec};
use platform::config::{KafkaConfig, RetryPolicy, ServiceConfig};

/// Kafka's bootstrap servers for tests.
pub fn kafka_bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

/// The Zipkin server's base URL for tests.
pub fn zipkin_url() -> String {
    std::env::var("ZIPKIN_URL").unwrap_or_else(|_| "http://127.0.0.1:9411".to_owned())
}

/// Kafka settings for tests: 3 partitions, and the replication factor of the cluster
/// under test (`KAFKA_REPLICATION_FACTOR`, 1 unless a 3-broker cluster is tested).
pub fn kafka_config() -> KafkaConfig {
    let replication_factor = std::env::var("KAFKA_REPLICATION_FACTOR")
        .map(|rf| rf.parse().expect("KAFKA_REPLICATION_FACTOR is a number"))
        .unwrap_or(1);
    KafkaConfig {
        bootstrap_servers: kafka_bootstrap(),
        topic_partitions: 3,
        replication_factor,
        topic_prefix: String::new(),
        group_instance_id: None,
        fetch_linger: None,
    }
}

/// A topic prefix no other test uses: the services of one test share it, and see nothing
/// of any other test's events.
pub fn topic_prefix() -> String {
    format!("{}.", unique_name("t"))
}

/// A name no other test (or earlier run) has used, for topics, groups and databases.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Which database the database-backed tests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    /// A fresh SQLite file per test (the default).
    Sqlite,
    /// A fresh PostgreSQL database per test (`TEST_DATABASE=postgres`).
    Postgres,
}

impl TestBackend {
    /// From `TEST_DATABASE` (`sqlite` or `postgres`).
    pub fn from_env() -> Self {
        match std::env::var("TEST_DATABASE").as_deref() {
            Ok("postgres") => Self::Postgres,
            Ok("sqlite") | Err(_) => Self::Sqlite,
            Ok(other) => panic!("TEST_DATABASE must be sqlite or postgres, not {other:?}"),
        }
    }
}

/// A database that exists for one test and is removed when dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL to give the service.
    pub url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    File(PathBuf),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    /// A fresh, empty database on the backend `TEST_DATABASE` names.
    pub async fn create() -> Self {
        Self::create_on(TestBackend::from_env()).await
    }

    /// A fresh, empty database on `backend`, for tests of one backend's own behaviour.
    pub async fn create_on(backend: TestBackend) -> Self {
        match backend {
            TestBackend::Sqlite => {
                let dir = std::env::temp_dir().join("order-system-tests");
                std::fs::create_dir_all(&dir).expect("create the test database folder");
                let path = dir.join(format!("{}.db", unique_name("test")));
                Self { url: format!("sqlite://{}?mode=rwc", path.display()), cleanup: Cleanup::File(path) }
            }
            TestBackend::Postgres => {
                let admin_url = std::env::var("TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
                let name = unique_name("test").replace('-', "_");
                let mut admin = connect_postgres(&admin_url).await;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .expect("create the test database");
                let (base, _) = admin_url.rsplit_once('/').expect("TEST_POSTGRES_URL ends in /<database>");
                Self { url: format!("{base}/{name}"), cleanup: Cleanup::Postgres { admin_url, name } }
            }
        }
    }
}

async fn connect_postgres(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection as _;
    sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {url} is not reachable (is the stack up? ./test.sh starts it): {e}")
    })
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs inside the test's runtime; the clean-up gets a runtime of its own.
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    runtime.block_on(async {
                        let mut admin = connect_postgres(&admin_url).await;
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut admin)
                        .await
                        .map(|_| ())
                        .map_err(std::io::Error::other)
                    })
                })
                .join();
                if !matches!(dropped, Ok(Ok(()))) {
                    eprintln!("could not drop test database {}", self.url);
                }
            }
        }
    }
}

/// A configuration for a service under test: port 0, the given database, the test stack
/// under a fresh topic prefix, no span export, short retries, tokens of the test key.
pub fn service_config(spec: &ServiceSpec, database_url: &str) -> ServiceConfig {
    ServiceConfig {
        service_name: spec.defaults.name,
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: database_url.to_owned(),
        kafka: KafkaConfig { topic_prefix: topic_prefix(), ..kafka_config() },
        zipkin_endpoint: None,
        trace_sampler: platform::config::TraceSampler::default(),
        retry: RetryPolicy {
            max_attempts: 5,
            backoff: std::time::Duration::from_millis(50),
            multiplier: 2.0,
        },
        jwks_url: test_jwks_url(),
    }
}

/// A service running in the background of a test; stopped when dropped.
#[derive(Debug)]
pub struct TestService {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), platform::app::RunError>>>,
    /// The test's topic prefix: its topics are deleted when the service is dropped.
    topic_prefix: String,
}

impl TestService {
    /// Builds the service from `spec` and `config` and serves it in the background.
    pub async fn spawn(
        spec: &ServiceSpec,
        config: ServiceConfig,
        routes: impl FnOnce(&Context) -> Router,
    ) -> Self {
        let name = spec.defaults.name;
        let topic_prefix = config.kafka.topic_prefix.clone();
        let app = Application::build(spec, config, routes)
            .await
            .unwrap_or_else(|e| panic!("{name} did not start: {}", platform::error_chain(&e)));
        let base_url = format!("http://127.0.0.1:{}", app.port());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Self { base_url, stop: Some(stop), server: Some(server), topic_prefix }
    }

    /// Stops serving and waits until the service has closed its database.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task panicked").expect("server failed");
        }
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // A one-broker test cluster holds a few thousand partitions before it runs out of
        // file handles: every test takes its topics away with it.
        if self.topic_prefix.starts_with("t-") {
            delete_topics_with_prefix(&self.topic_prefix);
        }
    }
}

/// Deletes every topic whose name starts with `prefix` (test prefixes only).
pub fn delete_topics_with_prefix(prefix: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let config = kafka_config();
    let Ok(admin) =
        platform::kafka::client_config(&config, "test-cleanup").create::<AdminClient<DefaultClientContext>>()
    else {
        return;
    };
    let Ok(metadata) = admin.inner().fetch_metadata(None, std::time::Duration::from_secs(10)) else { return };
    let names: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .filter(|name| name.starts_with(prefix))
        .collect();
    if names.is_empty() {
        return;
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    // The admin client's futures run on librdkafka's threads: no runtime needed here.
    if let Err(error) = futures::executor::block_on(admin.delete_topics(&names, &AdminOptions::new())) {
        eprintln!("could not delete the test topics {prefix}*: {error}");
    }
}
