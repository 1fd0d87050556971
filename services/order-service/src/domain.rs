//! An order's life: its statuses, the moves between them, and a valid new order.

use platform::problem::Problem;
use platform::validate::IntRule;
use shared_events::{FailureReason, OrderItem};
use uuid::Uuid;

platform::text_enum! {
    /// Where an order stands.
    pub enum Status {
        /// Waiting for stock and payment.
        Pending = "PENDING",
        /// Paid and final (until the user cancels it).
        Confirmed = "CONFIRMED",
        /// The user cancelled it; refund and release under way.
        Cancelling = "CANCELLING",
        /// Ended without completing.
        Cancelled = "CANCELLED",
    }
}

/// What moves an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The payment went through, for this total.
    Paid {
        /// What was charged.
        total_cents: i64,
    },
    /// The stock could not be reserved.
    Rejected(FailureReason),
    /// The reservation was released (after a failed payment, or a refund).
    Released(FailureReason),
    /// The user asked to cancel.
    CancelRequested,
}

/// The status after `step`, with its reason; `None` when the step does not apply (a
/// late or repeated event, or a cancel of an order that cannot be cancelled).
pub fn next(status: Status, step: Step) -> Option<(Status, Option<FailureReason>)> {
    match (status, step) {
        (Status::Pending, Step::Paid { .. }) => Some((Status::Confirmed, None)),
        (Status::Pending, Step::Rejected(reason) | Step::Released(reason)) => {
            Some((Status::Cancelled, Some(reason)))
        }
        (Status::Confirmed, Step::CancelRequested) => {
            Some((Status::Cancelling, Some(FailureReason::CancelledByUser)))
        }
        (Status::Cancelling, Step::Released(_)) => {
            Some((Status::Cancelled, Some(FailureReason::CancelledByUser)))
        }
        _ => None,
    }
}

/// How many lines an order has.
pub const LINES: IntRule = IntRule(1..=50);

/// How many units a line orders.
pub const QUANTITY: IntRule = IntRule(1..=1000);

/// A valid order request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// Who orders.
    pub user_id: Uuid,
    /// 1 to 50 lines of 1 to 1000 units.
    pub items: Vec<OrderItem>,
}

impl NewOrder {
    /// Validates a request: the first rule broken is the 422.
    pub fn parse(user_id: &str, items: Vec<(String, i64)>) -> Result<Self, Problem> {
        let user_id = user_id.parse::<Uuid>().map_err(|_| Problem::invalid("userId", "is not a UUID"))?;
        LINES.check(items.len() as i64).map_err(|rule| Problem::invalid("items", format!("{rule} lines")))?;
        let mut valid = Vec::with_capacity(items.len());
        for (n, (sku, quantity)) in items.into_iter().enumerate() {
            if let Err(rule) = platform::validate::sku(&sku) {
                return Err(Problem::invalid(&format!("items[{n}].sku"), rule));
            }
            let quantity = QUANTITY
                .check(quantity)
                .map_err(|rule| Problem::invalid(&format!("items[{n}].quantity"), rule))?;
            valid.push(OrderItem { sku, quantity: quantity as u32 });
        }
        Ok(Self { user_id, items: valid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_saga_moves_an_order_only_along_the_contract() {
        use FailureReason::*;
        let paid = Step::Paid { total_cents: 2500 };
        assert_eq!(next(Status::Pending, paid), Some((Status::Confirmed, None)));
        assert_eq!(
            next(Status::Pending, Step::Rejected(OutOfStock)),
            Some((Status::Cancelled, Some(OutOfStock)))
        );
        assert_eq!(
            next(Status::Pending, Step::Released(NoWallet)),
            Some((Status::Cancelled, Some(NoWallet)))
        );
        assert_eq!(
            next(Status::Confirmed, Step::CancelRequested),
            Some((Status::Cancelling, Some(CancelledByUser)))
        );
        assert_eq!(
            next(Status::Cancelling, Step::Released(CancelledByUser)),
            Some((Status::Cancelled, Some(CancelledByUser)))
        );
        for status in [Status::Pending, Status::Cancelling, Status::Cancelled] {
            assert_eq!(next(status, Step::CancelRequested), None, "{status} cannot be cancelled");
        }
        assert_eq!(next(Status::Confirmed, paid), None);
        assert_eq!(next(Status::Cancelled, Step::Released(InsufficientFunds)), None);
    }

    #[test]
    fn statuses_are_spelled_as_the_contract_says() {
        let words: Vec<&str> = Status::ALL.iter().map(|status| status.as_str()).collect();
        assert_eq!(words, ["PENDING", "CONFIRMED", "CANCELLING", "CANCELLED"]);
        assert!("pending".parse::<Status>().is_err());
    }

    #[test]
    fn a_new_order_needs_a_user_and_one_to_fifty_sensible_lines() {
        let user = Uuid::new_v4().to_string();
        assert!(NewOrder::parse(&user, vec![("SKU-1".into(), 2)]).is_ok());
        let field = |result: Result<NewOrder, Problem>| result.expect_err("invalid").field.expect("field");
        assert_eq!(field(NewOrder::parse("42", vec![("A".into(), 1)])), "userId");
        assert_eq!(field(NewOrder::parse(&user, vec![])), "items");
        assert_eq!(field(NewOrder::parse(&user, vec![("A".into(), 1); 51])), "items");
        assert_eq!(field(NewOrder::parse(&user, vec![("A".into(), 0)])), "items[0].quantity");
        assert_eq!(
            field(NewOrder::parse(&user, vec![("A".into(), 1), ("B".into(), 1001)])),
            "items[1].quantity"
        );
        assert_eq!(field(NewOrder::parse(&user, vec![("".into(), 1)])), "items[0].sku");
    }
}
