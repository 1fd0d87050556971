//! payment-service: wallets and payments (:8084). Opens a wallet on `UserSignedUp`,
//! charges on `InventoryReserved`, refunds on `OrderCancelRequested`.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod store;

use axum::Router;
use platform::config::ConfigError;
use platform::consumer::Subscriptions;
use platform::db::Migrations;
use platform::{Context, ServiceDefaults, ServiceSpec};
use shared_events::topics;

use crate::handlers::{Charge, OpenWallet, Refund};

/// Name and port from the contract.
pub const DEFAULTS: ServiceDefaults = ServiceDefaults { name: "payment-service", port: 8084 };

/// The wallets and payments schema.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: || sqlx::migrate!("../../migrations/payment-service"),
    postgres: || sqlx::migrate!("../../migrations/payment-service"),
};

/// The variable that sets a new wallet's balance, in cents.
pub const INITIAL_BALANCE_VAR: &str = "WALLET_INITIAL_BALANCE_CENTS";

/// A new wallet's balance: `WALLET_INITIAL_BALANCE_CENTS`, 100000 by default.
pub fn initial_balance() -> Result<i64, ConfigError> {
    match std::env::var(INITIAL_BALANCE_VAR) {
        Err(_) => Ok(100_000),
        Ok(value) => {
            value.trim().parse::<i64>().ok().filter(|cents| (0..=1_000_000_000_000).contains(cents)).ok_or(
                ConfigError {
                    variable: INITIAL_BALANCE_VAR,
                    value,
                    reason: "expected cents from 0 to 1000000000000".to_owned(),
                },
            )
        }
    }
}

/// How the platform starts this service.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        migrations: vec![MIGRATIONS],
        topics: vec![
            topics::PAYMENT_COMPLETED,
            topics::PAYMENT_FAILED,
            topics::PAYMENT_REFUNDED,
            topics::USER_SIGNED_UP,
            topics::INVENTORY_RESERVED,
            topics::ORDER_CANCEL_REQUESTED,
        ],
        subscriptions: |_| {
            // Checked by main before start; the default is what the contract says.
            let initial_cents = initial_balance().unwrap_or(100_000);
            Subscriptions::new()
                .on::<shared_events::UserSignedUp>(OpenWallet { initial_cents })
                .on::<shared_events::InventoryReserved>(Charge)
                .on::<shared_events::OrderCancelRequested>(Refund)
        },
        api_doc: <api::ApiDoc as utoipa::OpenApi>::openapi,
        ..ServiceSpec::new(DEFAULTS)
    }
}

/// The service's own HTTP routes, beside the platform's `/health`, `/ready` and `/metrics`.
pub fn routes(context: &Context) -> Router {
    context.routes_on_db(api::router)
}
