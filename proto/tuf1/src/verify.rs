//! Threshold checks: how many distinct keys validly signed a role.

use std::collections::{BTreeMap, HashSet};

use super::error::Tuf1Error;
use super::key::Key;
use super::metadata::Signature;

/// Counts the distinct keys among `keyids` (looked up in `keys`) with a
/// valid signature over `message`. A key listed under two IDs, or a
/// signature repeated, counts once; unknown key types never count.
pub fn count_valid(
    message: &[u8],
    signatures: &[Signature],
    keys: &BTreeMap<String, Key>,
    keyids: &[String],
) -> usize {
    let mut seen = HashSet::new();
    for sig in signatures {
        if !keyids.contains(&sig.keyid) {
            continue;
        }
        let Some(key) = keys.get(&sig.keyid) else {
            continue;
        };
        let identity = key.identity();
        if seen.contains(&identity) {
            continue;
        }
        if key.verify(message, &sig.sig) {
            seen.insert(identity);
        }
    }
    seen.len()
}

/// Checks that at least `threshold` distinct keys signed `message`.
pub fn check_threshold(
    role: &str,
    message: &[u8],
    signatures: &[Signature],
    keys: &BTreeMap<String, Key>,
    keyids: &[String],
    threshold: u64,
) -> Result<(), Tuf1Error> {
    if threshold == 0 {
        return Err(Tuf1Error::Invalid(format!("{role}: threshold is 0")));
    }
    let valid = count_valid(message, signatures, keys, keyids);
    if (valid as u64) < threshold {
        return Err(Tuf1Error::Threshold {
            role: role.to_owned(),
            valid,
            threshold,
        });
    }
    Ok(())
}
