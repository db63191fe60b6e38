//! A repository being changed: the roles an intent edits, and how the
//! changed roles are versioned, given fresh expiries and signed.

use super::TrustError;
use super::fetch::Fetched;
use super::signer::TokenSigner;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use tufd_keys::{KeyRecord, KeyStore};
use tufd_remote::Bytes;
use tufd_tuf::expiry::{ROOT_EXPIRY, SNAPSHOT_EXPIRY, TARGETS_EXPIRY};
use tufd_tuf::{
    FileMeta, Key, KeyType, Metadata, RepositoryFiles, RoleName, RoleSigner, Root, Signed,
    Snapshot, TargetMeta, Targets, sign_role,
};

/// Roles expiring within this window are re-signed on the next write.
pub const RESIGN_WINDOW: Duration = Duration::days(182);

/// How long newly signed roles stay valid. Defaults are notary's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiries {
    pub root: Duration,
    /// targets and every delegation.
    pub targets: Duration,
    pub snapshot: Duration,
}

impl Default for Expiries {
    fn default() -> Self {
        Self {
            root: ROOT_EXPIRY,
            targets: TARGETS_EXPIRY,
            snapshot: SNAPSHOT_EXPIRY,
        }
    }
}

/// A key tufd holds, ready to sign.
#[derive(Clone)]
pub struct HeldKey {
    pub signer: TokenSigner,
    pub store: Arc<dyn KeyStore>,
}

/// Every key on every readable token, by key ID (the canonical ID: the
/// SPKI-based ID, which for root's x509 keys differs from the metadata ID).
#[derive(Clone, Default)]
pub struct HeldKeys {
    by_id: BTreeMap<String, HeldKey>,
}

impl HeldKeys {
    pub fn new(keys: Vec<(KeyRecord, Arc<dyn KeyStore>)>) -> Self {
        Self {
            by_id: keys
                .into_iter()
                .map(|(record, store)| {
                    (
                        record.id.clone(),
                        HeldKey {
                            signer: TokenSigner::new(store.clone(), record),
                            store,
                        },
                    )
                })
                .collect(),
        }
    }

    /// Adds every key of `other`.
    pub fn extend(&mut self, other: &HeldKeys) {
        self.by_id
            .extend(other.by_id.iter().map(|(k, v)| (k.clone(), v.clone())));
    }

    /// The held key for a metadata key, if tufd has it.
    pub fn for_key(&self, key: &Key) -> Option<&HeldKey> {
        let id = if key.keytype().is_x509() {
            key.canonical_id().ok()?
        } else {
            key.id()
        };
        self.by_id.get(&id)
    }

    /// Whether any held key waits for a touch to sign (a transaction then
    /// signs once, on a confirmed read, and takes no joiners: asking for a
    /// second touch costs more than it saves).
    pub fn any_needs_touch(&self) -> bool {
        self.by_id
            .values()
            .any(|k| k.store.needs_touch(&k.signer.record().id))
    }

    /// The held key with this canonical ID.
    pub fn by_id(&self, id: &str) -> Option<&HeldKey> {
        self.by_id.get(id)
    }

    /// The held key named `name` for repository `gun`.
    pub fn by_label(&self, name: &str, gun: &str) -> Option<&HeldKey> {
        self.by_id.values().find(|k| {
            k.signer.record().label.name() == name && k.signer.record().label.gun() == gun
        })
    }

    /// The keys among `keyids` (looked up in `keys`) that tufd holds.
    pub fn held_among<'a>(
        &'a self,
        keyids: &[String],
        keys: &'a BTreeMap<String, Key>,
    ) -> Vec<(&'a Key, &'a HeldKey)> {
        keyids
            .iter()
            .filter_map(|id| keys.get(id))
            .filter_map(|k| self.for_key(k).map(|h| (k, h)))
            .collect()
    }
}

/// Told when a signature waits for a touch on a device.
pub trait TouchNotice: Send + Sync {
    fn touch(&self, key: &HeldKey, role: &str);
}

