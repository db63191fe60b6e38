//! The local trust store: the last verified metadata of each repository.
//!
//! One file per repository, `<state_dir>/trust/<sha256(gun)>.json`, holding
//! the exact bytes of every role as last verified. Its root is the trusted
//! root for the next read (trust on first use, then only verified
//! rotations), and its versions guard against rollback. Files are written
//! atomically: temp file, fsync, rename, fsync of the directory. The
//! daemon's state-directory lock keeps other processes out; the trust layer
//! serializes writers of one repository.

use super::TrustError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tufd_tuf::{RepositoryFiles, VerifiedRepository};

/// The stored bytes of one repository.
#[derive(Debug, Clone, Default)]
pub struct StoredRepository {
    pub root: Vec<u8>,
    pub files: RepositoryFiles,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    gun: String,
    root: String,
    timestamp: String,
    snapshot: String,
    targets: String,
    delegations: BTreeMap<String, String>,
}

/// Where verified metadata is kept.
pub struct TrustStore {
    dir: PathBuf,
}

fn store_err(path: &Path, detail: impl std::fmt::Display) -> TrustError {
    TrustError::Store {
        path: path.display().to_string(),
        detail: detail.to_string(),
    }
}

impl TrustStore {
    /// Opens (creating) `<state_dir>/trust`.
    pub fn open(state_dir: &Path) -> Result<Self, TrustError> {
        let dir = state_dir.join("trust");
        std::fs::create_dir_all(&dir).map_err(|e| store_err(&dir, e))?;
        Ok(Self { dir })
    }

    fn path(&self, gun: &str) -> PathBuf {
        self.dir.join(format!(
            "{}.json",
            hex::encode(Sha256::digest(gun.as_bytes()))
        ))
    }

    /// The stored state of `gun`, if any.
    pub fn load(&self, gun: &str) -> Result<Option<StoredRepository>, TrustError> {
        let path = self.path(gun);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(store_err(&path, e)),
        };
        let d: OnDisk = serde_json::from_str(&text).map_err(|e| store_err(&path, e))?;
        if d.gun != gun {
            return Err(store_err(&path, format!("holds {:?}, not {gun:?}", d.gun)));
        }
        let dec = |s: &str| B64.decode(s).map_err(|e| store_err(&path, e));
        let mut delegations = BTreeMap::new();
        for (k, v) in &d.delegations {
            delegations.insert(k.clone(), dec(v)?);
        }
        Ok(Some(StoredRepository {
            root: dec(&d.root)?,
            files: RepositoryFiles {
                root_chain: Vec::new(),
                timestamp: dec(&d.timestamp)?,
                snapshot: dec(&d.snapshot)?,
                targets: dec(&d.targets)?,
                delegations,
            },
        }))
    }

    /// Replaces the stored state of `gun` with a verified repository.
    pub fn save(&self, gun: &str, repo: &VerifiedRepository) -> Result<(), TrustError> {
        let on_disk = OnDisk {
            gun: gun.to_owned(),
            root: B64.encode(repo.root.bytes()),
            timestamp: B64.encode(repo.timestamp.as_ref().map_or(&[][..], |t| t.bytes())),
            snapshot: B64.encode(repo.snapshot.bytes()),
            targets: B64.encode(repo.targets.bytes()),
            delegations: repo
                .delegations
                .iter()
                .map(|(name, d)| (name.clone(), B64.encode(d.file.bytes())))
                .collect(),
        };
        let path = self.path(gun);
        let bytes = serde_json::to_vec(&on_disk).map_err(|e| store_err(&path, e))?;
        let mut tmp =
            tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| store_err(&path, e))?;
        tmp.write_all(&bytes).map_err(|e| store_err(&path, e))?;
        tmp.as_file().sync_all().map_err(|e| store_err(&path, e))?;
        tmp.persist(&path).map_err(|e| store_err(&path, e.error))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| store_err(&self.dir, e))
    }
}
