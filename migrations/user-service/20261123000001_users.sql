-- Users. The e-mail is unique ignoring case: `email_key` is its lower-case form.
-- The password is kept only as an Argon2id PHC string (salted, slow to guess).
CREATE TABLE users (
    id            TEXT   PRIMARY KEY,
    email         TEXT   NOT NULL,
    email_key     TEXT   NOT NULL UNIQUE,
    name          TEXT   NOT NULL,
    password_hash TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL
);
