-- Where a user's mail goes, learnt from UserSignedUp.
CREATE TABLE recipients (
    user_id TEXT PRIMARY KEY,
    email   TEXT NOT NULL,
    name    TEXT NOT NULL
);

-- What was sent (simulated: recorded, not mailed). `about` names the fact a message is
-- about (`WELCOME:<userId>`, `ORDER_CONFIRMED:<orderId>`, ...) and is unique: one mail
-- per fact, however often the event comes. Ad hoc messages have none.
CREATE TABLE notifications (
    id            TEXT    PRIMARY KEY,
    channel       TEXT    NOT NULL,
    recipient     TEXT    NOT NULL,
    subject       TEXT,
    body          TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    user_id       TEXT,
    order_id      TEXT,
    attempts      INTEGER NOT NULL,
    about         TEXT    UNIQUE,
    created_at_ms BIGINT  NOT NULL
);
CREATE INDEX notifications_user ON notifications (user_id);
CREATE INDEX notifications_order ON notifications (order_id);

-- Messages this service gave up on: what reached a dead-letter topic, with why.
CREATE TABLE failed_notifications (
    id                    TEXT    PRIMARY KEY,
    dead_letter_topic     TEXT    NOT NULL,
    dead_letter_partition INTEGER NOT NULL,
    dead_letter_offset    BIGINT  NOT NULL,
    original_topic        TEXT    NOT NULL,
    original_partition    INTEGER,
    original_offset       BIGINT,
    event_id              TEXT,
    event_type            TEXT,
    message_key           TEXT,
    payload               TEXT,
    error                 TEXT    NOT NULL,
    attempts              INTEGER NOT NULL,
    first_failure_at      TEXT,
    last_failure_at       TEXT,
    created_at_ms         BIGINT  NOT NULL,
    retried_at_ms         BIGINT,
    UNIQUE (dead_letter_topic, dead_letter_partition, dead_letter_offset)
);
