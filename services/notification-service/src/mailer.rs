//! The simulated mail and SMS gateway: nothing leaves the machine, but it fails the way a
//! real one does, so retries and dead letters can be watched. A recipient whose local
//! part ends in `+fail` is refused on every attempt; one ending in `+flaky` is refused on
//! its first two attempts and accepted on the third.

/// The gateway refused a message; it may accept it later, so the caller retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Refused every time.
    #[error("mail server refused {0} (simulated: the address ends in +fail)")]
    Refused(String),
    /// Down for now.
    #[error("mail server unavailable on attempt {attempt} for {to} (simulated: +flaky)")]
    Unavailable {
        /// Recipient.
        to: String,
        /// The attempt that failed.
        attempt: u32,
    },
}

/// "Sends" an e-mail to `to` on delivery attempt `attempt` (1-based).
pub fn send_email(to: &str, attempt: u32) -> Result<(), SendError> {
    let local = to.split('@').next().unwrap_or_default();
    if local.ends_with("+fail") {
        return Err(SendError::Refused(to.to_owned()));
    }
    if local.ends_with("+flaky") && attempt < 3 {
        return Err(SendError::Unavailable { to: to.to_owned(), attempt });
    }
    // One per message: at debug, so the default log says what happened, not every mail.
    tracing::debug!(to, attempt, "e-mail sent (simulated)");
    Ok(())
}

/// "Sends" an SMS; the simulated SMS gateway always accepts.
pub fn send_sms(to: &str, attempt: u32) -> Result<(), SendError> {
    tracing::debug!(to, attempt, "SMS sent (simulated)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_is_refused_always_and_flaky_until_the_third_attempt() {
        for attempt in 1..=5 {
            assert!(send_email("bob+fail@example.com", attempt).is_err());
        }
        assert!(send_email("bob+flaky@example.com", 1).is_err());
        assert!(send_email("bob+flaky@example.com", 2).is_err());
        assert_eq!(send_email("bob+flaky@example.com", 3), Ok(()));
        assert_eq!(send_email("bob@example.com", 1), Ok(()));
        // Only the local part counts.
        assert_eq!(send_email("bob@fail.example.com", 1), Ok(()));
    }
}
