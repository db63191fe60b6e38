//! Client-style verification of a whole repository, given a trusted root:
//! root (and rotations) → timestamp → snapshot → targets → delegations,
//! with hashes and lengths of exact file bytes, thresholds, expiry and
//! version checks — the order notary's client and server validate in.

use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};

use sha2::{Digest, Sha256, Sha512};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::expiry::format_go_time;
use crate::metadata::{
    DelegationRole, Delegations, FileMeta, Metadata, Root, Snapshot, TargetMeta, Targets,
    Timestamp, check_threshold, collect_keys,
};
use crate::role::RoleName;
use crate::rootcert::trusted_root_keys;
use crate::signed::Signed;
use crate::verify::{check_key_ids, verify_threshold};

/// The exact bytes of a repository's files, as fetched. Shared buffers: the
/// roles parsed from them keep the same bytes, not copies.
#[derive(Debug, Clone, Default)]
pub struct RepositoryFiles {
    /// Newer root files, oldest first, each one version above the previous
    /// (e.g. `2.root.json`, `3.root.json`). Empty when the trusted root is current.
    pub root_chain: Vec<Bytes>,
    /// `timestamp.json`.
    pub timestamp: Bytes,
    /// `snapshot.json`.
    pub snapshot: Bytes,
    /// `targets.json`.
    pub targets: Bytes,
    /// `targets/<x>.json` by full role name. Every delegation listed in
    /// snapshot meta must be present.
    pub delegations: BTreeMap<String, Bytes>,
    /// Targets roles (`targets`, delegations) already parsed, by role
    /// name: verification uses one instead of parsing the role's file
    /// again when its bytes are exactly that file's (the roles a change
    /// just signed, the roles of the last read). Every check but the
    /// parse still runs.
    pub parsed: BTreeMap<String, Signed<Targets>>,
}

impl RepositoryFiles {
    /// The `role` file `bytes` parsed: from [`RepositoryFiles::parsed`]
    /// when it holds a parse of exactly these bytes, else parsed now.
    fn targets_role(&self, role: &str, bytes: &Bytes) -> Result<Signed<Targets>> {
        match self.parsed_of(role, bytes) {
            Some(p) => Ok(p.clone()),
            None => Signed::<Targets>::from_role_file(role, bytes.clone()),
        }
    }

    /// The parse of `role` kept in [`RepositoryFiles::parsed`] when it
    /// was parsed from exactly `bytes`.
    pub fn parsed_of(&self, role: &str, bytes: &[u8]) -> Option<&Signed<Targets>> {
        self.parsed
            .get(role)
            .filter(|p| same_bytes(p.bytes(), bytes))
    }

    /// [`RepositoryFiles::parsed`] set to the targets roles of `repo`,
    /// which verified from these files (for the next read to reuse).
    pub fn keep_parsed(&mut self, repo: &VerifiedRepository) {
        self.parsed = std::iter::once(("targets".to_owned(), repo.targets.clone()))
            .chain(
                repo.delegations
                    .iter()
                    .map(|(name, d)| (name.clone(), d.file.clone())),
            )
            .collect();
    }
}

/// Whether `a` and `b` hold the same bytes (the same buffer, usually).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

/// A verified delegation: its file and the entry (with effective paths)
/// under which its parent delegates to it.
#[derive(Debug, Clone)]
pub struct VerifiedDelegation {
    /// The role file.
    pub file: Signed<Targets>,
    /// The delegating entry; `paths` already restricted to the parent's paths.
    pub role: DelegationRole,
}

/// A target as a client resolves it: first role (in walk order) that lists
/// it within its delegated paths.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTarget {
    /// Target name (docker: the tag).
    pub name: String,
    /// Role that signed it.
    pub role: String,
    /// Hashes and length.
    pub meta: TargetMeta,
}

/// Every role of a repository, verified.
#[derive(Debug, Clone)]
pub struct VerifiedRepository {
    /// The current root.
    pub root: Signed<Root>,
    /// timestamp.json; `None` only from [`verify_unpublished`].
    pub timestamp: Option<Signed<Timestamp>>,
    /// snapshot.json.
    pub snapshot: Signed<Snapshot>,
    /// targets.json.
    pub targets: Signed<Targets>,
    /// Delegations in walk order (breadth first, in each parent's order).
    pub delegations: Vec<(String, VerifiedDelegation)>,
    /// Delegations that did not verify and were skipped, as the notary
    /// client skips them (their targets are not listed). Always empty from
    /// [`verify_repository`], which fails instead; filled by
    /// [`verify_repository_lenient`].
    pub skipped: Vec<SkippedRole>,
}

