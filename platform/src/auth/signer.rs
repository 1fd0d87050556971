//! Signing tokens: user-service's side of [`auth`](super), and what tests sign with.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use uuid::Uuid;

use super::{Claims, ISSUER, Role};

/// Why a signing key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not a PKCS#8 Ed25519 private key.
    #[error("not a PKCS#8 Ed25519 private key")]
    NotAKey,
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
}

/// An Ed25519 private key, its key id, and how long the tokens it signs live.
pub struct Signer {
    signing: SigningKey,
    encoding: EncodingKey,
    kid: String,
    ttl: Duration,
}

impl std::fmt::Debug for Signer {
    /// The key id only: a private key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl Signer {
    /// A new random key.
    pub fn generate(ttl: Duration) -> Self {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        Self::from_key(SigningKey::from_bytes(&secret), ttl)
    }

    /// The key of a PKCS#8 DER document (as [`Signer::to_pkcs8_der`] writes).
    pub fn from_pkcs8_der(der: &[u8], ttl: Duration) -> Result<Self, KeyError> {
        SigningKey::from_pkcs8_der(der).map(|key| Self::from_key(key, ttl)).map_err(|_| KeyError::NotAKey)
    }

    fn from_key(signing: SigningKey, ttl: Duration) -> Self {
        let der = signing.to_pkcs8_der().map(|doc| doc.as_bytes().to_vec()).unwrap_or_default();
        // The key id names the public key, so a rotated key gets a new one and verifiers
        // fetch the JWKS again.
        let public = signing.verifying_key().to_bytes();
        let kid = public[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self { encoding: EncodingKey::from_ed_der(&der), signing, kid, ttl }
    }

    /// The private key as PKCS#8 DER, to keep in a file of mode 0600.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, KeyError> {
        self.signing
            .to_pkcs8_der()
            .map(|doc| doc.as_bytes().to_vec())
            .map_err(|e| KeyError::Sign(e.to_string()))
    }

    /// The key id in every token's header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// How long a token lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The public key as a JWKS, served at [`JWKS_PATH`](super::JWKS_PATH).
    pub fn jwks(&self) -> serde_json::Value {
        let x = URL_SAFE_NO_PAD.encode(self.signing.verifying_key().to_bytes());
        serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid, "alg": "EdDSA", "use": "sig"}
        ]})
    }

    /// The JWKS as the verifier reads it.
    pub fn jwk_set(&self) -> JwkSet {
        serde_json::from_value(self.jwks()).unwrap_or(JwkSet { keys: Vec::new() })
    }

    /// A token for `user_id` with `role`, issued now.
    pub fn token(&self, user_id: Uuid, role: Role) -> Result<String, KeyError> {
        let now = crate::clock::now_ms() / 1000;
        self.sign(&Claims {
            sub: user_id.to_string(),
            role: role.as_str().to_owned(),
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            iss: ISSUER.to_owned(),
        })
    }

    /// A token with exactly these claims (tests sign expired or foreign ones with it).
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| KeyError::Sign(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AuthError, Verifier};
    use super::*;

    #[tokio::test]
    async fn a_token_verifies_against_its_keys_and_no_other() {
        let signer = Signer::generate(Duration::from_secs(60));
        let verifier = Verifier::fixed(&signer.jwk_set()).expect("keys");
        let user = Uuid::now_v7();
        let token = signer.token(user, Role::User).expect("token");
        assert_eq!(
            verifier.verify(&token).await,
            Ok(super::super::Caller { user_id: user, role: Role::User })
        );

        let stranger = Signer::generate(Duration::from_secs(60));
        let foreign = stranger.token(user, Role::Admin).expect("token");
        assert!(matches!(verifier.verify(&foreign).await, Err(AuthError::Invalid(_))), "another key");
    }

    #[tokio::test]
    async fn expired_tampered_unsigned_and_hmac_tokens_are_refused() {
        let signer = Signer::generate(Duration::from_secs(60));
        let verifier = Verifier::fixed(&signer.jwk_set()).expect("keys");
        let user = Uuid::now_v7();
        let now = crate::clock::now_ms() / 1000;
        let claims = |exp: i64, iss: &str| Claims {
            sub: user.to_string(),
            role: "user".to_owned(),
            iat: now - 7200,
            exp,
            iss: iss.to_owned(),
        };
        let refused = |token: String| {
            let verifier = &verifier;
            async move { matches!(verifier.verify(&token).await, Err(AuthError::Invalid(_))) }
        };
        assert!(refused(signer.sign(&claims(now - 3600, ISSUER)).expect("sign")).await, "expired");
        assert!(refused(signer.sign(&claims(now + 3600, "someone-else")).expect("sign")).await, "issuer");

        // The payload edited after signing: an admin role in place of the user's.
        let token = signer.token(user, Role::User).expect("token");
        let parts: Vec<&str> = token.split('.').collect();
        let admin = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims { role: "admin".into(), ..claims(now + 3600, ISSUER) }).expect("json"),
        );
        assert!(refused(format!("{}.{admin}.{}", parts[0], parts[2])).await, "tampered");

        // alg none, and HS256 keyed with the public key's bytes.
        let header = |alg: &str| {
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{}"}}"#, signer.kid()))
        };
        assert!(refused(format!("{}.{}.", header("none"), parts[1])).await, "alg none");
        let public = URL_SAFE_NO_PAD.encode(signer.signing.verifying_key().to_bytes());
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some(signer.kid().to_owned());
        let hmac = jsonwebtoken::encode(
            &hs,
            &claims(now + 3600, ISSUER),
            &EncodingKey::from_secret(public.as_bytes()),
        )
        .expect("hmac");
        assert!(refused(hmac).await, "HS256 with the public key");
    }

    #[test]
    fn the_key_survives_its_file_and_never_shows_in_debug() {
        let signer = Signer::generate(Duration::from_secs(60));
        let again = Signer::from_pkcs8_der(&signer.to_pkcs8_der().expect("der"), Duration::from_secs(60))
            .expect("read back");
        assert_eq!(again.kid(), signer.kid());
        assert!(!format!("{signer:?}").contains(&format!("{:?}", signer.to_pkcs8_der().expect("der"))));
        assert!(matches!(Signer::from_pkcs8_der(b"nope", Duration::ZERO), Err(KeyError::NotAKey)));
    }
}
