//! What the checker reads from each service's database.

use std::collections::HashMap;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

use crate::Databases;

/// A user (user-service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: String,
    /// E-mail address as signed up.
    pub email: String,
}

/// An order with its lines (order-service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Id.
    pub id: String,
    /// Who placed it.
    pub user_id: String,
    /// PENDING, CONFIRMED, CANCELLING or CANCELLED.
    pub status: String,
    /// Set once stock was reserved.
    pub total_cents: Option<i64>,
    /// (sku, quantity) per line.
    pub items: Vec<(String, i64)>,
    /// Every status it went through, in order (`order_history`).
    pub history: Vec<String>,
}

impl Order {
    /// Whether it was ever CONFIRMED (a cancelled order may have been, before a cancel).
    pub fn was_confirmed(&self) -> bool {
        self.history.iter().any(|status| status == "CONFIRMED")
    }
}

/// A product's counters (inventory-service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// SKU.
    pub sku: String,
    /// Units free to reserve.
    pub available: i64,
    /// Units held by reservations.
    pub reserved: i64,
    /// Units the last PUT made available plus those held then.
    pub stocked: i64,
}

/// A reservation of an order's units (inventory-service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The order.
    pub order_id: String,
    /// RESERVED (held) or RELEASED.
    pub status: String,
    /// (sku, quantity) per line.
    pub items: Vec<(String, i64)>,
}

/// A wallet (payment-service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    /// Owner.
    pub user_id: String,
    /// Balance when opened.
    pub initial_cents: i64,
    /// Balance now.
    pub balance_cents: i64,
}

/// A payment of an order (payment-service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// The order paid.
    pub order_id: String,
    /// The payer.
    pub user_id: String,
    /// Amount.
    pub amount_cents: i64,
    /// COMPLETED, FAILED or REFUNDED.
    pub status: String,
}

/// An e-mail that was sent (notification-service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// WELCOME, ORDER_CONFIRMED, ORDER_CANCELLED or ADHOC.
    pub kind: String,
    /// The user it is about, if any.
    pub user_id: Option<String>,
    /// The order it is about, if any.
    pub order_id: Option<String>,
}

/// Everything the rules look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every user.
    pub users: Vec<User>,
    /// Every order.
    pub orders: Vec<Order>,
    /// Every product.
    pub products: Vec<Product>,
    /// Every reservation.
    pub reservations: Vec<Reservation>,
    /// Every wallet.
    pub wallets: Vec<Wallet>,
    /// Deposits summed per user.
    pub deposits: HashMap<String, i64>,
    /// Every payment.
    pub payments: Vec<Payment>,
    /// Every e-mail sent.
    pub mails: Vec<Mail>,
    /// Events not yet published, per service.
    pub outbox_backlog: Vec<(&'static str, i64)>,
}

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the database of {service}")]
pub struct ReadError {
    /// Whose database.
    pub service: &'static str,
    /// What failed.
    #[source]
    pub source: sqlx::Error,
}

async fn open(service: &'static str, url: &str) -> Result<AnyPool, ReadError> {
    install_default_drivers();
    AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .map_err(|source| ReadError { service, source })
}

