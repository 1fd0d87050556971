use std::time::Duration;

use platform::cleanup::Retention;
use platform::consumer::{EventMeta, Handler, HandlerError, Subscriptions};
use platform::db::Tx;
use rdkafka::Message;
use shared_events::{OrderCreated, OrderItem};
use testkit::kafka_config;
use uuid::Uuid;

use crate::support::{consume, database, effects, eventually, relay, topic};

fn order(order_id: Uuid, quantity: u32) -> OrderCreated {
    OrderCreated::placed(order_id, Uuid::nil(), vec![OrderItem { sku: "SKU".into(), quantity }])
}

/// Records each applied event's quantity as an effect, keyed by a fresh id in apply order.
struct RecordQuantity;

#[async_trait::async_trait]
impl Handler<OrderCreated> for RecordQuantity {
    async fn handle(&self, event: OrderCreated, _meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        crate::support::record_effect(tx, event.items[0].quantity.to_string()).await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_rolled_back_transaction_publishes_nothing() {
    let (_database, db) = database().await;
    let topic = topic("it.outbox.rollback").await;
    let mut tx = db.begin_write().await.expect("begin");
    tx.publish_to(&topic, &order(Uuid::new_v4(), 1)).await.expect("enqueue");
    tx.rollback().await.expect("rollback");

    let relay = relay(&db);
    assert_eq!(relay.backlog().await.expect("backlog"), 0);
    assert_eq!(relay.publish_pending().await.expect("relay step"), 0);
    let messages = platform::dead_letter::read_all(&kafka_config(), &topic).await.expect("read");
    assert!(messages.is_empty(), "{} message(s) published", messages.len());
}

#[tokio::test]
async fn an_event_committed_before_a_crash_is_published_after_restart() {
    let (_database, db) = database().await;
    let topic = topic("it.outbox.crash").await;
    let order_id = Uuid::new_v4();
    let mut tx = db.begin_write().await.expect("begin");
    let event_id = tx.publish_to(&topic, &order(order_id, 3)).await.expect("enqueue");
    tx.commit().await.expect("commit");
    // The process "dies" here: no relay ran. A new one, as after a restart, finds the row.
    let restarted = relay(&db);
    assert_eq!(restarted.backlog().await.expect("backlog"), 1);
    assert_eq!(restarted.publish_pending().await.expect("relay step"), 1);
    assert_eq!(restarted.backlog().await.expect("backlog"), 0);

    let messages = platform::dead_letter::read_all(&kafka_config(), &topic).await.expect("read");
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.key(), Some(order_id.to_string().as_bytes()));
    let headers = crate::consumer::headers_of(message);
    assert_eq!(headers["ce_id"], event_id.to_string());
    assert_eq!(headers["ce_type"], "order.created.v2");
    assert_eq!(headers["ce_source"], "platform-test");
    assert_eq!(headers["ce_specversion"], "1.0");
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers["ce_time"].ends_with('Z'), "{}", headers["ce_time"]);
    let payload: serde_json::Value =
        serde_json::from_slice(message.payload().expect("payload")).expect("json");
    assert_eq!(payload["orderId"], order_id.to_string());
}

#[tokio::test]
async fn a_redelivered_event_has_one_effect() {
    let (_database, db) = database().await;
    let topic = topic("it.outbox.duplicate").await;
    let mut tx = db.begin_write().await.expect("begin");
    tx.publish_to(&topic, &order(Uuid::new_v4(), 7)).await.expect("enqueue");
    tx.commit().await.expect("commit");
    let relay = relay(&db);
    assert_eq!(relay.publish_pending().await.expect("publish"), 1);
    // A crash between Kafka's ack and the mark: the row is pending again and goes twice.
    sqlx::query("UPDATE outbox SET published_at_ms = NULL").execute(db.pool()).await.expect("unmark");
    assert_eq!(relay.publish_pending().await.expect("publish again"), 1);
    assert_eq!(platform::dead_letter::read_all(&kafka_config(), &topic).await.expect("read").len(), 2);

    let (stop, running) =
        consume(&db, Subscriptions::new().on_topic::<OrderCreated>(&topic, RecordQuantity)).await;
    eventually(Duration::from_secs(30), "the event applied", || async { !effects(&db).await.is_empty() })
        .await;
    // Give the duplicate every chance to be applied too.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    running.await.expect("consumer task").expect("no worker died");
    assert_eq!(effects(&db).await, ["7"]);
}

