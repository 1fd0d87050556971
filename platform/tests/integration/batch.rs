//! `process_batch`, the step every partition worker repeats, driven directly: a batch in,
//! each message's outcome and the effects out.

use platform::consumer::{BatchOutcome, EventConsumer, Outcome, Subscriptions};
use platform::db::{Backend, Db};
use rdkafka::Timestamp;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use shared_events::{Event, OrderCreated};
use testkit::{kafka_config, unique_name};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::consumer::{RefusesThirteen, order_json};
use crate::support::{database, effects, quick_retries, topic};

/// An `OrderCreated` of `quantity` as consumed from `topic` at `offset`.
fn message(topic: &str, offset: i64, event_id: Uuid, quantity: u32) -> OwnedMessage {
    let id = event_id.to_string();
    let headers = OwnedHeaders::new()
        .insert(Header { key: "ce_id", value: Some(&id) })
        .insert(Header { key: "ce_type", value: Some(OrderCreated::TYPE) });
    OwnedMessage::new(
        Some(order_json(quantity).into_bytes()),
        Some(b"key".to_vec()),
        topic.to_owned(),
        Timestamp::NotAvailable,
        0,
        offset,
        Some(headers),
    )
}

async fn consumer(db: &Db, topic: &str) -> EventConsumer {
    EventConsumer::start(
        db.clone(),
        &kafka_config(),
        &unique_name("group"),
        quick_retries(),
        Subscriptions::new().on_topic::<OrderCreated>(topic, RefusesThirteen),
    )
    .await
    .expect("consumer starts")
}

/// On SQLite a batch is one transaction; on PostgreSQL its messages go one by one.
fn together(db: &Db) -> bool {
    db.backend() == Backend::Sqlite
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_is_applied_once_and_a_copy_inside_it_is_dropped() {
    let (_database, db) = database().await;
    let topic = topic("it.batch").await;
    let consumer = consumer(&db, &topic).await;
    let shutdown = CancellationToken::new();
    let (first, second, third) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let batch = vec![
        message(&topic, 0, first, 1),
        message(&topic, 1, second, 2),
        message(&topic, 2, first, 1), // the relay sent it twice
        message(&topic, 3, third, 3),
    ];

    let outcome = consumer.process_batch(&batch, &shutdown).await.expect("not shut down");
    use Outcome::{Applied, Duplicate};
    assert_eq!(
        outcome,
        BatchOutcome { together: together(&db), outcomes: vec![Applied, Applied, Duplicate, Applied] }
    );
    assert_eq!(effects(&db).await, ["1", "2", "3"]);

    // Redelivered whole (a crash before the offsets were stored): nothing happens twice.
    let again = consumer.process_batch(&batch, &shutdown).await.expect("not shut down");
    assert_eq!(again.outcomes, [Duplicate; 4]);
    assert_eq!(effects(&db).await, ["1", "2", "3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_message_rolls_its_batch_back_and_only_it_goes_to_the_dead_letter_topic() {
    let (_database, db) = database().await;
    let topic = topic("it.batch").await;
    let consumer = consumer(&db, &topic).await;
    let shutdown = CancellationToken::new();
    let batch = vec![
        message(&topic, 0, Uuid::new_v4(), 1),
        message(&topic, 1, Uuid::new_v4(), 13),
        message(&topic, 2, Uuid::new_v4(), 2),
    ];

    let outcome = consumer.process_batch(&batch, &shutdown).await.expect("not shut down");
    use Outcome::{Applied, DeadLettered};
    assert_eq!(outcome, BatchOutcome { together: false, outcomes: vec![Applied, DeadLettered, Applied] });
    // The batch's transaction (which had applied the first message and written the 13)
    // left nothing behind: each effect is there once, the failed one not at all.
    assert_eq!(effects(&db).await, ["1", "2"]);

    let dead = platform::dead_letter::read_all(&kafka_config(), &shared_events::topics::dead_letter(&topic))
        .await
        .expect("dead letters");
    assert_eq!(dead.len(), 1, "only the failing message is dead-lettered");
    assert_eq!(crate::consumer::headers_of(&dead[0])["dlt_error"], "permanent failure: 13 is refused");
}
