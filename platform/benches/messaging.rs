//! Throughput and latency of outbox → Kafka → consumer on the real stack. Prints figures;
//! asserts nothing about speed.
//!
//!     cargo bench -p platform --bench messaging -- [--backend sqlite|postgres] [--events N]
//!         [--rate R] [--seconds S]
//!
//! Two runs, each on a fresh database and topic (3 partitions):
//! - saturation: N events committed in transactions of 100, then the relay drains them;
//!   prints events/s relayed (commit → Kafka ack → marked) and events/s handled end to end;
//! - light load: R events/s, one per transaction, for S seconds; prints commit-to-handler
//!   latency p50/p90/p99/max (measured from just before COMMIT to the start of the handler).
//!
//! Needs the stack (`stack/stack.sh start kafka postgres`), as the tests do.

// Printing its figures is what a benchmark is for.
#![allow(clippy::print_stdout)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use platform::config::RetryPolicy;
use platform::consumer::{ConsumerDied, EventConsumer, EventMeta, Handler, HandlerError, Subscriptions};
use platform::db::{Db, Tx};
use platform::outbox::{Relay, RelayConfig};
use serde::{Deserialize, Serialize};
use shared_events::Event;
use testkit::{TestBackend, TestDatabase, kafka_config, unique_name};
use tokio_util::sync::CancellationToken;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BenchEvent {
    seq: u64,
    /// Microseconds since the epoch, taken just before COMMIT.
    committed_at_us: i64,
}

