//! The PKCS#11 key store (SoftHSM2, YubiHSM, cloud HSMs, YubiKey via ykcs11).
//!
//! A token is found by label or serial, never by slot number (slot ids
//! change between boots and module versions). The store logs in once, keeps
//! a bounded pool of sessions, and recovers from lost sessions, lost logins
//! and removed devices by reopening, retrying the operation once. Whether a
//! PIN may be presented is the token's [`PinGate`]'s decision: a rejected
//! PIN is never presented again, an unlock request never logs a ready token
//! out, and no new PIN is presented while the token reports
//! `CKF_USER_PIN_COUNT_LOW` or `CKF_USER_PIN_FINAL_TRY` unless the
//! administrator allowed it (`allow_last_pin_try`).

mod module;
mod objects;
mod pool;

pub use module::Modules;

use crate::gate::{Attempt, PinGate, PinRules, UnlockStart};
use crate::pin::PinSource;
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
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use pool::{Lease, Pool};
use secrecy::SecretString;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use zeroize::Zeroize;

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

/// The open token: module, slot and what it says about itself.
#[derive(Clone)]
struct Conn {
    ctx: Pkcs11,
    slot: Slot,
    description: TokenDescription,
}

/// A key in the index, with its object handles (valid for one generation).
#[derive(Clone)]
struct Entry {
    record: KeyRecord,
    private: ObjectHandle,
    public: ObjectHandle,
    verifying: p256::ecdsa::VerifyingKey,
    /// Each signature needs `C_Login(CKU_CONTEXT_SPECIFIC)` after
    /// `C_SignInit` (`CKA_ALWAYS_AUTHENTICATE`).
    always_authenticate: bool,
}

struct Index {
    generation: u64,
    by_id: HashMap<String, Entry>,
}

/// A PKCS#11 token holding tufd keys.
pub struct Pkcs11Store {
    config: Pkcs11Config,
    id_scheme: IdScheme,
    modules: Arc<Modules>,
    conn: Mutex<Option<Conn>>,
    /// The PIN state: which PIN may be presented, and when.
    gate: PinGate,
    pool: Pool,
    index: RwLock<Option<Index>>,
    /// Serializes generate, import and delete (the index check and the
    /// token change must not interleave).
    admin: Mutex<()>,
}

/// What went wrong inside an operation: a PKCS#11 return value (which may
/// be recoverable by reopening) or a final key-layer error.
enum OpError {
    Ck(CkError),
    Key(KeyError),
}

impl From<CkError> for OpError {
    fn from(e: CkError) -> Self {
        OpError::Ck(e)
    }
}

impl From<KeyError> for OpError {
    fn from(e: KeyError) -> Self {
        OpError::Key(e)
    }
}

/// What a PKCS#11 error asks of us.
enum Recovery {
    /// The session is gone: open another.
    NewSession,
    /// The login is gone: open another session, which logs in again.
    Relogin,
    /// The device is gone: find the token again and reopen everything.
    Reconnect,
    /// Object handles are stale: rescan the token.
    Rescan,
    /// Not recoverable.
    Fail,
}

