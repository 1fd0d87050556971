//! Who may do what with orders, through the HTTP API against a real database (SQLite, or
//! PostgreSQL with `TEST_DATABASE=postgres`): a user places, reads, lists and cancels only
//! their own orders, an admin anyone's. No Kafka: the events stay in the outbox.

use axum::http::StatusCode;
use serde_json::{Value, json};
use shared_events::{OrderCancelRequested, OrderCreated, PaymentCompleted};
use testkit::InProcess;
use uuid::Uuid;

use order_service::handlers::Confirm;

struct Orders(InProcess);

impl std::ops::Deref for Orders {
    type Target = InProcess;

    fn deref(&self) -> &InProcess {
        &self.0
    }
}

impl Orders {
    async fn new() -> Self {
        Self(InProcess::new(&order_service::MIGRATIONS, order_service::api::router).await)
    }

    /// `POST /api/orders` for `user_id` with the token `authorization`.
    async fn place_as(&self, authorization: &str, user_id: Uuid) -> (StatusCode, Value) {
        let body = json!({"userId": user_id, "items": [{"sku": "BOOK", "quantity": 1}]});
        self.request_as(Some(authorization), "POST", "/api/orders", Some(body)).await
    }

    /// A new order of `user_id`'s, placed by them.
    async fn order_of(&self, user_id: Uuid) -> Uuid {
        let (status, order) = self.place_as(&testkit::bearer(user_id), user_id).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{order}");
        order["id"].as_str().expect("id").parse().expect("a UUID")
    }

    /// The order as its owner's admin sees it.
    async fn order(&self, order_id: Uuid) -> Value {
        let (status, order) = self.request("GET", &format!("/api/orders/{order_id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{order}");
        order
    }

    /// Order ids of `GET uri` as `authorization`, or the problem's status.
    async fn list_as(&self, authorization: &str, uri: &str) -> Result<Vec<Value>, StatusCode> {
        match self.request_as(Some(authorization), "GET", uri, None).await {
            (StatusCode::OK, orders) => Ok(orders.as_array().expect("a list").clone()),
            (status, _) => Err(status),
        }
    }

    /// How many events of type `E` the outbox holds for `order_id`.
    async fn published<E: shared_events::Event>(&self, order_id: Uuid) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE message_key = $1 AND event_type = $2")
            .bind(order_id.to_string())
            .bind(E::TYPE)
            .fetch_one(self.db.pool())
            .await
            .expect("count the outbox")
    }
}

