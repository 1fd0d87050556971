-- Responses to requests that carried an Idempotency-Key: a retry with the same key and
-- the same body gets the first response back and changes nothing. The row is taken at
-- the start of the request's transaction, so a concurrent retry waits for it.
CREATE TABLE idempotency_keys (
    scope           TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    request         TEXT    NOT NULL,
    status          INTEGER NOT NULL,
    location        TEXT,
    body            TEXT    NOT NULL,
    created_at_ms   BIGINT  NOT NULL,
    PRIMARY KEY (scope, idempotency_key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at_ms);
