//! What the board keeps of a message: read from its headers and payload once, when it
//! arrives, whatever it holds (a message that is no valid event is kept too, as it was).

use std::collections::{BTreeMap, HashMap};

use platform::consumer::RawMessage;
use shared_events::headers::{self, dead_letter};
use uuid::Uuid;

use crate::domain::{Position, Seen, Step};

/// A message of a saga topic (or one replayed from a dead-letter topic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Where it is.
    pub position: Position,
    /// The order it belongs to: the payload's `orderId`, else the key when that is an id.
    pub order_id: Option<Uuid>,
    /// `ce_id`.
    pub event_id: Option<String>,
    /// `ce_type`.
    pub event_type: Option<String>,
    /// `ce_source`.
    pub source: Option<String>,
    /// `ce_time`, in epoch milliseconds.
    pub time_ms: Option<i64>,
    /// The trace id of its `traceparent`.
    pub trace_id: Option<String>,
    /// The payload's `userId`.
    pub user_id: Option<String>,
    /// The payload's `reason`.
    pub reason: Option<String>,
    /// The key.
    pub key: Option<String>,
    /// The value, as text.
    pub payload: Option<String>,
    /// Every header, sorted by name.
    pub headers: BTreeMap<String, String>,
    /// The dead letter it was replayed from, `<topic>/<partition>/<offset>`.
    pub replayed_from: Option<String>,
}

impl EventRecord {
    /// Reads `message`, found on `topic` (its name in the contract, without a prefix).
    pub fn read(message: &RawMessage, topic: &str) -> Self {
        let header = |name: &str| message.headers.get(name).cloned();
        let json = json_of(message.payload.as_deref());
        let field =
            |name: &str| json.as_ref().and_then(|j| j.get(name)).and_then(|v| v.as_str()).map(str::to_owned);
        Self {
            position: Position {
                topic: topic.to_owned(),
                partition: message.partition,
                offset: message.offset,
            },
            order_id: order_id(field("orderId"), message.key.as_deref()),
            event_id: header(headers::CE_ID),
            event_type: header(headers::CE_TYPE),
            source: header(headers::CE_SOURCE),
            time_ms: header(headers::CE_TIME).as_deref().and_then(epoch_ms),
            trace_id: trace_id(&message.headers),
            user_id: field("userId"),
            reason: field("reason"),
            key: message.key.clone(),
            payload: message.payload.clone(),
            headers: message.headers.clone().into_iter().collect(),
            replayed_from: header(headers::REPLAYED_FROM),
        }
    }

    /// The saga step it is, when it is a valid event of a saga topic: a message without
    /// an id or a JSON payload is shown in the timeline but moves no saga.
    pub fn seen(&self) -> Option<Seen> {
        let step = Step::of_topic(&self.position.topic)?;
        json_of(self.payload.as_deref())?;
        Some(Seen {
            step,
            event_id: Some(self.event_id.clone()?),
            event_type: self.event_type.clone(),
            time_ms: self.time_ms,
            position: self.position.clone(),
            user_id: self.user_id.clone(),
            reason: self.reason.clone(),
        })
    }
}

/// A message of a dead-letter topic, with what its `dlt_` headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterRecord {
    /// Where it is (on the dead-letter topic).
    pub position: Position,
    /// Where it was first consumed from.
    pub original: Option<Position>,
    /// The consumer group that gave up on it.
    pub consumer_group: Option<String>,
    /// The last error.
    pub error: Option<String>,
    /// Attempts made.
    pub attempts: Option<i32>,
    /// When the first attempt failed (RFC 3339).
    pub first_failure_at: Option<String>,
    /// When the last one did (RFC 3339).
    pub last_failure_at: Option<String>,
    /// The same, in epoch milliseconds (the list's order).
    pub last_failure_ms: Option<i64>,
    /// What the message itself says, read as a saga message is.
    pub message: EventRecord,
}

impl DeadLetterRecord {
    /// Reads `message`, found on dead-letter topic `topic` (its name in the contract).
    pub fn read(message: &RawMessage, topic: &str) -> Self {
        let header = |name: &str| message.headers.get(name).cloned();
        let original = header(dead_letter::ORIGINAL_TOPIC).map(|topic| Position {
            topic,
            partition: header(dead_letter::ORIGINAL_PARTITION).and_then(|p| p.parse().ok()).unwrap_or(-1),
            offset: header(dead_letter::ORIGINAL_OFFSET).and_then(|o| o.parse().ok()).unwrap_or(-1),
        });
        let last_failure_at = header(dead_letter::LAST_FAILURE_AT);
        Self {
            position: Position {
                topic: topic.to_owned(),
                partition: message.partition,
                offset: message.offset,
            },
            original,
            consumer_group: header(dead_letter::CONSUMER_GROUP),
            error: header(dead_letter::ERROR),
            attempts: header(dead_letter::ATTEMPTS).and_then(|a| a.parse().ok()),
            first_failure_at: header(dead_letter::FIRST_FAILURE_AT),
            last_failure_ms: last_failure_at.as_deref().and_then(epoch_ms),
            last_failure_at,
            message: EventRecord::read(message, topic),
        }
    }

