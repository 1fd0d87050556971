-- Orders, their lines, and every status they went through with why.
CREATE TABLE orders (
    id             TEXT   PRIMARY KEY,
    user_id        TEXT   NOT NULL,
    status         TEXT   NOT NULL,
    total_cents    BIGINT,
    failure_reason TEXT,
    created_at_ms  BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL
);
CREATE INDEX orders_user ON orders (user_id, created_at_ms);
CREATE INDEX orders_status ON orders (status, created_at_ms);

CREATE TABLE order_items (
    order_id TEXT    NOT NULL,
    line     INTEGER NOT NULL,
    sku      TEXT    NOT NULL,
    quantity BIGINT  NOT NULL,
    PRIMARY KEY (order_id, line)
);

CREATE TABLE order_history (
    order_id TEXT    NOT NULL,
    seq      INTEGER NOT NULL,
    status   TEXT    NOT NULL,
    reason   TEXT,
    at_ms    BIGINT  NOT NULL,
    PRIMARY KEY (order_id, seq)
);
