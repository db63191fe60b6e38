//! The TUF 1.0 specification dialect (python-tuf compatible), beside
//! Notary v1 and sharing nothing with its encoder or model.
//!
//! The model, canonical JSON, key IDs and verification live in the
//! `tufd-tuf1` crate (shared with tufctl's client) and are re-exported
//! here; this module adds [`sign`]: signing on a [`crate::DigestSigner`]
//! (raw r‖s → DER).

pub mod sign;

pub use tufd_tuf1::*;
