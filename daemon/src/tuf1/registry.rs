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

/// Where a repository is in its life, as the registry records it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepoState {
    /// `tufctl tuf init` recorded it before writing anything and has not
    /// finished: its files may be partial (a root and no timestamp).
    /// Nothing but `init`, which resumes it, is done on it.
    Creating,
    /// Version 1 of every role was published: clients can use it.
    /// (Records written before states existed are this.)
    #[default]
    Created,
}

/// What the daemon keeps about one repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRecord {
    /// Whether its creation finished.
    #[serde(default)]
    pub state: RepoState,
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

    /// Every recorded directory, created or being created.
    pub fn all_dirs(&self) -> Vec<PathBuf> {
        self.repos
            .lock()
            .expect("registry lock")
            .keys()
            .cloned()
            .collect()
    }

    /// Every managed directory whose creation finished.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.repos
            .lock()
            .expect("registry lock")
            .iter()
            .filter(|(_, r)| r.state == RepoState::Created)
            .map(|(d, _)| d.clone())
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

    #[test]
    fn a_repository_being_created_is_recorded_but_not_refreshed() {
        let d = tempfile::tempdir().unwrap();
        let r = Registry::open(d.path()).unwrap();
        let creating = RepoRecord {
            state: RepoState::Creating,
            ..Default::default()
        };
        r.insert(Path::new("/new"), creating).unwrap();
        r.insert(Path::new("/old"), RepoRecord::default()).unwrap();
        let again = Registry::open(d.path()).unwrap();
        assert_eq!(
            again.get(Path::new("/new")).unwrap().state,
            RepoState::Creating
        );
        assert_eq!(again.dirs(), vec![PathBuf::from("/old")]);
        // A record from before states existed is a created repository.
        std::fs::write(
            d.path().join("tuf1/repositories.json"),
            br#"{"repositories":{"/x":{"expiry":{"root":9,"targets":9,"snapshot":9,"timestamp":9}}}}"#,
        )
        .unwrap();
        let old = Registry::open(d.path()).unwrap();
        assert_eq!(old.get(Path::new("/x")).unwrap().state, RepoState::Created);
    }
}
