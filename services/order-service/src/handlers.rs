//! The order's part of the saga: it ends what it started. Confirmed on `PaymentCompleted`;
//! cancelled on `InventoryRejected` or `InventoryReleased`. Each is a [`Step`] taken by
//! [`steps::apply`].

use async_trait::async_trait;
use platform::consumer::{EventMeta, Handler, HandlerError};
use platform::db::Tx;
use shared_events::{InventoryRejected, InventoryReleased, PaymentCompleted};
use uuid::Uuid;

use crate::domain::Step;
use crate::steps::{self, Outcome};

/// The one row a step locks: its order's.
fn order_lock(order_id: Uuid) -> String {
    format!("order:{order_id}")
}

/// [`steps::apply`] for an event of the saga: a missing order is a permanent failure; a step
/// that does not apply (a repeated or late event) changes nothing.
async fn saga_step(tx: &mut Tx, order_id: Uuid, step: Step) -> Result<(), HandlerError> {
    match steps::apply(tx, order_id, step).await? {
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
    fn locks(&self, event: &PaymentCompleted) -> Vec<String> {
        vec![order_lock(event.order_id)]
    }

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
    fn locks(&self, event: &InventoryRejected) -> Vec<String> {
        vec![order_lock(event.order_id)]
    }

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
    fn locks(&self, event: &InventoryReleased) -> Vec<String> {
        vec![order_lock(event.order_id)]
    }

    async fn handle(
        &self,
        event: InventoryReleased,
        _meta: &EventMeta,
        tx: &mut Tx,
    ) -> Result<(), HandlerError> {
        saga_step(tx, event.order_id, Step::Released(event.reason)).await
    }
}
