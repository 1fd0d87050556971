//! user-service: users and sign-up (:8081). Publishes `UserSignedUp`.

use axum::Router;
use platform::{Context, ServiceDefaults, ServiceSpec};
use shared_events::topics;

/// Name and port from the contract.
pub const DEFAULTS: ServiceDefaults = ServiceDefaults { name: "user-service", port: 8081 };

/// How the platform starts this service: its schema and the topics it creates.
pub fn spec() -> ServiceSpec {
    ServiceSpec { topics: vec![topics::USER_SIGNED_UP], ..ServiceSpec::new(DEFAULTS) }
}

/// The service's own HTTP routes, beside the platform's `/health` and `/ready`.
pub fn routes(_context: &Context) -> Router {
    Router::new()
}