#[tokio::test]
async fn a_thousand_events_of_one_key_arrive_in_order() {
    let (_database, db) = database().await;
    let topic = topic("it.outbox.order").await;
    let order_id = Uuid::new_v4();
    // In transactions of a few events each, as a service writes them.
    for chunk in (1..=1000u32).collect::<Vec<_>>().chunks(7) {
        let mut tx = db.begin_write().await.expect("begin");
        for quantity in chunk {
            tx.publish_to(&topic, &order(order_id, *quantity)).await.expect("enqueue");
        }
        tx.commit().await.expect("commit");
    }
    let stop_relay = tokio_util::sync::CancellationToken::new();
    let relaying = tokio::spawn(relay(&db).run(stop_relay.clone()));
    let (stop, running) =
        consume(&db, Subscriptions::new().on_topic::<OrderCreated>(&topic, RecordQuantity)).await;
    eventually(Duration::from_secs(60), "1000 events applied", || async { effects(&db).await.len() >= 1000 })
        .await;
    stop.cancel();
    stop_relay.cancel();
    running.await.expect("consumer task").expect("no worker died");
    relaying.await.expect("relay task");

    let seen: Vec<u32> = effects(&db).await.iter().map(|q| q.parse().expect("number")).collect();
    assert_eq!(seen, (1..=1000).collect::<Vec<u32>>());
}

/// The quantities of the orders on `topic`, in the order of its partition (tests here
/// publish one key).
async fn quantities_on(topic: &str) -> Vec<u64> {
    let messages = platform::dead_letter::read_all(&kafka_config(), topic).await.expect("read");
    messages
        .iter()
        .map(|message| {
            let payload: serde_json::Value =
                serde_json::from_slice(message.payload().expect("payload")).expect("json");
            payload["items"][0]["quantity"].as_u64().expect("a quantity")
        })
        .collect()
}

