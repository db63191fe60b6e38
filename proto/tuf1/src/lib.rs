//! The TUF 1.0 specification dialect (python-tuf compatible) as data:
//! what the daemon writes and what tufctl's client reads. It knows nothing
//! of tokens, gRPC or files, so both sides share it (the daemon's
//! `tufd_tuf::tuf1` adds signing on tokens). It shares nothing with the
//! Notary v1 encoder or model.
//!
//! - [`json`]: OLPC canonical JSON (securesystemslib) and python-tuf's
//!   pretty file layout
//! - [`encode`]: the same encodings straight from the model (no `Value`
//!   tree: what large repositories are written with)
//! - [`key`]: key objects, securesystemslib key IDs, DER signatures
//! - [`metadata`]: roles, delegations, the signed envelope
//! - [`verify`]: thresholds over distinct keys

pub mod encode;
pub mod error;
pub mod json;
pub mod key;
pub mod metadata;
pub mod names;
pub mod verify;

pub use error::Tuf1Error;
pub use key::Key;
pub use metadata::{
    Common, DelegatedRole, Delegations, Expires, MetaFile, Metadata, Role, RoleKeys, Root,
    Signature, Snapshot, SuccinctRoles, TargetFile, Targets, Timestamp, Unrecognized,
};
