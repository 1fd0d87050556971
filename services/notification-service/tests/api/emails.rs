use std::time::Duration;

use platform::dead_letter::read_all;
use rdkafka::Message;
use rdkafka::message::{Headers, OwnedMessage};
use serde_json::{Value, json};
use testkit::kafka_config;

use crate::helpers::{TestApp, problem, spawn_app};

#[tokio::test]
async fn a_queued_email_is_sent_and_listed() {
    let app = spawn_app().await;
    let response = app
        .post(
            "/api/emails/send",
            &json!({"from": "shop@example.com", "to": "dee@example.com", "subject": "Hi", "body": "Hello"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let queued: serde_json::Value = response.json().await.expect("json");
    assert_eq!(queued["status"], "QUEUED");
    let sent = app.wait_for("/api/notifications?channel=EMAIL", 1).await;
    assert_eq!(sent[0]["kind"], "ADHOC");
    assert_eq!(sent[0]["recipient"], "dee@example.com");
    assert_eq!(sent[0]["subject"], "Hi");
}

#[tokio::test]
async fn an_sms_is_sent_and_listed_on_its_channel() {
    let app = spawn_app().await;
    let response =
        app.post("/api/sms/send", &json!({"to": "+82 10-1234-5678", "text": "Your code is 1234"})).await;
    assert_eq!(response.status(), 202);
    let sent = app.wait_for("/api/notifications?channel=SMS", 1).await;
    assert_eq!(sent[0]["channel"], "SMS");
    assert_eq!(sent[0]["recipient"], "+821012345678");
    assert_eq!(sent[0]["subject"], serde_json::Value::Null);
    assert!(app.get_json("/api/notifications?channel=EMAIL").await.as_array().expect("array").is_empty());
}

#[tokio::test]
async fn bad_requests_name_the_field_and_queue_nothing() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({"to": "a@example.com", "subject": "s", "body": "b"}), "from"),
        (json!({"from": "a@example.com", "to": "nobody", "subject": "s", "body": "b"}), "to"),
        (json!({"from": "a@example", "to": "b@example.com"}), "from"),
    ] {
        let problem = problem(app.post("/api/emails/send", &body).await, 422).await;
        assert_eq!(problem["field"], field, "{problem}");
    }
    problem(app.post("/api/sms/send", &json!({"to": "call me", "text": "x"})).await, 422).await;
    problem(app.post("/api/sms/send", &json!({"to": "+12345678", "text": " "})).await, 422).await;
    let malformed = app
        .client
        .post(format!("{}/api/emails/send", app.service.base_url))
        .header("authorization", &app.admin)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("POST");
    problem(malformed, 400).await;
    problem(
        app.send_as(Some(&app.admin), reqwest::Method::GET, "/api/notifications?channel=FAX", None).await,
        422,
    )
    .await;
}

