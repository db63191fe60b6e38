//! A TUF 1.0 repository directory: its layout, reading the published
//! state, and publishing a new one atomically.
//!
//! ```text
//! DIR/metadata/N.root.json       every root version (clients walk the chain)
//! DIR/metadata/N.targets.json    consistent snapshots of targets roles
//! DIR/metadata/N.snapshot.json
//! DIR/metadata/timestamp.json    the entry point, replaced last by rename
//! DIR/targets/[PATH/]SHA256.NAME target files under their hash
//! DIR/.tufd.lock                 one writer at a time (advisory lock)
//! ```
//!
//! A publish writes every new file first (temp, fsync, rename, fsync of the
//! directory) and `timestamp.json` last, so a client sees the old version
//! or the new one, and a crash leaves the old one published. A new root
//! comes after `timestamp.json` when the roles it re-keys are signed by
//! their old keys too, else just before it (see [`NewRoot`]). Files a
//! published version refers to are never rewritten.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tufd_tuf::tuf1::names::percent_encode;
use tufd_tuf::tuf1::{MetaFile, Metadata, Role, Root, Snapshot, Targets, Timestamp, verify};

use super::dir::{Beneath, Dir};
use super::error::RepoError;

/// How many root versions a repository may have (a bound on the walk).
const MAX_ROOT_VERSIONS: u64 = 100_000;

/// The directories of a repository, opened once: every file operation
/// goes through the directory handle, never by path (see [`super::dir`]).
#[derive(Debug, Clone)]
pub struct Layout {
    handle: Dir,
}

impl Layout {
    /// Opens the repository directory `at` (with `create`, making it).
    pub fn open(at: &Beneath, create: bool) -> Result<Self, RepoError> {
        Ok(Self {
            handle: at.open_dir(create)?,
        })
    }

    /// The repository directory.
    pub fn dir(&self) -> &Path {
        self.handle.path()
    }

    /// `path` (one of this layout's files) relative to the directory.
    fn rel<'a>(&self, path: &'a Path) -> Result<&'a Path, RepoError> {
        path.strip_prefix(self.dir()).map_err(|_| {
            RepoError::Internal(format!(
                "{} is not in the repository {}",
                path.display(),
                self.dir().display()
            ))
        })
    }

    /// Reads one of the repository's files.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>, RepoError> {
        self.handle.read(self.rel(path)?)
    }

    /// Whether one of the repository's files exists.
    pub fn exists(&self, path: &Path) -> bool {
        self.rel(path).is_ok_and(|r| self.handle.exists(r))
    }

    /// Writes one of the repository's files atomically.
    pub fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), RepoError> {
        self.handle.write_atomic(self.rel(path)?, bytes)
    }

    /// `DIR/metadata`.
    pub fn metadata_dir(&self) -> PathBuf {
        self.dir().join("metadata")
    }

    /// `DIR/targets`.
    pub fn targets_dir(&self) -> PathBuf {
        self.dir().join("targets")
    }

    /// The file of `role` at `version` (`timestamp.json` for timestamp).
    pub fn metadata_file(&self, role: &str, version: u64) -> PathBuf {
        if role == "timestamp" {
            self.metadata_dir().join("timestamp.json")
        } else {
            self.metadata_dir()
                .join(format!("{version}.{}.json", percent_encode(role)))
        }
    }

    /// Where a target file with this SHA-256 is published.
    pub fn target_file(&self, name: &str, sha256: &str) -> PathBuf {
        let (parent, base) = match name.rsplit_once('/') {
            Some((p, b)) => (Some(p), b),
            None => (None, name),
        };
        let mut path = self.targets_dir();
        if let Some(p) = parent {
            path.push(p);
        }
        path.join(format!("{sha256}.{base}"))
    }

    /// Removes the temporary files writers that died left anywhere in the
    /// repository (see [`Dir::sweep_temp_files`]); returns how many. The
    /// caller holds the writer lock.
    pub fn sweep_temp_files(&self) -> Result<u64, RepoError> {
        self.handle.sweep_temp_files()
    }

    /// Takes the repository's writer lock, or fails at once when another
    /// process holds it.
    pub fn lock(&self) -> Result<WriterLock, RepoError> {
        let path = self.dir().join(".tufd.lock");
        let file = self.handle.create_file(".tufd.lock")?;
        // flock(2), released when the lock (and its file) is dropped.
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(WriterLock { _lock: lock }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(RepoError::Busy(self.dir().to_owned())),
            Err((_, e)) => Err(RepoError::io(&path, "locking the repository")(e.into())),
        }
    }
}

