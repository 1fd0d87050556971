use std::time::Duration;

use shared_events::{FailureReason, OrderCancelled, OrderConfirmed, UserSignedUp};
use uuid::Uuid;

use crate::helpers::{settle, spawn_app};

#[tokio::test]
async fn each_terminal_order_gets_exactly_one_email_to_the_users_address() {
    let app = spawn_app().await;
    let user = UserSignedUp { user_id: Uuid::new_v4(), email: "cy@example.com".into(), name: "Cy".into() };
    app.publish(&user, Uuid::new_v4()).await;
    let confirmed = OrderConfirmed { order_id: Uuid::new_v4(), user_id: user.user_id, total_cents: 12345 };
    let confirmed_id = Uuid::new_v4();
    app.publish(&confirmed, confirmed_id).await;
    app.publish(&confirmed, confirmed_id).await;
    let cancelled =
        OrderCancelled { order_id: Uuid::new_v4(), user_id: user.user_id, reason: FailureReason::OutOfStock };
    app.publish(&cancelled, Uuid::new_v4()).await;

    let mails = app.wait_for(&format!("/api/notifications?orderId={}", confirmed.order_id), 1).await;
    assert_eq!(mails[0]["kind"], "ORDER_CONFIRMED");
    assert_eq!(mails[0]["recipient"], "cy@example.com");
    assert_eq!(mails[0]["subject"], format!("Order {} confirmed", confirmed.order_id));
    let mails = app.wait_for(&format!("/api/notifications?orderId={}", cancelled.order_id), 1).await;
    assert_eq!(mails[0]["kind"], "ORDER_CANCELLED");
    settle().await;
    // Welcome, confirmed, cancelled: one each, newest first.
    let all = app.wait_for(&format!("/api/notifications?userId={}", user.user_id), 3).await;
    let mut kinds: Vec<&str> = all.iter().map(|n| n["kind"].as_str().expect("kind")).collect();
    let times: Vec<&str> = all.iter().map(|n| n["createdAt"].as_str().expect("createdAt")).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    kinds.sort_unstable();
    assert_eq!(kinds, ["ORDER_CANCELLED", "ORDER_CONFIRMED", "WELCOME"]);
}

#[tokio::test]
async fn an_order_email_waits_for_a_sign_up_that_arrives_late() {
    let app = spawn_app().await;
    let user =
        UserSignedUp { user_id: Uuid::new_v4(), email: "late@example.com".into(), name: "Late".into() };
    let confirmed = OrderConfirmed { order_id: Uuid::new_v4(), user_id: user.user_id, total_cents: 100 };
    app.publish(&confirmed, Uuid::new_v4()).await;
    // Once the mail has failed for want of an address, the sign-up arrives.
    let retried = format!("consumer_retries_total{{topic=\"{}\"}}", app.topic("order.confirmed"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !app.metrics().await.lines().any(|line| line.starts_with(&retried)) {
        assert!(tokio::time::Instant::now() < deadline, "{retried} never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.publish(&user, Uuid::new_v4()).await;
    let mails = app.wait_for(&format!("/api/notifications?orderId={}", confirmed.order_id), 1).await;
    assert_eq!(mails[0]["recipient"], "late@example.com");
    assert!(mails[0]["attempts"].as_i64().expect("attempts") > 1, "it was retried: {mails:?}");
}
