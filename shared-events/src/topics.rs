//! Topic names: one topic per event type, keyed by the aggregate id.

/// `UserSignedUp`, keyed by userId; produced by user-service.
pub const USER_SIGNED_UP: &str = "user.signed-up";
/// `OrderCreated`, keyed by orderId; produced by order-service.
pub const ORDER_CREATED: &str = "order.created";
/// `InventoryReserved`; produced by inventory-service.
pub const INVENTORY_RESERVED: &str = "inventory.reserved";
/// `InventoryRejected`; produced by inventory-service.
pub const INVENTORY_REJECTED: &str = "inventory.rejected";
/// `PaymentCompleted`; produced by payment-service.
pub const PAYMENT_COMPLETED: &str = "payment.completed";
/// `PaymentFailed`; produced by payment-service.
pub const PAYMENT_FAILED: &str = "payment.failed";
/// `InventoryReleased`; produced by inventory-service.
pub const INVENTORY_RELEASED: &str = "inventory.released";
/// `OrderConfirmed`; produced by order-service.
pub const ORDER_CONFIRMED: &str = "order.confirmed";
/// `OrderCancelled`; produced by order-service.
pub const ORDER_CANCELLED: &str = "order.cancelled";
/// `OrderCancelRequested`; produced by order-service.
pub const ORDER_CANCEL_REQUESTED: &str = "order.cancel-requested";
/// `PaymentRefunded`; produced by payment-service.
pub const PAYMENT_REFUNDED: &str = "payment.refunded";
/// `EmailSendMessage`; produced by notification-service.
pub const EMAIL_SEND: &str = "email.send";
/// `SmsSendMessage`; produced by notification-service.
pub const SMS_SEND: &str = "sms.send";

/// Every topic of the contract.
pub const ALL: [&str; 13] = [
    USER_SIGNED_UP,
    ORDER_CREATED,
    INVENTORY_RESERVED,
    INVENTORY_REJECTED,
    PAYMENT_COMPLETED,
    PAYMENT_FAILED,
    INVENTORY_RELEASED,
    ORDER_CONFIRMED,
    ORDER_CANCELLED,
    ORDER_CANCEL_REQUESTED,
    PAYMENT_REFUNDED,
    EMAIL_SEND,
    SMS_SEND,
];

/// The suffix of a topic's dead-letter topic.
pub const DEAD_LETTER_SUFFIX: &str = ".dlt";

/// `<topic>.dlt`: where a message that cannot be processed ends up.
pub fn dead_letter(topic: &str) -> String {
    format!("{topic}{DEAD_LETTER_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_dead_letters_derive_from_them() {
        let mut names = ALL.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert_eq!(dead_letter(EMAIL_SEND), "email.send.dlt");
    }
}
