//! Request extractors whose rejections are problem+json, as every error response is.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
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
                let text = error.body_text();
                match missing_field(&text) {
                    Some(field) => Err(Problem::invalid(&field, "is required")),
                    None => Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, Some(shape_error(&text)))),
                }
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

/// A query string: 400 naming what does not parse (a `limit` that is not a number, say).
/// Rules on values that do parse are the handler's 422s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                Some(format!("malformed query: {}", source_text(&rejection.body_text()))),
            )),
        }
    }
}

/// serde's words after axum's preamble: `name: missing field `name` at line 1 column 9`.
fn shape_error(text: &str) -> String {
    format!("the body does not fit the expected shape: {}", source_text(text))
}

/// The field serde found missing (`missing field `from``, or `items[0]: missing field
/// `sku``), which the 422 names as it names any other field that breaks a rule.
fn missing_field(text: &str) -> Option<String> {
    let text = source_text(text);
    let (path, rest) = match text.split_once(": ") {
        Some((path, rest)) if rest.starts_with("missing field `") => (Some(path), rest),
        _ => (None, text),
    };
    let name = rest.strip_prefix("missing field `")?.split('`').next()?;
    Some(path.map_or_else(|| name.to_owned(), |path| format!("{path}.{name}")))
}

fn source_text(text: &str) -> &str {
    text.split_once(": ").map_or(text, |(_, rest)| rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_field_is_named_with_its_path() {
        let preamble = "Failed to deserialize the JSON body into the target type: ";
        let root = format!("{preamble}missing field `from` at line 1 column 47");
        assert_eq!(missing_field(&root).as_deref(), Some("from"));
        let nested = format!("{preamble}items[0]: missing field `sku` at line 1 column 30");
        assert_eq!(missing_field(&nested).as_deref(), Some("items[0].sku"));
        let wrong_type =
            format!("{preamble}quantity: invalid type: string \"x\", expected i64 at line 1 column 9");
        assert_eq!(missing_field(&wrong_type), None);
    }
}
