//! saga-board: the read side of the system (:8086). Consumes every topic and every
//! dead-letter topic into its own store, keeps a view of each order's saga computed from
//! the events alone, and serves it to admins under `/api/board`, with a live stream of
//! changes; the gateway serves the page at `/board`. Its store can be deleted: the next
//! start reads the topics again from the beginning and rebuilds the same view.

pub mod api;
pub mod changes;
pub mod consumers;
pub mod domain;
pub mod projection;
pub mod record;
pub mod stats;
pub mod store;
pub mod stream;

use std::sync::Arc;

use axum::Router;
use platform::config::{ConfigError, Env};
use platform::db::Migrations;
use platform::upstreams::Upstreams;
use platform::{Context, ServiceSpec};

use crate::api::Board;
use crate::changes::Changes;

/// The board's schema.
pub const MIGRATIONS: Migrations = Migrations::portable(|| sqlx::migrate!("../../migrations/saga-board"));

/// The board's own settings, read once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Zipkin's UI, for the link to an order's trace (`ZIPKIN_UI_URL`,
    /// `http://127.0.0.1:9411/zipkin` by default; empty: no link).
    pub zipkin_ui: Option<String>,
    /// Where the services are, to read their `/metrics` (`SERVICE_URL_TEMPLATE`, as the
    /// gateway reads it).
    pub upstreams: Upstreams,
}

impl Default for Settings {
    fn default() -> Self {
        Self { zipkin_ui: Some(DEFAULT_ZIPKIN_UI.to_owned()), upstreams: Upstreams::default() }
    }
}

const DEFAULT_ZIPKIN_UI: &str = "http://127.0.0.1:9411/zipkin";

impl Settings {
    /// From the environment; a bad value is named.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let zipkin_ui = env.parse(
            "ZIPKIN_UI_URL",
            || Some(DEFAULT_ZIPKIN_UI.to_owned()),
            |value| {
                if value.is_empty() {
                    return Ok(None);
                }
                platform::config::http_url(value).map(|url| Some(url.trim_end_matches('/').to_owned()))
            },
        )?;
        Ok(Self { zipkin_ui, upstreams: Upstreams::from_env(env)? })
    }
}

/// How the platform starts the board; `changes` links its consumers to its stream.
pub fn spec(changes: Changes) -> ServiceSpec {
    ServiceSpec::registered("saga-board")
        .migrations(MIGRATIONS)
        .consumer_group(|context: &Context| {
            let db = context.db.clone();
            let base = context.config.consumer_group();
            async move {
                let db = db.ok_or_else(|| sqlx::Error::Configuration("the board has no database".into()))?;
                store::consumer_group(&db, &base).await
            }
        })
        .subscriptions(move |context| projection::subscriptions(&context.config.kafka, &changes))
        // The board reads every event of every saga; a page that shows a step 50 ms later
        // is as live to its reader, and the board then applies events in batches rather
        // than one fetch and one transaction each.
        .fetch_linger(std::time::Duration::from_millis(50))
        .api_doc(<api::ApiDoc as utoipa::OpenApi>::openapi)
}

/// The board's routes, beside the platform's `/health`, `/ready` and `/metrics`.
pub fn routes(settings: Settings, changes: Changes) -> impl FnOnce(&Context) -> Router {
    move |context| {
        let settings = Arc::new(settings);
        let kafka = context.config.kafka.clone();
        context.routes_on_db(|db| {
            let stopping = context.stopping.clone();
            if db.backend() == platform::db::Backend::Postgres {
                tokio::spawn(changes.clone().relay_from_postgres(db.url().to_owned(), stopping.clone()));
            }
            let consumers = consumers::Consumers::new(&kafka)
                .inspect_err(|error| tracing::error!(%error, "cannot read the consumer groups' offsets"))
                .ok();
            let client = reqwest::Client::new();
            api::router(Board { db, kafka, settings, changes, client, stopping, consumers })
        })
    }
}
