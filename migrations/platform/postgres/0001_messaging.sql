-- The platform's tables, in every service's database.

-- Events written in the same transaction as the state change they describe, waiting
-- for the relay to publish them. Published rows stay for a retention period (for
-- inspection), then the relay deletes them.
--
-- Ids come from a sequence, so they are assigned at insert, not at commit; one
-- aggregate's events still come in commit order because the services lock the
-- aggregate's row before they write its events.
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
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

-- Wakes every relay listening on this database (other instances of the service too)
-- when a transaction that wrote events commits. One notification per transaction:
-- PostgreSQL folds identical ones.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Event ids a consumer group has applied, written in the transaction of the effect: a
-- redelivered event finds its id here and has no second effect.
CREATE TABLE processed_events (
    consumer_group  TEXT   NOT NULL,
    event_id        TEXT   NOT NULL,
    processed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (consumer_group, event_id)
);
CREATE INDEX processed_events_age ON processed_events (processed_at_ms);
