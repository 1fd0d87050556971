//! order-service: orders and their history (:8082). Starts the saga with `OrderCreated`
//! and ends it with `OrderConfirmed` or `OrderCancelled`; a user's cancel of a confirmed
//! order starts `OrderCancelRequested`.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod steps;
pub mod store;

use axum::Router;
use platform::consumer::Subscriptions;
use platform::db::Migrations;
use platform::{Context, ServiceSpec};
use shared_events::topics;

use crate::handlers::{CancelRejected, CancelReleased, Confirm};

/// The orders schema.
pub const MIGRATIONS: Migrations = Migrations::portable(|| sqlx::migrate!("../../migrations/order-service"));

/// How the platform starts this service.
pub fn spec() -> ServiceSpec {
    ServiceSpec::registered("order-service")
        .migrations(MIGRATIONS)
        .publishes(&[
            topics::ORDER_CREATED,
            topics::ORDER_CONFIRMED,
            topics::ORDER_CANCELLED,
            topics::ORDER_CANCEL_REQUESTED,
        ])
        .subscriptions(|_| {
            // Each step names the order it locks: batched on PostgreSQL too.
            Subscriptions::new()
                .batched_on_postgres()
                .on::<shared_events::PaymentCompleted>(Confirm)
                .on::<shared_events::InventoryRejected>(CancelRejected)
                .on::<shared_events::InventoryReleased>(CancelReleased)
        })
        .api_doc(<api::ApiDoc as utoipa::OpenApi>::openapi)
}

/// The service's own HTTP routes, beside the platform's `/health`, `/ready` and `/metrics`.
pub fn routes(context: &Context) -> Router {
    context.routes_on_db(api::router)
}
