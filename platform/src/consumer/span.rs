//! The tracing layer: each message is processed in a `process` span that continues the
//! trace its headers carry, so one order is one trace across every service.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rdkafka::message::Message;
use shared_events::headers;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::delivery::Incoming;

/// The span of one message's processing, child of the trace in its headers.
pub(crate) fn consume_span(incoming: &Incoming<'_>) -> Span {
    let Incoming { message, headers, delivery } = incoming;
    let span = tracing::info_span!(
        "process",
        otel.name = %format!("{} process", delivery.topic),
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.operation = "process",
        messaging.destination.name = %delivery.topic,
        messaging.kafka.source.topic = %message.topic(),
        messaging.kafka.partition = message.partition(),
        messaging.kafka.offset = message.offset(),
        messaging.message.id = headers.get(headers::CE_ID).map(String::as_str).unwrap_or(""),
        cloudevents.event_type = headers.get(headers::CE_TYPE).map(String::as_str).unwrap_or(""),
        attempt = delivery.attempt,
    );
    if headers.contains_key(headers::TRACEPARENT) {
        let _ = span.set_parent(TraceContextPropagator::new().extract(headers));
    }
    span
}
