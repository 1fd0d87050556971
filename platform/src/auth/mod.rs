//! Who is calling: the bearer token every protected request carries, checked the same way
//! in every service and in the gateway.
//!
//! Tokens are JWTs signed by user-service with Ed25519. A service verifies them against
//! user-service's published keys (the JWKS), fetched on first use and again when a token
//! names a key id it does not know (a new key after a rotation). Only `EdDSA` is accepted,
//! whatever the token's header says, and `exp` and `iss` are checked. A token that passed
//! is remembered until it expires, so its signature is checked once per service; fetching
//! the keys again forgets them all.
//!
//! A handler states its rule by what it takes: [`Caller`] (any signed-in user, then
//! [`Caller::owns`], [`Caller::acting_for`] or [`Caller::scope`] for the owner rules),
//! [`Admin`] (admins only), or neither (public).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::problem::Problem;

mod signer;
mod verified;

pub use signer::{KeyError, Signer};

/// The `iss` of every token: the service that signs them.
pub const ISSUER: &str = "user-service";

/// The path of the JWKS on user-service (and through the gateway).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// How the OpenAPI documents describe a 401.
pub const UNAUTHORIZED: &str = "No bearer token, or an invalid or expired one";

/// What an OpenAPI document says of the 403 of an admin-only operation.
pub const NOT_ADMIN: &str = "The caller is not an admin";

/// How often at most an unknown key id makes a service fetch the JWKS again: a stream of
/// forged tokens must not turn into a stream of requests to user-service.
const REFETCH_AFTER: Duration = Duration::from_secs(10);

crate::text_enum! {
    /// What a caller may do.
    pub enum Role {
        /// Acts on their own data.
        User = "user",
        /// Acts on everyone's data, and on the catalogue and the dead letters.
        Admin = "admin",
    }
}

/// The claims of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// `user` or `admin`.
    pub role: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// Always [`ISSUER`].
    pub iss: String,
}

/// A signed-in caller: who, and with which role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The user the token was issued to.
    pub user_id: Uuid,
    /// Their role.
    pub role: Role,
}

impl Caller {
    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether the caller may see and act on an item of `owner`'s: their own, or any for
    /// an admin. Handlers answer 404 otherwise, so that nothing about it is revealed.
    pub fn owns(&self, owner: Uuid) -> bool {
        self.is_admin() || self.user_id == owner
    }

    /// The user a request names in its body (`userId` of a new order): the caller
    /// themselves, or anyone for an admin; 403 otherwise.
    pub fn acting_for(&self, user_id: Uuid) -> Result<Uuid, Problem> {
        if self.owns(user_id) { Ok(user_id) } else { Err(forbidden("you may act only for yourself")) }
    }

    /// The user a list is limited to, from its `userId` filter: the caller's own items
    /// for a user (403 for a filter naming someone else), what the filter says for an
    /// admin (`None`: everyone's).
    pub fn scope(&self, filter: Option<Uuid>) -> Result<Option<Uuid>, Problem> {
        match filter {
            _ if self.is_admin() => Ok(filter),
            None => Ok(Some(self.user_id)),
            Some(user_id) => self.acting_for(user_id).map(Some),
        }
    }
}

/// An admin caller; a signed-in user who is not one gets 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admin(pub Caller);

/// Why a request is not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("this operation needs a bearer token (POST /api/auth/token)")]
    Missing,
    /// A token that fails a check: the reason is for the log, not the client.
    #[error("the bearer token is invalid or expired")]
    Invalid(String),
    /// The keys could not be fetched: nobody can be let in until they can.
    #[error("the token cannot be checked now")]
    KeysUnavailable(String),
    /// Signed in, but not an admin.
    #[error("this operation is for admins only")]
    NotAdmin,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        match &self {
            Self::NotAdmin => forbidden(&self.to_string()).into_response(),
            Self::KeysUnavailable(why) => {
                tracing::warn!(%why, "cannot fetch the signing keys");
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, Some(self.to_string())).into_response()
            }
            Self::Missing | Self::Invalid(_) => {
                if let Self::Invalid(why) = &self {
                    tracing::debug!(%why, "token refused");
                }
                let mut response =
                    Problem::new(StatusCode::UNAUTHORIZED, Some(self.to_string())).into_response();
                let challenge = match self {
                    Self::Missing => "Bearer",
                    _ => "Bearer error=\"invalid_token\"",
                };
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
                response
            }
        }
    }
}

