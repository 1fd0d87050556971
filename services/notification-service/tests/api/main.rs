//! notification-service against the real stack: events in through Kafka, mails out
//! through the simulated gateway, failures through retries into the dead-letter topic.

mod access;
mod emails;
mod helpers;
mod orders;
mod welcome;
