use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;

use crate::helpers::{ALL, binary, free_port, spawn_all, spawn_with, wait_until_ok};

async fn get_json(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}")))
}

#[tokio::test]
async fn every_service_is_healthy_and_ready_with_its_database_and_kafka() {
    let running = spawn_all().await;
    for service in &running {
        let base = &service.service.base_url;
        assert_eq!(
            get_json(&format!("{base}/health")).await,
            (200, serde_json::json!({"status": "UP"})),
            "{}",
            service.name
        );

        let (status, ready) = get_json(&format!("{base}/ready")).await;
        assert_eq!(status, 200, "{}: {ready}", service.name);
        assert_eq!(ready["status"], "UP");
        let checks: Vec<(&str, &str)> = ready["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .map(|c| (c["name"].as_str().expect("name"), c["status"].as_str().expect("status")))
            .collect();
        // Every service with a database relays its outbox; all but user-service consume.
        let expected: &[(&str, &str)] = match service.name {
            "gateway" => &[],
            "user-service" => &[("database", "UP"), ("kafka", "UP"), ("outbox-relay", "UP")],
            _ => &[("database", "UP"), ("kafka", "UP"), ("outbox-relay", "UP"), ("consumer", "UP")],
        };
        assert_eq!(checks, expected, "{}", service.name);
    }
}

#[tokio::test]
async fn services_create_every_topic_of_the_contract_with_three_partitions() {
    let prefix = testkit::topic_prefix();
    let mut running = Vec::new();
    for service in ALL {
        running.push(spawn_with(service, |_, config| config.kafka.topic_prefix = prefix.clone()).await);
    }
    let consumer: BaseConsumer =
        platform::kafka::client_config(&testkit::kafka_config(), "system-test").create().expect("client");
    let metadata =
        tokio::task::spawn_blocking(move || consumer.fetch_metadata(None, Duration::from_secs(10)))
            .await
            .expect("join")
            .expect("Kafka must be up: ./test.sh starts it");
    for topic in contract_topics() {
        let found = metadata.topics().iter().find(|t| t.name() == format!("{prefix}{topic}"));
        let partitions = found.map(|t| t.partitions().len());
        assert_eq!(partitions, Some(3), "topic {topic}");
    }
}

fn contract_topics() -> [&'static str; 13] {
    [
        "user.signed-up",
        "order.created",
        "inventory.reserved",
        "inventory.rejected",
        "payment.completed",
        "payment.failed",
        "inventory.released",
        "order.confirmed",
        "order.cancelled",
        "order.cancel-requested",
        "payment.refunded",
        "email.send",
        "sms.send",
    ]
}

#[tokio::test]
async fn ready_is_503_and_names_kafka_when_the_broker_is_unreachable() {
    let user_service = ALL[1];
    let running = spawn_with(user_service, |spec, config| {
        // Topic creation at start needs the broker; this test is about losing it later.
        spec.publishes.clear();
        config.kafka.bootstrap_servers = "127.0.0.1:1".to_owned();
    })
    .await;
    let (status, ready) = get_json(&format!("{}/ready", running.service.base_url)).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "DOWN");
    assert_eq!(ready["checks"][0]["name"], "database");
    assert_eq!(ready["checks"][0]["status"], "UP");
    assert_eq!(ready["checks"][1]["name"], "kafka");
    assert_eq!(ready["checks"][1]["status"], "DOWN");
    let error = ready["checks"][1]["error"].as_str().expect("an error text");
    assert!(error.starts_with("kafka at 127.0.0.1:1"), "{error}");
}

#[tokio::test]
async fn an_unknown_path_is_a_problem_json_404() {
    let running = spawn_with(ALL[2], |_, _| {}).await;
    let response = reqwest::get(format!("{}/api/nothing-here", running.service.base_url)).await.expect("GET");
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert!(response.headers().contains_key("x-request-id"));
    let problem: Value = response.json().await.expect("json");
    assert_eq!(problem["status"], 404);
    assert_eq!(problem["title"], "Not Found");
}

#[tokio::test]
async fn each_binary_serves_health_and_stops_cleanly_on_sigterm() {
    let data = std::env::temp_dir().join(testkit::unique_name("binaries"));
    for name in platform::registry::services().iter().map(|s| s.name) {
        let port = free_port();
        let mut child = Command::new(binary(name))
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", format!("sqlite://{}/{name}.db?mode=rwc", data.display()))
            .env("KAFKA_BOOTSTRAP_SERVERS", testkit::kafka_bootstrap())
            .env("ZIPKIN_ENDPOINT", format!("{}/api/v2/spans", testkit::zipkin_url()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the binary");
        wait_until_ok(&format!("http://127.0.0.1:{port}/health"), Duration::from_secs(30)).await;
        let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
        assert!(killed.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "{name} did not stop within 15 s of SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(status.success(), "{name} exited with {status}");
    }
    let _ = std::fs::remove_dir_all(data);
}

#[test]
fn a_bad_variable_stops_the_binary_at_start_and_is_named() {
    for (variable, value) in
        [("KAFKA_TOPIC_PARTITIONS", "zero"), ("DATABASE_URL", "mysql://db"), ("HTTP_ADDR", "8081")]
    {
        let output = Command::new(binary("order-service")).env(variable, value).output().expect("run");
        assert_eq!(output.status.code(), Some(2), "{variable}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("invalid {variable}=\"{value}\"")), "{stderr}");
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_outbox_backlog() {
    let running = spawn_with(ALL[2], |_, _| {}).await;
    let response = reqwest::get(format!("{}/metrics", running.service.base_url)).await.expect("GET");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().expect("ascii").starts_with("text/plain"));
    let body = response.text().await.expect("text");
    assert!(body.contains("# TYPE outbox_backlog gauge\noutbox_backlog 0\n"), "{body}");
}

#[test]
fn dlt_replay_refuses_a_topic_that_is_not_a_dead_letter_topic() {
    let output = Command::new(binary("dlt-replay")).arg("email.send").output().expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("email.send is not a dead-letter topic"), "{stderr}");
    let usage = Command::new(binary("dlt-replay")).output().expect("run");
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).starts_with("usage: dlt-replay"));
}
