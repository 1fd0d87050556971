//! inventory-service: the catalogue, prices, stock and reservations (:8083). Reserves on
//! `OrderCreated` (all items or none), releases on `PaymentFailed` and `PaymentRefunded`.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod store;

use axum::Router;
use platform::consumer::Subscriptions;
use platform::db::Migrations;
use platform::{Context, ServiceSpec};
use shared_events::topics;

use crate::handlers::{ReleaseAfterFailedPayment, ReleaseAfterRefund, Reserve};

/// The products and reservations schema.
pub const MIGRATIONS: Migrations =
    Migrations::portable(|| sqlx::migrate!("../../migrations/inventory-service"));

/// How the platform starts this service.
pub fn spec() -> ServiceSpec {
    ServiceSpec::registered("inventory-service")
        .migrations(MIGRATIONS)
        .publishes(&[topics::INVENTORY_RESERVED, topics::INVENTORY_REJECTED, topics::INVENTORY_RELEASED])
        .subscriptions(|_| {
            // Every handler names the stock it locks: batched on PostgreSQL too.
            Subscriptions::new()
                .batched_on_postgres()
                .on::<shared_events::OrderCreated>(Reserve)
                .on::<shared_events::PaymentFailed>(ReleaseAfterFailedPayment)
                .on::<shared_events::PaymentRefunded>(ReleaseAfterRefund)
        })
        .api_doc(<api::ApiDoc as utoipa::OpenApi>::openapi)
}

/// The service's own HTTP routes, beside the platform's `/health`, `/ready` and `/metrics`.
pub fn routes(context: &Context) -> Router {
    context.routes_on_db(api::router)
}
