//! Named, synchronous edits of a TUF 1.0 repository: each takes the
//! published state, signs what changes with the keys it is given, and
//! returns the files of the next version. No I/O beyond the signers' (token
//! calls block: run these on a blocking thread).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tufd_tuf::DigestSigner;
use tufd_tuf::tuf1::{
    Common, Expires, Key, Metadata, Role, RoleKeys, Root, Snapshot, TargetFile, Targets, Timestamp,
    Unrecognized,
};

use super::error::RepoError;
use super::files::{Layout, Online, Publish, Published, RoleFile, TargetCopy, check_top_level};

/// The four top-level roles.
pub const TOP_LEVEL: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

/// How long each role's metadata stays valid when it is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiryPolicy {
    /// Root, seconds.
    pub root: u64,
    /// Targets (and delegated roles), seconds.
    pub targets: u64,
    /// Snapshot, seconds.
    pub snapshot: u64,
    /// Timestamp, seconds.
    pub timestamp: u64,
}

impl Default for ExpiryPolicy {
    /// One year, three months, a week, a day.
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Self {
            root: 365 * DAY,
            targets: 90 * DAY,
            snapshot: 7 * DAY,
            timestamp: DAY,
        }
    }
}

impl ExpiryPolicy {
    /// The period of `role` (delegated roles: the targets period).
    pub fn period(&self, role: &str) -> Duration {
        Duration::from_secs(match role {
            "root" => self.root,
            "snapshot" => self.snapshot,
            "timestamp" => self.timestamp,
            _ => self.targets,
        })
    }

    /// Sets one role's period; an error names the roles there are.
    pub fn set(&mut self, role: &str, seconds: u64) -> Result<(), RepoError> {
        if seconds == 0 {
            return Err(RepoError::InvalidRequest(format!(
                "expiry of {role} must be at least one second"
            )));
        }
        match role {
            "root" => self.root = seconds,
            "targets" => self.targets = seconds,
            "snapshot" => self.snapshot = seconds,
            "timestamp" => self.timestamp = seconds,
            other => {
                return Err(RepoError::InvalidRequest(format!(
                    "no role {other:?}: expiry is set for root, targets, snapshot or timestamp"
                )));
            }
        }
        Ok(())
    }

    /// When metadata of `role` signed at `now` expires.
    pub fn expires(&self, role: &str, now: OffsetDateTime) -> Expires {
        Expires::at(now + self.period(role))
    }

    /// When metadata of `role` expiring at `expires` is due to be signed
    /// again: half its period before it expires.
    pub fn due(&self, role: &str, expires: Expires) -> OffsetDateTime {
        expires.time() - self.period(role) / 2
    }
}

/// Token keys by TUF 1.0 key ID.
#[derive(Clone, Default)]
pub struct Signers(HashMap<String, Arc<dyn DigestSigner + Send + Sync>>);

impl Signers {
    /// Adds a signer under the ID of its key.
    pub fn insert(&mut self, signer: Arc<dyn DigestSigner + Send + Sync>) -> Result<(), RepoError> {
        let key = Key::ecdsa_p256(&signer.spki_der()).map_err(RepoError::metadata("token key"))?;
        self.0.insert(key.key_id(), signer);
        Ok(())
    }

    /// The signer of a key ID.
    pub fn get(&self, keyid: &str) -> Option<&(dyn DigestSigner + Send + Sync)> {
        self.0.get(keyid).map(|s| &**s)
    }
}

/// Signs `md` with every listed key tufd holds; fails when that is fewer
/// than the threshold.
fn sign<T: Role>(
    md: &mut Metadata<T>,
    role: &str,
    keys: &BTreeMap<String, Key>,
    role_keys: &RoleKeys,
    signers: &Signers,
) -> Result<(), RepoError> {
    md.signatures.clear();
    let mut missing = None;
    for keyid in &role_keys.keyids {
        let (Some(key), Some(signer)) = (keys.get(keyid), signers.get(keyid)) else {
            missing.get_or_insert_with(|| keyid.clone());
            continue;
        };
        md.sign(key, signer).map_err(RepoError::metadata(role))?;
    }
    if (md.signatures.len() as u64) < role_keys.threshold {
        return Err(RepoError::NoKey {
            role: role.to_owned(),
            keyid: missing.unwrap_or_default(),
        });
    }
    Ok(())
}

