//! What the mails say: plain functions, no I/O, easy to read and test.

use shared_events::FailureReason;
use uuid::Uuid;

/// A mail to write: subject and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// The welcome mail after sign-up.
pub fn welcome(name: &str) -> Mail {
    Mail {
        subject: format!("Welcome, {name}!"),
        body: format!("Hello {name},\n\nyour account is ready. Happy shopping!\n"),
    }
}

/// The mail for a confirmed order.
pub fn order_confirmed(name: &str, order_id: Uuid, total_cents: i64) -> Mail {
    Mail {
        subject: format!("Order {order_id} confirmed"),
        body: format!(
            "Hello {name},\n\nyour order {order_id} is confirmed and paid: {}.\n",
            money(total_cents)
        ),
    }
}

/// The mail for a cancelled order, saying why.
pub fn order_cancelled(name: &str, order_id: Uuid, reason: FailureReason) -> Mail {
    let why = match reason {
        FailureReason::OutOfStock => "an item is out of stock",
        FailureReason::UnknownSku => "an item is not in our catalogue",
        FailureReason::InsufficientFunds => "your wallet could not cover it",
        FailureReason::NoWallet => "you have no wallet yet",
        FailureReason::CancelledByUser => "you cancelled it; any payment has been refunded",
    };
    Mail {
        subject: format!("Order {order_id} cancelled"),
        body: format!("Hello {name},\n\nyour order {order_id} was cancelled: {why}.\n"),
    }
}

/// Cents as an amount: `12345` → `123.45`.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.unsigned_abs() / 100, cents.unsigned_abs() % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_has_two_decimals() {
        assert_eq!(money(12345), "123.45");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(0), "0.00");
        assert_eq!(money(-250), "-2.50");
    }

    #[test]
    fn cancellation_mails_say_why() {
        let id = Uuid::nil();
        assert!(
            order_cancelled("Ada", id, FailureReason::InsufficientFunds)
                .body
                .contains("wallet could not cover")
        );
        assert_eq!(order_confirmed("Ada", id, 2500).subject, format!("Order {id} confirmed"));
        assert_eq!(welcome("Ada").subject, "Welcome, Ada!");
    }
}
