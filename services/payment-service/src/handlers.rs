//! The payment's part of the saga: open wallets on sign-up, charge on
//! `InventoryReserved`, refund on `OrderCancelRequested`.

use async_trait::async_trait;
use platform::clock::now_ms;
use platform::consumer::{EventMeta, Handler, HandlerError};
use platform::db::Tx;
use shared_events::{
    FailureReason, InventoryReserved, OrderCancelRequested, PaymentCompleted, PaymentFailed, PaymentRefunded,
    UserSignedUp,
};
use uuid::Uuid;

use crate::store::{self, Payment};

/// Opens a wallet with the initial balance for every new user.
pub struct OpenWallet {
    /// What a new wallet holds, in cents.
    pub initial_cents: i64,
}

#[async_trait]
impl Handler<UserSignedUp> for OpenWallet {
    async fn handle(&self, event: UserSignedUp, _meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        store::open_wallet(tx, &event.user_id.to_string(), self.initial_cents, now_ms()).await?;
        Ok(())
    }
}

/// Charges the user's wallet the reserved total: completed, or failed with why.
pub struct Charge;

#[async_trait]
impl Handler<InventoryReserved> for Charge {
    async fn handle(
        &self,
        event: InventoryReserved,
        _meta: &EventMeta,
        tx: &mut Tx,
    ) -> Result<(), HandlerError> {
        let order_id = event.order_id.to_string();
        if store::lock_payment(tx, &order_id).await?.is_some() {
            return Ok(()); // charged (or refused) for an earlier copy of the event
        }
        let user_id = event.user_id.to_string();
        let amount = event.total_cents;
        let failure = match store::lock_balance(tx, &user_id).await? {
            None => Some(FailureReason::NoWallet),
            Some(_) if !store::add_to_balance(tx, &user_id, -amount).await? => {
                Some(FailureReason::InsufficientFunds)
            }
            Some(_) => None,
        };
        let payment_id = Uuid::now_v7();
        let payment = Payment {
            id: payment_id.to_string(),
            order_id,
            user_id,
            amount_cents: amount,
            status: if failure.is_some() { "FAILED" } else { "COMPLETED" }.to_owned(),
            reason: failure.map(|r| {
                serde_json::to_value(r).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
            }),
        };
        store::insert_payment(tx, &payment, now_ms()).await?;
        match failure {
            None => {
                tx.publish(&PaymentCompleted {
                    payment_id,
                    order_id: event.order_id,
                    user_id: event.user_id,
                    amount_cents: amount,
                })
                .await?;
            }
            Some(reason) => {
                tx.publish(&PaymentFailed {
                    order_id: event.order_id,
                    user_id: event.user_id,
                    amount_cents: amount,
                    reason,
                })
                .await?;
            }
        }
        Ok(())
    }
}

/// Pays a completed payment back when its order is cancelled.
pub struct Refund;

#[async_trait]
impl Handler<OrderCancelRequested> for Refund {
    async fn handle(
        &self,
        event: OrderCancelRequested,
        _meta: &EventMeta,
        tx: &mut Tx,
    ) -> Result<(), HandlerError> {
        let Some(payment) = store::lock_payment(tx, &event.order_id.to_string()).await? else {
            return Err(HandlerError::permanent(format!("no payment for order {}", event.order_id)));
        };
        if payment.status != "COMPLETED" {
            return Ok(()); // refunded already
        }
        store::add_to_balance(tx, &payment.user_id, payment.amount_cents).await?;
        store::set_status(tx, &payment.id, "REFUNDED", now_ms()).await?;
        let payment_id =
            payment.id.parse().map_err(|e| HandlerError::permanent(format!("payment id: {e}")))?;
        tx.publish(&PaymentRefunded {
            payment_id,
            order_id: event.order_id,
            user_id: event.user_id,
            amount_cents: payment.amount_cents,
        })
        .await?;
        Ok(())
    }
}
