//! A consumed message as the pipeline sees it: its headers as text, and where it stands
//! in its retries (a message on a retry topic stands for the one first consumed).

use std::collections::HashMap;

use rdkafka::message::{Headers, Message, OwnedMessage};

/// Headers a message carries on a retry topic (they are replaced, not kept, on the next hop).
pub mod retry_headers {
    /// The topic the message was first consumed from.
    pub const ORIGINAL_TOPIC: &str = "retry_original_topic";
    /// Its partition there.
    pub const ORIGINAL_PARTITION: &str = "retry_original_partition";
    /// Its offset there.
    pub const ORIGINAL_OFFSET: &str = "retry_original_offset";
    /// Attempts made so far.
    pub const ATTEMPTS: &str = "retry_attempts";
    /// When the first attempt failed, in epoch milliseconds.
    pub const FIRST_FAILURE_AT_MS: &str = "retry_first_failure_at_ms";
    /// Not to be tried before this time, in epoch milliseconds.
    pub const NOT_BEFORE_MS: &str = "retry_not_before_ms";
    /// The error of the last attempt.
    pub const LAST_ERROR: &str = "retry_last_error";
}

/// The retry topic of consumer group `group` holding the messages (of any of its topics)
/// whose attempt `attempt` failed. One topic per attempt: all its messages wait the same
/// backoff, so they fall due in the order they arrive.
pub fn retry_topic(group: &str, attempt: u32) -> String {
    format!("{group}.retry-{attempt}")
}

/// Where a message stands in its retries.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// The topic it was first consumed from (not the retry topic).
    pub topic: String,
    /// Its partition there.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// 1 on the first delivery, n on the n-th attempt.
    pub attempt: u32,
    /// Whether a transient failure now sends it to the dead-letter topic.
    pub last_attempt: bool,
    /// When its first attempt failed.
    pub first_failure_at_ms: Option<i64>,
    /// Not to be tried before this time.
    pub not_before_ms: Option<i64>,
}

/// A message with its headers read once.
pub(crate) struct Incoming<'a> {
    /// The message itself.
    pub message: &'a OwnedMessage,
    /// Every header, as text.
    pub headers: HashMap<String, String>,
    /// Where it stands in its retries.
    pub delivery: Delivery,
}

impl<'a> Incoming<'a> {
    /// Reads the headers of `message` and where it stands, out of `max_attempts`.
    pub fn read(message: &'a OwnedMessage, max_attempts: u32) -> Self {
        let headers = text_headers(message);
        let number = |name: &str| headers.get(name).and_then(|v| v.parse::<i64>().ok());
        let delivery = match headers.get(retry_headers::ORIGINAL_TOPIC) {
            Some(topic) => Delivery {
                topic: topic.clone(),
                partition: number(retry_headers::ORIGINAL_PARTITION).unwrap_or(-1) as i32,
                offset: number(retry_headers::ORIGINAL_OFFSET).unwrap_or(-1),
                attempt: number(retry_headers::ATTEMPTS).unwrap_or(1) as u32 + 1,
                last_attempt: false,
                first_failure_at_ms: number(retry_headers::FIRST_FAILURE_AT_MS),
                not_before_ms: number(retry_headers::NOT_BEFORE_MS),
            },
            None => Delivery {
                topic: message.topic().to_owned(),
                partition: message.partition(),
                offset: message.offset(),
                attempt: 1,
                last_attempt: false,
                first_failure_at_ms: None,
                not_before_ms: None,
            },
        };
        let delivery = Delivery { last_attempt: delivery.attempt >= max_attempts, ..delivery };
        Self { message, headers, delivery }
    }

    /// Whether it may run at `now_ms` (a retry waits out its backoff first).
    pub fn is_due(&self, now_ms: i64) -> bool {
        self.delivery.not_before_ms.is_none_or(|due| due <= now_ms)
    }
}

fn text_headers(message: &OwnedMessage) -> HashMap<String, String> {
    message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .filter_map(|h| Some((h.key.to_owned(), String::from_utf8_lossy(h.value?).into_owned())))
                .collect()
        })
        .unwrap_or_default()
}
