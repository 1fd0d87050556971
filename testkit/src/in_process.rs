//! One service's database and HTTP routes in the test's own process, without Kafka: its
//! API called in memory and its event handlers applied directly, each in a transaction of
//! its own as the consumer applies them. Events they publish stay in the outbox.

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use platform::consumer::{EventMeta, Handler};
use platform::db::{Db, Migrations};
use serde_json::Value;
use shared_events::Event;
use tower::ServiceExt as _;

use crate::TestDatabase;

/// A service's store and routes on a fresh database of the backend under test.
#[derive(Debug)]
pub struct InProcess {
    /// Its database.
    pub db: Db,
    router: fn(Db) -> Router,
    _database: TestDatabase,
}

impl InProcess {
    /// A fresh database with `migrations`, served by `router`.
    pub async fn new(migrations: &Migrations, router: fn(Db) -> Router) -> Self {
        let database = TestDatabase::create().await;
        let db = Db::connect(&database.url, &[migrations]).await.expect("database");
        Self { db, router, _database: database }
    }

    /// Applies `event` with `handler` in a transaction of its own, committed.
    pub async fn apply<E: Event>(&self, handler: &impl Handler<E>, event: E) {
        let mut tx = self.db.begin_write().await.expect("begin");
        handler.handle(event, &event_meta(), &mut tx).await.expect("handled");
        tx.commit().await.expect("commit");
    }

    /// Sends `method uri` (with a JSON `body`) to the routes as an admin: the status and
    /// the JSON answer (`Null` when the body is not JSON).
    pub async fn request(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.request_as(Some(&crate::admin_bearer()), method, uri, body).await
    }

    /// [`InProcess::request`] with this `Authorization` header (`None`: without one).
    pub async fn request_as(
        &self,
        authorization: Option<&str>,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        let request = match body {
            Some(body) => {
                request.header("content-type", "application/json").body(Body::from(body.to_string()))
            }
            None => request.body(Body::empty()),
        };
        let response = self.router().oneshot(request.expect("request")).await.expect("response");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}

impl InProcess {
    /// Sends `method uri` with a JSON `body` and no token: the status and the
    /// `WWW-Authenticate` challenge, if any.
    pub async fn without_token(&self, method: &str, uri: &str, body: Value) -> (StatusCode, Option<String>) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        let response = self.router().oneshot(request).await.expect("response");
        let challenge =
            response.headers().get("www-authenticate").map(|value| value.to_str().expect("ASCII").to_owned());
        (response.status(), challenge)
    }

    /// The routes, checking tokens of the test key as a service under test does.
    fn router(&self) -> Router {
        let verifier = platform::auth::Verifier::fixed(&crate::test_signer().jwk_set()).expect("test keys");
        (self.router)(self.db.clone()).layer(axum::Extension(std::sync::Arc::new(verifier)))
    }
}

/// What a handler is told about a message that came from no topic.
pub fn event_meta() -> EventMeta {
    EventMeta {
        id: uuid::Uuid::now_v7(),
        event_type: "test".to_owned(),
        source: None,
        time: None,
        topic: "test".to_owned(),
        partition: 0,
        offset: 0,
        attempt: 1,
        last_attempt: false,
        headers: HashMap::new(),
    }
}

/// Checks that each `(path, method, forbidden)` operation of `document` keeps the bearer
/// scheme and documents its 401, and its 403 exactly when `forbidden`.
pub fn assert_documents_refusals(document: &utoipa::openapi::OpenApi, operations: &[(&str, &str, bool)]) {
    let document = serde_json::to_value(document).expect("json");
    for (path, method, forbidden) in operations {
        let operation = &document["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is documented");
        assert!(operation["security"].is_null(), "{method} {path} keeps the bearer scheme");
        assert!(operation["responses"]["401"].is_object(), "{method} {path}: 401");
        assert_eq!(operation["responses"]["403"].is_object(), *forbidden, "{method} {path}: 403");
    }
}
