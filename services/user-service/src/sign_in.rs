//! Signing in: the failure limit, the password check and the token, in that order.
//!
//! An attempt is counted as a failure before its password is checked, and taken back
//! when the password matches. Counting it afterwards would let attempts sent at the
//! same time all pass the limit before any of them is counted; this way each one takes
//! a place under the limit first (in a write transaction that, on PostgreSQL, also holds
//! the user's row), so no number of parallel attempts gets more than five guesses in
//! five minutes. An attempt cut short after being counted (a crash) stays a failure.

use std::time::Duration;

use platform::auth::Signer;
use platform::clock::now_ms;
use platform::db::Db;
use uuid::Uuid;

use crate::domain::{Email, FailureLimit};
use crate::error::UserError;
use crate::password;
use crate::store;

/// A token issued at sign-in. Its `Debug` leaves the token out.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The signed JWT.
    pub access_token: String,
    /// How long it is valid.
    pub expires_in: Duration,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}

/// Signs in `email` with `password`: a token signed by `signer`, or
/// [`UserError::SignInRefused`] (an unknown e-mail and a wrong password alike, after the
/// same Argon2 work), or [`UserError::TooManyFailures`] while `limit` holds the e-mail,
/// whatever the password.
pub async fn sign_in(
    db: &Db,
    signer: &Signer,
    limit: FailureLimit,
    email: &Email,
    password: String,
) -> Result<Issued, UserError> {
    let email_key = email.key();
    let now = now_ms();
    let window_start = limit.window_start(now);
    let attempt = Uuid::now_v7();

    let mut tx = db.begin_write().await?;
    // Before the user's row is locked: a transaction waiting on another's expired rows
    // then holds no lock that one could be waiting for.
    store::delete_failures_until(tx.conn().await?, window_start).await?;
    let credentials = store::credentials(&mut tx, &email_key).await?;
    let recent = store::recent_failures(tx.conn().await?, &email_key, window_start, limit.failures).await?;
    if let Some(wait) = limit.retry_after(&recent, now) {
        tx.commit().await?;
        // At debug: unlike failures (five per e-mail at most), held attempts have no bound.
        tracing::debug!(user_id = %known(credentials.as_ref()), retry_after_s = wait.as_secs(), "sign-in held");
        return Err(UserError::TooManyFailures(wait));
    }
    store::insert_failure(tx.conn().await?, attempt, &email_key, now).await?;
    tx.commit().await?;

    let hash = credentials.as_ref().map(|c| c.password_hash.clone());
    let matches = password::verify(password, hash).await?;
    let credentials = match credentials {
        Some(credentials) if matches => credentials,
        other => {
            tracing::info!(user_id = %known(other.as_ref()), "sign-in refused");
            return Err(UserError::SignInRefused);
        }
    };
    let mut tx = db.begin_write().await?;
    store::delete_failure(tx.conn().await?, attempt).await?;
    tx.commit().await?;

    let access_token = signer.token(credentials.user_id, credentials.role)?;
    tracing::info!(user_id = %credentials.user_id, role = %credentials.role, "signed in");
    Ok(Issued { access_token, expires_in: signer.ttl() })
}

/// The user id for a log line, or `unknown` (the e-mail itself stays out of the logs).
fn known(credentials: Option<&store::Credentials>) -> String {
    credentials.map_or_else(|| "unknown".to_owned(), |c| c.user_id.to_string())
}
