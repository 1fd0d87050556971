use std::time::Duration;

use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider as _};
use platform::config::TraceSampler;
use platform::telemetry::zipkin_tracer_provider;
use serde_json::Value;
use testkit::{unique_name, zipkin_url};

/// Polls Zipkin until the trace has `spans` spans (Zipkin indexes asynchronously).
async fn read_trace(trace_id: &str, spans: usize) -> Vec<Value> {
    let client = reqwest::Client::new();
    let url = format!("{}/api/v2/trace/{trace_id}", zipkin_url());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let response = client.get(&url).send().await.expect("Zipkin must be up: ./test.sh starts it");
        if response.status().is_success() {
            let trace: Vec<Value> = response.json().await.expect("a JSON trace");
            if trace.len() >= spans {
                return trace;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "trace {trace_id} did not reach Zipkin within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// Multi-threaded, and the exporter is built inside the runtime: that used to panic.
#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_zipkin_with_their_service_name_and_parent_link() {
    let service: &'static str = Box::leak(unique_name("it-svc").into_boxed_str());
    let provider =
        zipkin_tracer_provider(service, &format!("{}/api/v2/spans", zipkin_url()), TraceSampler::AlwaysOn)
            .expect("exporter");
    let tracer = provider.tracer("integration-test");

    let parent = tracer.start("publish order.created");
    let trace_id = parent.span_context().trace_id().to_string();
    let parent_id = parent.span_context().span_id().to_string();
    let cx = opentelemetry::Context::current_with_span(parent);
    let mut child = tracer.start_with_context("consume order.created", &cx);
    child.end();
    cx.span().end();

    let flusher = provider.clone();
    tokio::task::spawn_blocking(move || flusher.force_flush()).await.expect("join").expect("flush");

    let trace = read_trace(&trace_id, 2).await;
    let by_name = |name: &str| trace.iter().find(|s| s["name"] == name).cloned().expect(name);
    let parent = by_name("publish order.created");
    let child = by_name("consume order.created");
    assert_eq!(parent["id"], parent_id.as_str());
    assert_eq!(child["parentId"], parent_id.as_str());
    for span in [&parent, &child] {
        assert_eq!(span["traceId"], trace_id.as_str());
        assert_eq!(span["localEndpoint"]["serviceName"], service);
    }

    let services: Vec<String> = reqwest::get(format!("{}/api/v2/services", zipkin_url()))
        .await
        .expect("services")
        .json()
        .await
        .expect("a JSON list");
    assert!(services.iter().any(|s| s == service), "{service} not in {services:?}");

    tokio::task::spawn_blocking(move || provider.shutdown()).await.expect("join").expect("shutdown");
}
