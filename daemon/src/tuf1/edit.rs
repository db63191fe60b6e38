//! Named, synchronous edits of a TUF 1.0 repository ([`init`],
//! [`Change`]: add/remove targets, delegate, rotate; [`refresh`]): each
//! takes the published state, signs what changes with the keys it is
//! given, and returns the files of the next version. No I/O beyond the signers' (token
//! calls block: run these on a blocking thread).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tufd_tuf::DigestSigner;
use tufd_tuf::tuf1::{
    Common, DelegatedRole, Delegations, Expires, Key, MetaFile, Metadata, Role, RoleKeys, Root,
    Snapshot, SuccinctRoles, TargetFile, Targets, Timestamp, Unrecognized,
};

use super::error::RepoError;
use super::files::{
    Layout, Online, Publish, Published, RoleFile, TargetCopy, check_top_level, delegation_keys,
};

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
    /// Hash bins (TAP 15): the bins' key and the number of prefix bits.
    pub bins: Option<(Key, u32)>,
}

/// The name prefix of hash bins tufd creates (`bins-000` …).
pub const BINS_PREFIX: &str = "bins";

/// The files of a new repository: root, targets (and its hash bins),
/// snapshot and timestamp, version 1.
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
    let mut root = Root {
        common: Common::new("root", expiry.expires("root", now)),
        consistent_snapshot: Some(true),
        keys: BTreeMap::new(),
        roles: BTreeMap::new(),
        unrecognized: Unrecognized::new(),
    };
    set_role_keys(&mut root, "root", keys.root, keys.root_threshold)?;
    set_role_keys(&mut root, "targets", vec![keys.targets], 1)?;
    set_role_keys(&mut root, "snapshot", vec![keys.snapshot], 1)?;
    set_role_keys(&mut root, "timestamp", vec![keys.timestamp], 1)?;
    let mut targets = Targets {
        common: Common::new("targets", expiry.expires("targets", now)),
        targets: BTreeMap::new(),
        delegations: None,
        unrecognized: Unrecognized::new(),
    };
    let mut bins = BTreeMap::new();
    if let Some((key, bit_length)) = keys.bins {
        if !(1..=16).contains(&bit_length) {
            return Err(RepoError::InvalidRequest(format!(
                "{} hash bins: choose a power of two from 2 to 65536",
                1u64 << bit_length.min(63)
            )));
        }
        let succinct = SuccinctRoles {
            bit_length,
            name_prefix: BINS_PREFIX.into(),
            keyids: vec![key.key_id()],
            threshold: 1,
            unrecognized: Unrecognized::new(),
        };
        for n in 0..succinct.bin_count() {
            bins.insert(succinct.bin_name(n), empty_targets(expiry, now));
        }
        targets.delegations = Some(Delegations {
            keys: BTreeMap::from([(key.key_id(), key)]),
            roles: None,
            succinct_roles: Some(succinct),
            unrecognized: Unrecognized::new(),
        });
    }
    let mut root_md = Metadata::new(root.clone());
    let root_keys = role_keys(&root, "root")?;
    sign(&mut root_md, "root", &root.keys, root_keys, signers)?;
    let root_file = RoleFile::new(root_md)?;
    let mut publish = Publish::default();
    publish
        .files
        .push((layout.metadata_file("root", 1), root_file.bytes));
    let targets = sign_targets(&root, targets, signers)?;
    let mut meta = BTreeMap::from([("targets.json".to_owned(), targets.meta_version())]);
    publish
        .files
        .push((layout.metadata_file("targets", 1), targets.bytes.clone()));
    for (name, content) in bins {
        let f = sign_delegated(&targets.metadata.signed, &name, content, signers)?;
        meta.insert(format!("{name}.json"), f.meta_version());
        publish
            .files
            .push((layout.metadata_file(&name, 1), f.bytes));
    }
    let snapshot = sign_snapshot(&root, None, meta, expiry, signers, now)?;
    let timestamp = sign_timestamp(&root, None, &snapshot, expiry, signers, now)?;
    publish
        .files
        .push((layout.metadata_file("snapshot", 1), snapshot.bytes));
    publish.timestamp = Some(timestamp.bytes);
    Ok(publish)
}

fn empty_targets(expiry: &ExpiryPolicy, now: OffsetDateTime) -> Targets {
    Targets {
        common: Common::new("targets", expiry.expires("targets", now)),
        targets: BTreeMap::new(),
        delegations: None,
        unrecognized: Unrecognized::new(),
    }
}