impl Event for BenchEvent {
    const TOPIC: &'static str = "bench.events";
    const TYPE: &'static str = "bench.events.v1";
    fn key(&self) -> String {
        // Spread over the partitions as many aggregates would.
        format!("aggregate-{}", self.seq % 64)
    }
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

struct Measure {
    latencies: Arc<Mutex<Vec<u64>>>,
    handled: Arc<std::sync::atomic::AtomicU64>,
}

#[async_trait::async_trait]
impl Handler<BenchEvent> for Measure {
    async fn handle(&self, event: BenchEvent, _meta: &EventMeta, _tx: &mut Tx) -> Result<(), HandlerError> {
        let micros = (now_us() - event.committed_at_us).max(0) as u64;
        if let Ok(mut latencies) = self.latencies.lock() {
            latencies.push(micros);
        }
        self.handled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

struct Args {
    backend: TestBackend,
    events: u64,
    rate: u64,
    seconds: u64,
}

fn args() -> Args {
    let mut args = Args { backend: TestBackend::Sqlite, events: 50_000, rate: 1000, seconds: 10 };
    let given: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut given = given.iter();
    while let Some(flag) = given.next() {
        let value = given.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => {
                args.backend = match value.as_str() {
                    "postgres" => TestBackend::Postgres,
                    "sqlite" => TestBackend::Sqlite,
                    other => panic!("--backend sqlite|postgres, not {other}"),
                }
            }
            "--events" => args.events = value.parse().expect("--events N"),
            "--rate" => args.rate = value.parse().expect("--rate R"),
            "--seconds" => args.seconds = value.parse().expect("--seconds S"),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

struct Rig {
    _database: TestDatabase,
    db: Db,
    topic: String,
    latencies: Arc<Mutex<Vec<u64>>>,
    handled: Arc<std::sync::atomic::AtomicU64>,
}

async fn rig(backend: TestBackend) -> Rig {
    let database = TestDatabase::create_on(backend).await;
    let db = Db::connect(&database.url, &[]).await.expect("database");
    let topic = unique_name("bench.events");
    platform::kafka::ensure_topics(&kafka_config(), "bench", &[&topic]).await.expect("Kafka must be up");
    let latencies = Arc::new(Mutex::new(Vec::new()));
    Rig { _database: database, db, topic, latencies, handled: Arc::default() }
}

impl Rig {
    async fn consumer(&self) -> (CancellationToken, tokio::task::JoinHandle<Result<(), ConsumerDied>>) {
        let subscriptions = Subscriptions::new().on_topic::<BenchEvent>(
            &self.topic,
            Measure { latencies: self.latencies.clone(), handled: self.handled.clone() },
        );
        let retry = RetryPolicy { max_attempts: 2, backoff: Duration::from_millis(10), multiplier: 1.0 };
        let consumer = EventConsumer::start(
            self.db.clone(),
            &kafka_config(),
            &unique_name("bench"),
            retry,
            subscriptions,
        )
        .await
        .expect("consumer");
        let stop = CancellationToken::new();
        (stop.clone(), tokio::spawn(consumer.run(stop)))
    }

    fn relay(&self) -> Relay {
        Relay::new(self.db.clone(), &kafka_config(), "bench", RelayConfig::default()).expect("relay")
    }

    async fn commit(&self, seqs: std::ops::Range<u64>) {
        let mut tx = self.db.begin_write().await.expect("begin");
        let committed_at_us = now_us();
        for seq in seqs {
            tx.publish_to(&self.topic, &BenchEvent { seq, committed_at_us }).await.expect("enqueue");
        }
        tx.commit().await.expect("commit");
    }

    async fn wait_handled(&self, count: u64, within: Duration) {
        let deadline = Instant::now() + within;
        while self.handled.load(std::sync::atomic::Ordering::Relaxed) < count {
            assert!(
                Instant::now() < deadline,
                "only {} of {count} handled",
                self.handled.load(std::sync::atomic::Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

async fn saturation(args: &Args) {
    let rig = rig(args.backend).await;
    for start in (0..args.events).step_by(100) {
        rig.commit(start..(start + 100).min(args.events)).await;
    }
    let (stop, consuming) = rig.consumer().await;
    let relay = rig.relay();
    let started = Instant::now();
    let mut relayed = 0;
    while relayed < args.events as usize {
        relayed += relay.publish_pending().await.expect("relay step");
    }
    let relay_seconds = started.elapsed().as_secs_f64();
    rig.wait_handled(args.events, Duration::from_secs(600)).await;
    let total_seconds = started.elapsed().as_secs_f64();
    stop.cancel();
    consuming.await.expect("consumer").expect("no worker died");
    println!(
        "saturation {:?}: {} events; relayed {:.0} events/s ({relay_seconds:.2} s); handled end to end {:.0} events/s ({total_seconds:.2} s)",
        args.backend,
        args.events,
        args.events as f64 / relay_seconds,
        args.events as f64 / total_seconds,
    );
    rig.db.close().await;
}

async fn light_load(args: &Args) {
    let rig = rig(args.backend).await;
    let (stop, consuming) = rig.consumer().await;
    let stop_relay = CancellationToken::new();
    let relaying = tokio::spawn(rig.relay().run(stop_relay.clone()));
    // Warm up the consumer's assignment and the producer's connections first.
    rig.commit(0..10).await;
    rig.wait_handled(10, Duration::from_secs(60)).await;
    rig.latencies.lock().expect("latencies").clear();
    let total = args.rate * args.seconds;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    for seq in 10..10 + total {
        ticker.tick().await;
        rig.commit(seq..seq + 1).await;
    }
    let offered = total as f64 / started.elapsed().as_secs_f64();
    rig.wait_handled(10 + total, Duration::from_secs(120)).await;
    stop.cancel();
    stop_relay.cancel();
    consuming.await.expect("consumer").expect("no worker died");
    relaying.await.expect("relay");
    let mut latencies = rig.latencies.lock().expect("latencies").clone();
    latencies.sort_unstable();
    // Exact percentiles of every sample (nearest rank).
    let at = |q: f64| latencies[((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1];
    println!(
        "light load {:?}: {total} events at {offered:.0}/s, one per transaction; commit-to-handler p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.backend,
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(at(1.0)),
    );
    rig.db.close().await;
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        saturation(&args).await;
        light_load(&args).await;
    });
}
