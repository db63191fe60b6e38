//! The TUF 1.0 specification dialect (python-tuf compatible), beside
//! Notary v1 and sharing nothing with its encoder or model.
//!
//! - [`json`]: OLPC canonical JSON (securesystemslib) and python-tuf's
//!   pretty file layout
//! - [`key`]: key objects, securesystemslib key IDs, DER signatures
//! - [`metadata`]: roles, delegations, the signed envelope
//! - [`sign`]: signing on a [`crate::DigestSigner`] (raw r‖s → DER)
//! - [`verify`]: thresholds over distinct keys

pub mod error;
pub mod json;
pub mod key;
pub mod metadata;
pub mod sign;
pub mod verify;

pub use error::Tuf1Error;
pub use key::Key;
pub use metadata::{
    Common, DelegatedRole, Delegations, Expires, MetaFile, Metadata, Role, RoleKeys, Root,
    Signature, Snapshot, SuccinctRoles, TargetFile, Targets, Timestamp, Unrecognized,
};
