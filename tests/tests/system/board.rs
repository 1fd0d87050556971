//! The saga board beside the saga's services: what it shows of each kind of saga, its
//! dead letters and their replay, its live stream, and the same view again from a board
//! started on an empty store (rebuilt from the topics alone).

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::producer::FutureRecord;
use serde_json::{Value, json};

use testkit::TestService;

use crate::helpers::{ALL, Running, admin_client, spawn_with};
use crate::saga::Saga;

/// A board reading the saga's topics, with a store of its own.
async fn board(saga: &Saga) -> Running {
    let prefix = saga.prefix().to_owned();
    spawn_with(ALL[6], move |_, config| config.kafka.topic_prefix = prefix).await
}

async fn get(board: &Running, path: &str) -> Value {
    let response =
        admin_client().get(format!("{}{path}", board.service.base_url)).send().await.expect("GET the board");
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.expect("json")
}

/// Polls `check` on `board` until it holds, for at most 60 s; the last answer.
async fn until(board: &Running, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let answer = get(board, path).await;
        if check(&answer) {
            return answer;
        }
        assert!(tokio::time::Instant::now() < deadline, "not within 60 s: {what}; last: {answer:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn topics_of(summary: &Value) -> Vec<&str> {
    summary["steps"].as_array().expect("steps").iter().map(|s| s["topic"].as_str().expect("topic")).collect()
}

fn reversed_of(summary: &Value) -> Vec<&str> {
    let steps = summary["steps"].as_array().expect("steps");
    steps.iter().filter(|s| s["reversed"] == true).map(|s| s["topic"].as_str().expect("topic")).collect()
}

/// A value that is no JSON, keyed like an order, on the saga's `order.created`.
async fn produce_poison(prefix: &str, key: &str) {
    let producer: platform::kafka::CountedProducer =
        platform::kafka::producer(&testkit::kafka_config(), "board-test").expect("a producer");
    let topic = format!("{prefix}order.created");
    let record = FutureRecord::to(&topic).key(key).payload("this is not json");
    producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e).expect("produced");
}

