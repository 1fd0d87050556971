//! The catalogue's rules and reserving stock for an order, as plain functions of the
//! request, the order and the stock.

use std::collections::BTreeMap;

use platform::problem::Problem;
use platform::validate::{self, IntRule, TextRule};

/// A product's name: 1 to 200 characters, not blank.
pub static NAME: TextRule = validate::name(1..=200);

/// A unit price in cents: not negative.
pub const PRICE_CENTS: IntRule = IntRule(0..=i64::MAX);

/// Units that can be reserved.
pub const AVAILABLE: IntRule = IntRule(0..=1_000_000_000);
use shared_events::{FailureReason, OrderItem, PricedItem};

/// A valid `PUT /api/products/{sku}`: what the catalogue stores for a SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductUpdate {
    /// 1 to 64 of letters, digits, `-`, `_` and `.`.
    pub sku: String,
    /// 1 to 200 characters, trimmed.
    pub name: String,
    /// Price per unit, in cents: not negative.
    pub price_cents: i64,
    /// Units that can be reserved: 0 to 1,000,000,000.
    pub available: i64,
}

impl ProductUpdate {
    /// Validates a request: the first rule broken is the 422.
    pub fn parse(sku: &str, name: &str, price_cents: i64, available: i64) -> Result<Self, Problem> {
        validate::sku(sku).map_err(|rule| Problem::invalid("sku", rule))?;
        let name = NAME.check(name).map_err(|rule| Problem::invalid("name", rule))?.trim_matches(' ');
        let price_cents =
            PRICE_CENTS.check(price_cents).map_err(|rule| Problem::invalid("priceCents", rule))?;
        let available = AVAILABLE.check(available).map_err(|rule| Problem::invalid("available", rule))?;
        Ok(Self { sku: sku.to_owned(), name: name.to_owned(), price_cents, available })
    }
}

platform::text_enum! {
    /// Where an order's reservation stands.
    pub enum ReservationStatus {
        /// The stock is held for the order (and stays held once it is paid: sold).
        Reserved = "RESERVED",
        /// The stock went back: the payment failed, or the order was cancelled and refunded.
        Released = "RELEASED",
    }
}

/// A product as the reservation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stock {
    /// Price per unit, in cents.
    pub price_cents: i64,
    /// Units that can be reserved.
    pub available: i64,
}

/// Why an order cannot be reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `UNKNOWN_SKU` or `OUT_OF_STOCK`.
    pub reason: FailureReason,
    /// Which SKU, and what was asked and left.
    pub detail: String,
}

/// The order's lines, one per SKU (quantities of repeated SKUs summed), in SKU order.
pub fn merge(items: &[OrderItem]) -> BTreeMap<String, i64> {
    let mut merged = BTreeMap::new();
    for item in items {
        *merged.entry(item.sku.clone()).or_insert(0) += i64::from(item.quantity);
    }
    merged
}

/// What to reserve, at the current prices, or why nothing can be: all or nothing.
pub fn plan(
    lines: &BTreeMap<String, i64>,
    stock: &BTreeMap<String, Stock>,
) -> Result<Vec<PricedItem>, Rejection> {
    let mut priced = Vec::with_capacity(lines.len());
    for (sku, quantity) in lines {
        let Some(product) = stock.get(sku) else {
            return Err(Rejection { reason: FailureReason::UnknownSku, detail: format!("no product {sku}") });
        };
        if product.available < *quantity {
            return Err(Rejection {
                reason: FailureReason::OutOfStock,
                detail: format!("{sku}: {quantity} asked, {} available", product.available),
            });
        }
        priced.push(PricedItem {
            sku: sku.clone(),
            quantity: u32::try_from(*quantity).unwrap_or(u32::MAX),
            unit_price_cents: product.price_cents,
        });
    }
    Ok(priced)
}

/// Sum of quantity × unit price.
pub fn total(items: &[PricedItem]) -> i64 {
    items.iter().map(|i| i64::from(i.quantity) * i.unit_price_cents).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(sku: &str, quantity: u32) -> OrderItem {
        OrderItem { sku: sku.into(), quantity }
    }

    fn stock(entries: &[(&str, i64, i64)]) -> BTreeMap<String, Stock> {
        entries
            .iter()
            .map(|(sku, price, available)| {
                ((*sku).into(), Stock { price_cents: *price, available: *available })
            })
            .collect()
    }

    #[test]
    fn reserves_every_line_at_the_current_price() {
        let lines = merge(&[item("B", 2), item("A", 1), item("B", 1)]);
        let planned = plan(&lines, &stock(&[("A", 500, 1), ("B", 250, 3)])).expect("enough");
        assert_eq!(
            planned,
            [
                PricedItem { sku: "A".into(), quantity: 1, unit_price_cents: 500 },
                PricedItem { sku: "B".into(), quantity: 3, unit_price_cents: 250 },
            ]
        );
        assert_eq!(total(&planned), 1250);
    }

    #[test]
    fn an_unknown_sku_or_a_short_line_rejects_the_whole_order() {
        let unknown =
            plan(&merge(&[item("A", 1), item("Z", 1)]), &stock(&[("A", 1, 5)])).expect_err("unknown");
        assert_eq!(unknown.reason, FailureReason::UnknownSku);
        assert!(unknown.detail.contains('Z'));
        let short = plan(&merge(&[item("A", 2), item("A", 2)]), &stock(&[("A", 1, 3)])).expect_err("short");
        assert_eq!(short.reason, FailureReason::OutOfStock);
        assert_eq!(short.detail, "A: 4 asked, 3 available");
    }

    #[test]
    fn a_product_update_is_trimmed_and_each_broken_rule_names_its_field() {
        let valid = ProductUpdate::parse("KB-1.x_2", "  Keyboard ", 0, 1_000_000_000).expect("valid");
        assert_eq!(
            valid,
            ProductUpdate {
                sku: "KB-1.x_2".into(),
                name: "Keyboard".into(),
                price_cents: 0,
                available: 1_000_000_000
            }
        );
        let field =
            |result: Result<ProductUpdate, Problem>| result.expect_err("invalid").field.expect("field");
        let long_sku = "S".repeat(65);
        for sku in ["", "a b", "é", long_sku.as_str()] {
            assert_eq!(field(ProductUpdate::parse(sku, "N", 1, 1)), "sku", "{sku:?}");
        }
        assert_eq!(field(ProductUpdate::parse("S", "   ", 1, 1)), "name");
        assert_eq!(field(ProductUpdate::parse("S", &"n".repeat(201), 1, 1)), "name");
        assert!(ProductUpdate::parse("S", &"é".repeat(200), 1, 1).is_ok(), "characters, not bytes");
        assert_eq!(field(ProductUpdate::parse("S", "N", -1, 1)), "priceCents");
        assert_eq!(field(ProductUpdate::parse("S", "N", 1, -1)), "available");
        assert_eq!(field(ProductUpdate::parse("S", "N", 1, 1_000_000_001)), "available");
        assert_eq!(field(ProductUpdate::parse("", "", -1, -1)), "sku", "the first rule broken");
    }

    #[test]
    fn reservation_statuses_read_back_what_they_write() {
        for status in [ReservationStatus::Reserved, ReservationStatus::Released] {
            assert_eq!(status.as_str().parse(), Ok(status));
            assert_eq!(status.to_string(), status.as_str());
        }
        assert!("reserved".parse::<ReservationStatus>().is_err());
    }
}
