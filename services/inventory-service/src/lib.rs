//! inventory-service: the catalogue, prices, stock and reservations (:8083). Reserves on `OrderCreated`, releases on `PaymentFailed` and `PaymentRefunded`.

use axum::Router;
use platform::{Context, ServiceDefaults, ServiceSpec};
use shared_events::topics;

/// Name and port from the contract.
pub const DEFAULTS: ServiceDefaults = ServiceDefaults { name: "inventory-service", port: 8083 };

/// How the platform starts this service: its schema and the topics it creates.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        topics: vec![
            topics::INVENTORY_RESERVED,
            topics::INVENTORY_REJECTED,
            topics::INVENTORY_RELEASED,
            topics::ORDER_CREATED,
            topics::PAYMENT_FAILED,
            topics::PAYMENT_REFUNDED,
        ],
        ..ServiceSpec::new(DEFAULTS)
    }
}

/// The service's own HTTP routes, beside the platform's `/health` and `/ready`.
pub fn routes(_context: &Context) -> Router {
    Router::new()
}
