//! gateway: the single entry point on :8080. Routes every `/api/...` path of the
//! contract to the service that owns it; owns no data and talks to no broker.

pub mod docs;
pub mod proxy;
pub mod upstreams;

use std::time::Duration;

use axum::Router;
use axum::routing::any;
use platform::config::ConfigError;
use platform::{Context, ServiceDefaults, ServiceSpec};

pub use crate::upstreams::Upstreams;

/// Name and port from the contract.
pub const DEFAULTS: ServiceDefaults = ServiceDefaults { name: "gateway", port: 8080 };

/// How the platform starts the gateway: no database, no Kafka.
pub fn spec() -> ServiceSpec {
    ServiceSpec { uses_database: false, uses_kafka: false, ..ServiceSpec::new(DEFAULTS) }
}

/// How long a service may take (`GATEWAY_TIMEOUT_MS`, 10000 by default).
pub fn timeout() -> Result<Duration, ConfigError> {
    match std::env::var("GATEWAY_TIMEOUT_MS") {
        Err(_) => Ok(Duration::from_secs(10)),
        Ok(value) => value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|ms| (1..=300_000).contains(ms))
            .map(Duration::from_millis)
            .ok_or(ConfigError {
                variable: "GATEWAY_TIMEOUT_MS",
                value,
                reason: "expected milliseconds from 1 to 300000".to_owned(),
            }),
    }
}

/// The proxy routes in front of `upstreams`, and Swagger UI over their APIs.
pub fn router(upstreams: Upstreams, timeout: Duration) -> Router {
    let proxy = proxy::Proxy { upstreams, client: reqwest::Client::new(), timeout };
    Router::new()
        .route("/api/{*path}", any(proxy::forward))
        .with_state(proxy.clone())
        .merge(docs::router(proxy))
}

/// The routes from the environment (checked by `main` before start).
pub fn routes(_context: &Context) -> Router {
    router(Upstreams::from_env().unwrap_or_default(), timeout().unwrap_or(Duration::from_secs(10)))
}
