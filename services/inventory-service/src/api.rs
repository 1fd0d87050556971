//! HTTP handlers of the catalogue.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json as AxumJson, Router};
use platform::clock::now_ms;
use platform::db::Db;
use platform::extract::Json;
use platform::problem::Problem;
use serde::{Deserialize, Serialize};

use crate::store::{self, Product};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, find, put), tags((name = "products", description = "Catalogue, prices and stock")))]
pub struct ApiDoc;

/// The routes of `/api/products`.
pub fn router(db: Db) -> Router {
    Router::new()
        .route("/api/products", get(list))
        .route("/api/products/{sku}", get(find).put(put))
        .with_state(db)
}

fn internal(error: sqlx::Error) -> Problem {
    Problem::internal(&error)
}

/// A product as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ProductView {
    sku: String,
    name: String,
    price_cents: i64,
    available: i64,
    reserved: i64,
}

impl From<Product> for ProductView {
    fn from(p: Product) -> Self {
        Self {
            sku: p.sku,
            name: p.name,
            price_cents: p.price_cents,
            available: p.available,
            reserved: p.reserved,
        }
    }
}

/// `PUT /api/products/{sku}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "Keyboard", "priceCents": 4500, "available": 100}))]
struct PutProduct {
    name: String,
    price_cents: i64,
    available: i64,
}

/// A SKU: 1 to 64 of letters, digits, `-`, `_` and `.`.
fn valid_sku(sku: &str) -> Result<(), Problem> {
    let ok = !sku.is_empty()
        && sku.len() <= 64
        && sku.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok { Ok(()) } else { Err(Problem::invalid("sku", "must be 1 to 64 of A-Z a-z 0-9 - _ .")) }
}

/// Creates a product or sets its name, price and available stock.
#[utoipa::path(put, path = "/api/products/{sku}", tag = "products", request_body = PutProduct,
    params(("sku" = String, Path, description = "1 to 64 of A-Z a-z 0-9 - _ .")),
    responses((status = 200, description = "OK", body = ProductView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field breaks a rule", body = Problem, content_type = "application/problem+json")))]
async fn put(
    State(db): State<Db>,
    Path(sku): Path<String>,
    Json(body): Json<PutProduct>,
) -> Result<AxumJson<ProductView>, Problem> {
    valid_sku(&sku)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Problem::invalid("name", "must be 1 to 200 characters"));
    }
    if body.price_cents < 0 {
        return Err(Problem::invalid("priceCents", "must not be negative"));
    }
    if !(0..=1_000_000_000).contains(&body.available) {
        return Err(Problem::invalid("available", "must be from 0 to 1000000000"));
    }
    let mut tx = db.begin_write().await.map_err(internal)?;
    let product = store::upsert(&mut tx, &sku, name, body.price_cents, body.available, now_ms())
        .await
        .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    Ok(AxumJson(product.into()))
}

/// One product with its stock (`reserved` is held by orders in flight).
#[utoipa::path(get, path = "/api/products/{sku}", tag = "products", params(("sku" = String, Path)),
    responses((status = 200, description = "OK", body = ProductView), (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json")))]
async fn find(State(db): State<Db>, Path(sku): Path<String>) -> Result<AxumJson<ProductView>, Problem> {
    let mut conn = db.pool().acquire().await.map_err(internal)?;
    let product = store::find(&mut conn, &sku).await.map_err(internal)?;
    product.map(|p| AxumJson(p.into())).ok_or_else(|| Problem::not_found(format!("no product {sku}")))
}

/// Every product.
#[utoipa::path(get, path = "/api/products", tag = "products", responses((status = 200, description = "OK", body = Vec<ProductView>)))]
async fn list(State(db): State<Db>) -> Result<AxumJson<Vec<ProductView>>, Problem> {
    let mut conn = db.pool().acquire().await.map_err(internal)?;
    let products = store::all(&mut conn).await.map_err(internal)?;
    Ok(AxumJson(products.into_iter().map(ProductView::from).collect()))
}