/// The repository as an intent changes it.
#[derive(Clone)]
pub struct Draft {
    pub(super) gun: String,
    pub(super) now: OffsetDateTime,
    pub(super) root: Root,
    pub(super) targets: Targets,
    /// Delegation files by role name (existing ones, and new ones).
    pub(super) delegations: BTreeMap<String, Targets>,
    /// Extra keys that must sign root (the old root key in a rotation).
    pub(super) extra_root_signers: Vec<Key>,
    changed: BTreeSet<String>,
    /// Versions as read (absent: the role was never published).
    base_versions: BTreeMap<String, u64>,
    /// Exact bytes of roles as read, for snapshot meta of unchanged roles.
    base_bytes: BTreeMap<String, Bytes>,
    base_snapshot: Option<Snapshot>,
    /// The repository did not exist before this transaction.
    pub(super) initializing: bool,
    /// Validity given to the roles signed now.
    pub(super) expiries: Expiries,
    /// What the repository as served must show after the publish before
    /// the caller hears "success" (see [`Expected`]).
    pub(super) expect: Vec<Expected>,
}

/// What the repository as served must show for one target name after a
/// change is published.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    /// The target (tag) name.
    pub name: String,
    /// Its content, or `None`: it must no longer resolve.
    pub want: Option<TargetMeta>,
    /// The roles the change put it into (a sign): each must list exactly
    /// `want` (what clients then resolve is reported beside, see
    /// `txn.rs`). Empty: it must resolve as `notary list` resolves it.
    pub roles: Vec<String>,
}

/// The files one transaction publishes, with their new versions.
pub struct Signed_ {
    /// Each changed role's file, shared with the request that publishes it.
    pub files: Vec<(String, Bytes)>,
    pub versions: Vec<(String, u64)>,
    pub client_snapshot: bool,
    /// The result as a repository, for checks before publishing.
    pub preview: RepositoryFiles,
    pub root: Signed<Root>,
    /// The targets roles signed, parsed (for the read-back).
    pub parsed: BTreeMap<String, Signed<Targets>>,
}

impl Draft {
    /// A draft of an existing repository, from a read the caller keeps.
    pub fn from_fetched(
        gun: &str,
        fetched: &Fetched,
        now: OffsetDateTime,
    ) -> Result<Self, TrustError> {
        Self::from_read(gun, fetched.clone(), now)
    }

    /// A draft of an existing repository, taking the read: the verified
    /// parse of each role and its exact bytes move into the draft, so a
    /// role of 100 000 tags is neither copied nor parsed again.
    pub fn from_read(gun: &str, fetched: Fetched, now: OffsetDateTime) -> Result<Self, TrustError> {
        let md = |e| TrustError::metadata(gun, e);
        let Fetched {
            repo, mut files, ..
        } = fetched;
        // The read's own references to its parses: without them, the
        // parses below are this read's alone and move instead of copying.
        drop(std::mem::take(&mut files.parsed));
        let mut base_versions = BTreeMap::new();
        let mut base_bytes = BTreeMap::new();
        base_versions.insert("root".to_owned(), repo.root.signed().version());
        base_bytes.insert("root".to_owned(), repo.root.file());
        let (targets, targets_bytes) = repo.targets.into_parts();
        base_versions.insert("targets".to_owned(), targets.version());
        base_bytes.insert("targets".to_owned(), targets_bytes);
        let mut verified: BTreeMap<String, Targets> = repo
            .delegations
            .into_iter()
            .map(|(name, d)| (name, d.file.into_signed()))
            .collect();
        let mut delegations = BTreeMap::new();
        for (name, bytes) in files.delegations {
            // The verified parse when the role is delegated; only files no
            // role delegates to any more are parsed here.
            let signed = match verified.remove(&name) {
                Some(t) => t,
                None => Signed::<Targets>::from_role_file(&name, bytes.clone())
                    .map_err(md)?
                    .into_signed(),
            };
            base_versions.insert(name.clone(), signed.version());
            base_bytes.insert(name.clone(), bytes);
            delegations.insert(name, signed);
        }
        Ok(Self {
            gun: gun.to_owned(),
            now,
            root: repo.root.into_signed(),
            targets,
            delegations,
            extra_root_signers: Vec::new(),
            changed: BTreeSet::new(),
            base_versions,
            base_bytes,
            base_snapshot: Some(repo.snapshot.into_signed()),
            initializing: false,
            expiries: Expiries::default(),
            expect: Vec::new(),
        })
    }

