//! The `orders`, `order_items` and `order_history` tables.

use platform::db::{Tx, optional_text_at, text_at};
use shared_events::{FailureReason, OrderItem};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::domain::Status;

/// An order with its lines and history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Id.
    pub id: Uuid,
    /// Who ordered.
    pub user_id: Uuid,
    /// Where it stands.
    pub status: Status,
    /// What was charged, once confirmed.
    pub total_cents: Option<i64>,
    /// Why it was cancelled.
    pub failure_reason: Option<FailureReason>,
    /// Created.
    pub created_at_ms: i64,
    /// Last changed.
    pub updated_at_ms: i64,
    /// Lines.
    pub items: Vec<OrderItem>,
    /// Every status it has had, oldest first.
    pub history: Vec<Change>,
}

/// One entry of an order's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The status it moved to.
    pub status: Status,
    /// Why, when a reason goes with it.
    pub reason: Option<FailureReason>,
    /// When.
    pub at_ms: i64,
}

/// Stores a new PENDING order with its lines and first history entry, and returns it as
/// stored (built from what was written rather than read back).
pub async fn insert(
    tx: &mut Tx,
    id: Uuid,
    user_id: Uuid,
    items: &[OrderItem],
    now_ms: i64,
) -> Result<Order, sqlx::Error> {
    let key = id.to_string();
    tx.write(
        "INSERT INTO orders (id, user_id, status, total_cents, failure_reason, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, $3, NULL, NULL, $4, $4)",
    )
    .bind(&key)
    .bind(user_id.to_string())
    .bind(Status::Pending.as_str())
    .bind(now_ms)
    .await?;
    let sql = format!(
        "INSERT INTO order_items (order_id, line, sku, quantity) VALUES {}",
        platform::db::values(items.len(), 4, 1)
    );
    let mut lines = tx.write(sqlx::AssertSqlSafe(sql));
    for (line, item) in items.iter().enumerate() {
        lines = lines.bind(&key).bind(line as i32).bind(&item.sku).bind(i64::from(item.quantity));
    }
    lines.await?;
    let first = Change { status: Status::Pending, reason: None, at_ms: now_ms };
    add_history(tx, &key, first).await?;
    Ok(Order {
        id,
        user_id,
        status: Status::Pending,
        total_cents: None,
        failure_reason: None,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        items: items.to_vec(),
        history: vec![first],
    })
}

async fn add_history(tx: &mut Tx, key: &str, change: Change) -> Result<(), sqlx::Error> {
    tx.write(
        "INSERT INTO order_history (order_id, seq, status, reason, at_ms) \
         VALUES ($1, (SELECT COUNT(*) FROM order_history WHERE order_id = $1), $2, $3, $4)",
    )
    .bind(key)
    .bind(change.status.as_str())
    .bind(change.reason.map(FailureReason::as_str))
    .bind(change.at_ms)
    .await
}

/// The status and user of order `id`, locked until the transaction ends.
pub async fn lock(tx: &mut Tx, id: Uuid) -> Result<Option<(Status, Uuid)>, sqlx::Error> {
    let sql = format!("SELECT status, user_id FROM orders WHERE id = $1{}", tx.for_update());
    let row = tx.read(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_optional().await?;
    row.map(|row| Ok((text_at(&row, 0)?, text_at(&row, 1)?))).transpose()
}

/// Moves order `id` to `status` (with `reason`, and the total once paid), in its history too.
pub async fn transition(
    tx: &mut Tx,
    id: Uuid,
    status: Status,
    reason: Option<FailureReason>,
    total_cents: Option<i64>,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let key = id.to_string();
    // `failure_reason` says why an order ended: a CANCELLING order's reason is in its history only.
    let failure_reason = if status == Status::Cancelled { reason } else { None };
    tx.write(
        "UPDATE orders SET status = $1, failure_reason = COALESCE($2, failure_reason), \
         total_cents = COALESCE($3, total_cents), updated_at_ms = $4 WHERE id = $5",
    )
    .bind(status.as_str())
    .bind(failure_reason.map(FailureReason::as_str))
    .bind(total_cents)
    .bind(now_ms)
    .bind(&key)
    .await?;
    add_history(tx, &key, Change { status, reason, at_ms: now_ms }).await
}

const COLUMNS: &str = "id, user_id, status, total_cents, failure_reason, created_at_ms, updated_at_ms";

fn order(row: &AnyRow) -> Result<Order, sqlx::Error> {
    Ok(Order {
        id: text_at(row, 0)?,
        user_id: text_at(row, 1)?,
        status: text_at(row, 2)?,
        total_cents: row.try_get(3)?,
        failure_reason: optional_text_at(row, 4)?,
        created_at_ms: row.try_get(5)?,
        updated_at_ms: row.try_get(6)?,
        items: Vec::new(),
        history: Vec::new(),
    })
}

async fn with_details(conn: &mut AnyConnection, mut order: Order) -> Result<Order, sqlx::Error> {
    let key = order.id.to_string();
    order.items = sqlx::query("SELECT sku, quantity FROM order_items WHERE order_id = $1 ORDER BY line")
        .bind(&key)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| Ok(OrderItem { sku: row.try_get(0)?, quantity: row.try_get::<i64, _>(1)? as u32 }))
        .collect::<Result<_, sqlx::Error>>()?;
    order.history =
        sqlx::query("SELECT status, reason, at_ms FROM order_history WHERE order_id = $1 ORDER BY seq")
            .bind(&key)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| {
                Ok(Change {
                    status: text_at(row, 0)?,
                    reason: optional_text_at(row, 1)?,
                    at_ms: row.try_get(2)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
    Ok(order)
}

/// Order `id` with its lines and history.
pub async fn find(conn: &mut AnyConnection, id: Uuid) -> Result<Option<Order>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM orders WHERE id = $1");
    let found = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_optional(&mut *conn).await?;
    match found {
        Some(row) => Ok(Some(with_details(conn, order(&row)?).await?)),
        None => Ok(None),
    }
}

/// Orders matching the filters, newest first.
pub async fn list(
    conn: &mut AnyConnection,
    user_id: Option<Uuid>,
    status: Option<Status>,
    limit: i64,
) -> Result<Vec<Order>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM orders WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR status = $2) \
         ORDER BY created_at_ms DESC, id DESC LIMIT $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user_id.map(|id| id.to_string()))
        .bind(status.map(Status::as_str))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    let mut orders = Vec::with_capacity(rows.len());
    for row in &rows {
        orders.push(with_details(conn, order(row)?).await?);
    }
    Ok(orders)
}
