//! Charges, refunds and deposits against a real database (SQLite, or PostgreSQL with
//! `TEST_DATABASE=postgres`), many at once: the balance a decision was made on is the one
//! its write replaces, so money is neither lost nor overdrawn. No Kafka: the handlers'
//! events stay in each database's outbox. Who may see and fill which wallet, and see which
//! payments, through the HTTP API.

use axum::http::StatusCode;
use futures::FutureExt as _;
use futures::future::join_all;
use platform::consumer::{EventMeta, Handler as _, HandlerError};
use serde_json::{Value, json};
use shared_events::{InventoryReserved, OrderCancelRequested, PaymentFailed, UserSignedUp};
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

    /// [`Charge`] applied with `meta` in a transaction of its own, committed only if it
    /// succeeds (as the consumer does).
    async fn charge_with(
        &self,
        meta: &EventMeta,
        order_id: Uuid,
        user_id: Uuid,
        total_cents: i64,
    ) -> Result<(), HandlerError> {
        let reserved = InventoryReserved { order_id, user_id, items: Vec::new(), total_cents };
        let mut tx = self.db.begin_write().await.expect("begin");
        let handled = Charge.handle(reserved, meta, &mut tx).await;
        match handled {
            Ok(()) => tx.commit().await.expect("commit"),
            Err(_) => tx.rollback().await.expect("rollback"),
        }
        handled
    }

    /// How many `PaymentFailed` the outbox holds for `order_id`.
    async fn failures_published(&self, order_id: Uuid) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE message_key = $1 AND event_type = $2")
            .bind(order_id.to_string())
            .bind(<PaymentFailed as shared_events::Event>::TYPE)
            .fetch_one(self.db.pool())
            .await
            .expect("count the outbox")
    }

    /// Payment ids of `GET uri` as `authorization`, or the problem's status.
    async fn payments_as(&self, authorization: &str, uri: &str) -> Result<Vec<Value>, StatusCode> {
        match self.request_as(Some(authorization), "GET", uri, None).await {
            (StatusCode::OK, payments) => Ok(payments.as_array().expect("a list").clone()),
            (status, _) => Err(status),
        }
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
    let last = EventMeta { last_attempt: true, ..testkit::event_meta() };
    wallets.charge_with(&last, stranger, Uuid::now_v7(), 1).await.expect("refused on the last attempt");
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

#[tokio::test]
async fn a_charge_waits_for_the_wallet_until_the_last_attempt_and_then_fails_with_no_wallet() {
    let wallets = Wallets::new().await;
    let (early, late) = (Uuid::now_v7(), Uuid::now_v7());
    let (order_id, other_order) = (Uuid::now_v7(), Uuid::now_v7());

    // The order came before the user's wallet: try again later, and change nothing now.
    let waited = wallets.charge_with(&testkit::event_meta(), order_id, early, 400).await;
    assert!(matches!(waited, Err(HandlerError::Transient(_))), "{waited:?}");
    assert!(wallets.payments(Some(order_id)).await.is_empty());
    assert_eq!(wallets.failures_published(order_id).await, 0);

    // The wallet opens meanwhile: the retry charges it.
    let signed_up =
        UserSignedUp { user_id: early, email: "eve@example.com".to_owned(), name: "Eve".to_owned() };
    wallets.apply(&OpenWallet { initial_cents: 1_000 }, signed_up).await;
    let retry = EventMeta { attempt: 2, ..testkit::event_meta() };
    wallets.charge_with(&retry, order_id, early, 400).await.expect("charged on the retry");
    assert_eq!(wallets.payments(Some(order_id)).await[0]["status"], "COMPLETED");
    assert_eq!(wallets.balance(early).await, 600);

    // A wallet that never comes: the last attempt decides, and says so to the saga.
    let last = EventMeta { attempt: 5, last_attempt: true, ..testkit::event_meta() };
    wallets.charge_with(&last, other_order, late, 400).await.expect("refused on the last attempt");
    let payments = wallets.payments(Some(other_order)).await;
    assert_eq!((&payments[0]["status"], &payments[0]["reason"]), (&json!("FAILED"), &json!("NO_WALLET")));
    assert_eq!(wallets.failures_published(other_order).await, 1);
}

#[tokio::test]
async fn every_payment_route_needs_a_token_and_without_one_is_a_401_with_a_bearer_challenge() {
    let wallets = Wallets::new().await;
    let user_id = wallets.user(1_000).await;
    for (method, uri) in [
        ("GET", format!("/api/wallets/{user_id}")),
        ("POST", format!("/api/wallets/{user_id}/deposit")),
        ("GET", "/api/payments".to_owned()),
    ] {
        let answer = wallets.without_token(method, &uri, json!({"amountCents": 1})).await;
        assert_eq!(answer, (StatusCode::UNAUTHORIZED, Some("Bearer".to_owned())), "{method} {uri}");
    }
    assert_eq!(wallets.balance(user_id).await, 1_000);
}

#[tokio::test]
async fn another_users_wallet_is_not_found_to_read_or_to_fill() {
    let wallets = Wallets::new().await;
    let (ada, bob) = (wallets.user(1_000).await, wallets.user(2_000).await);
    let as_ada = testkit::bearer(ada);
    let missing = Uuid::now_v7();
    for user_id in [bob, missing] {
        // The same answer as for a wallet never opened, and before the amount is checked.
        let expected = (StatusCode::NOT_FOUND, Some(format!("no wallet {user_id}")));
        let read = wallets.request_as(Some(&as_ada), "GET", &format!("/api/wallets/{user_id}"), None).await;
        assert_eq!((read.0, read.1["detail"].as_str().map(str::to_owned)), expected);
        for cents in [500, 0] {
            let uri = format!("/api/wallets/{user_id}/deposit");
            let filled =
                wallets.request_as(Some(&as_ada), "POST", &uri, Some(json!({"amountCents": cents}))).await;
            assert_eq!((filled.0, filled.1["detail"].as_str().map(str::to_owned)), expected.clone());
        }
    }
    assert_eq!(wallets.balance(bob).await, 2_000);

    let (status, wallet) =
        wallets.request_as(Some(&as_ada), "GET", &format!("/api/wallets/{ada}"), None).await;
    assert_eq!((status, wallet), (StatusCode::OK, json!({"userId": ada, "balanceCents": 1_000})));
    let uri = format!("/api/wallets/{ada}/deposit");
    let (status, wallet) =
        wallets.request_as(Some(&as_ada), "POST", &uri, Some(json!({"amountCents": 5}))).await;
    assert_eq!((status, wallet), (StatusCode::OK, json!({"userId": ada, "balanceCents": 1_005})));
}

#[tokio::test]
async fn a_users_payments_are_their_own_and_an_admin_lists_everyones() {
    let wallets = Wallets::new().await;
    let (ada, bob) = (wallets.user(1_000).await, wallets.user(1_000).await);
    let (adas, bobs) = ([Uuid::now_v7(), Uuid::now_v7()], Uuid::now_v7());
    for order_id in adas {
        wallets.charge(order_id, ada, 100).await;
    }
    wallets.charge(bobs, bob, 100).await;
    let order_ids = |payments: Vec<Value>| -> Vec<Value> {
        let mut ids: Vec<Value> = payments.into_iter().map(|p| p["orderId"].clone()).collect();
        ids.sort_by_key(|id| id.to_string());
        ids
    };
    let as_ada = testkit::bearer(ada);

    let mut adas_ids = vec![json!(adas[0]), json!(adas[1])];
    adas_ids.sort_by_key(|id| id.to_string());
    assert_eq!(wallets.payments_as(&as_ada, "/api/payments").await.map(order_ids), Ok(adas_ids.clone()));
    let own = format!("/api/payments?userId={ada}");
    assert_eq!(wallets.payments_as(&as_ada, &own).await.map(order_ids), Ok(adas_ids));
    let theirs = format!("/api/payments?userId={bob}");
    assert_eq!(wallets.payments_as(&as_ada, &theirs).await, Err(StatusCode::FORBIDDEN));
    let their_order = format!("/api/payments?orderId={bobs}");
    assert_eq!(wallets.payments_as(&as_ada, &their_order).await, Ok(Vec::new()), "not among ada's");

    let admin = testkit::admin_bearer();
    assert_eq!(wallets.payments_as(&admin, "/api/payments").await.map(|p| p.len()), Ok(3));
    assert_eq!(wallets.payments_as(&admin, &theirs).await.map(order_ids), Ok(vec![json!(bobs)]));
    assert_eq!(wallets.payments_as(&admin, &their_order).await.map(|p| p.len()), Ok(1));
}

#[tokio::test]
async fn a_cancel_naming_another_user_than_the_payer_is_refused_and_moves_nothing() {
    let wallets = Wallets::new().await;
    let (payer, other) = (wallets.user(1_000).await, wallets.user(1_000).await);
    let order_id = Uuid::now_v7();
    wallets.charge(order_id, payer, 300).await;

    let mut tx = wallets.db.begin_write().await.expect("begin");
    let refused = Refund
        .handle(OrderCancelRequested { order_id, user_id: other }, &testkit::event_meta(), &mut tx)
        .await
        .expect_err("refused");
    tx.rollback().await.expect("rollback");
    assert!(matches!(refused, HandlerError::Permanent(_)), "{refused:?}");
    assert!(causes(&refused).contains(&format!("paid by user {payer}, not by {other}")), "{refused:?}");
    assert_eq!((wallets.balance(payer).await, wallets.balance(other).await), (700, 1_000));
    assert_eq!(wallets.payments(Some(order_id)).await[0]["status"], "COMPLETED");
}

/// The error's causes, as one line.
fn causes(error: &HandlerError) -> String {
    let (HandlerError::Permanent(cause) | HandlerError::Transient(cause)) = error;
    format!("{cause:#}")
}
