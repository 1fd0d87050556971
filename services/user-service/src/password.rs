//! Password hashing and checking: Argon2id with a random salt, off the async runtime (it
//! is slow on purpose).

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::domain::Password;

/// Hashing failed (the OS gave no randomness, or the worker thread died).
#[derive(Debug, thiserror::Error)]
#[error("hashing the password failed: {0}")]
pub struct HashError(String);

/// The PHC string (`$argon2id$v=19$...`) of `password`, with a fresh salt.
pub async fn hash(password: Password) -> Result<String, HashError> {
    argon2id(password, || Ok(SaltString::generate(&mut OsRng))).await
}

/// What stands for the password when a sign-up's `Idempotency-Key` is remembered: an
/// Argon2id hash salted by the key, so a retry with the same password matches, another
/// password does not, and the password itself is never stored outside the user row.
pub async fn fingerprint(password: Password, idempotency_key: &str) -> Result<String, HashError> {
    let mut salt = idempotency_key.as_bytes().to_vec();
    salt.resize(salt.len().clamp(16, 48), 0);
    argon2id(password, move || SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))).await
}

/// Argon2id of `password` with the salt `salt` makes, on a blocking thread.
async fn argon2id(
    password: Password,
    salt: impl FnOnce() -> Result<SaltString, HashError> + Send + 'static,
) -> Result<String, HashError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt()?)
            .map(|hash| hash.to_string())
            .map_err(|e| HashError(e.to_string()))
    })
    .await
    .map_err(|e| HashError(e.to_string()))?
}

/// Stands for the hash of an account that does not exist: an Argon2id hash with the
/// parameters [`hash`] uses (a unit test holds it to them), so that checking a password
/// against it takes as long as against a real one.
const NOBODY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$bm9ib2R5LWhhcy10aGlzLXNhbHQ$PawefDlb+Ljr3b+IXe3Pf5viapNXYltzVfYoIiKK2iE";

/// Whether `password` matches the PHC string `hash`, on a blocking thread. Without a hash
/// (an unknown e-mail) the answer is `false`, after the same work, so that the time taken
/// does not tell an unknown e-mail from a wrong password.
pub async fn verify(password: String, hash: Option<String>) -> Result<bool, HashError> {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.as_deref().unwrap_or(NOBODY);
        let matches = PasswordHash::new(hash)
            .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok());
        // black_box: the work for an unknown account must not be optimised away.
        known & std::hint::black_box(matches)
    })
    .await
    .map_err(|e| HashError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_salted_argon2id_and_verify_only_the_right_password() {
        let password = Password::parse("correct horse").expect("valid");
        let first = hash(password.clone()).await.expect("hash");
        let second = hash(password).await.expect("hash");
        assert!(first.starts_with("$argon2id$"), "{first}");
        assert_ne!(first, second, "a fresh salt each time");
        assert!(!first.contains("correct horse"));
        let verify = |password: &str, hash: &str| verify(password.to_owned(), Some(hash.to_owned()));
        assert!(verify("correct horse", &first).await.expect("verify"));
        assert!(!verify("correct horsf", &first).await.expect("verify"));
    }

    #[tokio::test]
    async fn an_unknown_account_never_matches_and_costs_what_a_real_hash_costs() {
        assert!(!verify("correct horse".to_owned(), None).await.expect("verify"));
        // The same algorithm, version and cost as a fresh hash: the same work to check.
        let nobody = PasswordHash::new(NOBODY).expect("a PHC string");
        let real = hash(Password::parse("correct horse").expect("valid")).await.expect("hash");
        let real = PasswordHash::new(&real).expect("a PHC string");
        assert_eq!((nobody.algorithm, nobody.version), (real.algorithm, real.version));
        assert_eq!(nobody.params, real.params);
        assert_eq!(nobody.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
    }

    #[tokio::test]
    async fn fingerprints_match_for_one_key_and_password_only() {
        let password = || Password::parse("correct horse").expect("valid");
        let first = fingerprint(password(), "key-1").await.expect("fingerprint");
        assert_eq!(first, fingerprint(password(), "key-1").await.expect("fingerprint"));
        assert_ne!(first, fingerprint(password(), "key-2").await.expect("fingerprint"));
        let other = Password::parse("battery staple").expect("valid");
        assert_ne!(first, fingerprint(other, "key-1").await.expect("fingerprint"));
    }
}
