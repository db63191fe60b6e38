//! Errors of the TUF 1.0 dialect. Messages name the role or key and say
//! what was expected.

use super::json::JsonError;

/// Everything that can go wrong reading, signing or verifying TUF 1.0
/// metadata.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Tuf1Error {
    /// Bytes are not metadata of the expected shape.
    #[error("{role} metadata is not valid: {source}")]
    Parse {
        /// Role parsed.
        role: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// `_type` names another role.
    #[error("metadata has _type {found:?}, expected {expected:?}")]
    WrongType {
        /// The expected `_type`.
        expected: &'static str,
        /// The `_type` found.
        found: String,
    },
    /// A value cannot be encoded.
    #[error("cannot encode metadata: {0}")]
    Json(#[from] JsonError),
    /// A key cannot be used.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The signer holds another key than the one metadata lists.
    #[error("the signer for key {keyid} holds a different public key")]
    SignerKeyMismatch {
        /// The listed key.
        keyid: String,
    },
    /// The token failed to sign.
    #[error("signing {role} with key {keyid} failed: {source}")]
    Sign {
        /// Role being signed.
        role: String,
        /// Key used.
        keyid: String,
        /// The token's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A fresh signature did not verify.
    #[error("the token's signature of {role} with key {keyid} does not verify")]
    SelfCheckFailed {
        /// Role being signed.
        role: String,
        /// Key used.
        keyid: String,
    },
    /// Fewer distinct keys signed than the threshold requires.
    #[error("{role}: {valid} valid signature(s) from distinct keys, threshold is {threshold}")]
    Threshold {
        /// Role checked.
        role: String,
        /// Distinct keys with a valid signature.
        valid: usize,
        /// Required.
        threshold: u64,
    },
    /// A role is not listed where it must be.
    #[error("{0}")]
    Invalid(String),
}