fn role_keys<'a>(root: &'a Root, role: &str) -> Result<&'a RoleKeys, RepoError> {
    root.roles
        .get(role)
        .ok_or_else(|| RepoError::Internal(format!("root lists no {role} role")))
}

/// The keys of a new repository's roles.
pub struct InitKeys {
    /// Root keys (several: k of n).
    pub root: Vec<Key>,
    /// How many root keys must sign.
    pub root_threshold: u64,
    /// The targets key.
    pub targets: Key,
    /// The snapshot key (online).
    pub snapshot: Key,
    /// The timestamp key (online).
    pub timestamp: Key,
}

/// The files of a new repository: root, targets, snapshot and timestamp
/// version 1.
pub fn init(
    layout: &Layout,
    keys: InitKeys,
    expiry: &ExpiryPolicy,
    signers: &Signers,
    now: OffsetDateTime,
) -> Result<Publish, RepoError> {
    if keys.root_threshold == 0 || keys.root_threshold > keys.root.len() as u64 {
        return Err(RepoError::InvalidRequest(format!(
            "root threshold {} with {} root key(s): choose 1 to {}",
            keys.root_threshold,
            keys.root.len(),
            keys.root.len()
        )));
    }
    let mut all = BTreeMap::new();
    let mut roles = BTreeMap::new();
    let groups = [
        ("root", keys.root.clone(), keys.root_threshold),
        ("targets", vec![keys.targets], 1),
        ("snapshot", vec![keys.snapshot], 1),
        ("timestamp", vec![keys.timestamp], 1),
    ];
    for (role, ks, threshold) in groups {
        let mut keyids = Vec::new();
        for k in ks {
            let id = k.key_id();
            if keyids.contains(&id) {
                return Err(RepoError::InvalidRequest(format!(
                    "key {id} is listed twice for {role}"
                )));
            }
            keyids.push(id.clone());
            all.insert(id, k);
        }
        roles.insert(
            role.to_owned(),
            RoleKeys {
                keyids,
                threshold,
                unrecognized: Unrecognized::new(),
            },
        );
    }
    let root = Root {
        common: Common::new("root", expiry.expires("root", now)),
        consistent_snapshot: Some(true),
        keys: all,
        roles,
        unrecognized: Unrecognized::new(),
    };
    let mut root_md = Metadata::new(root.clone());
    sign(
        &mut root_md,
        "root",
        &root.keys,
        role_keys(&root, "root")?,
        signers,
    )?;
    let root_file = RoleFile::new(root_md)?;
    let targets = Targets {
        common: Common::new("targets", expiry.expires("targets", now)),
        targets: BTreeMap::new(),
        delegations: None,
        unrecognized: Unrecognized::new(),
    };
    let mut publish = Publish::default();
    publish
        .files
        .push((layout.metadata_file("root", 1), root_file.bytes.clone()));
    let next = Next {
        root: &root,
        signers,
        expiry,
        now,
    };
    let targets = next.signed_targets(targets)?;
    let snapshot = next.snapshot(None, &targets, &BTreeMap::new())?;
    let timestamp = next.timestamp(None, &snapshot)?;
    publish.files.push((
        layout.metadata_file("targets", targets.version()),
        targets.bytes,
    ));
    publish.files.push((
        layout.metadata_file("snapshot", snapshot.version()),
        snapshot.bytes,
    ));
    publish.timestamp = Some(timestamp.bytes);
    Ok(publish)
}

/// Builds the next versions of roles under one root.
struct Next<'a> {
    root: &'a Root,
    signers: &'a Signers,
    expiry: &'a ExpiryPolicy,
    now: OffsetDateTime,
}

