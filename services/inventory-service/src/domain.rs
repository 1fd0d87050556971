//! Reserving stock for an order, as a plain function of the order and the stock.

use std::collections::BTreeMap;

use shared_events::{FailureReason, OrderItem, PricedItem};

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
}
