//! The `Idempotency-Key` header: a client that retries a POST (after a timeout, say) with
//! the same key and the same body gets the first response back, and nothing is created
//! twice; the same key with another body is a 422.
//!
//! The key's row is inserted first in the request's own transaction, so the effect and
//! the remembered response commit together, and a concurrent retry waits on the row and
//! then finds the response. Failed requests (4xx) are not remembered: nothing happened.
//! Keys are kept for a day ([`RETENTION`]).

use std::time::Duration;

use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sqlx::Row;

use crate::clock::now_ms;
use crate::db::{Db, Tx};
use crate::problem::Problem;
use crate::validate::TextRule;

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// How long a key is remembered.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);

/// A key's rule: 1 to 255 visible ASCII characters.
pub static KEY: TextRule = TextRule::new(1..=255, Some(r"^[\x21-\x7e]+$"), KEY_RULE);

const KEY_RULE: &str = "must be 1 to 255 visible ASCII characters";

/// The optional `Idempotency-Key` header of an operation, for its `params(...)` in the
/// OpenAPI document: with [`KEY`]'s rule.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct KeyHeader {
    /// Repeats with this key return the first answer.
    #[serde(rename = "Idempotency-Key")]
    #[param(schema_with = key_rule)]
    pub key: Option<String>,
}

fn key_rule() -> utoipa::openapi::schema::Object {
    KEY.schema()
}

/// A client's idempotency key ([`KEY`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key of a request, if it has one; a 422 if it is malformed.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, Problem> {
        let Some(value) = headers.get(HEADER) else { return Ok(None) };
        let refused = || Problem::invalid("Idempotency-Key", KEY_RULE);
        // Bytes beyond visible ASCII are not text to `to_str`, and break the rule anyway.
        let key = value.to_str().map_err(|_| refused())?;
        let key = KEY.check(key).map_err(|_| refused())?;
        Ok(Some(Self(key.to_owned())))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A response as it is remembered and replayed: status, `Location`, JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// The JSON body.
    pub body: String,
}

impl StoredResponse {
    /// A JSON response of `status` with `body`.
    pub fn json(
        status: StatusCode,
        body: &impl Serialize,
        location: Option<String>,
    ) -> Result<Self, Problem> {
        let body = serde_json::to_string(body).map_err(|e| Problem::internal(&e))?;
        Ok(Self { status, location, body })
    }
}

impl IntoResponse for StoredResponse {
    fn into_response(self) -> Response {
        let mut response = (self.status, [(axum::http::header::CONTENT_TYPE, "application/json")], self.body)
            .into_response();
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(LOCATION, location);
        }
        response
    }
}

/// Runs `op` in a write transaction, once per key: `scope` names the endpoint, `request`
/// is the request body as the client meant it (compared on a retry). Without a key it
/// simply runs `op`. `op` gets the transaction and hands it back with its response.
pub async fn once<F, Fut>(
    db: &Db,
    scope: &str,
    key: Option<IdempotencyKey>,
    request: &impl Serialize,
    op: F,
) -> Result<Response, Problem>
where
    F: FnOnce(Tx) -> Fut,
    Fut: Future<Output = Result<(Tx, StoredResponse), Problem>>,
{
    let request = serde_json::to_string(&serde_json::to_value(request).map_err(|e| Problem::internal(&e))?)
        .map_err(|e| Problem::internal(&e))?;
    let mut tx = db.begin_write().await?;
    if let Some(key) = &key {
        let taken = sqlx::query(
            "INSERT INTO idempotency_keys (scope, idempotency_key, request, status, location, body, created_at_ms) \
             VALUES ($1, $2, $3, 0, NULL, '', $4) ON CONFLICT DO NOTHING",
        )
        .bind(scope)
        .bind(&key.0)
        .bind(&request)
        .bind(now_ms())
        .execute(tx.conn().await?)
        .await?
        .rows_affected()
            == 1;
        if !taken {
            return replay(&mut tx, scope, key, &request).await;
        }
    }
    let (mut tx, response) = op(tx).await?;
    if let Some(key) = &key {
        tx.write(
            "UPDATE idempotency_keys SET status = $1, location = $2, body = $3 WHERE scope = $4 AND idempotency_key = $5",
        )
        .bind(i32::from(response.status.as_u16()))
        .bind(response.location.clone())
        .bind(&response.body)
        .bind(scope)
        .bind(&key.0)
        .await?;
    }
    tx.commit().await?;
    Ok(response.into_response())
}

/// The remembered response to an earlier request with this key.
async fn replay(tx: &mut Tx, scope: &str, key: &IdempotencyKey, request: &str) -> Result<Response, Problem> {
    let row = sqlx::query(
        "SELECT request, status, location, body FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2",
    )
    .bind(scope)
    .bind(&key.0)
    .fetch_one(tx.conn().await?)
    .await?;
    let first_request: String = row.try_get(0)?;
    if first_request != request {
        return Err(Problem::invalid("Idempotency-Key", "was already used with another request body"));
    }
    let status: i32 = row.try_get(1)?;
    let stored = StoredResponse {
        status: u16::try_from(status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK),
        location: row.try_get(2)?,
        body: row.try_get(3)?,
    };
    Ok(stored.into_response())
}
