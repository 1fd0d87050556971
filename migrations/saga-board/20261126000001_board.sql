-- The saga board's read model, built only from Kafka: delete the database and the next
-- start reads every topic again from the beginning (a new store names a new consumer group).

-- The one row naming this store's consumer group.
CREATE TABLE board_store (
    id BIGINT PRIMARY KEY,
    consumer_group TEXT NOT NULL
);

-- Every message of the saga topics, as it was (a message that is no valid event too).
CREATE TABLE board_events (
    topic TEXT NOT NULL,
    kafka_partition BIGINT NOT NULL,
    kafka_offset BIGINT NOT NULL,
    order_id TEXT,
    event_id TEXT,
    event_type TEXT,
    source TEXT,
    time_ms BIGINT,
    trace_id TEXT,
    user_id TEXT,
    reason TEXT,
    message_key TEXT,
    payload TEXT,
    headers TEXT NOT NULL,
    -- `<dlt topic>/<partition>/<offset>` when it was replayed from a dead-letter topic.
    replayed_from TEXT,
    PRIMARY KEY (topic, kafka_partition, kafka_offset)
);
CREATE INDEX board_events_by_order ON board_events (order_id);
CREATE INDEX board_events_by_replay ON board_events (replayed_from);

-- Every message of every dead-letter topic, with what its headers say.
CREATE TABLE board_dead_letters (
    topic TEXT NOT NULL,
    kafka_partition BIGINT NOT NULL,
    kafka_offset BIGINT NOT NULL,
    original_topic TEXT,
    original_partition BIGINT,
    original_offset BIGINT,
    consumer_group TEXT,
    error TEXT,
    attempts BIGINT,
    first_failure_at TEXT,
    last_failure_at TEXT,
    last_failure_ms BIGINT,
    order_id TEXT,
    event_id TEXT,
    event_type TEXT,
    trace_id TEXT,
    message_key TEXT,
    payload TEXT,
    headers TEXT NOT NULL,
    -- `<dlt topic>/<partition>/<offset>` when the message had been replayed before.
    replayed_from TEXT,
    PRIMARY KEY (topic, kafka_partition, kafka_offset)
);
CREATE INDEX board_dead_letters_by_order ON board_dead_letters (order_id);
CREATE INDEX board_dead_letters_by_time ON board_dead_letters (last_failure_ms);

-- One row per order, locked by every transaction that recomputes the order's view: two
-- events of one order applied at once (PostgreSQL applies partitions in parallel) would
-- each miss the other's event otherwise, and the last to commit would win.
CREATE TABLE board_order_locks (
    order_id TEXT PRIMARY KEY
);

-- Each order's view, recomputed from its events whenever one arrives.
CREATE TABLE board_orders (
    order_id TEXT PRIMARY KEY,
    user_id TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    path TEXT NOT NULL,
    created_ms BIGINT,
    updated_ms BIGINT,
    settled_ms BIGINT,
    saga_ms BIGINT,
    -- 1 when nothing more is expected.
    terminal BIGINT NOT NULL,
    -- The topics that would move it on, space-separated.
    waiting_for TEXT NOT NULL,
    -- The steps as JSON, in time order.
    steps TEXT NOT NULL,
    trace_id TEXT,
    dead_letters BIGINT NOT NULL
);
CREATE INDEX board_orders_by_created ON board_orders (created_ms);
CREATE INDEX board_orders_by_settled ON board_orders (settled_ms);
