//! Static group membership (`KAFKA_GROUP_INSTANCE_ID`): the name is the member, so a
//! second process that joins under a name already in use takes the member over and the
//! first one stops with the reason, instead of two instances consuming as one.

use std::time::Duration;

use platform::config::KafkaConfig;
use platform::consumer::{ConsumerDied, EventMeta, Handler, HandlerError, Subscriptions};
use platform::db::Tx;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use shared_events::{OrderCreated, OrderItem};
use testkit::{kafka_config, unique_name};
use uuid::Uuid;

use crate::support::{consume_in, database, effects, eventually, record_effect, topic};

struct Record;

#[async_trait::async_trait]
impl Handler<OrderCreated> for Record {
    async fn handle(&self, event: OrderCreated, _meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        record_effect(tx, event.order_id).await?;
        Ok(())
    }
}

async fn send(producer: &FutureProducer, topic: &str) -> String {
    let order =
        OrderCreated::placed(Uuid::new_v4(), Uuid::nil(), vec![OrderItem { sku: "S".into(), quantity: 1 }]);
    let id = Uuid::new_v4().to_string();
    let headers = OwnedHeaders::new()
        .insert(Header { key: "ce_id", value: Some(&id) })
        .insert(Header { key: "ce_type", value: Some("order.created.v2") });
    let payload = serde_json::to_string(&order).expect("json");
    producer
        .send(FutureRecord::to(topic).key(&id).payload(&payload).headers(headers), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .expect("produced");
    order.order_id.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_under_the_same_instance_name_fences_the_first_which_stops_with_why() {
    let (_database, db) = database().await;
    let topic = topic("it.static").await;
    let group = unique_name("static-group");
    let kafka = KafkaConfig { group_instance_id: Some(unique_name("instance")), ..kafka_config() };
    let producer: FutureProducer =
        platform::kafka::client_config(&kafka, "static-membership-test").create().expect("producer");

    let (_stop_first, first) =
        consume_in(&db, &kafka, &group, Subscriptions::new().on_topic::<OrderCreated>(&topic, Record)).await;
    let before = send(&producer, &topic).await;
    eventually(Duration::from_secs(60), "the first member consumes", || async {
        effects(&db).await == [before.clone()]
    })
    .await;

    let (stop_second, second) =
        consume_in(&db, &kafka, &group, Subscriptions::new().on_topic::<OrderCreated>(&topic, Record)).await;
    let ended = tokio::time::timeout(Duration::from_secs(60), first)
        .await
        .expect("the fenced member stops by itself")
        .expect("no panic");
    match ended {
        Err(ConsumerDied::Fatal(reason)) => assert!(reason.contains("FencedInstanceId"), "{reason}"),
        other => panic!("expected the first member to be fenced, got {other:?}"),
    }

    // The member is the second process's now: it consumes what comes next, once.
    let after = send(&producer, &topic).await;
    eventually(Duration::from_secs(60), "the second member consumes", || async {
        effects(&db).await == [before.clone(), after.clone()]
    })
    .await;
    stop_second.cancel();
    second.await.expect("no panic").expect("a clean stop");
}
