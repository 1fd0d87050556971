//! user-service over HTTP against the real stack (Kafka; SQLite or PostgreSQL).

mod helpers;
mod sign_up;
