use shared_events::UserSignedUp;
use uuid::Uuid;

use crate::helpers::{settle, spawn_app};

fn signed_up(email: &str) -> UserSignedUp {
    UserSignedUp { user_id: Uuid::new_v4(), email: email.to_owned(), name: "Ada".to_owned() }
}

#[tokio::test]
async fn one_welcome_email_per_user_even_when_the_event_comes_twice() {
    let app = spawn_app().await;
    let event = signed_up("ada@example.com");
    let id = Uuid::new_v4();
    app.publish(&event, id).await;
    app.publish(&event, id).await; // redelivered: the same event id
    app.publish(&event, Uuid::new_v4()).await; // sent again under a new id: still one mail
    let path = format!("/api/notifications?userId={}", event.user_id);
    let sent = app.wait_for(&path, 1).await;
    settle().await;
    let sent_now = app.wait_for(&path, 1).await;
    assert_eq!(sent_now, sent);
    let welcome = &sent[0];
    assert_eq!(welcome["kind"], "WELCOME");
    assert_eq!(welcome["channel"], "EMAIL");
    assert_eq!(welcome["recipient"], "ada@example.com");
    assert_eq!(welcome["subject"], "Welcome, Ada!");
    assert_eq!(welcome["userId"], event.user_id.to_string());
    assert_eq!(welcome["orderId"], serde_json::Value::Null);
    assert_eq!(welcome["attempts"], 1);
}

#[tokio::test]
async fn a_flaky_address_gets_its_welcome_on_the_third_attempt() {
    let app = spawn_app().await;
    let event = signed_up("bob+flaky@example.com");
    app.publish(&event, Uuid::new_v4()).await;
    let sent = app.wait_for(&format!("/api/notifications?userId={}", event.user_id), 1).await;
    assert_eq!(sent[0]["attempts"], 3);
    assert!(app.get_json("/api/notifications/failed").await.as_array().expect("array").is_empty());
}
