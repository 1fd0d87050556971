//! Traces against the real Zipkin: an HTTP request's trace context in and out, and one
//! trace from the producing transaction through Kafka to the consumer.

#[path = "integration/support.rs"]
mod support;

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::TraceContextExt;
use platform::config::TraceSampler;
use platform::consumer::{EventMeta, Handler, HandlerError, Subscriptions};
use platform::db::Tx;
use platform::telemetry::{self, Telemetry};
use platform::{ServiceDefaults, ServiceSpec};
use serde_json::Value;
use shared_events::{OrderCreated, OrderItem};
use testkit::{TestService, service_config, unique_name, zipkin_url};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use support::{consume, database, effects, eventually, record_effect, relay, topic};

/// The service name every span of this test binary is exported under.
fn service() -> &'static str {
    static NAME: OnceLock<&'static str> = OnceLock::new();
    NAME.get_or_init(|| Box::leak(unique_name("trace-test").into_boxed_str()))
}

/// The process-wide subscriber, exporting to the real Zipkin.
fn telemetry() -> &'static Telemetry {
    static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
    TELEMETRY.get_or_init(|| {
        telemetry::init(service(), Some(&format!("{}/api/v2/spans", zipkin_url())), TraceSampler::default())
            .expect("telemetry")
    })
}

async fn flush() {
    tokio::task::spawn_blocking(|| telemetry().flush()).await.expect("flush");
}

/// Polls Zipkin until the trace has `spans` spans.
async fn read_trace(trace_id: &str, spans: usize) -> Vec<Value> {
    let url = format!("{}/api/v2/trace/{trace_id}", zipkin_url());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        flush().await;
        if let Ok(response) = reqwest::get(&url).await
            && response.status().is_success()
        {
            let trace: Vec<Value> = response.json().await.expect("a JSON trace");
            if trace.len() >= spans {
                return trace;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "trace {trace_id} lacks {spans} spans after 20 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

struct Record;

#[async_trait::async_trait]
impl Handler<OrderCreated> for Record {
    async fn handle(&self, event: OrderCreated, _meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        record_effect(tx, event.order_id.to_string()).await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_crosses_the_outbox_kafka_and_the_consumer() {
    telemetry();
    let (_database, db) = database().await;
    let topic = topic("it.trace").await;
    let (stop, running) = consume(&db, Subscriptions::new().on_topic::<OrderCreated>(&topic, Record)).await;

    let root = tracing::info_span!("place order", otel.kind = "server");
    let trace_id = root.context().span().span_context().trace_id().to_string();
    async {
        let mut tx = db.begin_write().await.expect("begin");
        let order = OrderCreated::placed(
            Uuid::new_v4(),
            Uuid::nil(),
            vec![OrderItem { sku: "S".into(), quantity: 1 }],
        );
        tx.publish_to(&topic, &order).await.expect("enqueue");
        tx.commit().await.expect("commit");
    }
    .instrument(root.clone())
    .await;
    drop(root);
    assert_eq!(relay(&db).publish_pending().await.expect("relay"), 1);
    eventually(Duration::from_secs(30), "the event applied", || async { effects(&db).await.len() == 1 })
        .await;
    stop.cancel();
    running.await.expect("consumer").expect("no worker died");

    let trace = read_trace(&trace_id, 3).await;
    let named = |suffix: &str| {
        trace
            .iter()
            .find(|s| s["name"].as_str().is_some_and(|n| n.ends_with(suffix)))
            .cloned()
            .unwrap_or_else(|| panic!("no span {suffix} in {trace:#?}"))
    };
    let root = named("place order");
    let send = named(&format!("{topic} send"));
    let process = named(&format!("{topic} process"));
    assert_eq!(send["parentId"], root["id"], "send is a child of the producing span");
    assert_eq!(process["parentId"], send["id"], "process is a child of send, across Kafka");
    assert_eq!(send["kind"], "PRODUCER");
    assert_eq!(process["kind"], "CONSUMER");
    assert_eq!(process["tags"]["messaging.destination.name"], topic.as_str());
    assert_eq!(process["tags"]["cloudevents.event_type"], "order.created.v2");
    assert!(process["tags"]["messaging.kafka.offset"].is_string());
    for span in [&root, &send, &process] {
        assert_eq!(span["localEndpoint"]["serviceName"], service());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_names_its_trace_and_joins_the_callers() {
    telemetry();
    let spec = ServiceSpec {
        uses_database: false,
        uses_kafka: false,
        ..ServiceSpec::new(ServiceDefaults { name: "trace-http", port: 0 })
    };
    let service =
        TestService::spawn(&spec, service_config(&spec, "sqlite::memory:"), |_| axum::Router::new()).await;
    let client = reqwest::Client::new();

    let started = client.get(format!("{}/health", service.base_url)).send().await.expect("GET");
    let traceparent = started.headers()["traceparent"].to_str().expect("ascii").to_owned();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!((parts.len(), parts[0], parts[1].len(), parts[2].len()), (4, "00", 32, 16), "{traceparent}");

    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let joined = client
        .get(format!("{}/missing", service.base_url))
        .header("traceparent", caller)
        .send()
        .await
        .expect("GET");
    assert_eq!(joined.status(), 404, "errors carry it too");
    let traceparent = joined.headers()["traceparent"].to_str().expect("ascii");
    assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{traceparent}");
    assert!(!traceparent.contains("00f067aa0ba902b7"), "the response names the server's own span");

    let trace = read_trace("4bf92f3577b34da6a3ce929d0e0e4736", 1).await;
    assert_eq!(trace[0]["parentId"], "00f067aa0ba902b7");
    assert_eq!(trace[0]["kind"], "SERVER");
    assert_eq!(trace[0]["tags"]["http.response.status_code"], "404");
    service.stop().await;
}