/// The repository's writer lock, released on drop.
pub struct WriterLock {
    _lock: nix::fcntl::Flock<File>,
}

/// A role's metadata with the exact bytes it was read from or will be
/// written as.
#[derive(Debug, Clone)]
pub struct RoleFile<T> {
    /// The parsed metadata.
    pub metadata: Metadata<T>,
    /// Its file bytes.
    pub bytes: Vec<u8>,
}

impl<T: Role> RoleFile<T> {
    /// Serializes `metadata`.
    pub fn new(metadata: Metadata<T>) -> Result<Self, RepoError> {
        let bytes = metadata.to_bytes().map_err(RepoError::metadata(T::TYPE))?;
        Ok(Self { metadata, bytes })
    }

    /// The bytes its signatures cover: the canonical form of the parsed
    /// `signed` object (unknown fields kept), as python-tuf computes it,
    /// encoded straight from the model (a `serde_json::Value` tree of a
    /// large targets role costs hundreds of megabytes).
    pub fn signed_message(&self) -> Result<Vec<u8>, RepoError> {
        self.metadata
            .canonical_signed()
            .map_err(RepoError::metadata(T::TYPE))
    }

    /// The role's version.
    pub fn version(&self) -> u64 {
        self.metadata.signed.common().version
    }

    /// Its entry in snapshot (version only, as python-tuf writes) .
    pub fn meta_version(&self) -> MetaFile {
        MetaFile {
            version: self.version(),
            length: None,
            hashes: None,
            unrecognized: Default::default(),
        }
    }

    /// Its entry with length and SHA-256 (timestamp's snapshot entry).
    pub fn meta_hashed(&self) -> MetaFile {
        MetaFile {
            length: Some(self.bytes.len() as u64),
            hashes: Some(BTreeMap::from([(
                "sha256".to_owned(),
                hex::encode(Sha256::digest(&self.bytes)),
            )])),
            ..self.meta_version()
        }
    }
}

/// What a repository directory publishes now.
#[derive(Debug, Clone)]
pub struct Published {
    /// The newest root.
    pub root: RoleFile<Root>,
    /// Top-level targets.
    pub targets: RoleFile<Targets>,
    /// Snapshot.
    pub snapshot: RoleFile<Snapshot>,
    /// Timestamp.
    pub timestamp: RoleFile<Timestamp>,
}

pub(super) fn read_role<T: Role>(layout: &Layout, path: &Path) -> Result<RoleFile<T>, RepoError> {
    let bytes = layout.read(path)?;
    let metadata = Metadata::<T>::from_bytes(&bytes)
        .map_err(RepoError::metadata(path.display().to_string()))?;
    Ok(RoleFile { metadata, bytes })
}

/// Checks a role's signatures against the keys and threshold root lists.
pub fn check_top_level<T: Role>(root: &Root, file: &RoleFile<T>) -> Result<(), RepoError> {
    let role = T::TYPE;
    let keys = root
        .roles
        .get(role)
        .ok_or_else(|| RepoError::Internal(format!("root lists no {role} role")))?;
    let message = file.signed_message()?;
    verify::check_threshold(
        role,
        &message,
        &file.metadata.signatures,
        &root.keys,
        &keys.keyids,
        keys.threshold,
    )
    .map_err(RepoError::metadata(role))
}

/// The roles the daemon keeps fresh, and the root that lists their keys.
#[derive(Debug, Clone)]
pub struct Online {
    /// The newest root.
    pub root: RoleFile<Root>,
    /// Snapshot.
    pub snapshot: RoleFile<Snapshot>,
    /// Timestamp.
    pub timestamp: RoleFile<Timestamp>,
}

impl Online {
    /// Reads root, timestamp and snapshot (not the targets roles, which
    /// may be large) and checks their signatures.
    pub fn read(layout: &Layout) -> Result<Self, RepoError> {
        let root = read_newest_root(layout)?;
        let (timestamp, snapshot) = read_timestamp_snapshot(layout, &root)?;
        Ok(Online {
            root,
            snapshot,
            timestamp,
        })
    }

