//! Notary v1 TUF metadata: canonical JSON, key IDs, signing and verification.
//!
//! This crate knows nothing of tokens, gRPC or HTTP: it is given signers and
//! bytes and returns metadata and verdicts.

pub mod keyid;
