CREATE TABLE first_schema (id TEXT PRIMARY KEY, created_at_ms BIGINT NOT NULL);