/// A delegation a lenient verification skipped, and why.
#[derive(Debug, Clone)]
pub struct SkippedRole {
    /// The role name (`targets/releases`).
    pub name: String,
    /// Why it does not verify.
    pub reason: String,
    /// The target names its file lists (which a client does not see).
    pub targets: Vec<String>,
}

impl VerifiedRepository {
    /// Whether a verified role of this repository (its parent: `targets`
    /// or a verified delegation) delegates `role` with at least one key.
    pub fn delegates(&self, role: &str) -> bool {
        let Some(parent) = RoleName::parse(role).ok().and_then(|r| r.parent()) else {
            return false;
        };
        let file = match parent.as_str() {
            "targets" => Some(&self.targets),
            p => self
                .delegations
                .iter()
                .find(|(n, _)| n == p)
                .map(|(_, d)| &d.file),
        };
        file.is_some_and(|f| {
            f.signed()
                .delegations
                .roles
                .iter()
                .any(|e| e.name == role && !e.keyids.is_empty())
        })
    }

    /// Refuses this repository when a delegation verified before (at
    /// version `trusted`, by name in `before`) is still delegated here but
    /// its file is no longer listed in the snapshot: without this, a
    /// server holding the snapshot key could drop a role's floor (the role
    /// then counts as never published) and later list an older version.
    pub fn check_still_listed<'a>(
        &self,
        before: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> Result<()> {
        let meta = &self.snapshot.signed().meta;
        for (role, trusted) in before {
            if !meta.contains_key(role) && self.delegates(role) {
                return Err(Error::Unlisted {
                    role: role.to_owned(),
                    trusted,
                });
            }
        }
        Ok(())
    }

    /// Targets as `notary list` shows them: targets first, then delegations
    /// in walk order; a name is taken from the first role listing it, and a
    /// delegation's targets outside its paths are ignored.
    pub fn resolved_targets(&self) -> Vec<ResolvedTarget> {
        let mut seen = BTreeMap::new();
        for (name, meta) in &self.targets.signed().targets {
            seen.insert(name.clone(), ("targets".to_owned(), meta.clone()));
        }
        for (role, d) in &self.delegations {
            for (name, meta) in &d.file.signed().targets {
                if !seen.contains_key(name) && d.role.allows(name) {
                    seen.insert(name.clone(), (role.clone(), meta.clone()));
                }
            }
        }
        seen.into_iter()
            .map(|(name, (role, meta))| ResolvedTarget { name, role, meta })
            .collect()
    }

    /// What the verified `role` (`targets` or a delegation) lists for
    /// target `name`, within the role's paths.
    pub fn listed_in(&self, role: &str, name: &str) -> Option<&TargetMeta> {
        if role == "targets" {
            return self.targets.signed().targets.get(name);
        }
        let (_, d) = self.delegations.iter().find(|(r, _)| r == role)?;
        d.file
            .signed()
            .targets
            .get(name)
            .filter(|_| d.role.allows(name))
    }

    /// One target as [`VerifiedRepository::resolved_targets`] resolves it
    /// (the role listing it first, and its meta), without building the
    /// whole list: for checking a few tags of a large repository.
    pub fn resolve(&self, name: &str) -> Option<(&str, &TargetMeta)> {
        if let Some(meta) = self.targets.signed().targets.get(name) {
            return Some(("targets", meta));
        }
        self.delegations.iter().find_map(|(role, d)| {
            d.file
                .signed()
                .targets
                .get(name)
                .filter(|_| d.role.allows(name))
                .map(|meta| (role.as_str(), meta))
        })
    }
}

fn check_expiry<T: Metadata>(role: &str, signed: &Signed<T>, now: OffsetDateTime) -> Result<()> {
    let expires = signed.signed().expires();
    if expires <= now {
        return Err(Error::Expired {
            role: role.to_owned(),
            expires: format_go_time(expires).unwrap_or_else(|_| expires.to_string()),
        });
    }
    Ok(())
}

fn check_version<T: Metadata>(role: &str, signed: &Signed<T>) -> Result<()> {
    if signed.signed().version() < 1 {
        return Err(Error::BadVersion {
            role: role.to_owned(),
            found: 0,
            expected: ">= 1".into(),
        });
    }
    Ok(())
}

