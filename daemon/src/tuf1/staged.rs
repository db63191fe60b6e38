//! Offline k-of-n signing of root: a staged change is a file that travels
//! between key holders (as tuf-on-ci's signing events travel in git). It
//! holds the current root and the proposed next root with the signatures
//! collected so far; each holder's tufd adds the signatures of the keys it
//! holds, and the repository's tufd publishes it once a threshold of the
//! current root's keys and of the new root's keys have signed. A signature
//! stays valid as long as the proposed content does not change.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tufd_tuf::tuf1::{Key, Metadata, Root, verify};

use super::error::RepoError;
use super::sign::Signers;

/// The marker and format version of a staged change file.
const FORMAT: u64 = 1;
/// The largest staged change file accepted.
pub const MAX_STAGED_BYTES: usize = 1024 * 1024;

/// A staged root change as it travels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Staged {
    /// Format version (1).
    pub tufd_staged_change: u64,
    /// The repository directory on the publishing machine (informational).
    pub repository: String,
    /// The root the repository publishes now (whose threshold must sign).
    pub previous: Metadata<Root>,
    /// The proposed next root and the signatures collected so far.
    pub metadata: Metadata<Root>,
}

/// Where a staged change stands for one threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThresholdState {
    /// "current root" or "new root".
    pub which: &'static str,
    /// Distinct keys with a valid signature.
    pub valid: usize,
    /// Required.
    pub threshold: u64,
    /// Listed keys without a valid signature yet.
    pub missing: Vec<String>,
}

impl ThresholdState {
    /// Whether the threshold is met.
    pub fn met(&self) -> bool {
        self.valid as u64 >= self.threshold
    }
}

impl std::fmt::Display for ThresholdState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} of {} signatures",
            self.which, self.valid, self.threshold
        )?;
        if self.met() {
            f.write_str(" (met)")
        } else {
            let short: Vec<&str> = self.missing.iter().map(|k| &k[..k.len().min(12)]).collect();
            write!(f, " (waiting for one more of: {})", short.join(", "))
        }
    }
}

impl Staged {
    /// A staged change of `previous` into `next` (unsigned).
    pub fn new(repository: &str, previous: Metadata<Root>, next: Root) -> Self {
        Self {
            tufd_staged_change: FORMAT,
            repository: repository.to_owned(),
            previous,
            metadata: Metadata::new(next),
        }
    }

    /// Parses a staged change file.
    pub fn parse(bytes: &[u8]) -> Result<Self, RepoError> {
        if bytes.len() > MAX_STAGED_BYTES {
            return Err(RepoError::InvalidRequest(format!(
                "a staged change is at most {MAX_STAGED_BYTES} bytes"
            )));
        }
        let s: Staged = serde_json::from_slice(bytes).map_err(|e| {
            RepoError::InvalidRequest(format!("not a staged change tufd wrote: {e}"))
        })?;
        if s.tufd_staged_change != FORMAT {
            return Err(RepoError::InvalidRequest(format!(
                "staged change format {} (this tufd reads {FORMAT})",
                s.tufd_staged_change
            )));
        }
        if s.metadata.signed.common.kind != "root" || s.previous.signed.common.kind != "root" {
            return Err(RepoError::InvalidRequest(
                "a staged change holds root metadata".into(),
            ));
        }
        if s.metadata.signed.common.version != s.previous.signed.common.version + 1 {
            return Err(RepoError::InvalidRequest(format!(
                "the staged root is version {}, the previous one {}: they must follow each other",
                s.metadata.signed.common.version, s.previous.signed.common.version
            )));
        }
        Ok(s)
    }

    /// The file bytes (indented JSON, for people and diffs).
    pub fn to_bytes(&self) -> Result<Vec<u8>, RepoError> {
        let mut v = serde_json::to_vec_pretty(self)
            .map_err(|e| RepoError::Internal(format!("encoding a staged change: {e}")))?;
        v.push(b'\n');
        Ok(v)
    }

    fn message(&self) -> Result<Vec<u8>, RepoError> {
        self.metadata
            .canonical_signed()
            .map_err(RepoError::metadata("staged root"))
    }

