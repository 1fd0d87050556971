//! Kafka message headers. Messages follow the CloudEvents 1.0 Kafka binding in binary mode:
//! the value is the JSON payload, the attributes travel as `ce_` headers, and W3C trace
//! context travels beside them.

/// CloudEvents spec version, always [`SPEC_VERSION`].
pub const CE_SPECVERSION: &str = "ce_specversion";
/// The event's unique id (a UUID): consumers drop an id they have already applied.
pub const CE_ID: &str = "ce_id";
/// The event type, e.g. `order.created.v1`.
pub const CE_TYPE: &str = "ce_type";
/// The service that produced it, e.g. `order-service`.
pub const CE_SOURCE: &str = "ce_source";
/// When it happened (RFC 3339): the commit of the transaction that produced it.
pub const CE_TIME: &str = "ce_time";
/// The payload's media type.
pub const CONTENT_TYPE: &str = "content-type";
/// W3C trace context of the span that produced the event.
pub const TRACEPARENT: &str = "traceparent";
/// W3C vendor trace state, when there is any.
pub const TRACESTATE: &str = "tracestate";

/// On a message replayed from a dead-letter topic: where it was there,
/// `<topic>/<partition>/<offset>` (so a read model can tell which dead letter came back).
pub const REPLAYED_FROM: &str = "replayed_from";

/// The CloudEvents version written in [`CE_SPECVERSION`].
pub const SPEC_VERSION: &str = "1.0";
/// The only content type payloads have.
pub const JSON: &str = "application/json";

/// Headers added to a message moved to `<topic>.dlt`: where it came from and why.
pub mod dead_letter {
    /// The topic the message was first consumed from.
    pub const ORIGINAL_TOPIC: &str = "dlt_original_topic";
    /// Its partition there.
    pub const ORIGINAL_PARTITION: &str = "dlt_original_partition";
    /// Its offset there.
    pub const ORIGINAL_OFFSET: &str = "dlt_original_offset";
    /// The consumer group that gave up on it.
    pub const CONSUMER_GROUP: &str = "dlt_consumer_group";
    /// The last error, for people.
    pub const ERROR: &str = "dlt_error";
    /// How many attempts were made (1 for a message that could never succeed).
    pub const ATTEMPTS: &str = "dlt_attempts";
    /// When the first attempt failed (RFC 3339).
    pub const FIRST_FAILURE_AT: &str = "dlt_first_failure_at";
    /// When the last attempt failed (RFC 3339).
    pub const LAST_FAILURE_AT: &str = "dlt_last_failure_at";
}
