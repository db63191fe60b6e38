//! Generated types and stubs for the tufd gRPC API.
//!
//! The daemon implements the services; `tufctl` and CI tooling call them over
//! the daemon's Unix socket. No message carries private key material outward.

pub mod codec;

/// Version 1 of the API (`package tufd.v1`).
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("tufd.v1");
}

/// Prefix of the message signed by `Keys.ProveKey`: the daemon signs
/// `SHA-256(KEY_PROOF_CONTEXT || challenge)`. Shared so clients can verify.
pub const KEY_PROOF_CONTEXT: &[u8] = b"tufd-key-proof-v1\0";

pub mod names;
