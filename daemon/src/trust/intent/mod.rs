//! The intents: each one a synchronous edit of a [`Draft`] read from the
//! repository, deciding what to publish ([`Outcome`]) or refusing with a
//! reason. They hold no locks, do no I/O and sign nothing: the transaction
//! engine ([`super::txn`]) reads, calls them, signs, publishes and reads
//! back. Work that needs I/O before an edit (generating a key, asking the
//! server for its key) is done by the caller and handed in.
//!
//! [`Draft`]: super::draft::Draft
//! [`Outcome`]: super::txn::Outcome

pub mod repair;
pub mod revoke;
pub mod rotate;
pub mod sign;
pub mod signer;

#[cfg(test)]
pub(crate) mod testkit;

/// The role `docker pull` trusts.
pub const RELEASES: &str = "targets/releases";
