//! The contract's access rules on every operation, on each service's own port and through
//! the gateway: the operations come from the services' OpenAPI documents, so a new one is
//! covered the day it is documented.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use platform::auth::{Claims, ISSUER, Role, Signer};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Running, sign_in};
use crate::openapi::services;

/// The operations only an admin may call (CONTRACT: "Admin only").
const ADMIN_ONLY: [&str; 5] = [
    "PUT /api/products/{sku}",
    "POST /api/emails/send",
    "POST /api/sms/send",
    "GET /api/notifications/failed",
    "POST /api/notifications/failed/{id}/retry",
];

/// Every documented operation that needs a token: `(service, "METHOD /path")`.
async fn protected(gateway: &str) -> Vec<(String, String)> {
    let client = reqwest::Client::new();
    let mut found = Vec::new();
    for service in platform::registry::api_services() {
        let url = format!("{gateway}/openapi/{}.json", service.name);
        let document: Value = client.get(&url).send().await.expect("GET").json().await.expect("json");
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("item") {
                let public = operation["security"] == json!([{}]);
                if !public {
                    found.push((service.name.to_owned(), format!("{} {path}", method.to_uppercase())));
                }
            }
        }
    }
    found
}

/// `path` with its parameters filled in.
fn concrete(path: &str) -> String {
    let id = Uuid::now_v7().to_string();
    path.replace("{id}", &id).replace("{userId}", &id).replace("{sku}", "ANY-SKU")
}

/// Tokens that must let nobody in, by what is wrong with them.
fn bad_tokens() -> Vec<(&'static str, Option<String>)> {
    let signer = testkit::test_signer();
    let user = Uuid::now_v7();
    let now = platform::clock::now_ms() / 1000;
    let claims = |exp: i64| Claims {
        sub: user.to_string(),
        role: "user".to_owned(),
        iat: now - 10,
        exp,
        iss: ISSUER.to_owned(),
    };
    let valid = signer.token(user, Role::User).expect("token");
    let parts: Vec<&str> = valid.split('.').collect();
    let as_admin = URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&Claims { role: "admin".to_owned(), ..claims(now + 600) }).expect("json"));
    let header = |alg: &str| {
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{}"}}"#, signer.kid()))
    };
    // HS256 keyed with the public key as published: the classic algorithm confusion.
    let public_key = signer.jwks()["keys"][0]["x"].as_str().expect("x").to_owned();
    let mut hs256 = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs256.kid = Some(signer.kid().to_owned());
    let hmac = jsonwebtoken::encode(
        &hs256,
        &claims(now + 600),
        &jsonwebtoken::EncodingKey::from_secret(public_key.as_bytes()),
    )
    .expect("hmac token");
    vec![
        ("no token", None),
        ("alg none", Some(format!("{}.{}.", header("none"), parts[1]))),
        ("HS256 with the public key", Some(hmac)),
        ("payload edited after signing", Some(format!("{}.{as_admin}.{}", parts[0], parts[2]))),
        ("expired", Some(signer.sign(&claims(now - 3600)).expect("token"))),
        (
            "another key",
            Some(Signer::generate(std::time::Duration::from_secs(60)).token(user, Role::Admin).expect("t")),
        ),
    ]
}

/// Whether `place` (a service, or the gateway, which serves every path) serves `operation`.
fn served_by(place: &str, operation: &str) -> bool {
    let path = operation.split_once(' ').expect("METHOD path").1;
    let path = path.split('?').next().unwrap_or(path);
    place == "gateway" || platform::registry::owner_of(path).is_some_and(|s| s.name == place)
}

fn base<'a>(running: &'a [Running], service: &str) -> &'a str {
    &running.iter().find(|r| r.name == service).expect("spawned").service.base_url
}

async fn call(base: &str, operation: &str, authorization: Option<&str>, body: Value) -> (u16, Value, String) {
    let (method, path) = operation.split_once(' ').expect("METHOD path");
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = reqwest::Client::new().request(method, format!("{base}{path}")).json(&body);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, response.json().await.unwrap_or(Value::Null), challenge)
}

#[tokio::test]
async fn every_protected_operation_refuses_a_missing_or_bad_token_on_the_service_and_the_gateway() {
    let (running, gateway) = services().await;
    let operations = protected(&gateway.base_url).await;
    assert!(operations.len() >= 14, "the documents name the protected operations: {operations:?}");
    for (service, operation) in &operations {
        let (method, path) = operation.split_once(' ').expect("METHOD path");
        let operation = format!("{method} {}", concrete(path));
        for (what, token) in bad_tokens() {
            let authorization = token.map(|t| format!("Bearer {t}"));
            for (place, url) in [(service.as_str(), base(&running, service)), ("gateway", &gateway.base_url)]
            {
                let (status, body, challenge) =
                    call(url, &operation, authorization.as_deref(), json!({})).await;
                assert_eq!(status, 401, "{operation} on {place} with {what}: {body}");
                assert!(challenge.starts_with("Bearer"), "{operation} on {place} with {what}: {challenge:?}");
                assert_eq!(body["status"], 401, "problem+json: {body}");
            }
        }
    }
}

