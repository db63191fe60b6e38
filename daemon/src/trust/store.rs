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
use tufd_tuf::{Metadata, RepositoryFiles, Root, Signed, VerifiedRepository};

/// Names of temporary files while a repository's file is written.
const TEMP_PREFIX: &str = ".tmp";

fn rolled_back(gun: &str, role: &str, old: u64, new: u64) -> TrustError {
    TrustError::RolledBack {
        repository: gun.to_owned(),
        role: role.to_owned(),
        served: new,
        trusted: old,
    }
}

/// Refuses files older than the ones verified before: timestamp, snapshot,
/// targets and every delegation must each be at least the stored version
/// (a rollback or freeze by the server). Files that do not parse are left
/// to verification.
pub fn check_not_older(
    gun: &str,
    stored: &StoredRepository,
    new: &RepositoryFiles,
) -> Result<(), TrustError> {
    // Only `signed.version` is read (no canonical form, no typed model):
    // this runs on every read, before the files are verified (and parsed)
    // anyway.
    fn version(b: &[u8]) -> Option<u64> {
        #[derive(Deserialize)]
        struct Envelope {
            signed: VersionOnly,
        }
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u64,
        }
        serde_json::from_slice::<Envelope>(b)
            .ok()
            .map(|e| e.signed.version)
    }
    let check = |role: &str, old: Option<u64>, new: Option<u64>| match (old, new) {
        (Some(o), Some(n)) if n < o => Err(rolled_back(gun, role, o, n)),
        _ => Ok(()),
    };
    check(
        "timestamp",
        version(&stored.files.timestamp),
        version(&new.timestamp),
    )?;
    check(
        "snapshot",
        version(&stored.files.snapshot),
        version(&new.snapshot),
    )?;
    check(
        "targets",
        version(&stored.files.targets),
        version(&new.targets),
    )?;
    for (name, old) in &stored.files.delegations {
        if let Some(b) = new.delegations.get(name) {
            check(name, version(old), version(b))?;
        }
    }
    Ok(())
}

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
    /// Opens (creating) `<state_dir>/trust`, removing temporary files a
    /// crash during a write left behind (the daemon's state-directory lock
    /// guarantees no other writer is using them).
    pub fn open(state_dir: &Path) -> Result<Self, TrustError> {
        let dir = state_dir.join("trust");
        std::fs::create_dir_all(&dir).map_err(|e| store_err(&dir, e))?;
        for entry in std::fs::read_dir(&dir).map_err(|e| store_err(&dir, e))? {
            let entry = entry.map_err(|e| store_err(&dir, e))?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let path = entry.path();
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "removed a temporary file left by an interrupted write")
                    }
                    Err(e) => return Err(store_err(&path, e)),
                }
            }
        }
        Ok(Self { dir })
    }

    /// Removes `gun` from the store: the next read trusts what the server
    /// serves anew (trust on first use). Whether it was stored.
    pub fn forget(&self, gun: &str) -> Result<bool, TrustError> {
        let path = self.path(gun);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(store_err(&path, e)),
        }
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| store_err(&self.dir, e))?;
        Ok(true)
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

    /// Replaces the stored state of `gun` with a verified repository. A
    /// repository with any role older than the stored one is refused: the
    /// store never goes back.
    pub fn save(&self, gun: &str, repo: &VerifiedRepository) -> Result<(), TrustError> {
        if let Some(old) = self.load(gun)? {
            let new = RepositoryFiles {
                root_chain: Vec::new(),
                timestamp: repo
                    .timestamp
                    .as_ref()
                    .map_or_else(Vec::new, |t| t.bytes().to_vec()),
                snapshot: repo.snapshot.bytes().to_vec(),
                targets: repo.targets.bytes().to_vec(),
                delegations: repo
                    .delegations
                    .iter()
                    .map(|(n, d)| (n.clone(), d.file.bytes().to_vec()))
                    .collect(),
            };
            check_not_older(gun, &old, &new)?;
            if let (Ok(a), Ok(b)) = (
                Signed::<Root>::from_role_bytes("root", &old.root),
                Signed::<Root>::from_role_bytes("root", repo.root.bytes()),
            ) && b.signed().version() < a.signed().version()
            {
                return Err(rolled_back(
                    gun,
                    "root",
                    a.signed().version(),
                    b.signed().version(),
                ));
            }
        }
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
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.dir)
            .map_err(|e| store_err(&path, e))?;
        crate::testhook::pause("store-write");
        tmp.write_all(&bytes).map_err(|e| store_err(&path, e))?;
        tmp.as_file().sync_all().map_err(|e| store_err(&path, e))?;
        tmp.persist(&path).map_err(|e| store_err(&path, e.error))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| store_err(&self.dir, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;
    use tufd_tuf::Targets;

    fn targets_file(version: u64) -> Vec<u8> {
        let mut t = Targets::new(OffsetDateTime::now_utc() + time::Duration::days(30));
        t.version = version;
        Signed::from_parts(t, Vec::new()).unwrap().bytes().to_vec()
    }

    fn files(targets: u64, releases: Option<u64>) -> RepositoryFiles {
        RepositoryFiles {
            targets: targets_file(targets),
            delegations: releases
                .map(|v| ("targets/releases".to_owned(), targets_file(v)))
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn targets_and_delegation_rollbacks_are_refused() {
        let stored = StoredRepository {
            root: Vec::new(),
            files: files(3, Some(5)),
        };
        let gun = "example.com/app";
        assert!(check_not_older(gun, &stored, &files(3, Some(5))).is_ok());
        assert!(check_not_older(gun, &stored, &files(4, Some(6))).is_ok());
        // A role no longer served is not a rollback.
        assert!(check_not_older(gun, &stored, &files(4, None)).is_ok());
        let e = check_not_older(gun, &stored, &files(2, Some(5))).unwrap_err();
        assert!(e.to_string().contains("rolled targets back"), "{e}");
        let e = check_not_older(gun, &stored, &files(3, Some(4))).unwrap_err();
        assert!(
            e.to_string().contains("rolled targets/releases back")
                && e.to_string().contains(">= 5"),
            "{e}"
        );
    }

    #[test]
    fn stale_temporary_files_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("trust")).unwrap();
        let stale = dir.path().join("trust/.tmpAbc123");
        std::fs::write(&stale, b"half").unwrap();
        let keep = dir.path().join("trust/other.json");
        std::fs::write(&keep, b"{}").unwrap();
        let store = TrustStore::open(dir.path()).unwrap();
        assert!(!stale.exists());
        assert!(keep.exists());
        assert!(!store.forget("example.com/app").unwrap());
    }
}
