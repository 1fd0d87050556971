//! What moves an order, in one place: the saga's events (confirmed on `PaymentCompleted`;
//! cancelled on `InventoryRejected` or `InventoryReleased`) and the user's cancel that the
//! API takes. Each is a [`Step`] taken by [`apply`].

use async_trait::async_trait;
use platform::clock::now_ms;
use platform::consumer::{EventMeta, Handler, HandlerError};
use platform::db::{Db, Tx};
use shared_events::{
    InventoryRejected, InventoryReleased, OrderCancelRequested, OrderCancelled, OrderConfirmed,
    PaymentCompleted,
};
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

/// [`apply`] for an event of the saga: a missing order is a permanent failure; a step
/// that does not apply (a repeated or late event) changes nothing.
async fn saga_step(tx: &mut Tx, order_id: Uuid, step: Step) -> Result<(), HandlerError> {
    match apply(tx, order_id, step).await? {
        Outcome::NotFound => Err(HandlerError::permanent(format!("no order {order_id}"))),
        Outcome::Refused(status) => {
            tracing::debug!(%order_id, %status, ?step, "step does not apply");
            Ok(())
        }
        Outcome::Moved(_) => Ok(()),
    }
}

/// Confirms a paid order.
pub struct Confirm;

#[async_trait]
impl Handler<PaymentCompleted> for Confirm {
    async fn handle(
        &self,
        event: PaymentCompleted,
        _meta: &EventMeta,
        tx: &mut Tx,
    ) -> Result<(), HandlerError> {
        saga_step(tx, event.order_id, Step::Paid { total_cents: event.amount_cents }).await
    }
}

/// Cancels an order whose stock could not be reserved.
pub struct CancelRejected;

#[async_trait]
impl Handler<InventoryRejected> for CancelRejected {
    async fn handle(
        &self,
        event: InventoryRejected,
        _meta: &EventMeta,
        tx: &mut Tx,
    ) -> Result<(), HandlerError> {
        saga_step(tx, event.order_id, Step::Rejected(event.reason)).await
    }
}

/// Cancels an order whose reservation was released (payment failed, or user cancel).
pub struct CancelReleased;

#[async_trait]
impl Handler<InventoryReleased> for CancelReleased {
    async fn handle(
        &self,
        event: InventoryReleased,
        _meta: &EventMeta,
        tx: &mut Tx,
    ) -> Result<(), HandlerError> {
        saga_step(tx, event.order_id, Step::Released(event.reason)).await
    }
}
