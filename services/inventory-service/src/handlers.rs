//! The inventory's part of the saga: reserve on `OrderCreated`, release on
//! `PaymentFailed` (compensation) and on `PaymentRefunded` (a user's cancel).

use async_trait::async_trait;
use platform::clock::now_ms;
use platform::consumer::{EventMeta, Handler, HandlerError};
use platform::db::Tx;
use shared_events::{
    FailureReason, InventoryRejected, InventoryReleased, InventoryReserved, OrderCreated, PaymentFailed,
    PaymentRefunded,
};
use uuid::Uuid;

use crate::domain::{self, ReservationStatus};
use crate::store;

/// The lock every handler names: a release learns its SKUs only from the reservation it
/// reads, so the stock is named as a whole and the service's transactions take turns.
const STOCK: &str = "stock";

/// Reserves every item of a new order at the catalogue price, or none.
pub struct Reserve;

#[async_trait]
impl Handler<OrderCreated> for Reserve {
    fn locks(&self, _event: &OrderCreated) -> Vec<String> {
        vec![STOCK.to_owned()]
    }

    async fn handle(&self, event: OrderCreated, _meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        if store::lock_reservation(tx, event.order_id).await?.is_some() {
            return Ok(()); // reserved by an earlier copy of this order's event
        }
        let lines = domain::merge(&event.items);
        let stock = store::lock_stock(tx, &lines.keys().collect::<Vec<_>>()).await?;
        match domain::plan(&lines, &stock) {
            Ok(items) => {
                let now = now_ms();
                for item in &items {
                    store::move_to_reserved(tx, &item.sku, i64::from(item.quantity), now).await?;
                }
                let total_cents = domain::total(&items);
                store::insert_reservation(tx, event.order_id, event.user_id, &items, total_cents, now)
                    .await?;
                tx.publish(&InventoryReserved {
                    order_id: event.order_id,
                    user_id: event.user_id,
                    items,
                    total_cents,
                })
                .await?;
            }
            Err(rejection) => {
                tx.publish(&InventoryRejected {
                    order_id: event.order_id,
                    user_id: event.user_id,
                    reason: rejection.reason,
                    detail: rejection.detail,
                })
                .await?;
            }
        }
        Ok(())
    }
}

/// Puts an order's reserved stock back and says so; nothing if it is not reserved.
async fn release(
    tx: &mut Tx,
    order_id: Uuid,
    user_id: Uuid,
    reason: FailureReason,
) -> Result<(), HandlerError> {
    let Some(reservation) = store::lock_reservation(tx, order_id).await? else {
        return Err(HandlerError::permanent(format!("no reservation for order {order_id}")));
    };
    if reservation.status == ReservationStatus::Released {
        return Ok(()); // released already
    }
    let now = now_ms();
    for (sku, quantity) in &reservation.lines {
        store::move_to_reserved(tx, sku, -quantity, now).await?;
    }
    store::mark_released(tx, order_id, now).await?;
    tx.publish(&InventoryReleased { order_id, user_id, reason }).await?;
    Ok(())
}

/// Compensation: the payment failed, so the stock goes back.
pub struct ReleaseAfterFailedPayment;

#[async_trait]
impl Handler<PaymentFailed> for ReleaseAfterFailedPayment {
    fn locks(&self, _event: &PaymentFailed) -> Vec<String> {
        vec![STOCK.to_owned()]
    }

    async fn handle(&self, event: PaymentFailed, _meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        release(tx, event.order_id, event.user_id, event.reason).await
    }
}

/// A cancelled order was refunded, so the stock goes back.
pub struct ReleaseAfterRefund;

#[async_trait]
impl Handler<PaymentRefunded> for ReleaseAfterRefund {
    fn locks(&self, _event: &PaymentRefunded) -> Vec<String> {
        vec![STOCK.to_owned()]
    }

    async fn handle(
        &self,
        event: PaymentRefunded,
        _meta: &EventMeta,
        tx: &mut Tx,
    ) -> Result<(), HandlerError> {
        release(tx, event.order_id, event.user_id, FailureReason::CancelledByUser).await
    }
}
