//! The payment's part of the saga: open wallets on sign-up, charge on
//! `InventoryReserved`, refund on `OrderCancelRequested`.

use async_trait::async_trait;
use platform::clock::now_ms;
use platform::consumer::{EventMeta, Handler, HandlerError};
use platform::db::Tx;
use shared_events::{
    InventoryReserved, OrderCancelRequested, PaymentCompleted, PaymentFailed, PaymentRefunded, UserSignedUp,
};
use uuid::Uuid;

use crate::domain::{self, PaymentStatus};
use crate::store::{self, Payment};

/// A user's wallet row, as the handlers name it to lock it.
fn wallet_lock(user_id: Uuid) -> String {
    format!("wallet:{user_id}")
}

/// An order's payment row, as the handlers name it to lock it.
fn payment_lock(order_id: Uuid) -> String {
    format!("payment:{order_id}")
}

/// Opens a wallet with the initial balance for every new user.
pub struct OpenWallet {
    /// What a new wallet holds, in cents.
    pub initial_cents: i64,
}

#[async_trait]
impl Handler<UserSignedUp> for OpenWallet {
    fn locks(&self, event: &UserSignedUp) -> Vec<String> {
        vec![wallet_lock(event.user_id)]
    }

    async fn handle(&self, event: UserSignedUp, _meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        store::open_wallet(tx, event.user_id, self.initial_cents, now_ms()).await?;
        Ok(())
    }
}

/// Charges the user's wallet the reserved total: completed, or failed with why. A user
/// without a wallet yet is a transient failure, retried with the retry policy while the
/// `UserSignedUp` that opens it may still come; on the last attempt it fails `NO_WALLET`.
pub struct Charge;

#[async_trait]
impl Handler<InventoryReserved> for Charge {
    fn locks(&self, event: &InventoryReserved) -> Vec<String> {
        vec![payment_lock(event.order_id), wallet_lock(event.user_id)]
    }

    async fn handle(
        &self,
        event: InventoryReserved,
        meta: &EventMeta,
        tx: &mut Tx,
    ) -> Result<(), HandlerError> {
        if store::lock_payment(tx, event.order_id).await?.is_some() {
            return Ok(()); // charged (or refused) for an earlier copy of the event
        }
        let amount_cents = event.total_cents;
        let balance = store::lock_balance(tx, event.user_id).await?;
        let charged = match domain::charge(balance, amount_cents, meta.last_attempt) {
            domain::Charge::Paid(balance_cents) => Ok(balance_cents),
            domain::Charge::Refused(reason) => Err(reason),
            domain::Charge::WaitForWallet => {
                return Err(HandlerError::transient(format!(
                    "no wallet for user {} yet (attempt {})",
                    event.user_id, meta.attempt
                )));
            }
        };
        let payment = Payment {
            id: Uuid::now_v7(),
            order_id: event.order_id,
            user_id: event.user_id,
            amount_cents,
            status: if charged.is_ok() { PaymentStatus::Completed } else { PaymentStatus::Failed },
            reason: charged.err(),
        };
        // The payment row before the money: on PostgreSQL a copy of the event handled at the
        // same moment finds no payment to lock above, and is stopped here instead.
        if !store::insert_payment(tx, &payment, now_ms()).await? {
            return Ok(());
        }
        match charged {
            Ok(balance_cents) => {
                store::set_balance(tx, event.user_id, balance_cents).await?;
                tx.publish(&PaymentCompleted {
                    payment_id: payment.id,
                    order_id: event.order_id,
                    user_id: event.user_id,
                    amount_cents,
                })
                .await?;
            }
            Err(reason) => {
                tx.publish(&PaymentFailed {
                    order_id: event.order_id,
                    user_id: event.user_id,
                    amount_cents,
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
    /// The wallet locked is the payment's user's, which must be the event's user (the
    /// order's owner); `handle` refuses the event otherwise.
    fn locks(&self, event: &OrderCancelRequested) -> Vec<String> {
        vec![payment_lock(event.order_id), wallet_lock(event.user_id)]
    }

    async fn handle(
        &self,
        event: OrderCancelRequested,
        _meta: &EventMeta,
        tx: &mut Tx,
    ) -> Result<(), HandlerError> {
        let Some(payment) = store::lock_payment(tx, event.order_id).await? else {
            return Err(HandlerError::permanent(format!("no payment for order {}", event.order_id)));
        };
        if payment.user_id != event.user_id {
            // The wallet named to lock is the event's user's: refunding another would lock
            // a row unnamed, which a batch beside this one might hold.
            return Err(HandlerError::permanent(format!(
                "order {} was paid by user {}, not by {}",
                event.order_id, payment.user_id, event.user_id
            )));
        }
        let Some(refunded) = domain::refund(payment.status) else {
            return Ok(()); // refused (nothing was taken), or refunded already
        };
        let Some(balance_cents) = store::lock_balance(tx, payment.user_id).await? else {
            return Err(HandlerError::permanent(format!("no wallet for user {}", payment.user_id)));
        };
        let balance_cents = domain::credit(balance_cents, payment.amount_cents).ok_or_else(|| {
            HandlerError::permanent(format!("refunding order {} overflows the balance", event.order_id))
        })?;
        store::set_balance(tx, payment.user_id, balance_cents).await?;
        store::set_status(tx, payment.id, refunded, now_ms()).await?;
        tx.publish(&PaymentRefunded {
            payment_id: payment.id,
            order_id: event.order_id,
            user_id: event.user_id,
            amount_cents: payment.amount_cents,
        })
        .await?;
        Ok(())
    }
}