/// Runs `query` and maps each row; SQL is kept portable between SQLite and PostgreSQL
/// (sums cast to BIGINT, which PostgreSQL would otherwise return as NUMERIC).
async fn rows<T>(
    service: &'static str,
    pool: &AnyPool,
    query: &'static str,
    map: impl Fn(&sqlx::any::AnyRow) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, ReadError> {
    let fetched = sqlx::query(query).fetch_all(pool).await.map_err(|source| ReadError { service, source })?;
    fetched.iter().map(&map).collect::<Result<_, _>>().map_err(|source| ReadError { service, source })
}

fn lines(pairs: Vec<(String, String, i64)>) -> HashMap<String, Vec<(String, i64)>> {
    let mut by_owner: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    for (owner, sku, quantity) in pairs {
        by_owner.entry(owner).or_default().push((sku, quantity));
    }
    by_owner
}

async fn backlog(service: &'static str, pool: &AnyPool) -> Result<(&'static str, i64), ReadError> {
    let count =
        rows(service, pool, "SELECT COUNT(*) FROM outbox WHERE published_at_ms IS NULL", |r| r.try_get(0))
            .await?;
    Ok((service, count.into_iter().next().unwrap_or(0)))
}

/// Reads all five databases.
pub async fn read(databases: &Databases) -> Result<Snapshot, ReadError> {
    const USER: &str = "user-service";
    const ORDER: &str = "order-service";
    const INVENTORY: &str = "inventory-service";
    const PAYMENT: &str = "payment-service";
    const NOTIFICATION: &str = "notification-service";
    let user = open(USER, &databases.user).await?;
    let order = open(ORDER, &databases.order).await?;
    let inventory = open(INVENTORY, &databases.inventory).await?;
    let payment = open(PAYMENT, &databases.payment).await?;
    let notification = open(NOTIFICATION, &databases.notification).await?;

    // Orders first and e-mails last: a system still moving can only look behind, never
    // ahead (a mail seen for an order not yet read).
    let mut order_lines = lines(
        rows(ORDER, &order, "SELECT order_id, sku, quantity FROM order_items ORDER BY order_id, line", |r| {
            Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
        })
        .await?,
    );
    let mut histories: HashMap<String, Vec<String>> = HashMap::new();
    for (order_id, status) in
        rows(ORDER, &order, "SELECT order_id, status FROM order_history ORDER BY order_id, seq", |r| {
            Ok((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?))
        })
        .await?
    {
        histories.entry(order_id).or_default().push(status);
    }
    let orders = rows(ORDER, &order, "SELECT id, user_id, status, total_cents FROM orders", |r| {
        Ok((r.try_get::<String, _>(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))
    })
    .await?
    .into_iter()
    .map(|(id, user_id, status, total_cents)| {
        let items = order_lines.remove(&id).unwrap_or_default();
        let history = histories.remove(&id).unwrap_or_default();
        Order { id, user_id, status, total_cents, items, history }
    })
    .collect();
    let mut reservation_lines = lines(
        rows(
            INVENTORY,
            &inventory,
            "SELECT order_id, sku, quantity FROM reservation_items ORDER BY order_id, sku",
            |r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)),
        )
        .await?,
    );
    let reservations = rows(INVENTORY, &inventory, "SELECT order_id, status FROM reservations", |r| {
        Ok((r.try_get::<String, _>(0)?, r.try_get(1)?))
    })
    .await?
    .into_iter()
    .map(|(order_id, status)| {
        let items = reservation_lines.remove(&order_id).unwrap_or_default();
        Reservation { order_id, status, items }
    })
    .collect();
    let products =
        rows(INVENTORY, &inventory, "SELECT sku, available, reserved, stocked FROM products", |r| {
            Ok(Product {
                sku: r.try_get(0)?,
                available: r.try_get(1)?,
                reserved: r.try_get(2)?,
                stocked: r.try_get(3)?,
            })
        })
        .await?;
    let wallets = rows(PAYMENT, &payment, "SELECT user_id, initial_cents, balance_cents FROM wallets", |r| {
        Ok(Wallet { user_id: r.try_get(0)?, initial_cents: r.try_get(1)?, balance_cents: r.try_get(2)? })
    })
    .await?;
    let deposits = rows(
        PAYMENT,
        &payment,
        "SELECT user_id, CAST(SUM(amount_cents) AS BIGINT) FROM deposits GROUP BY user_id",
        |r| Ok((r.try_get(0)?, r.try_get(1)?)),
    )
    .await?
    .into_iter()
    .collect();
    let payments =
        rows(PAYMENT, &payment, "SELECT order_id, user_id, amount_cents, status FROM payments", |r| {
            Ok(Payment {
                order_id: r.try_get(0)?,
                user_id: r.try_get(1)?,
                amount_cents: r.try_get(2)?,
                status: r.try_get(3)?,
            })
        })
        .await?;
    let users = rows(USER, &user, "SELECT id, email FROM users", |r| {
        Ok(User { id: r.try_get(0)?, email: r.try_get(1)? })
    })
    .await?;
    let mails = rows(
        NOTIFICATION,
        &notification,
        "SELECT kind, user_id, order_id FROM notifications WHERE channel = 'EMAIL'",
        |r| Ok(Mail { kind: r.try_get(0)?, user_id: r.try_get(1)?, order_id: r.try_get(2)? }),
    )
    .await?;
    let mut outbox_backlog = Vec::new();
    for (service, pool) in [
        (USER, &user),
        (ORDER, &order),
        (INVENTORY, &inventory),
        (PAYMENT, &payment),
        (NOTIFICATION, &notification),
    ] {
        outbox_backlog.push(backlog(service, pool).await?);
        pool.close().await;
    }
    Ok(Snapshot { users, orders, products, reservations, wallets, deposits, payments, mails, outbox_backlog })
}
