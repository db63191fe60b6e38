//! The native YubiKey key store: PIV over PC/SC with the `yubikey` crate.
//!
//! # Finding the device
//! A YubiKey is found by its serial number among the PC/SC readers, never
//! by reader name or order. Several stores (several devices) can be
//! configured side by side.
//!
//! # One command at a time
//! A YubiKey executes one command at a time, so each store owns its device
//! behind one mutex: every call (from any thread) runs its APDUs with the
//! device to itself. Each `yubikey` crate call is one PC/SC transaction;
//! between calls tufd holds no transaction, so ykman, gpg-agent or
//! yubico-piv-tool can use the device in between. The connection is shared
//! (`SCARD_SHARE_SHARED`) and is left without a reset when tufd reconnects;
//! when the store is dropped (daemon shutdown) the card is reset, which
//! forgets the verified PIN.
//!
//! # Keys and the index
//! A key is a P-256 key generated in a PIV slot (9c, 9e, 9d, 9a, then the
//! retired slots 82–95, the first free one; or the configured `slots`). The
//! slot's certificate is a self-signed X.509 certificate, signed by the
//! slot's key on the device, whose subject records the label
//! (`OU=tufd:<name>:<gun>`), the PIN and touch policies and the origin (see
//! [`cert`]). The index is rebuilt from these certificates alone. A key ID is
//! the configured [`IdScheme`] of the key's SubjectPublicKeyInfo, as for
//! PKCS#11 keys: the same key seen through ykcs11 gets the same ID.
//!
//! # PIN
//! The PIN comes from the configured [`PinSource`] and is verified after
//! connecting. A rejected PIN is never presented again (only a changed PIN
//! source is tried) and the error reports the device's count of tries left.
//! Before presenting a PIN tufd asks the device how many tries are left and
//! refuses to use the last one for a PIN the device has not accepted
//! before, unless the administrator allowed it
//! ([`YubiKeyConfig::allow_last_pin_try`]); the token's [`PinGate`] makes
//! these decisions, as for PKCS#11 tokens. A PIN given with an
//! unlock replaces the configured source for [`YubiKeyConfig::pin_cache`];
//! with [`PinSource::Prompt`] there is no other PIN, and when the cache time
//! is up the card is reset so it forgets the PIN. Keys whose PIN policy is "always" (and 9c
//! keys with the default policy) get the PIN right before each signature.
//!
//! # Management key and set-up
//! Generating, importing and deleting keys need the PIV management key,
//! from `management_key`: `pin-protected` (the default; stored on the device
//! in the PIN-protected data object, as `ykman piv access
//! change-management-key --generate --protect` does) or a hex key from
//! `env:`/`file:`. **Set-up**: when the device still has the factory-default
//! management key, the first operation that needs it replaces it: with a new
//! random key stored PIN-protected on the device, or with the configured
//! key. tufd never generates keys on a device that keeps the default
//! management key. [`YubiKeyStore::set_up`] does this explicitly.
//!
//! # Secrets
//! The PIN is read from its source when needed into a `SecretString`, the
//! management key into `Zeroizing` buffers; neither is logged nor shown by
//! `Debug`. Two copies are outside tufd's control: `yubikey` 0.9.0-rc.0
//! keeps the last verified PIN in its `YubiKey` handle as a plain `Vec<u8>`
//! (for its own `reconnect`, which tufd does not use), and its `MgmKey` is
//! not zeroized on drop. Both live as long as the connection.
//!
//! # Recovery
//! When another program resets the card (PC/SC "card was reset", protocol
//! mismatch) or it is removed and inserted again, the store reconnects by
//! serial, verifies the PIN again and repeats the operation once. A PIN
//! state lost without a reset (another program selected another applet) is
//! noticed when the device refuses to sign, and the PIN is verified again.

pub mod attest;
mod cert;
mod mgm;
mod policy;
#[cfg(test)]
mod real_device;
#[cfg(test)]
mod vcard_tests;

pub use policy::{DEFAULT_SLOTS, KeyPinPolicy, KeyTouchPolicy, ManagementKeySource, parse_slot};

use crate::gate::{Attempt, PinGate, PinRules, UnlockStart};
use crate::pin::PinSource;
use crate::{
    IdScheme, KeyError, KeyLabel, KeyOrigin, KeyRecord, KeyStore, TokenDescription, TokenStatus,
    TriesLeft,
};
use cert::SlotRecord;
use der::{Decode, Encode};
use p256::SecretKey;
use p256::ecdsa::VerifyingKey;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use policy::{slot_from_u8, slot_name};
use secrecy::ExposeSecret;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::Duration;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;
use yubikey::certificate::Certificate;
use yubikey::piv::{self, AlgorithmId, SlotId};
use yubikey::{MgmKey, YubiKey};
use zeroize::Zeroizing;

/// The PIV PIN of a new YubiKey.
const FACTORY_PIN: &str = "123456";

/// How long the slot certificates tufd writes are valid (they only carry
/// the label; nothing checks their dates).
const CERT_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);

/// Configuration of one YubiKey.
#[derive(Debug, Clone)]
pub struct YubiKeyConfig {
    /// The name used for this token in requests and messages.
    pub name: String,
    /// The device's serial number (`ykman list --serials`).
    pub serial: u32,
    /// Where the PIV PIN comes from.
    pub pin: PinSource,
    /// Where the management key comes from.
    pub management_key: ManagementKeySource,
    /// PIN policy of keys tufd generates or imports.
    pub pin_policy: KeyPinPolicy,
    /// Touch policy of keys tufd generates or imports.
    pub touch_policy: KeyTouchPolicy,
    /// Slots to use, in order of preference (key references, 0x9c, 0x82…).
    pub slots: Vec<u8>,
    /// How long a PIN given with `tufctl token unlock` is kept; `None`
    /// until the daemon stops.
    pub pin_cache: Option<Duration>,
    /// Present a PIN the device has not accepted before although only one
    /// try is left (`allow_last_pin_try`; the administrator's decision).
    pub allow_last_pin_try: bool,
    /// Rejected PINs from unlock requests presented per ten minutes.
    pub unlock_attempts: u32,
    /// Yubico attestation roots (DER) the device's f9 certificate must
    /// chain to; empty: attestations are verified up to the f9 certificate.
    pub attestation_roots: Vec<Vec<u8>>,
}

