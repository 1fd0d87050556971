//! What moves an order, in one place: a [`Step`] (an event of the saga, or the user's
//! cancel that the API takes) applied to the locked order, decided by
//! [`domain::next`], recorded, and published.

use platform::clock::now_ms;
use platform::db::{Db, Tx};
use shared_events::{OrderCancelRequested, OrderCancelled, OrderConfirmed};
use uuid::Uuid;

use crate::domain::{self, Status, Step};
use crate::store::{self, Order};

/// What became of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// There is no such order.
    NotFound,
    /// The step does not apply to an order in this status; nothing changed.
    Refused(Status),
    /// The order moved.
    Moved(T),
}

/// Applies `step` to order `order_id` in `tx`: locks it, decides with [`domain::next`],
/// records the move and publishes what it became. Returns the new status.
pub async fn apply(tx: &mut Tx, order_id: Uuid, step: Step) -> Result<Outcome<Status>, sqlx::Error> {
    let Some((status, user_id)) = store::lock(tx, order_id).await? else {
        return Ok(Outcome::NotFound);
    };
    let Some((next, reason)) = domain::next(status, step) else {
        return Ok(Outcome::Refused(status));
    };
    let total_cents = match step {
        Step::Paid { total_cents } => Some(total_cents),
        _ => None,
    };
    store::transition(tx, order_id, next, reason, total_cents, now_ms()).await?;
    match (next, reason, total_cents) {
        (Status::Confirmed, _, Some(total_cents)) => {
            tx.publish(&OrderConfirmed { order_id, user_id, total_cents }).await?;
        }
        (Status::Cancelling, _, _) => {
            tx.publish(&OrderCancelRequested { order_id, user_id }).await?;
        }
        (Status::Cancelled, Some(reason), _) => {
            tx.publish(&OrderCancelled { order_id, user_id, reason }).await?;
        }
        _ => {}
    }
    Ok(Outcome::Moved(next))
}

/// The user's cancel of order `order_id`, in a transaction of its own: the order as it
/// now is when it moved.
pub async fn cancel(db: &Db, order_id: Uuid) -> Result<Outcome<Order>, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let outcome = match apply(&mut tx, order_id, Step::CancelRequested).await? {
        Outcome::Moved(_) => match store::find(tx.conn(), order_id).await? {
            Some(order) => Outcome::Moved(order),
            None => Outcome::NotFound,
        },
        Outcome::NotFound => Outcome::NotFound,
        Outcome::Refused(status) => Outcome::Refused(status),
    };
    tx.commit().await?;
    Ok(outcome)
}