/// Checks `bytes` against the hashes and length recorded for `role`.
/// Every hash present among sha256/sha512 must match; at least one must be present.
pub fn check_file_meta(role: &str, bytes: &[u8], meta: &FileMeta, listed_in: &str) -> Result<()> {
    if meta.length != bytes.len() as u64 {
        return Err(Error::LengthMismatch {
            role: role.to_owned(),
            expected: meta.length,
            actual: bytes.len() as u64,
            listed_in: listed_in.to_owned(),
        });
    }
    let mut checked = 0;
    for (algorithm, expected) in meta.hashes.iter() {
        let actual = match algorithm {
            "sha256" => Sha256::digest(bytes).to_vec(),
            "sha512" => Sha512::digest(bytes).to_vec(),
            _ => continue,
        };
        if actual != expected {
            return Err(Error::HashMismatch {
                role: role.to_owned(),
                algorithm: algorithm.to_owned(),
                expected: hex::encode(expected),
                actual: hex::encode(actual),
                listed_in: listed_in.to_owned(),
            });
        }
        checked += 1;
    }
    if checked == 0 {
        return Err(Error::NoHashes {
            role: role.to_owned(),
            listed_in: listed_in.to_owned(),
        });
    }
    Ok(())
}

/// Verifies a top-level role against root: keys, threshold, version ≥ 1.
fn verify_top_level<T: Metadata>(root: &Root, role: &RoleName, signed: &Signed<T>) -> Result<()> {
    let (keys, threshold) = root.role_keys(role)?;
    verify_threshold(role.as_str(), signed, &keys, threshold)?;
    check_version(role.as_str(), signed)
}

/// Most root rotations one read follows from the trusted root to the one
/// the server serves (python-tuf's default too): each is a request, and
/// the version to reach is the server's unverified claim.
pub const MAX_ROOT_ROTATIONS: u64 = 256;

/// Refuses a root chain from version `trusted` to the server's `found`
/// longer than [`MAX_ROOT_ROTATIONS`], before anything of it is fetched.
pub fn check_rotations(trusted: u64, found: u64) -> Result<()> {
    let ahead = found.saturating_sub(trusted);
    if ahead > MAX_ROOT_ROTATIONS {
        return Err(Error::TooManyRotations {
            trusted,
            found,
            ahead,
            max: MAX_ROOT_ROTATIONS,
        });
    }
    Ok(())
}

/// The next root of a chain, checked as it arrives: `bytes` parsed, its
/// structure checked and accepted as the successor of `current` (see
/// [`verify_root_rotation`]). A reader walking a chain this way stops at
/// the first file that is not the real next root, instead of fetching the
/// whole chain a server claims before checking any of it.
pub fn verify_root_step(
    current: &Signed<Root>,
    bytes: Bytes,
    gun: &str,
    now: OffsetDateTime,
) -> Result<Signed<Root>> {
    let new = Signed::<Root>::from_role_file("root", bytes)?;
    check_root_structure(new.signed())?;
    verify_root_rotation(current, &new, gun, now)?;
    Ok(new)
}

/// Accepts `new` as the successor of the trusted root `current` for `gun`:
/// version exactly one higher, signed by a threshold of the current root's
/// certificate keys (expiry not checked, as notary allows an expired old
/// root) *and* by a threshold of the new root's valid certificate keys.
pub fn verify_root_rotation(
    current: &Signed<Root>,
    new: &Signed<Root>,
    gun: &str,
    now: OffsetDateTime,
) -> Result<()> {
    let expected = current.signed().version + 1;
    if new.signed().version != expected {
        return Err(Error::BadVersion {
            role: "root".into(),
            found: new.signed().version,
            expected: expected.to_string(),
        });
    }
    let old_keys = trusted_root_keys(current.signed(), gun, None)?;
    let old_threshold = root_threshold(current.signed())?;
    verify_threshold(
        "root (signatures by the previous root keys)",
        new,
        &old_keys,
        old_threshold,
    )?;
    verify_root_self(new, gun, Some(now))
}

fn root_threshold(root: &Root) -> Result<u32> {
    root.roles
        .get("root")
        .map(|r| r.threshold)
        .ok_or_else(|| Error::InvalidRoot("no root role in root.roles".into()))
}

