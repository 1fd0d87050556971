//! Checks of values that more than one service accepts from clients.

/// Checks that `raw` looks like a deliverable e-mail address (`local@domain.tld`, no
/// spaces, at most 254 characters, a local part of at most 64) and returns it trimmed,
/// or the rule it breaks.
pub fn email_address(raw: &str) -> Result<&str, &'static str> {
    let email = raw.trim();
    if email.is_empty() {
        return Err("is required");
    }
    if email.len() > 254 {
        return Err("is longer than 254 characters");
    }
    let Some((local, domain)) = email.split_once('@') else { return Err("is not an e-mail address (no @)") };
    if local.is_empty() || local.len() > 64 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("is not an e-mail address");
    }
    let label_ok = |label: &&str| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err("is not an e-mail address (bad domain)");
    }
    Ok(email)
}

/// Checks that `sku` is a product code: 1 to 64 of `A-Z a-z 0-9 - _ .` (the catalogue's
/// key, and what an order line names), or the rule it breaks.
pub fn sku(sku: &str) -> Result<&str, &'static str> {
    let valid = !sku.is_empty()
        && sku.len() <= 64
        && sku.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if valid { Ok(sku) } else { Err("must be 1 to 64 of A-Z a-z 0-9 - _ .") }
}

/// Checks that `raw` is a phone number in international form: an optional `+`, then 7 to
/// 15 digits (spaces and dashes between them allowed). Returns it without the separators.
pub fn phone_number(raw: &str) -> Result<String, &'static str> {
    let trimmed = raw.trim();
    let digits = trimmed.strip_prefix('+').unwrap_or(trimmed);
    if digits.is_empty() {
        return Err("is required");
    }
    if !digits.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-') {
        return Err("is not a phone number (digits, spaces and dashes, an optional leading +)");
    }
    let digits: String = digits.chars().filter(char::is_ascii_digit).collect();
    if !(7..=15).contains(&digits.len()) {
        return Err("must have 7 to 15 digits");
    }
    Ok(if trimmed.starts_with('+') { format!("+{digits}") } else { digits })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sku_is_one_to_sixty_four_safe_characters() {
        assert_eq!(sku("KEYBOARD-1_a.b"), Ok("KEYBOARD-1_a.b"));
        assert!(sku(&"A".repeat(64)).is_ok());
        for bad in ["", "a b", "é", "a/b", &"A".repeat(65)] {
            assert!(sku(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ordinary_addresses_pass_trimmed() {
        for ok in ["a@b.co", "Jane.Doe+news@Example.COM", "user@xn--bcher-kva.de"] {
            assert_eq!(email_address(ok), Ok(ok));
        }
        assert_eq!(email_address("  x@sub.domain.org "), Ok("x@sub.domain.org"));
    }

    #[test]
    fn what_cannot_be_an_address_fails_with_the_rule() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a b@example.com",
            "a@.com",
            "a@b..com",
            "a@-b.com",
        ] {
            assert!(email_address(bad).is_err(), "{bad}");
        }
        assert!(email_address(&format!("{}@example.com", "a".repeat(65))).is_err());
        assert_eq!(email_address("plain"), Err("is not an e-mail address (no @)"));
    }

    #[test]
    fn phone_numbers_keep_digits_and_plus() {
        assert_eq!(phone_number("+82 10-1234-5678"), Ok("+821012345678".to_owned()));
        assert_eq!(phone_number("0101234567"), Ok("0101234567".to_owned()));
        for bad in ["", "+", "12345", "call me", "+1234567890123456"] {
            assert!(phone_number(bad).is_err(), "{bad}");
        }
    }
}