fn forbidden(detail: &str) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, Some(detail.to_owned()))
}

/// Where the verification keys come from.
#[derive(Debug, Clone)]
enum KeySource {
    /// Fetched from this JWKS URL.
    Remote(String),
    /// Given once (user-service's own key).
    Fixed,
}

#[derive(Default)]
struct Keys {
    by_id: HashMap<String, DecodingKey>,
    fetched: Option<Instant>,
}

/// Checks bearer tokens. One per process, shared by every request (an axum extension).
pub struct Verifier {
    source: KeySource,
    keys: RwLock<Keys>,
    http: reqwest::Client,
    validation: Validation,
    verified: verified::Verified,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("source", &self.source).finish_non_exhaustive()
    }
}

impl Verifier {
    /// Keys from the JWKS at `url`, fetched when first needed.
    pub fn remote(url: impl Into<String>) -> Self {
        Self::new(KeySource::Remote(url.into()), Keys::default())
    }

    /// The keys of `jwks`, and no others.
    pub fn fixed(jwks: &JwkSet) -> Result<Self, AuthError> {
        Ok(Self::new(KeySource::Fixed, Keys { by_id: decoding_keys(jwks)?, fetched: None }))
    }

    fn new(source: KeySource, keys: Keys) -> Self {
        // Pinned: a token saying `none`, `HS256` or anything else is refused before any key
        // is looked at, so a public key can never be used as an HMAC secret.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        Self {
            source,
            keys: RwLock::new(keys),
            http: reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default(),
            validation,
            verified: verified::Verified::default(),
        }
    }

    /// The caller a token stands for, or why it stands for nobody.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let now = crate::clock::now_ms() / 1000;
        let leeway = i64::try_from(self.validation.leeway).unwrap_or(0);
        if let Some(caller) = self.verified.get(token, now, leeway) {
            return Ok(caller);
        }
        let generation = self.verified.generation();
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Invalid(format!("alg {:?} is not EdDSA", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| AuthError::Invalid("no kid".to_owned()))?;
        // The read guard must be gone before a refetch takes the write lock.
        let known = self.keys.read().await.by_id.get(&kid).cloned();
        let key = match known {
            Some(key) => key,
            None => self.refetch_for(&kid).await?,
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let user_id =
            data.claims.sub.parse().map_err(|_| AuthError::Invalid("sub is not a UUID".to_owned()))?;
        let role = data.claims.role.parse().map_err(|_| AuthError::Invalid("unknown role".to_owned()))?;
        let caller = Caller { user_id, role };
        self.verified.insert(token, caller, data.claims.exp, now, generation);
        Ok(caller)
    }

    /// Fetches the JWKS again (at most every [`REFETCH_AFTER`]) and returns key `kid`.
    async fn refetch_for(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        let KeySource::Remote(url) = &self.source else {
            return Err(AuthError::Invalid(format!("unknown kid {kid}")));
        };
        let mut keys = self.keys.write().await;
        if let Some(key) = keys.by_id.get(kid) {
            return Ok(key.clone()); // another request fetched it meanwhile
        }
        if keys.fetched.is_some_and(|at| at.elapsed() < REFETCH_AFTER) {
            return Err(AuthError::Invalid(format!("unknown kid {kid}")));
        }
        let fetched = async {
            let response = self.http.get(url).send().await?.error_for_status()?;
            response.json::<JwkSet>().await
        };
        let jwks = fetched.await.map_err(|e| AuthError::KeysUnavailable(format!("{url}: {e}")))?;
        keys.by_id = decoding_keys(&jwks)?;
        keys.fetched = Some(Instant::now());
        self.verified.clear();
        keys.by_id.get(kid).cloned().ok_or_else(|| AuthError::Invalid(format!("unknown kid {kid}")))
    }
}

