//! order-service: orders and their status history (:8082). Starts the saga with `OrderCreated` and ends it with `OrderConfirmed` or `OrderCancelled`.

use axum::Router;
use platform::{Context, ServiceDefaults, ServiceSpec};
use shared_events::topics;

/// Name and port from the contract.
pub const DEFAULTS: ServiceDefaults = ServiceDefaults { name: "order-service", port: 8082 };

/// How the platform starts this service: its schema and the topics it creates.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        topics: vec![
            topics::ORDER_CREATED,
            topics::ORDER_CONFIRMED,
            topics::ORDER_CANCELLED,
            topics::ORDER_CANCEL_REQUESTED,
            topics::PAYMENT_COMPLETED,
            topics::INVENTORY_REJECTED,
            topics::INVENTORY_RELEASED,
        ],
        ..ServiceSpec::new(DEFAULTS)
    }
}

/// The service's own HTTP routes, beside the platform's `/health` and `/ready`.
pub fn routes(_context: &Context) -> Router {
    Router::new()
}
