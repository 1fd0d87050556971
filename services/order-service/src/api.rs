//! HTTP handlers of orders: place (idempotently), read, list, cancel. Every one needs a
//! signed-in [`Caller`]: a user places, sees and cancels their own orders only; an admin
//! anyone's. Another user's order answers 404, as a missing one does, so that nothing
//! about it is revealed.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json as AxumJson, Router};
use platform::auth::Caller;
use platform::auth::UNAUTHORIZED;
use platform::clock::{now_ms, rfc3339_ms};
use platform::db::{Db, Tx};
use platform::extract::{Json, Query};
use platform::idempotency::{self, IdempotencyKey, KeyHeader, StoredResponse};
use platform::problem::Problem;
use platform::validate::LIST_LIMIT;
use serde::{Deserialize, Serialize};
use shared_events::{FailureReason, OrderCreated};
use utoipa::PartialSchema;
use utoipa::openapi::schema::{Object, Schema};
use uuid::Uuid;

use crate::domain::{self, NewOrder, Status};
use crate::steps::{self, Outcome};
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

/// 404 for order `id` as the path spelt it.
fn not_found(id: &str) -> Problem {
    Problem::not_found(format!("no order {id}"))
}

/// The order id of a path: one that is not a UUID names no order.
fn order_id(id: &str) -> Result<Uuid, Problem> {
    id.parse().map_err(|_| not_found(id))
}

/// `POST /api/orders` body.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"userId": "0196f1a2-7c1e-7d3a-9a55-2f1c3b9e4d10", "items": [{"sku": "KEYBOARD-1", "quantity": 2}]}))]
struct PlaceOrder {
    #[schema(format = Uuid)]
    user_id: String,
    #[schema(schema_with = lines_rule)]
    items: Vec<ItemRequest>,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ItemRequest {
    #[schema(schema_with = sku_rule)]
    sku: String,
    #[schema(schema_with = quantity_rule)]
    #[serde(deserialize_with = "platform::validate::whole_number")]
    quantity: i64,
}

// The rules `NewOrder::parse` applies, as the document states them.
fn lines_rule() -> Schema {
    domain::LINES.array_schema(<ItemRequest as PartialSchema>::schema())
}

fn sku_rule() -> Object {
    platform::validate::SKU.schema()
}

fn quantity_rule() -> Object {
    domain::QUANTITY.schema()
}

fn status_rule() -> Object {
    platform::validate::words_schema(Status::ALL)
}

fn limit_rule() -> Object {
    LIST_LIMIT.schema()
}

/// An order as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct OrderView {
    id: Uuid,
    user_id: Uuid,
    /// PENDING, CONFIRMED, CANCELLING or CANCELLED.
    status: &'static str,
    items: Vec<ItemView>,
    total_cents: Option<i64>,
    /// On a cancelled order: OUT_OF_STOCK, UNKNOWN_SKU, INSUFFICIENT_FUNDS, NO_WALLET or
    /// CANCELLED_BY_USER.
    failure_reason: Option<&'static str>,
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
    status: &'static str,
    reason: Option<&'static str>,
    at: String,
}

impl From<Order> for OrderView {
    fn from(o: Order) -> Self {
        Self {
            id: o.id,
            user_id: o.user_id,
            status: o.status.as_str(),
            items: o.items.into_iter().map(|i| ItemView { sku: i.sku, quantity: i.quantity }).collect(),
            total_cents: o.total_cents,
            failure_reason: o.failure_reason.map(FailureReason::as_str),
            created_at: rfc3339_ms(o.created_at_ms),
            updated_at: rfc3339_ms(o.updated_at_ms),
            history: o
                .history
                .into_iter()
                .map(|change| HistoryView {
                    status: change.status.as_str(),
                    reason: change.reason.map(FailureReason::as_str),
                    at: rfc3339_ms(change.at_ms),
                })
                .collect(),
        }
    }
}

/// Places an order: 202 PENDING at once; the saga confirms or cancels it.
#[utoipa::path(post, path = "/api/orders", tag = "orders", request_body = PlaceOrder,
    params(KeyHeader),
    responses(
        (status = 202, description = "Accepted, PENDING", body = OrderView,
            headers(("Location" = String, description = "/api/orders/{id}"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 403, description = "userId is another user's (a user orders only for themselves; \
            an admin for anyone)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No items, over 50 items, a quantity outside 1..1000, a bad id, \
            or a key reused with another body", body = Problem, content_type = "application/problem+json")))]