    /// The IDs of the keys that may sign: the current and the new root
    /// keys.
    pub fn root_key_ids(&self) -> Vec<String> {
        self.root_keys().into_iter().map(|(id, _)| id).collect()
    }

    /// The keys that may sign: the current and the new root keys.
    fn root_keys(&self) -> Vec<(String, Key)> {
        let mut out = Vec::new();
        for root in [&self.previous.signed, &self.metadata.signed] {
            if let Some(r) = root.roles.get("root") {
                for id in &r.keyids {
                    if let Some(k) = root.keys.get(id)
                        && !out.iter().any(|(i, _)| i == id)
                    {
                        out.push((id.clone(), k.clone()));
                    }
                }
            }
        }
        out
    }

    /// Adds the signatures of every root key (current or new) `signers`
    /// holds; returns the IDs of the keys that signed.
    pub fn sign(&mut self, signers: &Signers) -> Result<Vec<String>, RepoError> {
        let message = self.message()?;
        let mut signed = Vec::new();
        for (id, key) in self.root_keys() {
            let Some(signer) = signers.get(&id) else {
                continue;
            };
            // Drop a stale signature by this key (over other content).
            self.metadata
                .signatures
                .retain(|s| s.keyid != id || key.verify(&message, &s.sig));
            if self.metadata.signatures.iter().any(|s| s.keyid == id) {
                continue;
            }
            let sig = tufd_tuf::tuf1::sign::sign_message("root", &message, &key, signer)
                .map_err(RepoError::metadata("staged root"))?;
            self.metadata.signatures.push(sig);
            signed.push(id);
        }
        Ok(signed)
    }

    /// Where the two thresholds stand.
    pub fn thresholds(&self) -> Result<[ThresholdState; 2], RepoError> {
        let message = self.message()?;
        let state = |which, root: &Root| -> Result<ThresholdState, RepoError> {
            let r = root
                .roles
                .get("root")
                .ok_or_else(|| RepoError::InvalidRequest(format!("{which} lists no root role")))?;
            let valid =
                verify::count_valid(&message, &self.metadata.signatures, &root.keys, &r.keyids);
            let missing = r
                .keyids
                .iter()
                .filter(|id| {
                    let Some(k) = root.keys.get(*id) else {
                        return true;
                    };
                    !self
                        .metadata
                        .signatures
                        .iter()
                        .any(|s| &s.keyid == *id && k.verify(&message, &s.sig))
                })
                .cloned()
                .collect();
            Ok(ThresholdState {
                which,
                valid,
                threshold: r.threshold,
                missing,
            })
        };
        Ok([
            state("current root", &self.previous.signed)?,
            state("new root", &self.metadata.signed)?,
        ])
    }

    /// What is being signed, for the person asked to sign it.
    pub fn describe(&self) -> Vec<String> {
        let old = &self.previous.signed;
        let new = &self.metadata.signed;
        let mut lines = vec![format!(
            "root version {} of {} (expires {}), replacing version {}",
            new.common.version, self.repository, new.common.expires, old.common.version
        )];
        for role in ["root", "targets", "snapshot", "timestamp"] {
            let (Some(o), Some(n)) = (old.roles.get(role), new.roles.get(role)) else {
                continue;
            };
            let short = |ids: &[String]| -> String {
                ids.iter()
                    .map(|k| k[..k.len().min(12)].to_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if o.keyids == n.keyids && o.threshold == n.threshold {
                lines.push(format!(
                    "  {role}: unchanged ({} of {})",
                    n.threshold,
                    n.keyids.len()
                ));
            } else {
                lines.push(format!(
                    "  {role}: {} of [{}] -> {} of [{}]",
                    o.threshold,
                    short(&o.keyids),
                    n.threshold,
                    short(&n.keyids)
                ));
            }
        }
        let mut other = serde_json::to_value(&new.unrecognized).unwrap_or(Value::Null);
        if other.as_object().is_some_and(|o| !o.is_empty()) {
            other = Value::String(other.to_string());
            lines.push(format!("  other fields: {other}"));
        }
        lines
    }
}
