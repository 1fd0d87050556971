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
    /// The CloudEvents `type` it is published as: `<topic>.v<version>`, the current
    /// version. A new shape is a new version.
    const TYPE: &'static str;
    /// The oldest version consumers still read: events of the versions before the current
    /// one may still sit in the topic (written before an upgrade), and are brought to the
    /// current shape by [`Event::upcast`].
    const OLDEST_VERSION: u32 = 1;

    /// The message key: the id of the aggregate it is about, so that one aggregate's events
    /// share a partition and keep their order.
    fn key(&self) -> String;

    /// Brings `payload`, of `version` (from [`Event::OLDEST_VERSION`] up to the current
    /// one), to the current shape: the one place that knows how the versions differ.
    fn upcast(version: u32, payload: &mut serde_json::Map<String, serde_json::Value>) {
        let _ = (version, payload);
    }
}

/// The name and the version of a CloudEvents type: `order.created.v2` → (`order.created`, 2).
pub fn name_and_version(event_type: &str) -> Option<(&str, u32)> {
    let (name, version) = event_type.rsplit_once(".v")?;
    Some((name, version.parse().ok()?))
}