#[tokio::test]
async fn the_board_shows_every_kind_of_saga_and_a_rebuilt_board_shows_the_same() {
    let mut saga = Saga::start().await;
    let live = board(&saga).await;
    let mut stream = admin_client()
        .get(format!("{}/api/board/stream", live.service.base_url))
        .send()
        .await
        .expect("the stream");

    saga.product("BOARD-PEN", 500, 100).await;
    saga.product("BOARD-CAR", 5_000_000, 10).await;
    let user = saga.user().await;
    let confirmed = saga.order(&user, json!([{"sku": "BOARD-PEN", "quantity": 2}])).await;
    let unpaid = saga.order(&user, json!([{"sku": "BOARD-CAR", "quantity": 1}])).await;
    let rejected = saga.order(&user, json!([{"sku": "BOARD-NONE", "quantity": 1}])).await;
    let cancelled = saga.order(&user, json!([{"sku": "BOARD-PEN", "quantity": 1}])).await;
    for order in [&confirmed, &unpaid, &rejected, &cancelled] {
        saga.terminal(order).await;
    }
    assert_eq!(saga.cancel(&cancelled).await.0, 202);
    let poison_key = uuid::Uuid::new_v4().to_string();
    produce_poison(saga.prefix(), &poison_key).await;

    // The live board: each saga as it went.
    let all = "/api/board/orders?limit=500";
    let expected = format!("four final sagas: {confirmed} {unpaid} {rejected} {cancelled}");
    let orders = until(&live, all, &expected, |orders| {
        let settled = |id: &str, status: &str| {
            orders
                .as_array()
                .is_some_and(|all| all.iter().any(|o| o["orderId"] == id && o["status"] == status))
        };
        settled(&confirmed, "CONFIRMED")
            && settled(&unpaid, "CANCELLED")
            && settled(&rejected, "CANCELLED")
            && settled(&cancelled, "CANCELLED")
    })
    .await;
    let summary =
        |id: &str| orders.as_array().expect("orders").iter().find(|o| o["orderId"] == id).expect("listed");
    assert_eq!(
        topics_of(summary(&confirmed)),
        ["order.created", "inventory.reserved", "payment.completed", "order.confirmed"]
    );
    assert_eq!(summary(&confirmed)["path"], "FORWARD");
    assert!(summary(&confirmed)["sagaMillis"].as_i64().is_some_and(|ms| ms >= 0));
    assert_eq!(summary(&unpaid)["path"], "COMPENSATION");
    assert_eq!(summary(&unpaid)["reason"], "INSUFFICIENT_FUNDS");
    assert_eq!(reversed_of(summary(&unpaid)), ["inventory.released", "order.cancelled"]);
    assert_eq!(summary(&rejected)["path"], "REJECTED");
    assert_eq!(summary(&rejected)["reason"], "UNKNOWN_SKU");
    assert_eq!(summary(&cancelled)["path"], "USER_CANCEL");
    assert_eq!(
        reversed_of(summary(&cancelled)),
        ["order.cancel-requested", "payment.refunded", "inventory.released", "order.cancelled"]
    );
    assert_eq!(summary(&cancelled)["reason"], "CANCELLED_BY_USER");
    for order in [&confirmed, &unpaid, &rejected, &cancelled] {
        assert_eq!(summary(order)["waitingFor"], json!([]), "{order} is final");
        assert_eq!(summary(order)["userId"], user.as_str());
    }
    let filtered = get(&live, "/api/board/orders?reason=INSUFFICIENT_FUNDS&limit=500").await;
    let filtered: Vec<&Value> = filtered.as_array().expect("orders").iter().map(|o| &o["orderId"]).collect();
    assert_eq!(filtered, [&json!(unpaid)]);
    for refused in ["limit=0", "limit=501", "status=LOST", "stuck=0"] {
        let url = format!("{}/api/board/orders?{refused}", live.service.base_url);
        let answer = admin_client().get(url).send().await.expect("GET the board");
        assert_eq!(answer.status(), 422, "{refused} is refused, naming the field");
    }

    // One order's timeline: every event with where it was, its headers and its trace.
    let timeline = get(&live, &format!("/api/board/orders/{confirmed}")).await;
    let entries = timeline["timeline"].as_array().expect("timeline");
    assert_eq!(entries.len(), 4, "{timeline:#}");
    assert_eq!(entries[0]["topic"], "order.created");
    assert_eq!(entries[0]["payload"]["orderId"], confirmed.as_str());
    assert_eq!(entries[0]["headers"]["ce_type"], "order.created.v2");
    assert!(entries[3]["hopMillis"].as_i64().is_some(), "{timeline:#}");
    // Services under test export no spans, so their events carry no trace context; the
    // browser test follows the link to Zipkin on the system as run.sh starts it.
    match timeline["traceId"].as_str() {
        Some(trace) => {
            assert_eq!(timeline["traceUrl"], format!("http://127.0.0.1:9411/zipkin/traces/{trace}"));
            assert!(entries.iter().all(|e| e["traceId"] == trace), "one order, one trace: {timeline:#}");
        }
        None => {
            assert_eq!(timeline["traceUrl"], Value::Null);
            assert!(entries.iter().all(|e| e["headers"].get("traceparent").is_none()), "{timeline:#}");
        }
    }

    // Who consumed each event, from the groups' committed offsets: inventory-service took
    // order.created, and notification-service (which publishes nothing for its e-mails)
    // took order.confirmed.
    let consumed = |timeline: &Value, topic: &str, service: &str| {
        timeline["timeline"].as_array().is_some_and(|entries| {
            entries.iter().any(|e| {
                e["topic"] == topic
                    && e["consumedBy"].as_array().is_some_and(|by| by.iter().any(|s| s == service))
            })
        })
    };
    until(&live, &format!("/api/board/orders/{confirmed}"), "each event consumed by its services", |t| {
        consumed(t, "order.created", "inventory-service")
            && consumed(t, "payment.completed", "order-service")
            && consumed(t, "order.confirmed", "notification-service")
    })
    .await;

    // The poison message: dead-lettered by inventory-service, shown, replayed, back again.
    let poisoned = |letters: &Value| -> Vec<Value> {
        let all = letters.as_array().expect("dead letters");
        all.iter().filter(|l| l["key"] == poison_key.as_str()).cloned().collect()
    };
    let letters = until(&live, "/api/board/dead-letters", "the poison message dead-lettered", |letters| {
        !poisoned(letters).is_empty()
    })
    .await;
    let letter = poisoned(&letters)[0].clone();
    assert_eq!(letter["originalTopic"], "order.created");
    assert_eq!(letter["consumerGroup"], format!("{}inventory-service", saga.prefix()));
    assert!(letter["error"].as_str().is_some_and(|e| e.contains("ce_id")), "{letter:#}");
    assert_eq!(letter["payload"], "this is not json");
    let replay = format!(
        "{}/api/board/dead-letters/{}/{}/{}/replay",
        live.service.base_url,
        letter["topic"].as_str().expect("topic"),
        letter["partition"],
        letter["offset"]
    );
    let answer = admin_client().post(&replay).send().await.expect("replay");
    assert_eq!(answer.status(), 202);
    let refused = reqwest::Client::new()
        .post(&replay)
        .bearer_auth(testkit::token(uuid::Uuid::new_v4(), platform::auth::Role::User))
        .send()
        .await
        .expect("replay as a user");
    assert_eq!(refused.status(), 403, "the board is for admins");
    let letters =
        until(&live, "/api/board/dead-letters", "the replay seen and dead-lettered again", |letters| {
            let poisoned = poisoned(letters);
            poisoned.len() == 2
                && poisoned
                    .iter()
                    .any(|l| l["id"] == letter["id"] && l["replays"].as_array().is_some_and(|r| r.len() == 1))
        })
        .await;
    let again =
        poisoned(&letters).into_iter().find(|l| l["id"] != letter["id"]).expect("the second dead letter");
    let replayed_from = format!("{}{}", saga.prefix(), letter["id"].as_str().expect("id"));
    assert_eq!(
        again["headers"]["replayed_from"],
        replayed_from.as_str(),
        "the header names the cluster's topic"
    );

    // The stream told of the changes as they came.
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !(seen.contains(&confirmed) && seen.contains("event: dead-letter")) {
        let chunk =
            tokio::time::timeout_at(deadline, stream.chunk()).await.expect("stream events within 30 s");
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("a chunk").expect("still open")));
    }
    assert!(seen.contains("event: order"), "{seen}");

    // A board on an empty store reads the topics from the beginning: the same view.
    let rebuilt = board(&saga).await;
    let live_orders = get(&live, all).await;
    until(&rebuilt, all, "the rebuilt board caught up", |orders| orders == &live_orders).await;
    let live_letters = get(&live, "/api/board/dead-letters").await;
    until(&rebuilt, "/api/board/dead-letters", "the same dead letters", |letters| letters == &live_letters)
        .await;
    for order in [&confirmed, &unpaid, &rejected, &cancelled] {
        let path = format!("/api/board/orders/{order}");
        assert_eq!(get(&rebuilt, &path).await, get(&live, &path).await, "the timeline of {order}");
    }
}