    /// The files the published version's online roles refer to.
    pub fn referenced(&self, layout: &Layout) -> Vec<PathBuf> {
        let mut out = vec![
            layout.metadata_file("root", self.root.version()),
            layout.metadata_file("snapshot", self.snapshot.version()),
        ];
        for (name, meta) in &self.snapshot.metadata.signed.meta {
            if let Some(role) = name.strip_suffix(".json") {
                out.push(layout.metadata_file(role, meta.version));
            }
        }
        out
    }
}

pub(super) fn read_newest_root(layout: &Layout) -> Result<RoleFile<Root>, RepoError> {
    if !Published::exists(layout) {
        return Err(RepoError::NotFound(format!(
            "{} holds no TUF repository (no metadata/1.root.json); create one with `tufctl tuf init`",
            layout.dir().display()
        )));
    }
    let mut version = 1;
    while version < MAX_ROOT_VERSIONS && layout.exists(&layout.metadata_file("root", version + 1)) {
        version += 1;
    }
    let root: RoleFile<Root> = read_role(layout, &layout.metadata_file("root", version))?;
    check_top_level(&root.metadata.signed, &root)?;
    Ok(root)
}

/// The version of `file` (`snapshot.json`, `targets.json`) that `meta`,
/// the listing of `listed_in`, names.
pub(super) fn listed_version(
    meta: &BTreeMap<String, MetaFile>,
    file: &str,
    listed_in: &str,
) -> Result<u64, RepoError> {
    meta.get(file)
        .map(|m| m.version)
        .ok_or_else(|| RepoError::Internal(format!("{listed_in} lists no {file}")))
}

fn read_timestamp_snapshot(
    layout: &Layout,
    root: &RoleFile<Root>,
) -> Result<(RoleFile<Timestamp>, RoleFile<Snapshot>), RepoError> {
    let timestamp: RoleFile<Timestamp> = read_role(layout, &layout.metadata_file("timestamp", 0))?;
    check_top_level(&root.metadata.signed, &timestamp)?;
    let version = listed_version(
        &timestamp.metadata.signed.meta,
        "snapshot.json",
        "timestamp",
    )?;
    let snapshot: RoleFile<Snapshot> =
        read_role(layout, &layout.metadata_file("snapshot", version))?;
    check_top_level(&root.metadata.signed, &snapshot)?;
    Ok((timestamp, snapshot))
}

impl Published {
    /// Whether `layout` holds a repository (its first root exists).
    pub fn exists(layout: &Layout) -> bool {
        layout.exists(&layout.metadata_file("root", 1))
    }

    /// Reads the published state and checks every role's signatures
    /// against the newest root, so a directory changed behind tufd's back
    /// is noticed before it is built on.
    pub fn read(layout: &Layout) -> Result<Self, RepoError> {
        let root = read_newest_root(layout)?;
        let (timestamp, snapshot) = read_timestamp_snapshot(layout, &root)?;
        let version = listed_version(&snapshot.metadata.signed.meta, "targets.json", "snapshot")?;
        let targets: RoleFile<Targets> =
            read_role(layout, &layout.metadata_file("targets", version))?;
        check_top_level(&root.metadata.signed, &targets)?;
        Ok(Published {
            root,
            targets,
            snapshot,
            timestamp,
        })
    }

    /// Like [`Published::read`], without checking the signatures of the
    /// targets role (for reports, never to build on).
    pub fn read_for_status(layout: &Layout) -> Result<Self, RepoError> {
        let root = read_newest_root(layout)?;
        let (timestamp, snapshot) = read_timestamp_snapshot(layout, &root)?;
        let version = listed_version(&snapshot.metadata.signed.meta, "targets.json", "snapshot")?;
        let targets = read_role(layout, &layout.metadata_file("targets", version))?;
        Ok(Published {
            root,
            targets,
            snapshot,
            timestamp,
        })
    }

    /// Reads delegated targets role `name` at the version snapshot lists.
    fn read_delegated_unverified(
        &self,
        layout: &Layout,
        name: &str,
    ) -> Result<RoleFile<Targets>, RepoError> {
        let meta = self
            .snapshot
            .metadata
            .signed
            .meta
            .get(&format!("{name}.json"))
            .ok_or_else(|| RepoError::NotFound(format!("snapshot lists no role {name:?}")))?;
        read_role(layout, &layout.metadata_file(name, meta.version))
    }

