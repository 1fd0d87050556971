//! The contract's invariants, checked against what the services stored.
//!
//! The checker reads each service's own database (read-only) rather than its HTTP API:
//! it has to see every user, wallet, order and notification at once, and the API has
//! no such lists (and pages orders at 500). It is an auditor, so it lives beside the
//! schemas it reads and is tested against them.
//!
//! [`snapshot::read`] loads what is needed; [`rules::check`] is plain functions over it.

pub mod databases;
pub mod rules;
pub mod snapshot;

pub use databases::Databases;
pub use rules::{Invariant, Violation, check, duplicates};
pub use snapshot::{Snapshot, read};
