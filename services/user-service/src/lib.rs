//! user-service: users and sign-up (:8081). Publishes `UserSignedUp` through its outbox.
//!
//! `domain` validates a sign-up once; `password` hashes with Argon2id; `store` is the
//! `users` table; `api` holds the thin handlers.

pub mod api;
pub mod domain;
pub mod error;
pub mod password;
pub mod store;

use axum::Router;
use platform::db::Migrations;
use platform::{Context, ServiceSpec};
use shared_events::topics;

/// The `users` schema.
pub const MIGRATIONS: Migrations = Migrations::portable(|| sqlx::migrate!("../../migrations/user-service"));

/// How the platform starts this service: its schema and the topics it creates.
pub fn spec() -> ServiceSpec {
    ServiceSpec::registered("user-service")
        .migrations(MIGRATIONS)
        .publishes(&[topics::USER_SIGNED_UP])
        .api_doc(<api::ApiDoc as utoipa::OpenApi>::openapi)
}

/// The service's own HTTP routes, beside the platform's `/health`, `/ready` and `/metrics`.
pub fn routes(context: &Context) -> Router {
    context.routes_on_db(api::router)
}
