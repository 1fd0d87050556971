//! notification-service: e-mail and SMS (:8085), sent on sign-up and on every terminal order, with retries and a dead-letter topic.

use axum::Router;
use platform::{Context, ServiceDefaults, ServiceSpec};
use shared_events::topics;

/// Name and port from the contract.
pub const DEFAULTS: ServiceDefaults = ServiceDefaults { name: "notification-service", port: 8085 };

/// How the platform starts this service: its schema and the topics it creates.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        topics: vec![
            topics::EMAIL_SEND,
            topics::SMS_SEND,
            topics::USER_SIGNED_UP,
            topics::ORDER_CONFIRMED,
            topics::ORDER_CANCELLED,
        ],
        ..ServiceSpec::new(DEFAULTS)
    }
}

/// The service's own HTTP routes, beside the platform's `/health` and `/ready`.
pub fn routes(_context: &Context) -> Router {
    Router::new()
}
