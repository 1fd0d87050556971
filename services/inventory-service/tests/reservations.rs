//! The catalogue's HTTP API and the reservation handlers against a real database (SQLite,
//! or PostgreSQL with `TEST_DATABASE=postgres`). No Kafka: the handlers' events stay in
//! the outbox.

use axum::http::StatusCode;
use serde_json::{Value, json};
use shared_events::{FailureReason, OrderCreated, OrderItem, PaymentFailed, PaymentRefunded};
use testkit::InProcess;
use uuid::Uuid;

use inventory_service::handlers::{ReleaseAfterFailedPayment, ReleaseAfterRefund, Reserve};

struct Inventory(InProcess);

impl std::ops::Deref for Inventory {
    type Target = InProcess;

    fn deref(&self) -> &InProcess {
        &self.0
    }
}

impl Inventory {
    async fn new() -> Self {
        Self(InProcess::new(&inventory_service::MIGRATIONS, inventory_service::api::router).await)
    }

    async fn put(&self, sku: &str, body: Value) -> (StatusCode, Value) {
        self.request("PUT", &format!("/api/products/{sku}"), Some(body)).await
    }

    /// (available, reserved) of `sku`.
    async fn stock(&self, sku: &str) -> (i64, i64) {
        let (status, product) = self.request("GET", &format!("/api/products/{sku}"), None).await;
        assert_eq!(status, StatusCode::OK, "{product}");
        (product["available"].as_i64().expect("available"), product["reserved"].as_i64().expect("reserved"))
    }

    async fn reservation_status(&self, order_id: Uuid) -> String {
        sqlx::query_scalar("SELECT status FROM reservations WHERE order_id = $1")
            .bind(order_id.to_string())
            .fetch_one(self.db.pool())
            .await
            .expect("a reservation")
    }
}

fn order(order_id: Uuid, user_id: Uuid, items: &[(&str, u32)]) -> OrderCreated {
    let items = items.iter().map(|(sku, quantity)| OrderItem { sku: (*sku).to_owned(), quantity: *quantity });
    OrderCreated::placed(order_id, user_id, items.collect())
}

#[tokio::test]
async fn a_product_is_put_trimmed_and_read_back_and_a_broken_rule_is_a_422() {
    let inventory = Inventory::new().await;
    let (status, product) =
        inventory.put("KB-1", json!({"name": "  Keyboard ", "priceCents": 4500, "available": 100})).await;
    let expected =
        json!({"sku": "KB-1", "name": "Keyboard", "priceCents": 4500, "available": 100, "reserved": 0});
    assert_eq!((status, &product), (StatusCode::OK, &expected));
    assert_eq!(inventory.request("GET", "/api/products", None).await.1, json!([expected]));

    for (sku, body, field) in [
        ("a%20b", json!({"name": "", "priceCents": -1, "available": -1}), "sku"),
        ("KB-1", json!({"name": " ", "priceCents": 1, "available": 1}), "name"),
        ("KB-1", json!({"name": "K", "priceCents": -1, "available": 1}), "priceCents"),
        ("KB-1", json!({"name": "K", "priceCents": 1, "available": 1_000_000_001}), "available"),
    ] {
        let (status, problem) = inventory.put(sku, body).await;
        assert_eq!((status, &problem["field"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!(field)));
    }
    let (status, problem) = inventory.request("GET", "/api/products/NOPE", None).await;
    assert_eq!((status, &problem["detail"]), (StatusCode::NOT_FOUND, &json!("no product NOPE")));
}

#[tokio::test]
async fn anyone_reads_the_catalogue_and_only_an_admin_changes_it() {
    let inventory = Inventory::new().await;
    let keyboard = json!({"name": "Keyboard", "priceCents": 4500, "available": 100});
    assert_eq!(inventory.put("KB-1", keyboard.clone()).await.0, StatusCode::OK);
    let expected =
        json!({"sku": "KB-1", "name": "Keyboard", "priceCents": 4500, "available": 100, "reserved": 0});
    for uri in ["/api/products", "/api/products/KB-1"] {
        let (status, body) = inventory.request_as(None, "GET", uri, None).await;
        assert_eq!(status, StatusCode::OK, "GET {uri} without a token: {body}");
        let (status, _) =
            inventory.request_as(Some(&testkit::bearer(Uuid::now_v7())), "GET", uri, None).await;
        assert_eq!(status, StatusCode::OK, "GET {uri} as a user");
    }

    let cheaper = json!({"name": "Keyboard", "priceCents": 1, "available": 100});
    let answer = inventory.without_token("PUT", "/api/products/KB-1", cheaper.clone()).await;
    assert_eq!(answer, (StatusCode::UNAUTHORIZED, Some("Bearer".to_owned())));
    let as_user = testkit::bearer(Uuid::now_v7());
    let (status, problem) =
        inventory.request_as(Some(&as_user), "PUT", "/api/products/KB-1", Some(cheaper)).await;
    assert_eq!((status, problem["status"].as_u64()), (StatusCode::FORBIDDEN, Some(403)));
    let new = json!({"name": "Mouse", "priceCents": 1, "available": 1});
    let (status, _) = inventory.request_as(Some(&as_user), "PUT", "/api/products/MOUSE", Some(new)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(inventory.request_as(None, "GET", "/api/products", None).await.1, json!([expected]));
}

#[tokio::test]
async fn an_order_reserves_once_and_is_released_once_however_often_its_events_come() {
    let inventory = Inventory::new().await;
    inventory.put("A", json!({"name": "A", "priceCents": 100, "available": 10})).await;
    inventory.put("B", json!({"name": "B", "priceCents": 250, "available": 5})).await;
    let (order_id, user_id) = (Uuid::now_v7(), Uuid::now_v7());
    for _ in 0..2 {
        inventory.apply(&Reserve, order(order_id, user_id, &[("A", 3), ("B", 1), ("A", 1)])).await;
    }
    assert_eq!((inventory.stock("A").await, inventory.stock("B").await), ((6, 4), (4, 1)));
    assert_eq!(inventory.reservation_status(order_id).await, "RESERVED");

    let failed =
        || PaymentFailed { order_id, user_id, amount_cents: 650, reason: FailureReason::InsufficientFunds };
    for _ in 0..2 {
        inventory.apply(&ReleaseAfterFailedPayment, failed()).await;
    }
    assert_eq!((inventory.stock("A").await, inventory.stock("B").await), ((10, 0), (5, 0)));
    assert_eq!(inventory.reservation_status(order_id).await, "RELEASED");
    let refunded = PaymentRefunded { payment_id: Uuid::now_v7(), order_id, user_id, amount_cents: 650 };
    inventory.apply(&ReleaseAfterRefund, refunded).await;
    assert_eq!(inventory.stock("A").await, (10, 0), "released already");

    // An order the stock cannot cover reserves nothing, and has no reservation to release.
    inventory.apply(&Reserve, order(Uuid::now_v7(), user_id, &[("A", 1), ("B", 6)])).await;
    assert_eq!((inventory.stock("A").await, inventory.stock("B").await), ((10, 0), (5, 0)));
}
