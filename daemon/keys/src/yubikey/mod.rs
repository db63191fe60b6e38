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
//! retired slots 82–95, the first free one; or the configured `slots`). A
//! slot is free only when no other application's key can be in it: GET
//! METADATA (firmware 5.3+) says it is empty, tufd freed it (its "free
//! slot" certificate, which a delete or a key that could not be certified
//! leaves), or the device cannot tell and the administrator listed it in
//! `slots` ([`SlotChoice`], `index::choose_slot`). The
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
//! serial, verifies the PIN again and repeats the operation once. When the
//! device answers with a status word the driver does not expect (the
//! crate's `GenericError`: another program left OATH or OpenPGP selected),
//! the store connects again, which selects PIV, and repeats once
//! (`connection::recovery`). A touch timeout (6982 right after the PIN) is
//! reported as such; nothing else is.
//!
//! # Files
//! `connection` (finding the device, one command at a time, reconnecting),
//! `login` (the PIN through the gate), `admin` (management key, set-up),
//! `index` (slot certificates, free slots), `sign`, `attest` (attestation
//! chains), `cert`/`mgm`/`policy` (certificate subjects, key sources,
//! policies); this file holds the configuration, attestation requests and
//! the [`KeyStore`] operations.

mod admin;
pub mod attest;
mod cert;
mod connection;
mod index;
mod login;
mod mgm;
mod policy;
#[cfg(test)]
mod real_device;
mod sign;
#[cfg(test)]
mod vcard_tests;

pub use index::label_in_subject;
pub use policy::{
    DEFAULT_SLOTS, KeyPinPolicy, KeySlot, KeyTouchPolicy, ManagementKeySource, SlotChoice,
    parse_slot,
};

use connection::{Conn, OpError, connection_lost};
use index::{Entry, Index, read_certificate};

