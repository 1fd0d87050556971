//! Watches the saga's topics, so each order's end is seen the moment its event is
//! published (no polling), and each step's event time gives per-hop latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use shared_events::{headers, topics};
use tokio::sync::mpsc;

/// The topics of the saga, in the order a confirmed order goes through them.
pub const SAGA_TOPICS: [&str; 8] = [
    topics::ORDER_CREATED,
    topics::INVENTORY_RESERVED,
    topics::INVENTORY_REJECTED,
    topics::PAYMENT_COMPLETED,
    topics::PAYMENT_FAILED,
    topics::INVENTORY_RELEASED,
    topics::ORDER_CONFIRMED,
    topics::ORDER_CANCELLED,
];

/// One event of an order's saga.
#[derive(Debug, Clone)]
pub struct SagaEvent {
    /// Its topic, without the prefix.
    pub topic: &'static str,
    /// The order.
    pub order_id: String,
    /// `ce_time`: when the service that emitted it committed it (ms since the epoch).
    pub at_ms: Option<i64>,
    /// When this process received it.
    pub received: Instant,
    /// `reason` of the payload, on a cancellation.
    pub reason: Option<String>,
}

fn event(prefix: &str, message: &rdkafka::message::BorrowedMessage<'_>) -> Option<SagaEvent> {
    let topic = SAGA_TOPICS.into_iter().find(|t| message.topic().strip_prefix(prefix) == Some(*t))?;
    let payload: serde_json::Value = serde_json::from_slice(message.payload()?).ok()?;
    let at_ms = message.headers().and_then(|h| {
        h.iter().find(|h| h.key == headers::CE_TIME).and_then(|h| {
            let text = std::str::from_utf8(h.value?).ok()?;
            chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis())
        })
    });
    Some(SagaEvent {
        topic,
        order_id: payload["orderId"].as_str()?.to_owned(),
        at_ms,
        received: Instant::now(),
        reason: payload["reason"].as_str().map(str::to_owned),
    })
}

/// Subscribes a fresh consumer group at the end of every saga topic and forwards what
/// arrives; returns once every partition is assigned, so no event of the run is missed.
pub async fn start(kafka: &str, prefix: &str) -> Result<mpsc::UnboundedReceiver<SagaEvent>, String> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", format!("loadgen-{}", uuid::Uuid::new_v4().simple()))
        .set("auto.offset.reset", "latest")
        .set("enable.auto.commit", "false")
        .set("socket.nagle.disable", "true")
        .set("fetch.wait.max.ms", "5")
        .create()
        .map_err(|e| format!("Kafka consumer: {e}"))?;
    let names: Vec<String> = SAGA_TOPICS.iter().map(|t| format!("{prefix}{t}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    consumer.subscribe(&names).map_err(|e| format!("subscribe: {e}"))?;
    let consumer = Arc::new(consumer);
    let (send, receive) = mpsc::unbounded_channel();
    let reader = Arc::clone(&consumer);
    let prefix = prefix.to_owned();
    tokio::spawn(async move {
        loop {
            match reader.recv().await {
                Ok(message) => {
                    if let Some(event) = event(&prefix, &message)
                        && send.send(event).is_err()
                    {
                        return;
                    }
                }
                Err(error) => eprintln!("loadgen: Kafka: {error}"),
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        if assigned > 0 && assigned >= SAGA_TOPICS.len() {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("no partitions of {names:?} assigned within 30 s: is Kafka at {kafka}?"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The starting offsets ("latest") are looked up on the first fetch after assignment.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(receive)
}