/// Verifies a root's signatures with its own certificate keys.
fn verify_root_self(root: &Signed<Root>, gun: &str, now: Option<OffsetDateTime>) -> Result<()> {
    let keys = trusted_root_keys(root.signed(), gun, now)?;
    verify_threshold("root", root, &keys, root_threshold(root.signed())?)?;
    check_version("root", root)
}

/// Structural checks of a root: the four roles present with valid
/// thresholds, every key listed under its own ID.
pub fn check_root_structure(root: &Root) -> Result<()> {
    check_key_ids(&root.keys)?;
    for role in [
        RoleName::Root,
        RoleName::Targets,
        RoleName::Snapshot,
        RoleName::Timestamp,
    ] {
        root.role_keys(&role)?;
    }
    Ok(())
}

/// Verifies a whole repository as a client would, starting from
/// `trusted_root` (pinned or cached), for `gun` at time `now`.
pub fn verify_repository(
    trusted_root: &Signed<Root>,
    files: &RepositoryFiles,
    gun: &str,
    now: OffsetDateTime,
) -> Result<VerifiedRepository> {
    verify(trusted_root, files, gun, now, true, false, None)
}

/// Like [`verify_repository`], but a delegation whose file does not verify
/// (signatures below threshold, expired, version 0) is skipped with its
/// sub-delegations and recorded in [`VerifiedRepository::skipped`], as the
/// notary client skips it. Everything else must verify.
pub fn verify_repository_lenient(
    trusted_root: &Signed<Root>,
    files: &RepositoryFiles,
    gun: &str,
    now: OffsetDateTime,
) -> Result<VerifiedRepository> {
    verify(trusted_root, files, gun, now, true, true, None)
}

/// A delegation a client update left out, and why.
#[derive(Debug, Clone)]
pub struct SkippedDelegation {
    /// Full role name, e.g. `targets/releases`.
    pub name: String,
    /// The paths its parent delegates to it (restricted to the parent's).
    pub paths: Vec<String>,
    /// Its place in the walk: the number of verified delegations before it.
    pub position: usize,
    /// Why it was left out.
    pub reason: SkipReason,
}

/// Why a delegation was left out of a client update.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum SkipReason {
    /// Listed in snapshot but its file was not supplied (fetch it and
    /// verify again).
    NotFetched,
    /// It failed verification (expired, threshold not met, malformed,
    /// hash mismatch…); resolution that needs it must fail.
    Failed(std::sync::Arc<Error>),
}

impl SkippedDelegation {
    /// Whether a client walk for `target` would visit this role.
    pub fn covers(&self, target: &str) -> bool {
        self.paths.iter().any(|p| target.starts_with(p.as_str()))
    }
}

/// A client update as notary's client does it: like [`verify_repository`],
/// but a delegation whose file is missing or fails verification is left
/// out (with its subtree) and reported instead of failing the repository;
/// the caller decides whether resolution needed it. Top-level roles must
/// verify.
pub fn verify_client_update(
    trusted_root: &Signed<Root>,
    files: &RepositoryFiles,
    gun: &str,
    now: OffsetDateTime,
) -> Result<(VerifiedRepository, Vec<SkippedDelegation>)> {
    let mut skipped = Vec::new();
    let repo = verify(
        trusted_root,
        files,
        gun,
        now,
        true,
        false,
        Some(&mut skipped),
    )?;
    Ok((repo, skipped))
}

/// Like [`verify_repository`] but without a timestamp: for metadata about
/// to be published to a server that generates the timestamp itself.
/// `files.timestamp` is ignored and the result's `timestamp` is `None`.
pub fn verify_unpublished(
    trusted_root: &Signed<Root>,
    files: &RepositoryFiles,
    gun: &str,
    now: OffsetDateTime,
) -> Result<VerifiedRepository> {
    verify(trusted_root, files, gun, now, false, false, None)
}

/// [`verify_unpublished`], skipping delegations that do not verify as
/// [`verify_repository_lenient`] does.
pub fn verify_unpublished_lenient(
    trusted_root: &Signed<Root>,
    files: &RepositoryFiles,
    gun: &str,
    now: OffsetDateTime,
) -> Result<VerifiedRepository> {
    verify(trusted_root, files, gun, now, false, true, None)
}

