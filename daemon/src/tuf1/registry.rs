//! The TUF 1.0 repositories this daemon manages, with their expiry policy
//! and the refresher's record: `<state_dir>/tuf1/repositories.json`,
//! written atomically (temp, fsync, rename, fsync of the directory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::error::RepoError;
use super::expiry::ExpiryPolicy;
use super::files::write_atomic;

/// One refresh by the daemon's own timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refresh {
    /// When.
    pub at: tufd_tuf::tuf1::Expires,
    /// What was re-signed (`timestamp v7 and snapshot v3`).
    pub detail: String,
}

/// What the daemon keeps about one repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRecord {
    /// How long each role's metadata stays valid.
    pub expiry: ExpiryPolicy,
    /// The last refresh of the online roles.
    #[serde(default)]
    pub last_refresh: Option<Refresh>,
    /// The last refresh failure (cleared by a success).
    #[serde(default)]
    pub last_error: Option<String>,
}

#[derive(Default, Serialize, Deserialize)]
struct OnDisk {
    repositories: BTreeMap<PathBuf, RepoRecord>,
}

/// The registry file and its contents.
pub struct Registry {
    path: PathBuf,
    repos: Mutex<BTreeMap<PathBuf, RepoRecord>>,
}

/// RFC 3339 in UTC, whole seconds.
pub fn format_time(t: OffsetDateTime) -> String {
    tufd_tuf::tuf1::Expires::at(t).to_string()
}

impl Registry {
    /// Opens (creating) the registry under `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self, RepoError> {
        let path = state_dir.join("tuf1").join("repositories.json");
        let repos = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<OnDisk>(&bytes)
                    .map_err(|e| {
                        RepoError::Internal(format!(
                            "{}: not a registry file tufd wrote: {e}",
                            path.display()
                        ))
                    })?
                    .repositories
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(RepoError::io(&path, "reading the registry")(e)),
        };
        Ok(Self {
            path,
            repos: Mutex::new(repos),
        })
    }

    fn save(&self, repos: &BTreeMap<PathBuf, RepoRecord>) -> Result<(), RepoError> {
        let bytes = serde_json::to_vec_pretty(&OnDisk {
            repositories: repos.clone(),
        })
        .map_err(|e| RepoError::Internal(format!("encoding the registry: {e}")))?;
        write_atomic(&self.path, &bytes)
    }

    /// Adds (or replaces) a repository.
    pub fn insert(&self, dir: &Path, record: RepoRecord) -> Result<(), RepoError> {
        let mut repos = self.repos.lock().expect("registry lock");
        repos.insert(dir.to_owned(), record);
        self.save(&repos)
    }

    /// A repository's record.
    pub fn get(&self, dir: &Path) -> Option<RepoRecord> {
        self.repos.lock().expect("registry lock").get(dir).cloned()
    }

    /// Changes a repository's record.
    pub fn update(&self, dir: &Path, f: impl FnOnce(&mut RepoRecord)) -> Result<(), RepoError> {
        let mut repos = self.repos.lock().expect("registry lock");
        let Some(rec) = repos.get_mut(dir) else {
            return Ok(());
        };
        f(rec);
        self.save(&repos)
    }

    /// Every managed directory.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.repos
            .lock()
            .expect("registry lock")
            .keys()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_reopen() {
        let d = tempfile::tempdir().unwrap();
        let r = Registry::open(d.path()).unwrap();
        r.insert(Path::new("/repo"), RepoRecord::default()).unwrap();
        r.update(Path::new("/repo"), |rec| rec.last_error = Some("x".into()))
            .unwrap();
        let again = Registry::open(d.path()).unwrap();
        assert_eq!(again.dirs(), vec![PathBuf::from("/repo")]);
        assert_eq!(
            again.get(Path::new("/repo")).unwrap().last_error.as_deref(),
            Some("x")
        );
    }
}
