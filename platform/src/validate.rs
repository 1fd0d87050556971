//! Rules on the values that clients send, each stated once in JSON Schema's terms: the
//! check that refuses a value and the schema that documents it in the OpenAPI documents
//! are made from the same constants, so the two cannot drift apart.

use std::ops::RangeInclusive;
use std::sync::OnceLock;

use regex::Regex;
use utoipa::openapi::schema::{
    ArrayBuilder, ArrayItems, KnownFormat, Object, ObjectBuilder, SchemaFormat, Type,
};
use utoipa::openapi::{RefOr, Schema};

/// A rule on a text value: its length in characters (as JSON Schema counts) and,
/// optionally, a pattern the whole value must match.
#[derive(Debug)]
pub struct TextRule {
    chars: RangeInclusive<usize>,
    /// Written in the part of regex syntax that Rust's `regex`, ECMA-262 and Python's `re`
    /// (which schemathesis generates from) read alike: explicit ranges, no `\s` or `\w`
    /// (Unicode in one, ASCII in another), no look-around.
    pattern: Option<&'static str>,
    /// What a value that misses the pattern breaks, in words.
    words: &'static str,
    regex: OnceLock<Regex>,
}

impl TextRule {
    /// A rule of `chars` characters matching `pattern`, which `words` explains.
    pub const fn new(
        chars: RangeInclusive<usize>,
        pattern: Option<&'static str>,
        words: &'static str,
    ) -> Self {
        Self { chars, pattern, words, regex: OnceLock::new() }
    }

    /// `value` if it keeps the rule, else the rule it breaks.
    pub fn check<'a>(&self, value: &'a str) -> Result<&'a str, String> {
        let (min, max) = (*self.chars.start(), *self.chars.end());
        let count = value.chars().count();
        if count == 0 && min > 0 {
            return Err("is required".to_owned());
        }
        if count < min {
            return Err(format!("must be at least {min} characters"));
        }
        if count > max {
            return Err(format!("must be at most {max} characters"));
        }
        if let Some(pattern) = self.pattern {
            let regex = self.regex.get_or_init(|| Regex::new(pattern).expect("a rule's pattern compiles"));
            if !regex.is_match(value) {
                return Err(self.words.to_owned());
            }
        }
        Ok(value)
    }

    /// The rule as a string schema.
    pub fn schema(&self) -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(*self.chars.start()))
            .max_length(Some(*self.chars.end()))
            .pattern(self.pattern)
            .description(self.pattern.map(|_| self.words))
            .build()
    }
}

/// A rule on a whole number: the range it must be in.
#[derive(Debug, Clone)]
pub struct IntRule(pub RangeInclusive<i64>);

impl IntRule {
    /// `value` if it is in the range, else the rule it breaks.
    pub fn check(&self, value: i64) -> Result<i64, String> {
        match (*self.0.start(), *self.0.end()) {
            _ if self.0.contains(&value) => Ok(value),
            (0, i64::MAX) => Err("must not be negative".to_owned()),
            (min, i64::MAX) => Err(format!("must be at least {min}")),
            (min, max) => Err(format!("must be from {min} to {max}")),
        }
    }

    /// The rule as an integer schema.
    pub fn schema(&self) -> Object {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(*self.0.start()))
            .maximum(Some(*self.0.end()))
            .build()
    }

    /// An array of `items` whose length must be in the range.
    pub fn array_schema(&self, items: impl Into<RefOr<Schema>>) -> Schema {
        let to_len = |n: i64| usize::try_from(n).unwrap_or(0);
        ArrayBuilder::new()
            .items(ArrayItems::RefOrSchema(Box::new(items.into())))
            .min_items(Some(to_len(*self.0.start())))
            .max_items(Some(to_len(*self.0.end())))
            .build()
            .into()
    }
}

/// A string schema that admits exactly the words of `values`: those of a
/// [`text_enum!`](crate::text_enum) type, its `ALL`.
pub fn words_schema<T: std::fmt::Display>(values: &[T]) -> Object {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values.iter().map(T::to_string))).build()
}

/// A list's `limit`: at most this many of anything an API lists at once.
pub const LIST_LIMIT: IntRule = IntRule(1..=500);

/// Reads a whole number the way JSON Schema's `integer` does: `5`, and `5.0` too, which
/// is the same number (serde's `i64` refuses it). For `#[serde(deserialize_with = …)]`.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    struct WholeNumber;
    impl serde::de::Visitor<'_> for WholeNumber {
        type Value = i64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number")
        }

        fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<i64, E> {
            Ok(value)
        }

        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<i64, E> {
            i64::try_from(value).map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(value), &self))
        }

        fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<i64, E> {
            // i64::MAX as f64 is 2^63, itself out of range.
            if value.fract() == 0.0 && value >= i64::MIN as f64 && value < i64::MAX as f64 {
                Ok(value as i64)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(value), &self))
            }
        }
    }
    deserializer.deserialize_any(WholeNumber)
}

/// Characters that are not control characters (`char::is_control`: C0, DEL and C1).
macro_rules! printable {
    () => {
        r"[^\x00-\x1f\x7f-\x9f]"
    };
}

/// One DNS label of letters, digits and inner hyphens (names in other scripts are written
/// in their ASCII form, `xn--…`).
macro_rules! label {
    () => {
        r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    };
}

/// A deliverable-looking e-mail address: `local@domain.tld`, at most 254 characters, a
/// local part of 1 to 64 characters without spaces, control characters or `@`.
pub static EMAIL: TextRule = TextRule::new(
    1..=254,
    Some(concat!(r"^[^ @\x00-\x1f\x7f-\x9f]{1,64}@", label!(), r"(?:\.", label!(), r")+$")),
    "is not an e-mail address (local@domain.tld)",
);