fn decoding_keys(jwks: &JwkSet) -> Result<HashMap<String, DecodingKey>, AuthError> {
    let mut keys = HashMap::new();
    for jwk in &jwks.keys {
        let (Some(kid), Ok(key)) = (&jwk.common.key_id, DecodingKey::from_jwk(jwk)) else {
            return Err(AuthError::KeysUnavailable("a key without kid, or not a key".to_owned()));
        };
        keys.insert(kid.clone(), key);
    }
    Ok(keys)
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(parts: &Parts) -> Result<&str, AuthError> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    let value = value.to_str().map_err(|_| AuthError::Invalid("not ASCII".to_owned()))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(token.trim())
        }
        _ => Err(AuthError::Missing),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(*caller); // checked already by an earlier extractor of this request
        }
        let verifier = parts
            .extensions
            .get::<Arc<Verifier>>()
            .cloned()
            .ok_or_else(|| AuthError::KeysUnavailable("no verifier installed".to_owned()))?;
        let caller = verifier.verify(bearer(parts)?).await?;
        parts.extensions.insert(caller);
        Ok(caller)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.is_admin() { Ok(Self(caller)) } else { Err(AuthError::NotAdmin) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role) -> Caller {
        Caller { user_id: Uuid::now_v7(), role }
    }

    #[test]
    fn a_user_owns_only_their_own_and_an_admin_everything() {
        let user = caller(Role::User);
        let other = Uuid::now_v7();
        assert!(user.owns(user.user_id));
        assert!(!user.owns(other));
        assert!(caller(Role::Admin).owns(other));
        assert_eq!(user.acting_for(other).expect_err("another user").status, 403);
        assert_eq!(caller(Role::Admin).acting_for(other), Ok(other));
    }

    #[test]
    fn a_users_list_is_their_own_and_an_admins_is_what_they_ask_for() {
        let user = caller(Role::User);
        assert_eq!(user.scope(None), Ok(Some(user.user_id)));
        assert_eq!(user.scope(Some(user.user_id)), Ok(Some(user.user_id)));
        assert_eq!(user.scope(Some(Uuid::now_v7())).expect_err("another user").status, 403);
        let admin = caller(Role::Admin);
        let other = Uuid::now_v7();
        assert_eq!(admin.scope(None), Ok(None));
        assert_eq!(admin.scope(Some(other)), Ok(Some(other)));
    }

    #[tokio::test]
    async fn a_remembered_token_stands_only_for_its_own_bytes() {
        let signer = Signer::generate(Duration::from_secs(60));
        let verifier = Verifier::fixed(&signer.jwk_set()).expect("keys");
        let user = Uuid::now_v7();
        let token = signer.token(user, Role::User).expect("token");
        let expected = Ok(Caller { user_id: user, role: Role::User });
        assert_eq!(verifier.verify(&token).await, expected);
        let now = crate::clock::now_ms() / 1000;
        assert_eq!(verifier.verified.get(&token, now, 0), Some(Caller { user_id: user, role: Role::User }));
        assert_eq!(verifier.verify(&token).await, expected, "again, from what was remembered");

        // The same signature under a payload naming an admin: checked, and refused.
        let (head, rest) = token.split_once('.').expect("header");
        let signature = rest.rsplit_once('.').expect("signature").1;
        let claims = Claims {
            sub: user.to_string(),
            role: "admin".to_owned(),
            iat: 0,
            exp: i64::MAX / 2,
            iss: ISSUER.to_owned(),
        };
        let payload = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&claims).expect("json"),
        );
        let forged = format!("{head}.{payload}.{signature}");
        assert!(matches!(verifier.verify(&forged).await, Err(AuthError::Invalid(_))));
        assert!(
            matches!(verifier.verify(&forged).await, Err(AuthError::Invalid(_))),
            "a refusal is not remembered as a pass"
        );
        assert_eq!(verifier.verified.get(&forged, now, 0), None);
    }

    #[test]
    fn a_missing_token_is_a_401_with_a_bearer_challenge() {
        let response = AuthError::Missing.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let response = AuthError::Invalid("expired".into()).into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer error=\"invalid_token\"");
        assert_eq!(AuthError::NotAdmin.into_response().status(), StatusCode::FORBIDDEN);
    }
}
