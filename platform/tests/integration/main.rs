//! The platform against the real stack: Kafka, Zipkin, SQLite and PostgreSQL.
//! One binary, one module per concern (see `./test.sh` for how the stack is started).

mod auth;
mod batch;
mod consumer;
mod database;
mod group_join;
mod kafka_roundtrip;
mod outbox;
mod static_membership;
mod supervision;
mod support;
mod zipkin_roundtrip;
