//! Password hashing: Argon2id with a random salt, off the async runtime (it is slow on
//! purpose).

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

/// Whether `password` matches the PHC string `hash`.
pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
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
        assert!(verify("correct horse", &first));
        assert!(!verify("correct horsf", &first));
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