impl YubiKeyConfig {
    /// A configuration with the defaults: PIN-protected management key, PIN
    /// once, touch always, slots [`DEFAULT_SLOTS`].
    pub fn new(name: impl Into<String>, serial: u32, pin: PinSource) -> Self {
        Self {
            name: name.into(),
            serial,
            pin,
            management_key: ManagementKeySource::PinProtected,
            pin_policy: KeyPinPolicy::Once,
            touch_policy: KeyTouchPolicy::Always,
            slots: DEFAULT_SLOTS.to_vec(),
            pin_cache: Some(DEFAULT_PIN_CACHE),
            allow_last_pin_try: false,
            unlock_attempts: crate::gate::DEFAULT_UNLOCK_ATTEMPTS,
            attestation_roots: Vec::new(),
        }
    }
}

pub use crate::gate::DEFAULT_PIN_CACHE;

/// What [`YubiKeyStore::set_up`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetUp {
    /// The device already had the configured management key.
    AlreadySetUp,
    /// The factory-default management key was replaced.
    ReplacedDefaultManagementKey,
}

/// The open device and what it has verified on this connection.
struct Conn {
    yk: YubiKey,
    /// The PIN is verified on this connection (as far as tufd knows).
    pin_verified: bool,
    /// Authenticated with the management key.
    admin: bool,
}

/// A key in the index.
#[derive(Clone)]
struct Entry {
    record: KeyRecord,
    slot: SlotId,
    verifying: VerifyingKey,
    pin_policy: KeyPinPolicy,
    touch_policy: KeyTouchPolicy,
}

/// What a scan of the device found.
#[derive(Clone, Default)]
struct Index {
    by_id: HashMap<String, Entry>,
    /// Slots holding any certificate (tufd's or another application's).
    occupied: HashSet<u8>,
}

/// Everything behind the device mutex.
struct Device {
    conn: Option<Conn>,
    index: Option<Index>,
    /// Slots that turned out to want the PIN before every signature.
    pin_each_time: HashSet<u8>,
}

/// A YubiKey (PIV) holding tufd keys.
pub struct YubiKeyStore {
    config: YubiKeyConfig,
    id_scheme: IdScheme,
    device: Mutex<Device>,
    /// Key ID → whether signing waits for a touch; read without the device
    /// lock, so a signature waiting for a touch does not block the question.
    touch: RwLock<HashMap<String, bool>>,
    /// The PIN state (taken after the device mutex, never before it).
    gate: PinGate,
}

/// A failure inside an operation: a device error (which may call for a
/// reconnect) or a final key-layer error.
enum OpError {
    Yk(yubikey::Error),
    Key(KeyError),
}

impl From<yubikey::Error> for OpError {
    fn from(e: yubikey::Error) -> Self {
        OpError::Yk(e)
    }
}

impl From<KeyError> for OpError {
    fn from(e: KeyError) -> Self {
        OpError::Key(e)
    }
}

/// Whether a device error means the connection is gone (the card was reset
/// by another program, removed, or pcscd restarted): reconnect and retry.
fn connection_lost(e: &yubikey::Error) -> bool {
    use pcsc::Error as P;
    match e {
        yubikey::Error::PcscError { inner: None } => true,
        yubikey::Error::PcscError { inner: Some(p) } => matches!(
            p,
            P::ResetCard
                | P::ProtoMismatch
                | P::RemovedCard
                | P::NoSmartcard
                | P::InvalidHandle
                | P::ReaderUnavailable
                | P::UnknownReader
                | P::UnpoweredCard
                | P::UnresponsiveCard
                | P::NotTransacted
                | P::CommError
                | P::NoService
                | P::ServiceStopped
                | P::InvalidValue
        ),
        _ => false,
    }
}

/// The tufd label recorded in a DER certificate subject as tufd writes it
/// into PIV slots (see the `cert` module); `None` for other subjects. The
/// PKCS#11 store uses it for YubiKey keys seen through ykcs11, whose key
/// objects carry fixed labels.
pub fn label_in_subject(subject_der: &[u8]) -> Option<KeyLabel> {
    let name = x509_cert::name::Name::from_der(subject_der).ok()?;
    cert::parse_subject(&name).map(|r| r.label)
}

/// The data object holding a slot's certificate.
fn certificate_object(slot: SlotId) -> Option<u32> {
    Some(match u8::from(slot) {
        0x9a => 0x005f_c105,
        0x9c => 0x005f_c10a,
        0x9d => 0x005f_c10b,
        0x9e => 0x005f_c101,
        r @ 0x82..=0x95 => 0x005f_c10d + u32::from(r - 0x82),
        0xf9 => 0x005f_ff01,
        _ => return None,
    })
}

/// Reads the certificate in `slot`; `None` for an empty or unparsable
/// object. (The crate's own reader panics on an emptied object, which is
/// what a deleted certificate leaves.)
fn read_certificate(
    yk: &mut YubiKey,
    slot: SlotId,
) -> Result<Option<x509_cert::Certificate>, yubikey::Error> {
    let Some(object) = certificate_object(slot) else {
        return Ok(None);
    };
    let data = match yk.fetch_object(object) {
        Ok(data) => data,
        Err(e) if connection_lost(&e) => return Err(e),
        Err(_) => return Ok(None),
    };
    // 70 L <certificate> 71 01 <compression> FE 00
    let der = match mgm::tlv(&data) {
        Some((0x70, value, _)) => value,
        _ => &data[..],
    };
    if der.is_empty() {
        return Ok(None);
    }
    Ok(x509_cert::Certificate::from_der(der).ok())
}

