//! One order is one Zipkin trace across the services, each in its own process (spans of
//! one process all carry one service name, so this needs the real binaries).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{binary, free_port, wait_until_ok};

const ADMIN_EMAIL: &str = "trace-admin@example.com";
const ADMIN_PASSWORD: &str = "trace-admin-password";

/// The six binaries on free ports, fresh SQLite files and their own topic prefix; the
/// services check tokens against this user-service's own key, as in the real system.
struct System {
    children: Vec<Child>,
    gateway: String,
    prefix: String,
    data: std::path::PathBuf,
}

impl System {
    async fn start() -> Self {
        let prefix = testkit::topic_prefix();
        let data = std::env::temp_dir().join(testkit::unique_name("trace"));
        let names =
            ["user-service", "order-service", "inventory-service", "payment-service", "notification-service"];
        let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
        let jwks = format!("http://127.0.0.1:{}{}", ports[0], platform::auth::JWKS_PATH);
        let mut children = Vec::new();
        let mut spawn = |name: &str, port: u16, extra: &[(String, String)]| {
            let mut command = Command::new(binary(name));
            command
                .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
                .env("DATABASE_URL", format!("sqlite://{}/{name}.db?mode=rwc", data.display()))
                .env("KAFKA_BOOTSTRAP_SERVERS", testkit::kafka_bootstrap())
                .env("KAFKA_TOPIC_PREFIX", &prefix)
                .env("ZIPKIN_ENDPOINT", format!("{}/api/v2/spans", testkit::zipkin_url()))
                .env("RETRY_BACKOFF_MS", "100")
                .env("JWKS_URL", &jwks)
                .env("ADMIN_EMAIL", ADMIN_EMAIL)
                .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            for (key, value) in extra {
                command.env(key, value);
            }
            children.push(command.spawn().expect("start a service binary"));
        };
        for (name, port) in names.iter().zip(&ports) {
            spawn(name, *port, &[]);
        }
        let upstream = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
        let gateway_port = free_port();
        let upstreams: Vec<(String, String)> = ["USER", "ORDER", "INVENTORY", "PAYMENT", "NOTIFICATION"]
            .iter()
            .enumerate()
            .map(|(i, service)| (format!("{service}_SERVICE_URL"), upstream(i)))
            .collect();
        spawn("gateway", gateway_port, &upstreams);
        for port in ports.iter().chain([&gateway_port]) {
            wait_until_ok(&format!("http://127.0.0.1:{port}/ready"), Duration::from_secs(60)).await;
        }
        Self { children, gateway: format!("http://127.0.0.1:{gateway_port}"), prefix, data }
    }
}

impl Drop for System {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
        testkit::delete_topics_with_prefix(&self.prefix);
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

async fn poll<F, Fut>(what: &str, mut check: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<Value>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "not within 60 s: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn one_order_is_one_trace_across_order_inventory_payment_and_notification() {
    let system = System::start().await;
    let admin = crate::helpers::sign_in(&system.gateway, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {admin}").parse().expect("ASCII"));
    let client = reqwest::Client::builder().default_headers(headers).build().expect("client");
    let api = |path: &str| format!("{}{path}", system.gateway);
    let product = client
        .put(api("/api/products/TRACE-1"))
        .json(&json!({"name": "Traced", "priceCents": 999, "available": 5}));
    assert_eq!(product.send().await.expect("PUT").status(), 200);
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    let user: Value = client
        .post(api("/api/users"))
        .json(&json!({"email": email, "name": "Tracy", "password": "trace-me-1"}))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    let user_id = user["id"].as_str().expect("id").to_owned();
    poll("the wallet opened", || async {
        let status = client.get(api(&format!("/api/wallets/{user_id}"))).send().await.ok()?.status();
        status.is_success().then_some(Value::Null)
    })
    .await;

    let placed = client
        .post(api("/api/orders"))
        .json(&json!({"userId": user_id, "items": [{"sku": "TRACE-1", "quantity": 1}]}))
        .send()
        .await
        .expect("POST /api/orders");
    assert_eq!(placed.status(), 202);
    let traceparent = placed.headers()["traceparent"].to_str().expect("ascii").to_owned();
    let trace_id = traceparent.split('-').nth(1).expect("trace id").to_owned();
    let order: Value = placed.json().await.expect("json");
    let order_id = order["id"].as_str().expect("id").to_owned();
    poll("the order confirmed and mailed", || async {
        let order: Value =
            client.get(api(&format!("/api/orders/{order_id}"))).send().await.ok()?.json().await.ok()?;
        let mails: Value = client
            .get(api(&format!("/api/notifications?orderId={order_id}")))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (order["status"] == "CONFIRMED" && mails.as_array().is_some_and(|m| !m.is_empty()))
            .then_some(Value::Null)
    })
    .await;

    let url = format!("{}/api/v2/trace/{trace_id}", testkit::zipkin_url());
    // Each process exports its spans on its own schedule (the batch exporter's 5 s
    // timer): wait for all five, the gateway included, before judging.
    let trace = poll("spans of the gateway and the four services in Zipkin", || async {
        let trace: Vec<Value> = reqwest::get(&url).await.ok()?.json().await.ok()?;
        let services: Vec<&str> =
            trace.iter().filter_map(|span| span["localEndpoint"]["serviceName"].as_str()).collect();
        let wanted =
            ["gateway", "inventory-service", "notification-service", "order-service", "payment-service"];
        wanted.iter().all(|w| services.contains(w)).then(|| json!(trace))
    })
    .await;
    let roots: Vec<&Value> =
        trace.as_array().expect("spans").iter().filter(|s| s["parentId"].is_null()).collect();
    assert_eq!(roots.len(), 1, "one root span: {roots:#?}");
    assert_eq!(roots[0]["localEndpoint"]["serviceName"], "gateway", "the gateway's span is the root");
}
