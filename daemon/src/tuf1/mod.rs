//! TUF 1.0 repositories on directories, every key on a token, with the
//! online roles (snapshot, timestamp) kept fresh by the daemon.
//!
//! - [`files`]: the directory layout, reading what is published, atomic
//!   publishing (new files first, `timestamp.json` last)
//! - [`edit`]: named synchronous edits (init, add/remove targets,
//!   delegate, rotate, publish a staged root)
//! - [`expiry`], [`sign`], [`refresh`]: expiry policy, signing with the
//!   listed keys, when roles are due; `refresher`: the daemon's timer
//! - [`staged`]: offline k-of-n root changes that travel as a file
//! - [`scope`]: which token keys may sign for a repository (its own and
//!   holders' keys, never another repository's)
//! - [`requests`]: what the manager is asked and answers
//! - [`places`]: the configured repositories and roots requests resolve in
//! - [`dir`]: a request's repository opened once below its configured
//!   directory, no symbolic link followed; every file operation through it
//! - [`registry`]: the repositories this daemon manages and their refresh
//!   record, in the state directory
//! - [`tree`]: the delegation graph (nested roles, hash bins);
//!   [`status`]: what `tuf status` says of each role
//! - this module: [`Tuf1`], the async driver: it finds the token keys,
//!   serializes writers of one repository and runs the refresher task.
//!
//! The TUF layer (`tufd_tuf::tuf1`) knows nothing of tokens; this module
//! knows nothing of gRPC.

pub mod dir;
pub mod edit;
pub mod error;
pub mod expiry;
pub mod files;
pub mod interrupted;
pub mod places;
pub mod refresh;
mod refresher;
pub mod registry;
pub mod requests;
pub mod scope;
pub mod sign;
pub mod staged;
pub mod status;
pub mod tree;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tufd_keys::{KeyLabel, KeyRecord, KeyStore};
use tufd_tuf::tuf1::Key;
use tufd_tuf::{DigestSigner, SignError};

use crate::keyring::{Keyring, KeyringError};
use dir::Beneath;
use edit::InitKeys;
pub use error::RepoError;
pub use expiry::ExpiryPolicy;
use files::{Layout, Online, Published};
use registry::{Registry, RepoRecord, RepoState};
pub use requests::{AddTarget, DelegateRequest, InitRequest, RepoStatus, RoleState, StagedReport};
use requests::{describe, key_from_pem};
use scope::{HolderCheck, KeyScope, UnusedKey};
use sign::Signers;
use tree::Tree;

/// How long the refresher sleeps at most between looks at its repositories.
const REFRESH_TICK: Duration = Duration::from_secs(60);
/// How long it waits before trying a failed refresh again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Told, with the device's kind and serial, when a signature waits for a
/// touch on it.
pub type TouchSink = tokio::sync::mpsc::UnboundedSender<(String, String)>;

/// A key on a token as a [`DigestSigner`] (signing blocks).
struct TokenKey {
    store: Arc<dyn KeyStore>,
    key: KeyRecord,
    touch: Option<TouchSink>,
}

impl DigestSigner for TokenKey {
    fn spki_der(&self) -> Vec<u8> {
        self.key.spki_der.clone()
    }

