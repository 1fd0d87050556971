//! The `wallets`, `deposits` and `payments` tables.

use platform::db::Tx;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// Opens a wallet with `initial_cents`, unless the user has one.
pub async fn open_wallet(
    tx: &mut Tx,
    user_id: &str,
    initial_cents: i64,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO wallets (user_id, initial_cents, balance_cents, created_at_ms) VALUES ($1, $2, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(initial_cents)
    .bind(now_ms)
    .execute(tx.conn())
    .await
    .map(|_| ())
}

/// The balance of `user_id`'s wallet, if it has one.
pub async fn balance(conn: &mut AnyConnection, user_id: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT balance_cents FROM wallets WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(conn)
        .await
}

/// The balance, locked until the transaction ends.
pub async fn lock_balance(tx: &mut Tx, user_id: &str) -> Result<Option<i64>, sqlx::Error> {
    let sql = format!("SELECT balance_cents FROM wallets WHERE user_id = $1{}", tx.for_update());
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(user_id).fetch_optional(tx.conn()).await
}

/// Adds `delta` (negative to debit) to a balance that stays at or above zero; `false`
/// when it would not.
pub async fn add_to_balance(tx: &mut Tx, user_id: &str, delta: i64) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query(
        "UPDATE wallets SET balance_cents = balance_cents + $1 WHERE user_id = $2 AND balance_cents + $1 >= 0",
    )
    .bind(delta)
    .bind(user_id)
    .execute(tx.conn())
    .await?;
    Ok(changed.rows_affected() == 1)
}

/// Records a deposit.
pub async fn insert_deposit(
    tx: &mut Tx,
    id: &str,
    user_id: &str,
    amount_cents: i64,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO deposits (id, user_id, amount_cents, created_at_ms) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(user_id)
        .bind(amount_cents)
        .bind(now_ms)
        .execute(tx.conn())
        .await
        .map(|_| ())
}

/// A payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// Id.
    pub id: String,
    /// The order paid for.
    pub order_id: String,
    /// Whose wallet.
    pub user_id: String,
    /// Amount in cents.
    pub amount_cents: i64,
    /// `COMPLETED`, `FAILED` or `REFUNDED`.
    pub status: String,
    /// Why it failed.
    pub reason: Option<String>,
}

fn payment(row: &AnyRow) -> Result<Payment, sqlx::Error> {
    Ok(Payment {
        id: row.try_get(0)?,
        order_id: row.try_get(1)?,
        user_id: row.try_get(2)?,
        amount_cents: row.try_get(3)?,
        status: row.try_get(4)?,
        reason: row.try_get(5)?,
    })
}

/// Records a payment; `false` if the order has one already.
pub async fn insert_payment(tx: &mut Tx, p: &Payment, now_ms: i64) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO payments (id, order_id, user_id, amount_cents, status, reason, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(&p.id)
    .bind(&p.order_id)
    .bind(&p.user_id)
    .bind(p.amount_cents)
    .bind(&p.status)
    .bind(p.reason.clone())
    .bind(now_ms)
    .execute(tx.conn())
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The payment of `order_id`, locked until the transaction ends.
pub async fn lock_payment(tx: &mut Tx, order_id: &str) -> Result<Option<Payment>, sqlx::Error> {
    let sql = format!(
        "SELECT id, order_id, user_id, amount_cents, status, reason FROM payments WHERE order_id = $1{}",
        tx.for_update()
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_optional(tx.conn())
        .await?
        .as_ref()
        .map(payment)
        .transpose()
}

/// Sets a payment's status.
pub async fn set_status(tx: &mut Tx, id: &str, status: &str, now_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE payments SET status = $1, updated_at_ms = $2 WHERE id = $3")
        .bind(status)
        .bind(now_ms)
        .bind(id)
        .execute(tx.conn())
        .await
        .map(|_| ())
}

/// Payments, of one order or all, oldest first.
pub async fn list(conn: &mut AnyConnection, order_id: Option<&str>) -> Result<Vec<Payment>, sqlx::Error> {
    sqlx::query(
        "SELECT id, order_id, user_id, amount_cents, status, reason FROM payments \
         WHERE ($1 IS NULL OR order_id = $1) ORDER BY created_at_ms, id LIMIT 1000",
    )
    .bind(order_id.map(str::to_owned))
    .fetch_all(conn)
    .await?
    .iter()
    .map(payment)
    .collect()
}
