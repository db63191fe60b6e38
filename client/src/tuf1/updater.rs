//! The TUF 1.0 client workflow (specification §5.3–5.7): root rotation
//! chain, timestamp, snapshot, targets and delegations, each checked for
//! signatures from distinct keys, versions (no rollback, fast-forward
//! recovery on key rotation), expiry (freeze), hashes and lengths. The
//! trusted metadata lives in a directory under non-versioned names.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tufd_tuf1::names::{path_matches, percent_encode};
use tufd_tuf1::{Root, Snapshot, TargetFile, Targets, Timestamp};

use super::checks::{
    Trusted, check_by_root, check_delegations, check_fresh, check_hashes, check_meta, check_sigs,
    parse,
};
use super::fetch::{FetchError, Fetcher};

/// How many root versions one refresh may walk.
const MAX_ROOT_ROTATIONS: u64 = 256;
/// How many delegated roles one target search may visit.
const MAX_DELEGATIONS: usize = 32;
/// Length limits when the referring metadata gives none.
const ROOT_MAX: u64 = 512_000;
const TIMESTAMP_MAX: u64 = 16_384;
const SNAPSHOT_MAX: u64 = 2_000_000;
const TARGETS_MAX: u64 = 5_000_000;

/// Why an update failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("{0}")]
    Fetch(#[from] FetchError),
    #[error("{role}: {reason}")]
    Invalid { role: String, reason: String },
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("target {0:?} is not listed by the repository")]
    NoTarget(String),
}

pub(super) fn invalid(role: &str, reason: impl Into<String>) -> UpdateError {
    UpdateError::Invalid {
        role: role.to_owned(),
        reason: reason.into(),
    }
}

/// The client state: a metadata directory and where to fetch from.
pub struct Updater {
    dir: PathBuf,
    fetcher: Fetcher,
    metadata_url: String,
    root: Trusted<Root>,
    timestamp: Option<Trusted<Timestamp>>,
    snapshot: Option<Trusted<Snapshot>>,
    targets: BTreeMap<String, Trusted<Targets>>,
    now: OffsetDateTime,
}

impl Updater {
    /// Loads the trusted root (`DIR/root.json`, which must verify by its
    /// own threshold) and whatever other trusted metadata verifies with it.
    pub fn load(dir: &Path, metadata_url: &str, fetcher: Fetcher) -> Result<Self, UpdateError> {
        let path = dir.join("root.json");
        let bytes = std::fs::read(&path).map_err(|e| UpdateError::Io(path, e))?;
        let root: Trusted<Root> = parse("root", &bytes)?;
        check_by_root(&root.md.signed, "root", &root)?;
        let mut u = Updater {
            dir: dir.to_owned(),
            fetcher,
            metadata_url: metadata_url.trim_end_matches('/').to_owned(),
            root,
            timestamp: None,
            snapshot: None,
            targets: BTreeMap::new(),
            now: OffsetDateTime::now_utc(),
        };
        // Local timestamp and snapshot are kept only for rollback checks;
        // ones that do not verify are ignored.
        if let Ok(b) = std::fs::read(dir.join("timestamp.json"))
            && let Ok(t) = parse::<Timestamp>("timestamp", &b)
            && check_by_root(&u.root.md.signed, "timestamp", &t).is_ok()
        {
            u.timestamp = Some(t);
        }
        if let Ok(b) = std::fs::read(dir.join("snapshot.json"))
            && let Ok(s) = parse::<Snapshot>("snapshot", &b)
            && check_by_root(&u.root.md.signed, "snapshot", &s).is_ok()
        {
            u.snapshot = Some(s);
        }
        Ok(u)
    }

    fn persist(&self, name: &str, bytes: &[u8]) -> Result<(), UpdateError> {
        write_atomically(&self.dir, &self.dir.join(name), bytes)
    }

    fn url(&self, role: &str, version: Option<u64>) -> String {
        match version {
            Some(v) if self.root.md.signed.consistent_snapshot == Some(true) || role == "root" => {
                format!("{}/{v}.{}.json", self.metadata_url, percent_encode(role))
            }
            _ => format!("{}/{}.json", self.metadata_url, percent_encode(role)),
        }
    }

