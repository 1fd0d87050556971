use platform::dead_letter::read_all;
use rdkafka::Message;
use serde_json::json;
use testkit::kafka_config;

use crate::helpers::{problem, spawn_app};

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
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("POST");
    problem(malformed, 400).await;
    problem(
        app.client
            .get(format!("{}/api/notifications?channel=FAX", app.service.base_url))
            .send()
            .await
            .expect("GET"),
        422,
    )
    .await;
}

#[tokio::test]
async fn a_failing_address_reaches_the_dlt_and_the_failed_list_and_can_be_retried() {
    let app = spawn_app().await;
    let response = app
        .post(
            "/api/emails/send",
            &json!({"from": "shop@example.com", "to": "eve+fail@example.com", "subject": "S", "body": "B"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let failed = app.wait_for("/api/notifications/failed", 1).await;
    let failure = &failed[0];
    assert_eq!(failure["topic"], app.topic("email.send"));
    assert_eq!(failure["deadLetterTopic"], app.topic("email.send.dlt"));
    assert_eq!(failure["attempts"], 5);
    assert_eq!(failure["eventType"], "email.send.v1");
    assert_eq!(failure["key"], "eve+fail@example.com");
    assert!(failure["error"].as_str().expect("error").contains("+fail"), "{failure}");
    assert!(failure["payload"].as_str().expect("payload").contains("eve+fail@example.com"));
    assert_eq!(failure["retriedAt"], serde_json::Value::Null);

    // The message itself, in the dead-letter topic with the contract's headers.
    let dead = read_all(&kafka_config(), &app.topic("email.send.dlt")).await.expect("read");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key(), Some(&b"eve+fail@example.com"[..]));
    let headers: Vec<String> = rdkafka::message::Headers::iter(dead[0].headers().expect("headers"))
        .map(|h| h.key.to_owned())
        .collect();
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
        assert!(headers.iter().any(|h| h == name), "{name} missing from {headers:?}");
    }
    assert!(
        app.get_json("/api/notifications").await.as_array().expect("array").is_empty(),
        "nothing was sent"
    );

    // Retried from the failed list: it runs again (and fails again, being +fail).
    let id = failure["id"].as_str().expect("id");
    let retried = app
        .client
        .post(format!("{}/api/notifications/failed/{id}/retry", app.service.base_url))
        .send()
        .await
        .expect("POST");
    assert_eq!(retried.status(), 202);
    let failed = app.wait_for("/api/notifications/failed", 2).await;
    let first = failed.iter().find(|f| f["id"] == id).expect("the first failure");
    assert!(first["retriedAt"].as_str().expect("retriedAt").ends_with('Z'));
    let missing = app
        .client
        .post(format!("{}/api/notifications/failed/nope/retry", app.service.base_url))
        .send()
        .await
        .expect("POST");
    problem(missing, 404).await;
}
