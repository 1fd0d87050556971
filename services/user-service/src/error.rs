//! What can go wrong in the user-service, and the problem each is to a client.

use axum::http::StatusCode;
use platform::problem::Problem;

use crate::password::HashError;

/// A failed user operation.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The e-mail is registered already (ignoring case).
    #[error("email {0} is already registered")]
    EmailTaken(String),
    /// No such user.
    #[error("no user {0}")]
    NotFound(String),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl From<UserError> for Problem {
    fn from(error: UserError) -> Self {
        match &error {
            UserError::EmailTaken(_) => Problem {
                field: Some("email".to_owned()),
                ..Problem::new(StatusCode::CONFLICT, Some("email: is already registered".to_owned()))
            },
            UserError::NotFound(id) => Problem::not_found(format!("no user {id}")),
            UserError::Hash(_) => Problem::internal(&error),
        }
    }
}