    /// A draft of a new repository with this root and empty targets.
    pub fn new_repository(gun: &str, root: Root, now: OffsetDateTime) -> Self {
        let mut d = Self {
            gun: gun.to_owned(),
            now,
            root,
            targets: Targets::new(now + TARGETS_EXPIRY),
            delegations: BTreeMap::new(),
            extra_root_signers: Vec::new(),
            changed: BTreeSet::new(),
            base_versions: BTreeMap::new(),
            base_bytes: BTreeMap::new(),
            base_snapshot: None,
            initializing: true,
            expiries: Expiries::default(),
            expect: Vec::new(),
        };
        d.mark("root");
        d.mark("targets");
        d
    }

    /// Records that `role` changed and must be re-signed.
    fn mark(&mut self, role: &str) {
        self.changed.insert(role.to_owned());
    }

    /// Re-signs `role` in this publish (a delegation without a file gets
    /// its first version, empty).
    pub fn resign(&mut self, role: &str) {
        if role.starts_with("targets/") {
            self.delegation_mut(role);
        }
        self.mark(role);
    }

    /// The roles this draft re-signs, sorted.
    pub fn changed_roles(&self) -> Vec<String> {
        self.changed.iter().cloned().collect()
    }

    /// The direct delegations of targets (`targets/<name>`), in order.
    pub fn direct_delegations(&self) -> Vec<String> {
        self.targets
            .delegations
            .roles
            .iter()
            .filter(|r| r.name.matches('/').count() == 1)
            .map(|r| r.name.clone())
            .collect()
    }

    /// Delegation files that some role still delegates to.
    pub fn delegated_roles(&self) -> Vec<String> {
        self.delegations
            .keys()
            .filter(|r| self.delegation_keys(r).is_some())
            .cloned()
            .collect()
    }

    /// Lists `tag` with `meta` in targets-type `role` (created if it is a
    /// delegation without a file yet). Whether anything changed.
    pub fn put_target(&mut self, role: &str, tag: &str, meta: TargetMeta) -> bool {
        let t = if role == "targets" {
            &mut self.targets
        } else {
            self.delegation_mut(role)
        };
        if t.targets.get(tag).is_some_and(|m| {
            m.length == meta.length && m.hashes.get("sha256") == meta.hashes.get("sha256")
        }) {
            return false;
        }
        t.targets.insert(tag.to_owned(), meta);
        self.mark(role);
        true
    }

    /// Removes `tag` from targets-type `role`.
    pub fn remove_target(&mut self, role: &str, tag: &str) {
        let t = if role == "targets" {
            Some(&mut self.targets)
        } else {
            self.delegations.get_mut(role)
        };
        if t.is_some_and(|t| t.targets.remove(tag).is_some()) {
            self.mark(role);
        }
    }

    /// Adds `key` to the delegation `role` of targets (all paths), creating
    /// the delegation if needed.
    pub fn delegate(&mut self, role: &RoleName, key: &Key) -> Result<(), tufd_tuf::Error> {
        self.targets
            .delegations
            .add_to_role(role, std::slice::from_ref(key), &[String::new()])?;
        self.mark("targets");
        Ok(())
    }

    /// Restores a delegation entry's keys and paths (as they were).
    pub fn redelegate(
        &mut self,
        role: &RoleName,
        keys: &[Key],
        paths: &[String],
    ) -> Result<(), tufd_tuf::Error> {
        self.targets.delegations.add_to_role(role, keys, paths)?;
        self.mark("targets");
        Ok(())
    }

    /// Targets no longer delegates `role` (its file stays on the server,
    /// ignored by clients).
    pub fn undelegate(&mut self, role: &str) {
        if self.targets.delegations.remove_role(role).is_some() {
            self.mark("targets");
        }
    }

    /// Removes `keyids` from the delegation `role` of targets.
    pub fn remove_delegation_keys(&mut self, role: &str, keyids: &[String]) {
        self.targets.delegations.remove_keys_from_role(role, keyids);
        self.mark("targets");
    }

    /// Sets the keys of a top-level role in root.
    pub fn set_root_keys(&mut self, role: &RoleName, keys: &[Key]) -> Result<(), tufd_tuf::Error> {
        self.root.set_role_keys(role, keys)?;
        self.mark("root");
        Ok(())
    }