fn verify(
    trusted_root: &Signed<Root>,
    files: &RepositoryFiles,
    gun: &str,
    now: OffsetDateTime,
    with_timestamp: bool,
    lenient: bool,
    mut client: Option<&mut Vec<SkippedDelegation>>,
) -> Result<VerifiedRepository> {
    let mut skipped = Vec::new();
    // Root: the trusted root must be self-consistent, then each rotation.
    check_root_structure(trusted_root.signed())?;
    verify_root_self(trusted_root, gun, None)?;
    let mut root = trusted_root.clone();
    for bytes in &files.root_chain {
        if &bytes[..] == root.bytes() {
            continue;
        }
        let new = Signed::<Root>::from_role_file("root", bytes.clone())?;
        check_root_structure(new.signed())?;
        verify_root_rotation(&root, &new, gun, now)?;
        root = new;
    }
    check_expiry("root", &root, now)?;
    verify_root_self(&root, gun, Some(now))?;
    let r = root.signed();

    let timestamp = if with_timestamp {
        let timestamp = Signed::<Timestamp>::from_role_file("timestamp", files.timestamp.clone())?;
        verify_top_level(r, &RoleName::Timestamp, &timestamp)?;
        check_expiry("timestamp", &timestamp, now)?;
        let snap_meta =
            timestamp
                .signed()
                .meta
                .get("snapshot")
                .ok_or_else(|| Error::MissingMeta {
                    role: "snapshot".into(),
                    listed_in: "timestamp".into(),
                })?;
        check_file_meta("snapshot", &files.snapshot, snap_meta, "timestamp")?;
        Some(timestamp)
    } else {
        None
    };

    // Snapshot (its exact bytes were checked against timestamp above).
    let snapshot = Signed::<Snapshot>::from_role_file("snapshot", files.snapshot.clone())?;
    verify_top_level(r, &RoleName::Snapshot, &snapshot)?;
    check_expiry("snapshot", &snapshot, now)?;
    let meta = &snapshot.signed().meta;
    if let Some(root_meta) = meta.get("root") {
        check_file_meta("root", root.bytes(), root_meta, "snapshot")?;
    }

    // Targets.
    let targets_meta = meta.get("targets").ok_or_else(|| Error::MissingMeta {
        role: "targets".into(),
        listed_in: "snapshot".into(),
    })?;
    check_file_meta("targets", &files.targets, targets_meta, "snapshot")?;
    let targets = files.targets_role("targets", &files.targets)?;
    verify_top_level(r, &RoleName::Targets, &targets)?;
    check_expiry("targets", &targets, now)?;

    // Delegations, breadth first from targets.
    let mut delegations: Vec<(String, VerifiedDelegation)> = Vec::new();
    // Only a parent's delegations are walked: its targets (100 000 tags)
    // are not copied into the queue.
    let mut queue: VecDeque<(String, Delegations, Option<Vec<String>>)> = VecDeque::new();
    queue.push_back(("targets".into(), targets.signed().delegations.clone(), None));
    while let Some((parent_name, parent, parent_paths)) = queue.pop_front() {
        check_key_ids(&parent.keys)?;
        for entry in &parent.roles {
            let name = RoleName::parse(&entry.name)?;
            if name.parent().as_ref().map(RoleName::as_str) != Some(parent_name.as_str()) {
                return Err(Error::UnknownDelegation {
                    role: entry.name.clone(),
                    parent: parent_name.clone(),
                });
            }
            // A role whose last key was removed (`signer remove --force`,
            // `notary delegation remove`) can vouch for nothing: like the
            // notary client, skip it rather than reject the repository.
            if entry.keyids.is_empty() {
                continue;
            }
            let mut role = entry.clone();
            if let Some(pp) = &parent_paths {
                role.paths
                    .retain(|p| pp.iter().any(|q| p.starts_with(q.as_str())));
            }
            let Some(bytes) = files.delegations.get(&entry.name) else {
                if meta.contains_key(&entry.name) {
                    if let Some(client) = client.as_deref_mut() {
                        client.push(SkippedDelegation {
                            name: entry.name.clone(),
                            paths: role.paths.clone(),
                            position: delegations.len(),
                            reason: SkipReason::NotFetched,
                        });
                        continue;
                    }
                    return Err(Error::MissingFile {
                        role: entry.name.clone(),
                    });
                }
                continue; // delegated but never published
            };
            let file = if let Some(client) = client.as_deref_mut() {
                let checked = (|| {
                    let file_meta = meta.get(&entry.name).ok_or_else(|| Error::MissingMeta {
                        role: entry.name.clone(),
                        listed_in: "snapshot".into(),
                    })?;
                    check_file_meta(&entry.name, bytes, file_meta, "snapshot")?;
                    let file = files.targets_role(&entry.name, bytes)?;
                    let keys =
                        collect_keys(&entry.name, &entry.keyids, &parent.keys, &parent_name)?;
                    check_threshold(&entry.name, entry.threshold, keys.len())?;
                    verify_threshold(&entry.name, &file, &keys, entry.threshold)?;
                    check_version(&entry.name, &file)?;
                    check_expiry(&entry.name, &file, now)?;
                    Ok(file)
                })();
                match checked {
                    Ok(file) => file,
                    Err(e) => {
                        client.push(SkippedDelegation {
                            name: entry.name.clone(),
                            paths: role.paths.clone(),
                            position: delegations.len(),
                            reason: SkipReason::Failed(std::sync::Arc::new(e)),
                        });
                        continue;
                    }
                }
            } else {
                let file_meta = meta.get(&entry.name).ok_or_else(|| Error::MissingMeta {
                    role: entry.name.clone(),
                    listed_in: "snapshot".into(),
                })?;
                check_file_meta(&entry.name, bytes, file_meta, "snapshot")?;
                let file = files.targets_role(&entry.name, bytes)?;
                let keys = collect_keys(&entry.name, &entry.keyids, &parent.keys, &parent_name)?;
                let checked = check_threshold(&entry.name, entry.threshold, keys.len())
                    .and_then(|()| verify_threshold(&entry.name, &file, &keys, entry.threshold))
                    .and_then(|_| check_version(&entry.name, &file))
                    .and_then(|()| check_expiry(&entry.name, &file, now));
                if let Err(error) = checked {
                    if !lenient {
                        return Err(error);
                    }
                    skipped.push(SkippedRole {
                        name: entry.name.clone(),
                        reason: error.to_string(),
                        targets: file.signed().targets.keys().cloned().collect(),
                    });
                    continue;
                }
                file
            };
            queue.push_back((
                entry.name.clone(),
                file.signed().delegations.clone(),
                Some(role.paths.clone()),
            ));
            delegations.push((entry.name.clone(), VerifiedDelegation { file, role }));
        }
    }
    // A file snapshot lists but no role delegates any more (a removed
    // signer: notary-server keeps its meta) is ignored, as the notary client
    // ignores it; a file snapshot does not list is not part of the repository.
    for name in files.delegations.keys() {
        if !delegations.iter().any(|(n, _)| n == name)
            && !skipped.iter().any(|s: &SkippedRole| &s.name == name)
            && !meta.contains_key(name)
        {
            let parent = RoleName::parse(name)?
                .parent()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "targets".into());
            return Err(Error::UnknownDelegation {
                role: name.clone(),
                parent,
            });
        }
    }
    Ok(VerifiedRepository {
        root,
        timestamp,
        snapshot,
        targets,
        delegations,
        skipped,
    })
}

/// Rejects a rollback: every role of `new` must be at least the version of
/// the same role in `previous` (the last repository state this client
/// trusted), as notary's client refuses older cached-over metadata.
pub fn check_no_rollback(previous: &VerifiedRepository, new: &VerifiedRepository) -> Result<()> {
    fn check(role: &str, old: u64, new: u64) -> Result<()> {
        if new < old {
            return Err(Error::BadVersion {
                role: role.to_owned(),
                found: new,
                expected: format!(">= {old} (the version already trusted)"),
            });
        }
        Ok(())
    }
    check(
        "root",
        previous.root.signed().version,
        new.root.signed().version,
    )?;
    if let (Some(old), Some(new)) = (&previous.timestamp, &new.timestamp) {
        check("timestamp", old.signed().version, new.signed().version)?;
    }
    check(
        "snapshot",
        previous.snapshot.signed().version,
        new.snapshot.signed().version,
    )?;
    check(
        "targets",
        previous.targets.signed().version,
        new.targets.signed().version,
    )?;
    for (name, old) in &previous.delegations {
        if let Some((_, d)) = new.delegations.iter().find(|(n, _)| n == name) {
            check(name, old.file.signed().version, d.file.signed().version)?;
        }
    }
    Ok(())
}