/// Lists `keys` as `role`'s keys in root with `threshold`, removing keys
/// no role uses any more.
pub fn set_role_keys(
    root: &mut Root,
    role: &str,
    keys: Vec<Key>,
    threshold: u64,
) -> Result<(), RepoError> {
    if threshold == 0 || threshold > keys.len() as u64 {
        return Err(RepoError::InvalidRequest(format!(
            "{role}: threshold {threshold} with {} key(s)",
            keys.len()
        )));
    }
    let mut keyids = Vec::new();
    for k in keys {
        let id = k.key_id();
        if keyids.contains(&id) {
            return Err(RepoError::InvalidRequest(format!(
                "key {id} is listed twice for {role}"
            )));
        }
        keyids.push(id.clone());
        root.keys.insert(id, k);
    }
    root.roles.insert(
        role.to_owned(),
        RoleKeys {
            keyids,
            threshold,
            unrecognized: Unrecognized::new(),
        },
    );
    let used: Vec<String> = root
        .roles
        .values()
        .flat_map(|r| r.keyids.iter().cloned())
        .collect();
    root.keys.retain(|id, _| used.contains(id));
    Ok(())
}

fn sign_targets(
    root: &Root,
    targets: Targets,
    signers: &Signers,
) -> Result<RoleFile<Targets>, RepoError> {
    let mut md = Metadata::new(targets);
    sign(
        &mut md,
        "targets",
        &root.keys,
        role_keys(root, "targets")?,
        signers,
    )?;
    RoleFile::new(md)
}

fn sign_delegated(
    parent: &Targets,
    name: &str,
    content: Targets,
    signers: &Signers,
) -> Result<RoleFile<Targets>, RepoError> {
    let (keys, keyids, threshold) = delegation_keys(parent, name)
        .ok_or_else(|| RepoError::NotFound(format!("targets delegates no role {name:?}")))?;
    let role_keys = RoleKeys {
        keyids,
        threshold,
        unrecognized: Unrecognized::new(),
    };
    let mut md = Metadata::new(content);
    sign(&mut md, name, keys, &role_keys, signers)?;
    RoleFile::new(md)
}

fn sign_snapshot(
    root: &Root,
    previous: Option<&Snapshot>,
    meta: BTreeMap<String, MetaFile>,
    expiry: &ExpiryPolicy,
    signers: &Signers,
    now: OffsetDateTime,
) -> Result<RoleFile<Snapshot>, RepoError> {
    let mut common = Common::new("snapshot", expiry.expires("snapshot", now));
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
        &root.keys,
        role_keys(root, "snapshot")?,
        signers,
    )?;
    RoleFile::new(md)
}

fn sign_timestamp(
    root: &Root,
    previous: Option<&Timestamp>,
    snapshot: &RoleFile<Snapshot>,
    expiry: &ExpiryPolicy,
    signers: &Signers,
    now: OffsetDateTime,
) -> Result<RoleFile<Timestamp>, RepoError> {
    let mut common = Common::new("timestamp", expiry.expires("timestamp", now));
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
        &root.keys,
        role_keys(root, "timestamp")?,
        signers,
    )?;
    RoleFile::new(md)
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

/// Whether a delegation path pattern matches a target path: shell globs
/// matched part by part (`*` and `?` never match `/`), as python-tuf does.
pub fn path_matches(pattern: &str, target: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let t: Vec<&str> = target.split('/').collect();
    p.len() == t.len()
        && p.iter()
            .zip(&t)
            .all(|(p, t)| glob(p.as_bytes(), t.as_bytes()))
}

