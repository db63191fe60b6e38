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
use super::fetch::{Fetched, fetch};
use super::store::TrustStore;
use super::{Event, EventSink, TrustError};
use crate::keyring::Keyring;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use tufd_remote::{Bytes, Gun, NotaryClient, Resolver, RoleName as RemoteRole};

/// How many times a lost publish race is retried from a fresh read.
pub const MAX_ATTEMPTS: u32 = 5;

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
    /// returns the changed draft.
    pub async fn transact<F, Fut>(
        self: &Arc<Self>,
        gun: &Gun,
        events: &EventSink,
        mut intent: F,
    ) -> Result<Change, TrustError>
    where
        F: FnMut(Option<Fetched>, HeldKeys) -> Fut,
        Fut: std::future::Future<Output = Result<Outcome, TrustError>>,
    {
        let name = gun.as_str().to_owned();
        let guard = self.lock_for(&name).lock_owned().await;
        let client = self.client(gun)?;
        let progress = |m: String| {
            let _ = events.send(Event::Progress {
                repository: name.clone(),
                message: m,
            });
        };
        for attempt in 1..=MAX_ATTEMPTS {
            progress(if attempt == 1 {
                "reading and verifying the repository".into()
            } else {
                format!(
                    "another writer changed the repository; reading it again (attempt {attempt})"
                )
            });
            let fetched = self.read(gun).await?;
            let held = self.held_keys().await?;
            let (draft, summary) = match intent(fetched, held.clone()).await? {
                Outcome::Unchanged(why) => {
                    return Ok(Change {
                        repository: name.clone(),
                        summary: why,
                        attempts: attempt,
                        ..Change::default()
                    });
                }
                Outcome::Publish(d, s) => (d, s),
            };
            let initialized = draft.initializing;
            // The intent may have generated keys (a new repository's root
            // and targets keys, a rotation's new key): sign with a fresh list.
            let held = self.held_keys().await?;
            progress("signing on the token".into());
            let signed = {
                let held = held.clone();
                let events = events.clone();
                let expiries = self.expiries;
                let gun_name = name.clone();
                tokio::task::spawn_blocking(move || -> Result<Signed_, TrustError> {
                    let mut draft = *draft;
                    draft.expiries = expiries;
                    draft.refresh_expiring(&held);
                    let touch = Touch {
                        events: &events,
                        gun: &gun_name,
                    };
                    draft.sign(&held, &touch)
                })
                .await
                .map_err(|e| TrustError::Internal(format!("signing worker failed: {e}")))??
            };
            check_before_publish(&name, &signed)?;
            progress(format!(
                "publishing {}",
                signed
                    .versions
                    .iter()
                    .map(|(r, v)| format!("{r} v{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            let files: Vec<(RemoteRole, Bytes)> = signed
                .files
                .iter()
                .map(|(role, bytes)| {
                    RemoteRole::new(role.clone())
                        .map(|r| (r, Bytes::from(bytes.clone())))
                        .map_err(|e| TrustError::remote(&name, e))
                })
                .collect::<Result<_, _>>()?;
            match client.publish(gun, &files).await {
                Ok(()) => {}
                Err(e) if e.is_lost_race() && attempt < MAX_ATTEMPTS => {
                    tracing::info!(gun = %name, attempt, error = %e, "lost a publish race; retrying");
                    continue;
                }
                Err(e) if e.is_lost_race() => {
                    return Err(TrustError::Contended {
                        repository: name.clone(),
                        attempts: attempt,
                    });
                }
                Err(e) => return Err(TrustError::remote(&name, e)),
            }
            // The server accepted the update atomically: answer now. Then
            // read back what it serves and verify it as any client will,
            // still holding the lock; only a verified result reaches the store.
            let engine = Arc::clone(self);
            let (gun, root) = (gun.clone(), signed.root.clone());
            tokio::spawn(async move {
                let _guard = guard;
                match engine.read_trusting(&gun, &root).await {
                    Ok(after) => {
                        if let Err(e) = engine.store.save(gun.as_str(), &after.repo) {
                            tracing::error!(gun = %gun, error = %e, "cannot store the verified repository");
                        }
                    }
                    Err(e) => tracing::error!(
                        gun = %gun,
                        error = %e,
                        "the repository as served after this publish does not verify; the next operation will refuse it until it is repaired"
                    ),
                }
            });
            return Ok(Change {
                repository: name.clone(),
                initialized,
                published: signed.versions,
                summary,
                attempts: attempt,
            });
        }
        Err(TrustError::Contended {
            repository: name,
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Reads `gun` after a publish. The root just published is trusted when
    /// the store has none yet (the repository was initialized here).
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
        fetch(client, gun, Some(&stored), OffsetDateTime::now_utc())
            .await?
            .ok_or_else(|| {
                TrustError::NotFound(format!(
                    "{}: published, but the server does not serve the repository",
                    gun.as_str()
                ))
            })
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
