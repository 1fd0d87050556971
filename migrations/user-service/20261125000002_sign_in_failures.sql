-- Failed sign-ins, one row each, kept while they count against their e-mail (5 minutes):
-- in the database rather than in memory so that every instance of the service, and the
-- next process after a restart, sees the same failures. `email_key` is the lower-case
-- e-mail, whether or not a user has it.
CREATE TABLE sign_in_failures (
    id           TEXT   PRIMARY KEY,
    email_key    TEXT   NOT NULL,
    failed_at_ms BIGINT NOT NULL
);

-- One e-mail's recent failures, newest first.
CREATE INDEX sign_in_failures_by_email ON sign_in_failures (email_key, failed_at_ms);

-- Those that left the window, for deletion.
CREATE INDEX sign_in_failures_by_time ON sign_in_failures (failed_at_ms);
