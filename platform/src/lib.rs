//! The runtime every service of the system shares, so that none re-implements it:
//! configuration ([`config`]), its own database ([`db`]), Kafka set-up ([`kafka`]), the
//! transactional outbox ([`outbox`]), the consumer runtime ([`consumer`]), dead-letter
//! replay ([`dead_letter`]), tracing to Zipkin ([`telemetry`], [`http_trace`]), metrics
//! ([`metrics`]), problem+json errors ([`problem`]), `/health`, `/ready` and `/metrics`
//! ([`ops`]) and the process life cycle ([`app`], with its watched [`background`] tasks).

pub mod app;
pub mod auth;
pub mod background;
pub mod cleanup;
pub mod clock;
pub mod config;
pub mod consumer;
pub mod db;
pub mod dead_letter;
pub mod extract;
pub mod http_trace;
pub mod idempotency;
pub mod kafka;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod outbox;
pub mod problem;
pub mod registry;
pub mod telemetry;
pub mod text_enum;
pub mod upstreams;
pub mod validate;

pub use app::{Application, Context, ServiceSpec};
pub use config::{ServiceConfig, ServiceDefaults};

/// `error: cause: cause ...`: an error and its sources on one line, for logs and probes.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
