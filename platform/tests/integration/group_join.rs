//! A consumer joins its group when it runs, not when it is made: a member that never
//! polls would hold partitions nobody consumes, and librdkafka can hang closing it
//! (issue #4884: `rd_kafka_assign` in the rebalance served by the close).

use std::time::Duration;

use platform::consumer::{EventConsumer, Subscriptions};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use shared_events::{Event, OrderCreated};
use testkit::{kafka_config, unique_name};
use uuid::Uuid;

use crate::consumer::{RefusesThirteen, order_json};
use crate::support::{consume_in, database, effects, eventually, quick_retries, topic};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_made_but_never_run_holds_no_partition_and_closes_at_once() {
    let (_database, db) = database().await;
    let topic = topic("it.join").await;
    let group = unique_name("group");
    let subscriptions = || Subscriptions::new().on_topic::<OrderCreated>(&topic, RefusesThirteen);
    let idle = EventConsumer::start(db.clone(), &kafka_config(), &group, quick_retries(), subscriptions())
        .await
        .expect("consumer starts");
    let (stop, running) = consume_in(&db, &kafka_config(), &group, subscriptions()).await;

    // The running member gets every partition: the idle one took none of them.
    let producer: FutureProducer =
        platform::kafka::client_config(&kafka_config(), "group-join-test").create().expect("producer");
    let partitions = kafka_config().topic_partitions;
    for partition in 0..partitions {
        let id = Uuid::new_v4().to_string();
        let headers = OwnedHeaders::new()
            .insert(Header { key: "ce_id", value: Some(&id) })
            .insert(Header { key: "ce_type", value: Some(OrderCreated::TYPE) });
        let payload = order_json(partition.unsigned_abs() + 1);
        let record =
            FutureRecord::to(&topic).partition(partition).key(&id).payload(&payload).headers(headers);
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("produced");
    }
    let expected: Vec<u32> = (1..=partitions.unsigned_abs()).collect();
    eventually(Duration::from_secs(30), "every partition consumed by the running member", || async {
        let mut seen: Vec<u32> = effects(&db).await.iter().filter_map(|e| e.parse().ok()).collect();
        seen.sort_unstable();
        seen == expected
    })
    .await;

    // Dropping it has nothing to leave; a hang fails here instead of stalling the suite.
    let closed = tokio::task::spawn_blocking(move || drop(idle));
    tokio::time::timeout(Duration::from_secs(30), closed)
        .await
        .expect("a consumer never run closes without a hang")
        .expect("dropped");
    stop.cancel();
    running.await.expect("joined").expect("stopped cleanly");
}
