//! The gateway's access check, with the gateway started as the platform starts it (tokens
//! checked against the test key's JWKS) in front of stand-in services that record what
//! reaches them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use reqwest::Method;
use serde_json::{Value, json};
use testkit::{TestService, service_config};
use uuid::Uuid;

/// One request that reached a stand-in service: method, path and query, `Authorization`.
type Forwarded = (String, String, Option<String>);

/// What the stand-in services were asked, in order, each with the name of the one asked.
type Seen = Arc<Mutex<Vec<(&'static str, Forwarded)>>>;

/// A stand-in service called `name`: answers every request with what it saw, and records
/// it in `seen`.
async fn echo_service(name: &'static str, seen: Seen) -> String {
    async fn echo(State((name, seen)): State<(&'static str, Seen)>, request: Request) -> Json<Value> {
        let method = request.method().to_string();
        let path = request.uri().path_and_query().map(ToString::to_string).unwrap_or_default();
        let authorization =
            request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        seen.lock().expect("lock").push((name, (method.clone(), path.clone(), authorization.clone())));
        Json(json!({"service": name, "method": method, "path": path, "authorization": authorization}))
    }
    let app = axum::Router::new().fallback(echo).with_state((name, seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// The gateway in front of one stand-in for every service but user-service, which has
/// one of its own, and what they saw.
struct Setup {
    gateway: TestService,
    seen: Seen,
    client: reqwest::Client,
}

async fn setup() -> Setup {
    let seen = Seen::default();
    let services_url = echo_service("any", seen.clone()).await;
    let users_url = echo_service("user-service", seen.clone()).await;
    let mut upstreams = gateway::Upstreams::default();
    for name in gateway::Upstreams::default().names() {
        upstreams = upstreams.with(name, services_url.clone());
    }
    let upstreams = upstreams.with("user-service", users_url);
    let spec = gateway::spec();
    let gateway = TestService::spawn(&spec, service_config(&spec, "sqlite::memory:"), move |_| {
        gateway::router(upstreams, Duration::from_secs(10))
    })
    .await;
    Setup { gateway, seen, client: reqwest::Client::new() }
}

impl Setup {
    async fn send(&self, authorization: Option<&str>, method: Method, path: &str) -> reqwest::Response {
        let mut request = self.client.request(method.clone(), format!("{}{path}", self.gateway.base_url));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        if method == Method::POST || method == Method::PUT {
            request = request.json(&json!({}));
        }
        request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// What reached the stand-in services, in order.
    fn forwarded(&self) -> Vec<Forwarded> {
        self.seen.lock().expect("lock").iter().map(|(_, forwarded)| forwarded.clone()).collect()
    }

    /// Which stand-in services were asked, in order.
    fn asked(&self) -> Vec<&'static str> {
        self.seen.lock().expect("lock").iter().map(|(service, _)| *service).collect()
    }
}

async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "{}", response.url());
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    response.json().await.expect("problem json")
}

fn id() -> String {
    Uuid::now_v7().to_string()
}

/// The operations that need a token, with those that need an admin's.
fn protected() -> Vec<(Method, String, bool)> {
    vec![
        (Method::GET, format!("/api/orders/{}", id()), false),
        (Method::POST, "/api/orders".to_owned(), false),
        (Method::POST, format!("/api/orders/{}/cancel", id()), false),
        (Method::GET, format!("/api/users/{}", id()), false),
        (Method::POST, format!("/api/wallets/{}/deposit", id()), false),
        (Method::GET, format!("/api/payments?orderId={}", id()), false),
        (Method::GET, "/api/notifications?channel=EMAIL".to_owned(), false),
        (Method::GET, "/api/unknown".to_owned(), false),
        (Method::PUT, "/api/products/BOOK-1".to_owned(), true),
        (Method::POST, "/api/emails/send".to_owned(), true),
        (Method::POST, "/api/sms/send".to_owned(), true),
        (Method::GET, "/api/notifications/failed".to_owned(), true),
        (Method::POST, format!("/api/notifications/failed/{}/retry", id()), true),
        (Method::GET, "/api/board".to_owned(), true),
        (Method::GET, format!("/api/board/sagas/{}", id()), true),
    ]
}

#[tokio::test]
async fn without_a_valid_token_the_gateway_answers_401_itself() {
    let setup = setup().await;
    for (method, path, _) in protected() {
        let missing = setup.send(None, method.clone(), &path).await;
        assert_eq!(missing.headers()["www-authenticate"], "Bearer", "{method} {path}");
        problem(missing, 401).await;
        let forged = setup.send(Some("Bearer not.a.token"), method.clone(), &path).await;
        assert_eq!(forged.headers()["www-authenticate"], "Bearer error=\"invalid_token\"", "{method} {path}");
        problem(forged, 401).await;
        let other_scheme = setup.send(Some("Basic YWRhOnB3"), method.clone(), &path).await;
        problem(other_scheme, 401).await;
    }
    assert_eq!(setup.forwarded(), [], "no service saw a request");
}

#[tokio::test]
async fn a_user_token_on_an_admin_operation_is_a_403_from_the_gateway() {
    let setup = setup().await;
    let user = testkit::bearer(Uuid::now_v7());
    for (method, path, _) in protected().into_iter().filter(|(_, _, admin)| *admin) {
        let refused = problem(setup.send(Some(&user), method.clone(), &path).await, 403).await;
        assert_eq!(refused["detail"], "this operation is for admins only", "{method} {path}");
    }
    assert_eq!(setup.forwarded(), [], "no service saw a request");
}

#[tokio::test]
async fn a_valid_token_is_forwarded_as_it_came() {
    let setup = setup().await;
    let user = testkit::bearer(Uuid::now_v7());
    let admin = testkit::admin_bearer();
    let mut expected = Vec::new();
    for (method, path, admin_only) in protected() {
        let token = if admin_only { &admin } else { &user };
        let answer = setup.send(Some(token), method.clone(), &path).await;
        let route = path.split('?').next().unwrap_or_default();
        if gateway::Upstreams::default().for_path(route).is_none() {
            // No service serves it (yet: the saga board): the gateway's 404, once let in.
            let problem = problem(answer, 404).await;
            assert_eq!(problem["detail"], format!("no service serves {route}"));
            continue;
        }
        assert_eq!(answer.status(), 200, "{method} {path}");
        expected.push((method.to_string(), path, Some(token.clone())));
    }
    // An admin may do what a user may.
    let path = format!("/api/orders/{}", id());
    assert_eq!(setup.send(Some(&admin), Method::GET, &path).await.status(), 200);
    expected.push(("GET".to_owned(), path, Some(admin.clone())));
    assert_eq!(setup.forwarded(), expected, "each request, with its Authorization header unchanged");
}

#[tokio::test]
async fn the_public_operations_are_forwarded_without_a_token() {
    let setup = setup().await;
    let public = [
        (Method::POST, "/api/users"),
        (Method::POST, "/api/auth/token"),
        (Method::GET, "/api/products"),
        (Method::GET, "/api/products/BOOK-1"),
    ];
    for (method, path) in &public {
        let answer = setup.send(None, method.clone(), path).await;
        assert_eq!(answer.status(), 200, "{method} {path}");
    }
    // A token on a public operation goes along too (the service may use it or not).
    let user = testkit::bearer(Uuid::now_v7());
    assert_eq!(setup.send(Some(&user), Method::GET, "/api/products").await.status(), 200);
    let mut expected: Vec<_> = public.iter().map(|(m, p)| (m.to_string(), (*p).to_owned(), None)).collect();
    expected.push(("GET".to_owned(), "/api/products".to_owned(), Some(user)));
    assert_eq!(setup.forwarded(), expected);
    assert_eq!(setup.asked(), ["user-service", "user-service", "any", "any", "any"]);
}

#[tokio::test]
async fn the_jwks_is_user_services() {
    let setup = setup().await;
    let answer = setup.send(None, Method::GET, "/.well-known/jwks.json").await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(
        (body["service"].as_str(), body["path"].as_str()),
        (Some("user-service"), Some("/.well-known/jwks.json"))
    );
    assert_eq!(setup.asked(), ["user-service"]);
    assert_eq!(setup.forwarded(), [("GET".to_owned(), "/.well-known/jwks.json".to_owned(), None)]);
}

#[tokio::test]
async fn the_gateways_own_pages_need_no_token() {
    let setup = setup().await;
    for path in ["/health", "/metrics", "/docs/"] {
        assert_eq!(setup.send(None, Method::GET, path).await.status(), 200, "{path}");
    }
    // Each service's document, fetched from the service for Swagger UI.
    let document = setup.send(None, Method::GET, "/openapi/order-service.json").await;
    assert_eq!(document.status(), 200);
    let document: Value = document.json().await.expect("json");
    assert_eq!(document["path"], "/openapi.json");
    assert_eq!(document["authorization"], Value::Null);
}

/// The status of `GET path` sent as written: an HTTP client would remove its dot segments.
async fn raw_get_status(base_url: &str, path: &str, authorization: &str) -> u16 {
    use std::io::{Read as _, Write as _};
    let address = base_url.trim_start_matches("http://").to_owned();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: {authorization}\r\nConnection: close\r\n\r\n"
    );
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        stream.write_all(request.as_bytes()).expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        answer
    })
    .await
    .expect("request");
    let status = answer.split_whitespace().nth(1).expect("a status line");
    status.parse().unwrap_or_else(|_| panic!("not a status: {answer}"))
}

#[tokio::test]
async fn a_path_with_dot_segments_is_not_forwarded() {
    let setup = setup().await;
    let admin = testkit::admin_bearer();
    for path in ["/api/products/..", "/api/products/%2e%2E", "/api/orders/../emails/send", "/api/./orders"] {
        assert_eq!(raw_get_status(&setup.gateway.base_url, path, &admin).await, 400, "{path}");
    }
    assert_eq!(setup.forwarded(), []);
}
