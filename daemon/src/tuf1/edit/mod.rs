//! Named, synchronous edits of a TUF 1.0 repository ([`init`],
//! [`Change`]: add/remove targets, delegate, rotate, a staged root): each
//! takes the published state, signs what changes with the keys it is
//! given, and returns the files of the next version. No I/O beyond the signers' (token
//! calls block: run these on a blocking thread).

use std::collections::BTreeMap;

use time::OffsetDateTime;
use tufd_tuf::tuf1::{
    Common, Delegations, Expires, Key, Metadata, RoleKeys, Root, SuccinctRoles, TargetFile,
    Targets, Unrecognized,
};

use super::error::RepoError;
use super::expiry::ExpiryPolicy;
use super::files::{Layout, NewRoot, Publish, Published, RoleFile, TargetCopy, check_top_level};
use super::sign::{
    Signers, cosign_for_old_root, role_keys, set_role_keys, sign, sign_delegated, sign_root_all,
    sign_snapshot, sign_targets, sign_timestamp,
};
use super::tree::Tree;

mod delegation;
mod search;
use delegation::no_role;

/// The four top-level roles.
pub const TOP_LEVEL: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

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
            let name = succinct.bin_name(n);
            let content = empty_targets(&name, expiry, now);
            bins.insert(name, content);
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

fn empty_targets(role: &str, expiry: &ExpiryPolicy, now: OffsetDateTime) -> Targets {
    Targets {
        common: Common::new("targets", expiry.expires(role, now)),
        targets: BTreeMap::new(),
        delegations: None,
        unrecognized: Unrecognized::new(),
    }
}

/// A target to add: its path in the repository and description.
pub struct NewTarget {
    /// Path of the target (`a/b.tgz`).
    pub name: String,
    /// Length, hashes and custom metadata.
    pub file: TargetFile,
    /// The local file tufd publishes under `targets/`, if any.
    pub source: Option<crate::tuf1::dir::Beneath>,
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
    /// Delegated roles to sign, with the role that delegates to each.
    delegated: BTreeMap<String, (String, Targets)>,
    /// Published delegated roles read to follow a client's search
    /// (unchanged), with the role that delegates to each.
    searched: BTreeMap<String, (String, Targets)>,
    /// The published named roles (hash bins left out), read when first
    /// needed.
    tree: Option<Tree>,
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
            searched: BTreeMap::new(),
            tree: None,
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

    /// The role a new target goes into: `role` when given (its paths, and
    /// those of every delegation above it, must match), the target's hash
    /// bin when targets delegates to bins, else top-level targets. Either
    /// way it must be where a client's search for the target ends (see
    /// [`search`]): refused when a terminating delegation or a role that
    /// already lists the name comes first.
    fn role_for(&mut self, name: &str, role: Option<&str>) -> Result<Option<String>, RepoError> {
        let placed = self.role_named_or_chosen(name, role)?;
        self.check_found_in(name, placed.as_deref().unwrap_or("targets"))?;
        Ok(placed)
    }

