//! The local trust store: the last verified metadata of each repository.
//!
//! One file per repository, `<state_dir>/trust/<sha256(gun)>.trust`,
//! holding the exact bytes of every role as last verified: a magic line, a
//! JSON header line (the repository and each role's length), then the raw
//! files one after another (no base64: a 100 000-tag repository loads by
//! reading, not decoding). The older `<sha256(gun)>.json` (every role
//! base64 in one JSON object) is still read and replaced on the next save. Its root is the trusted
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
use std::collections::{BTreeMap, HashMap};
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
    Versions::of(&stored.files).check_not_older(gun, new)
}

/// The `signed.version` of each role file of a repository, read without the
/// rest (no canonical form, no typed model): the floor a new read must not
/// go below. Taken before the stored bytes move on (a read uses them as its
/// cache by checksum).
#[derive(Debug, Clone, Default)]
pub struct Versions {
    timestamp: Option<u64>,
    snapshot: Option<u64>,
    targets: Option<u64>,
    delegations: BTreeMap<String, Option<u64>>,
}

/// `signed.version` of a role file, `None` when it does not parse.
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

impl Versions {
    /// The versions of `files`.
    pub fn of(files: &RepositoryFiles) -> Self {
        Self {
            timestamp: version(&files.timestamp),
            snapshot: version(&files.snapshot),
            targets: targets_version(files, "targets", &files.targets),
            delegations: files
                .delegations
                .iter()
                .map(|(name, b)| (name.clone(), targets_version(files, name, b)))
                .collect(),
        }
    }

    /// Refuses `new` when one of its roles is older than here (see
    /// [`check_not_older`]).
    pub fn check_not_older(&self, gun: &str, new: &RepositoryFiles) -> Result<(), TrustError> {
        self.not_below(gun, &Versions::of(new))
    }

    /// Refuses `repo` when a delegation here is still delegated there but
    /// no longer listed in its snapshot (see
    /// [`VerifiedRepository::check_still_listed`]): the floor of a hidden
    /// role is not dropped.
    pub fn check_still_listed(
        &self,
        gun: &str,
        repo: &VerifiedRepository,
    ) -> Result<(), TrustError> {
        repo.check_still_listed(
            self.delegations
                .iter()
                .filter_map(|(name, v)| Some((name.as_str(), (*v)?))),
        )
        .map_err(|e| TrustError::metadata(gun, e))
    }

    /// Refuses versions `new` when one of its roles is below its version
    /// here (a role either side lacks is not compared).
    fn not_below(&self, gun: &str, new: &Versions) -> Result<(), TrustError> {
        let check = |role: &str, old: Option<u64>, new: Option<u64>| match (old, new) {
            (Some(o), Some(n)) if n < o => Err(rolled_back(gun, role, o, n)),
            _ => Ok(()),
        };
        check("timestamp", self.timestamp, new.timestamp)?;
        check("snapshot", self.snapshot, new.snapshot)?;
        check("targets", self.targets, new.targets)?;
        for (name, old) in &self.delegations {
            if let Some(n) = new.delegations.get(name) {
                check(name, *old, *n)?;
            }
        }
        Ok(())
    }
}

/// The version of the targets role `role` of `files`, whose file is
/// `bytes`: from its kept parse when there is one of these bytes (`version`
/// comes last in a targets file: reading it scans every tag), else read.
fn targets_version(files: &RepositoryFiles, role: &str, bytes: &[u8]) -> Option<u64> {
    match files.parsed_of(role, bytes) {
        Some(p) => Some(p.signed().version),
        None => version(bytes),
    }
}

/// The stored bytes of one repository.
#[derive(Debug, Clone, Default)]
pub struct StoredRepository {
    pub root: Vec<u8>,
    pub files: RepositoryFiles,
}

/// The first line of a stored repository file (format 2: raw role files).
const MAGIC: &[u8] = b"tufd-trust-store 2\n";

/// Format 2's header (the line after [`MAGIC`]): whose files these are and
/// the length of each, in the order their bytes follow.
#[derive(Serialize, Deserialize)]
struct Header {
    gun: String,
    files: Vec<(String, u64)>,
}

