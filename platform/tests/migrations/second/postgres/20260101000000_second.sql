CREATE TABLE second_schema (id TEXT PRIMARY KEY, payload TEXT NOT NULL);