async fn place(
    caller: Caller,
    State(db): State<Db>,
    headers: HeaderMap,
    Json(request): Json<PlaceOrder>,
) -> Result<Response, Problem> {
    let key = IdempotencyKey::from_headers(&headers)?;
    let items: Vec<(String, i64)> = request.items.iter().map(|i| (i.sku.clone(), i.quantity)).collect();
    let order = NewOrder::parse(&request.user_id, items)?;
    caller.acting_for(order.user_id)?;
    idempotency::once(&db, "POST /api/orders", key, &request, |tx| create(tx, order)).await
}

/// Stores the order PENDING and its `OrderCreated`, in one transaction.
async fn create(mut tx: Tx, order: NewOrder) -> Result<(Tx, StoredResponse), Problem> {
    // Time-ordered (v7), like every id the system makes: the order's rows here and in the
    // other services append to their indexes rather than land on a random page.
    let id = Uuid::now_v7();
    let created = store::insert(&mut tx, id, order.user_id, &order.items, now_ms()).await?;
    tx.publish(&OrderCreated::placed(id, order.user_id, order.items)).await?;
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
    responses((status = 200, description = "OK", body = OrderView),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 404, description = "No such order, or another user's", body = Problem, content_type = "application/problem+json")))]
async fn find(
    caller: Caller,
    State(db): State<Db>,
    Path(id): Path<String>,
) -> Result<AxumJson<OrderView>, Problem> {
    let order_id = order_id(&id)?;
    let mut conn = db.pool().acquire().await?;
    let order = store::find(&mut conn, order_id)
        .await?
        .filter(|order| caller.owns(order.user_id))
        .ok_or_else(|| not_found(&id))?;
    Ok(AxumJson(order.into()))
}

/// `GET /api/orders` filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListQuery {
    user_id: Option<String>,
    #[param(schema_with = status_rule)]
    status: Option<String>,
    /// At most this many (50 by default).
    #[param(schema_with = limit_rule)]
    limit: Option<i64>,
}

/// Orders, newest first: a user's own (`userId`, if given, must be theirs), or for an
/// admin everyone's unless `userId` names one user.
#[utoipa::path(get, path = "/api/orders", tag = "orders", params(ListQuery),
    responses((status = 200, description = "OK", body = Vec<OrderView>),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 403, description = "userId names another user (a user lists only their own orders)",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown status or limit outside 1..=500", body = Problem, content_type = "application/problem+json")))]
async fn list(
    caller: Caller,
    State(db): State<Db>,
    Query(query): Query<ListQuery>,
) -> Result<AxumJson<Vec<OrderView>>, Problem> {
    let status = query
        .status
        .as_deref()
        .map(str::parse::<Status>)
        .transpose()
        .map_err(|_| Problem::invalid("status", "must be PENDING, CONFIRMED, CANCELLING or CANCELLED"))?;
    let limit =
        LIST_LIMIT.check(query.limit.unwrap_or(50)).map_err(|rule| Problem::invalid("limit", rule))?;
    // A user id that is not a UUID is no user's: it matches no order (not a 422), and
    // names no other user either (not a 403).
    let Ok(user_id) = query.user_id.as_deref().map(str::parse::<Uuid>).transpose() else {
        return Ok(AxumJson(Vec::new()));
    };
    let user_id = caller.scope(user_id)?;
    let mut conn = db.pool().acquire().await?;
    let orders = store::list(&mut conn, user_id, status, limit).await?;
    Ok(AxumJson(orders.into_iter().map(OrderView::from).collect()))
}

/// A user's cancel: only a CONFIRMED order can be cancelled (refund, then release).
#[utoipa::path(post, path = "/api/orders/{id}/cancel", tag = "orders", params(("id" = Uuid, Path)),
    responses((status = 202, description = "Now CANCELLING", body = OrderView),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 404, description = "No such order, or another user's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "PENDING, CANCELLING or CANCELLED", body = Problem, content_type = "application/problem+json")))]
async fn cancel(caller: Caller, State(db): State<Db>, Path(id): Path<String>) -> Result<Response, Problem> {
    let order_id = order_id(&id)?;
    match steps::cancel(&db, order_id, caller).await? {
        Outcome::Moved(order) => Ok((StatusCode::ACCEPTED, AxumJson(OrderView::from(order))).into_response()),
        Outcome::NotFound => Err(not_found(&id)),
        Outcome::Refused(status) => Err(Problem::conflict(format!(
            "order {order_id} is {status}: only a CONFIRMED order can be cancelled"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    #[test]
    fn every_operation_needs_a_token_and_documents_the_refusals() {
        testkit::assert_documents_refusals(
            &super::ApiDoc::openapi(),
            &[
                ("/api/orders", "post", true),
                ("/api/orders", "get", true),
                ("/api/orders/{id}", "get", false),
                ("/api/orders/{id}/cancel", "post", false),
            ],
        );
    }
}