fn recovery(e: &CkError) -> Recovery {
    match e {
        CkError::Pkcs11(rv, _) => match rv {
            RvError::SessionHandleInvalid | RvError::SessionClosed => Recovery::NewSession,
            RvError::UserNotLoggedIn => Recovery::Relogin,
            RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::SlotIdInvalid
            | RvError::CryptokiNotInitialized => Recovery::Reconnect,
            RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid => Recovery::Rescan,
            _ => Recovery::Fail,
        },
        _ => Recovery::Fail,
    }
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
            admin: Mutex::new(()),
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

    /// Forgets an unlocked PIN whose time is up; for `pin = "prompt"` every
    /// session is closed too, which logs the token out.
    fn expire_unlock(&self) {
        if !self.gate.expire() {
            return;
        }
        let mut st = self.pool.lock();
        if let Some(session) = st.idle.first()
            && let Err(e) = session.logout()
        {
            tracing::debug!(token = %self.config.name, error = %e, "logout after the PIN expired");
        }
        self.pool.reset(&mut st);
    }

    /// What the token reports about its PIN tries; `None` when the PIN is
    /// blocked.
    fn tries_left(&self, conn: &Conn) -> Option<TriesLeft> {
        match conn.ctx.get_token_info(conn.slot) {
            Ok(i) if i.user_pin_locked() => None,
            Ok(i) if i.user_pin_final_try() => Some(TriesLeft::FinalTry),
            Ok(i) if i.user_pin_count_low() => Some(TriesLeft::Low),
            _ => Some(TriesLeft::Unknown),
        }
    }

    fn name_owned(&self) -> String {
        self.config.name.clone()
    }

    fn device_error(&self, operation: &'static str, e: &CkError) -> KeyError {
        KeyError::Device {
            token: self.name_owned(),
            operation,
            detail: e.to_string(),
        }
    }

    /// Finds the token behind the module and remembers its slot.
    fn connect(&self) -> Result<Conn, KeyError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        let ctx = self
            .modules
            .get(&self.config.module)
            .map_err(|detail| KeyError::ModuleLoad {
                token: self.name_owned(),
                module: self.config.module.display().to_string(),
                detail,
            })?;
        let slots = ctx
            .get_slots_with_token()
            .map_err(|e| self.device_error("listing slots", &e))?;
        let mut seen = Vec::new();
        for slot in slots {
            let Ok(info) = ctx.get_token_info(slot) else {
                continue;
            };
            let label = info.label().trim().to_owned();
            let serial = info.serial_number().trim().to_owned();
            let matches = match &self.config.selector {
                TokenSelector::Label(l) => *l == label,
                TokenSelector::Serial(s) => *s == serial,
            };
            if matches {
                let c = Conn {
                    ctx: ctx.clone(),
                    slot,
                    description: TokenDescription {
                        label,
                        serial,
                        manufacturer: info.manufacturer_id().trim().to_owned(),
                        model: info.model().trim().to_owned(),
                    },
                };
                tracing::info!(token = %self.config.name, label = %c.description.label,
                    serial = %c.description.serial, "token found");
                *conn = Some(c.clone());
                return Ok(c);
            }
            seen.push(format!("'{label}' (serial {serial})"));
        }
        Err(KeyError::TokenNotFound {
            token: self.name_owned(),
            selector: self.config.selector.to_string(),
            seen: if seen.is_empty() {
                "none".into()
            } else {
                seen.join(", ")
            },
        })
    }

    /// Forgets the slot and every session after the device went away.
    fn disconnect(&self) {
        tracing::warn!(token = %self.config.name, "token connection lost; reopening");
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let mut st = self.pool.lock();
        self.pool.reset(&mut st);
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Lends a logged-in session, opening one if the pool has room.
    fn lease(&self) -> Result<Lease<'_>, KeyError> {
        let conn = self.connect()?;
        let mut st = self.pool.lock();
        loop {
            if let Some(s) = st.idle.pop() {
                return Ok(Lease {
                    pool: &self.pool,
                    session: Some(s),
                    generation: st.generation,
                    keep: true,
                });
            }
            if st.open < self.pool.max {
                st.open += 1;
                let generation = st.generation;
                drop(st);
                return match self.open_session(&conn) {
                    Ok(s) => Ok(Lease {
                        pool: &self.pool,
                        session: Some(s),
                        generation,
                        keep: true,
                    }),
                    Err(e) => {
                        let mut st = self.pool.lock();
                        if st.generation == generation {
                            st.open -= 1;
                        }
                        Err(e)
                    }
                };
            }
            st = self.pool.wait(st);
        }
    }

    fn open_session(&self, conn: &Conn) -> Result<Session, KeyError> {
        let session = conn.ctx.open_rw_session(conn.slot).map_err(|e| {
            if matches!(recovery(&e), Recovery::Reconnect) {
                *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
            self.device_error("opening a session", &e)
        })?;
        tracing::debug!(token = %self.config.name, "session opened");
        self.ensure_login(conn, &session)?;
        Ok(session)
    }

    /// Logs in unless the application is already logged in on this token,
    /// with the PIN the gate hands out.
    fn ensure_login(&self, conn: &Conn, session: &Session) -> Result<(), KeyError> {
        if self.logged_in(session)? {
            return Ok(());
        }
        let attempt = self.gate.login()?;
        self.present(conn, session, attempt)?;
        tracing::info!(token = %self.config.name, "logged in");
        Ok(())
    }

    /// Whether the application is logged in on the token (the state is
    /// shared by all its sessions).
    fn logged_in(&self, session: &Session) -> Result<bool, KeyError> {
        let info = session
            .get_session_info()
            .map_err(|e| self.device_error("reading the session state", &e))?;
        Ok(matches!(
            info.session_state(),
            SessionState::RoUser | SessionState::RwUser
        ))
    }

    /// Presents the attempt's PIN with `C_Login`, after the gate checked
    /// the tries the token reports, and tells the gate the outcome.
    fn present(
        &self,
        conn: &Conn,
        session: &Session,
        mut attempt: Attempt<'_>,
    ) -> Result<(), KeyError> {
        let device = format!("token {}", conn.description.label);
        match self.tries_left(conn) {
            None => return Err(attempt.blocked()),
            Some(tries) => attempt.check_tries(tries, &device)?,
        }
        match session.login(UserType::User, Some(attempt.pin())) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                attempt.accepted();
                Ok(())
            }
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
                match self.tries_left(conn) {
                    None => Err(attempt.blocked()),
                    Some(tries) => Err(attempt.rejected(tries)),
                }
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(attempt.blocked()),
            Err(e) => Err(self.device_error("logging in", &e)),
        }
    }

    /// Runs `op` on a session, recovering once from a lost session, login,
    /// device or stale handle.
    fn run<T>(
        &self,
        operation: &'static str,
        mut op: impl FnMut(&Self, &Session) -> Result<T, OpError>,
    ) -> Result<T, KeyError> {
        self.expire_unlock();
        let mut retried = false;
        loop {
            let mut lease = self.lease()?;
            let err = match op(self, lease.session()) {
                Ok(v) => return Ok(v),
                Err(OpError::Key(e)) => return Err(e),
                Err(OpError::Ck(e)) => e,
            };
            let action = recovery(&err);
            if retried || matches!(action, Recovery::Fail) {
                return Err(self.device_error(operation, &err));
            }
            retried = true;
            tracing::warn!(token = %self.config.name, operation, error = %err, "recovering");
            match action {
                Recovery::NewSession | Recovery::Relogin => lease.keep = false,
                Recovery::Reconnect => {
                    lease.keep = false;
                    drop(lease);
                    self.disconnect();
                }
                Recovery::Rescan => {
                    *self.index.write().unwrap_or_else(|p| p.into_inner()) = None;
                }
                Recovery::Fail => unreachable!("handled above"),
            }
        }
    }

    /// The index for the current connection, scanning the token if needed.
    fn entries(&self, session: &Session) -> Result<HashMap<String, Entry>, OpError> {
        let generation = self.pool.lock().generation;
        if let Some(ix) = self
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            && ix.generation == generation
        {
            return Ok(ix.by_id.clone());
        }
        // A session that lost its login finds no private objects: an empty
        // scan must not pass for an empty token (a name would then be
        // given twice).
        if !self.logged_in(session)? {
            return Err(OpError::Ck(CkError::Pkcs11(
                RvError::UserNotLoggedIn,
                cryptoki::context::Function::FindObjectsInit,
            )));
        }
        let by_id = self.scan(session)?;
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = Some(Index {
            generation,
            by_id: by_id.clone(),
        });
        Ok(by_id)
    }

    fn entry(&self, session: &Session, id: &str) -> Result<Entry, OpError> {
        if let Some(ix) = self
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            && ix.generation == self.pool.lock().generation
            && let Some(e) = ix.by_id.get(id)
        {
            return Ok(e.clone());
        }
        self.entries(session)?
            .remove(id)
            .ok_or_else(|| OpError::Key(self.not_found(id)))
    }

    fn not_found(&self, id: &str) -> KeyError {
        KeyError::KeyNotFound {
            token: self.name_owned(),
            what: format!("with ID {id}"),
        }
    }

    fn remember(&self, entry: Entry) {
        let generation = self.pool.lock().generation;
        let mut ix = self.index.write().unwrap_or_else(|p| p.into_inner());
        match ix.as_mut() {
            Some(ix) if ix.generation == generation => {
                ix.by_id.insert(entry.record.id.clone(), entry);
            }
            _ => *ix = None,
        }
    }

    fn forget(&self, id: &str) {
        if let Some(ix) = self
            .index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            ix.by_id.remove(id);
        }
    }

    /// Reads every tufd key from the token, repairing `CKA_ID`s that do not
    /// match the key (left by a generation interrupted before its ID was
    /// written).
    fn scan(&self, session: &Session) -> Result<HashMap<String, Entry>, OpError> {
        let mut out = HashMap::new();
        for found in objects::scan(session)? {
            let Scanned {
                label,
                ck_id,
                private,
                public,
                public_key,
                local,
                sensitive,
                extractable,
                always_authenticate,
                label_from_certificate,
            } = found;
            let spki = objects::spki_der(&public_key);
            let id = (self.id_scheme)(&spki);
            if hex::encode(&ck_id) != id && !label_from_certificate {
                tracing::warn!(token = %self.config.name, key = %label, "repairing the key's CKA_ID");
                let new_id = hex::decode(&id).unwrap_or_else(|_| id.as_bytes().to_vec());
                for h in [private, public] {
                    session.update_attributes(h, &[Attribute::Id(new_id.clone())])?;
                }
            }
            let record = KeyRecord {
                id: id.clone(),
                label,
                token: self.name_owned(),
                spki_der: spki,
                origin: if local {
                    crate::KeyOrigin::Generated
                } else {
                    crate::KeyOrigin::Imported
                },
                sensitive,
                extractable,
            };
            out.insert(
                id,
                Entry {
                    record,
                    private,
                    public,
                    verifying: p256::ecdsa::VerifyingKey::from(&public_key),
                    always_authenticate,
                },
            );
        }
        Ok(out)
    }

    fn check_free(
        &self,
        entries: &HashMap<String, Entry>,
        label: &KeyLabel,
        id: Option<&str>,
    ) -> Result<(), OpError> {
        if let Some(e) = entries.values().find(|e| e.record.label == *label) {
            return Err(OpError::Key(KeyError::AlreadyExists {
                token: self.name_owned(),
                what: format!("a key named {label} (ID {})", e.record.id),
            }));
        }
        if let Some(e) = id.and_then(|id| entries.get(id)) {
            return Err(OpError::Key(KeyError::AlreadyExists {
                token: self.name_owned(),
                what: format!("this key (ID {}, named {})", e.record.id, e.record.label),
            }));
        }
        Ok(())
    }

    /// Signs with a key that wants the PIN for each signature
    /// (`CKA_ALWAYS_AUTHENTICATE`, ykcs11's slot 9c keys): `C_SignInit`,
    /// `C_Login(CKU_CONTEXT_SPECIFIC)`, then the data. Single-part
    /// `C_Sign` would call `C_SignInit` again, so the data goes through
    /// `C_SignUpdate`/`C_SignFinal`.
    fn sign_context_specific(
        &self,
        session: &Session,
        entry: &Entry,
        digest: &[u8; 32],
    ) -> Result<Vec<u8>, OpError> {
        let attempt = self.gate.login()?;
        session.sign_init(&Mechanism::Ecdsa, entry.private)?;
        match session.login(UserType::ContextSpecific, Some(attempt.pin())) {
            Ok(()) => attempt.accepted(),
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
                return Err(attempt.rejected(TriesLeft::Unknown).into());
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => return Err(attempt.blocked().into()),
            Err(e) => return Err(e.into()),
        }
        session.sign_update(digest)?;
        Ok(session.sign_final()?)
    }

    /// The status without the side effect of opening: used by `status`.
    fn describe(&self) -> Result<(TokenDescription, usize), KeyError> {
        let description = self.connect()?.description;
        let count = self.list()?.len();
        Ok((description, count))
    }
}