    fn sign_sha256(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignError> {
        if let Some(touch) = &self.touch
            && self.store.needs_touch(&self.key.id)
        {
            let _ = touch.send(self.store.device());
        }
        self.store
            .sign_digest(&self.key.id, digest)
            .map_err(SignError::new)
    }

    /// `KeyStore::sign_digest` verifies each signature before returning it.
    fn checks_own_signatures(&self) -> bool {
        true
    }
}

/// The keys a scope admits, and the others.
struct ScopedSigners {
    signers: Signers,
    /// Keys the scope does not admit, with why.
    unused: Vec<UnusedKey>,
    /// Tokens that could not be read, with why.
    unreadable: Vec<String>,
}

impl ScopedSigners {
    /// The keys not admitted that `staged` asks for.
    fn unused_for(&self, staged: &staged::Staged) -> Vec<UnusedKey> {
        let wanted = staged.root_key_ids();
        self.unused
            .iter()
            .filter(|u| wanted.contains(&u.key_id))
            .cloned()
            .collect()
    }
}

/// "abcdef012345 (why); …" for messages.
fn describe_unused(unused: &[UnusedKey]) -> String {
    unused
        .iter()
        .map(|u| format!("key {} not used ({})", short_id(&u.key_id), u.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Delegation graphs by repository, with the snapshot versions each was
/// read for.
type TreeCache = HashMap<PathBuf, (BTreeMap<String, u64>, Arc<Tree>)>;

/// The TUF 1.0 repository manager.
pub struct Tuf1 {
    keyring: Arc<Keyring>,
    registry: Registry,
    locks: std::sync::Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    wake: tokio::sync::Notify,
    /// Each repository's delegation graph, with the snapshot versions it
    /// was read for (equal versions, equal graph).
    trees: std::sync::Mutex<TreeCache>,
    /// Roles the log already warned need their holder (by version).
    warned: std::sync::Mutex<HashSet<(PathBuf, String, u64)>>,
    /// The (root, snapshot) versions of each repository last found not
    /// interrupted (see [`interrupted`]), so the refresher checks a
    /// version once.
    sound: std::sync::Mutex<HashMap<PathBuf, (u64, u64)>>,
    /// Repositories an init of this daemon is writing now.
    creating: std::sync::Mutex<HashSet<PathBuf>>,
}

/// A repository an init is writing, for as long as it lives.
struct Creating<'a> {
    set: &'a std::sync::Mutex<HashSet<PathBuf>>,
    dir: PathBuf,
}

impl<'a> Creating<'a> {
    fn mark(set: &'a std::sync::Mutex<HashSet<PathBuf>>, dir: &Path) -> Self {
        set.lock().expect("creating set").insert(dir.to_owned());
        Self {
            set,
            dir: dir.to_owned(),
        }
    }
}

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        self.set.lock().expect("creating set").remove(&self.dir);
    }
}

/// Runs `f` on a blocking thread, then hands the memory it freed back to
/// the system.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RepoError> + Send + 'static,
) -> Result<T, RepoError> {
    tokio::task::spawn_blocking(move || {
        let result = f();
        // Edits of a 100 000-target role on one blocking thread after
        // another would leave several edits' memory in glibc's arenas.
        crate::memory::release();
        result
    })
    .await
    .map_err(|e| RepoError::Internal(format!("worker failed: {e}")))?
}

/// What a TUF 1.0 repository's keys' labels have before its directory.
pub(crate) const LABEL_PREFIX: &str = "tuf1:";

/// The key name prefix of a repository's keys: `tuf1:<dir>` as the label's
/// repository part.
fn label(dir: &Path, name: &str) -> Result<KeyLabel, RepoError> {
    KeyLabel::new(name, &format!("{LABEL_PREFIX}{}", dir.display())).map_err(|e| {
        RepoError::InvalidRequest(format!(
            "{}: cannot name keys for this directory ({e}); use a shorter path",
            dir.display()
        ))
    })
}

/// Opens a request's repository directory, once per request (the policy
/// has judged the request by now). Test builds may pause just before
/// (`tuf1-checked`, see [`crate::testhook`]).
async fn open(at: &Beneath, create: bool) -> Result<Layout, RepoError> {
    #[cfg(feature = "test-hooks")]
    crate::testhook::pause_async("tuf1-checked").await;
    Layout::open(at, create).map_err(|e| match e {
        RepoError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            not_managed(&at.path())
        }
        e => e,
    })
}

fn not_managed(dir: &Path) -> RepoError {
    RepoError::NotFound(format!(
        "tufd does not manage a repository at {}; create one with `tufctl tuf init`",
        dir.display()
    ))
}

impl Tuf1 {
    /// A manager keeping its registry under `state_dir/tuf1`.
    pub fn new(keyring: Arc<Keyring>, state_dir: &Path) -> Result<Self, RepoError> {
        Ok(Self {
            keyring,
            registry: Registry::open(state_dir)?,
            locks: Default::default(),
            wake: tokio::sync::Notify::new(),
            trees: Default::default(),
            warned: Default::default(),
            sound: Default::default(),
            creating: Default::default(),
        })
    }

    fn repo_lock(&self, dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("lock map")
            .entry(dir.to_owned())
            .or_default()
            .clone()
    }

    /// The token keys that may sign for the repository at `dir` (its own
    /// and holders' keys, see [`scope`]), by TUF 1.0 key ID.
    async fn signers(&self, dir: &Path) -> Result<Signers, RepoError> {
        let scoped = self
            .scoped_signers(&KeyScope::repository(dir), None)
            .await?;
        let mut signers = scoped.signers;
        for why in scoped.unreadable {
            signers.unreadable(why);
        }
        Ok(signers)
    }

