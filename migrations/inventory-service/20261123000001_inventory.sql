-- The catalogue and its stock. `available` can be reserved; `reserved` is held by orders
-- (and stays held once they are paid: it is sold). A product's stock is the two summed.
CREATE TABLE products (
    sku           TEXT   PRIMARY KEY,
    name          TEXT   NOT NULL,
    price_cents   BIGINT NOT NULL CHECK (price_cents >= 0),
    available     BIGINT NOT NULL CHECK (available >= 0),
    reserved      BIGINT NOT NULL CHECK (reserved >= 0),
    updated_at_ms BIGINT NOT NULL
);

-- One reservation per order, all items or none, at the prices of the moment.
CREATE TABLE reservations (
    order_id       TEXT   PRIMARY KEY,
    user_id        TEXT   NOT NULL,
    status         TEXT   NOT NULL,
    total_cents    BIGINT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    released_at_ms BIGINT
);

CREATE TABLE reservation_items (
    order_id         TEXT   NOT NULL,
    sku              TEXT   NOT NULL,
    quantity         BIGINT NOT NULL,
    unit_price_cents BIGINT NOT NULL,
    PRIMARY KEY (order_id, sku)
);
