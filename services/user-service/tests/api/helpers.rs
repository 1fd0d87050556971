use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use platform::auth::{Caller, JWKS_PATH, Signer, Verifier};
use platform::db::Db;
use platform::dead_letter::read_all;
use rdkafka::Message;
use serde_json::{Value, json};
use testkit::{TestDatabase, TestService, kafka_config, service_config};
use user_service::Auth;
use user_service::domain::{AdminAccount, Email, Password};

/// The password of every [`new_user`].
pub const PASSWORD: &str = "analytical-engine";

/// The user-service on a free port with a fresh database.
pub struct TestApp {
    pub service: TestService,
    pub topic_prefix: String,
    pub db: Db,
    pub client: reqwest::Client,
    database: TestDatabase,
}

/// A service's own key, in no file, and no admin account.
pub fn auth() -> Auth {
    Auth::with_signer(Signer::generate(Duration::from_secs(3600)), None)
}

/// An admin account with a fresh address, and [`auth`] that keeps it.
pub fn auth_with_admin(password: &str) -> (Auth, AdminAccount) {
    let account = AdminAccount {
        email: Email::parse(&format!("admin-{}@example.com", uuid::Uuid::new_v4().simple())).expect("valid"),
        password: Password::parse(password).expect("valid"),
    };
    (Auth::with_signer(Signer::generate(Duration::from_secs(3600)), Some(account.clone())), account)
}

pub async fn spawn_app() -> TestApp {
    spawn_with(auth()).await
}

pub async fn spawn_with(auth: Auth) -> TestApp {
    spawn_on(TestDatabase::create().await, auth).await
}

async fn spawn_on(database: TestDatabase, auth: Auth) -> TestApp {
    let spec = user_service::spec(&auth);
    let config = service_config(&spec, &database.url);
    let topic_prefix = config.kafka.topic_prefix.clone();
    let service = TestService::spawn(&spec, config, user_service::routes(&auth)).await;
    let db = Db::connect(&database.url, &[]).await.expect("a second handle on the service's database");
    TestApp { service, topic_prefix, db, client: reqwest::Client::new(), database }
}

/// A user signed up and signed in.
pub struct SignedUp {
    pub id: String,
    pub email: String,
    pub token: String,
}

impl TestApp {
    /// Stops the service and starts it again on the same database with `auth`.
    pub async fn restart(self, auth: Auth) -> TestApp {
        self.service.stop().await;
        self.db.close().await;
        spawn_on(self.database, auth).await
    }

    /// A topic of the contract under this test's prefix.
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.topic_prefix)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.service.base_url)
    }

    pub async fn sign_up(&self, body: &Value) -> reqwest::Response {
        self.sign_up_with_key(body, None).await
    }

    pub async fn sign_up_with_key(&self, body: &Value, key: Option<&str>) -> reqwest::Response {
        let mut request = self.client.post(self.url("/api/users")).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("POST /api/users")
    }

    /// `POST /api/auth/token`.
    pub async fn sign_in(&self, email: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/auth/token"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("POST /api/auth/token")
    }

    /// The access token of a sign-in that must succeed.
    pub async fn token(&self, email: &str, password: &str) -> String {
        let response = self.sign_in(email, password).await;
        assert_eq!(response.status(), 200, "sign-in of {email}");
        let body: Value = response.json().await.expect("json");
        body["accessToken"].as_str().expect("accessToken").to_owned()
    }

    /// A new user, signed up and signed in.
    pub async fn signed_up(&self) -> SignedUp {
        let body = new_user();
        let response = self.sign_up(&body).await;
        assert_eq!(response.status(), 201);
        let user: Value = response.json().await.expect("json");
        let email = body["email"].as_str().expect("email").to_owned();
        let token = self.token(&email, PASSWORD).await;
        SignedUp { id: user["id"].as_str().expect("id").to_owned(), email, token }
    }

    /// `GET /api/users/{id}` with `token`, if any.
    pub async fn get_user(&self, id: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(&format!("/api/users/{id}")));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("GET /api/users/{id}")
    }

    /// The JWKS the service serves.
    pub async fn jwks(&self) -> JwkSet {
        let response = self.client.get(self.url(JWKS_PATH)).send().await.expect("GET the JWKS");
        assert_eq!(response.status(), 200);
        response.json().await.expect("a JWKS")
    }

    /// Who `token` stands for, checked against the keys the service serves over HTTP.
    pub async fn verify(&self, token: &str) -> Caller {
        let verifier = Verifier::fixed(&self.jwks().await).expect("usable keys");
        verifier.verify(token).await.expect("the token verifies")
    }

    pub async fn user_count(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(self.db.pool()).await.expect("count")
    }

    /// The `UserSignedUp` of user `id` on the topic, waited for.
    pub async fn signed_up_event(&self, id: &str) -> rdkafka::message::OwnedMessage {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let messages =
                read_all(&kafka_config(), &self.topic("user.signed-up")).await.expect("read the topic");
            if let Some(found) = messages.into_iter().find(|m| m.key() == Some(id.as_bytes())) {
                return found;
            }
            assert!(tokio::time::Instant::now() < deadline, "UserSignedUp for {id} not on user.signed-up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A sign-up body with a fresh address and [`PASSWORD`].
pub fn new_user() -> Value {
    json!({
        "email": format!("{}@example.com", uuid::Uuid::new_v4().simple()),
        "name": "Ada Lovelace",
        "password": PASSWORD,
    })
}

/// Asserts a problem+json response with `status`, returning its body.
pub async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    response.json().await.expect("problem json")
}