    /// Its id in the API: `<topic>/<partition>/<offset>`, as `replayed_from` names it.
    pub fn id(&self) -> String {
        position_id(&self.position)
    }
}

/// `<topic>/<partition>/<offset>`.
pub fn position_id(position: &Position) -> String {
    format!("{}/{}/{}", position.topic, position.partition, position.offset)
}

/// The position `<topic>/<partition>/<offset>` names.
pub fn parse_position_id(id: &str) -> Option<Position> {
    let mut parts = id.rsplitn(3, '/');
    let offset = parts.next()?.parse().ok()?;
    let partition = parts.next()?.parse().ok()?;
    Some(Position { topic: parts.next()?.to_owned(), partition, offset })
}

fn json_of(payload: Option<&str>) -> Option<serde_json::Map<String, serde_json::Value>> {
    serde_json::from_str(payload?).ok()
}

fn order_id(from_payload: Option<String>, key: Option<&str>) -> Option<Uuid> {
    from_payload.as_deref().or(key).and_then(|text| text.parse().ok())
}

/// RFC 3339 → epoch milliseconds.
pub fn epoch_ms(time: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(time).ok().map(|t| t.timestamp_millis())
}

/// The trace id of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`).
fn trace_id(headers: &HashMap<String, String>) -> Option<String> {
    let traceparent = headers.get(headers::TRACEPARENT)?;
    let trace = traceparent.split('-').nth(1)?;
    (trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()) && trace != "0".repeat(32))
        .then(|| trace.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic: &str, key: Option<&str>, payload: &str, headers: &[(&str, &str)]) -> RawMessage {
        RawMessage {
            topic: topic.to_owned(),
            partition: 2,
            offset: 7,
            key: key.map(str::to_owned),
            payload: Some(payload.to_owned()),
            headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    #[test]
    fn a_saga_event_is_read_from_its_headers_and_payload() {
        let order = Uuid::new_v4();
        let raw = message(
            "payment.failed",
            Some(&order.to_string()),
            &format!(
                r#"{{"orderId":"{order}","userId":"u-1","amountCents":5,"reason":"INSUFFICIENT_FUNDS"}}"#
            ),
            &[
                ("ce_id", "e-1"),
                ("ce_type", "payment.failed.v1"),
                ("ce_time", "2026-11-26T10:00:00.250Z"),
                ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ],
        );
        let record = EventRecord::read(&raw, "payment.failed");
        assert_eq!(record.order_id, Some(order));
        assert_eq!(record.trace_id.as_deref(), Some("0af7651916cd43dd8448eb211c80319c"));
        assert_eq!(record.time_ms, Some(1_795_687_200_250));
        let seen = record.seen().expect("a valid event");
        assert_eq!(seen.step, Step::PaymentFailed);
        assert_eq!(seen.reason.as_deref(), Some("INSUFFICIENT_FUNDS"));
    }

    #[test]
    fn a_poison_message_is_kept_but_moves_no_saga() {
        let key = Uuid::new_v4().to_string();
        let record =
            EventRecord::read(&message("order.created", Some(&key), "not json", &[]), "order.created");
        assert_eq!(record.order_id.map(|id| id.to_string()), Some(key), "the key names its order");
        assert_eq!(record.payload.as_deref(), Some("not json"));
        assert_eq!(record.seen(), None);
        let no_id = message("order.created", None, r#"{"orderId":"x"}"#, &[]);
        assert_eq!(EventRecord::read(&no_id, "order.created").seen(), None, "no ce_id");
    }

    #[test]
    fn a_dead_letter_says_where_it_came_from_and_why() {
        let raw = message(
            "order.created.dlt",
            Some("k"),
            "not json",
            &[
                ("dlt_original_topic", "order.created"),
                ("dlt_original_partition", "1"),
                ("dlt_original_offset", "17"),
                ("dlt_consumer_group", "inventory-service"),
                ("dlt_error", "permanent failure: no ce_id header"),
                ("dlt_attempts", "1"),
                ("dlt_last_failure_at", "2026-11-26T10:00:00.000Z"),
            ],
        );
        let letter = DeadLetterRecord::read(&raw, "order.created.dlt");
        assert_eq!(
            letter.original,
            Some(Position { topic: "order.created".to_owned(), partition: 1, offset: 17 })
        );
        assert_eq!(letter.consumer_group.as_deref(), Some("inventory-service"));
        assert_eq!(letter.attempts, Some(1));
        assert_eq!(letter.id(), "order.created.dlt/2/7");
        assert_eq!(parse_position_id(&letter.id()), Some(letter.position.clone()));
        assert_eq!(parse_position_id("nonsense"), None);
    }
}