    /// Reads delegated targets role `name` at the version snapshot lists
    /// and checks it against the keys `parent` (the targets role that
    /// delegates to it, itself checked) lists for it.
    pub fn read_delegated(
        &self,
        layout: &Layout,
        name: &str,
        parent: &Targets,
    ) -> Result<RoleFile<Targets>, RepoError> {
        let file = self.read_delegated_unverified(layout, name)?;
        let (keys, keyids, threshold) = parent.delegation_keys(name).ok_or_else(|| {
            RepoError::NotFound(format!("the repository delegates no role {name:?}"))
        })?;
        let message = file.signed_message()?;
        verify::check_threshold(
            name,
            &message,
            &file.metadata.signatures,
            keys,
            &keyids,
            threshold,
        )
        .map_err(RepoError::metadata(name))?;
        Ok(file)
    }
}

/// Writes `bytes` to `path` atomically, mode 0600 (see
/// [`Dir::write_private`]), its directory (made 0700 when missing) opened
/// as given. For the daemon's own state files; repository files go through
/// [`Layout::write`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RepoError> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(RepoError::Internal(format!(
            "{} is no file path",
            path.display()
        )));
    };
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(dir)
        .map_err(RepoError::io(dir, "creating the directory"))?;
    Beneath::new(dir.to_owned(), PathBuf::new())
        .open_dir(false)?
        .write_private(Path::new(name), bytes)
}

/// A target file to copy into `targets/`, checked against its hash.
#[derive(Debug, Clone)]
pub struct TargetCopy {
    /// The file to copy (opened below the place it was allowed from).
    pub source: Beneath,
    /// Where it is published.
    pub dest: PathBuf,
    /// Its SHA-256 (hex), as the metadata lists it.
    pub sha256: String,
    /// Its length, as the metadata lists it.
    pub length: u64,
}

/// Streams a file through SHA-256: (hex digest, length).
pub fn hash_file(source: &Beneath) -> Result<(String, u64), RepoError> {
    let path = &source.path();
    let mut f = source.open_file()?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let r = std::io::Read::read(&mut f, &mut buf)
            .map_err(RepoError::io(path, "reading the target file"))?;
        if r == 0 {
            return Ok((hex::encode(h.finalize()), n));
        }
        h.update(&buf[..r]);
        n += r as u64;
    }
}

impl TargetCopy {
    /// Copies the file to a temporary file beside its destination, checks
    /// that the copy has the listed hash and length (the source may have
    /// changed since it was hashed), and renames it into place.
    fn write(&self, layout: &Layout) -> Result<(), RepoError> {
        let source = self.source.path();
        let mut src = self.source.open_file()?;
        let dest = layout.rel(&self.dest)?;
        layout.handle.write_with(dest, |tmp| {
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut n = 0u64;
            loop {
                let r = std::io::Read::read(&mut src, &mut buf)
                    .map_err(RepoError::io(&source, "reading the target file"))?;
                if r == 0 {
                    break;
                }
                h.update(&buf[..r]);
                tmp.write_all(&buf[..r])
                    .map_err(RepoError::io(&self.dest, "writing"))?;
                n += r as u64;
            }
            if hex::encode(h.finalize()) != self.sha256 || n != self.length {
                return Err(RepoError::InvalidRequest(format!(
                    "{} changed while it was being added; add it again",
                    source.display()
                )));
            }
            Ok(())
        })
    }
}

/// A new root version in a publish, and where it is written.
#[derive(Debug)]
pub enum NewRoot {
    /// Every role whose keys the new root changes is signed by its old
    /// keys too (see [`super::sign::cosign_for_old_root`]): the new version
    /// verifies under the old root and the new one, so the root is written
    /// after `timestamp.json`. Until then clients read the new version
    /// under the old root; a crash before it leaves the rotation undone and
    /// the repository whole.
    AfterTimestamp(PathBuf, Vec<u8>),
    /// The daemon does not hold a threshold of some changed role's old keys
    /// (a lost token): the root is written just before `timestamp.json`,
    /// and for that moment clients that find it reject the previous
    /// timestamp, snapshot or targets. A crash there is completed by
    /// [`super::interrupted`] under the writer lock before anything else.
    BeforeTimestamp(PathBuf, Vec<u8>),
}

