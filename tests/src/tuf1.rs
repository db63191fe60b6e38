//! Helpers the TUF 1.0 end-to-end tests share.

use crate::daemon::TestEnv;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The SHA-256 of `bytes`, in hex (as target hashes are written).
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `tufctl tuf status REPO` as JSON (asserts success).
pub fn status(env: &TestEnv, repo: &Path) -> Value {
    env.tufctl(&["-o", "json", "tuf", "status", repo.to_str().unwrap()])
        .json()
}

/// The version `status` shows for `role`.
pub fn version(status: &Value, role: &str) -> u64 {
    status["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == role)
        .unwrap_or_else(|| panic!("no {role} in {status}"))["version"]
        .as_u64()
        .unwrap()
}
