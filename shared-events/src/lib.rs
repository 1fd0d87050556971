//! The event contracts of the system: what every service may rely on about another's
//! events. Each payload type knows its topic, its CloudEvents type (name and version) and
//! its key; [`headers`] names the Kafka headers every message carries. Types and names
//! only: no I/O lives here.

pub mod headers;
pub mod payloads;
pub mod topics;

pub use payloads::*;

/// A domain event of the contract.
pub trait Event: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static {
    /// The topic it is published on: one topic per event type.
    const TOPIC: &'static str;
    /// The CloudEvents `type`: `<topic>.v<version>`. A new incompatible shape is a new version.
    const TYPE: &'static str;
    /// The message key: the id of the aggregate it is about, so that one aggregate's events
    /// share a partition and keep their order.
    fn key(&self) -> String;
}
