-- Wallets, and every movement of money: a balance always equals its initial amount
-- plus deposits, minus completed payments, plus refunds.
CREATE TABLE wallets (
    user_id        TEXT   PRIMARY KEY,
    initial_cents  BIGINT NOT NULL,
    balance_cents  BIGINT NOT NULL CHECK (balance_cents >= 0),
    created_at_ms  BIGINT NOT NULL
);

CREATE TABLE deposits (
    id            TEXT   PRIMARY KEY,
    user_id       TEXT   NOT NULL,
    amount_cents  BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- One payment per order: COMPLETED, FAILED (with why) or REFUNDED.
CREATE TABLE payments (
    id            TEXT   PRIMARY KEY,
    order_id      TEXT   NOT NULL UNIQUE,
    user_id       TEXT   NOT NULL,
    amount_cents  BIGINT NOT NULL,
    status        TEXT   NOT NULL,
    reason        TEXT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