impl KeyStore for Pkcs11Store {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn status(&self) -> TokenStatus {
        TokenStatus::from_probe(self.describe())
    }

    fn list(&self) -> Result<Vec<KeyRecord>, KeyError> {
        let mut keys: Vec<KeyRecord> = self
            .run("listing keys", |s, session| s.entries(session))?
            .into_values()
            .map(|e| e.record)
            .collect();
        keys.sort_by(|a, b| a.label.cmp(&b.label).then(a.id.cmp(&b.id)));
        Ok(keys)
    }

    fn generate(&self, label: &KeyLabel) -> Result<KeyRecord, KeyError> {
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let entry = self.run("generating a key", |s, session| {
            let entries = s.entries(session)?;
            s.check_free(&entries, label, None)?;
            // The real ID depends on the public key, unknown until the pair
            // exists: generate under a random ID, then write the real one.
            // An interruption in between is repaired by the next scan.
            let temp_id: [u8; 16] = rand::random();
            let (public_tpl, private_tpl) = p256_template_parts(label, &temp_id);
            let (public, private) =
                session.generate_key_pair(&Mechanism::EccKeyPairGen, &public_tpl, &private_tpl)?;
            let finish = || -> Result<Entry, OpError> {
                let scanned = objects::read_pair(session, private, public)?;
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
                    verifying: p256::ecdsa::VerifyingKey::from(&scanned.public_key),
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
            let entries = s.entries(session)?;
            s.check_free(&entries, label, Some(&id))?;
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
            let scanned = objects::read_pair(session, private, public)?;
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
                verifying: p256::ecdsa::VerifyingKey::from(&public_key),
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
            Ok(entry.record)
        })?;
        self.forget(id);
        tracing::info!(token = %self.config.name, key = %record.label, id, "key deleted");
        Ok(record)
    }

    fn unlock(&self, pin: SecretString) -> Result<(), KeyError> {
        crate::gate::check_length(&self.config.name, &pin, 256)?;
        self.expire_unlock();
        let conn = self.connect()?;
        let session = conn
            .ctx
            .open_rw_session(conn.slot)
            .map_err(|e| self.device_error("opening a session", &e))?;
        // Logged in already: the gate never lets this PIN reach the token
        // (a wrong one would log every session out).
        let ready = self.logged_in(&session)?;
        match self.gate.unlock(pin, ready)? {
            UnlockStart::Extended => {
                tracing::info!(token = %self.config.name, "unlock with the PIN the token is logged in with: cache time extended");
                return Ok(());
            }
            UnlockStart::Present(attempt) => self.present(&conn, &session, attempt)?,
        }
        // Keep the logged-in session: closing the token's last session
        // would log it out again.
        let mut st = self.pool.lock();
        if st.open < self.pool.max {
            st.open += 1;
            st.idle.push(session);
        }
        drop(st);
        tracing::info!(token = %self.config.name,
            cache_seconds = self.gate.rules().cache.map_or(0, |d| d.as_secs()),
            "token unlocked with a PIN given over the socket (0: until the daemon stops)");
        Ok(())
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

    fn sign_digest(&self, id: &str, digest: &[u8; 32]) -> Result<[u8; 64], KeyError> {
        let (raw, verifying) = self.run("signing", |s, session| {
            let entry = s.entry(session, id)?;
            let raw = if entry.always_authenticate {
                s.sign_context_specific(session, &entry, digest)?
            } else {
                session.sign(&Mechanism::Ecdsa, entry.private, digest)?
            };
            Ok((raw, entry.verifying))
        })?;
        let bad = || KeyError::BadSignature {
            token: self.name_owned(),
            key_id: id.to_owned(),
        };
        let sig = p256::ecdsa::Signature::from_slice(&raw).map_err(|_| bad())?;
        verifying.verify_prehash(digest, &sig).map_err(|_| bad())?;
        let mut out = [0u8; 64];
        out.copy_from_slice(&sig.to_bytes());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_recoverable_errors() {
        use cryptoki::context::Function;
        let e = |rv| CkError::Pkcs11(rv, Function::Sign);
        assert!(matches!(
            recovery(&e(RvError::SessionHandleInvalid)),
            Recovery::NewSession
        ));
        assert!(matches!(
            recovery(&e(RvError::UserNotLoggedIn)),
            Recovery::Relogin
        ));
        assert!(matches!(
            recovery(&e(RvError::DeviceRemoved)),
            Recovery::Reconnect
        ));
        assert!(matches!(
            recovery(&e(RvError::KeyHandleInvalid)),
            Recovery::Rescan
        ));
        assert!(matches!(
            recovery(&e(RvError::PinIncorrect)),
            Recovery::Fail
        ));
    }
}
