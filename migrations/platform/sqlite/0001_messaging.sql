-- The platform's tables, in every service's database.

-- Events written in the same transaction as the state change they describe, waiting
-- for the relay to publish them. Published rows stay for a retention period (for
-- inspection), then the relay deletes them. The id gives the commit order: SQLite has
-- one writer at a time.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL UNIQUE,
    topic           TEXT    NOT NULL,
    message_key     TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    traceparent     TEXT,
    tracestate      TEXT,
    created_at_ms   BIGINT  NOT NULL,
    published_at_ms BIGINT
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at_ms IS NULL;
CREATE INDEX outbox_published ON outbox (published_at_ms) WHERE published_at_ms IS NOT NULL;

-- Event ids a consumer group has applied, written in the transaction of the effect: a
-- redelivered event finds its id here and has no second effect.
CREATE TABLE processed_events (
    consumer_group  TEXT   NOT NULL,
    event_id        TEXT   NOT NULL,
    processed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (consumer_group, event_id)
);
CREATE INDEX processed_events_age ON processed_events (processed_at_ms);
