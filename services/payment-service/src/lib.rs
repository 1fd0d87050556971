//! payment-service: wallets and payments (:8084). Opens a wallet on `UserSignedUp`, charges on `InventoryReserved`, refunds on `OrderCancelRequested`.

use axum::Router;
use platform::{Context, ServiceDefaults, ServiceSpec};
use shared_events::topics;

/// Name and port from the contract.
pub const DEFAULTS: ServiceDefaults = ServiceDefaults { name: "payment-service", port: 8084 };

/// How the platform starts this service: its schema and the topics it creates.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        topics: vec![
            topics::PAYMENT_COMPLETED,
            topics::PAYMENT_FAILED,
            topics::PAYMENT_REFUNDED,
            topics::USER_SIGNED_UP,
            topics::INVENTORY_RESERVED,
            topics::ORDER_CANCEL_REQUESTED,
        ],
        ..ServiceSpec::new(DEFAULTS)
    }
}

/// The service's own HTTP routes, beside the platform's `/health` and `/ready`.
pub fn routes(_context: &Context) -> Router {
    Router::new()
}