    /// The full metadata update: root chain, timestamp, snapshot, targets.
    pub async fn refresh(&mut self) -> Result<(), UpdateError> {
        self.update_root().await?;
        self.update_timestamp().await?;
        self.update_snapshot().await?;
        self.load_targets("targets", None).await?;
        Ok(())
    }

    async fn update_root(&mut self) -> Result<(), UpdateError> {
        let original = self.root.md.signed.clone();
        for _ in 0..MAX_ROOT_ROTATIONS {
            let next = self.root.md.signed.common.version + 1;
            let bytes = match self
                .fetcher
                .get(&self.url("root", Some(next)), ROOT_MAX)
                .await
            {
                Ok(b) => b,
                Err(FetchError::NotFound(_)) => break,
                Err(e) => return Err(e.into()),
            };
            let new: Trusted<Root> = parse("root", &bytes)?;
            // Signed by the trusted root's threshold and by its own.
            check_by_root(&self.root.md.signed, "root", &new).map_err(|e| {
                invalid(
                    "root",
                    format!("version {next} not signed by the trusted root's keys: {e}"),
                )
            })?;
            check_by_root(&new.md.signed, "root", &new).map_err(|e| {
                invalid(
                    "root",
                    format!("version {next} not signed by its own keys: {e}"),
                )
            })?;
            if new.md.signed.common.version != next {
                return Err(invalid(
                    "root",
                    format!(
                        "{next}.root.json holds version {}",
                        new.md.signed.common.version
                    ),
                ));
            }
            self.root = new;
            self.persist("root.json", &self.root.bytes)?;
        }
        check_fresh("root", &self.root, self.now)?;
        // Fast-forward attack recovery (§5.3.11): new timestamp or snapshot
        // keys void the trusted timestamp and snapshot, both.
        let rotated = |role: &str| original.roles.get(role) != self.root.md.signed.roles.get(role);
        if rotated("timestamp") || rotated("snapshot") {
            self.timestamp = None;
            self.snapshot = None;
            for file in ["timestamp.json", "snapshot.json"] {
                let path = self.dir.join(file);
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(UpdateError::Io(path, e));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    async fn update_timestamp(&mut self) -> Result<(), UpdateError> {
        let bytes = self
            .fetcher
            .get(&self.url("timestamp", None), TIMESTAMP_MAX)
            .await?;
        let new: Trusted<Timestamp> = parse("timestamp", &bytes)?;
        check_by_root(&self.root.md.signed, "timestamp", &new)?;
        let snap = new
            .md
            .signed
            .meta
            .get("snapshot.json")
            .ok_or_else(|| invalid("timestamp", "lists no snapshot.json"))?
            .clone();
        if let Some(old) = &self.timestamp {
            let (ov, nv) = (old.md.signed.common.version, new.md.signed.common.version);
            if nv < ov {
                return Err(invalid(
                    "timestamp",
                    format!("rollback from version {ov} to {nv}"),
                ));
            }
            let old_snap = old
                .md
                .signed
                .meta
                .get("snapshot.json")
                .map_or(0, |m| m.version);
            if snap.version < old_snap {
                return Err(invalid(
                    "timestamp",
                    format!(
                        "snapshot rollback from version {old_snap} to {}",
                        snap.version
                    ),
                ));
            }
            if nv == ov {
                // Nothing new; keep what is trusted.
                check_fresh("timestamp", old, self.now)?;
                return Ok(());
            }
        }
        check_fresh("timestamp", &new, self.now)?;
        self.persist("timestamp.json", &new.bytes)?;
        self.timestamp = Some(new);
        Ok(())
    }

    async fn update_snapshot(&mut self) -> Result<(), UpdateError> {
        let meta = self
            .timestamp
            .as_ref()
            .and_then(|t| t.md.signed.meta.get("snapshot.json"))
            .cloned()
            .ok_or_else(|| invalid("snapshot", "no trusted timestamp"))?;
        if let Some(s) = &self.snapshot
            && s.md.signed.common.version == meta.version
            && check_meta("snapshot", &s.bytes, &meta).is_ok()
        {
            check_fresh("snapshot", s, self.now)?;
            return Ok(());
        }
        let limit = meta.length.unwrap_or(SNAPSHOT_MAX);
        let bytes = self
            .fetcher
            .get(&self.url("snapshot", Some(meta.version)), limit)
            .await?;
        check_meta("snapshot", &bytes, &meta)?;
        let new: Trusted<Snapshot> = parse("snapshot", &bytes)?;
        check_by_root(&self.root.md.signed, "snapshot", &new)?;
        if new.md.signed.common.version != meta.version {
            return Err(invalid(
                "snapshot",
                format!(
                    "version {}, timestamp says {}",
                    new.md.signed.common.version, meta.version
                ),
            ));
        }
        if let Some(old) = &self.snapshot {
            for (name, m) in &old.md.signed.meta {
                match new.md.signed.meta.get(name) {
                    None => return Err(invalid("snapshot", format!("{name} no longer listed"))),
                    Some(n) if n.version < m.version => {
                        return Err(invalid(
                            "snapshot",
                            format!(
                                "{name} rolled back from version {} to {}",
                                m.version, n.version
                            ),
                        ));
                    }
                    _ => {}
                }
            }
        }
        check_fresh("snapshot", &new, self.now)?;
        self.persist("snapshot.json", &new.bytes)?;
        self.snapshot = Some(new);
        Ok(())
    }

    /// Loads targets role `role` (top-level, or delegated by `parent`).
    async fn load_targets(&mut self, role: &str, parent: Option<&str>) -> Result<(), UpdateError> {
        if let Some(t) = self.targets.get(role) {
            // Loaded earlier, maybe through another delegator: it must also
            // verify with the keys of the one that leads here now.
            return self.check_delegated(role, parent, t);
        }
        let meta = self
            .snapshot
            .as_ref()
            .and_then(|s| s.md.signed.meta.get(&format!("{role}.json")))
            .cloned()
            .ok_or_else(|| invalid(role, "not listed in snapshot"))?;
        let file = format!("{}.json", percent_encode(role));
        // A local copy that still matches the snapshot is used as is.
        let local = std::fs::read(self.dir.join(&file)).ok();
        let bytes = match local {
            Some(b)
                if check_meta(role, &b, &meta).is_ok()
                    && parse::<Targets>(role, &b)
                        .is_ok_and(|t| t.md.signed.common.version == meta.version) =>
            {
                b
            }
            _ => {
                let limit = meta.length.unwrap_or(TARGETS_MAX);
                self.fetcher
                    .get(&self.url(role, Some(meta.version)), limit)
                    .await?
            }
        };
        check_meta(role, &bytes, &meta)?;
        let new: Trusted<Targets> = parse(role, &bytes)?;
        self.check_delegated(role, parent, &new)?;
        check_delegations(role, &new.md.signed)?;
        if new.md.signed.common.version != meta.version {
            return Err(invalid(
                role,
                format!(
                    "version {}, snapshot says {}",
                    new.md.signed.common.version, meta.version
                ),
            ));
        }
        check_fresh(role, &new, self.now)?;
        self.persist(&file, &new.bytes)?;
        self.targets.insert(role.to_owned(), new);
        Ok(())
    }

    /// Checks targets role `role`'s signatures: by the root's targets keys
    /// (top-level), or by the keys and threshold `parent` delegates to it.
    fn check_delegated(
        &self,
        role: &str,
        parent: Option<&str>,
        t: &Trusted<Targets>,
    ) -> Result<(), UpdateError> {
        let Some(p) = parent else {
            return check_by_root(&self.root.md.signed, "targets", t);
        };
        let parent = &self.targets[p].md.signed;
        let (keys, keyids, threshold) = parent
            .delegation_keys(role)
            .ok_or_else(|| invalid(role, format!("{p} does not delegate to it")))?;
        check_sigs(role, &t.bytes, &t.md.signatures, keys, &keyids, threshold)
            .map_err(|e| invalid(role, format!("as delegated by {p}: {e}")))
    }

    /// Finds a target by pre-order depth-first search of the delegation
    /// graph (terminating delegations stop it; hash bins pick one role).
    pub async fn target_info(&mut self, path: &str) -> Result<TargetFile, UpdateError> {
        let mut stack: Vec<(String, Option<String>)> = vec![("targets".into(), None)];
        let mut visited = HashSet::new();
        while let Some((role, parent)) = stack.pop() {
            if visited.len() >= MAX_DELEGATIONS || !visited.insert(role.clone()) {
                continue;
            }
            self.load_targets(&role, parent.as_deref()).await?;
            let t = &self.targets[&role].md.signed;
            if let Some(info) = t.targets.get(path) {
                return Ok(info.clone());
            }
            let Some(d) = &t.delegations else { continue };
            let mut children = Vec::new();
            if let Some(s) = &d.succinct_roles {
                children.push((s.bin_for(path), false));
            }
            for r in d.roles.iter().flatten() {
                let matches = match (&r.paths, &r.path_hash_prefixes) {
                    (Some(paths), _) => paths.iter().any(|p| path_matches(p, path)),
                    (None, Some(prefixes)) => {
                        let h = hex::encode(Sha256::digest(path.as_bytes()));
                        prefixes.iter().any(|p| h.starts_with(p.as_str()))
                    }
                    (None, None) => false,
                };
                if matches {
                    children.push((r.name.clone(), r.terminating));
                    if r.terminating {
                        // Roles after a matching terminating one are not
                        // searched, nor anything left on the stack.
                        stack.clear();
                        break;
                    }
                }
            }
            for (name, _) in children.into_iter().rev() {
                stack.push((name, Some(role.clone())));
            }
        }
        Err(UpdateError::NoTarget(path.to_owned()))
    }

    /// Downloads a target into `target_dir` (file name: the percent-encoded
    /// path), unless a file there already matches.
    pub async fn download(
        &mut self,
        path: &str,
        info: &TargetFile,
        target_base_url: &str,
        target_dir: &Path,
    ) -> Result<PathBuf, UpdateError> {
        if info.hashes.is_empty() {
            return Err(invalid(path, "target lists no hashes"));
        }
        let dest = target_dir.join(target_file_name(path));
        if let Ok(existing) = std::fs::read(&dest)
            && existing.len() as u64 == info.length
            && check_hashes(path, &existing, Some(&info.hashes)).is_ok()
        {
            return Ok(dest);
        }
        let base = target_base_url.trim_end_matches('/');
        let url = if self.root.md.signed.consistent_snapshot == Some(true) {
            let hash = info
                .hashes
                .get("sha256")
                .or_else(|| info.hashes.values().next())
                .ok_or_else(|| invalid(path, "target has no hashes"))?;
            match path.rsplit_once('/') {
                Some((dir, name)) => format!("{base}/{dir}/{hash}.{name}"),
                None => format!("{base}/{hash}.{path}"),
            }
        } else {
            format!("{base}/{path}")
        };
        let bytes = self.fetcher.get(&url, info.length).await?;
        if bytes.len() as u64 != info.length {
            return Err(invalid(
                path,
                format!("{} bytes, expected {}", bytes.len(), info.length),
            ));
        }
        check_hashes(path, &bytes, Some(&info.hashes))?;
        std::fs::create_dir_all(target_dir)
            .map_err(|e| UpdateError::Io(target_dir.to_owned(), e))?;
        write_atomically(target_dir, &dest, &bytes)?;
        Ok(dest)
    }
}

/// Writes `path` (in `dir`) so that a crash leaves the old or the new
/// content: a temporary file, fsync, rename, fsync of the directory.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), UpdateError> {
    let io = |e| UpdateError::Io(path.to_owned(), e);
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| UpdateError::Io(dir.to_owned(), e))
}

/// The file name of a downloaded target: its percent-encoded path, with
/// `.` and `..` (which percent-encoding keeps) encoded too so that no
/// target names the directory or its parent.
fn target_file_name(path: &str) -> String {
    match path {
        "." => "%2E".to_owned(),
        ".." => "%2E%2E".to_owned(),
        _ => percent_encode(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn target_file_names_stay_inside_the_target_directory() {
        assert_eq!(target_file_name("a/b.txt"), "a%2Fb.txt");
        assert_eq!(target_file_name("../x"), "..%2Fx");
        assert_eq!(target_file_name(".."), "%2E%2E");
        assert_eq!(target_file_name("."), "%2E");
    }
}
