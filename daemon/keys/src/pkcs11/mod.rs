//! The PKCS#11 key store (SoftHSM2, YubiHSM, cloud HSMs, YubiKey via ykcs11).
//!
//! A token is found by label or serial, never by slot number (slot ids
//! change between boots and module versions). The store logs in once, keeps
//! a bounded pool of sessions, and recovers from lost sessions, lost logins
//! and removed devices by reopening, retrying the operation once. Whether a
//! PIN may be presented is the token's [`PinGate`]'s decision: a rejected
//! PIN is never presented again, an unlock request never logs a ready token
//! out, and no new PIN is presented while the token reports
//! `CKF_USER_PIN_FINAL_TRY` unless the administrator allowed it
//! (`allow_last_pin_try`).
//!
//! By concern: `session` (finding the token, the session pool, recovery),
//! `login` (PINs through the gate, unlock), `index` (the keys found on the
//! token), `objects` (key object templates and reads), `sign` (signing);
//! this file holds the configuration and the [`KeyStore`] operations.

mod index;
mod login;
mod module;
mod objects;
mod pool;
mod session;
mod sign;

pub use module::Modules;

use index::{Entry, Index};
use session::{Conn, OpError};

use crate::gate::{Attempt, PinGate, PinRules, UnlockStart};
use crate::pin::PinSource;
use crate::verify::Verifier;
use crate::{
    IdScheme, KeyError, KeyLabel, KeyRecord, KeyStore, TokenDescription, TokenStatus, TriesLeft,
};
use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use objects::{Scanned, p256_template_parts};
use p256::SecretKey;
use pool::{Lease, Pool};
use secrecy::SecretString;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use zeroize::Zeroize;

/// A function called when a scan of the token starts (see
/// [`Pkcs11Store::with_scan_hook`]).
pub type ScanHook = Arc<dyn Fn() + Send + Sync>;

/// A function called while a signature with a key that wants a login per
/// signature is under way, after the login (see
/// [`Pkcs11Store::with_sign_hook`]); an error it returns fails the signature.
pub type SignHook = Arc<dyn Fn() -> Result<(), KeyError> + Send + Sync>;

/// A function called by an unlock request between opening its session and
/// taking the PIN gate (see [`Pkcs11Store::with_unlock_hook`]).
pub type UnlockHook = Arc<dyn Fn() + Send + Sync>;

/// How the configuration names the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSelector {
    /// `CKA_LABEL` of the token (as `softhsm2-util --init-token --label`).
    Label(String),
    /// The token's serial number.
    Serial(String),
}

impl std::fmt::Display for TokenSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSelector::Label(l) => write!(f, "label '{l}'"),
            TokenSelector::Serial(s) => write!(f, "serial '{s}'"),
        }
    }
}

/// Configuration of one PKCS#11 token.
#[derive(Debug, Clone)]
pub struct Pkcs11Config {
    /// The name used for this token in requests and messages.
    pub name: String,
    /// Path of the PKCS#11 library.
    pub module: PathBuf,
    /// Which token behind the module.
    pub selector: TokenSelector,
    /// Where the user PIN comes from.
    pub pin: PinSource,
    /// Maximum number of concurrent sessions (signing parallelism).
    pub max_sessions: usize,
}

/// A PKCS#11 token holding tufd keys.
pub struct Pkcs11Store {
    config: Pkcs11Config,
    id_scheme: IdScheme,
    modules: Arc<Modules>,
    conn: Mutex<Option<Arc<Conn>>>,
    /// The PIN state: which PIN may be presented, and when.
    gate: PinGate,
    pool: Pool,
    index: RwLock<Option<Index>>,
    /// Held while the token is scanned for keys: one scan at a time, and
    /// `status` tells a running scan from a ready index without waiting.
    scan: Mutex<()>,
    /// When the running scan started (`None`: no scan running).
    scanning_since: Mutex<Option<Instant>>,
    /// Called when a scan starts (tests: holds a scan open to force the
    /// interleaving with `status`).
    scan_hook: Option<ScanHook>,
    /// Called by an unlock request before it takes the PIN gate (tests:
    /// lets an operation log in at that moment).
    unlock_hook: Option<UnlockHook>,
    /// Called between the context-specific login and `C_Sign` (tests:
    /// an error in the middle of a signing operation).
    sign_hook: Option<SignHook>,
    /// Serializes generate, import and delete (the index check and the
    /// token change must not interleave).
    admin: Mutex<()>,
    /// Refused keys already logged (ID and reason): each is logged once.
    refused_reported: Mutex<HashSet<(String, &'static str)>>,
}

impl Pkcs11Store {
    /// Creates the store. Nothing is opened until first use (or
    /// [`KeyStore::status`]), so a daemon starts even when a token is absent.
    pub fn new(config: Pkcs11Config, modules: Arc<Modules>, id_scheme: IdScheme) -> Self {
        let max = config.max_sessions;
        let gate = PinGate::new(config.name.clone(), PinRules::new(config.pin.clone()));
        Self {
            config,
            id_scheme,
            modules,
            conn: Mutex::new(None),
            gate,
            pool: Pool::new(max),
            index: RwLock::new(None),
            scan: Mutex::new(()),
            scanning_since: Mutex::new(None),
            scan_hook: None,
            unlock_hook: None,
            sign_hook: None,
            admin: Mutex::new(()),
            refused_reported: Mutex::new(HashSet::new()),
        }
    }

