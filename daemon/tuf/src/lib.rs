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
//!   whole-repository verification; [`sigcache`]: signatures that
//!   verified before are not checked again
//!
//! # Example: a new repository's root and targets, signed on tokens
//!
//! ```no_run
//! use tufd_tuf::expiry::{ROOT_EXPIRY, TARGETS_EXPIRY};
//! use tufd_tuf::{
//!     DigestSigner, Key, RoleName, RoleSigner, Root, TargetMeta, Targets, build_root_key, sign_role,
//! };
//!
//! fn init(
//!     gun: &str,
//!     root_token: &dyn DigestSigner,
//!     targets_token: &dyn DigestSigner,
//!     snapshot_key: Key,
//!     timestamp_key: Key, // from the server's timestamp.key
//! ) -> tufd_tuf::Result<(Vec<u8>, Vec<u8>)> {
//!     let now = time::OffsetDateTime::now_utc();
//!     // Self-signed certificate CN=<gun>, signed on the token: the root key object.
//!     let root_key = build_root_key(gun, root_token, now)?;
//!     let targets_key = Key::ecdsa(targets_token.spki_der());
//!
//!     let mut root = Root::new(now + ROOT_EXPIRY);
//!     root.set_role_keys(&RoleName::Root, &[root_key.clone()])?;
//!     root.set_role_keys(&RoleName::Targets, &[targets_key.clone()])?;
//!     root.set_role_keys(&RoleName::Snapshot, &[snapshot_key])?;
//!     root.set_role_keys(&RoleName::Timestamp, &[timestamp_key])?;
//!     let root = sign_role("root", root, &[RoleSigner::new(&root_key, root_token)])?;
//!
//!     let mut targets = Targets::new(now + TARGETS_EXPIRY);
//!     targets.targets.insert("v1".into(), TargetMeta::sha256_only([0; 32], 527));
//!     let targets = sign_role("targets", targets, &[RoleSigner::new(&targets_key, targets_token)])?;
//!
//!     // Exact file bytes, as notary writes them; snapshot lists `targets.file_meta()`.
//!     Ok((root.bytes().to_vec(), targets.bytes().to_vec()))
//! }
//! ```

pub mod canonical;
mod canonical_fast;
pub mod cert;
pub mod client;
pub mod error;
pub mod expiry;
pub mod key;
pub mod keyid;
pub mod metadata;
pub mod pem;
pub mod repo;
pub mod role;
pub mod rootcert;
pub mod sigcache;
pub mod sign;
pub mod signed;
pub mod tuf1;
pub mod verify;

pub use cert::{build_root_certificate, build_root_key};
pub use error::{Error, Result};
pub use key::{Key, KeyType};
pub use metadata::{
    DelegationRole, Delegations, FileMeta, Hashes, Metadata, RoleKeys, Root, Snapshot, TargetMeta,
    Targets, Timestamp,
};
pub use repo::{
    MAX_ROOT_ROTATIONS, RepositoryFiles, SkipReason, SkippedDelegation, SkippedRole,
    VerifiedRepository, check_rotations, verify_client_update, verify_repository,
    verify_repository_lenient, verify_root_rotation, verify_root_step, verify_unpublished,
    verify_unpublished_lenient,
};
pub use role::RoleName;
pub use sign::{DigestSigner, RoleSigner, SignError, sign_role};
pub use signed::{Signature, Signed};
