//! Charges, refunds and deposits against a real database (SQLite, or PostgreSQL with
//! `TEST_DATABASE=postgres`), many at once: the balance a decision was made on is the one
//! its write replaces, so money is neither lost nor overdrawn. No Kafka: the handlers'
//! events stay in each database's outbox.

use axum::http::StatusCode;
use futures::FutureExt as _;
use futures::future::join_all;
use serde_json::{Value, json};
use shared_events::{InventoryReserved, OrderCancelRequested, UserSignedUp};
use testkit::InProcess;
use uuid::Uuid;

use payment_service::handlers::{Charge, OpenWallet, Refund};

struct Wallets(InProcess);

impl std::ops::Deref for Wallets {
    type Target = InProcess;

    fn deref(&self) -> &InProcess {
        &self.0
    }
}

impl Wallets {
    async fn new() -> Self {
        Self(InProcess::new(&payment_service::MIGRATIONS, payment_service::api::router).await)
    }

    /// A user with a wallet of `cents`.
    async fn user(&self, cents: i64) -> Uuid {
        let user_id = Uuid::now_v7();
        let signed_up = UserSignedUp { user_id, email: "kim@example.com".to_owned(), name: "Kim".to_owned() };
        self.apply(&OpenWallet { initial_cents: cents }, signed_up).await;
        user_id
    }

    async fn charge(&self, order_id: Uuid, user_id: Uuid, total_cents: i64) {
        let reserved = InventoryReserved { order_id, user_id, items: Vec::new(), total_cents };
        self.apply(&Charge, reserved).await;
    }

    async fn balance(&self, user_id: Uuid) -> i64 {
        let (status, wallet) = self.request("GET", &format!("/api/wallets/{user_id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{wallet}");
        assert_eq!(wallet["userId"], user_id.to_string());
        wallet["balanceCents"].as_i64().expect("balanceCents")
    }

    async fn payments(&self, order_id: Option<Uuid>) -> Vec<Value> {
        let uri = match order_id {
            Some(id) => format!("/api/payments?orderId={id}"),
            None => "/api/payments".to_owned(),
        };
        let (status, payments) = self.request("GET", &uri, None).await;
        assert_eq!(status, StatusCode::OK);
        payments.as_array().expect("a list").clone()
    }

    async fn deposit(&self, user_id: Uuid, cents: i64) -> (StatusCode, Value) {
        let uri = format!("/api/wallets/{user_id}/deposit");
        self.request("POST", &uri, Some(json!({"amountCents": cents}))).await
    }
}

fn count(payments: &[Value], status: &str) -> usize {
    payments.iter().filter(|p| p["status"] == status).count()
}

#[tokio::test]
async fn concurrent_charges_and_deposits_neither_overdraw_nor_lose_money() {
    let wallets = Wallets::new().await;
    let user_id = wallets.user(1_000).await;
    let charges = (0..12).map(|_| wallets.charge(Uuid::now_v7(), user_id, 300).boxed_local());
    let deposits = (0..6)
        .map(|_| async { assert_eq!(wallets.deposit(user_id, 50).await.0, StatusCode::OK) }.boxed_local());
    join_all(charges.chain(deposits)).await;

    let payments = wallets.payments(None).await;
    assert_eq!(payments.len(), 12);
    let completed = count(&payments, "COMPLETED");
    assert_eq!(completed + count(&payments, "FAILED"), 12);
    assert!(
        payments.iter().filter(|p| p["status"] == "FAILED").all(|p| p["reason"] == "INSUFFICIENT_FUNDS"),
        "{payments:?}"
    );
    // 1,000 and 6 × 50 deposited cover 4 charges of 300, but deposits may land after some
    // charges were refused: at least 3 went through, and the balance adds up either way.
    assert!((3..=4).contains(&completed), "{completed} charges completed");
    let balance = wallets.balance(user_id).await;
    assert_eq!(balance, 1_000 + 6 * 50 - 300 * completed as i64);
}

#[tokio::test]
async fn an_order_is_charged_once_and_refunded_once_however_often_its_events_come() {
    let wallets = Wallets::new().await;
    let user_id = wallets.user(1_000).await;
    let order_id = Uuid::now_v7();
    join_all((0..3).map(|_| wallets.charge(order_id, user_id, 400))).await;
    assert_eq!(wallets.balance(user_id).await, 600);
    let payments = wallets.payments(Some(order_id)).await;
    assert_eq!(payments.len(), 1);
    let id = payments[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        payments[0],
        json!({"id": id, "orderId": order_id, "userId": user_id, "amountCents": 400,
            "status": "COMPLETED", "reason": null})
    );

    let cancel = || OrderCancelRequested { order_id, user_id };
    join_all((0..3).map(|_| wallets.apply(&Refund, cancel()))).await;
    assert_eq!(wallets.balance(user_id).await, 1_000);
    let payments = wallets.payments(Some(order_id)).await;
    assert_eq!(
        (payments.len(), &payments[0]["id"], &payments[0]["status"]),
        (1, &json!(id), &json!("REFUNDED"))
    );
}

#[tokio::test]
async fn a_charge_without_a_wallet_or_the_funds_fails_with_why_and_moves_nothing() {
    let wallets = Wallets::new().await;
    let user_id = wallets.user(100).await;
    let (short, stranger) = (Uuid::now_v7(), Uuid::now_v7());
    wallets.charge(short, user_id, 101).await;
    wallets.charge(stranger, Uuid::now_v7(), 1).await;
    let reason = |payments: Vec<Value>| (payments[0]["status"].clone(), payments[0]["reason"].clone());
    assert_eq!(reason(wallets.payments(Some(short)).await), (json!("FAILED"), json!("INSUFFICIENT_FUNDS")));
    assert_eq!(reason(wallets.payments(Some(stranger)).await), (json!("FAILED"), json!("NO_WALLET")));
    assert_eq!(wallets.balance(user_id).await, 100);

    // Nothing to pay back for a refused charge.
    wallets.apply(&Refund, OrderCancelRequested { order_id: short, user_id }).await;
    assert_eq!(reason(wallets.payments(Some(short)).await).0, "FAILED");
    assert_eq!(wallets.balance(user_id).await, 100);
}

#[tokio::test]
async fn deposits_are_checked_before_the_wallet_is_looked_up() {
    let wallets = Wallets::new().await;
    let user_id = wallets.user(0).await;
    let (status, wallet) = wallets.deposit(user_id, 100_000_000).await;
    assert_eq!((status, wallet), (StatusCode::OK, json!({"userId": user_id, "balanceCents": 100_000_000})));

    let (status, problem) = wallets.deposit(user_id, 0).await;
    assert_eq!((status, &problem["field"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("amountCents")));
    assert_eq!(problem["detail"], "amountCents: must be from 1 to 100000000");
    let stranger = Uuid::now_v7();
    assert_eq!(wallets.deposit(stranger, 100_000_001).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, problem) = wallets.deposit(stranger, 1).await;
    assert_eq!(
        (status, problem["detail"].as_str()),
        (StatusCode::NOT_FOUND, Some(&*format!("no wallet {stranger}")))
    );
    let (status, problem) = wallets.request("GET", "/api/wallets/not-a-uuid", None).await;
    assert_eq!((status, problem["detail"].as_str()), (StatusCode::NOT_FOUND, Some("no wallet not-a-uuid")));
    assert_eq!(wallets.balance(user_id).await, 100_000_000);

    assert!(
        wallets
            .request("GET", "/api/payments?orderId=not-a-uuid", None)
            .await
            .1
            .as_array()
            .expect("list")
            .is_empty()
    );
}
