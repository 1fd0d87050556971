//! The payload of every event of the contract: JSON, camelCase, money in integer cents.
//! Unknown fields are ignored when reading, so a producer may add fields freely.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Event, topics};

/// Why an order could not complete, or why its stock was released. The same words run
/// from the event that failed the order to the order's `failureReason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureReason {
    /// A requested quantity exceeds the available stock.
    OutOfStock,
    /// A requested SKU is not in the catalogue.
    UnknownSku,
    /// The wallet cannot cover the total.
    InsufficientFunds,
    /// The user has no wallet.
    NoWallet,
    /// The user cancelled a confirmed order.
    CancelledByUser,
}

impl FailureReason {
    /// Every reason of the contract.
    pub const ALL: [Self; 5] =
        [Self::OutOfStock, Self::UnknownSku, Self::InsufficientFunds, Self::NoWallet, Self::CancelledByUser];

    /// The contract's words (`OUT_OF_STOCK`, ...), as events, stores and the API spell them.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutOfStock => "OUT_OF_STOCK",
            Self::UnknownSku => "UNKNOWN_SKU",
            Self::InsufficientFunds => "INSUFFICIENT_FUNDS",
            Self::NoWallet => "NO_WALLET",
            Self::CancelledByUser => "CANCELLED_BY_USER",
        }
    }

    /// From the contract's words.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == text)
    }
}

impl std::str::FromStr for FailureReason {
    type Err = UnknownReason;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text).ok_or_else(|| UnknownReason(text.to_owned()))
    }
}

/// Text that is not one of the contract's failure reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownReason(pub String);

impl std::fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} is not a failure reason", self.0)
    }
}

impl std::error::Error for UnknownReason {}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of an order as the client asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    /// The product.
    pub sku: String,
    /// How many, 1..=1000.
    pub quantity: u32,
}

/// One line of an order with the catalogue price it was reserved at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PricedItem {
    /// The product.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// The catalogue price at reservation, in cents.
    pub unit_price_cents: i64,
}

/// A user signed up (topic `user.signed-up`, key userId).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSignedUp {
    /// The new user.
    pub user_id: Uuid,
    /// Their e-mail address.
    pub email: String,
    /// Their display name.
    pub name: String,
}

/// An order was accepted and awaits stock (topic `order.created`, key orderId).
///
/// Version 2 added the currency and the channel. A version 1 event (still in the topic
/// from before an upgrade) is read with the currency [`OrderCreated::V1_CURRENCY`] and
/// the channel [`OrderCreated::V1_CHANNEL`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCreated {
    /// The order.
    pub order_id: Uuid,
    /// Who ordered.
    pub user_id: Uuid,
    /// What was ordered.
    pub items: Vec<OrderItem>,
    /// The currency of its prices, ISO 4217 (since v2).
    pub currency: String,
    /// Where it was placed: `api` for the HTTP API (since v2).
    pub channel: String,
}

impl OrderCreated {
    /// The currency of the events before v2: the only one the system had.
    pub const V1_CURRENCY: &'static str = "EUR";
    /// The channel of the events before v2, which did not say.
    pub const V1_CHANNEL: &'static str = "unknown";

    /// An order placed through the HTTP API, in the system's currency.
    pub fn placed(order_id: Uuid, user_id: Uuid, items: Vec<OrderItem>) -> Self {
        Self { order_id, user_id, items, currency: Self::V1_CURRENCY.to_owned(), channel: "api".to_owned() }
    }
}

/// Every item of an order is reserved (topic `inventory.reserved`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryReserved {
    /// The order.
    pub order_id: Uuid,
    /// Who ordered.
    pub user_id: Uuid,
    /// The items with the prices they were reserved at.
    pub items: Vec<PricedItem>,
    /// Sum of quantity × unit price, in cents.
    pub total_cents: i64,
}

/// An order's stock could not be reserved; nothing was (topic `inventory.rejected`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryRejected {
    /// The order.
    pub order_id: Uuid,
    /// Who ordered.
    pub user_id: Uuid,
    /// `OUT_OF_STOCK` or `UNKNOWN_SKU`.
    pub reason: FailureReason,
    /// Which SKU and why, for people.
    pub detail: String,
}