    /// Keys that sign root besides the current root keys (the old root
    /// keys during a rotation).
    pub fn cosign_root(&mut self, keys: Vec<Key>) {
        self.extra_root_signers = keys;
        self.mark("root");
    }

    /// Whether anything changed.
    pub fn is_changed(&self) -> bool {
        !self.changed.is_empty()
    }

    /// The delegation file `name`, created empty if it does not exist yet.
    pub(super) fn delegation_mut(&mut self, name: &str) -> &mut Targets {
        let expires = self.now + TARGETS_EXPIRY;
        self.delegations
            .entry(name.to_owned())
            .or_insert_with(|| Targets::new(expires))
    }

    /// The targets-type role `name` (`targets` or a delegation).
    pub fn targets_role(&self, name: &str) -> Option<&Targets> {
        if name == "targets" {
            Some(&self.targets)
        } else {
            self.delegations.get(name)
        }
    }

    /// The keys and key IDs allowed to sign targets-type role `name`, from
    /// its delegating parent in this draft.
    pub fn delegation_keys(&self, name: &str) -> Option<(Vec<String>, &BTreeMap<String, Key>)> {
        let role = RoleName::parse(name).ok()?;
        let parent = role.parent()?;
        let parent = self.targets_role(parent.as_str())?;
        let entry = parent.delegations.role(name)?;
        Some((entry.keyids.clone(), &parent.delegations.keys))
    }

