//! The transaction every trust operation runs in.
//!
//! read + verify → apply the intent → sign on tokens → check → publish in
//! one request → answer the caller → read back + verify → store. The read
//! back runs after the answer but still holds the repository's lock, so the
//! next operation on the repository starts from the stored result. A
//! publish that loses a race
//! (400 VERSION, or 500 UPDATING from a PostgreSQL-backed server) starts over
//! from a fresh read, a bounded number of times. Operations on one
//! repository are serialized in the daemon; different repositories run in
//! parallel.

use super::draft::{Draft, HeldKeys, Signed_, TouchNotice};
use super::fetch::{Fetched, fetch, fetch_lenient};
use super::store::TrustStore;
use super::{Event, EventSink, TrustError};
use crate::keyring::Keyring;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tufd_remote::{Bytes, Gun, NotaryClient, Resolver, RoleName as RemoteRole};
use tufd_tuf::{TargetMeta, Targets};

/// How long lost publish races are retried (with jittered exponential
/// backoff) before the operation gives up.
pub const RETRY_DEADLINE: Duration = Duration::from_secs(60);

/// How long a read-back waits for another writer to settle a repository
/// that does not verify after this publish.
pub const SETTLE_DEADLINE: Duration = Duration::from_secs(15);

/// What an intent decided.
pub enum Outcome {
    /// Publish the draft; the text describes the change.
    Publish(Box<Draft>, String),
    /// Nothing to do; the text says why.
    Unchanged(String),
}

/// What one transaction did.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub repository: String,
    pub initialized: bool,
    pub published: Vec<(String, u64)>,
    pub summary: String,
    pub attempts: u32,
}

/// Shared state of the trust layer.
pub struct Engine {
    pub keyring: Arc<Keyring>,
    /// Validity of newly signed roles.
    pub expiries: super::draft::Expiries,
    pub resolver: Resolver,
    pub store: TrustStore,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

struct Touch<'a> {
    events: &'a EventSink,
    gun: &'a str,
}

impl TouchNotice for Touch<'_> {
    fn touch(&self, key: &super::draft::HeldKey, role: &str) {
        let (device, serial) = key.store.device();
        tracing::info!(gun = %self.gun, role, %device, %serial, "waiting for a touch");
        let _ = self.events.send(Event::Touch {
            repository: self.gun.to_owned(),
            device,
            serial,
            role: role.to_owned(),
        });
    }
}