#[tokio::test]
async fn a_user_token_on_an_admin_operation_is_a_403_on_the_service_and_the_gateway() {
    let (running, gateway) = services().await;
    let user = testkit::bearer(Uuid::now_v7());
    for operation in ADMIN_ONLY {
        let service =
            platform::registry::owner_of(operation.split_once(' ').expect("split").1).expect("an owner").name;
        let (method, path) = operation.split_once(' ').expect("METHOD path");
        let operation = format!("{method} {}", concrete(path));
        for (place, url) in [(service, base(&running, service)), ("gateway", gateway.base_url.as_str())] {
            let (status, body, _) = call(url, &operation, Some(&user), json!({})).await;
            assert_eq!(status, 403, "{operation} on {place}: {body}");
        }
    }
}

#[tokio::test]
async fn a_user_cannot_see_or_touch_another_users_orders_wallet_payments_or_record() {
    let (running, gateway) = services().await;
    let users = base(&running, "user-service");
    let mut people = Vec::new();
    for name in ["Ann", "Bob"] {
        let email = format!("{}@example.com", Uuid::now_v7().simple());
        let body = json!({"email": email, "name": name, "password": "password-1"});
        let (status, user, _) = call(users, "POST /api/users", None, body).await;
        assert_eq!(status, 201, "{user}");
        let token = sign_in(users, &email, "password-1").await;
        people.push((user["id"].as_str().expect("id").to_owned(), format!("Bearer {token}")));
    }
    let [(_, ann_token), (bob, bob_token)] = <[_; 2]>::try_from(people).expect("two");
    let admin = testkit::admin_bearer();
    let (status, _, _) = call(
        base(&running, "inventory-service"),
        "PUT /api/products/ACCESS-1",
        Some(&admin),
        json!({"name": "A", "priceCents": 1, "available": 5}),
    )
    .await;
    assert_eq!(status, 200);
    let items = json!([{"sku": "ACCESS-1", "quantity": 1}]);
    let (status, order, _) = call(
        base(&running, "order-service"),
        "POST /api/orders",
        Some(&bob_token),
        json!({"userId": bob, "items": items}),
    )
    .await;
    assert_eq!(status, 202, "{order}");
    let bobs_order = order["id"].as_str().expect("id");

    let hidden = [
        format!("GET /api/orders/{bobs_order}"),
        format!("POST /api/orders/{bobs_order}/cancel"),
        format!("GET /api/wallets/{bob}"),
        format!("POST /api/wallets/{bob}/deposit"),
        format!("GET /api/users/{bob}"),
    ];
    let forbidden = [
        ("POST /api/orders".to_owned(), json!({"userId": bob, "items": items})),
        (format!("GET /api/orders?userId={bob}"), json!({})),
        (format!("GET /api/payments?userId={bob}"), json!({})),
        (format!("GET /api/notifications?userId={bob}"), json!({})),
    ];
    for (place, url) in std::iter::once(("gateway", gateway.base_url.as_str())).chain(
        ["order-service", "payment-service", "user-service", "notification-service"]
            .map(|service| (service, base(&running, service))),
    ) {
        for operation in &hidden {
            if !served_by(place, operation) {
                continue;
            }
            let body = json!({"amountCents": 100});
            let (status, answer, _) = call(url, operation, Some(&ann_token), body).await;
            assert_eq!(status, 404, "Ann: {operation} on {place}: {answer}");
        }
        for (operation, body) in &forbidden {
            if !served_by(place, operation) {
                continue;
            }
            let (status, answer, _) = call(url, operation, Some(&ann_token), body.clone()).await;
            assert_eq!(status, 403, "Ann: {operation} on {place}: {answer}");
        }
    }
    // Her own list holds none of his; his own order is his to read.
    let (status, orders, _) = call(&gateway.base_url, "GET /api/orders", Some(&ann_token), json!({})).await;
    assert_eq!((status, orders.as_array().map(Vec::len)), (200, Some(0)), "{orders}");
    let (status, _, _) =
        call(&gateway.base_url, &format!("GET /api/orders/{bobs_order}"), Some(&bob_token), json!({})).await;
    assert_eq!(status, 200);
}
