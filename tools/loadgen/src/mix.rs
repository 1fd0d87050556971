//! What each order is: mostly ordinary, some meant to fail or to be cancelled.

/// The kind of the n-th order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Stock and money suffice: CONFIRMED.
    Ordinary,
    /// A SKU with no stock: CANCELLED, OUT_OF_STOCK.
    OutOfStock,
    /// A total above any wallet: CANCELLED, INSUFFICIENT_FUNDS (after compensation).
    NoFunds,
    /// Confirmed, then cancelled by the user: refund and release.
    Cancel,
}

/// 85 % ordinary, 5 % each of the others, spread evenly.
pub fn kind(n: u64) -> Kind {
    match n % 20 {
        7 => Kind::OutOfStock,
        13 => Kind::NoFunds,
        17 => Kind::Cancel,
        _ => Kind::Ordinary,
    }
}

/// A cheap, repeatable scramble of `n`, for picking users, products and quantities.
pub fn scramble(n: u64) -> u64 {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 32)
}

/// The lines of the n-th order of `kind`, from the run's ordinary products and its two
/// special ones.
pub fn items(n: u64, kind: Kind, products: &[String], scarce: &str, luxury: &str) -> Vec<(String, u32)> {
    let r = scramble(n);
    match kind {
        Kind::OutOfStock => vec![(scarce.to_owned(), 1)],
        Kind::NoFunds => vec![(luxury.to_owned(), 1)],
        Kind::Ordinary | Kind::Cancel => {
            let lines = 1 + (r % 3) as usize;
            (0..lines)
                .map(|line| {
                    let pick = scramble(r.wrapping_add(line as u64));
                    (products[(pick % products.len() as u64) as usize].clone(), 1 + (pick % 2) as u32)
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_mostly_ordinary_with_each_failure_kind() {
        let kinds: Vec<Kind> = (0..1000).map(kind).collect();
        let count = |k| kinds.iter().filter(|&&x| x == k).count();
        assert_eq!(count(Kind::Ordinary), 850);
        assert_eq!((count(Kind::OutOfStock), count(Kind::NoFunds), count(Kind::Cancel)), (50, 50, 50));
    }

    #[test]
    fn ordinary_orders_have_one_to_three_lines_of_known_products() {
        let products: Vec<String> = (0..5).map(|i| format!("P{i}")).collect();
        for n in 0..200 {
            let lines = items(n, Kind::Ordinary, &products, "S", "L");
            assert!((1..=3).contains(&lines.len()));
            assert!(lines.iter().all(|(sku, q)| products.contains(sku) && (1..=2).contains(q)));
        }
        assert_eq!(items(1, Kind::OutOfStock, &products, "S", "L"), vec![("S".to_owned(), 1)]);
    }
}
