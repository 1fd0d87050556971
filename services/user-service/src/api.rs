//! HTTP handlers: parse, call one step, answer. Nothing else happens here.
//!
//! Signing up and signing in are public; reading a user needs a signed-in [`Caller`]: a
//! user reads their own record only (another user's answers 404, as a missing one does,
//! so that nothing about it is revealed), an admin anyone's. The JWKS is public too: every
//! other service verifies tokens with it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json as AxumJson, Router};
use platform::auth::UNAUTHORIZED;
use platform::auth::{Caller, JWKS_PATH, Role, Signer};
use platform::clock::{now_ms, rfc3339_ms};
use platform::db::{Db, Tx};
use platform::extract::Json;
use platform::idempotency::{self, IdempotencyKey, KeyHeader, StoredResponse};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use shared_events::UserSignedUp;
use utoipa::openapi::schema::Object;
use uuid::Uuid;

use crate::domain::{self, Email, FailureLimit, Name, NewUser, Password};
use crate::error::UserError;
use crate::password;
use crate::sign_in::{self, Issued};
use crate::store::{self, User};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(sign_up, find, token, jwks),
    tags((name = "users", description = "Sign-up and users"),
        (name = "auth", description = "Bearer tokens and the keys that verify them")))]
pub struct ApiDoc;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The service's database.
    pub db: Db,
    /// Signs the tokens.
    pub signer: Arc<Signer>,
    /// How failed sign-ins hold an e-mail.
    pub limit: FailureLimit,
}

/// The routes of `/api/users`, `/api/auth` and the JWKS.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/users", post(sign_up))
        .route("/api/users/{id}", get(find))
        .route("/api/auth/token", post(token))
        .route(JWKS_PATH, get(jwks))
        .with_state(state)
}

/// `POST /api/users` body. Its `Debug` hides the password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"email": "kim@example.com", "name": "Kim", "password": "correct horse"}))]
struct SignUpRequest {
    #[schema(schema_with = email_rule)]
    email: String,
    #[schema(schema_with = name_rule)]
    name: String,
    #[schema(schema_with = password_rule)]
    password: String,
}

// The rules `SignUpRequest::validate` applies, as the document states them.
fn email_rule() -> Object {
    platform::validate::EMAIL.schema()
}

fn name_rule() -> Object {
    domain::NAME.schema()
}

fn password_rule() -> Object {
    domain::PASSWORD.schema()
}

impl std::fmt::Debug for SignUpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignUpRequest")
            .field("email", &self.email)
            .field("name", &self.name)
            .field("password", &"***")
            .finish()
    }
}

impl SignUpRequest {
    fn validate(self) -> Result<NewUser, Problem> {
        Ok(NewUser {
            email: Email::parse(&self.email)?,
            name: Name::parse(&self.name)?,
            password: Password::parse(&self.password)?,
        })
    }
}

/// A user as the API shows it: never the password or its hash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct UserResponse {
    id: Uuid,
    email: String,
    name: String,
    created_at: String,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        Self { id: user.id, email: user.email, name: user.name, created_at: rfc3339_ms(user.created_at_ms) }
    }
}

/// What a sign-up is compared by when its `Idempotency-Key` comes again.
#[derive(Serialize)]
struct SignUpFingerprint {
    email: String,
    name: String,
    password: Option<String>,
}

impl SignUpFingerprint {
    /// The fingerprint of `new_user`. Without a key nothing is compared, so the password's
    /// (slow, Argon2id) fingerprint is only computed under one.
    async fn of(new_user: &NewUser, key: Option<&IdempotencyKey>) -> Result<Self, UserError> {
        let password = match key {
            Some(key) => Some(password::fingerprint(new_user.password.clone(), key.as_str()).await?),
            None => None,
        };
        Ok(Self {
            email: new_user.email.as_str().to_owned(),
            name: new_user.name.as_str().to_owned(),
            password,
        })
    }
}

/// Signs a user up; `UserSignedUp` opens a wallet and sends the welcome mail.
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = SignUpRequest, security(()),
    params(KeyHeader),
    responses(
        (status = 201, description = "Signed up", body = UserResponse,
            headers(("Location" = String, description = "/api/users/{id}"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The e-mail is taken (case-insensitive)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field breaks a rule, or a key is reused with another body", body = Problem, content_type = "application/problem+json")))]
async fn sign_up(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<SignUpRequest>,
) -> Result<Response, Problem> {
    let key = IdempotencyKey::from_headers(&headers)?;
    let new_user = request.validate()?;
    let fingerprint = SignUpFingerprint::of(&new_user, key.as_ref()).await?;
    let password_hash = password::hash(new_user.password.clone()).await.map_err(UserError::from)?;
    idempotency::once(&state.db, "POST /api/users", key, &fingerprint, |tx| {
        register(tx, new_user, password_hash)
    })
    .await
}

/// Stores the user and its `UserSignedUp` in one transaction.
async fn register(
    mut tx: Tx,
    new_user: NewUser,
    password_hash: String,
) -> Result<(Tx, StoredResponse), Problem> {
    let user = User {
        id: Uuid::now_v7(),
        email: new_user.email.as_str().to_owned(),
        name: new_user.name.as_str().to_owned(),
        role: Role::User,
        created_at_ms: now_ms(),
    };
    if !store::insert(tx.conn().await?, &user, &new_user.email.key(), &password_hash).await? {
        return Err(UserError::EmailTaken(user.email).into());
    }
    let event = UserSignedUp { user_id: user.id, email: user.email.clone(), name: user.name.clone() };
    tx.publish(&event).await?;
    tracing::info!(user_id = %user.id, "user signed up");
    let location = format!("/api/users/{}", user.id);
    let response = StoredResponse::json(StatusCode::CREATED, &UserResponse::from(user), Some(location))?;
    Ok((tx, response))
}

/// One user: the caller themselves, or anyone for an admin.
#[utoipa::path(get, path = "/api/users/{id}", tag = "users", params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "OK", body = UserResponse),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 404, description = "No such user, or another user (only an admin reads other users)",
            body = Problem, content_type = "application/problem+json")))]