    /// The held keys that may sign `role` now.
    pub fn signers_for<'a>(
        &'a self,
        role: &str,
        held: &'a HeldKeys,
    ) -> Vec<(&'a Key, &'a HeldKey)> {
        match role {
            "root" | "targets" | "snapshot" | "timestamp" => self
                .root
                .roles
                .get(role)
                .map(|r| held.held_among(&r.keyids, &self.root.keys))
                .unwrap_or_default(),
            _ => self
                .delegation_keys(role)
                .map(|(ids, keys)| held.held_among(&ids, keys))
                .unwrap_or_default(),
        }
    }

    /// Marks for re-signing every role tufd can sign that expires within
    /// [`RESIGN_WINDOW`], so a write never leaves a role about to lapse.
    pub fn refresh_expiring(&mut self, held: &HeldKeys) {
        let soon = self.now + RESIGN_WINDOW;
        let mut due = Vec::new();
        if self.root.expires < soon && !self.signers_for("root", held).is_empty() {
            due.push("root".to_owned());
        }
        if self.targets.expires < soon && !self.signers_for("targets", held).is_empty() {
            due.push("targets".to_owned());
        }
        for (name, t) in &self.delegations {
            if t.expires < soon && !self.signers_for(name, held).is_empty() {
                due.push(name.clone());
            }
        }
        for role in due {
            tracing::info!(gun = %self.gun, role, "re-signing a role close to expiry");
            self.mark(&role);
        }
    }

    fn next_version(&self, role: &str) -> u64 {
        self.base_versions.get(role).map_or(1, |v| v + 1)
    }

    /// Signs every changed role (and snapshot when tufd holds its key) on
    /// the tokens. Blocking: run on a blocking thread.
    pub fn sign(mut self, held: &HeldKeys, touch: &dyn TouchNotice) -> Result<Signed_, TrustError> {
        let gun = self.gun.clone();
        let md = |e| TrustError::metadata(&gun, e);
        let mut files = Vec::new();
        let mut versions = Vec::new();

        let sign_with = |role: &str, keys: &[(&Key, &HeldKey)]| -> Vec<(Key, HeldKey)> {
            keys.iter()
                .map(|(k, h)| {
                    if h.store.needs_touch(&h.signer.record().id) {
                        touch.touch(h, role);
                    }
                    ((*k).clone(), (*h).clone())
                })
                .collect()
        };
        let no_key = |role: &str| {
            TrustError::NoKey(format!(
                "{gun}: tufd holds no key that may sign {role}; load one into a token (tufctl key load) or ask who holds it"
            ))
        };

        // root
        let root_signed = if self.changed.contains("root") {
            self.root.version = self.next_version("root");
            self.root.expires = self.now + self.expiries.root;
            let mut signers = sign_with("root", &self.signers_for("root", held));
            for k in &self.extra_root_signers {
                if let Some(h) = held.for_key(k)
                    && !signers.iter().any(|(s, _)| s.id() == k.id())
                {
                    signers.push((k.clone(), h.clone()));
                }
            }
            if signers.is_empty() {
                return Err(no_key("root"));
            }
            let rs: Vec<RoleSigner<'_>> = signers
                .iter()
                .map(|(k, h)| RoleSigner::new(k, &h.signer))
                .collect();
            let signed = sign_role("root", self.root.clone(), &rs).map_err(md)?;
            files.push(("root".to_owned(), signed.file()));
            versions.push(("root".to_owned(), self.root.version));
            signed
        } else {
            Signed::<Root>::from_role_file(
                "root",
                self.base_bytes.get("root").cloned().unwrap_or_default(),
            )
            .map_err(md)?
        };

        let mut new_bytes: BTreeMap<String, Bytes> = BTreeMap::new();
        // Moves the role's contents and its file through signing and back:
        // a targets role of 100 000 tags is not copied (its file is shared
        // by the publish and the new bytes).
        let (now, targets_expiry) = (self.now, self.expiries.targets);
        let sign_one = |job: TargetsJob| -> Result<(String, Signed<Targets>, u64), TrustError> {
            let TargetsJob {
                name,
                mut targets,
                signers,
                next,
            } = job;
            if signers.is_empty() {
                return Err(no_key(&name));
            }
            targets.version = next;
            targets.expires = now + targets_expiry;
            let rs: Vec<RoleSigner<'_>> = signers
                .iter()
                .map(|(k, h)| RoleSigner::new(k, &h.signer))
                .collect();
            let role = sign_role(&name, targets, &rs).map_err(md)?;
            Ok((name, role, next))
        };
        // Who signs each changed targets role, decided before any contents
        // move out (a delegation's keys are listed in its parent).
        let mut roles: Vec<String> = Vec::new();
        if self.changed.contains("targets") {
            roles.push("targets".to_owned());
        }
        roles.extend(
            self.changed
                .iter()
                .filter(|r| r.starts_with("targets/"))
                .cloned(),
        );
        let mut jobs: Vec<TargetsJob> = roles
            .into_iter()
            .map(|name| TargetsJob {
                signers: sign_with(&name, &self.signers_for(&name, held)),
                next: self.next_version(&name),
                targets: Targets::new(self.now),
                name,
            })
            .collect();
        for job in &mut jobs {
            job.targets = if job.name == "targets" {
                std::mem::replace(&mut self.targets, Targets::new(self.now))
            } else {
                self.delegations.remove(&job.name).ok_or_else(|| {
                    TrustError::Internal(format!("{} marked changed but absent", job.name))
                })?
            };
        }
        // Every delegation of the result, signed now or not.
        let mut delegation_names: std::collections::BTreeSet<String> =
            self.delegations.keys().cloned().collect();
        delegation_names.extend(
            jobs.iter()
                .filter(|j| j.name != "targets")
                .map(|j| j.name.clone()),
        );
        // The roles signed, as parsed: the checks and the read-back use
        // them for these very bytes instead of parsing them again.
        let mut parsed: BTreeMap<String, Signed<Targets>> = BTreeMap::new();
        for signed in sign_all(jobs, &sign_one) {
            let (name, role, next) = signed?;
            files.push((name.clone(), role.file()));
            new_bytes.insert(name.clone(), role.file());
            versions.push((name.clone(), next));
            parsed.insert(name, role);
        }

        // snapshot: when tufd holds its key; otherwise the server makes it.
        let snapshot_signers = sign_with("snapshot", &self.signers_for("snapshot", held));
        let client_snapshot = !snapshot_signers.is_empty();
        // Role files by name for the snapshot meta and the preview (shared
        // with the files to publish and the base, not copied).
        let file_of = |role: &str| -> Option<Bytes> {
            if role == "root" {
                return Some(root_signed.file());
            }
            new_bytes
                .get(role)
                .or_else(|| self.base_bytes.get(role))
                .cloned()
        };
        let mut snapshot_bytes = Bytes::new();
        if client_snapshot {
            let mut snap = self
                .base_snapshot
                .clone()
                .unwrap_or_else(|| Snapshot::new(self.now + self.expiries.snapshot));
            let mut roles: Vec<String> = vec!["root".into(), "targets".into()];
            roles.extend(delegation_names.iter().cloned());
            for role in roles {
                if let Some(b) = file_of(&role) {
                    snap.meta.insert(role, FileMeta::of(&b));
                }
            }
            snap.version = self
                .next_version("snapshot")
                .max(self.base_snapshot.as_ref().map_or(1, |s| s.version + 1));
            snap.expires = self.now + self.expiries.snapshot;
            let rs: Vec<RoleSigner<'_>> = snapshot_signers
                .iter()
                .map(|(k, h)| RoleSigner::new(k, &h.signer))
                .collect();
            let signed = sign_role("snapshot", snap.clone(), &rs).map_err(md)?;
            snapshot_bytes = signed.file();
            files.push(("snapshot".to_owned(), snapshot_bytes.clone()));
            versions.push(("snapshot".to_owned(), snap.version));
        }

        let preview = RepositoryFiles {
            root_chain: Vec::new(),
            timestamp: Bytes::new(),
            snapshot: snapshot_bytes,
            targets: file_of("targets").unwrap_or_default(),
            delegations: delegation_names
                .iter()
                .filter_map(|n| file_of(n).map(|b| (n.clone(), b)))
                .collect(),
            parsed: parsed.clone(),
        };
        Ok(Signed_ {
            files,
            versions,
            client_snapshot,
            preview,
            root: root_signed,
            parsed,
        })
    }
}

