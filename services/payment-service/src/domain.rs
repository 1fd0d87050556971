//! Wallets and payments as plain rules: what a charge, a refund and a deposit come to,
//! given the balance the transaction has locked. The store reads and writes; these decide.

use platform::problem::Problem;
use platform::validate::IntRule;
use shared_events::FailureReason;

platform::text_enum! {
    /// Where a payment stands.
    pub enum PaymentStatus {
        /// The wallet was charged.
        Completed = "COMPLETED",
        /// The charge was refused (see its reason); nothing moved.
        Failed = "FAILED",
        /// The charge was paid back after the order was cancelled.
        Refunded = "REFUNDED",
    }
}

/// What becomes of a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// Paid: the wallet's balance after it.
    Paid(i64),
    /// Refused, for this reason; nothing moves.
    Refused(FailureReason),
    /// Not decided yet: the user has no wallet, but the `UserSignedUp` that opens it may
    /// not have been consumed yet. The event is tried again later.
    WaitForWallet,
}

/// What charging `amount_cents` to a wallet holding `balance` (`None`: the user has no
/// wallet) comes to. A balance never goes below zero. A missing wallet is waited for,
/// until `last_attempt`: then the charge is refused with `NO_WALLET`, so that the order
/// is cancelled rather than left pending behind a dead letter.
pub fn charge(balance: Option<i64>, amount_cents: i64, last_attempt: bool) -> Charge {
    match balance {
        None if last_attempt => Charge::Refused(FailureReason::NoWallet),
        None => Charge::WaitForWallet,
        Some(balance) => balance
            .checked_sub(amount_cents)
            .filter(|after| *after >= 0)
            .map_or(Charge::Refused(FailureReason::InsufficientFunds), Charge::Paid),
    }
}

/// The status a refund moves a payment to; `None` when there is nothing to pay back (the
/// charge was refused, or refunded already by an earlier copy of the event).
pub fn refund(status: PaymentStatus) -> Option<PaymentStatus> {
    match status {
        PaymentStatus::Completed => Some(PaymentStatus::Refunded),
        PaymentStatus::Failed | PaymentStatus::Refunded => None,
    }
}

/// The balance after `amount_cents` come in (a deposit or a refund); `None` past what a
/// balance can hold, which a real wallet never reaches.
pub fn credit(balance: i64, amount_cents: i64) -> Option<i64> {
    balance.checked_add(amount_cents)
}

/// The largest single deposit, in cents (1,000,000.00).
pub const MAX_DEPOSIT_CENTS: i64 = 100_000_000;

/// A deposit's amount in cents: 1 cent to [`MAX_DEPOSIT_CENTS`].
pub const DEPOSIT_CENTS: IntRule = IntRule(1..=MAX_DEPOSIT_CENTS);

/// A deposit's amount, checked once ([`DEPOSIT_CENTS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepositAmount(i64);

impl DepositAmount {
    /// Validates `amountCents`.
    pub fn parse(cents: i64) -> Result<Self, Problem> {
        DEPOSIT_CENTS.check(cents).map(Self).map_err(|rule| Problem::invalid("amountCents", rule))
    }

    /// In cents.
    pub fn cents(self) -> i64 {
        self.0
    }
}

/// The balance after a deposit into a wallet holding `balance`.
pub fn deposit(balance: i64, amount: DepositAmount) -> Result<i64, Problem> {
    credit(balance, amount.cents())
        .ok_or_else(|| Problem::invalid("amountCents", "would take the balance past its limit"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_needs_a_wallet_that_covers_the_whole_amount() {
        use FailureReason::InsufficientFunds;
        for last_attempt in [false, true] {
            let charge = |balance, amount| charge(Some(balance), amount, last_attempt);
            assert_eq!(charge(1_000, 400), Charge::Paid(600));
            assert_eq!(charge(1_000, 1_000), Charge::Paid(0), "down to zero exactly");
            assert_eq!(charge(1_000, 1_001), Charge::Refused(InsufficientFunds));
            assert_eq!(charge(0, 1), Charge::Refused(InsufficientFunds));
            assert_eq!(charge(0, i64::MIN), Charge::Refused(InsufficientFunds), "no overflow");
        }
    }

    #[test]
    fn a_missing_wallet_is_waited_for_until_the_last_attempt_refuses_the_charge() {
        assert_eq!(charge(None, 1, false), Charge::WaitForWallet);
        assert_eq!(charge(None, 0, false), Charge::WaitForWallet, "whatever the amount");
        assert_eq!(charge(None, 1, true), Charge::Refused(FailureReason::NoWallet));
        assert_eq!(
            charge(None, 0, true),
            Charge::Refused(FailureReason::NoWallet),
            "no wallet wins over any amount"
        );
    }

    #[test]
    fn only_a_completed_payment_is_refunded_and_only_once() {
        assert_eq!(refund(PaymentStatus::Completed), Some(PaymentStatus::Refunded));
        assert_eq!(refund(PaymentStatus::Refunded), None);
        assert_eq!(refund(PaymentStatus::Failed), None);
        assert_eq!(credit(600, 400), Some(1_000));
        assert_eq!(credit(i64::MAX, 1), None);
    }

    #[test]
    fn deposits_are_one_cent_to_a_million_and_add_to_the_balance() {
        for bad in [0, -1, MAX_DEPOSIT_CENTS + 1] {
            let problem = DepositAmount::parse(bad).expect_err("out of range");
            assert_eq!((problem.status, problem.field.as_deref()), (422, Some("amountCents")));
            assert_eq!(problem.detail.as_deref(), Some("amountCents: must be from 1 to 100000000"));
        }
        let most = DepositAmount::parse(MAX_DEPOSIT_CENTS).expect("the largest");
        assert_eq!(deposit(5, DepositAmount::parse(1).expect("the smallest")), Ok(6));
        assert_eq!(deposit(0, most), Ok(MAX_DEPOSIT_CENTS));
        assert_eq!(deposit(i64::MAX, most).expect_err("overflow").field.as_deref(), Some("amountCents"));
    }

    #[test]
    fn statuses_read_back_what_they_write() {
        for status in [PaymentStatus::Completed, PaymentStatus::Failed, PaymentStatus::Refunded] {
            assert_eq!(status.as_str().parse(), Ok(status));
            assert_eq!(status.to_string(), status.as_str());
        }
        assert!("completed".parse::<PaymentStatus>().is_err());
    }
}
