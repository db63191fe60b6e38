//! Docker Content Trust operations on Notary v1 repositories.
//!
//! Each operation is one transaction per repository: read the current
//! metadata from the server, verify it against the trusted root in the
//! local store, apply one intent, sign the changed roles on tokens, verify,
//! publish in one request, then update the local store. This layer knows
//! nothing of gRPC.

mod error;
pub mod inspect;
pub mod signer;
pub mod store;

pub use error::TrustError;
