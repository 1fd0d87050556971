//! HTTP handlers of wallets and payments. Every one needs a signed-in [`Caller`]: a user
//! sees and fills only their own wallet and sees only their own payments; an admin
//! anyone's. Another user's wallet answers 404, as a missing one does, so that nothing
//! about it is revealed.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json as AxumJson, Router};
use platform::auth::Caller;
use platform::auth::UNAUTHORIZED;
use platform::clock::now_ms;
use platform::db::Db;
use platform::extract::{Json, Query};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::Object;
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

/// The wallet's owner from the path, if `caller` may see their wallet: text that is no
/// user id names no wallet, and another user's wallet is as missing as one never opened.
fn owner(caller: &Caller, raw: &str) -> Result<Uuid, Problem> {
    raw.parse().ok().filter(|user_id| caller.owns(*user_id)).ok_or_else(|| no_wallet(raw))
}

/// A user's wallet (opened when the user signed up).
#[utoipa::path(get, path = "/api/wallets/{userId}", tag = "payments", params(("userId" = Uuid, Path)),
    responses((status = 200, description = "OK", body = WalletView),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 404, description = "No wallet, or another user's", body = Problem, content_type = "application/problem+json")))]
async fn wallet(
    caller: Caller,
    State(db): State<Db>,
    Path(raw): Path<String>,
) -> Result<AxumJson<WalletView>, Problem> {
    let user_id = owner(&caller, &raw)?;
    let mut conn = db.pool().acquire().await?;
    let balance_cents = store::balance(&mut conn, user_id).await?.ok_or_else(|| no_wallet(user_id))?;
    Ok(AxumJson(WalletView { user_id, balance_cents }))
}

/// `POST /api/wallets/{userId}/deposit` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"amountCents": 5000}))]
struct Deposit {
    #[schema(schema_with = amount_rule)]
    #[serde(deserialize_with = "platform::validate::whole_number")]
    amount_cents: i64,
}

/// The rule `DepositAmount::parse` applies, as the document states it.
fn amount_rule() -> Object {
    domain::DEPOSIT_CENTS.schema()
}

/// Adds money to a wallet.
#[utoipa::path(post, path = "/api/wallets/{userId}/deposit", tag = "payments", request_body = Deposit,
    params(("userId" = Uuid, Path)),
    responses((status = 200, description = "OK", body = WalletView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 404, description = "No wallet, or another user's", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "amountCents outside 1..=100000000", body = Problem, content_type = "application/problem+json")))]
async fn deposit(
    caller: Caller,
    State(db): State<Db>,
    Path(raw): Path<String>,
    Json(body): Json<Deposit>,
) -> Result<AxumJson<WalletView>, Problem> {
    // Whose wallet before the amount: another user's wallet is a 404 whatever the body says.
    let user_id = owner(&caller, &raw)?;
    let amount = DepositAmount::parse(body.amount_cents)?;
    let mut tx = db.begin_write().await?;
    let balance = store::lock_balance(&mut tx, user_id).await?.ok_or_else(|| no_wallet(user_id))?;
    let balance_cents = domain::deposit(balance, amount)?;
    store::set_balance(&mut tx, user_id, balance_cents).await?;
    store::insert_deposit(&mut tx, Uuid::now_v7(), user_id, amount.cents(), now_ms()).await?;
    tx.commit().await?;
    Ok(AxumJson(WalletView { user_id, balance_cents }))
}

/// `GET /api/payments` filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct PaymentsQuery {
    // Text, not `Uuid`s: one that is no id matches no payment rather than being a 400.
    /// The payments of this order only.
    order_id: Option<String>,
    /// The payments of this user only: a user may name only themselves.
    user_id: Option<String>,
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

/// Payments, of one order when `orderId` is given: a user's own (`userId`, if given,
/// must be theirs), or for an admin everyone's unless `userId` names one user.
#[utoipa::path(get, path = "/api/payments", tag = "payments", params(PaymentsQuery),
    responses((status = 200, description = "status is COMPLETED, FAILED or REFUNDED", body = Vec<PaymentView>),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 403, description = "userId names another user (a user lists only their own payments)",
            body = Problem, content_type = "application/problem+json")))]
async fn payments(
    caller: Caller,
    State(db): State<Db>,
    Query(query): Query<PaymentsQuery>,
) -> Result<AxumJson<Vec<PaymentView>>, Problem> {
    let (Ok(order_id), Ok(user_id)) = (id_filter(query.order_id), id_filter(query.user_id)) else {
        return Ok(AxumJson(Vec::new()));
    };
    let user_id = caller.scope(user_id)?;
    let mut conn = db.pool().acquire().await?;
    let found = store::list(&mut conn, order_id, user_id).await?;
    Ok(AxumJson(found.into_iter().map(PaymentView::from).collect()))
}

/// A filter's id: `Err` for text that is no id (it matches nothing, and names no other
/// user either).
fn id_filter(raw: Option<String>) -> Result<Option<Uuid>, uuid::Error> {
    raw.as_deref().map(str::parse::<Uuid>).transpose()
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    #[test]
    fn every_operation_needs_a_token_and_documents_the_refusals() {
        testkit::assert_documents_refusals(
            &super::ApiDoc::openapi(),
            &[
                ("/api/wallets/{userId}", "get", false),
                ("/api/wallets/{userId}/deposit", "post", false),
                ("/api/payments", "get", true),
            ],
        );
    }
}