/// A wallet was charged for an order (topic `payment.completed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentCompleted {
    /// The payment.
    pub payment_id: Uuid,
    /// The order paid for.
    pub order_id: Uuid,
    /// Whose wallet.
    pub user_id: Uuid,
    /// The amount charged, in cents.
    pub amount_cents: i64,
}

/// A wallet could not be charged (topic `payment.failed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentFailed {
    /// The order.
    pub order_id: Uuid,
    /// Whose wallet.
    pub user_id: Uuid,
    /// The amount that was asked for, in cents.
    pub amount_cents: i64,
    /// `INSUFFICIENT_FUNDS` or `NO_WALLET`.
    pub reason: FailureReason,
}

/// An order's reservation was released (topic `inventory.released`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryReleased {
    /// The order.
    pub order_id: Uuid,
    /// Who ordered.
    pub user_id: Uuid,
    /// What led to the release: the payment's failure, or `CANCELLED_BY_USER`.
    pub reason: FailureReason,
}

/// An order is paid and final (topic `order.confirmed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderConfirmed {
    /// The order.
    pub order_id: Uuid,
    /// Who ordered.
    pub user_id: Uuid,
    /// What was charged, in cents.
    pub total_cents: i64,
}

/// An order ended without completing (topic `order.cancelled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCancelled {
    /// The order.
    pub order_id: Uuid,
    /// Who ordered.
    pub user_id: Uuid,
    /// Why.
    pub reason: FailureReason,
}

/// A user asked to cancel a confirmed order (topic `order.cancel-requested`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCancelRequested {
    /// The order.
    pub order_id: Uuid,
    /// Who ordered.
    pub user_id: Uuid,
}

/// A completed payment was paid back (topic `payment.refunded`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRefunded {
    /// The payment refunded.
    pub payment_id: Uuid,
    /// Its order.
    pub order_id: Uuid,
    /// Whose wallet got the money back.
    pub user_id: Uuid,
    /// The amount, in cents.
    pub amount_cents: i64,
}

/// An e-mail to send (topic `email.send`, key the recipient).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailSendMessage {
    /// Sender address.
    pub from: String,
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// An SMS to send (topic `sms.send`, key the recipient).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmsSendMessage {
    /// Recipient phone number.
    pub to: String,
    /// The text.
    pub text: String,
}

macro_rules! event {
    ($payload:ty, $topic:expr, $type:literal, |$e:ident| $key:expr) => {
        impl Event for $payload {
            const TOPIC: &'static str = $topic;
            const TYPE: &'static str = $type;
            fn key(&self) -> String {
                let $e = self;
                $key.to_string()
            }
        }
    };
}

event!(UserSignedUp, topics::USER_SIGNED_UP, "user.signed-up.v1", |e| e.user_id);

impl Event for OrderCreated {
    const TOPIC: &'static str = topics::ORDER_CREATED;
    const TYPE: &'static str = "order.created.v2";
    const OLDEST_VERSION: u32 = 1;

    fn key(&self) -> String {
        self.order_id.to_string()
    }

