//! HTTP handlers of the catalogue: anyone may read it; only an [`Admin`] changes it.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json as AxumJson, Router};
use platform::auth::Admin;
use platform::auth::UNAUTHORIZED;
use platform::clock::now_ms;
use platform::db::Db;
use platform::extract::Json;
use platform::problem::Problem;
use platform::validate;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::Object;

use crate::domain::{self, ProductUpdate};
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
    #[schema(schema_with = name_rule)]
    name: String,
    #[schema(schema_with = price_rule)]
    #[serde(deserialize_with = "validate::whole_number")]
    price_cents: i64,
    #[schema(schema_with = available_rule)]
    #[serde(deserialize_with = "validate::whole_number")]
    available: i64,
}

/// A product's path.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct SkuPath {
    /// The product's code.
    #[param(schema_with = sku_rule)]
    sku: String,
}

// The rules `ProductUpdate::parse` applies, as the document states them.
fn sku_rule() -> Object {
    validate::SKU.schema()
}

fn name_rule() -> Object {
    domain::NAME.schema()
}

fn price_rule() -> Object {
    domain::PRICE_CENTS.schema()
}

fn available_rule() -> Object {
    domain::AVAILABLE.schema()
}

/// Creates a product or sets its name, price and available stock (admins only).
#[utoipa::path(put, path = "/api/products/{sku}", tag = "products", request_body = PutProduct,
    params(SkuPath),
    responses((status = 200, description = "OK", body = ProductView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = UNAUTHORIZED, body = Problem,
            content_type = "application/problem+json", headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field breaks a rule", body = Problem, content_type = "application/problem+json")))]
async fn put(
    Admin(_): Admin,
    State(db): State<Db>,
    Path(SkuPath { sku }): Path<SkuPath>,
    Json(body): Json<PutProduct>,
) -> Result<AxumJson<ProductView>, Problem> {
    let update = ProductUpdate::parse(&sku, &body.name, body.price_cents, body.available)?;
    let mut tx = db.begin_write().await?;
    let product = store::upsert(&mut tx, &update, now_ms()).await?;
    tx.commit().await?;
    Ok(AxumJson(product.into()))
}

/// One product with its stock (`reserved` is held by orders in flight). Public.
#[utoipa::path(get, path = "/api/products/{sku}", tag = "products", params(SkuPath), security(()),
    responses((status = 200, description = "OK", body = ProductView), (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json")))]
async fn find(
    State(db): State<Db>,
    Path(SkuPath { sku }): Path<SkuPath>,
) -> Result<AxumJson<ProductView>, Problem> {
    let mut conn = db.pool().acquire().await?;
    let product = store::find(&mut conn, &sku).await?;
    product.map(|p| AxumJson(p.into())).ok_or_else(|| Problem::not_found(format!("no product {sku}")))
}

/// Every product. Public.
#[utoipa::path(get, path = "/api/products", tag = "products", security(()), responses((status = 200, description = "OK", body = Vec<ProductView>)))]
async fn list(State(db): State<Db>) -> Result<AxumJson<Vec<ProductView>>, Problem> {
    let mut conn = db.pool().acquire().await?;
    let products = store::all(&mut conn).await?;
    Ok(AxumJson(products.into_iter().map(ProductView::from).collect()))
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    #[test]
    fn the_catalogue_is_public_to_read_and_for_admins_to_change() {
        let document = serde_json::to_value(super::ApiDoc::openapi()).expect("json");
        for path in ["/api/products", "/api/products/{sku}"] {
            let read = &document["paths"][path]["get"];
            assert_eq!(read["security"], serde_json::json!([{}]), "GET {path} is public");
            assert!(read["responses"]["401"].is_null(), "GET {path} refuses nobody");
        }
        let put = &document["paths"]["/api/products/{sku}"]["put"];
        assert!(put["security"].is_null(), "PUT keeps the bearer scheme");
        assert!(put["responses"]["401"].is_object() && put["responses"]["403"].is_object());
    }
}