/// The ids of the dead letters of `order.created` that `stream` told of, read until there
/// are `count` of them, for at most 60 s.
async fn dead_letters_streamed(
    stream: &mut reqwest::Response,
    count: usize,
    which: &str,
) -> BTreeSet<String> {
    const ID: &str = "\"id\":\"order.created.dlt/";
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ids: BTreeSet<String> = seen
            .match_indices(ID)
            .filter_map(|(at, _)| seen[at + 6..].split('"').next().map(str::to_owned))
            .collect();
        if ids.len() >= count {
            return ids;
        }
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("the stream of {which} told of {ids:?} only, within 60 s"));
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("a chunk").expect("still open")));
    }
}

#[tokio::test]
async fn two_boards_on_one_postgres_store_each_stream_every_change_whichever_consumed_it() {
    let saga = Saga::start().await;
    // PostgreSQL whatever TEST_DATABASE says: only there do instances share a store.
    let store = testkit::TestDatabase::create_on(testkit::TestBackend::Postgres).await;
    // Each instance with its own channel of changes, as in a process of its own (the
    // other tests' boards share one).
    let instance = || async {
        let changes = saga_board::changes::Changes::new();
        let spec = saga_board::spec(changes.clone());
        let mut config = testkit::service_config(&spec, &store.url);
        config.kafka.topic_prefix = saga.prefix().to_owned();
        TestService::spawn(&spec, config, move |context| {
            saga_board::routes(saga_board::Settings::default(), changes)(context)
        })
        .await
    };
    let first = instance().await;
    let second = instance().await;
    let open =
        |board: &TestService| admin_client().get(format!("{}/api/board/stream", board.base_url)).send();
    let mut first_stream = open(&first).await.expect("stream");
    let mut second_stream = open(&second).await.expect("stream");
    // Both in the group before the messages come, so that each consumes some of them.
    tokio::time::sleep(Duration::from_secs(5)).await;

    // A dead letter is one message, so one instance consumes it: keyed apart, they land
    // on every partition of order.created.dlt, and so on both instances.
    const LETTERS: usize = 9;
    for n in 0..LETTERS {
        produce_poison(saga.prefix(), &format!("poison-{n}")).await;
    }
    let first_saw = dead_letters_streamed(&mut first_stream, LETTERS, "the first board").await;
    let second_saw = dead_letters_streamed(&mut second_stream, LETTERS, "the second board").await;
    assert_eq!(first_saw, second_saw);
    let partitions: BTreeSet<&str> = first_saw.iter().filter_map(|id| id.split('/').nth(1)).collect();
    assert!(partitions.len() > 1, "the dead letters are spread over the partitions: {first_saw:?}");
}
