//! HTTP handlers of orders: place (idempotently), read, list, cancel.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json as AxumJson, Router};
use platform::clock::{now_ms, rfc3339_ms};
use platform::db::{Db, Tx};
use platform::extract::Json;
use platform::idempotency::{self, IdempotencyKey, StoredResponse};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use shared_events::{OrderCancelRequested, OrderCreated};
use uuid::Uuid;

use crate::domain::{self, NewOrder, Status, Step};
use crate::store::{self, Order};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(place, list, find, cancel), tags((name = "orders", description = "Orders and their saga")))]
pub struct ApiDoc;

/// The routes of `/api/orders`.
pub fn router(db: Db) -> Router {
    Router::new()
        .route("/api/orders", post(place).get(list))
        .route("/api/orders/{id}", get(find))
        .route("/api/orders/{id}/cancel", post(cancel))
        .with_state(db)
}

fn internal(error: sqlx::Error) -> Problem {
    Problem::internal(&error)
}

/// `POST /api/orders` body.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"userId": "0196f1a2-7c1e-7d3a-9a55-2f1c3b9e4d10", "items": [{"sku": "KEYBOARD-1", "quantity": 2}]}))]
struct PlaceOrder {
    user_id: String,
    items: Vec<ItemRequest>,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ItemRequest {
    sku: String,
    quantity: i64,
}

/// An order as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct OrderView {
    id: String,
    user_id: String,
    /// PENDING, CONFIRMED, CANCELLING or CANCELLED.
    status: String,
    items: Vec<ItemView>,
    total_cents: Option<i64>,
    /// On a cancelled order: OUT_OF_STOCK, UNKNOWN_SKU, INSUFFICIENT_FUNDS, NO_WALLET or
    /// CANCELLED_BY_USER.
    failure_reason: Option<String>,
    created_at: String,
    updated_at: String,
    history: Vec<HistoryView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ItemView {
    sku: String,
    quantity: u32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct HistoryView {
    status: String,
    reason: Option<String>,
    at: String,
}

impl From<Order> for OrderView {
    fn from(o: Order) -> Self {
        Self {
            id: o.id,
            user_id: o.user_id,
            status: o.status,
            items: o.items.into_iter().map(|i| ItemView { sku: i.sku, quantity: i.quantity }).collect(),
            total_cents: o.total_cents,
            failure_reason: o.failure_reason,
            created_at: rfc3339_ms(o.created_at_ms),
            updated_at: rfc3339_ms(o.updated_at_ms),
            history: o
                .history
                .into_iter()
                .map(|(status, reason, at)| HistoryView { status, reason, at: rfc3339_ms(at) })
                .collect(),
        }
    }
}

/// Places an order: 202 PENDING at once; the saga confirms or cancels it.
#[utoipa::path(post, path = "/api/orders", tag = "orders", request_body = PlaceOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeats with this key return the first answer")),
    responses(
        (status = 202, description = "Accepted, PENDING", body = OrderView,
            headers(("Location" = String, description = "/api/orders/{id}"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No items, over 50 items, a quantity outside 1..1000, a bad id, \
            or a key reused with another body", body = Problem, content_type = "application/problem+json")))]
async fn place(
    State(db): State<Db>,
    headers: HeaderMap,
    Json(request): Json<PlaceOrder>,
) -> Result<Response, Problem> {
    let key = IdempotencyKey::from_headers(&headers)?;
    let items: Vec<(String, i64)> = request.items.iter().map(|i| (i.sku.clone(), i.quantity)).collect();
    let order = NewOrder::parse(&request.user_id, items)?;
    idempotency::once(&db, "POST /api/orders", key, &request, |tx| create(tx, order)).await
}

/// Stores the order PENDING and its `OrderCreated`, in one transaction.
async fn create(mut tx: Tx, order: NewOrder) -> Result<(Tx, StoredResponse), Problem> {
    // Time-ordered (v7), like every id the system makes: the order's rows here and in the
    // other services append to their indexes rather than land on a random page.
    let id = Uuid::now_v7();
    let created = store::insert(&mut tx, &id.to_string(), &order.user_id.to_string(), &order.items, now_ms())
        .await
        .map_err(internal)?;
    tx.publish(&OrderCreated { order_id: id, user_id: order.user_id, items: order.items })
        .await
        .map_err(internal)?;
    // One per order: at debug, like every per-message line (RUST_LOG=order_service=debug).
    tracing::debug!(order_id = %id, "order placed");
    let response = StoredResponse::json(
        StatusCode::ACCEPTED,
        &OrderView::from(created),
        Some(format!("/api/orders/{id}")),
    )?;
    Ok((tx, response))
}

/// One order with its status history.
#[utoipa::path(get, path = "/api/orders/{id}", tag = "orders", params(("id" = Uuid, Path)),
    responses((status = 200, description = "OK", body = OrderView), (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json")))]
async fn find(State(db): State<Db>, Path(id): Path<String>) -> Result<AxumJson<OrderView>, Problem> {
    let not_found = || Problem::not_found(format!("no order {id}"));
    let parsed: Uuid = id.parse().map_err(|_| not_found())?;
    let mut conn = db.pool().acquire().await.map_err(internal)?;
    let order = store::find(&mut conn, &parsed.to_string()).await.map_err(internal)?.ok_or_else(not_found)?;
    Ok(AxumJson(order.into()))
}

/// `GET /api/orders` filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListQuery {
    user_id: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
}

/// Orders, newest first.
#[utoipa::path(get, path = "/api/orders", tag = "orders", params(ListQuery),
    responses((status = 200, description = "OK", body = Vec<OrderView>),
        (status = 422, description = "Unknown status or limit outside 1..=500", body = Problem, content_type = "application/problem+json")))]
async fn list(
    State(db): State<Db>,
    Query(query): Query<ListQuery>,
) -> Result<AxumJson<Vec<OrderView>>, Problem> {
    if let Some(status) = &query.status
        && Status::parse(status).is_none()
    {
        return Err(Problem::invalid("status", "must be PENDING, CONFIRMED, CANCELLING or CANCELLED"));
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Problem::invalid("limit", "must be from 1 to 500"));
    }
    let mut conn = db.pool().acquire().await.map_err(internal)?;
    let orders = store::list(&mut conn, query.user_id.as_deref(), query.status.as_deref(), limit)
        .await
        .map_err(internal)?;
    Ok(AxumJson(orders.into_iter().map(OrderView::from).collect()))
}

/// A user's cancel: only a CONFIRMED order can be cancelled (refund, then release).
#[utoipa::path(post, path = "/api/orders/{id}/cancel", tag = "orders", params(("id" = Uuid, Path)),
    responses((status = 202, description = "Now CANCELLING", body = OrderView),
        (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "PENDING, CANCELLING or CANCELLED", body = Problem, content_type = "application/problem+json")))]
async fn cancel(State(db): State<Db>, Path(id): Path<String>) -> Result<Response, Problem> {
    let not_found = || Problem::not_found(format!("no order {id}"));
    let order_id: Uuid = id.parse().map_err(|_| not_found())?;
    let key = order_id.to_string();
    let mut tx = db.begin_write().await.map_err(internal)?;
    let (status, user_id) = store::lock(&mut tx, &key).await.map_err(internal)?.ok_or_else(not_found)?;
    let Some((next, reason)) = domain::next(status, Step::CancelRequested) else {
        return Err(Problem::conflict(format!(
            "order {order_id} is {status}: only a CONFIRMED order can be cancelled"
        )));
    };
    let reason = reason.map(domain::reason_text);
    store::transition(&mut tx, &key, next, reason.as_deref(), None, now_ms()).await.map_err(internal)?;
    let user_id: Uuid = user_id.parse().map_err(|_| internal(sqlx::Error::RowNotFound))?;
    tx.publish(&OrderCancelRequested { order_id, user_id }).await.map_err(internal)?;
    let order = store::find(tx.conn(), &key).await.map_err(internal)?.ok_or_else(not_found)?;
    tx.commit().await.map_err(internal)?;
    Ok((StatusCode::ACCEPTED, AxumJson(OrderView::from(order))).into_response())
}
