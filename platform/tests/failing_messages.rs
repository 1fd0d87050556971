//! Failing messages under load, with the process-wide tracing subscriber the services run
//! with: many messages walk their retries into the dead-letter topic while good ones are
//! applied and the relay publishes what they write; afterwards the relay still relays and
//! every partition is still consumed.
//!
//! Its own binary: it installs the process-wide subscriber, and a span left entered on a
//! worker thread corrupts that subscriber for every task on the thread. The bug this
//! catches killed the relay or a partition's worker with a panic inside tracing's registry,
//! and only on the retry and dead-letter paths.

#[path = "integration/support.rs"]
mod support;

use std::sync::OnceLock;
use std::time::Duration;

use futures::future::join_all;
use platform::config::TraceSampler;
use platform::consumer::{EventMeta, Handler, HandlerError, Subscriptions};
use platform::db::{Db, Tx};
use platform::dead_letter::read_all;
use platform::telemetry::{self, Telemetry};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use shared_events::{OrderCreated, OrderItem};
use testkit::kafka_config;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use support::{consume, database, effects, eventually, record_effect, relay, topic};

/// The quantity that marks a message whose handler always fails (like a `+fail` e-mail).
const FAILS: u32 = 13;

fn telemetry() -> &'static Telemetry {
    static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
    TELEMETRY.get_or_init(|| {
        telemetry::init("failing-messages-test", None, TraceSampler::default()).expect("telemetry")
    })
}

/// Applies good messages (an effect and an event through the outbox, as a service does)
/// and fails transiently on the marked ones, every attempt.
struct Notify {
    out: String,
}

#[async_trait::async_trait]
impl Handler<OrderCreated> for Notify {
    async fn handle(&self, event: OrderCreated, _meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        if event.items[0].quantity == FAILS {
            return Err(HandlerError::transient("the mail server refused the address"));
        }
        record_effect(tx, event.order_id.to_string()).await?;
        tx.publish_to(&self.out, &event).await?;
        Ok(())
    }
}

/// Produces `count` events with keys spread over every partition; every `fail_every`-th
/// fails in its handler (0: none does).
async fn produce(producer: &FutureProducer, topic: &str, wave: &str, count: usize, fail_every: usize) {
    let sends = (0..count).map(|i| {
        let quantity = if fail_every > 0 && i % fail_every == 0 { FAILS } else { 1 };
        let event = OrderCreated::placed(
            Uuid::new_v4(),
            Uuid::nil(),
            vec![OrderItem { sku: "SKU".into(), quantity }],
        );
        let payload = serde_json::to_string(&event).expect("json");
        let key = format!("{wave}-{}", i % 24);
        let id = Uuid::new_v4().to_string();
        async move {
            let headers = OwnedHeaders::new()
                .insert(Header { key: "ce_id", value: Some(&id) })
                .insert(Header { key: "ce_type", value: Some("order.created.v1") })
                .insert(Header {
                    key: "traceparent",
                    value: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                });
            producer
                .send(
                    FutureRecord::to(topic).key(&key).payload(&payload).headers(headers),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("produced");
        }
    });
    join_all(sends).await;
}

async fn backlog(db: &Db) -> i64 {
    platform::outbox::backlog(db).await.expect("backlog")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_failing_through_retries_and_the_dlt_leave_the_relay_and_every_partition_working() {
    telemetry();
    let (_database, db) = database().await;
    let input = topic("it.failing.in").await;
    let out = topic("it.failing.out").await;
    let stop_relay = CancellationToken::new();
    let relaying = tokio::spawn(relay(&db).run(stop_relay.clone()));
    let (stop, consuming) =
        consume(&db, Subscriptions::new().on_topic::<OrderCreated>(&input, Notify { out: out.clone() }))
            .await;
    let producer: FutureProducer =
        platform::kafka::client_config(&kafka_config(), "failing-test").create().expect("producer");

    // 600 messages, a third of them failing five times each: 800 retry hops and 200 dead
    // letters, while 400 are applied and relayed.
    produce(&producer, &input, "load", 600, 3).await;
    eventually(Duration::from_secs(90), "400 applied, 200 dead-lettered, nothing left to relay", || async {
        effects(&db).await.len() == 400
            && backlog(&db).await == 0
            && read_all(&kafka_config(), &shared_events::topics::dead_letter(&input))
                .await
                .is_ok_and(|dlt| dlt.len() == 200)
    })
    .await;

    // Then every partition is still consumed and the relay still relays.
    produce(&producer, &input, "after", 48, 0).await;
    eventually(Duration::from_secs(30), "the later 48 applied and relayed", || async {
        effects(&db).await.len() == 448 && backlog(&db).await == 0
    })
    .await;
    let relayed = read_all(&kafka_config(), &out).await.expect("read the relayed topic");
    assert_eq!(relayed.len(), 448, "every applied event published once");

    stop.cancel();
    consuming.await.expect("the consumer task").expect("no worker died");
    assert!(!relaying.is_finished(), "the relay runs until it is stopped");
    stop_relay.cancel();
    relaying.await.expect("the relay task");
}
