//! What the repository manager is asked and what it answers, and the
//! checks of request values made before any metadata is touched.

use std::path::PathBuf;

use time::OffsetDateTime;
use tufd_tuf::tuf1::{Key, TargetFile, Unrecognized};

use super::dir::Beneath;
use super::edit::NewTarget;
use super::error::RepoError;
use super::files;
use super::scope::UnusedKey;
use super::staged;

/// The largest `custom` object a target may carry.
const MAX_CUSTOM_BYTES: usize = 64 * 1024;

/// What `init` is asked to create.
#[derive(Debug, Clone, Default)]
pub struct InitRequest {
    /// The repository directory, opened (and made) below its configured
    /// place.
    pub dir: Beneath,
    /// One token name per root key (empty names: the default token).
    pub root_tokens: Vec<String>,
    /// Root threshold (0: 1).
    pub root_threshold: u64,
    /// Token of the targets key.
    pub targets_token: String,
    /// Token of the snapshot and timestamp keys.
    pub online_token: String,
    /// Expiry periods in seconds by role.
    pub expiry: Vec<(String, u64)>,
    /// Number of hash bins (a power of two; 0: none).
    pub hash_bins: u64,
}

/// A delegation to create.
#[derive(Debug, Clone, Default)]
pub struct DelegateRequest {
    /// Name of the new role (unique in the repository).
    pub name: String,
    /// The delegating role (`None`: top-level targets).
    pub parent: Option<String>,
    /// Path patterns (`*` does not match `/`).
    pub paths: Vec<String>,
    /// Token of the role's key (empty: the default token).
    pub token: String,
    /// Whether the search stops at this role when its paths match.
    pub terminating: bool,
    /// Its own expiry period in seconds (`None`: the targets period).
    pub expiry_seconds: Option<u64>,
}

/// A target to add as the request gives it.
#[derive(Debug, Clone, Default)]
pub struct AddTarget {
    /// Path in the repository.
    pub name: String,
    /// A local file the daemon hashes and publishes (opened below the
    /// place it was allowed from), or empty.
    pub file: Option<Beneath>,
    /// Hex SHA-256 when no file is given.
    pub sha256: String,
    /// Length when no file is given.
    pub length: u64,
    /// `custom` metadata (a JSON object), or empty.
    pub custom_json: String,
}

/// One role's state.
#[derive(Debug, Clone)]
pub struct RoleState {
    /// Role name.
    pub role: String,
    /// Published version.
    pub version: u64,
    /// Expiry.
    pub expires: OffsetDateTime,
    /// Key IDs.
    pub keyids: Vec<String>,
    /// Threshold.
    pub threshold: u64,
    /// The role that delegates to it (`root` for targets, snapshot and
    /// timestamp; empty for root).
    pub parent: String,
    /// When the daemon signs it again on its own; `None` when it will not
    /// (root, or a role whose keys need a person: see `needs_holder`).
    pub next_refresh: Option<OffsetDateTime>,
    /// Whether signing it needs a key holder: its keys are on a token the
    /// daemon cannot use on its own now (touch, PIN not cached, absent).
    pub needs_holder: bool,
}

/// A repository's state as `status` reports it.
#[derive(Debug, Clone)]
pub struct RepoStatus {
    /// The directory.
    pub dir: PathBuf,
    /// Top-level roles, then (in `status`) the delegated roles in search
    /// order, hash bins as one `bins-*` entry.
    pub roles: Vec<RoleState>,
    /// Number of targets in top-level targets.
    pub target_count: u64,
    /// When the daemon last re-signed the online roles on its own, and what.
    pub last_refresh: Option<(OffsetDateTime, String)>,
    /// The last refresh failure, if the last attempt failed.
    pub last_error: Option<String>,
    /// When the online roles are next due.
    pub next_refresh: OffsetDateTime,
    /// Summary of the change that produced this state (mutations only).
    pub summary: String,
}

/// A staged change after an operation: its bytes and where it stands.
#[derive(Debug, Clone)]
pub struct StagedReport {
    /// The staged change file.
    pub bytes: Vec<u8>,
    /// What is being signed.
    pub description: Vec<String>,
    /// Keys that signed in this operation.
    pub signed: Vec<String>,
    /// The current and the new root's thresholds.
    pub thresholds: [staged::ThresholdState; 2],
    /// Root keys of the change this daemon holds but did not use, and why.
    pub unused: Vec<UnusedKey>,
}

impl StagedReport {
    pub(crate) fn new(
        staged: staged::Staged,
        signed: Vec<String>,
        unused: Vec<UnusedKey>,
    ) -> Result<Self, RepoError> {
        Ok(Self {
            bytes: staged.to_bytes()?,
            description: staged.describe(),
            signed,
            thresholds: staged.thresholds()?,
            unused,
        })
    }
}

/// A P-256 public key from PEM (a `PUBLIC KEY` block; a `role:` header as
/// `tufctl key generate` and docker write it is ignored).
pub(crate) fn key_from_pem(text: &str) -> Result<Key, RepoError> {
    let block = pem::parse(text.trim())
        .map_err(|e| RepoError::InvalidRequest(format!("not a PEM public key: {e}")))?;
    if block.tag() != "PUBLIC KEY" {
        return Err(RepoError::InvalidRequest(format!(
            "expected a PUBLIC KEY PEM block, found {}",
            block.tag()
        )));
    }
    Key::ecdsa_p256(block.contents())
        .map_err(|e| RepoError::InvalidRequest(format!("root key: {e}")))
}

/// Describes a target: hashes a local file, or checks a given hash and
/// length; parses `custom`.
pub(crate) fn describe(t: AddTarget) -> Result<NewTarget, RepoError> {
    let (sha256, length, source) = match &t.file {
        Some(path) => {
            if !t.sha256.is_empty() {
                return Err(RepoError::InvalidRequest(
                    "give a file or a hash and length, not both".into(),
                ));
            }
            let (sha, len) = files::hash_file(path)?;
            (sha, len, Some(path.clone()))
        }
        None => {
            let sha = t.sha256.to_ascii_lowercase();
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(RepoError::InvalidRequest(format!(
                    "target {}: give --hash as 64 hex digits of SHA-256 (or a file)",
                    t.name
                )));
            }
            (sha, t.length, None)
        }
    };
    let mut unrecognized = Unrecognized::new();
    if !t.custom_json.is_empty() {
        if t.custom_json.len() > MAX_CUSTOM_BYTES {
            return Err(RepoError::InvalidRequest(format!(
                "custom metadata of {} is over {MAX_CUSTOM_BYTES} bytes",
                t.name
            )));
        }
        let custom: serde_json::Value = serde_json::from_str(&t.custom_json).map_err(|e| {
            RepoError::InvalidRequest(format!("custom metadata of {} is not JSON: {e}", t.name))
        })?;
        if !custom.is_object() {
            return Err(RepoError::InvalidRequest(format!(
                "custom metadata of {} must be a JSON object",
                t.name
            )));
        }
        tufd_tuf::tuf1::json::canonical(&custom).map_err(|e| {
            RepoError::InvalidRequest(format!("custom metadata of {}: {e}", t.name))
        })?;
        unrecognized.insert("custom".into(), custom);
    }
    Ok(NewTarget {
        name: t.name,
        file: TargetFile {
            length,
            hashes: [("sha256".to_owned(), sha256)].into(),
            unrecognized,
        },
        source,
    })
}