    /// The token keys `scope` admits by TUF 1.0 key ID, the others with
    /// why, and why tokens that could not be read could not.
    async fn scoped_signers(
        &self,
        scope: &KeyScope,
        touch: Option<TouchSink>,
    ) -> Result<ScopedSigners, RepoError> {
        let listing = self.keyring.list("").await?;
        let mut signers = Signers::default();
        let mut unused = Vec::new();
        for key in listing.keys {
            if let Err(reason) = scope.admits(&key.label) {
                if let Ok(k) = Key::ecdsa_p256(&key.spki_der) {
                    unused.push(UnusedKey {
                        key_id: k.key_id(),
                        reason,
                    });
                }
                continue;
            }
            let store = self.keyring.key_store(&key.token)?;
            let attended = store.needs_touch(&key.id);
            let signer = Arc::new(TokenKey {
                store,
                key,
                touch: touch.clone(),
            });
            if attended {
                signers.insert_attended(signer)?;
            } else {
                signers.insert(signer)?;
            }
        }
        let unreadable = listing
            .unavailable
            .into_iter()
            .map(|t| match t.status {
                tufd_keys::TokenStatus::Unavailable { reason } => format!("{}: {reason}", t.name),
                other => format!("{}: {other:?}", t.name),
            })
            .collect();
        Ok(ScopedSigners {
            signers,
            unused,
            unreadable,
        })
    }

    /// The managed repository a staged change names (its directory as
    /// this daemon records it, compared as text: nothing on disk is
    /// looked at); `None` when this daemon does not manage it (a root key
    /// holder's daemon).
    pub fn managed(&self, repository: &str) -> Option<PathBuf> {
        let dir = Path::new(repository);
        self.registry
            .get(dir)
            .filter(|r| r.state == RepoState::Created)
            .map(|_| dir.to_owned())
    }

    /// Generates (or, after an interrupted init, reuses) the key `name` of
    /// the repository at `dir` on `token`.
    async fn role_key(&self, dir: &Path, name: &str, token: &str) -> Result<Key, RepoError> {
        let label = label(dir, name)?;
        let record = match self.keyring.generate(label.clone(), token).await {
            Ok(r) => r,
            Err(KeyringError::NameTaken { .. }) => {
                self.keyring
                    .find(&crate::keyring::KeySelector::Name(label))
                    .await?
            }
            Err(e) => return Err(e.into()),
        };
        Key::ecdsa_p256(&record.spki_der).map_err(RepoError::metadata("token key"))
    }

    /// Creates a repository in `req.dir`: keys generated on the tokens,
    /// version 1 of every role published. The registry records the
    /// repository as being created before anything is written, and as
    /// created once version 1 is published; an init of a repository whose
    /// creation was interrupted finishes it (the keys it made are found by
    /// their labels; a version 1 it published whole is kept).
    pub async fn init(&self, req: InitRequest) -> Result<RepoStatus, RepoError> {
        let mut expiry = ExpiryPolicy::default();
        for (role, secs) in &req.expiry {
            expiry.set(role, *secs)?;
        }
        let root_tokens = if req.root_tokens.is_empty() {
            vec![String::new()]
        } else {
            req.root_tokens.clone()
        };
        let threshold = req.root_threshold.max(1);
        if threshold > root_tokens.len() as u64 {
            return Err(RepoError::InvalidRequest(format!(
                "root threshold {threshold} needs at least {threshold} root keys; give --root-key once per key"
            )));
        }
        let bin_bits = match req.hash_bins {
            0 => None,
            n if n.is_power_of_two() && (2..=65_536).contains(&n) => Some(n.trailing_zeros()),
            n => {
                return Err(RepoError::InvalidRequest(format!(
                    "{n} hash bins: choose a power of two from 2 to 65536"
                )));
            }
        };
        let layout = open(&req.dir, true).await?;
        let dir = layout.dir().to_owned();
        let lock = self.repo_lock(&dir);
        let _guard = lock.lock().await;
        let _writer = layout.lock()?;
        let resuming = match self.registry.get(&dir).map(|r| r.state) {
            Some(RepoState::Creating) => true,
            _ if Published::exists(&layout) => {
                return Err(RepoError::AlreadyExists(format!(
                    "{} already holds a TUF repository",
                    dir.display()
                )));
            }
            _ => false,
        };
        let _creating = Creating::mark(&self.creating, &dir);
        if resuming {
            self.registry.update(&dir, |r| r.expiry = expiry.clone())?;
            let l = layout.clone();
            let swept = blocking(move || l.sweep_temp_files()).await?;
            tracing::info!(repository = %dir.display(), swept, "finishing an interrupted init");
        } else {
            // Recorded before anything is written: a crash from here on
            // leaves a repository `init` finishes and `status` explains.
            self.registry.insert(
                &dir,
                RepoRecord {
                    state: RepoState::Creating,
                    expiry: expiry.clone(),
                    ..Default::default()
                },
            )?;
        }
        let l = layout.clone();
        // The interrupted init published version 1 whole (it stopped
        // before recording it): clients may hold it, it is kept.
        let whole = resuming && blocking(move || Ok(Published::read(&l).is_ok())).await?;
        if !whole {
            self.write_first_version(&layout, &req, root_tokens, threshold, bin_bits, &expiry)
                .await?;
        }
        self.registry
            .update(&dir, |r| r.state = RepoState::Created)?;
        tracing::info!(repository = %dir.display(), resumed = resuming, "TUF 1.0 repository created");
        self.wake.notify_one();
        let mut status = self.status_locked(&layout, false).await?;
        status.summary = match (resuming, whole) {
            (false, _) => "created".into(),
            (true, false) => "created (finished the interrupted creation)".into(),
            (true, true) => {
                "created (the interrupted creation had published version 1; it is kept as it was)"
                    .into()
            }
        };
        Ok(status)
    }

