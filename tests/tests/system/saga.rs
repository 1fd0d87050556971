//! The order saga across inventory, payment, order and notification services on one set
//! of topics. Every test ends by checking the contract's invariants.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::topic_prefix;

use crate::helpers::{ALL, Running, spawn_with};

const INITIAL_BALANCE: i64 = 100_000;

/// Sagas at once in this test binary: each brings five services and their topics up, and
/// a one-broker cluster on two cores creates a few hundred topics at a time at best.
static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(3);

/// Every service of the saga, sharing a fresh topic prefix.
pub struct Saga {
    _slot: tokio::sync::SemaphorePermit<'static>,
    prefix: String,
    users: Running,
    orders: Running,
    inventory: Running,
    payments: Running,
    notifications: Running,
    /// The tests' admin view; users act with their own tokens.
    client: reqwest::Client,
    /// Each signed-up user's bearer token, from signing in.
    tokens: std::sync::Mutex<HashMap<String, String>>,
    /// Stock given to each product by PUT, for the stock invariant.
    stock: HashMap<String, i64>,
    /// Deposits made per user.
    deposits: HashMap<String, i64>,
}

impl Saga {
    /// The topic prefix its services share.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub async fn start() -> Self {
        let slot = SLOTS.acquire().await.expect("the semaphore is never closed");
        let prefix = topic_prefix();
        let mut running = Vec::new();
        for service in [ALL[1], ALL[2], ALL[3], ALL[4], ALL[5]] {
            let prefix = prefix.clone();
            running.push(
                spawn_with(service, move |spec, config| {
                    config.kafka.topic_prefix = prefix;
                    // A charge waits this long for a wallet that is about to open (50 ms
                    // doubling, 8 attempts: about 6 s) before it is NO_WALLET, so a busy
                    // machine does not turn a fresh user's first order into a failure.
                    if spec.defaults.name == "payment-service" {
                        config.retry.max_attempts = 8;
                    }
                })
                .await,
            );
        }
        let mut running = running.into_iter();
        let mut next = || running.next().expect("five services");
        Self {
            _slot: slot,
            prefix: prefix.clone(),
            users: next(),
            orders: next(),
            inventory: next(),
            payments: next(),
            notifications: next(),
            client: crate::helpers::admin_client(),
            tokens: std::sync::Mutex::new(HashMap::new()),
            stock: HashMap::new(),
            deposits: HashMap::new(),
        }
    }

    async fn get(&self, service: &Running, path: &str) -> (u16, Value) {
        let response =
            self.client.get(format!("{}{path}", service.service.base_url)).send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn send(
        &self,
        service: &Running,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", service.service.base_url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Signs a user up and in, and waits until its wallet is open.
    pub async fn user(&self) -> String {
        let id = self.user_now().await;
        self.eventually("the wallet opened", || async {
            self.get(&self.payments, &format!("/api/wallets/{id}")).await.0 == 200
        })
        .await;
        id
    }

    /// Signs a user up and in, at once: the wallet may not be open yet.
    pub async fn user_now(&self) -> String {
        let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
        let body = json!({"email": email, "name": "Shopper", "password": "password-1"});
        let (status, user) = self.send(&self.users, reqwest::Method::POST, "/api/users", Some(body)).await;
        assert_eq!(status, 201, "{user}");
        let id = user["id"].as_str().expect("id").to_owned();
        let token = crate::helpers::sign_in(&self.users.service.base_url, &email, "password-1").await;
        self.tokens.lock().expect("not poisoned").insert(id.clone(), token);
        id
    }

    pub async fn product(&mut self, sku: &str, price_cents: i64, available: i64) {
        let body =
            json!({"name": format!("Product {sku}"), "priceCents": price_cents, "available": available});
        let (status, product) = self
            .send(&self.inventory, reqwest::Method::PUT, &format!("/api/products/{sku}"), Some(body))
            .await;
        assert_eq!(status, 200, "{product}");
        self.stock.insert(sku.to_owned(), available);
    }

    pub async fn order(&self, user_id: &str, items: Value) -> String {
        let (status, order) = self.place(user_id, items, None).await;
        assert_eq!(status, 202, "{order}");
        order["id"].as_str().expect("id").to_owned()
    }

    pub async fn place(&self, user_id: &str, items: Value, key: Option<&str>) -> (u16, Value) {
        let mut request = self
            .as_user(user_id, self.client.post(format!("{}/api/orders", self.orders.service.base_url)))
            .json(&json!({"userId": user_id, "items": items}));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.expect("POST /api/orders");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json"))
    }

    /// Waits until the order is CONFIRMED or CANCELLED, and returns it.
    pub async fn terminal(&self, order_id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (_, order) = self.get(&self.orders, &format!("/api/orders/{order_id}")).await;
            if order["status"] == "CONFIRMED" || order["status"] == "CANCELLED" {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {order_id} still {} after 60 s",
                order["status"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn payments_of(&self, order_id: &str) -> Vec<Value> {
        self.get(&self.payments, &format!("/api/payments?orderId={order_id}"))
            .await
            .1
            .as_array()
            .expect("array")
            .clone()
    }

    pub async fn balance(&self, user_id: &str) -> i64 {
        self.get(&self.payments, &format!("/api/wallets/{user_id}")).await.1["balanceCents"]
            .as_i64()
            .expect("balance")
    }

    pub async fn stock_of(&self, sku: &str) -> (i64, i64) {
        let (_, product) = self.get(&self.inventory, &format!("/api/products/{sku}")).await;
        (product["available"].as_i64().expect("available"), product["reserved"].as_i64().expect("reserved"))
    }

    /// The user of the order cancels it, with their own token.
    pub async fn cancel(&self, order_id: &str) -> (u16, Value) {
        let (_, order) = self.get(&self.orders, &format!("/api/orders/{order_id}")).await;
        let user_id = order["userId"].as_str().unwrap_or_default();
        let url = format!("{}/api/orders/{order_id}/cancel", self.orders.service.base_url);
        let response = self.as_user(user_id, self.client.post(url)).send().await.expect("POST cancel");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `request` with the token of `user_id` when the user signed in here (the admin's
    /// otherwise: a user who never signed up cannot act for themselves).
    fn as_user(&self, user_id: &str, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.tokens.lock().expect("not poisoned").get(user_id) {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn deposit(&mut self, user_id: &str, cents: i64) {
        let (status, _) = self
            .send(
                &self.payments,
                reqwest::Method::POST,
                &format!("/api/wallets/{user_id}/deposit"),
                Some(json!({"amountCents": cents})),
            )
            .await;
        assert_eq!(status, 200);
        *self.deposits.entry(user_id.to_owned()).or_default() += cents;
    }

    async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !check().await {
            assert!(tokio::time::Instant::now() < deadline, "not within 60 s: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The contract's invariants at rest, as the `check-invariants` command checks them
    /// (every service's database read directly), once every order is terminal; and the
    /// checker saw what this test did.
    pub async fn check_invariants(&self) {
        let (_, orders) = self.get(&self.orders, "/api/orders?limit=500").await;
        let orders = orders.as_array().expect("orders").clone();
        for order in &orders {
            self.terminal(order["id"].as_str().expect("id")).await;
        }
        let databases = invariants::Databases {
            user: self.users.database_url().to_owned(),
            order: self.orders.database_url().to_owned(),
            inventory: self.inventory.database_url().to_owned(),
            payment: self.payments.database_url().to_owned(),
            notification: self.notifications.database_url().to_owned(),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let snapshot = loop {
            let snapshot = invariants::read(&databases).await.expect("every database readable");
            let violations = invariants::check(&snapshot);
            if violations.is_empty() {
                break snapshot;
            }
            let listed: Vec<String> = violations.iter().map(ToString::to_string).collect();
            assert!(
                tokio::time::Instant::now() < deadline,
                "invariants broken after 60 s:\n{}",
                listed.join("\n")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(snapshot.orders.len(), orders.len(), "the checker read every order");
        for (sku, initial) in &self.stock {
            let product = snapshot.products.iter().find(|p| &p.sku == sku).expect("product read");
            assert_eq!(product.stocked, *initial, "{sku}: the stock the test put");
        }
        for (user, cents) in &self.deposits {
            assert_eq!(snapshot.deposits.get(user), Some(cents), "{user}: the deposits the test made");
        }
    }
}

/// An order's status and failure reason.
fn outcome(order: &Value) -> (Option<&str>, Option<&str>) {
    (order["status"].as_str(), order["failureReason"].as_str())
}

/// The statuses an order went through, oldest first.
fn history(order: &Value) -> Vec<&str> {
    order["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["status"].as_str().expect("status"))
        .collect()
}

#[tokio::test]
async fn a_paid_order_is_confirmed_with_one_payment_its_stock_reserved_and_one_email() {
    let mut saga = Saga::start().await;
    saga.product("BOOK", 2500, 10).await;
    let user = saga.user().await;
    let id = saga.order(&user, json!([{"sku": "BOOK", "quantity": 2}, {"sku": "BOOK", "quantity": 1}])).await;
    let order = saga.terminal(&id).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(order["totalCents"], 7500);
    assert_eq!(order["failureReason"], Value::Null);
    let steps = history(&order);
    assert_eq!(steps, ["PENDING", "CONFIRMED"]);
    assert_eq!(saga.stock_of("BOOK").await, (7, 3));
    assert_eq!(saga.balance(&user).await, INITIAL_BALANCE - 7500);
    saga.check_invariants().await;
}

#[tokio::test]
async fn an_unknown_sku_or_missing_stock_cancels_without_a_payment() {
    let mut saga = Saga::start().await;
    saga.product("LAMP", 1000, 1).await;
    let user = saga.user().await;
    let unknown = saga.order(&user, json!([{"sku": "NOPE", "quantity": 1}])).await;
    let short = saga.order(&user, json!([{"sku": "LAMP", "quantity": 2}])).await;
    let unknown = saga.terminal(&unknown).await;
    let short = saga.terminal(&short).await;
    assert_eq!(outcome(&unknown), (Some("CANCELLED"), Some("UNKNOWN_SKU")));
    assert_eq!(outcome(&short), (Some("CANCELLED"), Some("OUT_OF_STOCK")));
    for order in [&unknown, &short] {
        assert!(saga.payments_of(order["id"].as_str().expect("id")).await.is_empty());
    }
    assert_eq!(saga.stock_of("LAMP").await, (1, 0));
    saga.check_invariants().await;
}

#[tokio::test]
async fn a_failed_payment_releases_the_stock_and_cancels_the_order() {
    let mut saga = Saga::start().await;
    saga.product("CAR", 90_000, 5).await;
    let user = saga.user().await;
    let id = saga.order(&user, json!([{"sku": "CAR", "quantity": 2}])).await;
    let order = saga.terminal(&id).await;
    assert_eq!(outcome(&order), (Some("CANCELLED"), Some("INSUFFICIENT_FUNDS")));
    let payments = saga.payments_of(&id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(
        (payments[0]["status"].as_str(), payments[0]["reason"].as_str()),
        (Some("FAILED"), Some("INSUFFICIENT_FUNDS"))
    );
    assert_eq!(saga.stock_of("CAR").await, (5, 0), "compensated: the reservation was released");
    assert_eq!(saga.balance(&user).await, INITIAL_BALANCE);
    saga.check_invariants().await;
}

#[tokio::test]
async fn an_order_of_a_user_without_a_wallet_is_cancelled_with_no_wallet() {
    let mut saga = Saga::start().await;
    saga.product("PEN", 100, 5).await;
    let stranger = uuid::Uuid::new_v4().to_string();
    let id = saga.order(&stranger, json!([{"sku": "PEN", "quantity": 1}])).await;
    let order = saga.terminal(&id).await;
    assert_eq!(outcome(&order), (Some("CANCELLED"), Some("NO_WALLET")));
    assert_eq!(saga.stock_of("PEN").await, (5, 0));
    let payments = saga.payments_of(&id).await;
    assert_eq!((payments.len(), payments[0]["status"].as_str()), (1, Some("FAILED")));
    // A user who never signed up has no address: the checker expects no mail for this order.
    saga.check_invariants().await;
}

#[tokio::test]
async fn an_order_placed_the_moment_a_user_signed_up_waits_for_the_wallet_and_confirms() {
    let mut saga = Saga::start().await;
    saga.product("FAST", 100, 5).await;
    // Sign up, sign in and order at once: payment-service may not have opened the wallet
    // yet; the charge waits for it (retried) instead of failing with NO_WALLET.
    let user = saga.user_now().await;
    let id = saga.order(&user, json!([{"sku": "FAST", "quantity": 1}])).await;
    assert_eq!(outcome(&saga.terminal(&id).await), (Some("CONFIRMED"), None));
    saga.check_invariants().await;
}

#[tokio::test]
async fn a_cancel_after_confirm_refunds_releases_and_cancels() {
    let mut saga = Saga::start().await;
    saga.product("TV", 30_000, 3).await;
    let user = saga.user().await;
    saga.deposit(&user, 5_000).await;
    let id = saga.order(&user, json!([{"sku": "TV", "quantity": 1}])).await;
    assert_eq!(saga.terminal(&id).await["status"], "CONFIRMED");
    let (status, cancelling) = saga.cancel(&id).await;
    assert_eq!(status, 202, "{cancelling}");
    assert_eq!(cancelling["status"], "CANCELLING");
    let order = saga.terminal(&id).await;
    assert_eq!(outcome(&order), (Some("CANCELLED"), Some("CANCELLED_BY_USER")));
    let steps = history(&order);
    assert_eq!(steps, ["PENDING", "CONFIRMED", "CANCELLING", "CANCELLED"]);
    let payments = saga.payments_of(&id).await;
    assert_eq!(payments[0]["status"], "REFUNDED");
    assert_eq!(saga.balance(&user).await, INITIAL_BALANCE + 5_000);
    assert_eq!(saga.stock_of("TV").await, (3, 0));
    let (again, problem) = saga.cancel(&id).await;
    assert_eq!(again, 409, "{problem}");
    saga.check_invariants().await;
}

#[tokio::test]
async fn two_hundred_concurrent_orders_for_a_hundred_units_confirm_exactly_a_hundred() {
    let mut saga = Saga::start().await;
    saga.product("GPU", 100, 100).await;
    let user = saga.user().await;
    let placed = futures::future::join_all(
        (0..200).map(|_| saga.place(&user, json!([{"sku": "GPU", "quantity": 1}]), None)),
    )
    .await;
    let mut confirmed = 0;
    for (status, order) in placed {
        assert_eq!(status, 202);
        let order = saga.terminal(order["id"].as_str().expect("id")).await;
        if order["status"] == "CONFIRMED" {
            confirmed += 1;
        } else {
            assert_eq!(order["failureReason"], "OUT_OF_STOCK");
        }
    }
    assert_eq!(confirmed, 100);
    assert_eq!(saga.stock_of("GPU").await, (0, 100));
    saga.check_invariants().await;
}

#[tokio::test]
async fn a_post_repeated_with_one_idempotency_key_places_one_order() {
    let mut saga = Saga::start().await;
    saga.product("MUG", 500, 10).await;
    let user = saga.user().await;
    let items = json!([{"sku": "MUG", "quantity": 1}]);
    let (first_status, first) = saga.place(&user, items.clone(), Some("checkout-7")).await;
    let (again_status, again) = saga.place(&user, items.clone(), Some("checkout-7")).await;
    assert_eq!((first_status, again_status), (202, 202));
    assert_eq!(first["id"], again["id"]);
    let (other, problem) =
        saga.place(&user, json!([{"sku": "MUG", "quantity": 2}]), Some("checkout-7")).await;
    assert_eq!(other, 422, "{problem}");
    saga.terminal(first["id"].as_str().expect("id")).await;
    let (_, orders) = saga.get(&saga.orders, &format!("/api/orders?userId={user}")).await;
    assert_eq!(orders.as_array().expect("orders").len(), 1);
    saga.check_invariants().await;
}

#[tokio::test]
async fn order_created_delivered_twice_reserves_once() {
    let mut saga = Saga::start().await;
    saga.product("DUP", 100, 10).await;
    let user = saga.user().await;
    let id = saga.order(&user, json!([{"sku": "DUP", "quantity": 4}])).await;
    assert_eq!(saga.terminal(&id).await["status"], "CONFIRMED");

    let topic = format!("{}order.created", saga.prefix);
    crate::helpers::redeliver(&topic, &id).await;

    let duplicates = format!("events_handled_total{{topic=\"{topic}\",outcome=\"duplicate\"}}");
    saga.eventually("the copy consumed as a duplicate", || async {
        let metrics = reqwest::get(format!("{}/metrics", saga.inventory.service.base_url))
            .await
            .expect("GET")
            .text()
            .await
            .expect("text");
        metrics.lines().any(|l| l.starts_with(&duplicates))
    })
    .await;
    assert_eq!(saga.stock_of("DUP").await, (6, 4), "reserved once");
    assert_eq!(saga.payments_of(&id).await.len(), 1);
    saga.check_invariants().await;
}

#[tokio::test]
async fn an_order_created_v1_left_from_before_the_upgrade_is_reserved_like_a_v2() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::FutureRecord;

    let mut saga = Saga::start().await;
    saga.product("OLD-BOOK", 2500, 10).await;
    let user = saga.user().await;
    // As order-service wrote it before v2: no currency, no channel, type v1.
    let order_id = uuid::Uuid::new_v4().to_string();
    let v1 = json!({"orderId": order_id, "userId": user, "items": [{"sku": "OLD-BOOK", "quantity": 2}]});
    let event_id = uuid::Uuid::new_v4().to_string();
    let headers = OwnedHeaders::new()
        .insert(Header { key: "ce_id", value: Some(&event_id) })
        .insert(Header { key: "ce_type", value: Some("order.created.v1") })
        .insert(Header { key: "ce_source", value: Some("order-service") });
    let producer: platform::kafka::CountedProducer =
        platform::kafka::producer(&testkit::kafka_config(), "v1-test").expect("a producer");
    let topic = format!("{}order.created", saga.prefix());
    let payload = v1.to_string();
    let record = FutureRecord::to(&topic).key(&order_id).payload(&payload).headers(headers);
    producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e).expect("produced");
    // And a v2 from today's order-service beside it, for the same steps.
    let v2 = saga.order(&user, json!([{"sku": "OLD-BOOK", "quantity": 1}])).await;
    assert_eq!(saga.terminal(&v2).await["status"], "CONFIRMED");
    saga.eventually("both reserved: 2 by the v1 event, 1 by the v2", || async {
        saga.stock_of("OLD-BOOK").await == (7, 3)
    })
    .await;
    // The v1 order was charged too (order-service never had it: no invariant check here).
    saga.eventually("the v1 order paid", || async { saga.payments_of(&order_id).await.len() == 1 }).await;
}