/// A new version to publish: files in order, timestamp (and a bridged new
/// root) last.
#[derive(Debug, Default)]
pub struct Publish {
    /// Target files, copied first.
    pub copies: Vec<TargetCopy>,
    /// Versioned metadata and target files, written first.
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// A new root version, written where [`NewRoot`] says.
    pub root: Option<NewRoot>,
    /// `timestamp.json`, written last (but for a bridged root).
    pub timestamp: Option<Vec<u8>>,
}

impl Publish {
    /// Writes every file, then `timestamp.json`, a new root before or
    /// after it as [`NewRoot`] says. `published` lists the files the
    /// current version refers to, which are never rewritten.
    pub fn write(self, layout: &Layout, published: &[PathBuf]) -> Result<(), RepoError> {
        for copy in &self.copies {
            copy.write(layout)?;
        }
        let (before, after) = match self.root {
            Some(NewRoot::BeforeTimestamp(p, b)) => (Some((p, b)), None),
            Some(NewRoot::AfterTimestamp(p, b)) => (None, Some((p, b))),
            None => (None, None),
        };
        for (path, bytes) in self.files.iter().chain(before.iter()) {
            if published.contains(path) {
                return Err(RepoError::Internal(format!(
                    "refusing to rewrite {}, which the published version refers to",
                    path.display()
                )));
            }
            layout.write(path, bytes)?;
        }
        if let Some(ts) = self.timestamp {
            #[cfg(feature = "test-hooks")]
            hold("TUFD_TEST_TUF1_HOLD");
            layout.write(&layout.metadata_file("timestamp", 0), &ts)?;
        }
        if let Some((path, bytes)) = after {
            #[cfg(feature = "test-hooks")]
            hold("TUFD_TEST_TUF1_HOLD_ROOT");
            layout.write(&path, &bytes)?;
        }
        Ok(())
    }
}

/// Test hook for the crash and interleaving tests: with `VAR=PATH` in the
/// daemon's environment, a publish creates `PATH.reached` and waits (at
/// most a minute) while `PATH` exists. `TUFD_TEST_TUF1_HOLD`: its new
/// files are written (a root written before the timestamp among them), it
/// is about to switch `timestamp.json`; `TUFD_TEST_TUF1_HOLD_ROOT`: it
/// switched `timestamp.json` and is about to write a bridged new root.
/// Only in builds with the `test-hooks` feature.
#[cfg(feature = "test-hooks")]
fn hold(var: &str) {
    let Some(hold) = std::env::var_os(var).map(PathBuf::from) else {
        return;
    };
    let mut reached = hold.clone().into_os_string();
    reached.push(".reached");
    let _ = std::fs::write(&reached, b"");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while hold.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

impl Published {
    /// The metadata files the published version refers to.
    pub fn referenced(&self, layout: &Layout) -> Vec<PathBuf> {
        Online {
            root: self.root.clone(),
            snapshot: self.snapshot.clone(),
            timestamp: self.timestamp.clone(),
        }
        .referenced(layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(d: &tempfile::TempDir) -> Layout {
        Layout::open(&Beneath::new(d.path().to_owned(), "r".into()), true).unwrap()
    }

    #[test]
    fn layout_names() {
        let d = tempfile::tempdir().unwrap();
        let l = layout(&d);
        let r = d.path().join("r");
        assert_eq!(l.metadata_file("root", 3), r.join("metadata/3.root.json"));
        assert_eq!(
            l.metadata_file("timestamp", 9),
            r.join("metadata/timestamp.json")
        );
        assert_eq!(
            l.metadata_file("a/b c", 2),
            r.join("metadata/2.a%2Fb%20c.json")
        );
        assert_eq!(
            l.target_file("x/y/z.tgz", "ab"),
            r.join("targets/x/y/ab.z.tgz")
        );
        assert_eq!(l.target_file("z", "ab"), r.join("targets/ab.z"));
    }

    #[test]
    fn one_writer_at_a_time() {
        let d = tempfile::tempdir().unwrap();
        let l = layout(&d);
        let first = l.lock().unwrap();
        assert!(matches!(l.lock(), Err(RepoError::Busy(_))));
        drop(first);
        l.lock().unwrap();
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m/timestamp.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(d.path().join("m")).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp files left");
        let l = layout(&d);
        let t = l.metadata_file("timestamp", 0);
        l.write(&t, b"one").unwrap();
        l.write(&t, b"two").unwrap();
        assert_eq!(l.read(&t).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(l.metadata_dir()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp files left");
        assert!(l.read(Path::new("/etc/passwd")).is_err());
    }
}
