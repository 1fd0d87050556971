//! The `orders`, `order_items` and `order_history` tables.

use platform::db::Tx;
use shared_events::OrderItem;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::domain::Status;

/// An order with its lines and history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Id.
    pub id: String,
    /// Who ordered.
    pub user_id: String,
    /// Where it stands.
    pub status: String,
    /// What was charged, once confirmed.
    pub total_cents: Option<i64>,
    /// Why it was cancelled.
    pub failure_reason: Option<String>,
    /// Created.
    pub created_at_ms: i64,
    /// Last changed.
    pub updated_at_ms: i64,
    /// Lines.
    pub items: Vec<OrderItem>,
    /// (status, reason, at) per step, oldest first.
    pub history: Vec<(String, Option<String>, i64)>,
}

/// Stores a new PENDING order with its lines and first history entry, and returns it as
/// stored (built from what was written rather than read back).
pub async fn insert(
    tx: &mut Tx,
    id: &str,
    user_id: &str,
    items: &[OrderItem],
    now_ms: i64,
) -> Result<Order, sqlx::Error> {
    sqlx::query(
        "INSERT INTO orders (id, user_id, status, total_cents, failure_reason, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, 'PENDING', NULL, NULL, $3, $3)",
    )
    .bind(id)
    .bind(user_id)
    .bind(now_ms)
    .execute(tx.conn())
    .await?;
    let sql = format!(
        "INSERT INTO order_items (order_id, line, sku, quantity) VALUES {}",
        platform::db::values(items.len(), 4, 1)
    );
    let mut lines = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (line, item) in items.iter().enumerate() {
        lines = lines.bind(id).bind(line as i32).bind(&item.sku).bind(i64::from(item.quantity));
    }
    lines.execute(tx.conn()).await?;
    sqlx::query(
        "INSERT INTO order_history (order_id, seq, status, reason, at_ms) VALUES ($1, 0, $2, NULL, $3)",
    )
    .bind(id)
    .bind(Status::Pending.as_str())
    .bind(now_ms)
    .execute(tx.conn())
    .await?;
    Ok(Order {
        id: id.to_owned(),
        user_id: user_id.to_owned(),
        status: Status::Pending.as_str().to_owned(),
        total_cents: None,
        failure_reason: None,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        items: items.to_vec(),
        history: vec![(Status::Pending.as_str().to_owned(), None, now_ms)],
    })
}

async fn add_history(
    tx: &mut Tx,
    id: &str,
    status: Status,
    reason: Option<&str>,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO order_history (order_id, seq, status, reason, at_ms) \
         VALUES ($1, (SELECT COUNT(*) FROM order_history WHERE order_id = $1), $2, $3, $4)",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(reason.map(str::to_owned))
    .bind(now_ms)
    .execute(tx.conn())
    .await
    .map(|_| ())
}

/// The status and user of order `id`, locked until the transaction ends.
pub async fn lock(tx: &mut Tx, id: &str) -> Result<Option<(Status, String)>, sqlx::Error> {
    let sql = format!("SELECT status, user_id FROM orders WHERE id = $1{}", tx.for_update());
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(tx.conn()).await? else {
        return Ok(None);
    };
    let status: String = row.try_get(0)?;
    let status =
        Status::parse(&status).ok_or_else(|| sqlx::Error::Decode(format!("status {status}").into()))?;
    Ok(Some((status, row.try_get(1)?)))
}

/// Moves order `id` to `status` (with `reason`, and the total once paid), in its history too.
pub async fn transition(
    tx: &mut Tx,
    id: &str,
    status: Status,
    reason: Option<&str>,
    total_cents: Option<i64>,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders SET status = $1, failure_reason = COALESCE($2, failure_reason), \
         total_cents = COALESCE($3, total_cents), updated_at_ms = $4 WHERE id = $5",
    )
    .bind(status.as_str())
    .bind(if status == Status::Cancelled { reason.map(str::to_owned) } else { None })
    .bind(total_cents)
    .bind(now_ms)
    .bind(id)
    .execute(tx.conn())
    .await?;
    add_history(tx, id, status, reason, now_ms).await
}

const COLUMNS: &str = "id, user_id, status, total_cents, failure_reason, created_at_ms, updated_at_ms";

fn order(row: &AnyRow) -> Result<Order, sqlx::Error> {
    Ok(Order {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        status: row.try_get(2)?,
        total_cents: row.try_get(3)?,
        failure_reason: row.try_get(4)?,
        created_at_ms: row.try_get(5)?,
        updated_at_ms: row.try_get(6)?,
        items: Vec::new(),
        history: Vec::new(),
    })
}

async fn with_details(conn: &mut AnyConnection, mut order: Order) -> Result<Order, sqlx::Error> {
    order.items = sqlx::query("SELECT sku, quantity FROM order_items WHERE order_id = $1 ORDER BY line")
        .bind(&order.id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| Ok(OrderItem { sku: row.try_get(0)?, quantity: row.try_get::<i64, _>(1)? as u32 }))
        .collect::<Result<_, sqlx::Error>>()?;
    order.history =
        sqlx::query("SELECT status, reason, at_ms FROM order_history WHERE order_id = $1 ORDER BY seq")
            .bind(&order.id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect::<Result<_, sqlx::Error>>()?;
    Ok(order)
}

/// Order `id` with its lines and history.
pub async fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<Order>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM orders WHERE id = $1");
    let found = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut *conn).await?;
    match found {
        Some(row) => Ok(Some(with_details(conn, order(&row)?).await?)),
        None => Ok(None),
    }
}

/// Orders matching the filters, newest first.
pub async fn list(
    conn: &mut AnyConnection,
    user_id: Option<&str>,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<Order>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM orders WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR status = $2) \
         ORDER BY created_at_ms DESC, id DESC LIMIT $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user_id.map(str::to_owned))
        .bind(status.map(str::to_owned))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    let mut orders = Vec::with_capacity(rows.len());
    for row in &rows {
        orders.push(with_details(conn, order(row)?).await?);
    }
    Ok(orders)
}
