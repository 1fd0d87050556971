//! The order's part of the saga: it ends what it started. Confirmed on
//! `PaymentCompleted`; cancelled on `InventoryRejected` or `InventoryReleased`.

use async_trait::async_trait;
use platform::clock::now_ms;
use platform::consumer::{EventMeta, Handler, HandlerError};
use platform::db::Tx;
use shared_events::{InventoryRejected, InventoryReleased, OrderCancelled, OrderConfirmed, PaymentCompleted};
use uuid::Uuid;

use crate::domain::{self, Status, Step};
use crate::store;

/// Applies `step` to order `order_id` and publishes what it became; a step that does not
/// apply (a repeated or late event) changes nothing.
async fn apply(
    tx: &mut Tx,
    order_id: Uuid,
    step: Step,
    total_cents: Option<i64>,
) -> Result<(), HandlerError> {
    let id = order_id.to_string();
    let Some((status, user_id)) = store::lock(tx, &id).await? else {
        return Err(HandlerError::permanent(format!("no order {order_id}")));
    };
    let Some((next, reason)) = domain::next(status, step) else {
        tracing::debug!(%order_id, %status, ?step, "step does not apply");
        return Ok(());
    };
    let reason_text = reason.map(domain::reason_text);
    store::transition(tx, &id, next, reason_text.as_deref(), total_cents, now_ms()).await?;
    let user_id: Uuid = user_id.parse().map_err(|e| HandlerError::permanent(format!("user id: {e}")))?;
    match (next, reason) {
        (Status::Confirmed, _) => {
            tx.publish(&OrderConfirmed { order_id, user_id, total_cents: total_cents.unwrap_or_default() })
                .await?;
        }
        (Status::Cancelled, Some(reason)) => {
            tx.publish(&OrderCancelled { order_id, user_id, reason }).await?;
        }
        _ => {}
    }
    Ok(())
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
        apply(tx, event.order_id, Step::Paid, Some(event.amount_cents)).await
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
        apply(tx, event.order_id, Step::Rejected(event.reason), None).await
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
        apply(tx, event.order_id, Step::Released(event.reason), None).await
    }
}
