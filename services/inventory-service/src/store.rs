//! The `products` and `reservations` tables.
//!
//! Order and user ids are written with `to_string()` and statuses with `as_str()`, and
//! read back through [`platform::db::text_at`]: this module is the one place they cross
//! to and from text.

use std::collections::BTreeMap;

use platform::db::{Tx, text_at};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::domain::{ProductUpdate, ReservationStatus, Stock};

/// A product with its stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// SKU.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Price per unit, in cents.
    pub price_cents: i64,
    /// Units that can be reserved.
    pub available: i64,
    /// Units held by orders.
    pub reserved: i64,
}

fn product(row: &AnyRow) -> Result<Product, sqlx::Error> {
    Ok(Product {
        sku: row.try_get(0)?,
        name: row.try_get(1)?,
        price_cents: row.try_get(2)?,
        available: row.try_get(3)?,
        reserved: row.try_get(4)?,
    })
}

/// Creates the product or updates its name, price and available stock.
pub async fn upsert(tx: &mut Tx, product: &ProductUpdate, now_ms: i64) -> Result<Product, sqlx::Error> {
    tx.write(
        "INSERT INTO products (sku, name, price_cents, available, reserved, stocked, updated_at_ms) \
         VALUES ($1, $2, $3, $4, 0, $4, $5) \
         ON CONFLICT (sku) DO UPDATE SET name = $2, price_cents = $3, available = $4, \
         stocked = $4 + products.reserved, updated_at_ms = $5",
    )
    .bind(&product.sku)
    .bind(&product.name)
    .bind(product.price_cents)
    .bind(product.available)
    .bind(now_ms)
    .await?;
    find(tx.conn().await?, &product.sku).await?.ok_or(sqlx::Error::RowNotFound)
}

/// The product `sku`, if any.
pub async fn find(conn: &mut AnyConnection, sku: &str) -> Result<Option<Product>, sqlx::Error> {
    sqlx::query("SELECT sku, name, price_cents, available, reserved FROM products WHERE sku = $1")
        .bind(sku)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(product)
        .transpose()
}

/// Every product, by SKU.
pub async fn all(conn: &mut AnyConnection) -> Result<Vec<Product>, sqlx::Error> {
    sqlx::query("SELECT sku, name, price_cents, available, reserved FROM products ORDER BY sku")
        .fetch_all(conn)
        .await?
        .iter()
        .map(product)
        .collect()
}

/// The stock of `skus` (given in SKU order), locked until the transaction ends, in one
/// statement. (Across a batch's orders it is the `stock` lock the handlers name that
/// keeps two transactions from waiting on each other crosswise.)
pub async fn lock_stock(tx: &mut Tx, skus: &[&String]) -> Result<BTreeMap<String, Stock>, sqlx::Error> {
    if skus.is_empty() {
        return Ok(BTreeMap::new());
    }
    let sql = format!(
        "SELECT sku, price_cents, available FROM products WHERE sku IN ({}) ORDER BY sku{}",
        platform::db::params(skus.len(), 1),
        tx.for_update()
    );
    tx.read(sqlx::AssertSqlSafe(sql))
        .bind_all(skus.iter().map(|sku| sku.as_str()))
        .fetch_all()
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, Stock { price_cents: row.try_get(1)?, available: row.try_get(2)? })))
        .collect()
}

/// Moves `quantity` of `sku` from available to reserved (`delta` < 0 moves it back).
pub async fn move_to_reserved(tx: &mut Tx, sku: &str, delta: i64, now_ms: i64) -> Result<(), sqlx::Error> {
    let moved = sqlx::query(
        "UPDATE products SET available = available - $1, reserved = reserved + $1, updated_at_ms = $2 \
         WHERE sku = $3 AND available - $1 >= 0 AND reserved + $1 >= 0",
    )
    .bind(delta)
    .bind(now_ms)
    .bind(sku)
    .execute(tx.conn().await?)
    .await?;
    if moved.rows_affected() == 1 { Ok(()) } else { Err(sqlx::Error::RowNotFound) }
}

/// A reservation's status and lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Where it stands.
    pub status: ReservationStatus,
    /// (SKU, quantity) per line.
    pub lines: Vec<(String, i64)>,
}

/// Records the reservation of an order.
pub async fn insert_reservation(
    tx: &mut Tx,
    order_id: Uuid,
    user_id: Uuid,
    items: &[shared_events::PricedItem],
    total_cents: i64,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let order_id = order_id.to_string();
    tx.write(
        "INSERT INTO reservations (order_id, user_id, status, total_cents, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&order_id)
    .bind(user_id.to_string())
    .bind(ReservationStatus::Reserved.as_str())
    .bind(total_cents)
    .bind(now_ms)
    .await?;
    if !items.is_empty() {
        let sql = format!(
            "INSERT INTO reservation_items (order_id, sku, quantity, unit_price_cents) VALUES {}",
            platform::db::values(items.len(), 4, 1)
        );
        let mut lines = tx.write(sqlx::AssertSqlSafe(sql));
        for item in items {
            lines = lines
                .bind(&order_id)
                .bind(&item.sku)
                .bind(i64::from(item.quantity))
                .bind(item.unit_price_cents);
        }
        lines.await?;
    }
    Ok(())
}

/// The reservation of `order_id`, locked until the transaction ends.
pub async fn lock_reservation(tx: &mut Tx, order_id: Uuid) -> Result<Option<Reservation>, sqlx::Error> {
    let order_id = order_id.to_string();
    let sql = format!("SELECT status FROM reservations WHERE order_id = $1{}", tx.for_update());
    let Some(row) = tx.read(sqlx::AssertSqlSafe(sql)).bind(&order_id).fetch_optional().await? else {
        return Ok(None);
    };
    let status = text_at(&row, 0)?;
    let lines = tx
        .read("SELECT sku, quantity FROM reservation_items WHERE order_id = $1 ORDER BY sku")
        .bind(&order_id)
        .fetch_all()
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Some(Reservation { status, lines }))
}

/// Marks the reservation of `order_id` released.
pub async fn mark_released(tx: &mut Tx, order_id: Uuid, now_ms: i64) -> Result<(), sqlx::Error> {
    tx.write("UPDATE reservations SET status = $1, released_at_ms = $2 WHERE order_id = $3")
        .bind(ReservationStatus::Released.as_str())
        .bind(now_ms)
        .bind(order_id.to_string())
        .await
}
