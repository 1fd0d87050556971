use std::time::Duration;

use axum::Json;
use axum::http::HeaderMap;
use axum::routing::{any, get};
use serde_json::{Value, json};
use testkit::{TestService, service_config};

use crate::helpers::{ALL, free_port, spawn_with};

/// A stand-in service that answers with the headers it received, or slowly.
async fn echo_service() -> String {
    async fn echo(headers: HeaderMap) -> Json<Value> {
        let headers: serde_json::Map<String, Value> =
            headers.iter().map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default()))).collect();
        Json(Value::Object(headers))
    }
    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(3)).await;
        "late"
    }
    let app =
        axum::Router::new().route("/api/orders/slow", get(slow)).route("/api/orders/{*rest}", any(echo));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn gateway(upstreams: gateway::Upstreams, timeout: Duration) -> TestService {
    let spec = gateway::spec();
    TestService::spawn(&spec, service_config(&spec, "sqlite::memory:"), move |_| {
        gateway::router(upstreams, timeout)
    })
    .await
}

#[tokio::test]
async fn the_gateway_routes_to_the_owning_service() {
    let users = spawn_with(ALL[1], |_, _| {}).await;
    let inventory = spawn_with(ALL[3], |_, _| {}).await;
    let upstreams = gateway::Upstreams::default()
        .with("user-service", users.service.base_url.clone())
        .with("inventory-service", inventory.service.base_url.clone());
    let gateway = gateway(upstreams, Duration::from_secs(10)).await;
    let client = crate::helpers::admin_client();
    let signed_up = client
        .post(format!("{}/api/users", gateway.base_url))
        .json(&json!({"email": format!("{}@example.com", uuid::Uuid::new_v4().simple()), "name": "Via", "password": "gateway-1"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(signed_up.status(), 201);
    assert!(signed_up.headers()["location"].to_str().expect("ascii").starts_with("/api/users/"));
    let put = client
        .put(format!("{}/api/products/GW-1", gateway.base_url))
        .json(&json!({"name": "Gate", "priceCents": 10, "available": 2}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(put.status(), 200);
    let product: Value = client
        .get(format!("{}/api/products/GW-1", gateway.base_url))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(product["available"], 2);
    let invalid = client
        .post(format!("{}/api/users", gateway.base_url))
        .json(&json!({"email": "x"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(invalid.status(), 422, "the service's own problem comes through");
    assert_eq!(invalid.headers()["content-type"], "application/problem+json");
    let unknown = client.get(format!("{}/api/unknown", gateway.base_url)).send().await.expect("GET");
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn the_gateway_forwards_request_ids_and_trace_context() {
    let echo = echo_service().await;
    let gateway =
        gateway(gateway::Upstreams::default().with("order-service", echo), Duration::from_secs(10)).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let seen: Value = crate::helpers::admin_client()
        .get(format!("{}/api/orders/42?userId=7", gateway.base_url))
        .header("traceparent", traceparent)
        .header("x-request-id", "req-123")
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(seen["x-request-id"], "req-123");
    let forwarded = seen["traceparent"].as_str().expect("a traceparent reached the service");
    assert!(forwarded.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{forwarded}");
}

#[tokio::test]
async fn a_service_down_is_a_502_and_a_slow_one_a_504() {
    let echo = echo_service().await;
    let closed = format!("http://127.0.0.1:{}", free_port());
    let upstreams = gateway::Upstreams::default().with("order-service", echo).with("payment-service", closed);
    let gateway = gateway(upstreams, Duration::from_millis(300)).await;
    let client = crate::helpers::admin_client();
    let down = client.get(format!("{}/api/wallets/1", gateway.base_url)).send().await.expect("GET");
    assert_eq!(down.status(), 502);
    assert_eq!(down.headers()["content-type"], "application/problem+json");
    let problem: Value = down.json().await.expect("json");
    assert_eq!(problem["detail"], "payment-service is unavailable");
    let slow = client.get(format!("{}/api/orders/slow", gateway.base_url)).send().await.expect("GET");
    assert_eq!(slow.status(), 504);
    let problem: Value = slow.json().await.expect("json");
    assert_eq!(problem["detail"], "order-service did not answer within 300 ms");

    // What an operator sees on the gateway's /metrics.
    let metrics = client.get(format!("{}/metrics", gateway.base_url)).send().await.expect("GET");
    let metrics = metrics.text().await.expect("text");
    for (name, labels) in [
        ("gateway_upstream_errors_total", &["service=\"payment-service\"", "kind=\"unavailable\""][..]),
        ("gateway_upstream_errors_total", &["service=\"order-service\"", "kind=\"timeout\""][..]),
        ("http_requests_total", &["method=\"GET\"", "route=\"/api/{*path}\"", "status=\"502\""][..]),
        ("http_requests_total", &["method=\"GET\"", "route=\"/api/{*path}\"", "status=\"504\""][..]),
        ("http_request_duration_seconds_bucket", &["route=\"/api/{*path}\""][..]),
        ("process_cpu_seconds_total", &[][..]),
    ] {
        assert!(
            metrics.lines().any(|l| l.starts_with(name) && labels.iter().all(|label| l.contains(label))),
            "no {name} {labels:?} in\n{metrics}"
        );
    }
}

#[tokio::test]
async fn the_gateway_counts_each_upstream_answer_by_service_and_status() {
    let echo = echo_service().await;
    let gateway =
        gateway(gateway::Upstreams::default().with("order-service", echo), Duration::from_secs(10)).await;
    let client = crate::helpers::admin_client();
    let answered = client.get(format!("{}/api/orders/7", gateway.base_url)).send().await.expect("GET");
    assert_eq!(answered.status(), 200);
    let metrics = client.get(format!("{}/metrics", gateway.base_url)).send().await.expect("GET");
    let metrics = metrics.text().await.expect("text");
    let has = |name: &str, labels: &[&str]| {
        metrics.lines().any(|l| l.starts_with(name) && labels.iter().all(|label| l.contains(label)))
    };
    assert!(
        has("gateway_upstream_requests_total", &["service=\"order-service\"", "status=\"200\""]),
        "{metrics}"
    );
    assert!(has("gateway_upstream_duration_seconds_count", &["service=\"order-service\""]), "{metrics}");
}

/// A stand-in instance of order-service that answers with its name and the body it got.
async fn named_instance(name: &'static str) -> String {
    let app = axum::Router::new()
        .route("/api/orders/{*rest}", any(move |body: String| async move { format!("{name}:{body}") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn the_instances_of_a_service_take_turns_and_one_that_refuses_connections_is_skipped() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let instances = vec![named_instance("a").await, closed, named_instance("b").await];
    let upstreams = gateway::Upstreams::default().with_instances("order-service", instances);
    let gateway = gateway(upstreams, Duration::from_secs(10)).await;
    let client = crate::helpers::admin_client();
    let mut answers = Vec::new();
    for n in 0..6 {
        let answer = client
            .post(format!("{}/api/orders/x", gateway.base_url))
            .body(format!("order {n}"))
            .send()
            .await
            .expect("POST");
        assert_eq!(answer.status(), 200, "every request reaches an instance that is up");
        answers.push(answer.text().await.expect("text"));
    }
    // Turns a, (closed →) b, b, a, b, b: the body goes on to the next instance whole.
    assert_eq!(answers, ["a:order 0", "b:order 1", "b:order 2", "a:order 3", "b:order 4", "b:order 5"]);
    let metrics = client.get(format!("{}/metrics", gateway.base_url)).send().await.expect("GET");
    let metrics = metrics.text().await.expect("text");
    assert!(
        metrics.lines().any(|l| l.starts_with("gateway_upstream_errors_total")
            && l.contains("kind=\"instance_refused\"")
            && l.ends_with(" 2")),
        "{metrics}"
    );
}