impl Next<'_> {
    fn signed_targets(&self, targets: Targets) -> Result<RoleFile<Targets>, RepoError> {
        let mut md = Metadata::new(targets);
        sign(
            &mut md,
            "targets",
            &self.root.keys,
            role_keys(self.root, "targets")?,
            self.signers,
        )?;
        RoleFile::new(md)
    }

    fn snapshot(
        &self,
        previous: Option<&Snapshot>,
        targets: &RoleFile<Targets>,
        delegated: &BTreeMap<String, RoleFile<Targets>>,
    ) -> Result<RoleFile<Snapshot>, RepoError> {
        let mut meta = BTreeMap::from([("targets.json".to_owned(), targets.meta_version())]);
        for (name, f) in delegated {
            meta.insert(format!("{name}.json"), f.meta_version());
        }
        let mut common = Common::new("snapshot", self.expiry.expires("snapshot", self.now));
        if let Some(p) = previous {
            common.version = p.common.version + 1;
        }
        let mut md = Metadata::new(Snapshot {
            common,
            meta,
            unrecognized: previous.map(|p| p.unrecognized.clone()).unwrap_or_default(),
        });
        sign(
            &mut md,
            "snapshot",
            &self.root.keys,
            role_keys(self.root, "snapshot")?,
            self.signers,
        )?;
        RoleFile::new(md)
    }

    fn timestamp(
        &self,
        previous: Option<&Timestamp>,
        snapshot: &RoleFile<Snapshot>,
    ) -> Result<RoleFile<Timestamp>, RepoError> {
        let mut common = Common::new("timestamp", self.expiry.expires("timestamp", self.now));
        if let Some(p) = previous {
            common.version = p.common.version + 1;
        }
        let mut md = Metadata::new(Timestamp {
            common,
            meta: BTreeMap::from([("snapshot.json".to_owned(), snapshot.meta_hashed())]),
            unrecognized: previous.map(|p| p.unrecognized.clone()).unwrap_or_default(),
        });
        sign(
            &mut md,
            "timestamp",
            &self.root.keys,
            role_keys(self.root, "timestamp")?,
            self.signers,
        )?;
        RoleFile::new(md)
    }
}

/// A target to add: its path in the repository and description.
pub struct NewTarget {
    /// Path of the target (`a/b.tgz`).
    pub name: String,
    /// Length, hashes and custom metadata.
    pub file: TargetFile,
    /// The local file tufd publishes under `targets/`, if any.
    pub source: Option<std::path::PathBuf>,
}

/// Checks a target path: relative, `/`-separated, no empty, `.` or `..`
/// parts, no control characters, at most 1024 bytes.
pub fn check_target_name(name: &str) -> Result<(), RepoError> {
    let bad = name.is_empty()
        || name.len() > 1024
        || name.starts_with('/')
        || name.chars().any(char::is_control)
        || name.contains('\\')
        || name
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(RepoError::InvalidRequest(format!(
            "target name {name:?}: give a relative path of at most 1024 bytes with '/' between non-empty parts, no '.' or '..' and no control characters"
        )));
    }
    Ok(())
}

/// What an edit of the targets role does.
pub enum TargetsEdit {
    /// Add (or replace) targets.
    Add(Vec<NewTarget>),
    /// Remove targets by name.
    Remove(Vec<String>),
}

/// Applies `edit` to top-level targets and returns the next version's
/// files (targets, snapshot, timestamp, and target files), with a summary.
pub fn edit_targets(
    layout: &Layout,
    published: &Published,
    edit: TargetsEdit,
    expiry: &ExpiryPolicy,
    signers: &Signers,
    now: OffsetDateTime,
) -> Result<(Publish, String), RepoError> {
    let root = &published.root.metadata.signed;
    let mut targets = published.targets.metadata.signed.clone();
    let mut publish = Publish::default();
    let summary = match edit {
        TargetsEdit::Add(new) => {
            let mut names = Vec::new();
            for t in new {
                check_target_name(&t.name)?;
                if let Some(source) = t.source {
                    let sha256 = t.file.hashes.get("sha256").cloned().unwrap_or_default();
                    publish.copies.push(TargetCopy {
                        source,
                        dest: layout.target_file(&t.name, &sha256),
                        sha256,
                        length: t.file.length,
                    });
                }
                names.push(t.name.clone());
                targets.targets.insert(t.name, t.file);
            }
            format!("added {}", names.join(", "))
        }
        TargetsEdit::Remove(names) => {
            for n in &names {
                if targets.targets.remove(n).is_none() {
                    return Err(RepoError::NotFound(format!(
                        "no target {n:?} in {}",
                        layout.dir().display()
                    )));
                }
            }
            format!("removed {}", names.join(", "))
        }
    };
    targets.common.version += 1;
    targets.common.expires = expiry.expires("targets", now);
    let next = Next {
        root,
        signers,
        expiry,
        now,
    };
    let targets = next.signed_targets(targets)?;
    let snapshot = next.snapshot(
        Some(&published.snapshot.metadata.signed),
        &targets,
        &published.delegated,
    )?;
    let timestamp = next.timestamp(Some(&published.timestamp.metadata.signed), &snapshot)?;
    check_top_level(root, &targets)?;
    publish.files.push((
        layout.metadata_file("targets", targets.version()),
        targets.bytes,
    ));
    publish.files.push((
        layout.metadata_file("snapshot", snapshot.version()),
        snapshot.bytes,
    ));
    publish.timestamp = Some(timestamp.bytes);
    Ok((publish, summary))
}