async fn find(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<AxumJson<UserResponse>, Problem> {
    let id: Uuid = raw.parse().map_err(|_| UserError::NotFound(raw.clone()))?;
    if !caller.owns(id) {
        return Err(UserError::NotFound(raw).into());
    }
    let mut conn = state.db.pool().acquire().await?;
    let user = store::find(&mut conn, id).await?.ok_or_else(|| UserError::NotFound(id.to_string()))?;
    Ok(AxumJson(user.into()))
}

/// `POST /api/auth/token` body. Its `Debug` hides the password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"email": "kim@example.com", "password": "correct horse"}))]
struct TokenRequest {
    #[schema(schema_with = email_rule)]
    email: String,
    password: String,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest").field("email", &self.email).field("password", &"***").finish()
    }
}

/// A bearer token. Its `Debug` hides the token.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct TokenResponse {
    /// The JWT, for `Authorization: Bearer <accessToken>`.
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until it expires.
    expires_in: u64,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}

impl From<Issued> for TokenResponse {
    fn from(issued: Issued) -> Self {
        Self {
            access_token: issued.access_token,
            token_type: "Bearer",
            expires_in: issued.expires_in.as_secs(),
        }
    }
}

/// Signs in: a bearer token for the user with this e-mail and password.
#[utoipa::path(post, path = "/api/auth/token", tag = "auth", request_body = TokenRequest, security(()),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown e-mail or wrong password (one answer for both)", body = Problem,
            content_type = "application/problem+json", headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 422, description = "A field is missing, or the e-mail is not an address", body = Problem,
            content_type = "application/problem+json"),
        (status = 429, description = "5 failed sign-ins for this e-mail within 5 minutes: refused, even with \
            the right password, until the oldest of them is 5 minutes old", body = Problem,
            content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until the next attempt may succeed")))))]
async fn token(
    State(state): State<AppState>,
    Json(request): Json<TokenRequest>,
) -> Result<Response, Response> {
    let email = Email::parse(&request.email).map_err(IntoResponse::into_response)?;
    let issued = sign_in::sign_in(&state.db, &state.signer, state.limit, &email, request.password)
        .await
        .map_err(IntoResponse::into_response)?;
    // A token is a credential: no cache may keep the response.
    let no_store = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    Ok((no_store, AxumJson(TokenResponse::from(issued))).into_response())
}

/// The public keys that verify the tokens, as a JWKS (Ed25519, `EdDSA`).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", security(()),
    responses((status = 200, description = "The keys, by `kid`", body = Object,
        example = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            "kid": "d75a980182b10ab7", "alg": "EdDSA", "use": "sig"}]}))))]
async fn jwks(State(state): State<AppState>) -> AxumJson<serde_json::Value> {
    AxumJson(state.signer.jwks())
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    use super::*;

    #[test]
    fn requests_never_print_their_password() {
        let sign_up =
            SignUpRequest { email: "a@b.co".into(), name: "A".into(), password: "hunter2-secret".into() };
        let token = TokenRequest { email: "a@b.co".into(), password: "hunter2-secret".into() };
        let issued =
            TokenResponse { access_token: "eyJ.secret.token".into(), token_type: "Bearer", expires_in: 60 };
        for printed in [format!("{sign_up:?}"), format!("{token:?}"), format!("{issued:?}")] {
            assert!(!printed.contains("hunter2") && !printed.contains("secret"), "{printed}");
        }
    }

    #[test]
    fn signing_up_signing_in_and_the_keys_are_public_and_every_status_is_documented() {
        let document = serde_json::to_value(ApiDoc::openapi()).expect("json");
        let operation = |path: &str, method: &str| document["paths"][path][method].clone();
        for (path, method) in [("/api/users", "post"), ("/api/auth/token", "post"), (JWKS_PATH, "get")] {
            assert_eq!(
                operation(path, method)["security"],
                serde_json::json!([{}]),
                "{method} {path} is public"
            );
        }
        let token = operation("/api/auth/token", "post");
        for status in ["200", "400", "401", "422", "429"] {
            assert!(token["responses"][status].is_object(), "token {status}");
        }
        assert!(token["responses"]["429"]["headers"]["Retry-After"].is_object());
        assert!(token["responses"]["401"]["headers"]["WWW-Authenticate"].is_object());
        let find = operation("/api/users/{id}", "get");
        assert!(find["security"].is_null(), "GET /api/users/{{id}} keeps the bearer scheme");
        assert!(find["responses"]["401"].is_object() && find["responses"]["404"].is_object());
    }
}
