//! The OpenAPI documents: each service describes exactly the paths of the contract, every
//! documented operation is routed, and the gateway serves Swagger UI over all five.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use testkit::{TestService, service_config};

use crate::helpers::{ALL, Running, spawn_with};

/// The contract's HTTP API, by service: `METHOD path` as OpenAPI writes paths.
const CONTRACT: [(&str, &[&str]); 5] = [
    (
        "user-service",
        &["POST /api/users", "GET /api/users/{id}", "POST /api/auth/token", "GET /.well-known/jwks.json"],
    ),
    (
        "order-service",
        &["POST /api/orders", "GET /api/orders", "GET /api/orders/{id}", "POST /api/orders/{id}/cancel"],
    ),
    ("inventory-service", &["GET /api/products", "GET /api/products/{sku}", "PUT /api/products/{sku}"]),
    (
        "payment-service",
        &["GET /api/wallets/{userId}", "POST /api/wallets/{userId}/deposit", "GET /api/payments"],
    ),
    (
        "notification-service",
        &[
            "POST /api/emails/send",
            "POST /api/sms/send",
            "GET /api/notifications",
            "GET /api/notifications/failed",
            "POST /api/notifications/failed/{id}/retry",
        ],
    ),
];

const OPERATIONS: [&str; 3] = ["GET /health", "GET /ready", "GET /metrics"];

fn operations(document: &Value) -> BTreeSet<String> {
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().expect("path item").keys();
            methods.map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect()
}

pub(crate) async fn services() -> (Vec<Running>, TestService) {
    let mut running = Vec::new();
    for service in &ALL[1..] {
        running.push(spawn_with(*service, |_, _| {}).await);
    }
    let base = |name: &str| {
        running.iter().find(|r| r.name == name).map(|r| r.service.base_url.clone()).expect("spawned")
    };
    let upstreams = platform::registry::api_services()
        .fold(gateway::Upstreams::default(), |upstreams, s| upstreams.with(s.name, base(s.name)));
    let spec = gateway::spec();
    let gateway = TestService::spawn(&spec, service_config(&spec, "sqlite::memory:"), move |_| {
        gateway::router(upstreams, Duration::from_secs(10))
    })
    .await;
    (running, gateway)
}

#[tokio::test]
async fn each_service_documents_exactly_its_contract_paths_and_routes_them_all() {
    let (running, gateway) = services().await;
    let client = crate::helpers::admin_client();
    for (service, contract) in CONTRACT {
        let url = format!("{}/openapi/{service}.json", gateway.base_url);
        let answer = client.get(&url).send().await.expect("GET document");
        assert_eq!(answer.status(), 200, "{url}");
        let document: Value = answer.json().await.expect("json");
        assert_eq!(document["info"]["title"], service);
        assert!(document["openapi"].as_str().expect("version").starts_with("3."));
        let expected: BTreeSet<String> =
            contract.iter().chain(&OPERATIONS).map(|s| (*s).to_owned()).collect();
        assert_eq!(operations(&document), expected, "{service}'s document against the contract");
        assert!(document["components"]["schemas"]["Problem"].is_object(), "{service}: problem+json schema");

        // Documented means routed: the service's own 404 or 422, never a 405 or the fallback.
        let base = &running.iter().find(|r| r.name == service).expect("spawned").service.base_url;
        for operation in contract {
            let (method, path) = operation.split_once(' ').expect("METHOD path");
            let concrete = path
                .replace("{id}", &uuid::Uuid::new_v4().to_string())
                .replace("{userId}", &uuid::Uuid::new_v4().to_string())
                .replace("{sku}", "NO-SUCH-SKU");
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let answer = client.request(method, format!("{base}{concrete}")).json(&Value::Null).send().await;
            let answer = answer.expect("request");
            let status = answer.status().as_u16();
            let body = answer.text().await.expect("body");
            assert!(status != 405 && !body.contains("no such resource"), "{operation}: {status} {body}");
        }
    }
}

#[tokio::test]
async fn the_gateway_serves_swagger_ui_from_its_own_binary() {
    let (_running, gateway) = services().await;
    let client = crate::helpers::admin_client();
    let page = client.get(format!("{}/docs/", gateway.base_url)).send().await.expect("GET /docs/");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("swagger-ui"), "the Swagger UI page");
    let initializer =
        client.get(format!("{}/docs/swagger-initializer.js", gateway.base_url)).send().await.expect("GET");
    assert_eq!(initializer.status(), 200);
    let script = initializer.text().await.expect("js");
    for (service, _) in CONTRACT {
        assert!(script.contains(&format!("/openapi/{service}.json")), "{service} missing from {script}");
    }
    let unknown = client.get(format!("{}/openapi/nothing.json", gateway.base_url)).send().await.expect("GET");
    assert_eq!(unknown.status(), 404);
}