    fn upcast(version: u32, payload: &mut serde_json::Map<String, serde_json::Value>) {
        if version < 2 {
            payload.entry("currency").or_insert_with(|| Self::V1_CURRENCY.into());
            payload.entry("channel").or_insert_with(|| Self::V1_CHANNEL.into());
        }
    }
}
event!(InventoryReserved, topics::INVENTORY_RESERVED, "inventory.reserved.v1", |e| e.order_id);
event!(InventoryRejected, topics::INVENTORY_REJECTED, "inventory.rejected.v1", |e| e.order_id);
event!(PaymentCompleted, topics::PAYMENT_COMPLETED, "payment.completed.v1", |e| e.order_id);
event!(PaymentFailed, topics::PAYMENT_FAILED, "payment.failed.v1", |e| e.order_id);
event!(InventoryReleased, topics::INVENTORY_RELEASED, "inventory.released.v1", |e| e.order_id);
event!(OrderConfirmed, topics::ORDER_CONFIRMED, "order.confirmed.v1", |e| e.order_id);
event!(OrderCancelled, topics::ORDER_CANCELLED, "order.cancelled.v1", |e| e.order_id);
event!(OrderCancelRequested, topics::ORDER_CANCEL_REQUESTED, "order.cancel-requested.v1", |e| e.order_id);
event!(PaymentRefunded, topics::PAYMENT_REFUNDED, "payment.refunded.v1", |e| e.order_id);
event!(EmailSendMessage, topics::EMAIL_SEND, "email.send.v1", |e| e.to);
event!(SmsSendMessage, topics::SMS_SEND, "sms.send.v1", |e| e.to);

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn a_reason_reads_the_same_in_events_as_in_text() {
        for reason in FailureReason::ALL {
            assert_eq!(serde_json::to_value(reason).expect("serialisable"), reason.as_str());
            assert_eq!(FailureReason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(FailureReason::parse("out_of_stock"), None);
    }

    #[test]
    fn payloads_use_the_contract_field_names() {
        let reserved = InventoryReserved {
            order_id: id(1),
            user_id: id(2),
            items: vec![PricedItem { sku: "SKU-1".into(), quantity: 2, unit_price_cents: 1250 }],
            total_cents: 2500,
        };
        assert_eq!(
            serde_json::to_value(&reserved).expect("serialisable"),
            serde_json::json!({
                "orderId": "00000000-0000-0000-0000-000000000001",
                "userId": "00000000-0000-0000-0000-000000000002",
                "items": [{"sku": "SKU-1", "quantity": 2, "unitPriceCents": 1250}],
                "totalCents": 2500
            })
        );
        let failed = PaymentFailed {
            order_id: id(1),
            user_id: id(2),
            amount_cents: 5,
            reason: FailureReason::NoWallet,
        };
        assert_eq!(serde_json::to_value(&failed).expect("serialisable")["reason"], "NO_WALLET");
    }

    #[test]
    fn unknown_fields_are_ignored_and_missing_ones_rejected() {
        let json = r#"{"orderId":"00000000-0000-0000-0000-000000000001",
                       "userId":"00000000-0000-0000-0000-000000000002","addedLater":true}"#;
        let requested: OrderCancelRequested = serde_json::from_str(json).expect("unknown field ignored");
        assert_eq!(requested.order_id, id(1));
        assert!(serde_json::from_str::<OrderConfirmed>(json).is_err(), "totalCents is required");
    }

    #[test]
    fn a_v1_order_created_is_read_as_v2_with_the_defaults_and_v2_as_it_is() {
        let v1 = r#"{"orderId":"00000000-0000-0000-0000-000000000001",
                     "userId":"00000000-0000-0000-0000-000000000002","items":[]}"#;
        let mut payload: serde_json::Map<String, serde_json::Value> = serde_json::from_str(v1).expect("json");
        assert!(
            serde_json::from_value::<OrderCreated>(payload.clone().into()).is_err(),
            "v1 lacks v2's fields"
        );
        OrderCreated::upcast(1, &mut payload);
        let read: OrderCreated = serde_json::from_value(payload.into()).expect("upcast");
        assert_eq!((read.currency.as_str(), read.channel.as_str()), ("EUR", "unknown"));

        let v2 = OrderCreated { currency: "CHF".into(), ..OrderCreated::placed(id(1), id(2), vec![]) };
        let mut payload = match serde_json::to_value(&v2).expect("json") {
            serde_json::Value::Object(map) => map,
            other => panic!("an object, not {other}"),
        };
        OrderCreated::upcast(2, &mut payload);
        assert_eq!(serde_json::from_value::<OrderCreated>(payload.into()).expect("v2"), v2);
        assert_eq!(crate::name_and_version("order.created.v2"), Some(("order.created", 2)));
        assert_eq!(crate::name_and_version("order.created"), None);
    }

    #[test]
    fn every_event_names_its_topic_type_and_key() {
        let created = OrderCreated::placed(id(7), id(8), vec![]);
        assert_eq!(OrderCreated::TOPIC, "order.created");
        assert_eq!(OrderCreated::TYPE, "order.created.v2");
        assert_eq!(created.key(), id(7).to_string());
        let signed_up = UserSignedUp { user_id: id(9), email: "a@b.c".into(), name: "A".into() };
        assert_eq!(signed_up.key(), id(9).to_string());
        for (topic, kind) in [
            (UserSignedUp::TOPIC, UserSignedUp::TYPE),
            (PaymentRefunded::TOPIC, PaymentRefunded::TYPE),
            (EmailSendMessage::TOPIC, EmailSendMessage::TYPE),
            (SmsSendMessage::TOPIC, SmsSendMessage::TYPE),
        ] {
            assert_eq!(kind, format!("{topic}.v1"));
            assert!(topics::ALL.contains(&topic));
        }
    }
}