/// Format 1 (up to issue 13): every role base64 in one JSON object (a
/// 100 000-tag repository took 23 MB to decode). Still read; the next save
/// replaces it with format 2.
#[derive(Deserialize)]
struct OnDiskV1 {
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
    /// Each repository's versions as this store last wrote them: the floor
    /// its next write may not go below, without reading the file back (a
    /// 100 000-tag repository is 17 MB, its versions last in each file).
    /// The daemon's state-directory lock makes this store the files' only
    /// writer; a repository not written since start is read once.
    floors: std::sync::Mutex<HashMap<String, Floor>>,
}

/// The versions a repository's next write may not go below.
#[derive(Debug, Clone)]
struct Floor {
    roles: Versions,
    root: Option<u64>,
}

impl Floor {
    /// The floor a stored repository sets.
    fn of_stored(old: &StoredRepository) -> Self {
        Floor {
            roles: Versions::of(&old.files),
            root: Signed::<Root>::from_role_bytes("root", &old.root)
                .ok()
                .map(|r| r.signed().version()),
        }
    }

    /// The floor `repo`, once written, sets (versions from its parse).
    fn of_written(repo: &VerifiedRepository) -> Self {
        Floor {
            roles: Versions {
                timestamp: repo.timestamp.as_ref().map(|t| t.signed().version()),
                snapshot: Some(repo.snapshot.signed().version()),
                targets: Some(repo.targets.signed().version()),
                delegations: repo
                    .delegations
                    .iter()
                    .map(|(name, d)| (name.clone(), Some(d.file.signed().version())))
                    .collect(),
            },
            root: Some(repo.root.signed().version()),
        }
    }
}

fn store_err(path: &Path, detail: impl std::fmt::Display) -> TrustError {
    TrustError::Store {
        path: path.display().to_string(),
        detail: detail.to_string(),
    }
}

/// Removes `path`; whether it existed.
fn remove(path: &Path) -> Result<bool, TrustError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(store_err(path, e)),
    }
}

impl TrustStore {
    /// Opens (creating) `<state_dir>/trust`, removing temporary files a
    /// crash during a write left behind (the daemon's state-directory lock
    /// guarantees no other writer is using them).
    pub fn open(state_dir: &Path) -> Result<Self, TrustError> {
        let dir = state_dir.join("trust");
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(&dir)
            .map_err(|e| store_err(&dir, e))?;
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
        Ok(Self {
            dir,
            floors: Default::default(),
        })
    }

    fn floors(&self) -> std::sync::MutexGuard<'_, HashMap<String, Floor>> {
        self.floors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes `gun` from the store: the next read trusts what the server
    /// serves anew (trust on first use). Whether it was stored.
    pub fn forget(&self, gun: &str) -> Result<bool, TrustError> {
        self.floors().remove(gun);
        let removed = remove(&self.path(gun))?;
        let removed_v1 = remove(&self.path_v1(gun))?;
        if !(removed || removed_v1) {
            return Ok(false);
        }
        self.sync_dir()?;
        Ok(true)
    }