    fn role_named_or_chosen(
        &mut self,
        name: &str,
        role: Option<&str>,
    ) -> Result<Option<String>, RepoError> {
        if let Some(role) = role {
            let tree = self.tree()?;
            if tree.get(role).is_none() {
                return Err(RepoError::NotFound(format!(
                    "{}; create it with `tufctl tuf delegate`",
                    no_role(role)
                )));
            }
            if !tree.reaches(role, name) {
                let paths: Vec<String> = tree
                    .chain(role)
                    .iter()
                    .map(|n| format!("{}: {}", n.name, n.paths.join(", ")))
                    .collect();
                return Err(RepoError::InvalidRequest(format!(
                    "target {name:?} is outside the paths delegated to {role} ({})",
                    paths.join("; ")
                )));
            }
            return Ok(Some(role.to_owned()));
        }
        Ok(self
            .targets()
            .delegations
            .as_ref()
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
                    let bins = self.targets().delegations.as_ref();
                    if let Some(s) = bins.and_then(|d| d.succinct_roles.as_ref()) {
                        candidates.push(Some(s.bin_for(name)));
                    }
                    let tree = self.tree()?;
                    for n in tree.nodes() {
                        if tree.reaches(&n.name, name) {
                            candidates.push(Some(n.name.clone()));
                        }
                    }
                }
            }
            let mut removed = false;
            for c in candidates {
                // Only the role that lists the target is signed again.
                let listed = match c.as_deref() {
                    None => self.targets().targets.contains_key(name),
                    Some(r) => match self.delegated.get(r) {
                        Some((_, staged)) => staged.targets.contains_key(name),
                        None => {
                            let loaded = self.load_published(r)?;
                            let listed = loaded.1.targets.contains_key(name);
                            if listed {
                                self.delegated.insert(r.to_owned(), loaded);
                            }
                            listed
                        }
                    },
                };
                if listed {
                    self.role_mut(c.as_deref().unwrap_or("targets"))?
                        .targets
                        .remove(name);
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

    /// Signs role `name` (`targets` or a delegated role) again with the
    /// same content: next version, new expiry.
    pub fn resign(&mut self, name: &str) -> Result<(), RepoError> {
        let role = self.role_mut(name)?;
        let version = role.common.version;
        self.summary
            .push(format!("re-signed {name} v{}", version + 1));
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
        let before = role_keys(&root, role)?.clone();
        set_role_keys(&mut root, role, keys, threshold)?;
        if role_keys(&root, role)?.keyids == before.keyids && threshold == before.threshold {
            return Err(RepoError::InvalidRequest(format!(
                "the new {role} keys are the keys the role has: nothing rotated"
            )));
        }
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
    pub fn finish(mut self, signers: &Signers) -> Result<(Publish, String), RepoError> {
        // Each delegated role is signed with the keys the new version of
        // the role above it lists (an unchanged one: as published).
        let mut above: BTreeMap<String, Targets> = BTreeMap::new();
        let unchanged: std::collections::BTreeSet<String> = self
            .delegated
            .values()
            .map(|(parent, _)| parent.clone())
            .filter(|p| p != "targets" && !self.delegated.contains_key(p))
            .collect();
        for parent in unchanged {
            let content = self.load_published(&parent)?.1;
            above.insert(parent, content);
        }
        let published = self.published;
        let old_root = &published.root.metadata.signed;
        let mut publish = Publish {
            copies: self.copies,
            ..Default::default()
        };
        let mut new_root = None;
        if let Some(mut root) = self.root.clone() {
            let old = role_keys(old_root, "root")?;
            let md = match &self.presigned_root {
                Some(md) => {
                    let expires = md.signed.common.expires;
                    if expires.is_expired(self.now) {
                        return Err(RepoError::Expired(format!(
                            "the staged root (version {}) expired at {expires}, before it could be published: clients would reject it; stage the change again (`tufctl tuf stage`) and collect its signatures within the root period",
                            md.signed.common.version
                        )));
                    }
                    md.clone()
                }
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
            new_root = Some((
                self.layout.metadata_file("root", root.common.version),
                file.bytes,
            ));
        }
        let root = self.root.as_ref().unwrap_or(old_root);
        // With a new root, the top-level roles are signed by the keys of
        // the old root too where the daemon holds them (see `NewRoot`).
        let old = self.root.is_some().then_some(old_root);
        let mut bridged = true;
        let mut meta = published.snapshot.metadata.signed.meta.clone();
        // The new targets role is moved, not copied: a large one is most
        // of an edit's memory.
        let new_targets = match self.targets {
            Some(mut targets) => {
                targets.common.version = published.targets.version() + 1;
                targets.common.expires = self.expiry.expires("targets", self.now);
                not_expired("targets", targets.common.expires, self.now)?;
                let f = sign_targets(root, targets, signers)?;
                let f = bridge(f, old, root, signers, &mut bridged)?;
                meta.insert("targets.json".into(), f.meta_version());
                publish
                    .files
                    .push((self.layout.metadata_file("targets", f.version()), f.bytes));
                Some(f.metadata.signed)
            }
            None => None,
        };
        let targets_parent = new_targets
            .as_ref()
            .unwrap_or(&published.targets.metadata.signed);
        let mut signing = Vec::with_capacity(self.delegated.len());
        for (name, (parent, _)) in &self.delegated {
            let p = match parent.as_str() {
                "targets" => Some(targets_parent),
                other => self
                    .delegated
                    .get(other)
                    .map(|(_, t)| t)
                    .or_else(|| above.get(other)),
            };
            let (keys, keyids, threshold) = p
                .and_then(|p| p.delegation_keys(name))
                .ok_or_else(|| RepoError::NotFound(no_role(name)))?;
            let role_keys = RoleKeys {
                keyids,
                threshold,
                unrecognized: Unrecognized::new(),
            };
            signing.push((keys.clone(), role_keys));
        }
        drop(above);
        for ((name, (_, mut content)), (keys, role_keys)) in self.delegated.into_iter().zip(signing)
        {
            let key = format!("{name}.json");
            content.common.version = meta.get(&key).map_or(1, |m| m.version + 1);
            content.common.expires = self.expiry.expires(&name, self.now);
            not_expired(&name, content.common.expires, self.now)?;
            let mut md = Metadata::new(content);
            sign(&mut md, &name, &keys, &role_keys, signers)?;
            let f = RoleFile::new(md)?;
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
        not_expired("root", root.common.expires, self.now)?;
        not_expired(
            "snapshot",
            snapshot.metadata.signed.common.expires,
            self.now,
        )?;
        let snapshot = bridge(snapshot, old, root, signers, &mut bridged)?;
        let timestamp = sign_timestamp(
            root,
            Some(&published.timestamp.metadata.signed),
            &snapshot,
            self.expiry,
            signers,
            self.now,
        )?;
        not_expired(
            "timestamp",
            timestamp.metadata.signed.common.expires,
            self.now,
        )?;
        let timestamp = bridge(timestamp, old, root, signers, &mut bridged)?;
        publish.files.push((
            self.layout.metadata_file("snapshot", snapshot.version()),
            snapshot.bytes,
        ));
        publish.timestamp = Some(timestamp.bytes);
        publish.root = new_root.map(|(path, bytes)| {
            if bridged {
                NewRoot::AfterTimestamp(path, bytes)
            } else {
                NewRoot::BeforeTimestamp(path, bytes)
            }
        });
        Ok((publish, self.summary.join("; ")))
    }
}

/// Refuses to publish `role` expiring at or before `now`: clients would
/// reject the version, so publishing it would break the repository.
fn not_expired(role: &str, expires: Expires, now: OffsetDateTime) -> Result<(), RepoError> {
    if expires.is_expired(now) {
        return Err(RepoError::Expired(format!(
            "{role} would be published expiring at {expires}, which is not after now ({}): nothing was published; check the expiry periods (`tufctl tuf init --expires`) and the system clock",
            Expires::at(now)
        )));
    }
    Ok(())
}

/// `file` co-signed for `old` root when there is one (a change that
/// publishes a new root); `bridged` turns false when `old`'s threshold is
/// not met.
fn bridge<T: tufd_tuf::tuf1::Role>(
    file: RoleFile<T>,
    old: Option<&Root>,
    new: &Root,
    signers: &Signers,
    bridged: &mut bool,
) -> Result<RoleFile<T>, RepoError> {
    let Some(old) = old else {
        return Ok(file);
    };
    let (file, met) = cosign_for_old_root(file, old, new, signers)?;
    *bridged &= met;
    Ok(file)
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
}