fn ids(orders: &[Value]) -> Vec<&str> {
    let mut ids: Vec<&str> = orders.iter().map(|o| o["id"].as_str().expect("id")).collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn every_order_route_needs_a_token_and_without_one_is_a_401_with_a_bearer_challenge() {
    let orders = Orders::new().await;
    let order_id = orders.order_of(Uuid::now_v7()).await;
    for (method, uri) in [
        ("POST", "/api/orders".to_owned()),
        ("GET", "/api/orders".to_owned()),
        ("GET", format!("/api/orders/{order_id}")),
        ("POST", format!("/api/orders/{order_id}/cancel")),
    ] {
        let answer = orders.without_token(method, &uri, json!({"userId": Uuid::now_v7(), "items": []})).await;
        assert_eq!(answer, (StatusCode::UNAUTHORIZED, Some("Bearer".to_owned())), "{method} {uri}");
        let tampered = format!("{}x", testkit::bearer(Uuid::now_v7()));
        let (status, problem) = orders.request_as(Some(&tampered), method, &uri, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri} with a tampered token: {problem}");
    }
    assert_eq!(orders.order(order_id).await["status"], "PENDING");
}

#[tokio::test]
async fn a_user_orders_only_for_themselves_and_an_admin_for_anyone() {
    let orders = Orders::new().await;
    let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let (status, problem) = orders.place_as(&testkit::bearer(ada), bob).await;
    assert_eq!((status, problem["status"].as_u64()), (StatusCode::FORBIDDEN, Some(403)));
    assert_eq!(orders.list_as(&testkit::admin_bearer(), "/api/orders").await, Ok(Vec::new()));

    let (status, order) = orders.place_as(&testkit::admin_bearer(), bob).await;
    assert_eq!((status, &order["userId"]), (StatusCode::ACCEPTED, &json!(bob)));
    let order_id: Uuid = order["id"].as_str().expect("id").parse().expect("a UUID");
    assert_eq!(orders.published::<OrderCreated>(order_id).await, 1);
    let (status, _) = orders.place_as(&testkit::bearer(ada), ada).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn another_users_order_is_not_found_to_read_or_to_cancel_and_does_not_move() {
    let orders = Orders::new().await;
    let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let (pending, confirmed) = (orders.order_of(bob).await, orders.order_of(bob).await);
    let paid = PaymentCompleted {
        payment_id: Uuid::now_v7(),
        order_id: confirmed,
        user_id: bob,
        amount_cents: 2500,
    };
    orders.apply(&Confirm, paid).await;
    let as_ada = testkit::bearer(ada);

    let missing = Uuid::now_v7();
    for order_id in [pending, confirmed, missing] {
        for (method, uri) in
            [("GET", format!("/api/orders/{order_id}")), ("POST", format!("/api/orders/{order_id}/cancel"))]
        {
            // The same answer as for an order that does not exist, whatever its status:
            // a PENDING order's cancel would otherwise be a 409 that gives it away.
            let (status, problem) = orders.request_as(Some(&as_ada), method, &uri, None).await;
            assert_eq!(
                (status, problem["detail"].as_str()),
                (StatusCode::NOT_FOUND, Some(&*format!("no order {order_id}"))),
                "{method} {uri}"
            );
        }
    }
    assert_eq!(orders.order(pending).await["status"], "PENDING");
    assert_eq!(orders.order(confirmed).await["status"], "CONFIRMED");
    assert_eq!(orders.published::<OrderCancelRequested>(confirmed).await, 0);

    let as_bob = testkit::bearer(bob);
    let (status, order) =
        orders.request_as(Some(&as_bob), "GET", &format!("/api/orders/{confirmed}"), None).await;
    assert_eq!((status, &order["status"]), (StatusCode::OK, &json!("CONFIRMED")));
    let cancel = format!("/api/orders/{confirmed}/cancel");
    let (status, order) = orders.request_as(Some(&as_bob), "POST", &cancel, None).await;
    assert_eq!((status, &order["status"]), (StatusCode::ACCEPTED, &json!("CANCELLING")));
    assert_eq!(orders.published::<OrderCancelRequested>(confirmed).await, 1);
    let (status, _) =
        orders.request_as(Some(&as_bob), "POST", &format!("/api/orders/{pending}/cancel"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "their own PENDING order says why it cannot be cancelled");
}

#[tokio::test]
async fn a_users_list_holds_only_their_own_orders_and_an_admin_lists_everyones() {
    let orders = Orders::new().await;
    let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let mut adas = [orders.order_of(ada).await.to_string(), orders.order_of(ada).await.to_string()];
    adas.sort_unstable();
    let bobs = orders.order_of(bob).await.to_string();
    let as_ada = testkit::bearer(ada);

    let own = orders.list_as(&as_ada, "/api/orders").await.expect("ada's orders");
    assert_eq!(ids(&own), adas.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(own.iter().all(|order| order["userId"] == json!(ada)));
    let filtered = orders.list_as(&as_ada, &format!("/api/orders?userId={ada}&status=PENDING")).await;
    assert_eq!(filtered.as_deref().map(ids), Ok(ids(&own)));
    assert_eq!(
        orders.list_as(&as_ada, &format!("/api/orders?userId={bob}")).await,
        Err(StatusCode::FORBIDDEN)
    );
    assert_eq!(orders.list_as(&as_ada, "/api/orders?userId=nobody").await, Ok(Vec::new()));

    let admin = testkit::admin_bearer();
    let everyone = orders.list_as(&admin, "/api/orders").await.expect("every order");
    let mut all = vec![adas[0].as_str(), adas[1].as_str(), bobs.as_str()];
    all.sort_unstable();
    assert_eq!(ids(&everyone), all);
    let bobs_only = orders.list_as(&admin, &format!("/api/orders?userId={bob}")).await.expect("bob's");
    assert_eq!(ids(&bobs_only), [bobs.as_str()]);
}
