//! The invariants of the contract, as plain functions over a [`Snapshot`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use crate::snapshot::{Order, Snapshot};

/// Which invariant a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// Every accepted order ends CONFIRMED or CANCELLED.
    OrderTerminal,
    /// A CONFIRMED order has exactly one completed, unrefunded payment of its total; a
    /// CANCELLED one has none.
    OrderPayment,
    /// Each wallet's balance = initial + deposits − completed payments + refunds.
    WalletBalance,
    /// Each product's stock = available + reserved-and-not-released.
    Stock,
    /// Units are held exactly for CONFIRMED orders, as many as they ordered.
    Reservation,
    /// Each user gets exactly one welcome e-mail.
    WelcomeMail,
    /// Each terminal order gets exactly one e-mail about it (per terminal status it
    /// reached: one cancelled after it was confirmed has two).
    OrderMail,
    /// Every event written to an outbox was published.
    Outbox,
    /// Each order's history is a path of the saga, each step once, ending at its status.
    History,
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::OrderTerminal => "order-terminal",
            Self::OrderPayment => "order-payment",
            Self::WalletBalance => "wallet-balance",
            Self::Stock => "stock",
            Self::Reservation => "reservation",
            Self::WelcomeMail => "welcome-mail",
            Self::OrderMail => "order-mail",
            Self::Outbox => "outbox",
            Self::History => "history",
        };
        f.write_str(name)
    }
}

/// One broken invariant, with the id of what breaks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// The order, user, SKU or service.
    pub id: String,
    /// What was found.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.invariant, self.id, self.detail)
    }
}

fn violation(invariant: Invariant, id: &str, detail: String) -> Violation {
    Violation { invariant, id: id.to_owned(), detail }
}

/// Every violation in `snapshot`; none means every invariant holds.
pub fn check(snapshot: &Snapshot) -> Vec<Violation> {
    let mut found = Vec::new();
    found.extend(orders_terminal(snapshot));
    found.extend(order_payments(snapshot));
    found.extend(wallet_balances(snapshot));
    found.extend(stock(snapshot));
    found.extend(reservations(snapshot));
    found.extend(mails(snapshot));
    found.extend(outboxes(snapshot));
    found.extend(histories(snapshot));
    found
}

/// The paths an order's history may take, each a prefix of the next where they share
/// steps: placed, then confirmed or cancelled; a confirmed order may be cancelled by its
/// user, through CANCELLING.
const SAGA_PATHS: [&[&str]; 2] =
    [&["PENDING", "CANCELLED"], &["PENDING", "CONFIRMED", "CANCELLING", "CANCELLED"]];

fn histories(snapshot: &Snapshot) -> Vec<Violation> {
    let in_saga_order = |history: &[String]| {
        SAGA_PATHS.iter().any(|path| path.len() >= history.len() && path[..history.len()] == *history)
    };
    snapshot
        .orders
        .iter()
        .filter_map(|order| {
            let ends_at_status = order.history.last() == Some(&order.status);
            (!in_saga_order(&order.history) || !ends_at_status).then(|| {
                violation(
                    Invariant::History,
                    &order.id,
                    format!("{} with history {:?}, not a path of the saga", order.status, order.history),
                )
            })
        })
        .collect()
}

/// Effects found more than once where the contract allows one: payments of an order,
/// steps of an order's history, e-mails about one order or one user's welcome. Every one
/// of them also breaks an invariant; this is the count a chaos run reports.
pub fn duplicates(snapshot: &Snapshot) -> usize {
    let extra = |counts: HashMap<(&str, &str), usize>| counts.values().map(|n| n - 1).sum::<usize>();
    let mut payments = HashMap::new();
    for payment in &snapshot.payments {
        *payments.entry((payment.order_id.as_str(), "")).or_default() += 1;
    }
    let mut steps = HashMap::new();
    for order in &snapshot.orders {
        for status in &order.history {
            *steps.entry((order.id.as_str(), status.as_str())).or_default() += 1;
        }
    }
    let mut mails = HashMap::new();
    for mail in &snapshot.mails {
        let about = mail.order_id.as_deref().or(mail.user_id.as_deref()).unwrap_or_default();
        if mail.kind != "ADHOC" {
            *mails.entry((about, mail.kind.as_str())).or_default() += 1;
        }
    }
    extra(payments) + extra(steps) + extra(mails)
}

fn orders_terminal(snapshot: &Snapshot) -> Vec<Violation> {
    snapshot
        .orders
        .iter()
        .filter(|o| o.status != "CONFIRMED" && o.status != "CANCELLED")
        .map(|o| violation(Invariant::OrderTerminal, &o.id, format!("is {}", o.status)))
        .collect()
}

