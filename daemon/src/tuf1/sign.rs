//! Signing roles with the token keys a repository's metadata lists, each
//! checked against the threshold it must meet.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use time::OffsetDateTime;
use tufd_tuf::DigestSigner;
use tufd_tuf::tuf1::{
    Common, Key, MetaFile, Metadata, Role, RoleKeys, Root, Snapshot, Targets, Timestamp,
    Unrecognized,
};

use super::error::RepoError;
use super::expiry::ExpiryPolicy;
use super::files::RoleFile;

/// Token keys by TUF 1.0 key ID.
#[derive(Clone, Default)]
pub struct Signers {
    keys: HashMap<String, Arc<dyn DigestSigner + Send + Sync>>,
    /// Keys that need a person to sign (a touch).
    attended: HashSet<String>,
    unreadable: Vec<String>,
}

impl Signers {
    /// Records a token that could not be read (named in "no key" errors).
    pub fn unreadable(&mut self, why: String) {
        self.unreadable.push(why);
    }

    /// Why keys may be missing: the tokens that could not be read.
    pub fn missing_hint(&self) -> String {
        if self.unreadable.is_empty() {
            String::new()
        } else {
            format!(
                " (tokens that could not be read: {})",
                self.unreadable.join("; ")
            )
        }
    }

    /// Adds a signer under the ID of its key.
    pub fn insert(&mut self, signer: Arc<dyn DigestSigner + Send + Sync>) -> Result<(), RepoError> {
        let key = Key::ecdsa_p256(&signer.spki_der()).map_err(RepoError::metadata("token key"))?;
        self.keys.insert(key.key_id(), signer);
        Ok(())
    }

    /// Adds a signer that needs a person at the device to sign (a touch
    /// policy): the daemon never signs with it on its own.
    pub fn insert_attended(
        &mut self,
        signer: Arc<dyn DigestSigner + Send + Sync>,
    ) -> Result<(), RepoError> {
        let key = Key::ecdsa_p256(&signer.spki_der()).map_err(RepoError::metadata("token key"))?;
        self.attended.insert(key.key_id());
        self.keys.insert(key.key_id(), signer);
        Ok(())
    }

    /// The keys the daemon can sign with on its own: on a token it can
    /// use now (open, PIN configured or cached) with no touch needed.
    pub fn unattended(&self) -> Signers {
        Signers {
            keys: self
                .keys
                .iter()
                .filter(|(id, _)| !self.attended.contains(*id))
                .map(|(id, s)| (id.clone(), s.clone()))
                .collect(),
            attended: HashSet::new(),
            unreadable: self.unreadable.clone(),
        }
    }

    /// Whether these signers hold `threshold` distinct keys of `keyids`.
    pub fn can_sign(&self, keyids: &[String], threshold: u64) -> bool {
        let held: HashSet<&String> = keyids
            .iter()
            .filter(|id| self.keys.contains_key(*id))
            .collect();
        held.len() as u64 >= threshold.max(1)
    }

    /// The signer of a key ID.
    pub fn get(&self, keyid: &str) -> Option<&(dyn DigestSigner + Send + Sync)> {
        self.keys.get(keyid).map(|s| &**s)
    }
}

/// Signs `md` with every listed key tufd holds; fails when that is fewer
/// than the threshold.
pub(crate) fn sign<T: Role>(
    md: &mut Metadata<T>,
    role: &str,
    keys: &BTreeMap<String, Key>,
    role_keys: &RoleKeys,
    signers: &Signers,
) -> Result<(), RepoError> {
    md.signatures.clear();
    let message = md.canonical_signed().map_err(RepoError::metadata(role))?;
    let mut missing = None;
    for keyid in &role_keys.keyids {
        let (Some(key), Some(signer)) = (keys.get(keyid), signers.get(keyid)) else {
            missing.get_or_insert_with(|| keyid.clone());
            continue;
        };
        let sig = tufd_tuf::tuf1::sign::sign_message(role, &message, key, signer)
            .map_err(RepoError::metadata(role))?;
        md.signatures.push(sig);
    }
    if (md.signatures.len() as u64) < role_keys.threshold {
        return Err(RepoError::NoKey {
            role: format!("{role}{}", signers.missing_hint()),
            keyid: missing.unwrap_or_default(),
        });
    }
    Ok(())
}

pub(crate) fn role_keys<'a>(root: &'a Root, role: &str) -> Result<&'a RoleKeys, RepoError> {
    root.roles
        .get(role)
        .ok_or_else(|| RepoError::Internal(format!("root lists no {role} role")))
}

/// Refuses a threshold no set of `count` keys can meet (or zero).
pub fn check_threshold(role: &str, threshold: u64, count: usize) -> Result<(), RepoError> {
    if threshold == 0 || threshold > count as u64 {
        return Err(RepoError::InvalidRequest(format!(
            "{role}: threshold {threshold} with {count} key(s)"
        )));
    }
    Ok(())
}

/// Lists `keys` as `role`'s keys in root with `threshold`, removing keys
/// no role uses any more.
pub fn set_role_keys(
    root: &mut Root,
    role: &str,
    keys: Vec<Key>,
    threshold: u64,
) -> Result<(), RepoError> {
    check_threshold(role, threshold, keys.len())?;
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

pub(crate) fn sign_targets(
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

pub(crate) fn sign_delegated(
    parent: &Targets,
    name: &str,
    content: Targets,
    signers: &Signers,
) -> Result<RoleFile<Targets>, RepoError> {
    let (keys, keyids, threshold) = parent
        .delegation_keys(name)
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

pub(crate) fn sign_snapshot(
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

pub(crate) fn sign_timestamp(
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
            tufd_tuf::tuf1::sign::sign_metadata(&mut md, key, signer)
                .map_err(RepoError::metadata("root"))?;
        }
    }
    Ok(md)
}

/// Adds to `file`, signed with the keys `new` root lists for its role,
/// the signatures of the keys `old` root listed for it that `signers`
/// hold, so that it verifies under both roots: a root rotation can then
/// publish the roles it re-signs before the new root itself, and a client
/// reading at any moment finds a version that verifies (under the old
/// root before the new root file exists, under the new one after).
/// Returns the file and whether `old`'s threshold is met (always when the
/// role's keys did not change).
pub(crate) fn cosign_for_old_root<T: Role>(
    file: RoleFile<T>,
    old: &Root,
    new: &Root,
    signers: &Signers,
) -> Result<(RoleFile<T>, bool), RepoError> {
    let role = T::TYPE;
    let (old_keys, new_keys) = (role_keys(old, role)?, role_keys(new, role)?);
    let same_key = |id: &String| old.keys.get(id) == new.keys.get(id);
    if old_keys.keyids == new_keys.keyids
        && old_keys.threshold == new_keys.threshold
        && old_keys.keyids.iter().all(same_key)
    {
        return Ok((file, true));
    }
    let message = file.signed_message()?;
    let mut md = file.metadata;
    for keyid in &old_keys.keyids {
        if md.signatures.iter().any(|s| &s.keyid == keyid) {
            continue;
        }
        if let (Some(key), Some(signer)) = (old.keys.get(keyid), signers.get(keyid)) {
            let sig = tufd_tuf::tuf1::sign::sign_message(role, &message, key, signer)
                .map_err(RepoError::metadata(role))?;
            md.signatures.push(sig);
        }
    }
    let file = RoleFile::new(md)?;
    let bridged = super::files::check_top_level(old, &file).is_ok();
    Ok((file, bridged))
}
