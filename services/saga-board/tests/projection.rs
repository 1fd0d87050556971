//! The board's store on the backend under test (`TEST_DATABASE`): two events of one order
//! applied at the same time, as PostgreSQL's parallel partitions apply them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use platform::db::Db;
use saga_board::domain::{Position, Status};
use saga_board::record::EventRecord;
use saga_board::store;
use testkit::TestDatabase;
use uuid::Uuid;

fn event(order_id: Uuid, topic: &str, time_ms: i64) -> EventRecord {
    EventRecord {
        position: Position { topic: topic.to_owned(), partition: 0, offset: time_ms },
        order_id: Some(order_id),
        event_id: Some(Uuid::new_v4().to_string()),
        event_type: Some(format!("{topic}.v1")),
        source: None,
        time_ms: Some(time_ms),
        trace_id: None,
        user_id: Some("u-1".to_owned()),
        reason: None,
        key: Some(order_id.to_string()),
        payload: Some(format!(r#"{{"orderId":"{order_id}"}}"#)),
        headers: BTreeMap::new(),
        replayed_from: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_events_of_one_order_applied_at_once_both_reach_its_view() {
    let database = TestDatabase::create().await;
    let db = Db::connect(&database.url, &[&saga_board::MIGRATIONS]).await.expect("database");
    let order = Uuid::new_v4();

    // The first event's transaction recomputes the view and stays open...
    let mut first = db.begin_write().await.expect("begin");
    store::insert_events(&mut first, &[event(order, "order.created", 1_000)]).await.expect("insert");
    store::refresh_orders(&mut first, &BTreeSet::from([order])).await.expect("refresh");
    // ...while the second is applied beside it (on SQLite it waits for the first to end).
    let second = {
        let db = db.clone();
        tokio::spawn(async move {
            let mut tx = db.begin_write().await.expect("begin");
            store::insert_events(&mut tx, &[event(order, "inventory.reserved", 1_010)])
                .await
                .expect("insert");
            store::refresh_orders(&mut tx, &BTreeSet::from([order])).await.expect("refresh");
            tx.commit().await.expect("commit");
        })
    };
    // Give the second every chance to read the order before the first commits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.commit().await.expect("commit");
    second.await.expect("the second transaction");

    let mut conn = db.pool().acquire().await.expect("connection");
    let view = store::order(&mut conn, order).await.expect("read").expect("the order's view");
    let topics: Vec<&str> =
        view.steps.as_array().expect("steps").iter().map(|s| s["topic"].as_str().expect("topic")).collect();
    assert_eq!(topics, ["order.created", "inventory.reserved"], "neither event lost from the view");
    assert_eq!(view.status, Status::Pending);
    assert_eq!(view.waiting_for, ["payment.completed", "payment.failed"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transactions_events_of_several_orders_reach_each_orders_view_and_a_repeat_is_ignored() {
    let database = TestDatabase::create().await;
    let db = Db::connect(&database.url, &[&saga_board::MIGRATIONS]).await.expect("database");
    let (one, two) = (Uuid::new_v4(), Uuid::new_v4());

    let mut tx = db.begin_write().await.expect("begin");
    let created = event(one, "order.created", 1_000);
    let events =
        [created.clone(), event(two, "order.created", 1_001), event(one, "inventory.reserved", 1_002)];
    store::insert_events(&mut tx, &events).await.expect("insert");
    store::refresh_orders(&mut tx, &BTreeSet::from([one, two])).await.expect("refresh");
    tx.commit().await.expect("commit");

    // The same message again (same position, as a redelivery brings it), with another
    // order's new one in the same statement.
    let mut tx = db.begin_write().await.expect("begin");
    store::insert_events(&mut tx, &[created, event(two, "inventory.rejected", 1_003)]).await.expect("insert");
    store::refresh_orders(&mut tx, &BTreeSet::from([one, two])).await.expect("refresh");
    tx.commit().await.expect("commit");

    let mut conn = db.pool().acquire().await.expect("connection");
    let topics = |view: &store::OrderRow| -> Vec<String> {
        let steps = view.steps.as_array().expect("steps");
        steps.iter().map(|s| s["topic"].as_str().expect("topic").to_owned()).collect()
    };
    let first = store::order(&mut conn, one).await.expect("read").expect("the first order's view");
    assert_eq!(topics(&first), ["order.created", "inventory.reserved"]);
    assert_eq!(first.waiting_for, ["payment.completed", "payment.failed"]);
    let second = store::order(&mut conn, two).await.expect("read").expect("the second order's view");
    assert_eq!(topics(&second), ["order.created", "inventory.rejected"]);
    assert_eq!(second.waiting_for, ["order.cancelled"]);
    assert_eq!(store::events_of(&mut conn, &one.to_string()).await.expect("events").len(), 2, "kept once");
}
