//! A sign-up request, validated once: everything downstream takes these types and checks
//! nothing again.

use platform::problem::Problem;

/// An e-mail address that looks deliverable: `local@domain.tld`, no spaces, at most 254
/// characters. Kept as written; compared ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Validates `raw` (surrounding spaces are dropped).
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        platform::validate::email_address(raw)
            .map(|email| Self(email.to_owned()))
            .map_err(|rule| Problem::invalid("email", rule))
    }

    /// As the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form two addresses are compared in: lower case.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A display name: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// Validates `raw`.
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(Problem::invalid("name", "must not be empty"));
        }
        if name.chars().count() > 100 {
            return Err(Problem::invalid("name", "is longer than 100 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(Problem::invalid("name", "must not contain control characters"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password of 8 to 256 characters. Its `Debug` hides it, so it cannot reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// Validates `raw` (kept exactly as typed: spaces count).
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        match raw.chars().count() {
            0..8 => Err(Problem::invalid("password", "must be at least 8 characters")),
            257.. => Err(Problem::invalid("password", "must be at most 256 characters")),
            _ => Ok(Self(raw.to_owned())),
        }
    }

    /// The secret, for hashing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A valid sign-up.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Their address.
    pub email: Email,
    /// Their name.
    pub name: Name,
    /// Their password, to be hashed.
    pub password: Password,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_kept_trimmed_keyed_in_lower_case_and_named_when_invalid() {
        // The rules themselves are platform::validate's, tested there.
        let email = Email::parse(" Jane@Example.COM ").expect("valid");
        assert_eq!((email.as_str(), email.key().as_str()), ("Jane@Example.COM", "jane@example.com"));
        let problem = Email::parse("a@localhost").expect_err("no dot in the domain");
        assert_eq!((problem.status, problem.field.as_deref()), (422, Some("email")));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("  Ada  ").expect("valid").as_str(), "Ada");
        assert_eq!(Name::parse(&"é".repeat(100)).expect("100 characters").as_str().chars().count(), 100);
        for bad in ["", "   ", "a\u{7}b"] {
            assert_eq!(Name::parse(bad).expect_err(bad).field.as_deref(), Some("name"));
        }
        assert!(Name::parse(&"x".repeat(101)).is_err());
    }

    #[test]
    fn passwords_need_eight_characters_and_never_print() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"p".repeat(257)).is_err());
        assert_eq!(format!("{:?}", Password::parse("secret-123").expect("valid")), "Password(***)");
    }
}
