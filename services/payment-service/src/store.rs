//! The `wallets`, `deposits` and `payments` tables.
//!
//! Ids are written with `to_string()` and statuses with `as_str()`, and read back through
//! [`platform::db::text_at`]: this module is the one place they cross to and from text.

use platform::db::{Tx, optional_text_at, text_at};
use shared_events::FailureReason;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::domain::PaymentStatus;

/// Opens a wallet with `initial_cents`, unless the user has one.
pub async fn open_wallet(
    tx: &mut Tx,
    user_id: Uuid,
    initial_cents: i64,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    tx.write(
        "INSERT INTO wallets (user_id, initial_cents, balance_cents, created_at_ms) VALUES ($1, $2, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(user_id.to_string())
    .bind(initial_cents)
    .bind(now_ms)
    .await
}

/// The balance of `user_id`'s wallet, if it has one.
pub async fn balance(conn: &mut AnyConnection, user_id: Uuid) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT balance_cents FROM wallets WHERE user_id = $1")
        .bind(user_id.to_string())
        .fetch_optional(conn)
        .await
}

/// The balance, locked until the transaction ends: what [`set_balance`] then writes was
/// decided on a balance no other transaction can change meanwhile (a row lock on
/// PostgreSQL; on SQLite the write transaction already excludes every other writer).
pub async fn lock_balance(tx: &mut Tx, user_id: Uuid) -> Result<Option<i64>, sqlx::Error> {
    let sql = format!("SELECT balance_cents FROM wallets WHERE user_id = $1{}", tx.for_update());
    let row = tx.read(sqlx::AssertSqlSafe(sql)).bind(user_id.to_string()).fetch_optional().await?;
    row.map(|row| row.try_get(0)).transpose()
}

/// Sets the balance of a wallet read with [`lock_balance`] in the same transaction.
pub async fn set_balance(tx: &mut Tx, user_id: Uuid, balance_cents: i64) -> Result<(), sqlx::Error> {
    let updated = sqlx::query("UPDATE wallets SET balance_cents = $1 WHERE user_id = $2")
        .bind(balance_cents)
        .bind(user_id.to_string())
        .execute(tx.conn().await?)
        .await?;
    if updated.rows_affected() == 1 { Ok(()) } else { Err(sqlx::Error::RowNotFound) }
}

/// Records a deposit.
pub async fn insert_deposit(
    tx: &mut Tx,
    id: Uuid,
    user_id: Uuid,
    amount_cents: i64,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    tx.write("INSERT INTO deposits (id, user_id, amount_cents, created_at_ms) VALUES ($1, $2, $3, $4)")
        .bind(id.to_string())
        .bind(user_id.to_string())
        .bind(amount_cents)
        .bind(now_ms)
        .await
}

/// A payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// Id.
    pub id: Uuid,
    /// The order paid for.
    pub order_id: Uuid,
    /// Whose wallet.
    pub user_id: Uuid,
    /// Amount in cents.
    pub amount_cents: i64,
    /// Where it stands.
    pub status: PaymentStatus,
    /// Why it failed.
    pub reason: Option<FailureReason>,
}

const PAYMENT_COLUMNS: &str = "id, order_id, user_id, amount_cents, status, reason";

fn payment(row: &AnyRow) -> Result<Payment, sqlx::Error> {
    Ok(Payment {
        id: text_at(row, 0)?,
        order_id: text_at(row, 1)?,
        user_id: text_at(row, 2)?,
        amount_cents: row.try_get(3)?,
        status: text_at(row, 4)?,
        reason: optional_text_at(row, 5)?,
    })
}

/// Records a payment; `false` if the order has one already.
pub async fn insert_payment(tx: &mut Tx, p: &Payment, now_ms: i64) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO payments (id, order_id, user_id, amount_cents, status, reason, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(p.id.to_string())
    .bind(p.order_id.to_string())
    .bind(p.user_id.to_string())
    .bind(p.amount_cents)
    .bind(p.status.as_str())
    .bind(p.reason.map(FailureReason::as_str))
    .bind(now_ms)
    .execute(tx.conn().await?)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The payment of `order_id`, locked until the transaction ends.
pub async fn lock_payment(tx: &mut Tx, order_id: Uuid) -> Result<Option<Payment>, sqlx::Error> {
    let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = $1{}", tx.for_update());
    tx.read(sqlx::AssertSqlSafe(sql))
        .bind(order_id.to_string())
        .fetch_optional()
        .await?
        .as_ref()
        .map(payment)
        .transpose()
}

/// Sets a payment's status.
pub async fn set_status(
    tx: &mut Tx,
    id: Uuid,
    status: PaymentStatus,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    tx.write("UPDATE payments SET status = $1, updated_at_ms = $2 WHERE id = $3")
        .bind(status.as_str())
        .bind(now_ms)
        .bind(id.to_string())
        .await
}

/// Payments, of one order and of one user or all, oldest first.
pub async fn list(
    conn: &mut AnyConnection,
    order_id: Option<Uuid>,
    user_id: Option<Uuid>,
) -> Result<Vec<Payment>, sqlx::Error> {
    let sql = format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments \
         WHERE ($1 IS NULL OR order_id = $1) AND ($2 IS NULL OR user_id = $2) \
         ORDER BY created_at_ms, id LIMIT 1000"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(order_id.map(|id| id.to_string()))
        .bind(user_id.map(|id| id.to_string()))
        .fetch_all(conn)
        .await?
        .iter()
        .map(payment)
        .collect()
}
