//! Request extractors whose rejections are problem+json, as every error response is.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// A JSON body: 400 when it is not JSON, 422 naming the field when it does not fit the
/// shape (a missing field, a wrong type), 415 without a JSON content type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(JsonRejection::JsonDataError(error)) => {
                Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, Some(shape_error(&error.body_text()))))
            }
            Err(JsonRejection::JsonSyntaxError(error)) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                Some(format!("malformed JSON: {}", source_text(&error.body_text()))),
            )),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some("expected Content-Type: application/json".to_owned()),
            )),
            Err(other) => Err(Problem::new(other.status(), Some(other.body_text()))),
        }
    }
}

/// serde's words after axum's preamble: `name: missing field `name` at line 1 column 9`.
fn shape_error(text: &str) -> String {
    format!("the body does not fit the expected shape: {}", source_text(text))
}

fn source_text(text: &str) -> &str {
    text.split_once(": ").map_or(text, |(_, rest)| rest)
}