/// A product code: the catalogue's key, and what an order line names.
pub static SKU: TextRule =
    TextRule::new(1..=64, Some(r"^[A-Za-z0-9._-]+$"), "must be 1 to 64 of A-Z a-z 0-9 - _ .");

/// A phone number in international form: an optional `+`, then 7 to 15 digits, with
/// spaces and dashes between them allowed.
pub static PHONE: TextRule = TextRule::new(
    1..=64,
    Some(r"^\+?[ -]*(?:[0-9][ -]*){7,15}$"),
    "is not a phone number (7 to 15 digits, spaces and dashes, an optional leading +)",
);

/// A name a person reads (a user's, a product's): no control characters, and something
/// besides spaces. The length is the caller's.
pub const fn name(chars: RangeInclusive<usize>) -> TextRule {
    TextRule::new(
        chars,
        Some(concat!("^", printable!(), r"*[^ \x00-\x1f\x7f-\x9f]", printable!(), "*$")),
        "must not be blank or contain control characters",
    )
}

/// Checks that `raw` is an e-mail address ([`EMAIL`]).
pub fn email_address(raw: &str) -> Result<&str, String> {
    EMAIL.check(raw)
}

/// Checks that `sku` is a product code ([`SKU`]).
pub fn sku(sku: &str) -> Result<&str, String> {
    SKU.check(sku)
}

/// Checks that `raw` is a phone number ([`PHONE`]) and returns it without the separators.
pub fn phone_number(raw: &str) -> Result<String, String> {
    let raw = PHONE.check(raw)?;
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    Ok(if raw.starts_with('+') { format!("+{digits}") } else { digits })
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
    fn ordinary_addresses_pass() {
        for ok in ["a@b.co", "Jane.Doe+news@Example.COM", "user@xn--bcher-kva.de", "x@sub.domain.org"] {
            assert_eq!(email_address(ok), Ok(ok));
        }
    }

    #[test]
    fn what_cannot_be_an_address_fails_with_the_rule() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(190));
        for bad in [
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a b@example.com",
            "a@.com",
            "a@b..com",
            "a@-b.com",
            "a@b.com.",
            "a@b@c.com",
            "tab\t@example.com",
            "  x@sub.domain.org ",
            &long_local,
            &long,
        ] {
            assert!(email_address(bad).is_err(), "{bad}");
        }
        assert_eq!(email_address(""), Err("is required".to_owned()));
        assert_eq!(email_address("plain"), Err("is not an e-mail address (local@domain.tld)".to_owned()));
        assert_eq!(email_address(&long), Err("must be at most 254 characters".to_owned()));
    }

    #[test]
    fn phone_numbers_keep_digits_and_plus() {
        assert_eq!(phone_number("+82 10-1234-5678"), Ok("+821012345678".to_owned()));
        assert_eq!(phone_number("0101234567"), Ok("0101234567".to_owned()));
        for bad in ["", "+", "12345", "call me", "+1234567890123456", "++0101234567", "0101234567\n"] {
            assert!(phone_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_name_is_not_blank_and_has_no_control_characters() {
        let rule = name(1..=10);
        for ok in ["Kim", " Kim ", "김민수", "a\u{a0}b", "\u{a0}"] {
            assert_eq!(rule.check(ok), Ok(ok));
        }
        assert_eq!(rule.check(""), Err("is required".to_owned()));
        assert_eq!(rule.check("   "), Err("must not be blank or contain control characters".to_owned()));
        assert!(rule.check("a\u{7}b").is_err());
        assert!(rule.check("a\u{85}").is_err(), "C1 controls too");
        assert_eq!(rule.check("abcdefghijk"), Err("must be at most 10 characters".to_owned()));
    }

    #[test]
    fn a_whole_number_may_be_written_with_a_zero_fraction() {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(deserialize_with = "whole_number")]
            n: i64,
        }
        let read = |json: &str| serde_json::from_str::<Body>(json).map(|body| body.n);
        assert_eq!(read(r#"{"n": 5}"#).ok(), Some(5));
        assert_eq!(read(r#"{"n": 8900783.0}"#).ok(), Some(8_900_783));
        assert_eq!(read(r#"{"n": -3}"#).ok(), Some(-3));
        for bad in [r#"{"n": 1.5}"#, r#"{"n": 1e300}"#, r#"{"n": 9223372036854775808}"#, r#"{"n": "5"}"#] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_schema_states_the_rule_the_check_applies() {
        let schema = serde_json::to_value(SKU.schema()).expect("json");
        assert_eq!(schema["type"], "string");
        assert_eq!(schema["minLength"], 1);
        assert_eq!(schema["maxLength"], 64);
        assert_eq!(schema["pattern"], r"^[A-Za-z0-9._-]+$");
        let range = serde_json::to_value(IntRule(1..=500).schema()).expect("json");
        assert_eq!((range["minimum"].as_i64(), range["maximum"].as_i64()), (Some(1), Some(500)));
        assert_eq!(IntRule(1..=500).check(0), Err("must be from 1 to 500".to_owned()));
        assert_eq!(IntRule(1..=500).check(500), Ok(500));
        assert_eq!(IntRule(0..=i64::MAX).check(-1), Err("must not be negative".to_owned()));
        let words = serde_json::to_value(words_schema(&["EMAIL", "SMS"])).expect("json");
        assert_eq!(words["enum"], serde_json::json!(["EMAIL", "SMS"]));
    }
}