    /// Generates (or finds, by label) the keys of a new repository and
    /// publishes version 1 of every role; the caller holds the locks.
    async fn write_first_version(
        &self,
        layout: &Layout,
        req: &InitRequest,
        root_tokens: Vec<String>,
        threshold: u64,
        bin_bits: Option<u32>,
        expiry: &ExpiryPolicy,
    ) -> Result<(), RepoError> {
        let dir = layout.dir();
        let mut root = Vec::new();
        for (i, token) in root_tokens.iter().enumerate() {
            root.push(
                self.role_key(dir, &format!("root-{}", i + 1), token)
                    .await?,
            );
        }
        let bins = match bin_bits {
            Some(bits) => Some((self.role_key(dir, "bins", &req.targets_token).await?, bits)),
            None => None,
        };
        let keys = InitKeys {
            bins,
            root,
            root_threshold: threshold,
            targets: self.role_key(dir, "targets", &req.targets_token).await?,
            snapshot: self.role_key(dir, "snapshot", &req.online_token).await?,
            timestamp: self.role_key(dir, "timestamp", &req.online_token).await?,
        };
        let signers = self.signers(dir).await?;
        let l = layout.clone();
        let e = expiry.clone();
        blocking(move || {
            let publish = edit::init(&l, keys, &e, &signers, OffsetDateTime::now_utc())?;
            publish.write(&l, &[])
        })
        .await
    }

    /// The record of a repository whose creation finished.
    fn record(&self, dir: &Path) -> Result<RepoRecord, RepoError> {
        let record = self.registry.get(dir).ok_or_else(|| not_managed(dir))?;
        match record.state {
            RepoState::Created => Ok(record),
            RepoState::Creating => Err(RepoError::Unfinished {
                dir: dir.to_owned(),
                under_way: self.creating.lock().expect("creating set").contains(dir),
            }),
        }
    }

    /// Adds targets (to `role`, or where they belong: top-level targets or
    /// their hash bin) and publishes the next version.
    pub async fn add_targets(
        &self,
        at: &Beneath,
        targets: Vec<AddTarget>,
        role: Option<String>,
    ) -> Result<RepoStatus, RepoError> {
        if targets.is_empty() {
            return Err(RepoError::InvalidRequest("name the targets to add".into()));
        }
        let layout = open(at, false).await?;
        let mut new = Vec::new();
        for t in targets {
            new.push(blocking(move || describe(t)).await?);
        }
        self.apply(&layout, move |c| c.add_targets(new, role.as_deref()))
            .await
    }

    /// Removes targets and publishes.
    pub async fn remove_targets(
        &self,
        at: &Beneath,
        names: Vec<String>,
        role: Option<String>,
    ) -> Result<RepoStatus, RepoError> {
        if names.is_empty() {
            return Err(RepoError::InvalidRequest(
                "name the targets to remove".into(),
            ));
        }
        let layout = open(at, false).await?;
        self.apply(&layout, move |c| c.remove_targets(&names, role.as_deref()))
            .await
    }

