//! Notary v1 TUF metadata: canonical JSON, key IDs, signing and verification.
//!
//! This crate knows nothing of tokens, gRPC or HTTP: it is given signers and
//! bytes and returns metadata and verdicts. The format follows
//! `notary-v1-format.md` (notary 0.7.0 as the reference).
//!
//! - [`canonical`]: notary's canonical JSON and the envelope's HTML escaping
//! - [`metadata`]: typed [`Root`], [`Targets`], [`Snapshot`], [`Timestamp`]
//! - [`signed`]: the file envelope [`Signed`] keeping exact bytes
//! - [`key`], [`keyid`], [`pem`]: key objects, key IDs, Go-layout PEM
//! - [`sign`]: the [`DigestSigner`] trait and [`sign_role`]
//! - [`cert`]: the root certificate builder
//! - [`verify`], [`rootcert`], [`repo`]: signature, certificate and
//!   whole-repository verification

pub mod canonical;
pub mod cert;
pub mod error;
pub mod expiry;
pub mod key;
pub mod keyid;
pub mod metadata;
pub mod pem;
pub mod repo;
pub mod role;
pub mod rootcert;
pub mod sign;
pub mod signed;
pub mod verify;

pub use cert::{build_root_certificate, build_root_key};
pub use error::{Error, Result};
pub use key::{Key, KeyType};
pub use metadata::{
    DelegationRole, Delegations, FileMeta, Hashes, Metadata, RoleKeys, Root, Snapshot, TargetMeta,
    Targets, Timestamp,
};
pub use repo::{RepositoryFiles, VerifiedRepository, verify_repository, verify_root_rotation};
pub use role::RoleName;
pub use sign::{DigestSigner, RoleSigner, SignError, sign_role};
pub use signed::{Signature, Signed};
