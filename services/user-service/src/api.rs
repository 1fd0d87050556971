//! HTTP handlers: parse, call the sign-up, answer. Nothing else happens here.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json as AxumJson, Router};
use platform::clock::{now_ms, rfc3339_ms};
use platform::db::{Db, Tx};
use platform::extract::Json;
use platform::idempotency::{self, IdempotencyKey, StoredResponse};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use shared_events::UserSignedUp;
use uuid::Uuid;

use crate::domain::{Email, Name, NewUser, Password};
use crate::error::UserError;
use crate::password;
use crate::store::{self, User};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(sign_up, find), tags((name = "users", description = "Sign-up and users")))]
pub struct ApiDoc;

/// The routes of `/api/users`.
pub fn router(db: Db) -> Router {
    Router::new().route("/api/users", post(sign_up)).route("/api/users/{id}", get(find)).with_state(db)
}

/// `POST /api/users` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"email": "kim@example.com", "name": "Kim", "password": "correct horse"}))]
struct SignUpRequest {
    email: String,
    name: String,
    password: String,
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
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = SignUpRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeats with this key return the first answer")),
    responses(
        (status = 201, description = "Signed up", body = UserResponse,
            headers(("Location" = String, description = "/api/users/{id}"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The e-mail is taken (case-insensitive)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field breaks a rule, or a key is reused with another body", body = Problem, content_type = "application/problem+json")))]
async fn sign_up(
    State(db): State<Db>,
    headers: HeaderMap,
    Json(request): Json<SignUpRequest>,
) -> Result<Response, Problem> {
    let key = IdempotencyKey::from_headers(&headers)?;
    let new_user = request.validate()?;
    let fingerprint = SignUpFingerprint::of(&new_user, key.as_ref()).await?;
    let password_hash = password::hash(new_user.password.clone()).await.map_err(UserError::from)?;
    idempotency::once(&db, "POST /api/users", key, &fingerprint, |tx| register(tx, new_user, password_hash))
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
        created_at_ms: now_ms(),
    };
    if !store::insert(tx.conn(), &user, &new_user.email.key(), &password_hash).await? {
        return Err(UserError::EmailTaken(user.email).into());
    }
    let event = UserSignedUp { user_id: user.id, email: user.email.clone(), name: user.name.clone() };
    tx.publish(&event).await?;
    tracing::info!(user_id = %user.id, "user signed up");
    let location = format!("/api/users/{}", user.id);
    let response = StoredResponse::json(StatusCode::CREATED, &UserResponse::from(user), Some(location))?;
    Ok((tx, response))
}

/// One user.
#[utoipa::path(get, path = "/api/users/{id}", tag = "users", params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "OK", body = UserResponse), (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json")))]
async fn find(State(db): State<Db>, Path(raw): Path<String>) -> Result<AxumJson<UserResponse>, Problem> {
    let id: Uuid = raw.parse().map_err(|_| UserError::NotFound(raw.clone()))?;
    let mut conn = db.pool().acquire().await?;
    let user = store::find(&mut conn, id).await?.ok_or_else(|| UserError::NotFound(id.to_string()))?;
    Ok(AxumJson(user.into()))
}