/// A plain `ecdsa` key from a PEM public key or certificate, as
/// `signer add --key` takes it.
pub fn key_from_pem(text: &str) -> Result<Key, TrustError> {
    let bad = |m: String| TrustError::InvalidRequest(m);
    let block = pem::parse(text.trim_start())
        .map_err(|e| bad(format!("the signer key is not PEM: {e}")))?;
    match block.tag() {
        "PUBLIC KEY" => {
            use p256::pkcs8::DecodePublicKey;
            p256::PublicKey::from_public_key_der(block.contents()).map_err(|_| {
                bad("the signer key is not an EC P-256 public key (tufd signers use ECDSA P-256, like docker)".into())
            })?;
            Ok(Key::ecdsa(block.contents().to_vec()))
        }
        "CERTIFICATE" => {
            let key = Key::ecdsa_x509(block.contents());
            key.spki_der()
                .map_err(|e| bad(format!("the signer certificate cannot be used: {e}")))?;
            Ok(key)
        }
        other => Err(bad(format!(
            "the signer key file holds a {other:?} block; give a PUBLIC KEY (as `tufctl key generate` writes) or a CERTIFICATE"
        ))),
    }
}

/// Converts the server's `timestamp.key` / `snapshot.key` answer to a key.
pub fn server_key(gun: &str, k: &tufd_remote::ServerKey) -> Result<Key, TrustError> {
    use base64::Engine;
    let keytype = KeyType::parse(&k.keytype).ok_or_else(|| {
        TrustError::InvalidRequest(format!(
            "{gun}: the server's key has unsupported type {:?}",
            k.keytype
        ))
    })?;
    let public = base64::engine::general_purpose::STANDARD
        .decode(&k.public)
        .map_err(|e| {
            TrustError::InvalidRequest(format!("{gun}: the server's key is not base64: {e}"))
        })?;
    Ok(Key::new(keytype, public))
}

/// One targets role to sign: its contents, the keys, its next version.
struct TargetsJob {
    name: String,
    targets: Targets,
    signers: Vec<(Key, HeldKey)>,
    next: u64,
}

/// Most targets entries, over all roles of one signing, for which the roles
/// are signed side by side: each signature waits on its token (one
/// `C_SignInit` costs more than the signature on SoftHSM2), and a docker
/// sign changes two roles (the signer's and `targets/releases`). Larger
/// roles are signed one after the other, so that no two canonical
/// encodings of a large repository are held at once.
const PARALLEL_SIGN_MAX_TARGETS: usize = 10_000;

