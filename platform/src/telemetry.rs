//! Logs and traces: `tracing` for both, exported to Zipkin through OpenTelemetry.
//!
//! opentelemetry-zipkin 0.33 has two traps that this module closes:
//! 1. its exporter builder creates a *blocking* reqwest client, and creating or dropping
//!    one inside a tokio runtime panics. [`zipkin_tracer_provider`] therefore builds the
//!    exporter on a plain thread, so it may be called from anywhere; the SDK's batch
//!    processor then exports from its own OS thread, where blocking is fine.
//! 2. the spans it writes carry an empty `localEndpoint` (the resource's `service.name`
//!    is dropped), and Zipkin indexes services by `localEndpoint.serviceName`.
//!    [`ServiceNamingClient`] writes the service name into each span before upload.
//!
//! The crate is deprecated upstream in favour of OTLP; the project's owner chose it, and
//! Zipkin's own JSON v2 API needs no collector in between.
#![allow(deprecated)]

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_zipkin::ZipkinExporter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::TraceSampler;

/// What `RUST_LOG` defaults to: our own info, the chatty libraries' warnings.
const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,rdkafka=warn,tower_http=info,opentelemetry=warn";

/// Failure to set up tracing export.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The Zipkin exporter could not be built (a bad endpoint URL).
    #[error("zipkin exporter: {0}")]
    Exporter(String),
    /// A global subscriber was already installed in this process.
    #[error("tracing subscriber: {0}")]
    Subscriber(String),
}

/// Keeps span export alive; [`Telemetry::shutdown`] flushes what is still buffered.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans buffered so far (blocks: call it off the async runtime's threads).
    pub fn flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(error) = provider.force_flush()
        {
            tracing::warn!(%error, "flushing spans failed");
        }
    }

    /// Sends the spans still buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown_with_timeout(Duration::from_secs(5))
        {
            tracing::warn!(%error, "flushing spans at shutdown failed");
        }
    }
}

/// Installs the process-wide subscriber: log lines to stderr (filtered by `RUST_LOG`) and
/// spans with W3C trace ids, exported to Zipkin as `service_name` when `zipkin_endpoint`
/// is set (without it, ids still flow through headers; nothing is exported). W3C trace
/// context becomes the global propagator.
pub fn init(
    service_name: &'static str,
    zipkin_endpoint: Option<&str>,
    sampler: TraceSampler,
) -> Result<Telemetry, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not in log files or pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let provider = match zipkin_endpoint {
        Some(endpoint) => zipkin_tracer_provider(service_name, endpoint, sampler)?,
        None => SdkTracerProvider::builder()
            .with_sampler(sdk_sampler(sampler))
            .with_resource(Resource::builder().with_service_name(service_name).build())
            .build(),
    };
    opentelemetry::global::set_tracer_provider(provider.clone());
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service_name));
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        // Spans reach the tracer whatever RUST_LOG says: a quiet log must not break traces.
        .with(otel.with_filter(tracing_subscriber::filter::LevelFilter::INFO))
        .try_init()
        .map_err(|e| TelemetryError::Subscriber(e.to_string()))?;
    Ok(Telemetry { provider: Some(provider) })
}

/// A tracer provider that batches spans of `service_name` to the Zipkin collector at
/// `endpoint` (`http://host:9411/api/v2/spans`). Safe to call inside a tokio runtime.
pub fn zipkin_tracer_provider(
    service_name: &'static str,
    endpoint: &str,
    sampler: TraceSampler,
) -> Result<SdkTracerProvider, TelemetryError> {
    let endpoint = endpoint.to_owned();
    // Trap 1: the builder makes (and drops) blocking reqwest clients, which panics on a
    // runtime thread. Built here, on a plain thread, nothing blocking touches the runtime.
    std::thread::spawn(move || {
        let exporter = ZipkinExporter::builder()
            .with_collector_endpoint(endpoint)
            .with_http_client(ServiceNamingClient::new(service_name))
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        Ok(SdkTracerProvider::builder()
            .with_sampler(sdk_sampler(sampler))
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service_name).build())
            .build())
    })
    .join()
    .unwrap_or_else(|_| Err(TelemetryError::Exporter("exporter set-up thread panicked".to_owned())))
}

/// The SDK's sampler for `sampler`.
fn sdk_sampler(sampler: TraceSampler) -> Sampler {
    match sampler {
        TraceSampler::AlwaysOn => Sampler::AlwaysOn,
        TraceSampler::AlwaysOff => Sampler::AlwaysOff,
        TraceSampler::Ratio(ratio) => Sampler::TraceIdRatioBased(ratio),
        TraceSampler::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        TraceSampler::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        TraceSampler::ParentBasedRatio(ratio) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
        }
    }
}

/// The exporter's HTTP client: a blocking reqwest client that fills in each span's
/// `localEndpoint.serviceName` before upload (trap 2 above).
#[derive(Debug)]
pub struct ServiceNamingClient {
    inner: reqwest::blocking::Client,
    service_name: &'static str,
}

impl ServiceNamingClient {
    /// A client naming every span it uploads `service_name`. Create it off the runtime.
    pub fn new(service_name: &'static str) -> Self {
        let inner = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::blocking::Client::new());
        Self { inner, service_name }
    }
}

#[async_trait::async_trait]
impl HttpClient for ServiceNamingClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let body = name_local_endpoints(&body, self.service_name)?;
        self.inner.send_bytes(Request::from_parts(parts, body)).await
    }
}

/// Sets `localEndpoint.serviceName` on every span of a Zipkin v2 JSON array.
fn name_local_endpoints(body: &[u8], service_name: &str) -> Result<Bytes, serde_json::Error> {
    let mut spans: Vec<serde_json::Value> = serde_json::from_slice(body)?;
    for span in &mut spans {
        if let Some(span) = span.as_object_mut() {
            let endpoint = span.entry("localEndpoint").or_insert_with(|| serde_json::json!({}));
            if let Some(endpoint) = endpoint.as_object_mut() {
                endpoint.insert("serviceName".to_owned(), service_name.into());
            }
        }
    }
    serde_json::to_vec(&spans).map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_span_gets_the_service_name_and_keeps_its_fields() {
        let body =
            br#"[{"id":"1","localEndpoint":{}},{"id":"2","localEndpoint":{"ipv4":"10.0.0.1"}},{"id":"3"}]"#;
        let named: Vec<serde_json::Value> =
            serde_json::from_slice(&name_local_endpoints(body, "order-service").expect("valid json"))
                .expect("json");
        for (span, id) in named.iter().zip(["1", "2", "3"]) {
            assert_eq!(span["id"], id);
            assert_eq!(span["localEndpoint"]["serviceName"], "order-service");
        }
        assert_eq!(named[1]["localEndpoint"]["ipv4"], "10.0.0.1");
    }
}