fn order_payments(snapshot: &Snapshot) -> Vec<Violation> {
    let mut completed: HashMap<&str, Vec<i64>> = HashMap::new();
    for payment in snapshot.payments.iter().filter(|p| p.status == "COMPLETED") {
        completed.entry(&payment.order_id).or_default().push(payment.amount_cents);
    }
    let mut found = Vec::new();
    for order in &snapshot.orders {
        let paid = completed.get(order.id.as_str()).map_or(&[][..], Vec::as_slice);
        match order.status.as_str() {
            "CONFIRMED" if paid.len() != 1 || order.total_cents != Some(paid[0]) => found.push(violation(
                Invariant::OrderPayment,
                &order.id,
                format!("CONFIRMED for {:?} cents with completed payments {paid:?}", order.total_cents),
            )),
            "CANCELLED" if !paid.is_empty() => found.push(violation(
                Invariant::OrderPayment,
                &order.id,
                format!("CANCELLED with completed payments {paid:?}"),
            )),
            _ => {}
        }
    }
    found
}

fn wallet_balances(snapshot: &Snapshot) -> Vec<Violation> {
    // A refunded payment was completed and then refunded: it nets to nothing.
    let mut spent: HashMap<&str, i64> = HashMap::new();
    for payment in snapshot.payments.iter().filter(|p| p.status == "COMPLETED") {
        *spent.entry(&payment.user_id).or_default() += payment.amount_cents;
    }
    snapshot
        .wallets
        .iter()
        .filter_map(|w| {
            let deposits = snapshot.deposits.get(&w.user_id).copied().unwrap_or(0);
            let spent = spent.get(w.user_id.as_str()).copied().unwrap_or(0);
            let expected = w.initial_cents + deposits - spent;
            (w.balance_cents != expected).then(|| {
                violation(
                    Invariant::WalletBalance,
                    &w.user_id,
                    format!(
                        "balance {} ≠ initial {} + deposits {deposits} − completed payments {spent} = {expected}",
                        w.balance_cents, w.initial_cents
                    ),
                )
            })
        })
        .collect()
}

/// Units held per SKU by reservations not released.
fn held_units(snapshot: &Snapshot) -> HashMap<&str, i64> {
    let mut held: HashMap<&str, i64> = HashMap::new();
    for reservation in snapshot.reservations.iter().filter(|r| r.status == "RESERVED") {
        for (sku, quantity) in &reservation.items {
            *held.entry(sku).or_default() += quantity;
        }
    }
    held
}

fn stock(snapshot: &Snapshot) -> Vec<Violation> {
    let held = held_units(snapshot);
    let mut found = Vec::new();
    for product in &snapshot.products {
        let held = held.get(product.sku.as_str()).copied().unwrap_or(0);
        if product.reserved != held {
            found.push(violation(
                Invariant::Stock,
                &product.sku,
                format!("reserved {} ≠ {held} units held by reservations", product.reserved),
            ));
        }
        if product.available + held != product.stocked {
            found.push(violation(
                Invariant::Stock,
                &product.sku,
                format!("stock {} ≠ available {} + held {held}", product.stocked, product.available),
            ));
        }
    }
    found
}

/// The units of an order per SKU (an order may name a SKU on several lines).
fn units(items: &[(String, i64)]) -> BTreeMap<&str, i64> {
    let mut units = BTreeMap::new();
    for (sku, quantity) in items {
        *units.entry(sku.as_str()).or_default() += quantity;
    }
    units
}

fn reservations(snapshot: &Snapshot) -> Vec<Violation> {
    let held: HashMap<&str, _> = snapshot
        .reservations
        .iter()
        .filter(|r| r.status == "RESERVED")
        .map(|r| (r.order_id.as_str(), units(&r.items)))
        .collect();
    let orders: HashMap<&str, &Order> = snapshot.orders.iter().map(|o| (o.id.as_str(), o)).collect();
    let mut found = Vec::new();
    for order in snapshot.orders.iter().filter(|o| o.status == "CONFIRMED") {
        match held.get(order.id.as_str()) {
            None => {
                found.push(violation(Invariant::Reservation, &order.id, "CONFIRMED, no units held".into()))
            }
            Some(held) if *held != units(&order.items) => found.push(violation(
                Invariant::Reservation,
                &order.id,
                format!("CONFIRMED for {:?}, units held {held:?}", units(&order.items)),
            )),
            Some(_) => {}
        }
    }
    for (order_id, _) in held {
        match orders.get(order_id) {
            Some(order) if order.status == "CONFIRMED" => {}
            Some(order) => found.push(violation(
                Invariant::Reservation,
                order_id,
                format!("units held for an order that is {}", order.status),
            )),
            None => found.push(violation(Invariant::Reservation, order_id, "units held for no order".into())),
        }
    }
    found
}

