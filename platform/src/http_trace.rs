//! W3C trace context over HTTP: each request joins the trace its `traceparent` names (or
//! starts one) in a server span, and every response carries the `traceparent` of that span.
//! The same middleware counts and times every request for `/metrics`.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The middleware: wraps the request in its server span.
pub async fn trace_request(request: Request, next: Next) -> Response {
    let propagator = TraceContextPropagator::new();
    let parent = propagator.extract(&HeaderExtractor(request.headers()));
    let matched = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned());
    let route = matched.clone().unwrap_or_else(|| request.uri().path().to_owned());
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{} {route}", request.method()),
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = %route,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let _ = span.set_parent(parent);
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    // Paths no route matched are counted under one label: raw paths would let any
    // client grow the metric without bound.
    let template = matched.as_deref().unwrap_or("unmatched");
    crate::metrics::http_request(method.as_str(), template, status.as_u16(), started.elapsed().as_secs_f64());
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    // Without a tracer (a test harness that installed none) the context is empty and
    // nothing is written.
    propagator.inject_context(&span.context(), &mut HeaderInjector(response.headers_mut()));
    response
}
