//! What can go wrong in the user-service, and the problem each is to a client.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform::auth::KeyError;
use platform::problem::Problem;

use crate::password::HashError;

/// A failed user operation.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The e-mail is registered already (ignoring case).
    #[error("email {0} is already registered")]
    EmailTaken(String),
    /// No such user (or one the caller may not see, which must look the same).
    #[error("no user {0}")]
    NotFound(String),
    /// A sign-in with an unknown e-mail or a wrong password: one error for both, so the
    /// answer does not tell which.
    #[error("the e-mail or the password is wrong")]
    SignInRefused,
    /// Too many failed sign-ins for the e-mail lately: the next may come after this long.
    #[error("too many failed sign-ins for this e-mail: try again in {} s", .0.as_secs())]
    TooManyFailures(Duration),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// Signing the token failed.
    #[error(transparent)]
    Token(#[from] KeyError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<UserError> for Problem {
    fn from(error: UserError) -> Self {
        match &error {
            UserError::EmailTaken(_) => Problem {
                field: Some("email".to_owned()),
                ..Problem::new(StatusCode::CONFLICT, Some("email: is already registered".to_owned()))
            },
            UserError::NotFound(id) => Problem::not_found(format!("no user {id}")),
            UserError::SignInRefused => Problem::new(StatusCode::UNAUTHORIZED, Some(error.to_string())),
            UserError::TooManyFailures(_) => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, Some(error.to_string()))
            }
            UserError::Hash(_) | UserError::Token(_) | UserError::Db(_) => Problem::internal(&error),
        }
    }
}

/// The problem, with the headers its status calls for: the challenge of a 401, the wait
/// of a 429.
impl IntoResponse for UserError {
    fn into_response(self) -> Response {
        let header = match &self {
            Self::SignInRefused => Some((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))),
            Self::TooManyFailures(wait) => Some((header::RETRY_AFTER, HeaderValue::from(wait.as_secs()))),
            _ => None,
        };
        let mut response = Problem::from(self).into_response();
        if let Some((name, value)) = header {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_sign_in_challenges_and_a_held_one_says_how_long_to_wait() {
        let refused = UserError::SignInRefused.into_response();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(refused.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(refused.headers()[header::CONTENT_TYPE], "application/problem+json");
        let held = UserError::TooManyFailures(Duration::from_secs(42)).into_response();
        assert_eq!(held.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(held.headers()[header::RETRY_AFTER], "42");
    }
}
