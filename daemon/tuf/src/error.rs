//! The crate's error type. Messages name the role, key or target involved
//! and say what was expected, so a person can act on them.

use crate::canonical::CanonicalError;
use crate::sign::SignError;

/// Everything that can go wrong parsing, signing or verifying metadata.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value cannot be encoded as notary canonical JSON.
    #[error("cannot encode {role} as canonical JSON: {source}")]
    Canonical {
        /// Role (or object) being encoded.
        role: String,
        /// The encoder's complaint.
        #[source]
        source: CanonicalError,
    },
    /// Bytes are not valid metadata JSON of the expected shape.
    #[error("{role} metadata is not valid: {source}")]
    Parse {
        /// Role whose file was parsed (or `metadata` when unknown).
        role: String,
        /// The JSON error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The `_type` field names another kind of role.
    #[error("{role} metadata has _type {found:?}, expected {expected:?}")]
    WrongType {
        /// Role being parsed.
        role: String,
        /// The `_type` this role must have.
        expected: &'static str,
        /// The `_type` found.
        found: String,
    },
    /// A role name notary would not accept.
    #[error(
        "invalid role name {0:?}: use root, targets, snapshot, timestamp or targets/<name> (lowercase a-z, 0-9, '-', '_', '/')"
    )]
    InvalidRoleName(String),
    /// A key object cannot be used.
    #[error("key {keyid}: {reason}")]
    InvalidKey {
        /// Key ID (as listed in the metadata) or a short description.
        keyid: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An X.509 certificate cannot be parsed or built.
    #[error("certificate: {0}")]
    Certificate(String),

    // ---- signing ---------------------------------------------------------
    /// The signer failed (token error, PIN, removed device, ...).
    #[error("signing {role} with key {keyid} failed: {source}")]
    Sign {
        /// Role being signed.
        role: String,
        /// Key ID of the signing key.
        keyid: String,
        /// The signer's error.
        #[source]
        source: SignError,
    },
    /// The signer's public key is not the key it was asked to sign for.
    #[error(
        "signer for key {keyid} holds a different public key; check that the token key matches the key in the metadata"
    )]
    SignerKeyMismatch {
        /// Key ID the signature was meant for.
        keyid: String,
    },
    /// A fresh signature did not verify: the token returned garbage or signed
    /// with another key. Nothing was published.
    #[error(
        "the signature just made for {role} with key {keyid} does not verify; the token returned an invalid signature"
    )]
    SelfCheckFailed {
        /// Role being signed.
        role: String,
        /// Key ID of the signing key.
        keyid: String,
    },
    /// No signers given.
    #[error("no signing keys given for {0}")]
    NoSigners(String),

    // ---- verification ----------------------------------------------------
    /// Fewer valid signatures from the role's keys than its threshold.
    #[error(
        "{role}: {valid} valid signature(s) from its keys, threshold is {threshold} (signatures present: {present})"
    )]
    ThresholdNotMet {
        /// Role verified.
        role: String,
        /// Valid signatures by distinct role keys.
        valid: usize,
        /// Threshold required.
        threshold: u32,
        /// Signatures in the file.
        present: usize,
    },
    /// A role's threshold is below 1 or above its number of keys.
    #[error("{role}: threshold {threshold} is invalid for {keys} key(s)")]
    BadThreshold {
        /// Role.
        role: String,
        /// The threshold.
        threshold: u32,
        /// Number of keys the role lists.
        keys: usize,
    },
    /// A role lists a key ID that the key map does not hold.
    #[error("{role} lists key {keyid}, which is not in the keys of {listed_in}")]
    MissingKey {
        /// Role.
        role: String,
        /// The missing key ID.
        keyid: String,
        /// Where the key should have been (root or the parent role).
        listed_in: String,
    },
    /// A key's ID does not match the ID it is listed under.
    #[error("key listed as {listed} has ID {computed}")]
    KeyIdMismatch {
        /// ID in the metadata.
        listed: String,
        /// ID recomputed from the key object.
        computed: String,
    },
    /// One signature is invalid (only reported by single-signature checks).
    #[error("signature by {keyid} is invalid: {reason}")]
    BadSignature {
        /// Key ID.
        keyid: String,
        /// Why.
        reason: String,
    },
    /// A role's expiry time has passed.
    #[error("{role} expired at {expires}; re-sign it (or check the clock)")]
    Expired {
        /// Role.
        role: String,
        /// The `expires` value.
        expires: String,
    },
    /// A role is missing from the snapshot or timestamp meta.
    #[error("{role} is not listed in {listed_in} meta")]
    MissingMeta {
        /// Role.
        role: String,
        /// snapshot or timestamp.
        listed_in: String,
    },
    /// A role file's hash does not match the one recorded for it.
    #[error("{role}: {algorithm} of the file is {actual}, {listed_in} says {expected}")]
    HashMismatch {
        /// Role whose file was hashed.
        role: String,
        /// Which hash.
        algorithm: String,
        /// Recorded (hex).
        expected: String,
        /// Computed (hex).
        actual: String,
        /// snapshot or timestamp.
        listed_in: String,
    },
    /// A role file's length does not match the one recorded for it.
    #[error("{role}: file is {actual} bytes, {listed_in} says {expected}")]
    LengthMismatch {
        /// Role.
        role: String,
        /// Recorded length.
        expected: u64,
        /// Actual length.
        actual: u64,
        /// snapshot or timestamp.
        listed_in: String,
    },
    /// File meta carries neither sha256 nor sha512.
    #[error("{listed_in} meta for {role} has no sha256 or sha512 hash")]
    NoHashes {
        /// Role.
        role: String,
        /// snapshot or timestamp.
        listed_in: String,
    },
    /// A version is not what the chain of trust requires.
    #[error("{role}: version {found} is not acceptable, expected {expected}")]
    BadVersion {
        /// Role.
        role: String,
        /// Version in the file.
        found: u64,
        /// What was required (e.g. "2" or ">= 5").
        expected: String,
    },
    /// A delegation tufd verified before is still delegated, but the
    /// snapshot no longer lists its file: the server hides it (a rollback
    /// in two steps: hide it, then list an older version again).
    #[error(
        "{role}: tufd verified version {trusted} of it before, and it is still delegated, but the snapshot no longer lists it: the server rolled it back (refused)"
    )]
    Unlisted {
        /// Role.
        role: String,
        /// The version verified before.
        trusted: u64,
    },
    /// The server's root is more versions ahead of the trusted one than one
    /// read follows.
    #[error(
        "root: the server's root is version {found}, {ahead} versions above the trusted version {trusted}; tufd follows at most {max} root rotations in one read (a server claiming an absurd version must not make it download them all)"
    )]
    TooManyRotations {
        /// The trusted root's version.
        trusted: u64,
        /// The version the server serves.
        found: u64,
        /// How far ahead.
        ahead: u64,
        /// [`crate::repo::MAX_ROOT_ROTATIONS`].
        max: u64,
    },
    /// A delegation file was given that no parent delegates to.
    #[error("{role} is not delegated by {parent}")]
    UnknownDelegation {
        /// The delegation.
        role: String,
        /// Its parent role.
        parent: String,
    },
    /// A role file listed in snapshot meta was not supplied for verification.
    #[error("{role} is listed in snapshot meta but its file was not supplied")]
    MissingFile {
        /// Role.
        role: String,
    },
    /// Root metadata breaks notary's rules (roles, certificates).
    #[error("root is not valid: {0}")]
    InvalidRoot(String),
}

impl Error {
    pub(crate) fn parse(role: &str, source: serde_json::Error) -> Self {
        Error::Parse {
            role: role.to_owned(),
            source,
        }
    }

    pub(crate) fn canonical(role: &str, source: CanonicalError) -> Self {
        Error::Canonical {
            role: role.to_owned(),
            source,
        }
    }

    pub(crate) fn key(keyid: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidKey {
            keyid: keyid.into(),
            reason: reason.into(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