    fn sync_dir(&self) -> Result<(), TrustError> {
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| store_err(&self.dir, e))
    }

    fn name(gun: &str) -> String {
        hex::encode(Sha256::digest(gun.as_bytes()))
    }

    /// `<sha256(gun)>.trust`: format 2.
    fn path(&self, gun: &str) -> PathBuf {
        self.dir.join(format!("{}.trust", Self::name(gun)))
    }

    /// `<sha256(gun)>.json`: format 1, read until the next save.
    fn path_v1(&self, gun: &str) -> PathBuf {
        self.dir.join(format!("{}.json", Self::name(gun)))
    }

    /// The stored state of `gun`, if any.
    pub fn load(&self, gun: &str) -> Result<Option<StoredRepository>, TrustError> {
        let path = self.path(gun);
        match std::fs::File::open(&path) {
            Ok(f) => Self::read(&path, f, gun).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.load_v1(gun),
            Err(e) => Err(store_err(&path, e)),
        }
    }

    /// Format 2: each role's bytes read straight into its own buffer.
    fn read(path: &Path, file: std::fs::File, gun: &str) -> Result<StoredRepository, TrustError> {
        use std::io::{BufRead, Read};
        let err = |e: &dyn std::fmt::Display| store_err(path, e);
        let size = file.metadata().map_err(|e| err(&e))?.len();
        let mut r = std::io::BufReader::new(file);
        let mut magic = vec![0; MAGIC.len()];
        r.read_exact(&mut magic).map_err(|e| err(&e))?;
        if magic != MAGIC {
            return Err(err(&"not a tufd trust store file"));
        }
        let mut line = Vec::new();
        r.read_until(b'\n', &mut line).map_err(|e| err(&e))?;
        let header: Header = serde_json::from_slice(&line).map_err(|e| err(&e))?;
        if header.gun != gun {
            return Err(err(&format!("holds {:?}, not {gun:?}", header.gun)));
        }
        let total: u64 = header.files.iter().map(|(_, n)| n).sum();
        if MAGIC.len() as u64 + line.len() as u64 + total != size {
            return Err(err(&"truncated or oversized: the lengths do not add up"));
        }
        let mut out = StoredRepository::default();
        for (role, len) in header.files {
            let mut bytes = vec![0; usize::try_from(len).map_err(|e| err(&e))?];
            r.read_exact(&mut bytes).map_err(|e| err(&e))?;
            match role.as_str() {
                "root" => out.root = bytes,
                "timestamp" => out.files.timestamp = bytes.into(),
                "snapshot" => out.files.snapshot = bytes.into(),
                "targets" => out.files.targets = bytes.into(),
                d if d.starts_with("targets/") => {
                    out.files.delegations.insert(role, bytes.into());
                }
                other => return Err(err(&format!("unknown role {other:?}"))),
            }
        }
        Ok(out)
    }

    /// Format 1, as stored before issue 13.
    fn load_v1(&self, gun: &str) -> Result<Option<StoredRepository>, TrustError> {
        let path = self.path_v1(gun);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(store_err(&path, e)),
        };
        let d: OnDiskV1 = serde_json::from_str(&text).map_err(|e| store_err(&path, e))?;
        if d.gun != gun {
            return Err(store_err(&path, format!("holds {:?}, not {gun:?}", d.gun)));
        }
        let dec = |s: &str| B64.decode(s).map_err(|e| store_err(&path, e));
        let mut delegations = BTreeMap::new();
        for (k, v) in &d.delegations {
            delegations.insert(k.clone(), dec(v)?.into());
        }
        Ok(Some(StoredRepository {
            root: dec(&d.root)?,
            files: RepositoryFiles {
                root_chain: Vec::new(),
                timestamp: dec(&d.timestamp)?.into(),
                snapshot: dec(&d.snapshot)?.into(),
                targets: dec(&d.targets)?.into(),
                delegations,
                parsed: Default::default(),
            },
        }))
    }

    /// Replaces the stored state of `gun` with a verified repository. A
    /// repository with any role older than the stored one is refused: the
    /// store never goes back.
    pub fn save(&self, gun: &str, repo: &VerifiedRepository) -> Result<(), TrustError> {
        let timestamp = repo.timestamp.as_ref().map_or(&[][..], |t| t.bytes());
        let mut files: Vec<(String, &[u8])> = vec![
            ("root".into(), repo.root.bytes()),
            ("timestamp".into(), timestamp),
            ("snapshot".into(), repo.snapshot.bytes()),
            ("targets".into(), repo.targets.bytes()),
        ];
        files.extend(
            repo.delegations
                .iter()
                .map(|(name, d)| (name.clone(), d.file.bytes())),
        );
        let written = Floor::of_written(repo);
        let known = self.floors().get(gun).cloned();
        let floor = match known {
            Some(f) => Some(f),
            None => self.load(gun)?.map(|old| Floor::of_stored(&old)),
        };
        if let Some(floor) = floor {
            floor.roles.not_below(gun, &written.roles)?;
            if let (Some(old), Some(new)) = (floor.root, written.root)
                && new < old
            {
                return Err(rolled_back(gun, "root", old, new));
            }
        }
        let path = self.path(gun);
        let header = Header {
            gun: gun.to_owned(),
            files: files
                .iter()
                .map(|(name, b)| (name.clone(), b.len() as u64))
                .collect(),
        };
        let mut head = MAGIC.to_vec();
        serde_json::to_writer(&mut head, &header).map_err(|e| store_err(&path, e))?;
        head.push(b'\n');
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.dir)
            .map_err(|e| store_err(&path, e))?;
        crate::testhook::pause("store-write");
        {
            let mut w = std::io::BufWriter::new(tmp.as_file_mut());
            w.write_all(&head).map_err(|e| store_err(&path, e))?;
            for (_, b) in &files {
                w.write_all(b).map_err(|e| store_err(&path, e))?;
            }
            w.flush().map_err(|e| store_err(&path, e))?;
        }
        tmp.as_file().sync_all().map_err(|e| store_err(&path, e))?;
        tmp.persist(&path).map_err(|e| store_err(&path, e.error))?;
        self.floors().insert(gun.to_owned(), written);
        // A format-1 file of the same repository is superseded.
        remove(&self.path_v1(gun))?;
        self.sync_dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;
    use tufd_tuf::Targets;

    fn targets_file(version: u64) -> bytes::Bytes {
        let mut t = Targets::new(OffsetDateTime::now_utc() + time::Duration::days(30));
        t.version = version;
        Signed::from_parts(t, Vec::new()).unwrap().file()
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

    /// A kept parse gives a role's version only for its own bytes: a
    /// rolled-back file served under the name is read, and refused.
    #[test]
    fn a_kept_parse_gives_the_version_of_its_own_bytes_only() {
        let parsed = |f: &RepositoryFiles| {
            Signed::<Targets>::from_role_file(
                "targets/releases",
                f.delegations["targets/releases"].clone(),
            )
            .unwrap()
        };
        let mut stored = files(3, Some(5));
        stored
            .parsed
            .insert("targets/releases".into(), parsed(&stored));
        assert_eq!(
            Versions::of(&stored).delegations["targets/releases"],
            Some(5)
        );
        // The served file is an older one; the kept parse (v5) is not its.
        let mut served = files(3, Some(4));
        served.parsed = stored.parsed.clone();
        let e = Versions::of(&stored)
            .check_not_older("example.com/app", &served)
            .unwrap_err();
        assert!(
            e.to_string().contains("rolled targets/releases back"),
            "{e}"
        );
        // Its own parse stands in for reading it.
        let mut same = files(3, Some(5));
        same.parsed.insert("targets/releases".into(), parsed(&same));
        assert!(
            Versions::of(&stored)
                .check_not_older("example.com/app", &same)
                .is_ok()
        );
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

    /// A repository with a delegation that lists a tag (two versions).
    fn two_versions() -> (VerifiedRepository, VerifiedRepository) {
        use crate::trust::intent::testkit::Kit;
        let kit = Kit::new();
        let held = kit.held(&["alice"]);
        let first = kit.sign(&kit.repository(&["alice"]), &held, "v1");
        let second = kit.sign(&first, &held, "v2");
        (first.repo, second.repo)
    }

    #[test]
    fn role_files_are_stored_raw_and_read_back_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let store = TrustStore::open(dir.path()).unwrap();
        let (_, repo) = two_versions();
        let gun = "example.com/team/app";
        store.save(gun, &repo).unwrap();
        let file = std::fs::read(store.path(gun)).unwrap();
        assert!(file.starts_with(MAGIC));
        let raw = repo.targets.bytes();
        assert!(file.windows(raw.len()).any(|w| w == raw), "targets not raw");
        let back = store.load(gun).unwrap().expect("stored");
        assert_eq!(back.root, repo.root.bytes());
        assert_eq!(back.files.snapshot, repo.snapshot.bytes());
        assert_eq!(back.files.targets, raw);
        let (name, d) = &repo.delegations[0];
        assert_eq!(back.files.delegations[name], d.file.bytes());
        // Another repository's name in the header is refused.
        std::fs::rename(store.path(gun), store.path("other/repo")).unwrap();
        let e = store.load("other/repo").unwrap_err();
        assert!(e.to_string().contains("not \"other/repo\""), "{e}");
    }

    /// An empty store in a temporary directory, and two versions of one
    /// repository.
    fn store_and_two_versions() -> (
        tempfile::TempDir,
        TrustStore,
        VerifiedRepository,
        VerifiedRepository,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = TrustStore::open(dir.path()).unwrap();
        let (older, newer) = two_versions();
        (dir, store, older, newer)
    }

    /// A write's floor is the store's last write, not a read of the file
    /// back (the daemon is its only writer); a store opened anew (a
    /// restart) takes it from the file.
    #[test]
    fn the_floor_of_a_write_is_the_last_write() {
        let (dir, store, older, newer) = store_and_two_versions();
        let gun = "example.com/team/app";
        store.save(gun, &newer).unwrap();
        // The file is not read back: a damaged copy does not stop the next
        // write (which replaces it), and the last write's versions still
        // refuse an older repository.
        let file = std::fs::read(store.path(gun)).unwrap();
        std::fs::write(store.path(gun), &file[..file.len() - 1]).unwrap();
        let e = store.save(gun, &older).unwrap_err();
        assert!(e.to_string().contains("rolled snapshot back"), "{e}");
        store.save(gun, &newer).unwrap();
        assert!(store.load(gun).unwrap().is_some());
        // After a restart, from the file.
        let reopened = TrustStore::open(dir.path()).unwrap();
        let e = reopened.save(gun, &older).unwrap_err();
        assert!(e.to_string().contains("rolled snapshot back"), "{e}");
        // Forgotten: no floor at all.
        assert!(reopened.forget(gun).unwrap());
        reopened.save(gun, &older).unwrap();
    }

    #[test]
    fn a_truncated_file_and_an_older_repository_are_refused() {
        let (_dir, store, older, newer) = store_and_two_versions();
        let gun = "example.com/team/app";
        store.save(gun, &newer).unwrap();
        let e = store.save(gun, &older).unwrap_err();
        assert!(e.to_string().contains("rolled snapshot back"), "{e}");
        let file = std::fs::read(store.path(gun)).unwrap();
        std::fs::write(store.path(gun), &file[..file.len() - 1]).unwrap();
        let e = store.load(gun).unwrap_err();
        assert!(e.to_string().contains("do not add up"), "{e}");
    }

    #[test]
    fn the_base64_format_is_read_and_replaced_on_the_next_save() {
        let (_dir, store, older, newer) = store_and_two_versions();
        let gun = "example.com/team/app";
        let v1 = serde_json::json!({
            "gun": gun,
            "root": B64.encode(older.root.bytes()),
            "timestamp": "",
            "snapshot": B64.encode(older.snapshot.bytes()),
            "targets": B64.encode(older.targets.bytes()),
            "delegations": older.delegations.iter()
                .map(|(n, d)| (n.clone(), B64.encode(d.file.bytes())))
                .collect::<BTreeMap<_, _>>(),
        });
        std::fs::write(store.path_v1(gun), v1.to_string()).unwrap();
        let back = store.load(gun).unwrap().expect("read from format 1");
        assert_eq!(back.files.targets, older.targets.bytes());
        // Its versions still guard the next save.
        let (name, _) = &older.delegations[0];
        assert_eq!(
            Versions::of(&back.files).delegations[name],
            Some(older.delegations[0].1.file.signed().version)
        );
        store.save(gun, &newer).unwrap();
        assert!(!store.path_v1(gun).exists(), "format 1 replaced");
        let back = store.load(gun).unwrap().expect("stored");
        assert_eq!(back.files.targets, newer.targets.bytes());
        assert!(store.forget(gun).unwrap());
        assert!(store.load(gun).unwrap().is_none());
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
