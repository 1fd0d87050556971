//! A sign-up request, validated once: everything downstream takes these types and checks
//! nothing again; the admin account the environment names; and the rule that limits
//! failed sign-ins.

use std::time::Duration;

use platform::problem::Problem;
use platform::validate::{self, TextRule};

/// A display name's rule: 1 to 100 characters, not blank, no control characters.
pub static NAME: TextRule = validate::name(1..=100);

/// A password's rule: 8 to 256 characters, spaces included.
pub static PASSWORD: TextRule = TextRule::new(8..=256, None, "");

/// An e-mail address that looks deliverable ([`validate::EMAIL`]). Kept as written;
/// compared ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Validates `raw`.
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        validate::email_address(raw)
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

/// A display name ([`NAME`]), kept without surrounding spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// Validates `raw`.
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        let name = NAME.check(raw).map_err(|rule| Problem::invalid("name", rule))?;
        Ok(Self(name.trim_matches(' ').to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password ([`PASSWORD`]). Its `Debug` hides it, so it cannot reach a log.
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
        let password = PASSWORD.check(raw).map_err(|rule| Problem::invalid("password", rule))?;
        Ok(Self(password.to_owned()))
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

/// The account `ADMIN_EMAIL` and `ADMIN_PASSWORD` name: created, or brought up to date,
/// at every start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAccount {
    /// Its address.
    pub email: Email,
    /// Its password (its `Debug` hides it).
    pub password: Password,
}

impl AdminAccount {
    /// The password the README, `./run.sh` and docker-compose use unless told otherwise:
    /// anyone who read them can sign in with it.
    pub const DEFAULT_PASSWORD: &str = "admin-password";

    /// Whether its password is [`Self::DEFAULT_PASSWORD`].
    pub fn has_default_password(&self) -> bool {
        self.password.expose() == Self::DEFAULT_PASSWORD
    }
}

/// How many failed sign-ins for one e-mail are tolerated, and for how long they count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimit {
    /// Failures within the window after which every attempt is refused.
    pub failures: usize,
    /// How long a failure counts.
    pub window: Duration,
}

impl Default for FailureLimit {
    /// The contract's: 5 failures within 5 minutes.
    fn default() -> Self {
        Self { failures: 5, window: Duration::from_secs(5 * 60) }
    }
}

impl FailureLimit {
    /// Failures at or before this instant (epoch ms) no longer count at `now_ms`.
    pub fn window_start(&self, now_ms: i64) -> i64 {
        now_ms - self.window.as_millis() as i64
    }

    /// How long the next attempt must wait, given the times of the e-mail's failures
    /// within the window, newest first (only the first [`Self::failures`] matter); `None`
    /// when it may go ahead. The wait ends when one of the newest `failures` leaves the
    /// window, so it is counted from the oldest of them, in whole seconds rounded up
    /// (a `Retry-After` of 0 would invite a retry that is refused again).
    pub fn retry_after(&self, newest_first: &[i64], now_ms: i64) -> Option<Duration> {
        let oldest_counted = *newest_first.get(self.failures.checked_sub(1)?)?;
        let wait_ms = (oldest_counted - self.window_start(now_ms)).max(1) as u64;
        Some(Duration::from_secs(wait_ms.div_ceil(1000)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_kept_as_written_keyed_in_lower_case_and_named_when_invalid() {
        // The rules themselves are platform::validate's, tested there.
        let email = Email::parse("Jane@Example.COM").expect("valid");
        assert_eq!((email.as_str(), email.key().as_str()), ("Jane@Example.COM", "jane@example.com"));
        let problem = Email::parse("a@localhost").expect_err("no dot in the domain");
        assert_eq!((problem.status, problem.field.as_deref()), (422, Some("email")));
        // What the document's pattern refuses, the check refuses: no quiet trimming.
        assert!(Email::parse(" Jane@Example.COM ").is_err());
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

    #[test]
    fn five_failures_in_the_window_hold_the_next_attempt_until_the_oldest_leaves_it() {
        let limit = FailureLimit::default();
        let now = 1_000_000_000;
        let seconds_ago = |s: i64| now - s * 1000;
        let four = [seconds_ago(1), seconds_ago(2), seconds_ago(3), seconds_ago(4)];
        assert_eq!(limit.retry_after(&four, now), None, "four failures: the fifth attempt goes ahead");
        let five = [seconds_ago(1), seconds_ago(2), seconds_ago(3), seconds_ago(4), seconds_ago(100)];
        assert_eq!(limit.retry_after(&five, now), Some(Duration::from_secs(200)));
        // More than five (attempts that raced): the fifth newest decides, not the oldest.
        let six = [five.as_slice(), &[seconds_ago(299)]].concat();
        assert_eq!(limit.retry_after(&six, now), Some(Duration::from_secs(200)));
        // Rounded up, and never 0.
        let almost_out = [now, now, now, now, limit.window_start(now) + 1];
        assert_eq!(limit.retry_after(&almost_out, now), Some(Duration::from_secs(1)));
        let half = [now, now, now, now, seconds_ago(10) - 500];
        assert_eq!(limit.retry_after(&half, now), Some(Duration::from_secs(290)));
    }

    #[test]
    fn the_documented_admin_password_is_recognised_and_never_printed() {
        let account = |password: &str| AdminAccount {
            email: Email::parse("admin@example.com").expect("valid"),
            password: Password::parse(password).expect("valid"),
        };
        assert!(account("admin-password").has_default_password());
        assert!(!account("something-else").has_default_password());
        assert!(!format!("{:?}", account("admin-password")).contains("admin-password"));
    }
}
