use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use platform::consumer::{EventMeta, Handler, HandlerError, Subscriptions};
use platform::db::{Backend, Tx};
use platform::dead_letter::{Selection, read_all, replay};
use rdkafka::Message;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use shared_events::{OrderCreated, OrderItem};
use testkit::{kafka_config, unique_name};
use uuid::Uuid;

use crate::support::{consume, consume_in, database, effects, eventually, record_effect, topic};

/// Every header of a message, as text.
pub fn headers_of(message: &OwnedMessage) -> HashMap<String, String> {
    message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An `OrderCreated` of one line of `quantity`, as JSON.
pub fn order_json(quantity: u32) -> String {
    serde_json::to_string(&OrderCreated::placed(
        Uuid::new_v4(),
        Uuid::nil(),
        vec![OrderItem { sku: "SKU".into(), quantity }],
    ))
    .expect("json")
}

/// Fails for good on quantity 13; records every other quantity.
pub struct RefusesThirteen;

#[async_trait::async_trait]
impl Handler<OrderCreated> for RefusesThirteen {
    async fn handle(&self, event: OrderCreated, _meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        record_effect(tx, event.items[0].quantity).await?;
        if event.items[0].quantity == 13 {
            return Err(HandlerError::permanent("13 is refused"));
        }
        Ok(())
    }
}

/// Produces a message straight to Kafka, as another service's relay would.
async fn produce(topic: &str, key: &str, payload: &str, event_id: Uuid) {
    produce_as(topic, key, payload, event_id, "order.created.v1").await;
}

/// The same, of CloudEvents type `event_type`.
async fn produce_as(topic: &str, key: &str, payload: &str, event_id: Uuid, event_type: &str) {
    let producer: FutureProducer =
        platform::kafka::client_config(&kafka_config(), "platform-test").create().expect("producer");
    let id = event_id.to_string();
    let headers = OwnedHeaders::new()
        .insert(Header { key: "ce_id", value: Some(&id) })
        .insert(Header { key: "ce_type", value: Some(event_type) })
        .insert(Header { key: "ce_source", value: Some("platform-test") });
    producer
        .send(FutureRecord::to(topic).key(key).payload(payload).headers(headers), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .expect("produced");
}

/// Fails (transiently) until the attempt `succeeds_on`, then records `<quantity>@<attempt>`.
struct Flaky {
    succeeds_on: u32,
}

#[async_trait::async_trait]
impl Handler<OrderCreated> for Flaky {
    async fn handle(&self, event: OrderCreated, meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        if meta.attempt < self.succeeds_on {
            return Err(HandlerError::transient(format!(
                "downstream unavailable (attempt {})",
                meta.attempt
            )));
        }
        record_effect(tx, format!("{}@{}", event.items[0].quantity, meta.attempt)).await?;
        Ok(())
    }
}

/// Fails every attempt while `broken` is set; records the quantity once mended.
struct Breakable {
    broken: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl Handler<OrderCreated> for Breakable {
    async fn handle(&self, event: OrderCreated, _meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(HandlerError::transient("the mail server is down"));
        }
        record_effect(tx, event.items[0].quantity.to_string()).await?;
        Ok(())
    }
}

async fn dead_letters(topic: &str) -> Vec<OwnedMessage> {
    read_all(&kafka_config(), &shared_events::topics::dead_letter(topic)).await.expect("read the DLT")
}

/// Waits until `topic`'s DLT holds `count` messages, and returns them.
async fn dead_letters_when(topic: &str, count: usize) -> Vec<OwnedMessage> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let messages = dead_letters(topic).await;
        if messages.len() >= count {
            return messages;
        }
        assert!(tokio::time::Instant::now() < deadline, "{count} message(s) not in {topic}.dlt within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_poison_message_goes_to_the_dlt_with_every_header_and_later_ones_are_processed() {
    let (_database, db) = database().await;
    let topic = topic("it.consumer.poison").await;
    let (stop, running) =
        consume(&db, Subscriptions::new().on_topic::<OrderCreated>(&topic, Flaky { succeeds_on: 1 })).await;
    let poison_id = Uuid::new_v4();
    // Same key: same partition, so the later message waits behind the poison one.
    produce(&topic, "k", "this is not json", poison_id).await;
    produce(&topic, "k", &order_json(5), Uuid::new_v4()).await;

    eventually(Duration::from_secs(30), "the later message applied", || async {
        effects(&db).await == ["5@1"]
    })
    .await;
    let dlt = dead_letters_when(&topic, 1).await;
    stop.cancel();
    running.await.expect("consumer").expect("no worker died");

    assert_eq!(dlt.len(), 1);
    let message = &dlt[0];
    assert_eq!(message.key(), Some(&b"k"[..]), "key unchanged");
    assert_eq!(message.payload(), Some(&b"this is not json"[..]), "value unchanged");
    let headers = headers_of(message);
    assert_eq!(headers["dlt_original_topic"], topic);
    assert!(headers["dlt_original_partition"].parse::<i32>().is_ok());
    assert_eq!(headers["dlt_original_offset"], "0");
    assert!(headers["dlt_consumer_group"].starts_with("group-"));
    assert!(
        headers["dlt_error"].contains("payload is not a valid order.created.v1"),
        "{}",
        headers["dlt_error"]
    );
    assert_eq!(headers["dlt_attempts"], "1", "never retried: it can never succeed");
    assert!(headers["dlt_first_failure_at"].ends_with('Z'));
    assert!(headers["dlt_last_failure_at"].ends_with('Z'));
    assert_eq!(headers["ce_id"], poison_id.to_string(), "the original headers are kept");
}

#[tokio::test]
async fn a_message_without_an_event_id_or_of_an_unknown_type_is_dead_lettered_at_once() {
    let (_database, db) = database().await;
    let topic = topic("it.consumer.shape").await;
    let (stop, running) =
        consume(&db, Subscriptions::new().on_topic::<OrderCreated>(&topic, Flaky { succeeds_on: 1 })).await;
    let producer: FutureProducer =
        platform::kafka::client_config(&kafka_config(), "platform-test").create().expect("producer");
    let id = Uuid::new_v4().to_string();
    let typed = |event_type| {
        OwnedHeaders::new()
            .insert(Header { key: "ce_id", value: Some(&id) })
            .insert(Header { key: "ce_type", value: Some(event_type) })
    };
    for record in [
        FutureRecord::to(&topic).key("a").payload(&order_json(1)),
        FutureRecord::to(&topic).key("a").payload(&order_json(2)).headers(typed("order.created.v9")),
        FutureRecord::to(&topic).key("a").payload(&order_json(3)).headers(typed("payment.completed.v1")),
    ] {
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("produced");
    }
    let dlt = dead_letters_when(&topic, 3).await;
    stop.cancel();
    running.await.expect("consumer").expect("no worker died");
    let errors: Vec<String> = dlt.iter().map(|m| headers_of(m)["dlt_error"].clone()).collect();
    assert!(errors[0].contains("no ce_id header"), "{errors:?}");
    assert!(errors[1].contains("order.created.v9: version 9 is not one this consumer reads"), "{errors:?}");
    assert!(errors[2].contains("unknown event type payment.completed.v1"), "{errors:?}");
    assert!(effects(&db).await.is_empty());
}

#[tokio::test]
async fn a_flaky_handler_succeeds_on_its_third_attempt() {
    platform::metrics::install();
    let (_database, db) = database().await;
    let topic = topic("it.consumer.flaky").await;
    let group = unique_name("group");
    let subscriptions = Subscriptions::new().on_topic::<OrderCreated>(&topic, Flaky { succeeds_on: 3 });
    let (stop, running) = consume_in(&db, &kafka_config(), &group, subscriptions).await;
    produce(&topic, "k", &order_json(8), Uuid::new_v4()).await;
    eventually(Duration::from_secs(30), "applied on attempt 3", || async { effects(&db).await == ["8@3"] })
        .await;
    // The clients' requests, from librdkafka's statistics (every five seconds): the
    // consumer's fetches, and the two sends to the retry topics.
    let requests = |client: String, kind: &'static str| {
        let wanted = format!("kafka_client_requests_total{{client=\"{client}\",request=\"{kind}\"}} ");
        let metrics = platform::metrics::render("");
        metrics.lines().find_map(|l| l.strip_prefix(wanted.as_str())?.parse::<u64>().ok()).unwrap_or(0)
    };
    eventually(Duration::from_secs(15), "the consumer's requests counted", || async {
        requests(format!("{group}-consumer"), "Fetch") >= 1
            && requests(format!("{group}-forwarder"), "Produce") >= 2
    })
    .await;
    stop.cancel();
    running.await.expect("consumer").expect("no worker died");
    assert!(dead_letters(&topic).await.is_empty());

    // What /metrics shows about it.
    let metrics = platform::metrics::render("");
    let line = |name: &str, labels: &[&str]| {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && labels.iter().all(|label| l.contains(label)))
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{metrics}"))
            .to_owned()
    };
    let topic_label = format!("topic=\"{topic}\"");
    assert!(line("consumer_retries_total", &[&topic_label]).ends_with(" 2"));
    assert!(line("events_handled_total", &[&topic_label, "outcome=\"applied\""]).ends_with(" 1"));
    assert!(line("events_handled_total", &[&topic_label, "outcome=\"retry\""]).ends_with(" 2"));
    assert!(line("handler_duration_seconds_bucket", &[&topic_label, "outcome=\"applied\""]).contains("le="));
}