/// Queues an e-mail to an address that always fails, and returns its failure once it is
/// in the failed list.
async fn a_failed_email(app: &TestApp) -> Value {
    let response = app
        .post(
            "/api/emails/send",
            &json!({"from": "shop@example.com", "to": "eve+fail@example.com", "subject": "S", "body": "B"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    app.wait_for("/api/notifications/failed", 1).await.remove(0)
}

fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The messages on the contract's `topic` whose `ce_id` is `event_id`, once there are
/// `count` of them (and no more), for 30 s.
async fn copies(app: &TestApp, topic: &str, event_id: &str, count: usize) -> Vec<OwnedMessage> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let all = read_all(&kafka_config(), &app.topic(topic)).await.expect("read");
        let copies: Vec<OwnedMessage> =
            all.into_iter().filter(|m| header(m, "ce_id").as_deref() == Some(event_id)).collect();
        if copies.len() >= count {
            assert_eq!(copies.len(), count, "copies of {event_id} on {topic}");
            return copies;
        }
        assert!(tokio::time::Instant::now() < deadline, "{} of {count} copies after 30 s", copies.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_failing_address_reaches_the_dlt_and_the_failed_list() {
    let app = spawn_app().await;
    let failure = a_failed_email(&app).await;
    assert_eq!(failure["topic"], app.topic("email.send"));
    assert_eq!(failure["deadLetterTopic"], app.topic("email.send.dlt"));
    assert_eq!(failure["attempts"], 5);
    assert_eq!(failure["eventType"], "email.send.v1");
    assert_eq!(failure["key"], "eve+fail@example.com");
    assert!(failure["error"].as_str().expect("error").contains("+fail"), "{failure}");
    assert!(failure["payload"].as_str().expect("payload").contains("eve+fail@example.com"));
    assert_eq!(failure["retriedAt"], Value::Null);

    // The message itself, in the dead-letter topic with the contract's headers.
    let dead = read_all(&kafka_config(), &app.topic("email.send.dlt")).await.expect("read");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key(), Some(&b"eve+fail@example.com"[..]));
    for name in [
        "dlt_original_topic",
        "dlt_original_partition",
        "dlt_original_offset",
        "dlt_consumer_group",
        "dlt_error",
        "dlt_attempts",
        "dlt_first_failure_at",
        "dlt_last_failure_at",
        "ce_id",
    ] {
        assert!(header(&dead[0], name).is_some(), "{name} missing from the dead letter");
    }
    assert_eq!(header(&dead[0], "ce_id").as_deref(), failure["eventId"].as_str());
    assert!(
        app.get_json("/api/notifications").await.as_array().expect("array").is_empty(),
        "nothing was sent"
    );
}

#[tokio::test]
async fn a_retried_failure_goes_back_on_its_topic_as_it_was() {
    let app = spawn_app().await;
    let failure = a_failed_email(&app).await;
    let id = failure["id"].as_str().expect("id");
    let event_id = failure["eventId"].as_str().expect("eventId");
    let original = copies(&app, "email.send", event_id, 1).await.remove(0);

    let retried = app.retry(id).await;
    assert_eq!(retried.status(), 202);
    let body: Value = retried.json().await.expect("json");
    assert_eq!(body, json!({"id": id, "status": "REPLAYED", "topic": app.topic("email.send")}));
    // Marked in the transaction that queued the message: at once, not once it is sent.
    let failed = app.get_json("/api/notifications/failed").await;
    let marked = failed.as_array().expect("array").iter().find(|f| f["id"] == id).expect("the failure");
    assert!(marked["retriedAt"].as_str().expect("retriedAt").ends_with('Z'), "{marked}");

    // Back on its topic: the same event, key and payload, without the dead letter's headers.
    let copy = copies(&app, "email.send", event_id, 2).await.remove(1);
    assert_eq!(copy.key(), original.key());
    assert_eq!(copy.payload(), original.payload());
    assert_eq!(header(&copy, "ce_type").as_deref(), Some("email.send.v1"));
    assert_eq!(header(&copy, "dlt_original_topic"), None);

    // It runs again and, being +fail, fails again: a second failure of the same event.
    let failed = app.wait_for("/api/notifications/failed", 2).await;
    let again = failed.iter().find(|f| f["id"] != id).expect("the second failure");
    assert_eq!(again["eventId"], event_id);
    assert_eq!(again["retriedAt"], Value::Null);

    // The first failure retried once more: its message goes back once more.
    assert_eq!(app.retry(id).await.status(), 202);
    copies(&app, "email.send", event_id, 3).await;
    app.wait_for("/api/notifications/failed", 3).await;
}

#[tokio::test]
async fn a_failure_that_cannot_go_back_as_it_was_is_a_conflict() {
    let app = spawn_app().await;
    // No ce_id: refused for good, dead-lettered, recorded without an event id.
    let payload = json!({"from": "shop@example.com", "to": "ida@example.com", "subject": "S", "body": "B"});
    app.publish_raw("email.send", "ida@example.com", &payload.to_string(), &[("ce_type", "email.send.v1")])
        .await;
    let failure = app.wait_for("/api/notifications/failed", 1).await.remove(0);
    assert_eq!(failure["eventId"], Value::Null);
    let id = failure["id"].as_str().expect("id");
    let conflict = problem(app.retry(id).await, 409).await;
    assert!(conflict["detail"].as_str().expect("detail").contains("no event id"), "{conflict}");
    let failed = app.get_json("/api/notifications/failed").await;
    assert_eq!(failed[0]["retriedAt"], Value::Null, "not marked: nothing went back");

    problem(app.retry("nope").await, 404).await;
    problem(app.retry(&uuid::Uuid::new_v4().to_string()).await, 404).await;
}
