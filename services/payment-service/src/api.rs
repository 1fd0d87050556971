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

use crate::domain::{self, DepositAmount};
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

/// A wallet as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct WalletView {
    user_id: Uuid,
    balance_cents: i64,
}

fn no_wallet(user_id: impl std::fmt::Display) -> Problem {
    Problem::not_found(format!("no wallet {user_id}"))
}

/// The wallet's owner from the path: text that is no user id names no wallet either.
fn owner(raw: &str) -> Result<Uuid, Problem> {
    raw.parse().map_err(|_| no_wallet(raw))
}

/// A user's wallet (opened when the user signed up).
#[utoipa::path(get, path = "/api/wallets/{userId}", tag = "payments", params(("userId" = Uuid, Path)),
    responses((status = 200, description = "OK", body = WalletView), (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json")))]
async fn wallet(State(db): State<Db>, Path(raw): Path<String>) -> Result<AxumJson<WalletView>, Problem> {
    let user_id = owner(&raw)?;
    let mut conn = db.pool().acquire().await?;
    let balance_cents = store::balance(&mut conn, user_id).await?.ok_or_else(|| no_wallet(user_id))?;
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
    let user_id = owner(&raw)?;
    let amount = DepositAmount::parse(body.amount_cents)?;
    let mut tx = db.begin_write().await?;
    let balance = store::lock_balance(&mut tx, user_id).await?.ok_or_else(|| no_wallet(user_id))?;
    let balance_cents = domain::deposit(balance, amount)?;
    store::set_balance(&mut tx, user_id, balance_cents).await?;
    store::insert_deposit(&mut tx, Uuid::now_v7(), user_id, amount.cents(), now_ms()).await?;
    tx.commit().await?;
    Ok(AxumJson(WalletView { user_id, balance_cents }))
}

/// `GET /api/payments` filter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct PaymentsQuery {
    // Text, not a `Uuid`: one that is no order id matches no payment rather than being a 400.
    order_id: Option<String>,
}

/// A payment as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct PaymentView {
    id: Uuid,
    order_id: Uuid,
    user_id: Uuid,
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
            status: p.status.to_string(),
            reason: p.reason.map(|reason| reason.to_string()),
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
    let order_id = match query.order_id.as_deref().map(str::parse::<Uuid>) {
        None => None,
        Some(Ok(order_id)) => Some(order_id),
        Some(Err(_)) => return Ok(AxumJson(Vec::new())),
    };
    let mut conn = db.pool().acquire().await?;
    let found = store::list(&mut conn, order_id).await?;
    Ok(AxumJson(found.into_iter().map(PaymentView::from).collect()))
}
