//! The retry and dead-letter layer: a message whose handler failed goes, key and value
//! unchanged, to the retry topic of its attempt (if the failure may pass and attempts
//! are left) or to `<topic>.dlt` with headers saying where it came from and why, so its
//! partition moves on.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use shared_events::headers::dead_letter;
use shared_events::topics;
use tokio_util::sync::CancellationToken;

use super::Interrupted;
use super::dedupe;
use super::delivery::{Delivery, Incoming, retry_headers, retry_topic};
use super::handler::HandlerError;
use crate::clock::{now_ms, rfc3339_ms};
use crate::config::RetryPolicy;
use crate::db::Db;
use crate::kafka::CountedProducer;

/// Where a failed message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Destination {
    /// The retry topic of its attempt.
    Retry,
    /// Its topic's dead-letter topic.
    DeadLetter,
}

/// A message to produce elsewhere with the original key and value.
pub(crate) struct Forward {
    /// Where.
    pub destination: Destination,
    topic: String,
    headers: OwnedHeaders,
}

/// Sends failed messages on, once each.
pub(crate) struct Forwarder {
    /// The consumer group, in retry topic names and the forward markers.
    pub group: String,
    /// Attempts and backoff.
    pub retry: RetryPolicy,
    /// Produces the forwards.
    pub producer: CountedProducer,
    /// Where the forward markers are recorded.
    pub db: Db,
}

impl Forwarder {
    /// Where `failure` of `incoming` sends it, with the headers of that hop.
    pub fn route(&self, incoming: &Incoming<'_>, failure: &HandlerError, error: &str) -> Forward {
        match failure {
            HandlerError::Transient(_) if incoming.delivery.attempt < self.retry.max_attempts => {
                self.retry_record(&incoming.delivery, &incoming.headers, error)
            }
            _ => self.dead_letter_record(&incoming.delivery, &incoming.headers, error),
        }
    }

    /// The message for the retry topic of this attempt: due after the backoff.
    fn retry_record(&self, delivery: &Delivery, headers: &HashMap<String, String>, error: &str) -> Forward {
        let now = now_ms();
        let due = now + self.retry.backoff_after(delivery.attempt).as_millis() as i64;
        let first = delivery.first_failure_at_ms.unwrap_or(now);
        Forward {
            destination: Destination::Retry,
            topic: retry_topic(&self.group, delivery.attempt),
            headers: carried_headers(headers)
                .insert(text(retry_headers::ORIGINAL_TOPIC, &delivery.topic))
                .insert(text(retry_headers::ORIGINAL_PARTITION, &delivery.partition.to_string()))
                .insert(text(retry_headers::ORIGINAL_OFFSET, &delivery.offset.to_string()))
                .insert(text(retry_headers::ATTEMPTS, &delivery.attempt.to_string()))
                .insert(text(retry_headers::FIRST_FAILURE_AT_MS, &first.to_string()))
                .insert(text(retry_headers::NOT_BEFORE_MS, &due.to_string()))
                .insert(text(retry_headers::LAST_ERROR, error)),
        }
    }

    /// The message for `<topic>.dlt`, with the headers of the contract.
    fn dead_letter_record(
        &self,
        delivery: &Delivery,
        headers: &HashMap<String, String>,
        error: &str,
    ) -> Forward {
        let now = now_ms();
        Forward {
            destination: Destination::DeadLetter,
            topic: topics::dead_letter(&delivery.topic),
            headers: carried_headers(headers)
                .insert(text(dead_letter::ORIGINAL_TOPIC, &delivery.topic))
                .insert(text(dead_letter::ORIGINAL_PARTITION, &delivery.partition.to_string()))
                .insert(text(dead_letter::ORIGINAL_OFFSET, &delivery.offset.to_string()))
                .insert(text(dead_letter::CONSUMER_GROUP, &self.group))
                .insert(text(dead_letter::ERROR, error))
                .insert(text(dead_letter::ATTEMPTS, &delivery.attempt.to_string()))
                .insert(text(
                    dead_letter::FIRST_FAILURE_AT,
                    &rfc3339_ms(delivery.first_failure_at_ms.unwrap_or(now)),
                ))
                .insert(text(dead_letter::LAST_FAILURE_AT, &rfc3339_ms(now))),
        }
    }

    /// Produces `forward` with the message's key and value, until Kafka takes it; `false`
    /// when this attempt of this message was forwarded already (a redelivered copy: one
    /// failure must not start two retry chains, nor put two copies in the DLT).
    pub async fn forward(
        &self,
        incoming: &Incoming<'_>,
        forward: &Forward,
        shutdown: &CancellationToken,
    ) -> Result<bool, Interrupted> {
        let delivery = &incoming.delivery;
        // Keyed by the original position and the attempt: stable across every hop.
        let marker = format!(
            "forward:{}:{}:{}:{}",
            delivery.topic, delivery.partition, delivery.offset, delivery.attempt
        );
        if dedupe::recorded(&self.db, &self.group, &marker).await {
            tracing::debug!(%marker, "already forwarded, copy dropped");
            return Ok(false);
        }
        self.produce(incoming, forward, shutdown).await?;
        // Recorded after the send: a crash between the two forwards twice, never zero times.
        if let Err(error) = dedupe::record(&self.db, &self.group, &marker).await {
            tracing::warn!(%error, %marker, "could not record the forward");
        }
        Ok(true)
    }

    /// Produces `forward` with the message's key and value, until Kafka takes it.
    async fn produce(
        &self,
        incoming: &Incoming<'_>,
        forward: &Forward,
        shutdown: &CancellationToken,
    ) -> Result<(), Interrupted> {
        let message = incoming.message;
        let mut pause = Duration::from_millis(100);
        loop {
            let mut record = FutureRecord::to(&forward.topic).headers(forward.headers.clone());
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(payload) = message.payload() {
                record = record.payload(payload);
            }
            let sent = tokio::select! {
                sent = self.producer.send(record, Duration::from_secs(30)) => sent,
                () = shutdown.cancelled() => return Err(Interrupted),
            };
            match sent {
                Ok(_) => return Ok(()),
                Err((error, _)) => {
                    tracing::warn!(topic = %forward.topic, %error, "forwarding failed, trying again");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = shutdown.cancelled() => return Err(Interrupted),
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

fn text<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header { key, value: Some(value) }
}

/// The original headers (CloudEvents, trace context, anything else), without those of an
/// earlier retry hop.
fn carried_headers(headers: &HashMap<String, String>) -> OwnedHeaders {
    let mut carried: Vec<(&String, &String)> =
        headers.iter().filter(|(key, _)| !key.starts_with("retry_") && !key.starts_with("dlt_")).collect();
    carried.sort();
    carried.into_iter().fold(OwnedHeaders::new_with_capacity(headers.len() + 8), |all, (key, value)| {
        all.insert(Header { key, value: Some(value.as_str()) })
    })
}