/// Mail to an address whose local part ends in `+fail` fails on purpose, every time.
fn undeliverable(email: &str) -> bool {
    email.split('@').next().is_some_and(|local| local.ends_with("+fail"))
}

fn mails(snapshot: &Snapshot) -> Vec<Violation> {
    let mut welcome: HashMap<&str, usize> = HashMap::new();
    let mut about_order: HashMap<&str, Vec<&str>> = HashMap::new();
    for mail in &snapshot.mails {
        match (mail.kind.as_str(), &mail.user_id, &mail.order_id) {
            ("WELCOME", Some(user), _) => *welcome.entry(user).or_default() += 1,
            ("ORDER_CONFIRMED" | "ORDER_CANCELLED", _, Some(order)) => {
                about_order.entry(order).or_default().push(&mail.kind);
            }
            _ => {}
        }
    }
    let mailable: HashSet<&str> =
        snapshot.users.iter().filter(|u| !undeliverable(&u.email)).map(|u| u.id.as_str()).collect();
    let mut found = Vec::new();
    for user in &snapshot.users {
        let expected = usize::from(mailable.contains(user.id.as_str()));
        let sent = welcome.get(user.id.as_str()).copied().unwrap_or(0);
        if sent != expected {
            found.push(violation(
                Invariant::WelcomeMail,
                &user.id,
                format!("{sent} welcome e-mails to {}, expected {expected}", user.email),
            ));
        }
    }
    for order in &snapshot.orders {
        if order.status != "CONFIRMED" && order.status != "CANCELLED" {
            continue;
        }
        let mut expected = Vec::new();
        // An order of an unknown user (NO_WALLET) or an undeliverable one has no mail.
        if mailable.contains(order.user_id.as_str()) {
            if order.status == "CONFIRMED" || order.was_confirmed() {
                expected.push("ORDER_CONFIRMED");
            }
            if order.status == "CANCELLED" {
                expected.push("ORDER_CANCELLED");
            }
        }
        let mut sent = about_order.get(order.id.as_str()).cloned().unwrap_or_default();
        sent.sort_unstable();
        expected.sort_unstable();
        if sent != expected {
            found.push(violation(
                Invariant::OrderMail,
                &order.id,
                format!("{} with e-mails {sent:?}, expected {expected:?}", order.status),
            ));
        }
    }
    found
}