    /// Sets how long a PIN given with [`KeyStore::unlock`] is kept (`None`:
    /// until the store is dropped). The default is 15 minutes.
    pub fn with_pin_cache(self, pin_cache: Option<Duration>) -> Self {
        let rules = PinRules {
            cache: pin_cache,
            ..self.gate.rules().clone()
        };
        self.with_pin_rules(rules)
    }

    /// Sets the administrator's PIN rules (the PIN source in `rules`
    /// replaces the configured one).
    pub fn with_pin_rules(mut self, rules: PinRules) -> Self {
        self.config.pin = rules.source.clone();
        self.gate = PinGate::new(self.config.name.clone(), rules);
        self
    }

    /// Calls `hook` at the start of every scan of the token, on the
    /// scanning thread (for tests: a slow token).
    #[doc(hidden)]
    pub fn with_scan_hook(mut self, hook: ScanHook) -> Self {
        self.scan_hook = Some(hook);
        self
    }

    /// Calls `hook` in every unlock request after its session is open and
    /// before it takes the PIN gate, on the unlocking thread (for tests: an
    /// operation that logs in at that moment).
    #[doc(hidden)]
    pub fn with_unlock_hook(mut self, hook: UnlockHook) -> Self {
        self.unlock_hook = Some(hook);
        self
    }

    /// Calls `hook` in every signature with a key that wants a login per
    /// signature, between the login and `C_Sign`; its error fails the
    /// signature (for tests: an error while the operation is active).
    #[doc(hidden)]
    pub fn with_sign_hook(mut self, hook: SignHook) -> Self {
        self.sign_hook = Some(hook);
        self
    }

    fn name_owned(&self) -> String {
        self.config.name.clone()
    }

    fn device_error(&self, operation: &'static str, e: CkError) -> KeyError {
        KeyError::Device {
            token: self.name_owned(),
            operation,
            detail: e.to_string(),
            source: Some(e.into()),
        }
    }

    /// The status, opening the token and scanning it if no scan has been
    /// made; a scan already running is reported as such at once instead
    /// of waited for.
    fn describe(&self) -> TokenStatus {
        let description = match self.connect() {
            Ok(c) => c.description.clone(),
            Err(e) => return TokenStatus::from_probe(Err(e)),
        };
        if let Some(count) = self.indexed_count() {
            return TokenStatus::from_probe(Ok((description, count)));
        }
        if let Some(since) = self.scan_running() {
            return TokenStatus::Scanning {
                description,
                reason: format!(
                    "token '{}' is being scanned for keys ({:.1} s so far); its keys can be used when the scan ends",
                    self.config.name,
                    since.elapsed().as_secs_f64()
                ),
            };
        }
        TokenStatus::from_probe(self.list().map(|keys| (description, keys.len())))
    }
}

impl KeyStore for Pkcs11Store {
    fn unlock(&self, pin: SecretString) -> Result<(), KeyError> {
        self.unlock_token(pin)
    }

    fn sign_digest(&self, id: &str, digest: &[u8; 32]) -> Result<[u8; 64], KeyError> {
        self.sign_with(id, digest)
    }

    fn sign_digests(&self, jobs: &[(&str, [u8; 32])]) -> Result<Vec<[u8; 64]>, KeyError> {
        self.sign_many(jobs)
    }

    fn name(&self) -> &str {
        &self.config.name
    }

    fn status(&self) -> TokenStatus {
        self.describe()
    }

    fn list(&self) -> Result<Vec<KeyRecord>, KeyError> {
        let entries = self.run("listing keys", |s, session| s.entries(session))?;
        Ok(index::records(entries.values()))
    }

    fn list_held(&self) -> Option<Vec<KeyRecord>> {
        self.indexed_records()
    }

