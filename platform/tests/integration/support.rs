//! What the messaging tests share: a database with an effects table, relays, consumers.

use std::future::Future;
use std::time::Duration;

use platform::config::{KafkaConfig, RetryPolicy};
use platform::consumer::{ConsumerDied, EventConsumer, Subscriptions};
use platform::db::{Db, Migrations, Tx};
use platform::outbox::{Relay, RelayConfig};
use testkit::{TestDatabase, kafka_config, unique_name};
use tokio_util::sync::CancellationToken;

/// `second_schema (id, payload)`: the tests' handlers record their effects there.
pub const EFFECTS: Migrations = Migrations {
    sqlite: || sqlx::migrate!("tests/migrations/second/sqlite"),
    postgres: || sqlx::migrate!("tests/migrations/second/postgres"),
};

/// A fresh database with the platform's tables and the effects table.
pub async fn database() -> (TestDatabase, Db) {
    let database = TestDatabase::create().await;
    let db = Db::connect(&database.url, &[&EFFECTS]).await.expect("connect");
    (database, db)
}

/// A fresh topic, created with its partitions.
pub async fn topic(prefix: &str) -> String {
    let topic = unique_name(prefix);
    platform::kafka::ensure_topics(&kafka_config(), "platform-test", &[&topic])
        .await
        .expect("Kafka must be up: ./test.sh starts it");
    topic
}

pub fn relay(db: &Db) -> Relay {
    Relay::new(db.clone(), &kafka_config(), "platform-test", RelayConfig::default()).expect("relay")
}

/// Short backoffs: 5 attempts, 50 ms × 2.
pub fn quick_retries() -> RetryPolicy {
    RetryPolicy { max_attempts: 5, backoff: Duration::from_millis(50), multiplier: 2.0 }
}

/// Runs a consumer (a fresh group) in the background until the token is cancelled.
pub async fn consume(
    db: &Db,
    subscriptions: Subscriptions,
) -> (CancellationToken, tokio::task::JoinHandle<Result<(), ConsumerDied>>) {
    consume_in(db, &kafka_config(), &unique_name("group"), subscriptions).await
}

/// Runs a consumer of `group`, with the settings of `kafka`, in the background until the
/// token is cancelled.
pub async fn consume_in(
    db: &Db,
    kafka: &KafkaConfig,
    group: &str,
    subscriptions: Subscriptions,
) -> (CancellationToken, tokio::task::JoinHandle<Result<(), ConsumerDied>>) {
    let consumer = EventConsumer::start(db.clone(), kafka, group, quick_retries(), subscriptions)
        .await
        .expect("consumer starts");
    let stop = CancellationToken::new();
    let running = tokio::spawn(consumer.run(stop.clone()));
    (stop, running)
}

/// Polls `check` until it returns true, for at most `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The payloads recorded in the effects table, in insertion order.
pub async fn effects(db: &Db) -> Vec<String> {
    sqlx::query_scalar("SELECT payload FROM second_schema ORDER BY id")
        .fetch_all(db.pool())
        .await
        .expect("effects")
}

/// Records `payload` in the effects table, in `tx`.
pub async fn record_effect(tx: &mut Tx, payload: impl ToString) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO second_schema (id, payload) VALUES ($1, $2)")
        .bind(next_effect_id())
        .bind(payload.to_string())
        .execute(tx.conn().await?)
        .await
        .map(|_| ())
}

/// Ids that sort in the order they were taken (zero-padded), for effects in apply order.
pub fn next_effect_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("{:020}", NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
}