/// What a refresh of the online roles re-signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    /// New timestamp version.
    pub timestamp: u64,
    /// New snapshot version, when snapshot was re-signed too.
    pub snapshot: Option<u64>,
}

/// When the online roles are next due to be re-signed.
pub fn next_due(online: &Online, expiry: &ExpiryPolicy) -> OffsetDateTime {
    let ts = expiry.due("timestamp", online.timestamp.metadata.signed.common.expires);
    let snap = expiry.due("snapshot", online.snapshot.metadata.signed.common.expires);
    ts.min(snap)
}

/// Re-signs timestamp, and snapshot (same content, next version) when it
/// is due, if either is due at `now` (or always with `force`). `None`:
/// nothing was due.
pub fn refresh(
    layout: &Layout,
    online: &Online,
    expiry: &ExpiryPolicy,
    signers: &Signers,
    now: OffsetDateTime,
    force: bool,
) -> Result<Option<(Publish, Refreshed)>, RepoError> {
    if !force && next_due(online, expiry) > now {
        return Ok(None);
    }
    let root = &online.root.metadata.signed;
    let next = Next {
        root,
        signers,
        expiry,
        now,
    };
    let previous = &online.snapshot.metadata.signed;
    let snapshot_due = force || expiry.due("snapshot", previous.common.expires) <= now;
    let mut publish = Publish::default();
    let snapshot = if snapshot_due {
        let mut common = Common::new("snapshot", expiry.expires("snapshot", now));
        common.version = previous.common.version + 1;
        let mut md = Metadata::new(Snapshot {
            common,
            meta: previous.meta.clone(),
            unrecognized: previous.unrecognized.clone(),
        });
        sign(
            &mut md,
            "snapshot",
            &root.keys,
            role_keys(root, "snapshot")?,
            signers,
        )?;
        let s = RoleFile::new(md)?;
        publish.files.push((
            layout.metadata_file("snapshot", s.version()),
            s.bytes.clone(),
        ));
        s
    } else {
        online.snapshot.clone()
    };
    let timestamp = next.timestamp(Some(&online.timestamp.metadata.signed), &snapshot)?;
    let refreshed = Refreshed {
        timestamp: timestamp.version(),
        snapshot: snapshot_due.then(|| snapshot.version()),
    };
    publish.timestamp = Some(timestamp.bytes);
    Ok(Some((publish, refreshed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names() {
        for ok in ["a", "a/b.tgz", "dir/ü ñ.bin", "v1.0"] {
            check_target_name(ok).unwrap();
        }
        for bad in ["", "/a", "a//b", "a/../b", "./a", "a/", "a\nb", "a\\b"] {
            assert!(check_target_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn due_half_a_period_before_expiry() {
        let e = ExpiryPolicy {
            timestamp: 10,
            ..Default::default()
        };
        let exp = Expires::at(time::macros::datetime!(2030-01-01 00:00:10 UTC));
        assert_eq!(
            e.due("timestamp", exp),
            time::macros::datetime!(2030-01-01 00:00:05 UTC)
        );
        let mut e = ExpiryPolicy::default();
        assert!(e.set("bins", 5).is_err());
        assert!(e.set("root", 0).is_err());
        e.set("root", 7).unwrap();
        assert_eq!(e.period("root"), Duration::from_secs(7));
    }
}