    fn generate(&self, label: &KeyLabel) -> Result<KeyRecord, KeyError> {
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let entry = self.run("generating a key", |s, session| {
            // The token itself, not an earlier scan: another program may
            // have added a key of this name since.
            let found = s.rescan(session)?;
            s.check_free(&found, label, None)?;
            // The real ID depends on the public key, unknown until the pair
            // exists: generate under a placeholder ID, then write the real
            // one. An interruption in between is finished by the next scan.
            let temp_id = objects::pending_id();
            let (public_tpl, private_tpl) = p256_template_parts(label, &temp_id);
            let (public, private) =
                session.generate_key_pair(&Mechanism::EccKeyPairGen, &public_tpl, &private_tpl)?;
            let finish = || -> Result<Entry, OpError> {
                let scanned = objects::read_pair(session, private, public)?;
                s.check_protected(session, &scanned, &format!("{label}"))?;
                let spki = objects::spki_der(&scanned.public_key);
                let id = (s.id_scheme)(&spki);
                let id_bytes = hex::decode(&id).unwrap_or_else(|_| id.as_bytes().to_vec());
                for h in [private, public] {
                    session.update_attributes(h, &[Attribute::Id(id_bytes.clone())])?;
                }
                Ok(Entry {
                    record: KeyRecord {
                        id,
                        label: label.clone(),
                        token: s.name_owned(),
                        spki_der: spki,
                        origin: crate::KeyOrigin::Generated,
                        sensitive: scanned.sensitive,
                        extractable: scanned.extractable,
                    },
                    private,
                    public,
                    verifier: Verifier::new(&scanned.public_key),
                    always_authenticate: scanned.always_authenticate,
                })
            };
            finish().inspect_err(|_| {
                let _ = session.destroy_object(private);
                let _ = session.destroy_object(public);
            })
        })?;
        tracing::info!(token = %self.config.name, key = %label, id = %entry.record.id, "key generated");
        let record = entry.record.clone();
        self.remember(entry);
        Ok(record)
    }

    fn import(&self, label: &KeyLabel, key: &SecretKey) -> Result<KeyRecord, KeyError> {
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let public_key = key.public_key();
        let spki = objects::spki_der(&public_key);
        let id = (self.id_scheme)(&spki);
        let id_bytes = hex::decode(&id).unwrap_or_else(|_| id.as_bytes().to_vec());
        let entry = self.run("importing a key", |s, session| {
            let found = s.rescan(session)?;
            s.check_free(&found, label, Some(&id))?;
            let public = session.create_object(&objects::public_import_template(
                label,
                &id_bytes,
                &public_key,
            ))?;
            let mut private_tpl = objects::private_import_template(label, &id_bytes, key);
            let created = session.create_object(&private_tpl);
            for attr in private_tpl.iter_mut() {
                if let Attribute::Value(v) = attr {
                    v.zeroize();
                }
            }
            let private = match created {
                Ok(h) => h,
                Err(e) => {
                    let _ = session.destroy_object(public);
                    return Err(e.into());
                }
            };
            let scanned = match objects::read_pair(session, private, public) {
                Ok(scanned) => scanned,
                Err(e) => {
                    let _ = session.destroy_object(private);
                    let _ = session.destroy_object(public);
                    return Err(e.into());
                }
            };
            s.check_protected(session, &scanned, &format!("{label}"))?;
            Ok(Entry {
                record: KeyRecord {
                    id: id.clone(),
                    label: label.clone(),
                    token: s.name_owned(),
                    spki_der: spki.clone(),
                    origin: crate::KeyOrigin::Imported,
                    sensitive: scanned.sensitive,
                    extractable: scanned.extractable,
                },
                private,
                public,
                verifier: Verifier::new(&public_key),
                always_authenticate: scanned.always_authenticate,
            })
        })?;
        tracing::info!(token = %self.config.name, key = %label, id = %entry.record.id, "key imported");
        let record = entry.record.clone();
        self.remember(entry);
        Ok(record)
    }

    fn delete(&self, id: &str) -> Result<KeyRecord, KeyError> {
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let record = self.run("deleting a key", |s, session| {
            let entry = s.entry(session, id)?;
            session.destroy_object(entry.private)?;
            if let Err(e) = session.destroy_object(entry.public) {
                tracing::warn!(token = %s.config.name, error = %e, "the public half of a deleted key remains");
            }
            Ok(entry.record.clone())
        })?;
        self.forget(id);
        tracing::info!(token = %self.config.name, key = %record.label, id, "key deleted");
        Ok(record)
    }

    /// PKCS#11 has no attestation; the answer records what the token
    /// claims about the key's origin (`CKA_LOCAL`), which proves nothing.
    fn attest(&self, id: &str) -> Result<crate::Attestation, KeyError> {
        let entry = self.run("reading a key", |s, session| s.entry(session, id))?;
        let local = entry.record.origin == crate::KeyOrigin::Generated;
        Ok(crate::Attestation::NotSupported {
            reason: format!(
                "not supported by this token type (CKA_LOCAL={local} says generated on token: {})",
                if local { "yes" } else { "no" }
            ),
            generated_on_token: Some(local),
        })
    }
}