    /// Delegates `req.paths` from `req.parent` (top-level targets, or a
    /// delegated role at any depth) to a new role whose key is generated
    /// on `req.token`, valid for `req.expiry_seconds` (default: the
    /// targets period).
    pub async fn delegate(
        &self,
        at: &Beneath,
        req: DelegateRequest,
    ) -> Result<RepoStatus, RepoError> {
        let layout = open(at, false).await?;
        let dir = layout.dir().to_owned();
        let before = self.record(&dir)?.expiry;
        edit::check_role_name(&req.name)?;
        let key = self
            .role_key(&dir, &format!("role-{}", req.name), &req.token)
            .await?;
        if let Some(secs) = req.expiry_seconds {
            let mut expiry = before.clone();
            expiry.set_delegated(&req.name, secs)?;
            self.registry.update(&dir, |r| r.expiry = expiry)?;
        }
        let custom_expiry = req.expiry_seconds.is_some();
        let result = self
            .apply(&layout, move |c| {
                let parent = req.parent.as_deref().unwrap_or("targets");
                c.delegate(&req.name, parent, key, req.paths, req.terminating)
            })
            .await;
        if result.is_err() && custom_expiry {
            self.registry.update(&dir, |r| r.expiry = before)?;
        }
        result
    }

    /// Removes the delegation to role `name`; a role that delegates
    /// further is refused until its roles are removed.
    pub async fn undelegate(&self, at: &Beneath, name: String) -> Result<RepoStatus, RepoError> {
        let layout = open(at, false).await?;
        self.apply(&layout, move |c| c.undelegate(&name)).await
    }

    /// Rotates the keys of a role: new keys on `tokens` (threshold
    /// `threshold`). A top-level role gets a new root signed by the old
    /// root's threshold and the new one's; a delegated role (or `bins`,
    /// every hash bin) new targets. The role is re-signed with its new keys.
    pub async fn rotate(
        &self,
        at: &Beneath,
        role: String,
        tokens: Vec<String>,
        threshold: u64,
    ) -> Result<RepoStatus, RepoError> {
        let layout = open(at, false).await?;
        let dir = layout.dir().to_owned();
        self.record(&dir)?;
        let top = edit::TOP_LEVEL.contains(&role.as_str());
        if !top && role != edit::BINS_PREFIX {
            edit::check_role_name(&role)?;
        }
        let tokens = if tokens.is_empty() {
            vec![String::new()]
        } else {
            tokens
        };
        let threshold = threshold.max(1);
        // The new keys' names come from the version this rotation
        // publishes, read under the repository's lock, and the keys are
        // made there: a rotation that waited for another reads the
        // version that one published and makes keys of its own.
        let lock = self.repo_lock(&dir);
        let guard = lock.lock().await;
        let l = layout.clone();
        let online = blocking(move || Online::read(&l)).await?;
        // Key names stay unique: the root version a top-level rotation
        // publishes, the snapshot version a delegated one does.
        let base = if top {
            format!("{role}-r{}", online.root.version() + 1)
        } else {
            format!("role-{role}-s{}", online.snapshot.version() + 1)
        };
        let keys = self.new_role_keys(&dir, &base, &tokens).await?;
        self.apply_locked(&layout, guard, move |c| {
            if top {
                c.rotate(&role, keys, threshold)
            } else {
                c.rotate_delegated(&role, keys, threshold)
            }
        })
        .await
    }

