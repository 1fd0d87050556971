use std::time::Duration;

use testkit::topic_prefix;

use serde_json::{Value, json};

use crate::helpers::{ALL, spawn_with};

/// Polls `url` until its JSON array has `count` items.
async fn wait_for_items(url: &str, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let items: Vec<Value> =
            crate::helpers::admin_client().get(url).send().await.expect("GET").json().await.expect("json");
        if items.len() >= count {
            return items;
        }
        assert!(tokio::time::Instant::now() < deadline, "{url}: {} of {count} after 30 s", items.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_sign_up_gets_one_welcome_email_even_when_its_event_is_delivered_again() {
    let prefix = topic_prefix();
    let same_topics = |_: &mut platform::ServiceSpec, config: &mut platform::ServiceConfig| {
        config.kafka.topic_prefix = prefix.clone();
    };
    let users = spawn_with(ALL[1], same_topics).await;
    let notifications = spawn_with(ALL[5], same_topics).await;

    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    let response = crate::helpers::admin_client()
        .post(format!("{}/api/users", users.service.base_url))
        .json(&json!({"email": email, "name": "Grace", "password": "hopper-1906"}))
        .send()
        .await
        .expect("POST /api/users");
    assert_eq!(response.status(), 201);
    let user: Value = response.json().await.expect("json");
    let mails = format!(
        "{}/api/notifications?userId={}",
        notifications.service.base_url,
        user["id"].as_str().expect("id")
    );
    let sent = wait_for_items(&mails, 1).await;
    assert_eq!(sent[0]["kind"], "WELCOME");
    assert_eq!(sent[0]["recipient"], email.as_str());

    // Force a redelivery: the very message again, same event id, as after a lost commit.
    let topic = format!("{prefix}user.signed-up");
    crate::helpers::redeliver(&topic, user["id"].as_str().expect("id")).await;

    // It is consumed (the duplicate counter moves) and changes nothing.
    let duplicates = format!("events_handled_total{{topic=\"{topic}\",outcome=\"duplicate\"}}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = reqwest::get(format!("{}/metrics", notifications.service.base_url))
            .await
            .expect("GET")
            .text()
            .await
            .expect("text");
        if metrics.lines().any(|l| l.starts_with(&duplicates)) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the redelivered event was not consumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(wait_for_items(&mails, 1).await.len(), 1, "still one welcome e-mail");
}
