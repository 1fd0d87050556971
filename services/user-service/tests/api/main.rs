//! user-service over HTTP against the real stack (Kafka; SQLite or PostgreSQL).

mod access;
mod admin;
mod helpers;
mod keys;
mod sign_in;
mod sign_up;