fn outboxes(snapshot: &Snapshot) -> Vec<Violation> {
    snapshot
        .outbox_backlog
        .iter()
        .filter(|(_, pending)| *pending > 0)
        .map(|(service, pending)| {
            violation(Invariant::Outbox, service, format!("{pending} events not published"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Mail, Payment, Product, Reservation, User, Wallet};

    const INITIAL: i64 = 100_000;

    /// Two users; one order confirmed (2 × BOOK, 5000), one cancelled after a refund.
    fn consistent() -> Snapshot {
        let items = vec![("BOOK".to_owned(), 2)];
        let order = |id: &str, history: &[&str]| Order {
            id: id.into(),
            user_id: "u1".into(),
            status: (*history.last().expect("a status")).into(),
            total_cents: Some(5000),
            items: items.clone(),
            history: history.iter().map(|s| (*s).to_owned()).collect(),
        };
        let mail = |kind: &str, user: &str, order: Option<&str>| Mail {
            kind: kind.into(),
            user_id: Some(user.into()),
            order_id: order.map(Into::into),
        };
        Snapshot {
            users: vec![
                User { id: "u1".into(), email: "a@example.com".into() },
                User { id: "u2".into(), email: "b+fail@example.com".into() },
            ],
            orders: vec![
                order("o1", &["PENDING", "CONFIRMED"]),
                order("o2", &["PENDING", "CONFIRMED", "CANCELLING", "CANCELLED"]),
            ],
            products: vec![Product { sku: "BOOK".into(), available: 8, reserved: 2, stocked: 10 }],
            reservations: vec![
                Reservation { order_id: "o1".into(), status: "RESERVED".into(), items: items.clone() },
                Reservation { order_id: "o2".into(), status: "RELEASED".into(), items },
            ],
            wallets: vec![
                Wallet { user_id: "u1".into(), initial_cents: INITIAL, balance_cents: INITIAL - 5000 + 700 },
                Wallet { user_id: "u2".into(), initial_cents: INITIAL, balance_cents: INITIAL },
            ],
            deposits: HashMap::from([("u1".to_owned(), 700)]),
            payments: vec![
                Payment {
                    order_id: "o1".into(),
                    user_id: "u1".into(),
                    amount_cents: 5000,
                    status: "COMPLETED".into(),
                },
                Payment {
                    order_id: "o2".into(),
                    user_id: "u1".into(),
                    amount_cents: 5000,
                    status: "REFUNDED".into(),
                },
            ],
            mails: vec![
                mail("WELCOME", "u1", None),
                mail("ORDER_CONFIRMED", "u1", Some("o1")),
                mail("ORDER_CANCELLED", "u1", Some("o2")),
                mail("ORDER_CONFIRMED", "u1", Some("o2")),
            ],
            outbox_backlog: vec![("order-service", 0)],
        }
    }

    fn broken(change: impl FnOnce(&mut Snapshot)) -> Vec<(Invariant, String)> {
        let mut snapshot = consistent();
        change(&mut snapshot);
        check(&snapshot).into_iter().map(|v| (v.invariant, v.id)).collect()
    }

    #[test]
    fn a_consistent_system_has_no_violation() {
        assert_eq!(check(&consistent()), vec![]);
    }

    #[test]
    fn an_order_left_pending_is_named() {
        let found = broken(|s| s.orders[1].status = "CANCELLING".into());
        assert!(found.contains(&(Invariant::OrderTerminal, "o2".into())), "{found:?}");
    }

    #[test]
    fn a_charge_applied_twice_breaks_the_wallet() {
        let found = broken(|s| s.wallets[0].balance_cents -= 5000);
        assert_eq!(found, vec![(Invariant::WalletBalance, "u1".into())]);
    }

    #[test]
    fn a_confirmed_order_without_its_payment_or_a_cancelled_one_with_it_is_named() {
        let found = broken(|s| {
            s.payments[0].status = "FAILED".into();
            s.payments[1].status = "COMPLETED".into();
            s.wallets[0].balance_cents = INITIAL + 700 - 5000;
        });
        assert_eq!(
            found,
            vec![(Invariant::OrderPayment, "o1".into()), (Invariant::OrderPayment, "o2".into())]
        );
    }

    #[test]
    fn a_release_applied_twice_breaks_the_stock() {
        let found = broken(|s| {
            s.products[0].available += 2;
            s.products[0].reserved -= 2;
        });
        assert_eq!(found, vec![(Invariant::Stock, "BOOK".into()), (Invariant::Stock, "BOOK".into())]);
    }

    #[test]
    fn units_held_for_a_cancelled_order_or_missing_for_a_confirmed_one_are_named() {
        let found = broken(|s| {
            s.reservations[0].status = "RELEASED".into();
            s.reservations[1].status = "RESERVED".into();
        });
        assert_eq!(found, vec![(Invariant::Reservation, "o1".into()), (Invariant::Reservation, "o2".into())]);
    }

    #[test]
    fn a_second_welcome_or_a_missing_order_mail_is_named() {
        let found = broken(|s| {
            s.mails.push(s.mails[0].clone());
            s.mails.retain(|m| !(m.order_id.as_deref() == Some("o2") && m.kind == "ORDER_CANCELLED"));
        });
        assert_eq!(found, vec![(Invariant::WelcomeMail, "u1".into()), (Invariant::OrderMail, "o2".into())]);
    }

    #[test]
    fn an_undeliverable_address_expects_no_mail_and_an_unpublished_event_is_named() {
        let found = broken(|s| {
            s.mails.push(Mail { kind: "WELCOME".into(), user_id: Some("u2".into()), order_id: None });
            s.outbox_backlog[0].1 = 3;
        });
        assert_eq!(
            found,
            vec![(Invariant::WelcomeMail, "u2".into()), (Invariant::Outbox, "order-service".into())]
        );
    }

    #[test]
    fn a_history_out_of_saga_order_or_with_a_step_twice_is_named_and_counted() {
        assert_eq!(duplicates(&consistent()), 0);
        let history = |s: &mut Snapshot, i: usize, steps: &[&str]| {
            s.orders[i].history = steps.iter().map(|step| (*step).to_owned()).collect();
        };
        let found = broken(|s| history(s, 0, &["PENDING", "CANCELLED", "CONFIRMED"]));
        assert_eq!(found, vec![(Invariant::History, "o1".into())]);
        let found =
            broken(|s| history(s, 1, &["PENDING", "CONFIRMED", "CANCELLING", "CANCELLING", "CANCELLED"]));
        assert_eq!(found, vec![(Invariant::History, "o2".into())]);
        let found = broken(|s| history(s, 0, &["PENDING"]));
        assert_eq!(found, vec![(Invariant::History, "o1".into())], "CONFIRMED, its history ends PENDING");
        let mut twice = consistent();
        history(&mut twice, 0, &["PENDING", "CONFIRMED", "CONFIRMED"]);
        twice.payments.push(twice.payments[0].clone());
        twice.mails.push(twice.mails[0].clone());
        assert_eq!(duplicates(&twice), 3);
    }
}
