//! gateway: the single entry point on :8080 that routes `/api/...` to the services. It owns no data and talks to no broker.

use axum::Router;
use platform::{Context, ServiceDefaults, ServiceSpec};

/// Name and port from the contract.
pub const DEFAULTS: ServiceDefaults = ServiceDefaults { name: "gateway", port: 8080 };

/// How the platform starts this service: its schema and the topics it creates.
pub fn spec() -> ServiceSpec {
    ServiceSpec { uses_database: false, uses_kafka: false, ..ServiceSpec::new(DEFAULTS) }
}

/// The service's own HTTP routes, beside the platform's `/health` and `/ready`.
pub fn routes(_context: &Context) -> Router {
    Router::new()
}
