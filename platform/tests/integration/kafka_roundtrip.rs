use std::time::Duration;

use platform::config::KafkaConfig;
use platform::kafka::{KafkaProbe, client_config, ensure_topics};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use testkit::{kafka_config, unique_name};

#[tokio::test]
async fn a_message_with_headers_goes_through_the_real_broker() {
    let kafka = kafka_config();
    let topic = unique_name("it.roundtrip");
    ensure_topics(&kafka, "platform-test", &[&topic]).await.expect("Kafka must be up: ./test.sh starts it");
    // Creating an existing topic again is harmless: every service does it at start. A name
    // given twice in one call is asked for once.
    ensure_topics(&kafka, "platform-test", &[&topic, &topic]).await.expect("idempotent topic creation");
    assert_topic_layout(&kafka, &topic).await;

    let producer: FutureProducer =
        client_config(&kafka, "platform-test").set("enable.idempotence", "true").create().expect("producer");
    let headers = OwnedHeaders::new()
        .insert(Header { key: "ce_type", value: Some("order.created.v1") })
        .insert(Header {
            key: "traceparent",
            value: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        });
    let delivery = producer
        .send(
            FutureRecord::to(&topic).key("order-1").payload(r#"{"orderId":"order-1"}"#).headers(headers),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("delivered");

    let consumer: StreamConsumer = client_config(&kafka, "platform-test")
        .set("group.id", unique_name("it.group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("a message within 30 s")
        .expect("no consumer error");

    assert_eq!((message.partition(), message.offset()), (delivery.partition, delivery.offset));
    assert_eq!(message.key(), Some(&b"order-1"[..]));
    assert_eq!(message.payload(), Some(&br#"{"orderId":"order-1"}"#[..]));
    let headers = message.headers().expect("headers arrive");
    let got: Vec<(String, String)> = headers
        .iter()
        .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
        .collect();
    assert_eq!(
        got,
        [
            ("ce_type".to_owned(), "order.created.v1".to_owned()),
            ("traceparent".to_owned(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned()),
        ]
    );
}

#[tokio::test]
async fn the_probe_sees_the_broker_and_reports_an_absent_one() {
    let probe = KafkaProbe::new(&kafka_config(), "platform-test").expect("client");
    let brokers = probe.ping().await.expect("Kafka must be up: ./test.sh starts it");
    assert!(brokers >= 1);

    let mut nowhere = kafka_config();
    nowhere.bootstrap_servers = "127.0.0.1:1".to_owned();
    let error =
        KafkaProbe::new(&nowhere, "platform-test").expect("client").ping().await.expect_err("no broker");
    assert!(platform::error_chain(&error).starts_with("kafka at 127.0.0.1:1"), "{error}");
}

/// The topic has the configured partitions, each with the configured replicas all in sync.
async fn assert_topic_layout(kafka: &KafkaConfig, topic: &str) {
    let client: BaseConsumer = client_config(kafka, "platform-test").create().expect("client");
    let name = topic.to_owned();
    let metadata =
        tokio::task::spawn_blocking(move || client.fetch_metadata(Some(&name), Duration::from_secs(10)))
            .await
            .expect("join")
            .expect("metadata");
    let partitions = metadata.topics()[0].partitions();
    assert_eq!(partitions.len(), kafka.topic_partitions as usize);
    for partition in partitions {
        assert_eq!(partition.replicas().len(), kafka.replication_factor as usize, "replicas of {topic}");
        assert_eq!(partition.isr().len(), kafka.replication_factor as usize, "in-sync replicas of {topic}");
    }
}
