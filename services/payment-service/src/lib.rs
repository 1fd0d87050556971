//! payment-service: wallets and payments (:8084). Opens a wallet on `UserSignedUp`,
//! charges on `InventoryReserved`, refunds on `OrderCancelRequested`.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod store;

use axum::Router;
use platform::config::{ConfigError, Env};
use platform::consumer::Subscriptions;
use platform::db::Migrations;
use platform::{Context, ServiceSpec};
use shared_events::topics;

use crate::handlers::{Charge, OpenWallet, Refund};

/// The wallets and payments schema.
pub const MIGRATIONS: Migrations =
    Migrations::portable(|| sqlx::migrate!("../../migrations/payment-service"));

/// The service's own settings, read once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// A new wallet's balance in cents (`WALLET_INITIAL_BALANCE_CENTS`, 100000 by default).
    pub initial_balance_cents: i64,
}

impl Default for Settings {
    /// The contract's defaults.
    fn default() -> Self {
        Self { initial_balance_cents: 100_000 }
    }
}

impl Settings {
    /// From the environment; a bad value is named.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let default = Self::default();
        Ok(Self {
            initial_balance_cents: env.number(
                "WALLET_INITIAL_BALANCE_CENTS",
                default.initial_balance_cents,
                0..=1_000_000_000_000,
                "cents",
            )?,
        })
    }
}

/// How the platform starts this service with `settings`.
pub fn spec(settings: Settings) -> ServiceSpec {
    ServiceSpec::registered("payment-service")
        .migrations(MIGRATIONS)
        .publishes(&[topics::PAYMENT_COMPLETED, topics::PAYMENT_FAILED, topics::PAYMENT_REFUNDED])
        .subscriptions(move |_| {
            // Each handler names the wallet and payment it locks: batched on PostgreSQL too.
            Subscriptions::new()
                .batched_on_postgres()
                .on::<shared_events::UserSignedUp>(OpenWallet {
                    initial_cents: settings.initial_balance_cents,
                })
                .on::<shared_events::InventoryReserved>(Charge)
                .on::<shared_events::OrderCancelRequested>(Refund)
        })
        .api_doc(<api::ApiDoc as utoipa::OpenApi>::openapi)
}

/// The service's own HTTP routes, beside the platform's `/health`, `/ready` and `/metrics`.
pub fn routes(context: &Context) -> Router {
    context.routes_on_db(api::router)
}
