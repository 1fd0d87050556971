//! HTTP handlers of wallets and payments.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json as AxumJson, Router};
use platform::clock::now_ms;
use platform::db::Db;
use platform::extract::Json;
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::{self, Payment};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(wallet, deposit, payments), tags((name = "payments", description = "Wallets and payments")))]
pub struct ApiDoc;

/// The routes of `/api/wallets` and `/api/payments`.
pub fn router(db: Db) -> Router {
    Router::new()
        .route("/api/wallets/{user_id}", get(wallet))
        .route("/api/wallets/{user_id}/deposit", post(deposit))
        .route("/api/payments", get(payments))
        .with_state(db)
}

fn internal(error: sqlx::Error) -> Problem {
    Problem::internal(&error)
}

/// A wallet as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct WalletView {
    user_id: String,
    balance_cents: i64,
}

fn user_id(raw: &str) -> Result<String, Problem> {
    raw.parse::<Uuid>().map(|id| id.to_string()).map_err(|_| Problem::not_found(format!("no wallet {raw}")))
}

/// A user's wallet (opened when the user signed up).
#[utoipa::path(get, path = "/api/wallets/{userId}", tag = "payments", params(("userId" = Uuid, Path)),
    responses((status = 200, description = "OK", body = WalletView), (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json")))]
async fn wallet(State(db): State<Db>, Path(raw): Path<String>) -> Result<AxumJson<WalletView>, Problem> {
    let user_id = user_id(&raw)?;
    let mut conn = db.pool().acquire().await.map_err(internal)?;
    let balance = store::balance(&mut conn, &user_id).await.map_err(internal)?;
    let balance_cents = balance.ok_or_else(|| Problem::not_found(format!("no wallet {user_id}")))?;
    Ok(AxumJson(WalletView { user_id, balance_cents }))
}

/// `POST /api/wallets/{userId}/deposit` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"amountCents": 5000}))]
struct Deposit {
    amount_cents: i64,
}

/// Adds money to a wallet.
#[utoipa::path(post, path = "/api/wallets/{userId}/deposit", tag = "payments", request_body = Deposit,
    params(("userId" = Uuid, Path)),
    responses((status = 200, description = "OK", body = WalletView),
        (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "amountCents outside 1..=100000000", body = Problem, content_type = "application/problem+json")))]
async fn deposit(
    State(db): State<Db>,
    Path(raw): Path<String>,
    Json(body): Json<Deposit>,
) -> Result<AxumJson<WalletView>, Problem> {
    let user_id = user_id(&raw)?;
    if !(1..=100_000_000).contains(&body.amount_cents) {
        return Err(Problem::invalid("amountCents", "must be from 1 to 100000000"));
    }
    let mut tx = db.begin_write().await.map_err(internal)?;
    if store::lock_balance(&mut tx, &user_id).await.map_err(internal)?.is_none() {
        return Err(Problem::not_found(format!("no wallet {user_id}")));
    }
    store::add_to_balance(&mut tx, &user_id, body.amount_cents).await.map_err(internal)?;
    store::insert_deposit(&mut tx, &Uuid::now_v7().to_string(), &user_id, body.amount_cents, now_ms())
        .await
        .map_err(internal)?;
    let balance_cents = store::lock_balance(&mut tx, &user_id).await.map_err(internal)?.unwrap_or_default();
    tx.commit().await.map_err(internal)?;
    Ok(AxumJson(WalletView { user_id, balance_cents }))
}

/// `GET /api/payments` filter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct PaymentsQuery {
    order_id: Option<String>,
}

/// A payment as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct PaymentView {
    id: String,
    order_id: String,
    user_id: String,
    amount_cents: i64,
    status: String,
    reason: Option<String>,
}

impl From<Payment> for PaymentView {
    fn from(p: Payment) -> Self {
        Self {
            id: p.id,
            order_id: p.order_id,
            user_id: p.user_id,
            amount_cents: p.amount_cents,
            status: p.status,
            reason: p.reason,
        }
    }
}

/// Payments, of one order when `orderId` is given.
#[utoipa::path(get, path = "/api/payments", tag = "payments", params(PaymentsQuery),
    responses((status = 200, description = "status is COMPLETED, FAILED or REFUNDED", body = Vec<PaymentView>)))]
async fn payments(
    State(db): State<Db>,
    Query(query): Query<PaymentsQuery>,
) -> Result<AxumJson<Vec<PaymentView>>, Problem> {
    let mut conn = db.pool().acquire().await.map_err(internal)?;
    let found = store::list(&mut conn, query.order_id.as_deref()).await.map_err(internal)?;
    Ok(AxumJson(found.into_iter().map(PaymentView::from).collect()))
}
