use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use shared_events::Event;
use testkit::{TestDatabase, TestService, kafka_config, service_config};
use uuid::Uuid;

/// The notification-service on a free port, a fresh database and its own topics. Its
/// helpers call the API as an admin, who may do and see everything; [`TestApp::send_as`]
/// calls it as anyone else.
pub struct TestApp {
    pub service: TestService,
    pub topic_prefix: String,
    pub client: reqwest::Client,
    /// `Bearer <token>` of an admin.
    pub admin: String,
    producer: FutureProducer,
    _database: TestDatabase,
}

pub async fn spawn_app() -> TestApp {
    let database = TestDatabase::create().await;
    let spec = notification_service::spec();
    let config = service_config(&spec, &database.url);
    let topic_prefix = config.kafka.topic_prefix.clone();
    let service = TestService::spawn(&spec, config, notification_service::routes).await;
    let producer =
        platform::kafka::client_config(&kafka_config(), "notification-test").create().expect("producer");
    TestApp {
        service,
        topic_prefix,
        client: reqwest::Client::new(),
        admin: testkit::admin_bearer(),
        producer,
        _database: database,
    }
}

impl TestApp {
    /// A topic of the contract under this test's prefix.
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.topic_prefix)
    }

    /// Publishes `event` as another service's relay would, with event id `id`.
    pub async fn publish<E: Event>(&self, event: &E, id: Uuid) {
        let id = id.to_string();
        let payload = serde_json::to_string(event).expect("json");
        let headers = OwnedHeaders::new()
            .insert(Header { key: "ce_specversion", value: Some("1.0") })
            .insert(Header { key: "ce_id", value: Some(&id) })
            .insert(Header { key: "ce_type", value: Some(E::TYPE) })
            .insert(Header { key: "ce_source", value: Some("notification-test") });
        let topic = self.topic(E::TOPIC);
        let key = event.key();
        let record = FutureRecord::to(&topic).key(&key).payload(&payload).headers(headers);
        self.producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("published");
    }

    /// Produces `payload` on the contract's `topic` with only the headers given: a message
    /// no relay of this system would write.
    pub async fn publish_raw(&self, topic: &str, key: &str, payload: &str, headers: &[(&str, &str)]) {
        let headers = headers
            .iter()
            .fold(OwnedHeaders::new(), |all, (key, value)| all.insert(Header { key, value: Some(*value) }));
        let topic = self.topic(topic);
        let record = FutureRecord::to(&topic).key(key).payload(payload).headers(headers);
        self.producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("published");
    }

    /// `POST`s the retry of failure `id`.
    pub async fn retry(&self, id: &str) -> reqwest::Response {
        let url = format!("{}/api/notifications/failed/{id}/retry", self.service.base_url);
        self.client.post(url).header("authorization", &self.admin).send().await.expect("POST")
    }

    /// `method path` (with a JSON `body`) with this `Authorization` header, or none.
    pub async fn send_as(
        &self,
        authorization: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method.clone(), format!("{}{path}", self.service.base_url));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// The service's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response =
            self.client.get(format!("{}/metrics", self.service.base_url)).send().await.expect("GET");
        response.text().await.expect("text")
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.send_as(Some(&self.admin), reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.get_json_as(&self.admin, path).await
    }

    /// `GET path` with `authorization`, which must answer 200: its JSON.
    pub async fn get_json_as(&self, authorization: &str, path: &str) -> Value {
        let response = self.send_as(Some(authorization), reqwest::Method::GET, path, None).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("json")
    }

    /// Polls `GET path` until its array has `count` items (and no more), for 30 s.
    pub async fn wait_for(&self, path: &str, count: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let items = self.get_json(path).await.as_array().expect("an array").clone();
            if items.len() >= count {
                assert_eq!(items.len(), count, "GET {path}: {items:#?}");
                return items;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "GET {path} has {} of {count} after 30 s",
                items.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Waits a moment for anything more to arrive that should not.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

/// Asserts a problem+json response with `status`, returning its body.
pub async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    response.json().await.expect("problem json")
}
