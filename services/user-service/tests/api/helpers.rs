use platform::db::Db;
use serde_json::Value;
use testkit::{TestDatabase, TestService, service_config};

/// The user-service on a free port with a fresh database.
pub struct TestApp {
    pub service: TestService,
    pub topic_prefix: String,
    pub db: Db,
    pub client: reqwest::Client,
    _database: TestDatabase,
}

pub async fn spawn_app() -> TestApp {
    let database = TestDatabase::create().await;
    let spec = user_service::spec();
    let config = service_config(&spec, &database.url);
    let topic_prefix = config.kafka.topic_prefix.clone();
    let service = TestService::spawn(&spec, config, user_service::routes).await;
    let db = Db::connect(&database.url, &[]).await.expect("a second handle on the service's database");
    TestApp { service, topic_prefix, db, client: reqwest::Client::new(), _database: database }
}

impl TestApp {
    /// A topic of the contract under this test's prefix.
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.topic_prefix)
    }

    pub async fn sign_up(&self, body: &Value) -> reqwest::Response {
        self.sign_up_with_key(body, None).await
    }

    pub async fn sign_up_with_key(&self, body: &Value, key: Option<&str>) -> reqwest::Response {
        let mut request = self.client.post(format!("{}/api/users", self.service.base_url)).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("POST /api/users")
    }

    pub async fn get_user(&self, id: &str) -> reqwest::Response {
        self.client.get(format!("{}/api/users/{id}", self.service.base_url)).send().await.expect("GET")
    }

    pub async fn user_count(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(self.db.pool()).await.expect("count")
    }
}

/// A sign-up body with a fresh address.
pub fn new_user() -> Value {
    serde_json::json!({
        "email": format!("{}@example.com", uuid::Uuid::new_v4().simple()),
        "name": "Ada Lovelace",
        "password": "analytical-engine",
    })
}

/// Asserts a problem+json response with `status`, returning its body.
pub async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    response.json().await.expect("problem json")
}
