//! gateway: the single entry point on :8080. Routes every `/api/...` path of the
//! contract to the service that owns it, and user-service's JWKS; owns no data and talks
//! to no broker. Checks the caller's bearer token first ([`access`]) and forwards it
//! unchanged, since the services check it again. Serves the saga board's page too
//! ([`board`]), whose data comes from the board's admin-only API behind it.

pub mod access;
pub mod board;
pub mod docs;
pub mod proxy;
pub mod stream;

use std::time::Duration;

use axum::Router;
use axum::routing::{any, get};
use platform::config::{ConfigError, Env};
use platform::{Context, ServiceSpec};

pub use platform::upstreams::Upstreams;

/// The gateway's own settings, read once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where each service listens.
    pub upstreams: Upstreams,
    /// How long a service may take (`GATEWAY_TIMEOUT_MS`, 10000 by default).
    pub timeout: Duration,
}

impl Default for Settings {
    /// Every service on this machine at its registered port; 10 s.
    fn default() -> Self {
        Self { upstreams: Upstreams::default(), timeout: Duration::from_secs(10) }
    }
}

impl Settings {
    /// From the environment; a bad value is named.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            upstreams: Upstreams::from_env(env)?,
            timeout: Duration::from_millis(env.number(
                "GATEWAY_TIMEOUT_MS",
                10_000,
                1..=300_000,
                "milliseconds",
            )?),
        })
    }
}

/// How the platform starts the gateway: no database, no Kafka (as the registry says).
pub fn spec() -> ServiceSpec {
    ServiceSpec::registered("gateway")
}

/// The proxy routes in front of `upstreams` (event streams passed on as they come),
/// Swagger UI over their APIs and the saga board's page, each behind the access check of
/// [`access::required`]. The tokens are checked by the verifier the platform installs on
/// every service's routes.
pub fn router(upstreams: Upstreams, timeout: Duration) -> Router {
    let proxy = proxy::Proxy::new(upstreams, timeout);
    Router::new()
        .route("/api/{*path}", any(proxy::forward))
        .route(platform::auth::JWKS_PATH, get(proxy::forward))
        .route(stream::BOARD_STREAM, get(stream::forward))
        .with_state(proxy.clone())
        .merge(docs::router(proxy))
        .merge(board::router())
        // On the routes only: a path none of them serves stays the platform's 404.
        .route_layer(axum::middleware::from_fn(access::check))
}

/// The routes, built from the settings read at start.
pub fn routes(settings: Settings) -> impl FnOnce(&Context) -> Router {
    move |_| router(settings.upstreams, settings.timeout)
}
