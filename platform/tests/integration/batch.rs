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

/// A consumer of a fresh group with `subscriptions`.
async fn start(db: &Db, subscriptions: Subscriptions) -> EventConsumer {
    EventConsumer::start(db.clone(), &kafka_config(), &unique_name("group"), quick_retries(), subscriptions)
        .await
        .expect("consumer starts")
}

async fn consumer(db: &Db, topic: &str) -> EventConsumer {
    start(db, Subscriptions::new().on_topic::<OrderCreated>(topic, RefusesThirteen)).await
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

/// Records every quantity, and counts its calls.
#[derive(Clone, Default)]
struct Counting(std::sync::Arc<std::sync::atomic::AtomicUsize>);

#[async_trait::async_trait]
impl platform::consumer::Handler<OrderCreated> for Counting {
    async fn handle(
        &self,
        event: OrderCreated,
        _meta: &platform::consumer::EventMeta,
        tx: &mut platform::db::Tx,
    ) -> Result<(), platform::consumer::HandlerError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        crate::support::record_effect(tx, event.items[0].quantity).await?;
        Ok(())
    }
}

async fn counting_consumer(db: &Db, topic: &str, acting_outside: bool) -> (EventConsumer, Counting) {
    let handler = Counting::default();
    let mut subscriptions = Subscriptions::new().on_topic::<OrderCreated>(topic, handler.clone());
    if acting_outside {
        subscriptions = subscriptions.acting_outside();
    }
    (start(db, subscriptions).await, handler)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lone_message_applied_before_is_dropped() {
    let (_database, db) = database().await;
    let topic = topic("it.batch").await;
    let (consumer, handler) = counting_consumer(&db, &topic, false).await;
    let shutdown = CancellationToken::new();
    let batch = vec![message(&topic, 0, Uuid::new_v4(), 7)];

    let first = consumer.process_batch(&batch, &shutdown).await.expect("not shut down");
    // On SQLite without a look-up first: recorded in the script of its effects.
    assert_eq!(first, BatchOutcome { together: together(&db), outcomes: vec![Outcome::Applied] });
    let again = consumer.process_batch(&batch, &shutdown).await.expect("not shut down");
    // The copy fails that transaction on its key and is then found, the checked way.
    assert_eq!(again, BatchOutcome { together: false, outcomes: vec![Outcome::Duplicate] });
    assert_eq!(effects(&db).await, ["7"]);
    // The copy's handler ran once in vain on SQLite (rolled back), not at all on PostgreSQL.
    let calls = if together(&db) { 2 } else { 1 };
    assert_eq!(handler.0.load(std::sync::atomic::Ordering::SeqCst), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handlers_acting_outside_the_database_never_run_for_a_copy() {
    let (_database, db) = database().await;
    let topic = topic("it.batch").await;
    let (consumer, handler) = counting_consumer(&db, &topic, true).await;
    let shutdown = CancellationToken::new();
    let first = message(&topic, 0, Uuid::new_v4(), 7);
    let second = message(&topic, 1, Uuid::new_v4(), 8);

    let alone = consumer.process_batch(std::slice::from_ref(&first), &shutdown).await.expect("not shut down");
    assert_eq!(alone, BatchOutcome { together: false, outcomes: vec![Outcome::Applied] });
    // Redelivered alone and inside a batch: looked up before the handler runs.
    let again = consumer.process_batch(std::slice::from_ref(&first), &shutdown).await.expect("not shut down");
    assert_eq!(again.outcomes, [Outcome::Duplicate]);
    let batch = consumer.process_batch(&[first, second], &shutdown).await.expect("not shut down");
    assert_eq!(
        batch,
        BatchOutcome { together: together(&db), outcomes: vec![Outcome::Duplicate, Outcome::Applied] }
    );
    assert_eq!(effects(&db).await, ["7", "8"]);
    assert_eq!(handler.0.load(std::sync::atomic::Ordering::SeqCst), 2, "once per event, never for a copy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handlers_that_lock_in_one_order_are_batched_on_postgres_too() {
    let (_database, db) = database().await;
    let topic = topic("it.batch").await;
    let subscriptions =
        Subscriptions::new().batched_on_postgres().on_topic::<OrderCreated>(&topic, RefusesThirteen);
    let consumer = start(&db, subscriptions).await;
    let shutdown = CancellationToken::new();
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let batch =
        vec![message(&topic, 0, first, 1), message(&topic, 1, second, 2), message(&topic, 2, first, 1)];

    let outcome = consumer.process_batch(&batch, &shutdown).await.expect("not shut down");
    use Outcome::{Applied, Duplicate};
    assert_eq!(outcome, BatchOutcome { together: true, outcomes: vec![Applied, Applied, Duplicate] });
    let again = consumer.process_batch(&batch, &shutdown).await.expect("not shut down");
    assert_eq!(again.outcomes, [Duplicate; 3]);
    assert_eq!(effects(&db).await, ["1", "2"]);
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

/// Acts outside the database for each event (counts its calls per quantity), records it
/// (queued, on SQLite) and publishes it again; refuses 13 after having written and
/// published it.
#[derive(Clone)]
struct MailsAndRefusesThirteen {
    calls: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u32, usize>>>,
    topic: String,
}

#[async_trait::async_trait]
impl platform::consumer::Handler<OrderCreated> for MailsAndRefusesThirteen {
    async fn handle(
        &self,
        event: OrderCreated,
        _meta: &platform::consumer::EventMeta,
        tx: &mut platform::db::Tx,
    ) -> Result<(), platform::consumer::HandlerError> {
        let quantity = event.items[0].quantity;
        *self.calls.lock().expect("calls").entry(quantity).or_default() += 1;
        tx.write("INSERT INTO second_schema (id, payload) VALUES ($1, $2)")
            .bind(crate::support::next_effect_id())
            .bind(quantity.to_string())
            .await?;
        tx.publish_to(&self.topic, &event).await?;
        if quantity == 13 {
            return Err(platform::consumer::HandlerError::permanent("13 is refused"));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handlers_acting_outside_never_act_twice_for_a_neighbours_failure() {
    let (_database, db) = database().await;
    let topic = topic("it.batch").await;
    let handler = MailsAndRefusesThirteen { calls: Default::default(), topic: format!("{topic}.out") };
    // Batched on PostgreSQL too, so both engines' savepoints are tried.
    let subscriptions = Subscriptions::new()
        .acting_outside()
        .batched_on_postgres()
        .on_topic::<OrderCreated>(&topic, handler.clone());
    let consumer = start(&db, subscriptions).await;
    let shutdown = CancellationToken::new();
    let batch = vec![
        message(&topic, 0, Uuid::new_v4(), 1),
        message(&topic, 1, Uuid::new_v4(), 2),
        message(&topic, 2, Uuid::new_v4(), 13),
        message(&topic, 3, Uuid::new_v4(), 3),
    ];

    let outcome = consumer.process_batch(&batch, &shutdown).await.expect("not shut down");
    use Outcome::{Applied, DeadLettered};
    assert_eq!(
        outcome,
        BatchOutcome { together: false, outcomes: vec![Applied, Applied, DeadLettered, Applied] }
    );
    let calls = handler.calls.lock().expect("calls").clone();
    assert_eq!((calls[&1], calls[&2], calls[&3]), (1, 1, 1), "each acted once: {calls:?}");
    // The 13 ran in the batch, then alone on its way to the dead letters.
    assert_eq!(calls[&13], 2);
    // What the 13 wrote and published before failing is gone; its neighbours' is there once.
    assert_eq!(effects(&db).await, ["1", "2", "3"]);
    let published: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox").fetch_one(db.pool()).await.expect("outbox");
    assert_eq!(published, 3);

    // Redelivered whole: the three are dropped, and the 13 fails again but is not
    // dead-lettered a second time.
    let again = consumer.process_batch(&batch, &shutdown).await.expect("not shut down");
    use Outcome::Duplicate;
    assert_eq!(again.outcomes, [Duplicate, Duplicate, DeadLettered, Duplicate]);
    assert_eq!(effects(&db).await, ["1", "2", "3"]);
    let dead = platform::dead_letter::read_all(&kafka_config(), &shared_events::topics::dead_letter(&topic))
        .await
        .expect("dead letters");
    assert_eq!(dead.len(), 1);
}

/// Locks the row `lock-<quantity>`, waits so that a batch running beside it takes its
/// first row meanwhile, then records the quantity. Names the row it locks.
struct LocksItsRow;

#[async_trait::async_trait]
impl platform::consumer::Handler<OrderCreated> for LocksItsRow {
    async fn handle(
        &self,
        event: OrderCreated,
        _meta: &platform::consumer::EventMeta,
        tx: &mut platform::db::Tx,
    ) -> Result<(), platform::consumer::HandlerError> {
        let quantity = event.items[0].quantity;
        tx.write("UPDATE second_schema SET payload = payload WHERE id = $1")
            .bind(format!("lock-{quantity}"))
            .await?;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        crate::support::record_effect(tx, quantity).await?;
        Ok(())
    }

    fn locks(&self, event: &OrderCreated) -> Vec<String> {
        vec![format!("row:{}", event.items[0].quantity)]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_that_name_their_locks_never_deadlock_however_their_events_are_ordered() {
    let (_database, db) = database().await;
    for row in ["lock-1", "lock-2"] {
        sqlx::query("INSERT INTO second_schema (id, payload) VALUES ($1, 'row')")
            .bind(row)
            .execute(db.pool())
            .await
            .expect("row");
    }
    let topic = topic("it.batch").await;
    let subscriptions =
        Subscriptions::new().batched_on_postgres().on_topic::<OrderCreated>(&topic, LocksItsRow);
    let consumer = start(&db, subscriptions).await;
    let shutdown = CancellationToken::new();
    // The same two rows in opposite orders: locking as they go, each batch would hold its
    // first row and wait for the other's (PostgreSQL then aborts one after a second).
    let one = vec![message(&topic, 0, Uuid::new_v4(), 1), message(&topic, 1, Uuid::new_v4(), 2)];
    let other = vec![message(&topic, 0, Uuid::new_v4(), 2), message(&topic, 1, Uuid::new_v4(), 1)];

    let (first, second) =
        tokio::join!(consumer.process_batch(&one, &shutdown), consumer.process_batch(&other, &shutdown));
    let whole = BatchOutcome { together: true, outcomes: vec![Outcome::Applied; 2] };
    assert_eq!(first.expect("not shut down"), whole, "neither batch fell back");
    assert_eq!(second.expect("not shut down"), whole, "neither batch fell back");
    let mut applied: Vec<String> = effects(&db).await.into_iter().filter(|e| e != "row").collect();
    applied.sort();
    assert_eq!(applied, ["1", "1", "2", "2"]);
}
