//! RFC 9457 problem details: the one shape every error response of every service has.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An `application/problem+json` response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"type": "about:blank", "title": "Unprocessable Entity", "status": 422,
    "detail": "email: is not an e-mail address", "field": "email"}))]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem, the same for every occurrence.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time, for the client to read (never internal error text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For a 422: the request field that breaks a rule (an extension member).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    /// A problem whose title is the status's reason phrase.
    pub fn new(status: StatusCode, detail: impl Into<Option<String>>) -> Self {
        Self {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
        }
    }

    /// 422: a well-formed request whose `field` breaks a rule; the detail says which and why.
    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, Some(format!("{field}: {reason}")))
        }
    }

    /// 409 with a detail.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, Some(detail.into()))
    }

    /// 500, logging `error` with its causes; the client learns nothing internal.
    pub fn internal(error: &dyn std::error::Error) -> Self {
        tracing::error!(error = %crate::error_chain(error), "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, Some("an unexpected error occurred".to_owned()))
    }

    /// 404 with a detail.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, Some(detail.into()))
    }
}

/// A database error in a handler is a 500: `?` logs it and answers without its text.
impl From<sqlx::Error> for Problem {
    fn from(error: sqlx::Error) -> Self {
        Self::internal(&error)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_with_the_rfc_field_names() {
        let json = serde_json::to_value(Problem::not_found("no order 42")).expect("serialisable");
        assert_eq!(
            json,
            serde_json::json!({"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no order 42"})
        );
    }

    #[test]
    fn responds_with_the_problem_content_type_and_status() {
        let response = Problem::new(StatusCode::CONFLICT, None).into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
    }
}
