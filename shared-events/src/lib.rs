//! The event contracts of the system (`shared/CONTRACT.md`, "Kafka"): what every service
//! may rely on about another's events. Types and names only; no I/O lives here.

pub mod topics;
