//! What moves an order, in one place: a [`Step`] (an event of the saga, or the user's
//! cancel that the API takes) applied to the locked order, decided by
//! [`domain::next`], recorded, and published.

use platform::auth::Caller;
use platform::clock::now_ms;
use platform::db::{Db, Tx};
use shared_events::{OrderCancelRequested, OrderCancelled, OrderConfirmed};
use uuid::Uuid;

use crate::domain::{self, Status, Step};
use crate::store::{self, Order};

/// What became of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// There is no such order, or none the caller may see.
    NotFound,
    /// The step does not apply to an order in this status; nothing changed.
    Refused(Status),
    /// The order moved.
    Moved(T),
}

/// Applies `step` to order `order_id` in `tx`: locks it, decides with [`domain::next`],
/// records the move and publishes what it became. Returns the new status.
pub async fn apply(tx: &mut Tx, order_id: Uuid, step: Step) -> Result<Outcome<Status>, sqlx::Error> {
    apply_if_owned(tx, order_id, step, |_| true).await
}

/// [`apply`] to an order whose owner passes `owned`; any other is [`Outcome::NotFound`].
/// The owner is checked on the locked row, before the step is decided: an order that is
/// not the caller's neither moves nor says what status it is in.
async fn apply_if_owned(
    tx: &mut Tx,
    order_id: Uuid,
    step: Step,
    owned: impl FnOnce(Uuid) -> bool,
) -> Result<Outcome<Status>, sqlx::Error> {
    let Some((status, user_id)) = store::lock(tx, order_id).await? else {
        return Ok(Outcome::NotFound);
    };
    if !owned(user_id) {
        return Ok(Outcome::NotFound);
    }
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

/// `caller`'s cancel of order `order_id`, in a transaction of its own: the order as it
/// now is when it moved. Another user's order is [`Outcome::NotFound`] (an admin's
/// cancel applies to any).
pub async fn cancel(db: &Db, order_id: Uuid, caller: Caller) -> Result<Outcome<Order>, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let step = Step::CancelRequested;
    let outcome = match apply_if_owned(&mut tx, order_id, step, |owner| caller.owns(owner)).await? {
        Outcome::Moved(_) => match store::find(tx.conn().await?, order_id).await? {
            Some(order) => Outcome::Moved(order),
            None => Outcome::NotFound,
        },
        Outcome::NotFound => Outcome::NotFound,
        Outcome::Refused(status) => Outcome::Refused(status),
    };
    tx.commit().await?;
    Ok(outcome)
}