impl Engine {
    pub fn new(
        keyring: Arc<Keyring>,
        resolver: Resolver,
        store: TrustStore,
        expiries: super::draft::Expiries,
    ) -> Self {
        Self {
            keyring,
            expiries,
            resolver,
            store,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The lock serializing writers of `gun`.
    pub fn lock_for(&self, gun: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(gun.to_owned())
            .or_default()
            .clone()
    }

    /// The notary server for `gun`.
    pub fn client(&self, gun: &Gun) -> Result<&NotaryClient, TrustError> {
        self.resolver.client_for(gun).map_err(|e| {
            TrustError::InvalidRequest(format!(
                "{e}; add a [[remote]] for it to the tufd configuration or set DOCKER_CONTENT_TRUST_SERVER for the daemon"
            ))
        })
    }

    /// Every key on every readable token.
    pub async fn held_keys(&self) -> Result<HeldKeys, TrustError> {
        let listing = self.keyring.list("").await?;
        let mut keys = Vec::new();
        for k in listing.keys {
            let store = self.keyring.key_store(&k.token)?;
            keys.push((k, store));
        }
        Ok(HeldKeys::new(keys))
    }

    /// Reads and verifies `gun` (no lock taken).
    pub async fn read(&self, gun: &Gun) -> Result<Option<Fetched>, TrustError> {
        let client = self.client(gun)?;
        let stored = self.store.load(gun.as_str())?;
        fetch(client, gun, stored.as_ref(), OffsetDateTime::now_utc()).await
    }

    /// Runs one transaction on `gun`. `intent` is called once per attempt
    /// with a fresh read (`None`: the repository does not exist) and
    /// returns the changed draft. The caller is answered only after the
    /// repository as served was read back and verified with the change in
    /// it, and the verified result stored (see the module doc).
    pub async fn transact<F, Fut>(
        self: &Arc<Self>,
        gun: &Gun,
        events: &EventSink,
        intent: F,
    ) -> Result<Change, TrustError>
    where
        F: FnMut(Option<Fetched>, HeldKeys) -> Fut,
        Fut: std::future::Future<Output = Result<Outcome, TrustError>>,
    {
        self.transact_with(gun, events, Read::Strict, intent).await
    }

    /// [`Engine::transact`], reading with `read`: [`Read::Lenient`] lets the
    /// intent see a repository whose delegations do not all verify (they
    /// are listed in `repo.skipped`), for repair. The read-back is strict
    /// either way.
    pub async fn transact_with<F, Fut>(
        self: &Arc<Self>,
        gun: &Gun,
        events: &EventSink,
        read: Read,
        mut intent: F,
    ) -> Result<Change, TrustError>
    where
        F: FnMut(Option<Fetched>, HeldKeys) -> Fut,
        Fut: std::future::Future<Output = Result<Outcome, TrustError>>,
    {
        let name = gun.as_str().to_owned();
        let _guard = self.lock_for(&name).lock_owned().await;
        self.client(gun)?;
        let progress = |m: String| {
            let _ = events.send(Event::Progress {
                repository: name.clone(),
                message: m,
            });
        };
        let started = Instant::now();
        // Why earlier attempts of this operation were undone, if they were.
        let mut undone: Vec<String> = Vec::new();
        let mut rejected_delegation_updates = 0;
        let mut attempt = 0;
        loop {
            attempt += 1;
            progress(if attempt == 1 {
                "reading and verifying the repository".into()
            } else {
                format!(
                    "another writer changed the repository; reading it again (attempt {attempt})"
                )
            });
            let fetched = match read {
                Read::Strict => self.read_settled(gun, events).await,
                Read::Lenient => self.read_lenient(gun).await,
            }
            .map_err(|e| with_undone(&undone, e))?;
            crate::testhook::pause_async("after-read").await;
            let base_targets = fetched.as_ref().map(|f| f.repo.targets.signed().clone());
            let fetched_files = fetched
                .as_ref()
                .map(|f| f.files.delegations.clone())
                .unwrap_or_default();
            let held = self.held_keys().await?;
            let (draft, summary) = match intent(fetched, held.clone())
                .await
                .map_err(|e| with_undone(&undone, e))?
            {
                Outcome::Unchanged(why) => {
                    return Ok(Change {
                        repository: name.clone(),
                        summary: prefixed(&undone, why),
                        attempts: attempt,
                        ..Change::default()
                    });
                }
                Outcome::Publish(d, s) => (d, s),
            };
            let initialized = draft.initializing;
            let expect = draft.expect.clone();
            let base_files = fetched_files;
            let removed = base_targets
                .as_ref()
                .map(|b| removed_delegation_keys(b, &draft.targets))
                .unwrap_or_default();
            // The intent may have generated keys (a new repository's root
            // and targets keys, a rotation's new key): sign with a fresh list.
            let held = self.held_keys().await?;
            progress("signing on the token".into());
            let signed = self.sign_draft(&name, *draft, &held, events).await?;
            check_before_publish(&name, &signed)?;
            progress(format!("publishing {}", versions_text(&signed.versions)));
            match self.publish(gun, &signed).await {
                Ok(()) => {}
                Err(e) => {
                    let delegation_race = is_delegation_race(&e);
                    if e.is_lost_race() || (delegation_race && rejected_delegation_updates < 2) {
                        if delegation_race {
                            rejected_delegation_updates += 1;
                        }
                        let wait = backoff(attempt);
                        if started.elapsed() + wait > RETRY_DEADLINE {
                            return Err(with_undone(
                                &undone,
                                TrustError::Contended {
                                    repository: name.clone(),
                                    attempts: attempt,
                                    seconds: started.elapsed().as_secs(),
                                },
                            ));
                        }
                        tracing::info!(gun = %name, attempt, error = %e, ?wait, "lost a publish race; retrying from a fresh read");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    if delegation_race {
                        return Err(with_undone(
                            &undone,
                            TrustError::Refused(format!(
                                "{name}: the server keeps rejecting this change because a delegation it signs no longer accepts tufd's key (changed by another writer?): {e}"
                            )),
                        ));
                    }
                    return Err(with_undone(&undone, TrustError::remote(&name, e)));
                }
            }
            crate::testhook::pause_async("after-publish").await;
            progress("reading the repository back and verifying it".into());
            let published = versions_text(&signed.versions);
            let this = Published {
                root: &signed.root,
                text: &published,
                expect: &expect,
                removed: &removed,
                base_files: &base_files,
            };
            match self.settle(gun, &this, events).await {
                Settled::Verified(after, note) => {
                    self.store.save(gun.as_str(), &after.repo).map_err(|e| {
                        TrustError::Unverified {
                            repository: name.clone(),
                            message: format!(
                                "published {published} and verified the repository as served with this change in it, but the local trust store could not be updated ({e}); the next operation reads it again"
                            ),
                        }
                    })?;
                    return Ok(Change {
                        repository: name.clone(),
                        initialized,
                        published: signed.versions,
                        summary: match note {
                            Some(n) => format!("{}. Note: {n}", prefixed(&undone, summary)),
                            None => prefixed(&undone, summary),
                        },
                        attempts: attempt,
                    });
                }
                Settled::Undone(what) => {
                    tracing::warn!(gun = %name, %what, "change undone; retrying from a fresh read");
                    undone.push(what);
                    if started.elapsed() > RETRY_DEADLINE {
                        return Err(with_undone(
                            &undone,
                            TrustError::Contended {
                                repository: name.clone(),
                                attempts: attempt,
                                seconds: started.elapsed().as_secs(),
                            },
                        ));
                    }
                    continue;
                }
                Settled::Failed(e) => return Err(e),
            }
        }
    }

    /// Reads `gun` skipping (and listing) delegations that do not verify.
    pub async fn read_lenient(&self, gun: &Gun) -> Result<Option<Fetched>, TrustError> {
        let client = self.client(gun)?;
        let stored = self.store.load(gun.as_str())?;
        fetch_lenient(client, gun, stored.as_ref(), OffsetDateTime::now_utc()).await
    }

    /// Reads and verifies `gun` before a change. When a delegation does not
    /// verify, waits (bounded) in case a concurrent writer is about to
    /// restore it (a removal racing a sign, see the module doc); nothing is
    /// ever signed over a repository that does not verify.
    async fn read_settled(
        &self,
        gun: &Gun,
        events: &EventSink,
    ) -> Result<Option<Fetched>, TrustError> {
        let deadline = Instant::now() + SETTLE_DEADLINE;
        let mut round = 0;
        loop {
            round += 1;
            let err = match self.read(gun).await {
                Ok(f) => return Ok(f),
                Err(e @ TrustError::Metadata { .. }) => e,
                Err(e) => return Err(e),
            };
            let client = self.client(gun)?;
            let stored = self.store.load(gun.as_str())?;
            let lenient =
                fetch_lenient(client, gun, stored.as_ref(), OffsetDateTime::now_utc()).await;
            let skipped = match lenient {
                Ok(Some(f)) if !f.repo.skipped.is_empty() => f.repo.skipped,
                _ => return Err(err),
            };
            if Instant::now() >= deadline {
                let names: Vec<String> = skipped.iter().map(|s| s.name.clone()).collect();
                return Err(TrustError::Refused(format!(
                    "{err}. Clients skip {} and do not see its tags; nothing is signed over a repository that does not verify. Whoever holds the targets key can run `tufctl repair {}`",
                    names.join(", "),
                    gun.as_str()
                )));
            }
            if round == 1 {
                let _ = events.send(Event::Progress {
                    repository: gun.as_str().to_owned(),
                    message: "the repository does not verify; waiting in case a concurrent writer settles it".into(),
                });
            }
            tokio::time::sleep(backoff(round)).await;
        }
    }

    /// Signs `draft` on the tokens (a blocking thread).
    async fn sign_draft(
        &self,
        name: &str,
        draft: Draft,
        held: &HeldKeys,
        events: &EventSink,
    ) -> Result<Signed_, TrustError> {
        let held = held.clone();
        let events = events.clone();
        let expiries = self.expiries;
        let gun_name = name.to_owned();
        tokio::task::spawn_blocking(move || -> Result<Signed_, TrustError> {
            let mut draft = draft;
            draft.expiries = expiries;
            draft.refresh_expiring(&held);
            let touch = Touch {
                events: &events,
                gun: &gun_name,
            };
            draft.sign(&held, &touch)
        })
        .await
        .map_err(|e| TrustError::Internal(format!("signing worker failed: {e}")))?
    }

    /// Publishes the signed files in one request.
    async fn publish(&self, gun: &Gun, signed: &Signed_) -> Result<(), tufd_remote::Error> {
        let name = gun.as_str();
        let client = self.client(gun).map_err(|_| tufd_remote::Error::NoServer {
            gun: name.to_owned(),
        })?;
        let mut files: Vec<(RemoteRole, Bytes)> = Vec::new();
        for (role, bytes) in &signed.files {
            files.push((RemoteRole::new(role.clone())?, Bytes::from(bytes.clone())));
        }
        client.publish(gun, &files).await
    }

    /// Reads the repository back after a publish until the truth is known:
    /// it verifies with `expect` (→ `Verified`); a delegation this change
    /// took keys from is left below threshold by a writer that published
    /// in between (→ compensate, then `Undone`); another delegation does not
    /// verify (→ wait, bounded, for the writer that caused it to
    /// compensate, then `Failed` with what the repository shows).
    async fn settle(&self, gun: &Gun, this: &Published<'_>, events: &EventSink) -> Settled {
        let Published {
            root,
            text: published,
            expect,
            removed,
            base_files,
        } = *this;
        let name = gun.as_str();
        let deadline = Instant::now() + SETTLE_DEADLINE;
        let mut round = 0;
        loop {
            round += 1;
            let after = match self.read_trusting(gun, root).await {
                Ok(f) => f,
                Err(e) if Instant::now() < deadline => {
                    tracing::warn!(gun = %name, error = %e, "reading back after a publish failed; trying again");
                    tokio::time::sleep(backoff(round)).await;
                    continue;
                }
                Err(e) => {
                    return Settled::Failed(TrustError::Unverified {
                        repository: name.to_owned(),
                        message: format!(
                            "the server accepted {published}, but the repository could not be read back and verified ({e}); the change is probably in place: check with `tufctl inspect {name}`"
                        ),
                    });
                }
            };
            crate::testhook::pause_async("read-back").await;
            // A delegation whose file is the one this transaction read (it
            // verified then) and that does not verify now was broken by a
            // change to its delegation: this one, as `--force` allows. The
            // change stands; the answer says what clients no longer see.
            let changed_since_read =
                |role: &str| after.files.delegations.get(role) != base_files.get(role);
            let own: Vec<&tufd_tuf::SkippedRole> = after
                .repo
                .skipped
                .iter()
                .filter(|s| !changed_since_read(&s.name))
                .collect();
            if own.len() == after.repo.skipped.len() {
                let resolved = after.repo.resolved_targets();
                let wrong: Vec<String> = expect
                    .iter()
                    .filter(|(tag, want)| {
                        let got = resolved.iter().find(|r| &r.name == tag).map(|r| &r.meta);
                        match (want, got) {
                            (None, None) => false,
                            (Some(w), Some(g)) => !same_content(w, g),
                            _ => true,
                        }
                    })
                    .map(|(tag, want)| match want {
                        Some(_) => format!("{tag} does not resolve to the content just signed"),
                        None => format!("{tag} still resolves"),
                    })
                    .collect();
                if wrong.is_empty() {
                    let note = (!own.is_empty()).then(|| {
                        own.iter()
                            .map(|s| {
                                format!(
                                    "{} no longer verifies ({}), so clients no longer see its tag(s) {}; `tufctl repair {name}` makes the repository verify again",
                                    s.name,
                                    s.reason,
                                    s.targets.join(", ")
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("; ")
                    });
                    return Settled::Verified(Box::new(after), note);
                }
                return Settled::Failed(TrustError::Unverified {
                    repository: name.to_owned(),
                    message: format!(
                        "the server accepted {published} and the repository verifies, but a later change by another writer replaced it: {}; see `tufctl inspect {name}`",
                        wrong.join("; ")
                    ),
                });
            }
            // A delegation does not verify. Did this change cause it (it took
            // keys from the delegation that signed the file now served)?
            let caused: Vec<&tufd_tuf::SkippedRole> = after
                .repo
                .skipped
                .iter()
                .filter(|s| changed_since_read(&s.name))
                .filter(|s| signed_by_removed(&after, &s.name, removed))
                .collect();
            if !caused.is_empty() {
                let roles: Vec<String> = caused.iter().map(|s| s.name.clone()).collect();
                let _ = events.send(Event::Progress {
                    repository: name.to_owned(),
                    message: format!(
                        "a sign into {} by a key this change removes landed first; restoring the key so its tags keep verifying",
                        roles.join(", ")
                    ),
                });
                return match self.restore_keys(gun, root, removed).await {
                    Ok(()) => Settled::Undone(format!(
                        "{name}: this change was published, but another writer had just signed {} with a key it removes; the removal was undone so those tags keep verifying",
                        roles.join(", ")
                    )),
                    Err(e) => Settled::Failed(TrustError::Unverified {
                        repository: name.to_owned(),
                        message: format!(
                            "published {published}, but another writer had just signed {} with a key this change removes, so its tags no longer verify, and restoring the key failed: {e}. Run `tufctl repair {name}`",
                            roles.join(", ")
                        ),
                    }),
                };
            }
            if Instant::now() >= deadline {
                let what: Vec<String> = after
                    .repo
                    .skipped
                    .iter()
                    .map(|s| {
                        format!(
                            "{} does not verify ({}), so clients do not see its {} tag(s)",
                            s.name,
                            s.reason,
                            s.targets.len()
                        )
                    })
                    .collect();
                return Settled::Failed(TrustError::Unverified {
                    repository: name.to_owned(),
                    message: format!(
                        "the server accepted {published}, but the repository as served does not verify: {} (a concurrent `signer remove` probably removed the key that signed it). Whoever holds the targets key can run `tufctl repair {name}`",
                        what.join("; ")
                    ),
                });
            }
            // Another writer (a concurrent removal) left it so; it restores
            // the key when it reads back. Wait for that, bounded.
            if round == 1 {
                let _ = events.send(Event::Progress {
                    repository: name.to_owned(),
                    message: "the repository does not verify after a concurrent change; waiting for the other writer to settle it".into(),
                });
            }
            tokio::time::sleep(backoff(round)).await;
        }
    }

    /// Puts `removed` keys back into their delegations (this change removed
    /// them, but a writer signed with them first), republishing targets.
    async fn restore_keys(
        &self,
        gun: &Gun,
        root: &tufd_tuf::Signed<tufd_tuf::Root>,
        removed: &[RemovedKeys],
    ) -> Result<(), TrustError> {
        let name = gun.as_str();
        let md = |e| TrustError::metadata(name, e);
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = self.read_trusting(gun, root).await?;
            let mut draft = Draft::from_fetched(name, &current, OffsetDateTime::now_utc())?;
            for r in removed {
                let role = tufd_tuf::RoleName::parse(&r.role).map_err(md)?;
                draft
                    .targets
                    .delegations
                    .add_to_role(&role, &r.keys, &r.paths)
                    .map_err(md)?;
            }
            draft.mark("targets");
            let held = self.held_keys().await?;
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            let signed = self.sign_draft(name, draft, &held, &tx).await?;
            match self.publish(gun, &signed).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_lost_race() && started.elapsed() < RETRY_DEADLINE => {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(TrustError::remote(name, e)),
            }
        }
    }

    /// Reads `gun` after a publish, skipping (and listing) delegations that
    /// do not verify. The root just published is trusted when the store
    /// has none yet (the repository was initialized here).
    async fn read_trusting(
        &self,
        gun: &Gun,
        root: &tufd_tuf::Signed<tufd_tuf::Root>,
    ) -> Result<Fetched, TrustError> {
        let client = self.client(gun)?;
        let stored = match self.store.load(gun.as_str())? {
            Some(s) => s,
            None => super::store::StoredRepository {
                root: root.bytes().to_vec(),
                files: Default::default(),
            },
        };
        fetch_lenient(client, gun, Some(&stored), OffsetDateTime::now_utc())
            .await?
            .ok_or_else(|| {
                TrustError::NotFound(format!(
                    "{}: published, but the server does not serve the repository",
                    gun.as_str()
                ))
            })
    }
}

/// How a transaction reads the repository before its intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Everything must verify (waiting, bounded, for a concurrent writer
    /// to settle a delegation that does not).
    Strict,
    /// Delegations that do not verify are skipped and listed.
    Lenient,
}

/// What one attempt published, for its read-back.
#[derive(Clone, Copy)]
struct Published<'a> {
    /// The root as published (trusted when the store has none yet).
    root: &'a tufd_tuf::Signed<tufd_tuf::Root>,
    /// "targets v3, targets/releases v2", for messages.
    text: &'a str,
    /// What the repository must show (see [`Draft::expect`]).
    expect: &'a [(String, Option<TargetMeta>)],
    /// Delegation keys the change removed.
    removed: &'a [RemovedKeys],
    /// Delegation files as read before the change.
    base_files: &'a std::collections::BTreeMap<String, Vec<u8>>,
}

/// What a read-back found.
enum Settled {
    /// Verified with the change in it; a note when a delegation no longer
    /// verifies because of this change itself (`--force`).
    Verified(Box<Fetched>, Option<String>),
    /// The change was undone to keep another writer's change valid.
    Undone(String),
    /// The caller must be told this.
    Failed(TrustError),
}

/// Keys a change took out of a delegation of targets (kept to restore).
#[derive(Debug, Clone)]
pub struct RemovedKeys {
    role: String,
    keys: Vec<tufd_tuf::Key>,
    paths: Vec<String>,
}

/// The delegation keys `before` lists that `after` no longer does.
fn removed_delegation_keys(before: &Targets, after: &Targets) -> Vec<RemovedKeys> {
    let mut out = Vec::new();
    for entry in &before.delegations.roles {
        let now = after.delegations.role(&entry.name);
        let keys: Vec<tufd_tuf::Key> = entry
            .keyids
            .iter()
            .filter(|id| now.is_none_or(|n| !n.keyids.contains(id)))
            .filter_map(|id| before.delegations.keys.get(id).cloned())
            .collect();
        if !keys.is_empty() {
            out.push(RemovedKeys {
                role: entry.name.clone(),
                keys,
                paths: entry.paths.clone(),
            });
        }
    }
    out
}

/// Whether the served file of `role` carries a signature by a key this
/// change removed from it.
fn signed_by_removed(f: &Fetched, role: &str, removed: &[RemovedKeys]) -> bool {
    let Some(ids) = removed
        .iter()
        .find(|r| r.role == role)
        .map(|r| r.keys.iter().map(tufd_tuf::Key::id).collect::<Vec<_>>())
    else {
        return false;
    };
    f.files
        .delegations
        .get(role)
        .and_then(|b| tufd_tuf::Signed::<Targets>::from_role_bytes(role, b).ok())
        .is_some_and(|s| s.signatures().iter().any(|sig| ids.contains(&sig.keyid)))
}

/// Whether the server rejected a delegation's signatures, or a delegation
/// it does not know: another writer changed (or removed) the delegation
/// between this read and this publish. A fresh read tells the intent.
fn is_delegation_race(e: &tufd_remote::Error) -> bool {
    e.server_errors().iter().any(|s| {
        s.detail_name() == Some("ErrBadTargets")
            || s.detail_message()
                .is_some_and(|m| m.contains("does not exist") || m.contains("delegation"))
    })
}

/// Full-jitter exponential backoff: a random wait in [d/2, d], d = 40 ms ·
/// 2^(attempt-1), at most 1.5 s.
fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let d = Duration::from_millis(40)
        .saturating_mul(1 << attempt.saturating_sub(1).min(6))
        .min(Duration::from_millis(1500));
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    let frac = (h.finish() % 1000) as u32;
    d / 2 + d / 2 * frac / 1000
}

fn same_content(a: &TargetMeta, b: &TargetMeta) -> bool {
    a.length == b.length && a.hashes.get("sha256") == b.hashes.get("sha256")
}

fn versions_text(versions: &[(String, u64)]) -> String {
    versions
        .iter()
        .map(|(r, v)| format!("{r} v{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `e`, saying first that an earlier attempt was undone, if one was.
fn with_undone(undone: &[String], e: TrustError) -> TrustError {
    match undone.last() {
        Some(what) => TrustError::Undone {
            what: what.clone(),
            source: Box::new(e),
        },
        None => e,
    }
}

fn prefixed(undone: &[String], summary: String) -> String {
    match undone.last() {
        Some(u) => format!("{u}; then, from a fresh read: {summary}"),
        None => summary,
    }
}

/// Checks the signed files before they leave: every signature of every
/// changed role verifies against the keys that delegate to it, and with a
/// client-held snapshot the whole repository verifies (but for the
/// timestamp, which the server makes).
fn check_before_publish(gun: &str, signed: &Signed_) -> Result<(), TrustError> {
    let now = OffsetDateTime::now_utc();
    if signed.client_snapshot {
        tufd_tuf::repo::verify_unpublished(&signed.root, &signed.preview, gun, now)
            .map_err(|e| TrustError::metadata(gun, e))?;
        return Ok(());
    }
    tufd_tuf::repo::check_root_structure(signed.root.signed())
        .map_err(|e| TrustError::metadata(gun, e))?;
    Ok(())
}