#[tokio::test]
async fn an_always_failing_handler_reaches_the_dlt_after_five_attempts_and_replay_brings_it_back() {
    let (_database, db) = database().await;
    let topic = topic("it.consumer.failing").await;
    let broken = Arc::new(AtomicBool::new(true));
    let handler = Breakable { broken: broken.clone() };
    let (stop, running) = consume(&db, Subscriptions::new().on_topic::<OrderCreated>(&topic, handler)).await;
    let event_id = Uuid::new_v4();
    produce(&topic, "k", &order_json(9), event_id).await;
    let dlt = dead_letters_when(&topic, 1).await;
    let headers = headers_of(&dlt[0]);
    assert_eq!(headers["dlt_attempts"], "5");
    assert_eq!(headers["dlt_error"], "transient failure: the mail server is down");
    assert_eq!(headers["dlt_original_offset"], "0");
    assert_eq!(headers["dlt_original_topic"], topic);
    assert!(headers["dlt_first_failure_at"] < headers["dlt_last_failure_at"], "{headers:?}");
    assert!(effects(&db).await.is_empty());

    // Mended, then replayed: the message is applied once.
    broken.store(false, Ordering::SeqCst);
    let dlt_topic = shared_events::topics::dead_letter(&topic);
    let one = Selection::One { partition: dlt[0].partition(), offset: dlt[0].offset() };
    assert_eq!(replay(&kafka_config(), &dlt_topic, one).await.expect("replay"), 1);
    eventually(Duration::from_secs(30), "the replayed message applied", || async {
        effects(&db).await == ["9"]
    })
    .await;
    // Replaying everything again is harmless: the event id was applied.
    assert_eq!(replay(&kafka_config(), &dlt_topic, Selection::All).await.expect("replay all"), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    running.await.expect("consumer").expect("no worker died");
    assert_eq!(effects(&db).await, ["9"]);
}

#[tokio::test]
async fn a_batch_with_a_failing_message_commits_the_others_once_and_dead_letters_only_that_one() {
    platform::metrics::install();
    let (_database, db) = database().await;
    let topic = topic("it.consumer.batch").await;
    // All on one key, so one partition, and all there before the consumer starts: the
    // worker finds them fetched together and applies them in batches.
    for quantity in 1..=60 {
        produce(&topic, "k", &order_json(quantity), Uuid::new_v4()).await;
    }
    let (stop, running) =
        consume(&db, Subscriptions::new().on_topic::<OrderCreated>(&topic, RefusesThirteen)).await;
    let expected: Vec<String> = (1..=60).filter(|q| *q != 13).map(|q| q.to_string()).collect();
    eventually(Duration::from_secs(30), "59 applied", || async { effects(&db).await.len() >= 59 }).await;
    let dlt = dead_letters_when(&topic, 1).await;
    stop.cancel();
    running.await.expect("consumer").expect("no worker died");

    assert_eq!(
        effects(&db).await,
        expected,
        "every other message once, in offset order; 13's write rolled back"
    );
    assert_eq!(dlt.len(), 1);
    assert_eq!(headers_of(&dlt[0])["dlt_error"], "permanent failure: 13 is refused");
    if db.backend() == Backend::Sqlite {
        assert!(metric(&topic, "consumer_batch_fallbacks_total") >= 1.0, "the batch holding 13 fell back");
    }
}

/// The value of `name` for `topic` on /metrics (0 when absent).
fn metric(topic: &str, name: &str) -> f64 {
    platform::metrics::render("")
        .lines()
        .find(|l| l.starts_with(name) && l.contains(&format!("topic=\"{topic}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn messages_fetched_together_are_applied_once_each_in_order_and_share_a_transaction_on_sqlite() {
    platform::metrics::install();
    let (_database, db) = database().await;
    let topic = topic("it.consumer.together").await;
    for quantity in 1..=50 {
        produce(&topic, "k", &order_json(quantity), Uuid::new_v4()).await;
    }
    let (stop, running) =
        consume(&db, Subscriptions::new().on_topic::<OrderCreated>(&topic, Flaky { succeeds_on: 1 })).await;
    let expected: Vec<String> = (1..=50).map(|q| format!("{q}@1")).collect();
    eventually(Duration::from_secs(30), "50 applied", || async { effects(&db).await.len() >= 50 }).await;
    stop.cancel();
    running.await.expect("consumer").expect("no worker died");
    assert_eq!(effects(&db).await, expected);
    match db.backend() {
        Backend::Sqlite => {
            assert!(metric(&topic, "consumer_batch_size_count") >= 1.0, "some messages shared a transaction");
        }
        // Each message in a transaction of its own: these subscriptions do not say
        // `batched_on_postgres` (see process_batch).
        Backend::Postgres => assert_eq!(metric(&topic, "consumer_batch_size_count"), 0.0),
    }
    assert_eq!(metric(&topic, "consumer_batch_fallbacks_total"), 0.0);
}

/// Records each order's currency and channel.
struct RecordsVersionFields;

#[async_trait::async_trait]
impl Handler<OrderCreated> for RecordsVersionFields {
    async fn handle(&self, event: OrderCreated, _meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        record_effect(tx, format!("{}/{}", event.currency, event.channel)).await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_v1_and_a_v2_event_are_both_applied_and_an_unknown_version_goes_to_the_dlt_naming_it() {
    let (_database, db) = database().await;
    let topic = topic("it.consumer.versions").await;
    let (stop, running) =
        consume(&db, Subscriptions::new().on_topic::<OrderCreated>(&topic, RecordsVersionFields)).await;
    // As order-service wrote it before v2: no currency, no channel.
    let v1 = format!(
        r#"{{"orderId":"{}","userId":"{}","items":[{{"sku":"SKU","quantity":1}}]}}"#,
        Uuid::new_v4(),
        Uuid::nil()
    );
    produce_as(&topic, "k", &v1, Uuid::new_v4(), "order.created.v1").await;
    let v2 = OrderCreated {
        currency: "CHF".into(),
        channel: "web".into(),
        ..OrderCreated::placed(
            Uuid::new_v4(),
            Uuid::nil(),
            vec![OrderItem { sku: "SKU".into(), quantity: 1 }],
        )
    };
    let v2 = serde_json::to_string(&v2).expect("json");
    produce_as(&topic, "k", &v2, Uuid::new_v4(), "order.created.v2").await;
    // From a producer newer than this consumer.
    produce_as(&topic, "k", &v2, Uuid::new_v4(), "order.created.v3").await;

    let dlt = dead_letters_when(&topic, 1).await;
    eventually(Duration::from_secs(30), "v1 and v2 applied", || async { effects(&db).await.len() >= 2 })
        .await;
    stop.cancel();
    running.await.expect("consumer").expect("no worker died");
    assert_eq!(effects(&db).await, ["EUR/unknown", "CHF/web"], "v1 read with v2's defaults, v2 as it is");
    let error = &headers_of(&dlt[0])["dlt_error"];
    assert!(
        error.contains("order.created.v3")
            && error.contains("version 3")
            && error.contains("order.created.v1 to v2"),
        "{error}"
    );
    assert_eq!(headers_of(&dlt[0])["dlt_attempts"], "1", "never retried: no attempt can read it");
}