impl YubiKeyStore {
    /// Creates the store. Nothing is opened until first use (or
    /// [`KeyStore::status`]), so the daemon starts without the device.
    pub fn new(config: YubiKeyConfig, id_scheme: IdScheme) -> Self {
        let gate = PinGate::new(
            config.name.clone(),
            PinRules {
                cache: config.pin_cache,
                allow_last_try: config.allow_last_pin_try,
                unlock_attempts: config.unlock_attempts,
                ..PinRules::new(config.pin.clone())
            },
        );
        Self {
            config,
            id_scheme,
            device: Mutex::new(Device {
                conn: None,
                index: None,
                pin_each_time: HashSet::new(),
            }),
            touch: RwLock::new(HashMap::new()),
            gate,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &YubiKeyConfig {
        &self.config
    }

    fn name_owned(&self) -> String {
        self.config.name.clone()
    }

    fn serial_text(&self) -> String {
        format!("YubiKey serial {}", self.config.serial)
    }

    fn device_error(&self, operation: &'static str, e: yubikey::Error) -> KeyError {
        let hint = match e {
            yubikey::Error::AuthenticationError => {
                "; the device refused: a PIN or management-key authentication is missing"
            }
            yubikey::Error::PcscError { .. } => "; is the device connected and pcscd running?",
            _ => "",
        };
        KeyError::Device {
            token: self.name_owned(),
            operation,
            detail: format!("{} ({}){hint}", e, self.serial_text()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Device> {
        self.device.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finds the device among the PC/SC readers by serial.
    fn connect(&self) -> Result<Conn, KeyError> {
        let pcsc_error = |e: yubikey::Error| KeyError::Device {
            token: self.name_owned(),
            operation: "listing PC/SC readers",
            detail: format!("{e}; is pcscd running (systemctl status pcscd.socket)?"),
        };
        let mut context = yubikey::reader::Context::open().map_err(pcsc_error)?;
        let readers = context.iter().map_err(pcsc_error)?;
        let mut seen = Vec::new();
        for reader in readers {
            let Ok(yk) = reader.open() else {
                continue;
            };
            if yk.serial().0 == self.config.serial {
                tracing::info!(token = %self.config.name, serial = self.config.serial,
                    reader = %yk.name(), version = %yk.version(), "YubiKey found");
                return Ok(Conn {
                    yk,
                    pin_verified: false,
                    admin: false,
                });
            }
            seen.push(format!("serial {} in '{}'", yk.serial(), yk.name()));
            // Not ours: leave it as it was.
            let _ = yk.disconnect(pcsc::Disposition::LeaveCard);
        }
        Err(KeyError::TokenNotFound {
            token: self.name_owned(),
            selector: format!("YubiKey serial {}", self.config.serial),
            seen: if seen.is_empty() {
                "no YubiKey".into()
            } else {
                seen.join(", ")
            },
        })
    }

    /// Forgets the connection without resetting the card (another program
    /// may be using it).
    fn disconnect(dev: &mut Device) {
        if let Some(conn) = dev.conn.take()
            && let Err((yk, e)) = conn.yk.disconnect(pcsc::Disposition::LeaveCard)
        {
            tracing::debug!(error = %e, "disconnect after a lost connection failed");
            drop(yk);
        }
        dev.index = None;
    }

    /// Runs `op` with the device to itself, reconnecting and repeating it
    /// once when the connection was lost (card reset by another program,
    /// device replugged).
    fn run<T>(
        &self,
        operation: &'static str,
        mut op: impl FnMut(&Self, &mut Device) -> Result<T, OpError>,
    ) -> Result<T, KeyError> {
        let mut dev = self.lock();
        self.expire_unlock(&mut dev);
        let mut retried = false;
        loop {
            if dev.conn.is_none() {
                dev.conn = Some(self.connect()?);
                dev.index = None;
            }
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(self, &mut dev)));
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(panic) => {
                    // The `yubikey` crate indexes device answers without
                    // checking them in places: a malformed answer must not
                    // take the daemon's worker down.
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Self::disconnect(&mut dev);
                    return Err(KeyError::Device {
                        token: self.name_owned(),
                        operation,
                        detail: format!(
                            "the device gave an answer the PIV driver cannot handle ({what}); {} was disconnected",
                            self.serial_text()
                        ),
                    });
                }
            };
            match outcome {
                Ok(v) => return Ok(v),
                Err(OpError::Key(e)) => return Err(e),
                Err(OpError::Yk(e)) if connection_lost(&e) => {
                    Self::disconnect(&mut dev);
                    if retried {
                        return Err(self.device_error(operation, e));
                    }
                    retried = true;
                    tracing::warn!(token = %self.config.name, operation, error = %e,
                        "YubiKey connection lost (reset by another program?); reconnecting");
                }
                Err(OpError::Yk(e)) => return Err(self.device_error(operation, e)),
            }
        }
    }

    fn conn(dev: &mut Device) -> Result<&mut Conn, OpError> {
        dev.conn
            .as_mut()
            .ok_or(OpError::Yk(yubikey::Error::PcscError { inner: None }))
    }

    /// Forgets a PIN given with `tufctl token unlock` once its time is up.
    /// For `pin = "prompt"` the card is reset too, so it forgets the
    /// verified PIN and the token is locked again.
    fn expire_unlock(&self, dev: &mut Device) {
        if self.gate.expire()
            && let Some(conn) = dev.conn.take()
        {
            if let Err((_, e)) = conn.yk.disconnect(pcsc::Disposition::ResetCard) {
                tracing::debug!(error = %e, "resetting the card after the PIN expired failed");
            }
            dev.index = None;
        }
    }

    /// Refuses a PIN no PIV device accepts (more than 8 characters).
    fn check_pin_length(&self, attempt: &Attempt<'_>) -> Result<(), KeyError> {
        if attempt.pin().expose_secret().len() > 8 {
            return Err(KeyError::PinSource {
                token: self.name_owned(),
                detail: format!(
                    "the PIN from {} is longer than 8 characters, which a PIV PIN cannot be",
                    self.config.pin
                ),
            });
        }
        Ok(())
    }

    /// Verifies the PIN the gate hands out: asks the device for the tries
    /// left first (this re-selects the PIV application, dropping PIN and
    /// management-key authentication); the gate refuses the last try and
    /// any PIN the device rejected.
    fn verify_pin(&self, dev: &mut Device) -> Result<(), OpError> {
        let attempt = self.gate.login()?;
        self.check_pin_length(&attempt)?;
        self.present_pin(dev, attempt)
    }

    /// Presents the attempt's PIN (see [`Self::verify_pin`]) and tells the
    /// gate the outcome.
    fn present_pin(&self, dev: &mut Device, mut attempt: Attempt<'_>) -> Result<(), OpError> {
        let device = self.serial_text();
        let conn = Self::conn(dev)?;
        conn.pin_verified = false;
        conn.admin = false;
        // 0 is also what the crate reports when the device still counts
        // the PIN as verified: the VERIFY below tells a blocked PIN.
        let tries = match conn.yk.get_pin_retries()? {
            0 => TriesLeft::Unknown,
            n => TriesLeft::Exactly(n),
        };
        attempt.check_tries(tries, &device)?;
        let factory = attempt.pin().expose_secret() == FACTORY_PIN;
        match conn.yk.verify_pin(attempt.pin().expose_secret().as_bytes()) {
            Ok(()) => {
                conn.pin_verified = true;
                attempt.accepted();
                tracing::info!(token = %self.config.name, "PIN verified");
                if factory {
                    tracing::warn!(token = %self.config.name, serial = self.config.serial,
                        "the YubiKey still has the factory-default PIN: change it (`ykman piv access change-pin`) and the PUK (`ykman piv access change-puk`)");
                }
                Ok(())
            }
            Err(yubikey::Error::WrongPin { tries: 0 } | yubikey::Error::PinLocked) => {
                Err(attempt.blocked().into())
            }
            Err(yubikey::Error::WrongPin { tries }) => {
                Err(attempt.rejected(TriesLeft::Exactly(tries)).into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Verifies the PIN unless this connection already did.
    fn ensure_pin(&self, dev: &mut Device) -> Result<(), OpError> {
        if Self::conn(dev)?.pin_verified {
            return Ok(());
        }
        self.verify_pin(dev)
    }

    /// Presents the PIN again right before an operation that needs it (PIN
    /// policy "always"), without re-selecting the application, so the
    /// management-key authentication stays. Only a PIN the device accepted
    /// before is presented this way; otherwise a full
    /// [`Self::verify_pin`] runs.
    fn reverify_pin(&self, dev: &mut Device) -> Result<(), OpError> {
        let attempt = self.gate.login()?;
        if !attempt.previously_accepted() || !Self::conn(dev)?.pin_verified {
            drop(attempt);
            return self.verify_pin(dev);
        }
        let conn = Self::conn(dev)?;
        match conn.yk.verify_pin(attempt.pin().expose_secret().as_bytes()) {
            Ok(()) => {
                attempt.accepted();
                Ok(())
            }
            Err(yubikey::Error::WrongPin { tries: 0 } | yubikey::Error::PinLocked) => {
                conn.pin_verified = false;
                Err(attempt.blocked().into())
            }
            Err(yubikey::Error::WrongPin { tries }) => {
                // Changed by someone else since it was accepted.
                conn.pin_verified = false;
                Err(attempt.rejected(TriesLeft::Exactly(tries)).into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Authenticates with the management key, replacing the factory default
    /// first if the device still has it (set-up). Returns whether it did.
    fn ensure_admin(&self, dev: &mut Device) -> Result<SetUp, OpError> {
        self.ensure_pin(dev)?;
        let conn = Self::conn(dev)?;
        if conn.admin {
            return Ok(SetUp::AlreadySetUp);
        }
        let configured: Option<Zeroizing<Vec<u8>>> = match &self.config.management_key {
            ManagementKeySource::PinProtected => mgm::read_protected(&mut conn.yk)?,
            ManagementKeySource::Configured(source) => {
                let text = source.read().map_err(|detail| KeyError::Device {
                    token: self.name_owned(),
                    operation: "reading the management key",
                    detail: format!("{detail} (management_key {source})"),
                })?;
                Some(
                    mgm::parse_hex(text.expose_secret()).map_err(|detail| KeyError::Device {
                        token: self.name_owned(),
                        operation: "reading the management key",
                        detail: format!("{detail} (management_key {source})"),
                    })?,
                )
            }
        };
        if let Some(bytes) = &configured {
            for key in mgm::candidates(&mut conn.yk, bytes) {
                match conn.yk.authenticate(&key) {
                    Ok(()) => {
                        conn.admin = true;
                        return Ok(SetUp::AlreadySetUp);
                    }
                    Err(yubikey::Error::AuthenticationError) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        // Not the configured key: is it still the factory default?
        let default = MgmKey::get_default(&conn.yk)?;
        match conn.yk.authenticate(&default) {
            Ok(()) => {}
            Err(yubikey::Error::AuthenticationError) => {
                let detail = match (&self.config.management_key, &configured) {
                    (ManagementKeySource::PinProtected, Some(_)) => format!(
                        "the PIN-protected management key stored on {} does not authenticate; set a new one with `ykman piv access change-management-key --generate --protect`",
                        self.serial_text()
                    ),
                    (ManagementKeySource::PinProtected, None) => format!(
                        "{} has no PIN-protected management key and not the factory default; protect it with `ykman piv access change-management-key --generate --protect`, or configure management_key = \"env:…\" or \"file:…\"",
                        self.serial_text()
                    ),
                    (ManagementKeySource::Configured(source), _) => format!(
                        "the management key from {source} is not the management key of {}",
                        self.serial_text()
                    ),
                };
                return Err(KeyError::Device {
                    token: self.name_owned(),
                    operation: "authenticating with the management key",
                    detail,
                }
                .into());
            }
            Err(e) => return Err(e.into()),
        }
        self.replace_default(conn, configured.as_deref().map(Vec::as_slice))?;
        Ok(SetUp::ReplacedDefaultManagementKey)
    }

    /// Set-up: replaces the factory-default management key (the device is
    /// authenticated with it) by the configured one or a new PIN-protected
    /// random key, and authenticates with the new key.
    fn replace_default(&self, conn: &mut Conn, configured: Option<&[u8]>) -> Result<(), OpError> {
        let version = conn.yk.version();
        match (&self.config.management_key, configured) {
            (ManagementKeySource::Configured(source), Some(bytes)) => {
                let preferred = mgm::new_key_algorithm(version);
                let key = MgmKey::from_bytes(bytes, Some(preferred))
                    .or_else(|_| MgmKey::from_bytes(bytes, None))
                    .or_else(|_| {
                        let mut candidates = mgm::candidates(&mut conn.yk, bytes);
                        candidates.pop().ok_or(yubikey::Error::SizeError)
                    })?;
                key.set_manual(&mut conn.yk, false)?;
                conn.yk.authenticate(&key)?;
                tracing::warn!(token = %self.config.name, serial = self.config.serial, %source,
                    "set-up: replaced the factory-default PIV management key by the configured one");
            }
            _ => {
                let key = mgm::new_key(version)?;
                if let Err(e) = key.set_protected(&mut conn.yk) {
                    // The key may be set without being stored: put the
                    // default back rather than lose the management key.
                    let restored = conn
                        .yk
                        .authenticate(&key)
                        .and_then(|()| MgmKey::set_default(&mut conn.yk));
                    tracing::error!(token = %self.config.name, error = %e, restored = restored.is_ok(),
                        "set-up: storing the PIN-protected management key failed");
                    return Err(e.into());
                }
                conn.yk.authenticate(&key)?;
                tracing::warn!(token = %self.config.name, serial = self.config.serial,
                    "set-up: replaced the factory-default PIV management key by a random key stored PIN-protected on the device (as `ykman piv access change-management-key --generate --protect`)");
            }
        }
        conn.admin = true;
        Ok(())
    }

    /// Makes sure the device does not keep the factory-default management
    /// key: authenticates with the configured (or PIN-protected) management
    /// key, replacing the default if the device still has it. Generating or
    /// importing a key does this by itself; this is for set-up scripts.
    pub fn set_up(&self) -> Result<SetUp, KeyError> {
        self.run("setting up the YubiKey", |s, dev| s.ensure_admin(dev))
    }

    /// Reads every tufd key from the slot certificates.
    fn scan(&self, dev: &mut Device) -> Result<Index, OpError> {
        let conn = Self::conn(dev)?;
        let mut index = Index::default();
        for reference in DEFAULT_SLOTS {
            let Some(slot) = slot_from_u8(reference) else {
                continue;
            };
            let Some(certificate) = read_certificate(&mut conn.yk, slot)? else {
                continue;
            };
            index.occupied.insert(reference);
            let tbs = certificate.tbs_certificate();
            let Some(record) = cert::parse_subject(tbs.subject()) else {
                continue;
            };
            let verifying = tbs
                .subject_public_key_info()
                .to_der()
                .ok()
                .and_then(|der| VerifyingKey::from_public_key_der(&der).ok());
            let Some(verifying) = verifying else {
                tracing::warn!(token = %self.config.name, slot = %slot_name(slot), key = %record.label,
                    "skipping a tufd certificate whose key is not P-256");
                continue;
            };
            let Ok(spki) = verifying.to_public_key_der() else {
                continue;
            };
            let mut pin_policy = record.pin_policy;
            let mut touch_policy = record.touch_policy;
            let mut origin = record.origin;
            // Firmware 5.3+ reports the slot's real policies and origin.
            if let Ok(meta) = piv::metadata(&mut conn.yk, slot) {
                if let Some((p, t)) = meta.policy {
                    pin_policy = KeyPinPolicy::from_yubikey(p);
                    touch_policy = KeyTouchPolicy::from_yubikey(t);
                }
                match meta.origin {
                    Some(piv::Origin::Generated) => origin = KeyOrigin::Generated,
                    Some(piv::Origin::Imported) => origin = KeyOrigin::Imported,
                    None => {}
                }
            }
            let id = (self.id_scheme)(spki.as_bytes());
            index.by_id.insert(
                id.clone(),
                Entry {
                    record: KeyRecord {
                        id,
                        label: record.label,
                        token: self.name_owned(),
                        spki_der: spki.as_bytes().to_vec(),
                        origin,
                        sensitive: true,
                        extractable: false,
                    },
                    slot,
                    verifying,
                    pin_policy,
                    touch_policy,
                },
            );
        }
        Ok(index)
    }

    /// The index, scanning the device if this connection has not yet.
    fn index(&self, dev: &mut Device) -> Result<Index, OpError> {
        if let Some(ix) = &dev.index {
            return Ok(ix.clone());
        }
        let ix = self.scan(dev)?;
        let mut touch = self.touch.write().unwrap_or_else(|p| p.into_inner());
        touch.clear();
        for (id, e) in &ix.by_id {
            touch.insert(id.clone(), e.touch_policy.needs_touch());
        }
        drop(touch);
        dev.index = Some(ix.clone());
        Ok(ix)
    }

    fn entry(&self, dev: &mut Device, id: &str) -> Result<Entry, OpError> {
        self.index(dev)?.by_id.remove(id).ok_or_else(|| {
            KeyError::KeyNotFound {
                token: self.name_owned(),
                what: format!("with ID {id}"),
            }
            .into()
        })
    }

    fn remember(&self, dev: &mut Device, entry: Entry) {
        self.touch
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(entry.record.id.clone(), entry.touch_policy.needs_touch());
        if let Some(ix) = dev.index.as_mut() {
            ix.occupied.insert(u8::from(entry.slot));
            ix.by_id.insert(entry.record.id.clone(), entry);
        }
    }

    fn forget(&self, dev: &mut Device, entry: &Entry) {
        self.touch
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&entry.record.id);
        if let Some(ix) = dev.index.as_mut() {
            ix.occupied.remove(&u8::from(entry.slot));
            ix.by_id.remove(&entry.record.id);
        }
    }

    fn check_free(&self, ix: &Index, label: &KeyLabel, id: Option<&str>) -> Result<(), OpError> {
        if let Some(e) = ix.by_id.values().find(|e| e.record.label == *label) {
            return Err(KeyError::AlreadyExists {
                token: self.name_owned(),
                what: format!("a key named {label} (ID {})", e.record.id),
            }
            .into());
        }
        if let Some(e) = id.and_then(|id| ix.by_id.get(id)) {
            return Err(KeyError::AlreadyExists {
                token: self.name_owned(),
                what: format!(
                    "this key (ID {}, named {}, slot {})",
                    e.record.id,
                    e.record.label,
                    slot_name(e.slot)
                ),
            }
            .into());
        }
        Ok(())
    }

    /// The first configured slot without a certificate and, where the device
    /// can tell (GET METADATA, firmware 5.3+), without a key.
    fn free_slot(&self, dev: &mut Device, ix: &Index) -> Result<SlotId, OpError> {
        let conn = Self::conn(dev)?;
        for &reference in &self.config.slots {
            if ix.occupied.contains(&reference) {
                continue;
            }
            let Some(slot) = slot_from_u8(reference) else {
                continue;
            };
            if let Ok(meta) = piv::metadata(&mut conn.yk, slot)
                && meta.public.is_some()
            {
                tracing::debug!(token = %self.config.name, slot = %slot_name(slot),
                    "slot holds a key without a certificate; not reusing it");
                continue;
            }
            return Ok(slot);
        }
        Err(KeyError::Device {
            token: self.name_owned(),
            operation: "choosing a PIV slot",
            detail: format!(
                "no free slot among {} on {}: delete a key (`tufctl key rm`) or configure other `slots`",
                self.config
                    .slots
                    .iter()
                    .map(|r| format!("{r:02x}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.serial_text()
            ),
        }
        .into())
    }

    /// Writes the self-signed certificate recording `record` into `slot`,
    /// signed by the slot's key on the device. The management key must be
    /// authenticated.
    fn certify(
        &self,
        dev: &mut Device,
        slot: SlotId,
        spki: SubjectPublicKeyInfoOwned,
        record: &SlotRecord,
    ) -> Result<(), OpError> {
        let subject = cert::subject(record).map_err(|e| KeyError::Device {
            token: self.name_owned(),
            operation: "building the slot certificate",
            detail: e.to_string(),
        })?;
        let validity = Validity::from_now(CERT_VALIDITY).map_err(|e| KeyError::Device {
            token: self.name_owned(),
            operation: "building the slot certificate",
            detail: e.to_string(),
        })?;
        let serial = SerialNumber::from(rand::random::<u32>() >> 1 | 1);
        // The self-signature is a signature like any other: PIN right before.
        self.reverify_pin(dev)?;
        if record.touch_policy.needs_touch() {
            tracing::info!(token = %self.config.name, serial = self.config.serial,
                "touch the YubiKey to certify the new key");
        }
        let conn = Self::conn(dev)?;
        Certificate::generate_self_signed::<_, p256::NistP256>(
            &mut conn.yk,
            slot,
            serial,
            validity,
            subject,
            spki,
            |_| Ok(()),
        )?;
        Ok(())
    }

    fn new_entry(
        &self,
        slot: SlotId,
        spki_der: Vec<u8>,
        verifying: VerifyingKey,
        record: SlotRecord,
    ) -> Entry {
        let id = (self.id_scheme)(&spki_der);
        Entry {
            record: KeyRecord {
                id,
                label: record.label,
                token: self.name_owned(),
                spki_der,
                origin: record.origin,
                sensitive: true,
                extractable: false,
            },
            slot,
            verifying,
            pin_policy: record.pin_policy,
            touch_policy: record.touch_policy,
        }
    }

    fn describe(&self, dev: &mut Device) -> Result<TokenDescription, OpError> {
        let conn = Self::conn(dev)?;
        Ok(TokenDescription {
            label: conn.yk.name().to_owned(),
            serial: conn.yk.serial().to_string(),
            manufacturer: "Yubico".into(),
            model: format!("YubiKey (PIV {})", conn.yk.version()),
        })
    }

    /// The PIV slot of key `id` (as ykman names it: "9c", "82", …).
    pub fn slot_of(&self, id: &str) -> Result<String, KeyError> {
        self.run("finding a key", |s, dev| {
            Ok(slot_name(s.entry(dev, id)?.slot))
        })
    }

    /// Fetches and verifies the attestation of key `id`: the device signs a
    /// certificate for the slot's key with its attestation key (slot f9),
    /// whose certificate Yubico issued. See [`attest`]. The chain is
    /// checked up to the configured `attestation_roots`, or up to the f9
    /// certificate when none are configured.
    pub fn attestation(&self, id: &str) -> Result<attest::Attestation, KeyError> {
        let (spki_der, statement, intermediate) =
            self.fetch_attestation(id)?
                .map_err(|detail| KeyError::Device {
                    token: self.name_owned(),
                    operation: "attesting a key",
                    detail,
                })?;
        self.verify_attestation(&spki_der, &statement, &intermediate)
            .map_err(|e| KeyError::Device {
                token: self.name_owned(),
                operation: "verifying the attestation",
                detail: format!("{e} ({})", self.serial_text()),
            })
    }

    fn verify_attestation(
        &self,
        spki_der: &[u8],
        statement: &[u8],
        intermediate: &[u8],
    ) -> Result<attest::Attestation, attest::AttestationError> {
        attest::verify(
            statement,
            intermediate,
            spki_der,
            &self.config.attestation_roots,
        )
    }

    /// The key's SPKI, the attestation statement and the f9 certificate;
    /// the inner error is why the device cannot attest the key (a sentence).
    #[allow(clippy::type_complexity)]
    fn fetch_attestation(
        &self,
        id: &str,
    ) -> Result<Result<(Vec<u8>, Vec<u8>, Vec<u8>), String>, KeyError> {
        self.run("attesting a key", |s, dev| {
            let entry = s.entry(dev, id)?;
            if entry.record.origin == KeyOrigin::Imported {
                return Ok(Err(format!(
                    "the key in slot {} was imported, not generated on {}: a YubiKey attests only keys it generated",
                    slot_name(entry.slot),
                    s.serial_text()
                )));
            }
            let conn = Self::conn(dev)?;
            let statement = match piv::attest(&mut conn.yk, entry.slot) {
                Ok(der) => der.to_vec(),
                Err(e) if connection_lost(&e) => return Err(e.into()),
                Err(e) => {
                    return Ok(Err(format!(
                        "{} cannot attest the key in slot {} (the device answered: {e}); attestation needs a YubiKey 4.3 or later and a key generated on the device",
                        s.serial_text(),
                        slot_name(entry.slot)
                    )));
                }
            };
            let intermediate = match read_certificate(&mut conn.yk, SlotId::Attestation)? {
                Some(c) => c.to_der().map_err(|_| yubikey::Error::InvalidObject)?,
                None => {
                    return Ok(Err(format!(
                        "{} has no attestation certificate in slot f9",
                        s.serial_text()
                    )));
                }
            };
            Ok(Ok((entry.record.spki_der, statement, intermediate)))
        })
    }

    fn sign_once(
        &self,
        dev: &mut Device,
        entry: &Entry,
        digest: &[u8; 32],
    ) -> Result<Vec<u8>, OpError> {
        self.ensure_pin(dev)?;
        let reference = u8::from(entry.slot);
        let each_time = entry.pin_policy.before_each_signature(entry.slot)
            || dev.pin_each_time.contains(&reference);
        if each_time {
            self.reverify_pin(dev)?;
        }
        let first = piv::sign_data(
            &mut Self::conn(dev)?.yk,
            digest,
            AlgorithmId::EccP256,
            entry.slot,
        );
        let result = match first {
            Err(yubikey::Error::AuthenticationError) => {
                // The device wants the PIN (again): the slot's policy wants
                // it before every signature (devices that ignore the
                // configured policy), or another program dropped it.
                if !each_time {
                    tracing::info!(token = %self.config.name, slot = %slot_name(entry.slot),
                        "the YubiKey wants the PIN before signatures with this slot");
                    dev.pin_each_time.insert(reference);
                }
                self.reverify_pin(dev)?;
                piv::sign_data(
                    &mut Self::conn(dev)?.yk,
                    digest,
                    AlgorithmId::EccP256,
                    entry.slot,
                )
            }
            other => other,
        };
        match result {
            Ok(der) => Ok(der.to_vec()),
            Err(yubikey::Error::GenericError) if entry.touch_policy.needs_touch() => {
                Err(KeyError::Device {
                    token: self.name_owned(),
                    operation: "signing",
                    detail: format!(
                        "{} was not touched in time (it waits about 15 seconds for a touch of key {}); touch its contact when it blinks, then retry",
                        self.serial_text(),
                        entry.record.label
                    ),
                }
                .into())
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl KeyStore for YubiKeyStore {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn device(&self) -> (String, String) {
        ("YubiKey".to_owned(), self.config.serial.to_string())
    }

    fn certificate_subject(&self, id: &str) -> Option<Vec<u8>> {
        use der::Encode;
        let entry = self.run("reading a key", |s, dev| s.entry(dev, id)).ok()?;
        let record = cert::SlotRecord {
            label: entry.record.label.clone(),
            pin_policy: entry.pin_policy,
            touch_policy: entry.touch_policy,
            origin: entry.record.origin,
        };
        cert::subject(&record).ok()?.to_der().ok()
    }

    fn store_certificate(&self, id: &str, cert_der: &[u8]) -> Result<(), KeyError> {
        use der::{Decode, Encode};
        let bad = |detail: String| KeyError::Corrupt {
            token: self.name_owned(),
            detail,
        };
        let parsed = x509_cert::Certificate::from_der(cert_der)
            .map_err(|e| bad(format!("the certificate to store does not parse: {e}")))?;
        let spki = parsed
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| bad(e.to_string()))?;
        let slot = self.run("storing a certificate", |s, dev| {
            let entry = s.entry(dev, id)?;
            // Only a certificate for this key that keeps its label: the
            // index is rebuilt from the slot certificates.
            if spki != entry.record.spki_der {
                return Err(bad(format!("the certificate is not for key {id}")).into());
            }
            let record = cert::parse_subject(parsed.tbs_certificate().subject());
            if record.as_ref().map(|r| &r.label) != Some(&entry.record.label) {
                return Err(bad(format!(
                    "the certificate's subject does not carry the label of key {id}"
                ))
                .into());
            }
            s.ensure_admin(dev)?;
            let conn = Self::conn(dev)?;
            Certificate::from_bytes(cert_der.to_vec())?.write(
                &mut conn.yk,
                entry.slot,
                yubikey::certificate::CertInfo::Uncompressed,
            )?;
            Ok(entry.slot)
        })?;
        tracing::info!(token = %self.config.name, id, slot = %slot_name(slot),
            "certificate stored in the key's slot");
        Ok(())
    }

    fn status(&self) -> TokenStatus {
        TokenStatus::from_probe(self.run("reading the device", |s, dev| {
            s.ensure_pin(dev)?;
            let count = s.index(dev)?.by_id.len();
            Ok((s.describe(dev)?, count))
        }))
    }

    fn list(&self) -> Result<Vec<KeyRecord>, KeyError> {
        let mut keys: Vec<KeyRecord> = self
            .run("listing keys", |s, dev| {
                s.ensure_pin(dev)?;
                s.index(dev)
            })?
            .by_id
            .into_values()
            .map(|e| e.record)
            .collect();
        keys.sort_by(|a, b| a.label.cmp(&b.label).then(a.id.cmp(&b.id)));
        Ok(keys)
    }

    fn generate(&self, label: &KeyLabel) -> Result<KeyRecord, KeyError> {
        let entry = self.run("generating a key", |s, dev| {
            let ix = s.index(dev)?;
            s.check_free(&ix, label, None)?;
            s.ensure_admin(dev)?;
            let slot = s.free_slot(dev, &ix)?;
            let record = SlotRecord {
                label: label.clone(),
                pin_policy: s.config.pin_policy,
                touch_policy: s.config.touch_policy,
                origin: KeyOrigin::Generated,
            };
            tracing::info!(token = %s.config.name, key = %label, slot = %slot_name(slot),
                pin_policy = record.pin_policy.as_str(), touch_policy = record.touch_policy.as_str(),
                "generating a P-256 key on the YubiKey");
            let spki = piv::generate(
                &mut Self::conn(dev)?.yk,
                slot,
                AlgorithmId::EccP256,
                record.pin_policy.to_yubikey(),
                record.touch_policy.to_yubikey(),
            )?;
            let verifying = spki
                .to_der()
                .ok()
                .and_then(|der| VerifyingKey::from_public_key_der(&der).ok())
                .ok_or_else(|| KeyError::Corrupt {
                    token: s.name_owned(),
                    detail: format!(
                        "the key generated in slot {} is not a P-256 key",
                        slot_name(slot)
                    ),
                })?;
            let spki_der = verifying
                .to_public_key_der()
                .map_err(|_| yubikey::Error::InvalidObject)?
                .as_bytes()
                .to_vec();
            s.certify(dev, slot, spki, &record)?;
            let entry = s.new_entry(slot, spki_der, verifying, record);
            s.remember(dev, entry.clone());
            Ok(entry)
        })?;
        tracing::info!(token = %self.config.name, key = %label, id = %entry.record.id,
            slot = %slot_name(entry.slot), "key generated");
        Ok(entry.record)
    }

    fn import(&self, label: &KeyLabel, key: &SecretKey) -> Result<KeyRecord, KeyError> {
        let public = key.public_key();
        let verifying = VerifyingKey::from(&public);
        let spki_der = public
            .to_public_key_der()
            .map_err(|e| KeyError::InvalidLabel(format!("cannot encode the public key: {e}")))?
            .as_bytes()
            .to_vec();
        let id = (self.id_scheme)(&spki_der);
        let entry = self.run("importing a key", |s, dev| {
            let ix = s.index(dev)?;
            s.check_free(&ix, label, Some(&id))?;
            s.ensure_admin(dev)?;
            let slot = s.free_slot(dev, &ix)?;
            let record = SlotRecord {
                label: label.clone(),
                pin_policy: s.config.pin_policy,
                touch_policy: s.config.touch_policy,
                origin: KeyOrigin::Imported,
            };
            let scalar = Zeroizing::new(key.to_bytes());
            let imported = piv::import_ecc_key(
                &mut Self::conn(dev)?.yk,
                slot,
                AlgorithmId::EccP256,
                scalar.as_slice(),
                record.touch_policy.to_yubikey(),
                record.pin_policy.to_yubikey(),
            );
            drop(scalar);
            match imported {
                Ok(()) => {}
                Err(yubikey::Error::GenericError) => {
                    return Err(KeyError::Device {
                        token: s.name_owned(),
                        operation: "importing a key",
                        detail: format!(
                            "{} refused to import a P-256 key into slot {} (YubiKey 4 and 5 accept such imports; this device does not): generate the key on the device instead (`tufctl key generate`), or load it into a PKCS#11 token",
                            s.serial_text(),
                            slot_name(slot)
                        ),
                    }
                    .into());
                }
                Err(e) => return Err(e.into()),
            }
            let spki = SubjectPublicKeyInfoOwned::from_der(&spki_der)
                .map_err(|_| yubikey::Error::InvalidObject)?;
            s.certify(dev, slot, spki, &record)?;
            let entry = s.new_entry(slot, spki_der.clone(), verifying, record);
            s.remember(dev, entry.clone());
            Ok(entry)
        })?;
        tracing::info!(token = %self.config.name, key = %label, id = %entry.record.id,
            slot = %slot_name(entry.slot), "key imported");
        Ok(entry.record)
    }

    fn delete(&self, id: &str) -> Result<KeyRecord, KeyError> {
        let record = self.run("deleting a key", |s, dev| {
            let entry = s.entry(dev, id)?;
            s.ensure_admin(dev)?;
            let conn = Self::conn(dev)?;
            // PIV has no "delete key" before firmware 5.7: a new key
            // generated over it destroys the old private key.
            piv::generate(
                &mut conn.yk,
                entry.slot,
                AlgorithmId::EccP256,
                yubikey::PinPolicy::Default,
                yubikey::TouchPolicy::Never,
            )?;
            Certificate::delete(&mut conn.yk, entry.slot)?;
            s.forget(dev, &entry);
            Ok(entry.record)
        })?;
        tracing::info!(token = %self.config.name, key = %record.label, id,
            "key deleted (private key overwritten, certificate removed)");
        Ok(record)
    }

    fn sign_digest(&self, id: &str, digest: &[u8; 32]) -> Result<[u8; 64], KeyError> {
        let (der, entry) = self.run("signing", |s, dev| {
            let entry = s.entry(dev, id)?;
            let der = s.sign_once(dev, &entry, digest)?;
            Ok((der, entry))
        })?;
        let bad = || KeyError::BadSignature {
            token: self.name_owned(),
            key_id: id.to_owned(),
        };
        let sig = p256::ecdsa::Signature::from_der(&der).map_err(|_| bad())?;
        entry
            .verifying
            .verify_prehash(digest, &sig)
            .map_err(|_| bad())?;
        let mut out = [0u8; 64];
        out.copy_from_slice(&sig.to_bytes());
        Ok(out)
    }

    fn attest(&self, id: &str) -> Result<crate::Attestation, KeyError> {
        let (spki_der, statement, intermediate) = match self.fetch_attestation(id)? {
            Ok(parts) => parts,
            Err(reason) => return Ok(crate::Attestation::Unavailable { reason }),
        };
        Ok(
            match self.verify_attestation(&spki_der, &statement, &intermediate) {
                Ok(a) => crate::Attestation::Verified(a),
                Err(e) => crate::Attestation::Invalid {
                    reason: format!("{e} ({})", self.serial_text()),
                },
            },
        )
    }

    fn unlock(&self, pin: secrecy::SecretString) -> Result<(), KeyError> {
        crate::gate::check_length(&self.config.name, &pin, 8)?;
        let extended = self.run("unlocking the token", |s, dev| {
            // Verified on this connection: the gate never lets this PIN
            // reach the device (a wrong one would drop the verification).
            let ready = Self::conn(dev)?.pin_verified;
            match s.gate.unlock(pin.clone(), ready)? {
                UnlockStart::Extended => Ok(true),
                UnlockStart::Present(attempt) => s.present_pin(dev, attempt).map(|()| false),
            }
        })?;
        if extended {
            tracing::info!(token = %self.config.name,
                "unlock with the PIN the device accepted: cache time extended");
            return Ok(());
        }
        tracing::info!(token = %self.config.name, serial = self.config.serial,
            cache_seconds = self.config.pin_cache.map_or(0, |d| d.as_secs()),
            "token unlocked with a PIN given over the socket (0: until the daemon stops)");
        Ok(())
    }

    fn needs_touch(&self, id: &str) -> bool {
        if let Some(t) = self.touch.read().unwrap_or_else(|p| p.into_inner()).get(id) {
            return *t;
        }
        if self.list().is_err() {
            return false;
        }
        self.touch
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .copied()
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_lost_connections() {
        let pcsc = |p| yubikey::Error::PcscError { inner: Some(p) };
        assert!(connection_lost(&pcsc(pcsc::Error::ResetCard)));
        assert!(connection_lost(&pcsc(pcsc::Error::ProtoMismatch)));
        assert!(connection_lost(&pcsc(pcsc::Error::RemovedCard)));
        assert!(connection_lost(&yubikey::Error::PcscError { inner: None }));
        assert!(!connection_lost(&pcsc(pcsc::Error::SharingViolation)));
        assert!(!connection_lost(&yubikey::Error::WrongPin { tries: 2 }));
        assert!(!connection_lost(&yubikey::Error::AuthenticationError));
    }

    #[test]
    fn config_defaults_follow_the_issue() {
        let c = YubiKeyConfig::new("yk", 123, PinSource::Env("PIN".into()));
        assert_eq!(c.management_key, ManagementKeySource::PinProtected);
        assert_eq!(c.pin_policy, KeyPinPolicy::Once);
        assert_eq!(c.touch_policy, KeyTouchPolicy::Always);
        assert_eq!(&c.slots[..4], &[0x9c, 0x9e, 0x9d, 0x9a]);
        assert_eq!(c.slots.len(), 24);
        // No secret in Debug: the sources only.
        let debug = format!("{c:?}");
        assert!(
            debug.contains("env:PIN") && debug.contains("pin-protected"),
            "{debug}"
        );
    }
}