/// Commits one order of `quantity` through `db`, onto `topic`; returns its event id.
async fn commit_order(db: &platform::db::Db, topic: &str, order_id: Uuid, quantity: u32) -> Uuid {
    let mut tx = db.begin_write().await.expect("begin");
    let event_id = tx.publish_to(topic, &order(order_id, quantity)).await.expect("enqueue");
    tx.commit().await.expect("commit");
    event_id
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_and_another_connections_rows_go_out_once_each_in_order_among_this_ones() {
    let (database, db) = database().await;
    // A second handle on the same database: the relay of `db` is handed none of its rows,
    // as with rows left by the process before a restart, or an operator's own INSERT.
    let other = platform::db::Db::connect(&database.url, &[&crate::support::EFFECTS]).await.expect("other");
    let topic = topic("it.outbox.feed").await;
    let order_id = Uuid::new_v4();
    for quantity in 1..=5 {
        commit_order(&other, &topic, order_id, quantity).await;
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let relaying = tokio::spawn(relay(&db).run(stop.clone()));
    // One commit at a time, so quantities follow ids; every seventh through the other
    // handle, and now and then a pause that lets the relay go idle.
    for quantity in 6..=400 {
        let through = if quantity % 7 == 0 { &other } else { &db };
        commit_order(through, &topic, order_id, quantity).await;
        if quantity % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eventually(Duration::from_secs(30), "every row published", || async {
        platform::outbox::backlog(&db).await.expect("backlog") == 0
    })
    .await;
    stop.cancel();
    relaying.await.expect("relay task");
    // Nothing failed, so nothing went twice.
    assert_eq!(quantities_on(&topic).await, (1..=400).collect::<Vec<u64>>());
    other.close().await;
}

#[tokio::test]
async fn sent_rows_are_marked_by_the_next_commit_or_when_the_relay_stops() {
    let (_database, db) = database().await;
    let topic = topic("it.outbox.marks").await;
    let order_id = Uuid::new_v4();
    // Neither the poll nor the mark delay comes within the test: only commits and the stop.
    let config = platform::outbox::RelayConfig {
        poll_interval: Duration::from_secs(3600),
        mark_delay: Duration::from_secs(3600),
        ..Default::default()
    };
    let relay =
        platform::outbox::Relay::new(db.clone(), &kafka_config(), "platform-test", config).expect("relay");
    let stop = tokio_util::sync::CancellationToken::new();
    let relaying = tokio::spawn(relay.clone().run(stop.clone()));
    let sent = |count: usize| {
        let topic = topic.clone();
        async move {
            eventually(Duration::from_secs(10), "sent", || async {
                platform::dead_letter::read_all(&kafka_config(), &topic).await.expect("read").len() >= count
            })
            .await;
        }
    };
    // The relay's first batch is read from the table, and marked with the sending; the
    // next is handed over.
    commit_order(&db, &topic, order_id, 1).await;
    sent(1).await;
    commit_order(&db, &topic, order_id, 2).await;
    sent(2).await;
    if db.backend() == platform::db::Backend::Sqlite {
        // Sent, and its mark left to the next commit of the service.
        assert_eq!(relay.backlog().await.expect("backlog"), 1);
    }
    // Commits of the service that publish nothing: the relay leaves its mark to one of
    // them (the first, unless it comes between the ack and the relay's hand-over).
    eventually(Duration::from_secs(10), "a commit marked the row", || async {
        let mut tx = db.begin_write().await.expect("begin");
        crate::support::record_effect(&mut tx, "no event").await.expect("effect");
        tx.commit().await.expect("commit");
        relay.backlog().await.expect("backlog") == 0
    })
    .await;

    commit_order(&db, &topic, order_id, 3).await;
    sent(3).await;
    stop.cancel();
    relaying.await.expect("relay task");
    // Marked as the relay stopped (on PostgreSQL with the sending).
    assert_eq!(relay.backlog().await.expect("backlog"), 0);
    assert_eq!(quantities_on(&topic).await, [1, 2, 3]);
}

#[tokio::test]
async fn rows_left_pending_by_a_failed_send_go_out_again_before_later_ones() {
    let (_database, db) = database().await;
    let topic = topic("it.outbox.failed").await;
    let order_id = Uuid::new_v4();
    let relay = relay(&db);
    for quantity in 1..=2 {
        commit_order(&db, &topic, order_id, quantity).await;
        assert_eq!(relay.publish_pending().await.expect("relay step"), 1);
    }
    // Order 3 is larger than the producer takes (message.max.bytes): its send fails at
    // once. Order 4, committed after it, goes out beside it in the same batch, but is not
    // marked, as it follows a row that failed.
    let mut tx = db.begin_write().await.expect("begin");
    let oversized = OrderCreated::placed(
        order_id,
        Uuid::nil(),
        vec![OrderItem { sku: "S".repeat(1_100_000), quantity: 3 }],
    );
    let failing = tx.publish_to(&topic, &oversized).await.expect("enqueue");
    tx.commit().await.expect("commit");
    commit_order(&db, &topic, order_id, 4).await;
    let failed = relay.publish_pending().await;
    assert!(matches!(failed, Err(platform::outbox::RelayError::Kafka(_))), "{failed:?}");
    assert_eq!(relay.backlog().await.expect("backlog"), 2, "3 and 4 wait");

    // The cause goes away, and a new commit comes: the relay sends the rows left pending
    // first, then the new one, then goes on with what it is handed.
    let payload = serde_json::to_string(&order(order_id, 3)).expect("json");
    sqlx::query("UPDATE outbox SET payload = $1 WHERE event_id = $2")
        .bind(payload)
        .bind(failing.to_string())
        .execute(db.pool())
        .await
        .expect("smaller");
    commit_order(&db, &topic, order_id, 5).await;
    assert_eq!(relay.publish_pending().await.expect("relay step"), 3);
    commit_order(&db, &topic, order_id, 6).await;
    assert_eq!(relay.publish_pending().await.expect("relay step"), 1);
    assert_eq!(relay.backlog().await.expect("backlog"), 0);
    // 4's first copy went out beside the failed 3; consumers drop its second by its id.
    assert_eq!(quantities_on(&topic).await, [1, 2, 4, 3, 4, 5, 6]);
}

#[tokio::test]
async fn a_commit_wakes_the_relay_without_waiting_for_the_poll() {
    let (_database, db) = database().await;
    let topic = topic("it.outbox.wake").await;
    let config =
        platform::outbox::RelayConfig { poll_interval: Duration::from_secs(3600), ..Default::default() };
    let relay =
        platform::outbox::Relay::new(db.clone(), &kafka_config(), "platform-test", config).expect("relay");
    let stop = tokio_util::sync::CancellationToken::new();
    let relaying = tokio::spawn(relay.clone().run(stop.clone()));
    // Let it go idle first, waiting on its hour-long poll.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tx = db.begin_write().await.expect("begin");
    tx.publish_to(&topic, &order(Uuid::new_v4(), 1)).await.expect("enqueue");
    tx.commit().await.expect("commit");
    eventually(Duration::from_secs(10), "the relay published the event", || async {
        relay.backlog().await.expect("backlog") == 0
    })
    .await;
    stop.cancel();
    relaying.await.expect("relay task");
}

#[tokio::test]
async fn two_instances_on_one_postgres_database_keep_order_and_send_each_event_once() {
    // Always PostgreSQL: SQLite has one process per database file.
    let database = testkit::TestDatabase::create_on(testkit::TestBackend::Postgres).await;
    let instance_a = platform::db::Db::connect(&database.url, &[&crate::support::EFFECTS]).await.expect("a");
    let instance_b = platform::db::Db::connect(&database.url, &[&crate::support::EFFECTS]).await.expect("b");
    let topic = topic("it.outbox.instances").await;
    let stop = tokio_util::sync::CancellationToken::new();
    let relays = [
        tokio::spawn(relay(&instance_a).run(stop.clone())),
        tokio::spawn(relay(&instance_b).run(stop.clone())),
    ];
    // One aggregate written through both instances in turn, while both relays run.
    let order_id = Uuid::new_v4();
    for quantity in 1..=600u32 {
        let db = if quantity % 2 == 0 { &instance_a } else { &instance_b };
        let mut tx = db.begin_write().await.expect("begin");
        tx.publish_to(&topic, &order(order_id, quantity)).await.expect("enqueue");
        tx.commit().await.expect("commit");
    }
    let (stop_consumer, running) =
        consume(&instance_a, Subscriptions::new().on_topic::<OrderCreated>(&topic, RecordQuantity)).await;
    eventually(Duration::from_secs(60), "600 events applied", || async {
        effects(&instance_a).await.len() >= 600
    })
    .await;
    stop_consumer.cancel();
    running.await.expect("consumer task").expect("no worker died");
    stop.cancel();
    for relaying in relays {
        relaying.await.expect("relay task");
    }
    let seen: Vec<u32> = effects(&instance_a).await.iter().map(|q| q.parse().expect("number")).collect();
    assert_eq!(seen, (1..=600).collect::<Vec<u32>>());
    // The relays took turns: no row was sent by both.
    let published = platform::dead_letter::read_all(&kafka_config(), &topic).await.expect("read");
    assert_eq!(published.len(), 600);
    instance_a.close().await;
    instance_b.close().await;
}

#[tokio::test]
async fn published_rows_and_old_event_ids_are_removed_after_their_retention() {
    let (_database, db) = database().await;
    let topic = topic("it.outbox.retention").await;
    let mut tx = db.begin_write().await.expect("begin");
    tx.publish_to(&topic, &order(Uuid::new_v4(), 1)).await.expect("enqueue");
    tx.publish_to(&topic, &order(Uuid::new_v4(), 2)).await.expect("enqueue");
    sqlx::query(
        "INSERT INTO processed_events (consumer_group, event_id, processed_at_ms) VALUES ('g', 'old', 0)",
    )
    .execute(tx.conn().await.expect("connection"))
    .await
    .expect("old id");
    sqlx::query(
        "INSERT INTO processed_events (consumer_group, event_id, processed_at_ms) VALUES ('g', 'new', $1)",
    )
    .bind(platform::clock::now_ms())
    .execute(tx.conn().await.expect("connection"))
    .await
    .expect("new id");
    tx.commit().await.expect("commit");
    let config = platform::outbox::RelayConfig { batch_size: 1, ..Default::default() };
    let relay =
        platform::outbox::Relay::new(db.clone(), &kafka_config(), "platform-test", config).expect("relay");
    assert_eq!(relay.publish_pending().await.expect("one of two"), 1);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let retention = Retention { published: Duration::ZERO, processed: Duration::from_secs(3600) };
    platform::cleanup::delete_expired(&db, retention).await.expect("clean up");

    let left: Vec<(Option<i64>,)> =
        sqlx::query_as("SELECT published_at_ms FROM outbox").fetch_all(db.pool()).await.expect("outbox");
    assert_eq!(left, [(None,)], "the published row is gone, the pending one stays");
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT event_id FROM processed_events").fetch_all(db.pool()).await.expect("ids");
    assert_eq!(ids, ["new"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_backlog_is_cleaned_in_batches_beside_a_working_relay_and_keeps_what_is_still_needed() {
    let (_database, db) = database().await;
    let topic = topic("it.outbox.cleanup").await;
    // 6,000 rows published two hours ago and 6,000 event ids nine days old, written
    // straight into the tables; 200 events still waiting, and 50 ids from today.
    let now = platform::clock::now_ms();
    let (published_at, processed_at) = (now - 2 * 3_600_000, now - 9 * 24 * 3_600_000);
    let mut tx = db.begin_write().await.expect("begin");
    for chunk in 0..12 {
        let sql = format!(
            "INSERT INTO outbox (event_id, topic, message_key, event_type, payload, created_at_ms, \
             published_at_ms) VALUES {}",
            platform::db::values(500, 7, 1)
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for n in 0..500 {
            insert = insert
                .bind(format!("old-{chunk}-{n}"))
                .bind(topic.as_str())
                .bind("k")
                .bind("order.created.v1")
                .bind("{}")
                .bind(published_at)
                .bind(published_at);
        }
        insert.execute(tx.conn().await.expect("connection")).await.expect("published rows");
        let sql = format!(
            "INSERT INTO processed_events (consumer_group, event_id, processed_at_ms) VALUES {}",
            platform::db::values(500, 3, 1)
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for n in 0..500 {
            insert = insert.bind("g").bind(format!("old-{chunk}-{n}")).bind(processed_at);
        }
        insert.execute(tx.conn().await.expect("connection")).await.expect("old ids");
    }
    for n in 0..50 {
        sqlx::query(
            "INSERT INTO processed_events (consumer_group, event_id, processed_at_ms) VALUES ('g', $1, $2)",
        )
        .bind(format!("today-{n}"))
        .bind(now)
        .execute(tx.conn().await.expect("connection"))
        .await
        .expect("recent id");
    }
    for n in 0..200 {
        tx.publish_to(&topic, &order(Uuid::new_v4(), n + 1)).await.expect("pending");
    }
    tx.commit().await.expect("commit");

    // The clean-up and the relay at the same time: the relay sends every pending event
    // while the clean-up works through the backlog a batch at a time.
    let relay = relay(&db);
    let cleaning = platform::cleanup::delete_expired_in_batches(&db, Retention::default(), 250);
    let relaying = async {
        let mut sent = 0;
        while sent < 200 {
            sent += relay.publish_pending().await.expect("relay step");
        }
        sent
    };
    let (deleted, sent) = tokio::join!(cleaning, relaying);
    let deleted = deleted.expect("clean-up");
    assert_eq!(sent, 200, "every pending event went out");
    assert_eq!((deleted.outbox, deleted.processed_events), (6000, 6000), "{deleted:?}");
    assert!(deleted.batches >= 48, "bounded batches, each its own transaction: {deleted:?}");

    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox").fetch_one(db.pool()).await.expect("n");
    assert_eq!(left, 200, "the just-published rows stay for their retention");
    let ids: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM processed_events").fetch_one(db.pool()).await.expect("n");
    assert_eq!(ids, 50, "ids still needed for the duplicate check stay");
    let published = platform::dead_letter::read_all(&kafka_config(), &topic).await.expect("read");
    assert_eq!(published.len(), 200, "on the topic once each");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_cleaning_one_postgres_database_at_once_delete_each_row_once() {
    let database = testkit::TestDatabase::create_on(testkit::TestBackend::Postgres).await;
    let migrations = [&platform::db::PLATFORM_MIGRATIONS];
    let instance_a = platform::db::Db::connect(&database.url, &migrations).await.expect("a");
    let instance_b = platform::db::Db::connect(&database.url, &migrations).await.expect("b");
    let long_ago = platform::clock::now_ms() - 2 * 3_600_000;
    let sql = format!(
        "INSERT INTO outbox (event_id, topic, message_key, event_type, payload, created_at_ms, published_at_ms) \
         SELECT 'old-' || n, 't', 'k', 'order.created.v1', '{{}}', {long_ago}, {long_ago} \
         FROM generate_series(1, 3000) AS n"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(instance_a.pool()).await.expect("backlog");
    let retention = Retention::default();
    let (a, b) = tokio::join!(
        platform::cleanup::delete_expired_in_batches(&instance_a, retention, 100),
        platform::cleanup::delete_expired_in_batches(&instance_b, retention, 100),
    );
    let (a, b) = (a.expect("a cleans up"), b.expect("b cleans up"));
    assert_eq!(a.outbox + b.outbox, 3000, "each row deleted once: {a:?} {b:?}");
    let left: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox").fetch_one(instance_a.pool()).await.expect("n");
    assert_eq!(left, 0);
    instance_a.close().await;
    instance_b.close().await;
}

#[tokio::test]
async fn a_commit_in_another_process_wakes_the_relay_through_postgres() {
    // Always PostgreSQL: LISTEN/NOTIFY is how instances wake each other's relays there.
    let database = testkit::TestDatabase::create_on(testkit::TestBackend::Postgres).await;
    let relaying_instance = platform::db::Db::connect(&database.url, &[]).await.expect("a");
    let writing_instance = platform::db::Db::connect(&database.url, &[]).await.expect("b");
    let topic = topic("it.outbox.notify").await;
    let config =
        platform::outbox::RelayConfig { poll_interval: Duration::from_secs(3600), ..Default::default() };
    let relay =
        platform::outbox::Relay::new(relaying_instance.clone(), &kafka_config(), "platform-test", config)
            .expect("relay");
    let stop = tokio_util::sync::CancellationToken::new();
    let relaying = tokio::spawn(relay.clone().run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Committed through the other instance: its in-process doorbell rings nobody.
    let mut tx = writing_instance.begin_write().await.expect("begin");
    tx.publish_to(&topic, &order(Uuid::new_v4(), 1)).await.expect("enqueue");
    tx.commit().await.expect("commit");
    eventually(Duration::from_secs(10), "the other instance's relay published it", || async {
        relay.backlog().await.expect("backlog") == 0
    })
    .await;
    stop.cancel();
    relaying.await.expect("relay task");
}