fn glob(p: &[u8], t: &[u8]) -> bool {
    match (p.first(), t.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], t) || (!t.is_empty() && glob(p, &t[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &t[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &t[1..]),
        _ => false,
    }
}

/// Checks the name of a new delegated role.
pub fn check_role_name(name: &str) -> Result<(), RepoError> {
    let valid = !name.is_empty()
        && name.len() <= 48
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !TOP_LEVEL.contains(&name)
        && !name.starts_with(BINS_PREFIX);
    if !valid {
        return Err(RepoError::InvalidRequest(format!(
            "role name {name:?}: use 1 to 48 letters, digits, '-', '_' or '.', not a top-level role or bins*"
        )));
    }
    Ok(())
}

/// Signs `root` with every root key, of `old_root` or its own, that
/// `signers` holds (thresholds are checked by the caller).
pub fn sign_root_all(
    old_root: &Root,
    root: &Root,
    signers: &Signers,
) -> Result<Metadata<Root>, RepoError> {
    let mut md = Metadata::new(root.clone());
    let mut keys = old_root.keys.clone();
    keys.extend(root.keys.clone());
    let mut ids = role_keys(old_root, "root")?.keyids.clone();
    for id in &role_keys(root, "root")?.keyids {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    for id in &ids {
        if let (Some(key), Some(signer)) = (keys.get(id), signers.get(id)) {
            md.sign(key, signer).map_err(RepoError::metadata("root"))?;
        }
    }
    Ok(md)
}

/// The next version of a repository, staged role by role, then signed
/// and laid out by [`Change::finish`].
pub struct Change<'a> {
    layout: &'a Layout,
    published: &'a Published,
    expiry: &'a ExpiryPolicy,
    now: OffsetDateTime,
    root: Option<Root>,
    presigned_root: Option<Metadata<Root>>,
    targets: Option<Targets>,
    delegated: BTreeMap<String, Targets>,
    copies: Vec<TargetCopy>,
    summary: Vec<String>,
}

impl<'a> Change<'a> {
    /// A change on top of what is published.
    pub fn new(
        layout: &'a Layout,
        published: &'a Published,
        expiry: &'a ExpiryPolicy,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            layout,
            published,
            expiry,
            now,
            root: None,
            presigned_root: None,
            targets: None,
            delegated: BTreeMap::new(),
            copies: Vec::new(),
            summary: Vec::new(),
        }
    }

    /// The root the repository publishes now.
    pub fn current_root(&self) -> &Root {
        &self.published.root.metadata.signed
    }

    fn root(&self) -> &Root {
        self.root
            .as_ref()
            .unwrap_or(&self.published.root.metadata.signed)
    }

    fn targets_mut(&mut self) -> &mut Targets {
        self.targets
            .get_or_insert_with(|| self.published.targets.metadata.signed.clone())
    }

    fn targets(&self) -> &Targets {
        self.targets
            .as_ref()
            .unwrap_or(&self.published.targets.metadata.signed)
    }

    fn delegated_mut(&mut self, name: &str) -> Result<&mut Targets, RepoError> {
        if !self.delegated.contains_key(name) {
            let current = self
                .published
                .read_delegated(self.layout, name)?
                .metadata
                .signed;
            self.delegated.insert(name.to_owned(), current);
        }
        Ok(self.delegated.get_mut(name).expect("inserted above"))
    }

    /// The role a new target goes into: `role` when given (its paths must
    /// match), the target's hash bin when targets delegates to bins, else
    /// top-level targets.
    fn role_for(&self, name: &str, role: Option<&str>) -> Result<Option<String>, RepoError> {
        let delegations = self.targets().delegations.as_ref();
        if let Some(role) = role {
            let r = delegations
                .and_then(|d| d.roles.as_ref())
                .and_then(|roles| roles.iter().find(|r| r.name == role))
                .ok_or_else(|| {
                    RepoError::NotFound(format!(
                        "targets delegates no role {role:?}; create it with `tufctl tuf delegate`"
                    ))
                })?;
            let paths = r.paths.clone().unwrap_or_default();
            if !paths.iter().any(|p| path_matches(p, name)) {
                return Err(RepoError::InvalidRequest(format!(
                    "target {name:?} is outside the paths delegated to {role} ({})",
                    paths.join(", ")
                )));
            }
            return Ok(Some(role.to_owned()));
        }
        Ok(delegations
            .and_then(|d| d.succinct_roles.as_ref())
            .map(|s| s.bin_for(name)))
    }

    /// Adds (or replaces) targets, in `role` or where they belong.
    pub fn add_targets(
        &mut self,
        new: Vec<NewTarget>,
        role: Option<&str>,
    ) -> Result<(), RepoError> {
        let mut names = Vec::new();
        for t in new {
            check_target_name(&t.name)?;
            let placed = self.role_for(&t.name, role)?;
            if let Some(source) = t.source {
                let sha256 = t.file.hashes.get("sha256").cloned().unwrap_or_default();
                self.copies.push(TargetCopy {
                    source,
                    dest: self.layout.target_file(&t.name, &sha256),
                    sha256,
                    length: t.file.length,
                });
            }
            names.push(match &placed {
                Some(r) => format!("{} (in {r})", t.name),
                None => t.name.clone(),
            });
            let role = match placed {
                Some(r) => self.delegated_mut(&r)?,
                None => self.targets_mut(),
            };
            role.targets.insert(t.name, t.file);
        }
        self.summary.push(format!("added {}", names.join(", ")));
        Ok(())
    }

    /// Removes targets from `role`, or from wherever they are listed
    /// (top-level targets, their hash bin, or a named role whose paths
    /// match).
    pub fn remove_targets(
        &mut self,
        names: &[String],
        role: Option<&str>,
    ) -> Result<(), RepoError> {
        for name in names {
            let mut candidates: Vec<Option<String>> = Vec::new();
            match role {
                Some(r) => candidates.push(Some(r.to_owned())),
                None => {
                    candidates.push(None);
                    if let Some(d) = &self.targets().delegations {
                        if let Some(s) = &d.succinct_roles {
                            candidates.push(Some(s.bin_for(name)));
                        }
                        for r in d.roles.iter().flatten() {
                            if r.paths.iter().flatten().any(|p| path_matches(p, name)) {
                                candidates.push(Some(r.name.clone()));
                            }
                        }
                    }
                }
            }
            let mut removed = false;
            for c in candidates {
                let role = match &c {
                    Some(r) => self.delegated_mut(r)?,
                    None => self.targets_mut(),
                };
                if role.targets.remove(name).is_some() {
                    removed = true;
                    break;
                }
            }
            if !removed {
                return Err(RepoError::NotFound(format!(
                    "no target {name:?} in {}",
                    self.layout.dir().display()
                )));
            }
        }
        self.summary.push(format!("removed {}", names.join(", ")));
        Ok(())
    }

    /// Delegates `paths` from top-level targets to a new role signed by
    /// `key`.
    pub fn delegate(
        &mut self,
        name: &str,
        key: Key,
        paths: Vec<String>,
        terminating: bool,
    ) -> Result<(), RepoError> {
        check_role_name(name)?;
        if paths.is_empty() {
            return Err(RepoError::InvalidRequest(format!(
                "delegate at least one path pattern to {name}"
            )));
        }
        let keyid = key.key_id();
        let expiry = self.expiry;
        let now = self.now;
        let targets = self.targets_mut();
        let d = targets.delegations.get_or_insert_with(|| Delegations {
            keys: BTreeMap::new(),
            roles: Some(Vec::new()),
            succinct_roles: None,
            unrecognized: Unrecognized::new(),
        });
        if d.succinct_roles.is_some() {
            return Err(RepoError::InvalidRequest(
                "this repository delegates to hash bins; TUF allows either hash bins or named roles in one delegation".into(),
            ));
        }
        let roles = d.roles.get_or_insert_with(Vec::new);
        if roles.iter().any(|r| r.name == name) {
            return Err(RepoError::AlreadyExists(format!(
                "targets already delegates to {name}"
            )));
        }
        roles.push(DelegatedRole {
            name: name.to_owned(),
            keyids: vec![keyid.clone()],
            threshold: 1,
            terminating,
            paths: Some(paths.clone()),
            path_hash_prefixes: None,
            unrecognized: Unrecognized::new(),
        });
        d.keys.insert(keyid, key);
        self.delegated
            .insert(name.to_owned(), empty_targets(expiry, now));
        self.summary
            .push(format!("delegated {} to {name}", paths.join(", ")));
        Ok(())
    }

    /// Replaces the keys of top-level role `role` by `keys` (threshold
    /// `threshold`) in a new root, and re-signs the role with them.
    pub fn rotate(&mut self, role: &str, keys: Vec<Key>, threshold: u64) -> Result<(), RepoError> {
        if !TOP_LEVEL.contains(&role) {
            return Err(RepoError::InvalidRequest(format!(
                "no top-level role {role:?}: rotate root, targets, snapshot or timestamp"
            )));
        }
        let mut root = self.root().clone();
        set_role_keys(&mut root, role, keys, threshold)?;
        self.root = Some(root);
        if role == "targets" {
            self.targets_mut();
        }
        self.summary.push(format!("rotated the {role} keys"));
        Ok(())
    }

    /// Publishes a root signed elsewhere (a staged k-of-n change); its
    /// thresholds are checked by [`Change::finish`]. Roles whose keys it
    /// changes are re-signed with the new keys.
    pub fn signed_root(&mut self, md: Metadata<Root>) -> Result<(), RepoError> {
        let old = &self.published.root.metadata.signed;
        if md.signed.common.version != old.common.version + 1 {
            return Err(RepoError::InvalidRequest(format!(
                "the staged root is version {}, the repository publishes version {}: stage the change again",
                md.signed.common.version, old.common.version
            )));
        }
        if md.signed.roles.get("targets") != old.roles.get("targets") {
            self.targets_mut();
        }
        self.root = Some(md.signed.clone());
        self.presigned_root = Some(md);
        self.summary.push("published the staged root".into());
        Ok(())
    }

    /// Signs every changed role (a new root by the old root's threshold
    /// and its own), then snapshot and timestamp; returns the files in
    /// publishing order and a summary.
    pub fn finish(self, signers: &Signers) -> Result<(Publish, String), RepoError> {
        let published = self.published;
        let old_root = &published.root.metadata.signed;
        let mut publish = Publish {
            copies: self.copies,
            ..Default::default()
        };
        if let Some(mut root) = self.root.clone() {
            let old = role_keys(old_root, "root")?;
            let md = match &self.presigned_root {
                Some(md) => md.clone(),
                None => {
                    root.common.version = old_root.common.version + 1;
                    root.common.expires = self.expiry.expires("root", self.now);
                    sign_root_all(old_root, &root, signers)?
                }
            };
            let new = role_keys(&root, "root")?;
            let file = RoleFile::new(md)?;
            check_top_level(old_root, &file).map_err(|_| RepoError::NoKey {
                role: "root (the current root's threshold)".into(),
                keyid: old.keyids.join(", "),
            })?;
            check_top_level(&root, &file).map_err(|_| RepoError::NoKey {
                role: "root (the new root's threshold)".into(),
                keyid: new.keyids.join(", "),
            })?;
            publish.files.push((
                self.layout.metadata_file("root", root.common.version),
                file.bytes,
            ));
        }
        let root = self.root.as_ref().unwrap_or(old_root);
        let mut meta = published.snapshot.metadata.signed.meta.clone();
        let targets_parent = self
            .targets
            .clone()
            .unwrap_or_else(|| published.targets.metadata.signed.clone());
        if let Some(mut targets) = self.targets.clone() {
            targets.common.version = published.targets.version() + 1;
            targets.common.expires = self.expiry.expires("targets", self.now);
            let f = sign_targets(root, targets, signers)?;
            meta.insert("targets.json".into(), f.meta_version());
            publish
                .files
                .push((self.layout.metadata_file("targets", f.version()), f.bytes));
        }
        for (name, mut content) in self.delegated {
            let key = format!("{name}.json");
            content.common.version = meta.get(&key).map_or(1, |m| m.version + 1);
            content.common.expires = self.expiry.expires("targets", self.now);
            let f = sign_delegated(&targets_parent, &name, content, signers)?;
            meta.insert(key, f.meta_version());
            publish
                .files
                .push((self.layout.metadata_file(&name, f.version()), f.bytes));
        }
        let snapshot = sign_snapshot(
            root,
            Some(&published.snapshot.metadata.signed),
            meta,
            self.expiry,
            signers,
            self.now,
        )?;
        let timestamp = sign_timestamp(
            root,
            Some(&published.timestamp.metadata.signed),
            &snapshot,
            self.expiry,
            signers,
            self.now,
        )?;
        publish.files.push((
            self.layout.metadata_file("snapshot", snapshot.version()),
            snapshot.bytes,
        ));
        publish.timestamp = Some(timestamp.bytes);
        Ok((publish, self.summary.join("; ")))
    }
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
/// is due, if either is due at `now`; with `force` timestamp always.
/// `None`: nothing was due.
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
    let previous = &online.snapshot.metadata.signed;
    let snapshot_due = expiry.due("snapshot", previous.common.expires) <= now;
    let mut publish = Publish::default();
    let snapshot = if snapshot_due {
        let s = sign_snapshot(
            root,
            Some(previous),
            previous.meta.clone(),
            expiry,
            signers,
            now,
        )?;
        publish.files.push((
            layout.metadata_file("snapshot", s.version()),
            s.bytes.clone(),
        ));
        s
    } else {
        online.snapshot.clone()
    };
    let timestamp = sign_timestamp(
        root,
        Some(&online.timestamp.metadata.signed),
        &snapshot,
        expiry,
        signers,
        now,
    )?;
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
    fn delegation_paths_are_globs_per_part() {
        assert!(path_matches("team/*", "team/a.tgz"));
        assert!(
            !path_matches("team/*", "team/x/a.tgz"),
            "* does not match /"
        );
        assert!(path_matches("*/*.tgz", "x/a.tgz"));
        assert!(path_matches("v?.txt", "v1.txt"));
        assert!(!path_matches("v?.txt", "v10.txt"));
        assert!(!path_matches("team/*", "other/a.tgz"));
        assert!(path_matches("*", "a"));
        assert!(!path_matches("*", "a/b"));
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