/// Fewest targets entries, over all roles of one signing, for which the
/// roles are signed side by side. Below it starting a thread costs more
/// than it saves: a docker sign into a small repository (two roles of a
/// few entries) answered 0.1–0.8 ms sooner signed one role after the
/// other (three runs of 150–200 alternating signs), and at 2 × 1 000
/// entries both ways took the same time.
const PARALLEL_SIGN_MIN_TARGETS: usize = 2_000;

/// Runs `sign` on every job, side by side when there are several
/// mid-sized ones; the results come back in the jobs' order.
fn sign_all<R: Send>(jobs: Vec<TargetsJob>, sign: &(dyn Fn(TargetsJob) -> R + Sync)) -> Vec<R> {
    let entries: usize = jobs.iter().map(|j| j.targets.targets.len()).sum();
    if jobs.len() < 2 || !(PARALLEL_SIGN_MIN_TARGETS..=PARALLEL_SIGN_MAX_TARGETS).contains(&entries)
    {
        return jobs.into_iter().map(sign).collect();
    }
    std::thread::scope(|scope| {
        let mut jobs = jobs.into_iter();
        let first = jobs.next();
        let others: Vec<_> = jobs.map(|job| scope.spawn(move || sign(job))).collect();
        let mut results = Vec::with_capacity(others.len() + 1);
        results.extend(first.map(sign));
        for handle in others {
            match handle.join() {
                Ok(r) => results.push(r),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, entries: usize) -> TargetsJob {
        let mut targets = Targets::new(OffsetDateTime::now_utc());
        for i in 0..entries {
            targets
                .targets
                .insert(format!("t{i}"), TargetMeta::of(name.as_bytes()));
        }
        TargetsJob {
            name: name.to_owned(),
            targets,
            signers: Vec::new(),
            next: 1,
        }
    }

    /// Which thread signed each job, in the jobs' order.
    fn signed_on(jobs: Vec<TargetsJob>) -> Vec<(String, std::thread::ThreadId)> {
        sign_all(jobs, &|j: TargetsJob| (j.name, std::thread::current().id()))
    }

    /// Small roles (a docker sign into a small repository) are signed on
    /// the calling thread, one after the other; mid-sized ones side by
    /// side; large ones one after the other again. The results keep the
    /// jobs' order either way.
    #[test]
    fn roles_are_signed_side_by_side_only_when_mid_sized() {
        let here = std::thread::current().id();
        let small = signed_on(vec![job("targets/a", 1), job("targets/releases", 3)]);
        assert_eq!(small[0].0, "targets/a");
        assert_eq!(small[1].0, "targets/releases");
        assert!(small.iter().all(|(_, t)| *t == here));

        let half = PARALLEL_SIGN_MIN_TARGETS / 2;
        let mid = signed_on(vec![job("targets/a", half), job("targets/releases", half)]);
        assert_eq!(mid[0], ("targets/a".to_owned(), here));
        assert_eq!(mid[1].0, "targets/releases");
        assert_ne!(mid[1].1, here, "the second role on a thread of its own");

        let over = PARALLEL_SIGN_MAX_TARGETS / 2 + 1;
        let large = signed_on(vec![job("targets/a", over), job("targets/releases", over)]);
        assert!(large.iter().all(|(_, t)| *t == here));
    }

    /// A draft taking a read moves the read's parses in, though the read
    /// also keeps them for the next read (`RepositoryFiles::parsed`): a
    /// role of 100 000 tags is not copied (here: the first delegation key
    /// id of targets is the same allocation before and after).
    #[test]
    fn a_draft_takes_the_reads_parses_without_copying() {
        use crate::trust::intent::testkit::Kit;
        let mut read = Kit::new().repository(&["alice"]);
        // As a read from the server keeps them.
        let repo = read.repo.clone();
        read.files.keep_parsed(&repo);
        drop(repo);
        assert!(read.files.parsed.contains_key("targets"));
        let first = |t: &Targets| t.delegations.keys.keys().next().map(|k| k.as_ptr());
        let before = first(read.repo.targets.signed());
        assert!(before.is_some(), "targets delegates");
        let draft = Draft::from_read(Kit::GUN, read, OffsetDateTime::now_utc()).unwrap();
        assert_eq!(first(&draft.targets), before);
    }
}
