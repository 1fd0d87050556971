//! What the notifications are (their channels and kinds) and what the mails say. Plain
//! types and functions: no I/O, easy to read and test.

use std::fmt;
use std::str::FromStr;

use shared_events::FailureReason;
use uuid::Uuid;

/// How a notification reaches its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// An e-mail.
    Email,
    /// A text message.
    Sms,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Self; 2] = [Self::Email, Self::Sms];

    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "EMAIL",
            Self::Sms => "SMS",
        }
    }
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The welcome after sign-up.
    Welcome,
    /// An order was confirmed.
    OrderConfirmed,
    /// An order was cancelled.
    OrderCancelled,
    /// Whatever `POST /api/emails/send` or `POST /api/sms/send` asked for.
    AdHoc,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Self; 4] = [Self::Welcome, Self::OrderConfirmed, Self::OrderCancelled, Self::AdHoc];

    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Welcome => "WELCOME",
            Self::OrderConfirmed => "ORDER_CONFIRMED",
            Self::OrderCancelled => "ORDER_CANCELLED",
            Self::AdHoc => "ADHOC",
        }
    }

    /// The fact a notification of this kind about `subject` (a user, an order) stands for,
    /// as stored in `about`: one notification per fact (`WELCOME:<userId>`).
    pub fn about(self, subject: Uuid) -> String {
        format!("{}:{subject}", self.as_str())
    }
}

/// Text that names no value of a stored enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    /// What it should have named (`channel`, `kind`).
    pub what: &'static str,
    /// The text.
    pub text: String,
}

impl fmt::Display for Unknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a {}", self.text, self.what)
    }
}

impl std::error::Error for Unknown {}

impl FromStr for Channel {
    type Err = Unknown;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        from_text(&Self::ALL, Self::as_str, "channel", text)
    }
}

impl FromStr for Kind {
    type Err = Unknown;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        from_text(&Self::ALL, Self::as_str, "kind", text)
    }
}

/// The value of `all` that `as_str` spells `text`.
fn from_text<T: Copy>(
    all: &[T],
    as_str: fn(T) -> &'static str,
    what: &'static str,
    text: &str,
) -> Result<T, Unknown> {
    all.iter()
        .copied()
        .find(|value| as_str(*value) == text)
        .ok_or_else(|| Unknown { what, text: text.to_owned() })
}

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
    fn channels_and_kinds_read_back_as_they_are_written() {
        for channel in Channel::ALL {
            assert_eq!(channel.as_str().parse::<Channel>(), Ok(channel));
        }
        for kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>(), Ok(kind));
        }
        assert_eq!("FAX".parse::<Channel>(), Err(Unknown { what: "channel", text: "FAX".to_owned() }));
        assert_eq!(Kind::Welcome.about(Uuid::nil()), format!("WELCOME:{}", Uuid::nil()));
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
