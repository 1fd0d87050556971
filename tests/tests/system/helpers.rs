use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use platform::{Context, ServiceConfig, ServiceSpec};
use testkit::{TestDatabase, TestService, service_config};

/// A service under test with the database it owns (kept as long as the service runs).
pub struct Running {
    pub name: &'static str,
    pub service: TestService,
    database: Option<TestDatabase>,
}

impl Running {
    /// Its database's URL (empty for the gateway, which has none).
    pub fn database_url(&self) -> &str {
        self.database.as_ref().map_or("", |db| db.url.as_str())
    }
}

/// How a test starts one service: its spec and its routes.
pub type Service = (fn() -> ServiceSpec, fn(&Context) -> axum::Router);

/// user-service signs with the test key: every other service under test (pointed at the
/// test key's JWKS) accepts the tokens it gives at sign-in, as in the real system.
static USER_AUTH: LazyLock<user_service::Auth> = LazyLock::new(|| {
    let der = testkit::test_signer().to_pkcs8_der().expect("the test key");
    let signer =
        platform::auth::Signer::from_pkcs8_der(&der, Duration::from_secs(3600)).expect("the test key");
    user_service::Auth::with_signer(signer, None)
});

/// The saga boards' stream of changes (one for the binary: each board under test reads
/// its own store, and only the stream test listens).
pub static BOARD_CHANGES: LazyLock<saga_board::changes::Changes> =
    LazyLock::new(saga_board::changes::Changes::new);

/// Every service of the system.
pub const ALL: [Service; 7] = [
    (gateway::spec, |context| gateway::routes(gateway::Settings::default())(context)),
    (|| user_service::spec(&USER_AUTH), |context| user_service::routes(&USER_AUTH)(context)),
    (order_service::spec, order_service::routes),
    (inventory_service::spec, inventory_service::routes),
    (|| payment_service::spec(payment_service::Settings::default()), payment_service::routes),
    (notification_service::spec, notification_service::routes),
    (
        || saga_board::spec(BOARD_CHANGES.clone()),
        |context| saga_board::routes(saga_board::Settings::default(), BOARD_CHANGES.clone())(context),
    ),
];

/// Starts a service on a free port with a fresh database of the backend under test;
/// `adjust` may change its configuration first.
pub async fn spawn_with(
    service: Service,
    adjust: impl FnOnce(&mut ServiceSpec, &mut ServiceConfig),
) -> Running {
    let (spec, routes) = service;
    let mut spec = spec();
    let database = if spec.uses_database { Some(TestDatabase::create().await) } else { None };
    let url = database.as_ref().map_or("sqlite::memory:", |db| db.url.as_str());
    let mut config = service_config(&spec, url);
    adjust(&mut spec, &mut config);
    let service = TestService::spawn(&spec, config, routes).await;
    Running { name: spec.defaults.name, service, database }
}

/// Starts every service of the system, each with its own database.
pub async fn spawn_all() -> Vec<Running> {
    let mut running = Vec::new();
    for service in ALL {
        running.push(spawn_with(service, |_, _| {}).await);
    }
    running
}

/// A client whose every request carries an admin's token: the tests' own look at the
/// system (reading anyone's orders and wallets, stocking products). What users do
/// themselves goes with their own token ([`sign_in`]).
pub fn admin_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = testkit::admin_bearer().parse().expect("an ASCII header");
    headers.insert(reqwest::header::AUTHORIZATION, bearer);
    reqwest::Client::builder().default_headers(headers).build().expect("a client")
}

/// Signs in at user-service `base_url`; the bearer token.
pub async fn sign_in(base_url: &str, email: &str, password: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{base_url}/api/auth/token"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .expect("POST /api/auth/token");
    assert_eq!(response.status(), 200, "sign-in of {email}");
    let answer: serde_json::Value = response.json().await.expect("json");
    answer["accessToken"].as_str().expect("accessToken").to_owned()
}

/// A built service binary of this workspace (`./test.sh` builds them all first).
pub fn binary(name: &str) -> PathBuf {
    // target/<profile>/deps/system-<hash> → target/<profile>/<name>
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe.parent().and_then(|deps| deps.parent()).expect("target dir").join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    path
}

/// A port free right now on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind port 0").port()
}

/// Polls `url` until it answers 200, for at most `within`.
pub async fn wait_until_ok(url: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Ok(response) = reqwest::get(url).await
            && response.status().is_success()
        {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{url} did not answer 200 within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Produces again the message of `topic` with key `key`, headers and all (same event id):
/// what a consumer sees after a commit was lost.
pub async fn redeliver(topic: &str, key: &str) {
    use rdkafka::Message;
    use rdkafka::message::{Header, Headers, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let kafka = testkit::kafka_config();
    let original = platform::dead_letter::read_all(&kafka, topic)
        .await
        .expect("read the topic")
        .into_iter()
        .find(|m| m.key() == Some(key.as_bytes()))
        .unwrap_or_else(|| panic!("no message with key {key} on {topic}"));
    let headers = original
        .headers()
        .expect("headers")
        .iter()
        .fold(OwnedHeaders::new(), |all, h| all.insert(Header { key: h.key, value: h.value }));
    let producer: FutureProducer =
        platform::kafka::client_config(&kafka, "system-test").create().expect("producer");
    let copy =
        FutureRecord::to(topic).key(key).payload(original.payload().expect("payload")).headers(headers);
    producer.send(copy, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("redelivered");
}