use crate::gate::{Attempt, PinGate, PinRules, UnlockStart};
use crate::pin::PinSource;
use crate::verify::Verifier;
use crate::{
    IdScheme, KeyError, KeyLabel, KeyOrigin, KeyRecord, KeyStore, TokenDescription, TokenStatus,
    TriesLeft,
};
use cert::SlotRecord;
use der::{Decode, Encode};
use p256::SecretKey;
use p256::ecdsa::VerifyingKey;
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
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
    /// Slots to use, in order of preference: the defaults, or the
    /// administrator's `slots` (which, on devices without GET METADATA, are
    /// the only slots without a certificate tufd uses).
    pub slots: SlotChoice,
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
    /// once, touch always, slots [`SlotChoice::Default`].
    pub fn new(name: impl Into<String>, serial: u32, pin: PinSource) -> Self {
        Self {
            name: name.into(),
            serial,
            pin,
            management_key: ManagementKeySource::PinProtected,
            pin_policy: KeyPinPolicy::Once,
            touch_policy: KeyTouchPolicy::Always,
            slots: SlotChoice::Default,
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

/// Everything behind the device mutex.
struct Device {
    conn: Option<Conn>,
    index: Option<Index>,
    /// Slots that turned out to want the PIN before every signature.
    pin_each_time: HashSet<KeySlot>,
    /// The operation is being repeated after PIV was selected again (an
    /// unexpected answer from the device; see `run`).
    reselected: bool,
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
                reselected: false,
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
            source: Some(e.into()),
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
            Ok(s.entry(dev, id)?.slot.to_string())
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
                    source: None,
                    detail,
                })?;
        self.verify_attestation(&spki_der, &statement, &intermediate)
            .map_err(|e| KeyError::Device {
                token: self.name_owned(),
                operation: "verifying the attestation",
                source: None,
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
                    entry.slot,
                    s.serial_text()
                )));
            }
            let conn = Self::conn(dev)?;
            let statement = match piv::attest(&mut conn.yk, entry.slot.id()) {
                Ok(der) => der.to_vec(),
                Err(e) if connection_lost(&e) => return Err(e.into()),
                Err(e) => {
                    return Ok(Err(format!(
                        "{} cannot attest the key in slot {} (the device answered: {e}); attestation needs a YubiKey 4.3 or later and a key generated on the device",
                        s.serial_text(),
                        entry.slot
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
}

impl KeyStore for YubiKeyStore {
    fn unlock(&self, pin: secrecy::SecretString) -> Result<(), KeyError> {
        self.unlock_token(pin)
    }

    fn sign_digest(&self, id: &str, digest: &[u8; 32]) -> Result<[u8; 64], KeyError> {
        self.sign_with(id, digest)
    }

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
                entry.slot.id(),
                yubikey::certificate::CertInfo::Uncompressed,
            )?;
            Ok(entry.slot)
        })?;
        tracing::info!(token = %self.config.name, id, slot = %slot,
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
            tracing::info!(token = %s.config.name, key = %label, slot = %slot,
                pin_policy = record.pin_policy.as_str(), touch_policy = record.touch_policy.as_str(),
                "generating a P-256 key on the YubiKey");
            let spki = piv::generate(
                &mut Self::conn(dev)?.yk,
                slot.id(),
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
                        slot
                    ),
                })?;
            let spki_der = verifying
                .to_public_key_der()
                .map_err(|_| yubikey::Error::InvalidObject)?
                .as_bytes()
                .to_vec();
            if let Err(e) = s.certify(dev, slot, spki.clone(), &record) {
                s.abandon_slot(dev, slot, spki, &e);
                return Err(e);
            }
            let entry = s.new_entry(slot, spki_der, verifying, record);
            s.remember(dev, entry.clone());
            Ok(entry)
        })?;
        tracing::info!(token = %self.config.name, key = %label, id = %entry.record.id,
            slot = %entry.slot, "key generated");
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
                slot.id(),
                AlgorithmId::EccP256,
                scalar.as_slice(),
                record.touch_policy.to_yubikey(),
                record.pin_policy.to_yubikey(),
            );
            drop(scalar);
            match imported {
                Ok(()) => {}
                // Once PIV was selected again (another application may have
                // been selected: see `run`), a refusal is the device's.
                Err(yubikey::Error::GenericError) if dev.reselected => {
                    return Err(KeyError::Device {
                        token: s.name_owned(),
                        operation: "importing a key",
                        source: None,
                        detail: format!(
                            "{} refused to import a P-256 key into slot {} (YubiKey 4 and 5 accept such imports; this device does not): generate the key on the device instead (`tufctl key generate`), or load it into a PKCS#11 token",
                            s.serial_text(),
                            slot
                        ),
                    }
                    .into());
                }
                Err(e) => return Err(e.into()),
            }
            let spki = SubjectPublicKeyInfoOwned::from_der(&spki_der)
                .map_err(|_| yubikey::Error::InvalidObject)?;
            if let Err(e) = s.certify(dev, slot, spki.clone(), &record) {
                s.abandon_slot(dev, slot, spki, &e);
                return Err(e);
            }
            let entry = s.new_entry(slot, spki_der.clone(), verifying, record);
            s.remember(dev, entry.clone());
            Ok(entry)
        })?;
        tracing::info!(token = %self.config.name, key = %label, id = %entry.record.id,
            slot = %entry.slot, "key imported");
        Ok(entry.record)
    }

    fn delete(&self, id: &str) -> Result<KeyRecord, KeyError> {
        let record = self.run("deleting a key", |s, dev| {
            let entry = s.entry(dev, id)?;
            s.ensure_admin(dev)?;
            let conn = Self::conn(dev)?;
            // PIV has no "delete key" before firmware 5.7: a new key
            // generated over it destroys the old private key. The slot then
            // gets tufd's "free slot" marker instead of the key's
            // certificate, so tufd uses it again (a device with GET
            // METADATA shows the throwaway key, which unmarked would look
            // like another application's).
            let throwaway = piv::generate(
                &mut conn.yk,
                entry.slot.id(),
                AlgorithmId::EccP256,
                yubikey::PinPolicy::Default,
                yubikey::TouchPolicy::Never,
            )?;
            s.mark_freed(dev, entry.slot, throwaway)?;
            s.forget(dev, &entry);
            Ok(entry.record)
        })?;
        tracing::info!(token = %self.config.name, key = %record.label, id,
            "key deleted (private key overwritten, slot marked free for tufd)");
        Ok(record)
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
    fn unexpected_answers_select_piv_again() {
        use connection::{Recovery, recovery};
        let pcsc = |p| yubikey::Error::PcscError { inner: Some(p) };
        // Another application selected: the crate's unknown status word.
        assert_eq!(recovery(&yubikey::Error::GenericError), Recovery::Reselect);
        assert_eq!(recovery(&pcsc(pcsc::Error::ResetCard)), Recovery::Reconnect);
        // 6982 (PIN missing, or a touch timeout), a wrong PIN: the device's
        // answer stands.
        assert_eq!(
            recovery(&yubikey::Error::AuthenticationError),
            Recovery::Fail
        );
        assert_eq!(
            recovery(&yubikey::Error::WrongPin { tries: 2 }),
            Recovery::Fail
        );
        assert_eq!(
            recovery(&pcsc(pcsc::Error::SharingViolation)),
            Recovery::Fail
        );
    }

    #[test]
    fn config_defaults_follow_the_issue() {
        let c = YubiKeyConfig::new("yk", 123, PinSource::Env("PIN".into()));
        assert_eq!(c.management_key, ManagementKeySource::PinProtected);
        assert_eq!(c.pin_policy, KeyPinPolicy::Once);
        assert_eq!(c.touch_policy, KeyTouchPolicy::Always);
        assert_eq!(c.slots, SlotChoice::Default);
        let order = c.slots.order();
        assert_eq!(
            order[..4].iter().map(|s| s.reference()).collect::<Vec<_>>(),
            [0x9c, 0x9e, 0x9d, 0x9a]
        );
        assert_eq!(order.len(), 24);
        assert!(!c.slots.listed(order[0]), "defaults are not listed slots");
        // No secret in Debug: the sources only.
        let debug = format!("{c:?}");
        assert!(
            debug.contains("env:PIN") && debug.contains("pin-protected"),
            "{debug}"
        );
    }
}