    /// Generates one new key per token for a rotation, named
    /// `BASE-1`, `BASE-2`, … (`BASE.N-1`, … when an interrupted operation
    /// left a key of that name: such a key is never reused, since it may
    /// have been published). The caller holds the repository's lock.
    async fn new_role_keys(
        &self,
        dir: &Path,
        base: &str,
        tokens: &[String],
    ) -> Result<Vec<Key>, RepoError> {
        const ATTEMPTS: u32 = 32;
        for attempt in 0..ATTEMPTS {
            let base = if attempt == 0 {
                base.to_owned()
            } else {
                format!("{base}.{attempt}")
            };
            let mut keys = Vec::with_capacity(tokens.len());
            for (i, token) in tokens.iter().enumerate() {
                let label = label(dir, &format!("{base}-{}", i + 1))?;
                match self.keyring.generate(label, token).await {
                    Ok(record) => keys.push(
                        Key::ecdsa_p256(&record.spki_der)
                            .map_err(RepoError::metadata("token key"))?,
                    ),
                    // A name left by an interrupted operation: the next.
                    Err(KeyringError::NameTaken { .. }) if i == 0 => break,
                    Err(KeyringError::NameTaken { label, token, .. }) => {
                        return Err(RepoError::NameTaken(format!(
                            "the new key's name {label} is taken on token '{token}' by a key this rotation did not make (another tufd using the same tokens?); nothing was rotated, try again"
                        )));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if keys.len() == tokens.len() {
                return Ok(keys);
            }
        }
        Err(RepoError::NameTaken(format!(
            "{ATTEMPTS} names for the new keys ({base}-1, {base}.1-1, …) are taken by keys of interrupted rotations; remove them (`tufctl key list`) and try again"
        )))
    }

    /// Stages a root change for offline k-of-n signing: the next root (new
    /// root keys from `root_keys_pem` with `threshold`, or the same keys
    /// with a renewed expiry), signed by the root keys this daemon holds
    /// that are the repository's own or holders' keys `holder_keys` allows.
    pub async fn stage_root(
        &self,
        at: &Beneath,
        root_keys_pem: Vec<String>,
        threshold: u64,
        holder_keys: HolderCheck,
    ) -> Result<StagedReport, RepoError> {
        let layout = open(at, false).await?;
        let dir = layout.dir().to_owned();
        let record = self.record(&dir)?;
        let mut keys = Vec::new();
        for pem_text in &root_keys_pem {
            keys.push(key_from_pem(pem_text)?);
        }
        let online = blocking(move || Online::read(&layout)).await?;
        let previous = online.root.metadata;
        let mut next = previous.signed.clone();
        next.common.version += 1;
        next.common.expires = record.expiry.expires("root", OffsetDateTime::now_utc());
        if !keys.is_empty() {
            sign::set_role_keys(&mut next, "root", keys, threshold.max(1))?;
        }
        let mut staged = staged::Staged::new(&dir.display().to_string(), previous, next);
        let scope = KeyScope {
            repository: Some(dir),
            holder_keys,
        };
        let scoped = self.scoped_signers(&scope, None).await?;
        let unused = scoped.unused_for(&staged);
        let signers = scoped.signers;
        let signed = blocking(move || {
            let signed = staged.sign(&signers)?;
            Ok((staged, signed))
        })
        .await?;
        StagedReport::new(signed.0, signed.1, unused)
    }

    /// Adds the signatures of the root keys this daemon holds and `scope`
    /// admits to a staged change (a key holder's `tufctl tuf sign`); keys
    /// it does not admit are named in the answer with why, never used.
    /// `touch` hears of each signature that waits for a touch on a device.
    pub async fn sign_staged(
        &self,
        mut staged: staged::Staged,
        scope: KeyScope,
        touch: Option<TouchSink>,
    ) -> Result<StagedReport, RepoError> {
        let scoped = self.scoped_signers(&scope, touch).await?;
        let unused = scoped.unused_for(&staged);
        let (signers, unreadable) = (scoped.signers, scoped.unreadable);
        let (staged, signed) = blocking(move || {
            let signed = staged.sign(&signers)?;
            Ok((staged, signed))
        })
        .await?;
        if signed.is_empty() {
            let state = staged.thresholds()?;
            if !unused.is_empty() {
                return Err(RepoError::Refused(format!(
                    "nothing signed: this daemon holds root keys of this change it may not use here: {}; the change waits: {}; {}",
                    describe_unused(&unused),
                    state[0],
                    state[1]
                )));
            }
            let tokens = if unreadable.is_empty() {
                String::new()
            } else {
                format!("; tokens that could not be read: {}", unreadable.join("; "))
            };
            return Err(RepoError::NoKey {
                role: format!(
                    "root (this daemon holds none of the keys still needed{tokens}; the change waits: {}; {})",
                    state[0], state[1]
                ),
                keyid: state
                    .iter()
                    .flat_map(|s| s.missing.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        tracing::info!(keys = ?signed, unused = ?unused, "signed a staged root change");
        StagedReport::new(staged, signed, unused)
    }

    /// Publishes a staged root change once the thresholds of the current
    /// and the new root are met; the online roles are re-signed under it.
    pub async fn publish_staged(
        &self,
        at: &Beneath,
        bytes: Vec<u8>,
    ) -> Result<RepoStatus, RepoError> {
        let staged = staged::Staged::parse(&bytes)?;
        let state = staged.thresholds()?;
        if !state.iter().all(staged::ThresholdState::met) {
            return Err(RepoError::Waiting(format!("{}; {}", state[0], state[1])));
        }
        let published_previous = staged.previous.clone();
        let layout = open(at, false).await?;
        self.apply(&layout, move |c| {
            if c.current_root() != &published_previous.signed {
                return Err(RepoError::InvalidRequest(
                    "the staged change was made from another root than the one the repository publishes; stage it again".into(),
                ));
            }
            c.signed_root(staged.metadata)
        })
        .await
    }

    /// Runs one change on the published state under the repository's
    /// locks, signs and publishes it.
    async fn apply<F>(&self, layout: &Layout, f: F) -> Result<RepoStatus, RepoError>
    where
        F: FnOnce(&mut edit::Change<'_>) -> Result<(), RepoError> + Send + 'static,
    {
        let lock = self.repo_lock(layout.dir());
        let guard = lock.lock().await;
        self.apply_locked(layout, guard, f).await
    }

    /// [`Tuf1::apply`] for a caller that holds the repository's lock
    /// (`_guard`, released when the change is published or failed).
    async fn apply_locked<F>(
        &self,
        layout: &Layout,
        _guard: tokio::sync::MutexGuard<'_, ()>,
        f: F,
    ) -> Result<RepoStatus, RepoError>
    where
        F: FnOnce(&mut edit::Change<'_>) -> Result<(), RepoError> + Send + 'static,
    {
        let dir = layout.dir();
        let record = self.record(dir)?;
        #[cfg(feature = "test-hooks")]
        crate::testhook::pause_async("tuf1-opened").await;
        let signers = self.signers(dir).await?;
        let summary = self.publish_locked(layout, &record, signers, f).await?;
        tracing::info!(repository = %dir.display(), %summary, "TUF 1.0 repository published");
        self.wake.notify_one();
        let mut status = self.status_locked(layout, false).await?;
        status.summary = summary;
        Ok(status)
    }

    /// Runs one change with `signers` and publishes it; the caller holds
    /// the repository's lock. Returns the change's summary.
    async fn publish_locked<F>(
        &self,
        layout: &Layout,
        record: &RepoRecord,
        signers: Signers,
        f: F,
    ) -> Result<String, RepoError>
    where
        F: FnOnce(&mut edit::Change<'_>) -> Result<(), RepoError> + Send + 'static,
    {
        let layout = layout.clone();
        let expiry = record.expiry.clone();
        blocking(move || {
            let _writer = layout.lock()?;
            let published = match Published::read(&layout) {
                Ok(p) => p,
                // A publish interrupted after its new root is completed
                // before anything is built on it.
                Err(e) => match interrupted::Interrupted::find(&layout)? {
                    Some(i) => {
                        i.complete(&layout, &expiry, &signers, OffsetDateTime::now_utc())?;
                        Published::read(&layout)?
                    }
                    None => return Err(e),
                },
            };
            let mut change =
                edit::Change::new(&layout, &published, &expiry, OffsetDateTime::now_utc());
            f(&mut change)?;
            let (publish, summary) = change.finish(&signers)?;
            publish.write(&layout, &published.referenced(&layout))?;
            Ok(summary)
        })
        .await
    }

    /// The delegation graph of the version `snapshot` describes (every
    /// hash bin included), read once per published version (bins the
    /// version before had at the same version are not read again).
    async fn tree(
        &self,
        layout: &Layout,
        snapshot: &files::RoleFile<tufd_tuf::tuf1::Snapshot>,
    ) -> Result<Arc<Tree>, RepoError> {
        let dir = layout.dir();
        let versions = tree::versions(&snapshot.metadata.signed);
        let previous = match self.trees.lock().expect("tree cache").get(dir) {
            Some((v, t)) if *v == versions => return Ok(t.clone()),
            Some((_, t)) => Some(t.clone()),
            None => None,
        };
        let layout = layout.clone();
        let snap = snapshot.metadata.signed.clone();
        let t = Arc::new(
            blocking(move || Tree::read(&layout, &snap, true, previous.as_deref())).await?,
        );
        self.trees
            .lock()
            .expect("tree cache")
            .insert(dir.to_owned(), (versions, t.clone()));
        Ok(t)
    }

    /// The keys the daemon can sign with on its own now (none when the
    /// tokens cannot be listed).
    async fn online_signers(&self, dir: &Path) -> Signers {
        match self.signers(dir).await {
            Ok(s) => s.unattended(),
            Err(e) => {
                tracing::debug!(error = %e, "listing the token keys failed");
                Signers::default()
            }
        }
    }

    /// The state of the repository at `dir`; with `delegated`, each
    /// delegated role's too (which reads every hash bin: the answer to a
    /// change leaves them out).
    pub async fn status(&self, at: &Beneath, delegated: bool) -> Result<RepoStatus, RepoError> {
        let layout = open(at, false).await?;
        self.status_of(&layout, delegated).await
    }

    /// [`Tuf1::status`] of a repository already opened, under its lock.
    async fn status_of(&self, layout: &Layout, delegated: bool) -> Result<RepoStatus, RepoError> {
        let lock = self.repo_lock(layout.dir());
        let guard = lock.lock().await;
        match self.status_locked(layout, delegated).await {
            Ok(s) => Ok(s),
            Err(e) => {
                // An interrupted publish the refresher has not completed
                // yet: completed now, or its error said.
                drop(guard);
                if !self.complete_interrupted(layout).await? {
                    return Err(e);
                }
                let _guard = lock.lock().await;
                self.status_locked(layout, delegated).await
            }
        }
    }

    /// Completes a publish interrupted after its new root (see
    /// [`interrupted`]), under the repository's locks; whether there was
    /// one.
    async fn complete_interrupted(&self, layout: &Layout) -> Result<bool, RepoError> {
        let dir = layout.dir();
        let record = self.record(dir)?;
        let lock = self.repo_lock(dir);
        let _guard = lock.lock().await;
        let signers = self.signers(dir).await?;
        let l = layout.clone();
        let summary = blocking(move || {
            let _writer = l.lock()?;
            match interrupted::Interrupted::find(&l)? {
                Some(i) => i
                    .complete(&l, &record.expiry, &signers, OffsetDateTime::now_utc())
                    .map(Some),
                None => Ok(None),
            }
        })
        .await?;
        let Some(summary) = summary else {
            return Ok(false);
        };
        self.registry.update(dir, |rec| {
            rec.last_refresh = Some(registry::Refresh {
                at: tufd_tuf::tuf1::Expires::at(OffsetDateTime::now_utc()),
                detail: summary,
            });
            rec.last_error = None;
        })?;
        Ok(true)
    }

    /// Whether `online` was already found not interrupted.
    fn known_sound(&self, dir: &Path, online: &Online) -> bool {
        self.sound.lock().expect("sound map").get(dir)
            == Some(&(online.root.version(), online.snapshot.version()))
    }

    /// Records that `online` is not interrupted.
    fn mark_sound(&self, dir: &Path, online: &Online) {
        self.sound.lock().expect("sound map").insert(
            dir.to_owned(),
            (online.root.version(), online.snapshot.version()),
        );
    }

    async fn status_locked(
        &self,
        layout: &Layout,
        delegated: bool,
    ) -> Result<RepoStatus, RepoError> {
        let dir = layout.dir();
        let record = self.record(dir)?;
        let l = layout.clone();
        // Status reads, it does not build on what it reads: the (possibly
        // large) targets role is parsed, not verified.
        let published = blocking(move || Published::read_for_status(&l)).await?;
        let tree = if delegated {
            Some(self.tree(layout, &published.snapshot).await?)
        } else {
            None
        };
        let online_signers = self.online_signers(dir).await;
        let d = dir.to_owned();
        blocking(move || {
            let roles =
                status::role_states(&published, tree.as_deref(), &record.expiry, &online_signers);
            let online = Online {
                root: published.root.clone(),
                snapshot: published.snapshot.clone(),
                timestamp: published.timestamp.clone(),
            };
            let own = roles
                .iter()
                .filter(|r| r.role != "snapshot" && r.role != "timestamp")
                .filter_map(|r| r.next_refresh)
                .min();
            let next = refresh::next_due(&online, &record.expiry);
            Ok(RepoStatus {
                dir: d,
                roles,
                target_count: published.targets.metadata.signed.targets.len() as u64,
                last_refresh: record.last_refresh.map(|r| (r.at.time(), r.detail)),
                last_error: record.last_error,
                next_refresh: own.map_or(next, |o| o.min(next)),
                summary: String::new(),
            })
        })
        .await
    }
}
