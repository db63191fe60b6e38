//! Hardware key stores for tufd.
//!
//! A [`KeyStore`] holds EC P-256 keys on a device and signs SHA-256 digests
//! with them. Private keys are created on the device (or imported once,
//! then zeroized in memory) and never leave it. This crate knows nothing of
//! TUF: a key is a label, an identifier and a public key; the identifier is
//! computed by an [`IdScheme`] the caller supplies.
//!
//! All calls block (PKCS#11 and PC/SC are blocking APIs): async callers run
//! them on a blocking thread.

mod error;
pub mod gate;
pub mod import;
mod label;
pub mod pin;
pub mod pkcs11;
mod record;
mod verify;
pub mod yubikey;

pub use error::{DeviceError, KeyError, TriesLeft};
pub use label::KeyLabel;
pub use record::{Attestation, KeyOrigin, KeyRecord, TokenDescription, TokenStatus};

use p256::SecretKey;
use secrecy::SecretString;

/// Derives a key's identifier from its DER SubjectPublicKeyInfo.
///
/// tufd passes the TUF key ID function; the store writes the identifier on
/// the token objects (`CKA_ID`) so the index can be rebuilt from the device.
pub type IdScheme = fn(&[u8]) -> String;

/// A device that holds keys and signs with them.
///
/// Every method blocks. Implementations are internally synchronized: they
/// may be called from several threads at once.
pub trait KeyStore: Send + Sync {
    /// The name this store has in the daemon configuration.
    fn name(&self) -> &str;

    /// The device's current state, opening it first if needed.
    fn status(&self) -> TokenStatus;

    /// All tufd keys on the device, read from the device itself.
    fn list(&self) -> Result<Vec<KeyRecord>, KeyError>;

    /// What [`KeyStore::list`] would return, when the store can say so at
    /// once from what it already holds (no device call, no wait for a
    /// lock another thread holds); `None` otherwise. Unlike the other
    /// methods this never blocks, so async code may call it in place
    /// instead of moving to a blocking thread.
    fn list_held(&self) -> Option<Vec<KeyRecord>> {
        None
    }

    /// Generates a P-256 key pair on the device: sensitive, non-extractable.
    fn generate(&self, label: &KeyLabel) -> Result<KeyRecord, KeyError>;

    /// Creates `key` on the device as sensitive and non-extractable.
    fn import(&self, label: &KeyLabel, key: &SecretKey) -> Result<KeyRecord, KeyError>;

    /// Destroys the key (both halves) with identifier `id`.
    fn delete(&self, id: &str) -> Result<KeyRecord, KeyError>;

    /// Signs a SHA-256 digest with key `id`, returning raw `r || s`.
    ///
    /// The signature is verified against the key's public key before it is
    /// returned, so a faulty device cannot hand out a bad signature.
    fn sign_digest(&self, id: &str, digest: &[u8; 32]) -> Result<[u8; 64], KeyError>;

    /// Signs many SHA-256 digests, each `(key id, digest)`, and returns the
    /// raw `r || s` signatures in the same order.
    ///
    /// Every signature is verified before any is returned; one that does not
    /// verify fails the whole call. Stores may overlap the work (the PKCS#11
    /// store signs the next digest while another thread verifies the
    /// previous signature), which is why callers with several digests ready
    /// should prefer this to a loop over [`KeyStore::sign_digest`].
    fn sign_digests(&self, jobs: &[(&str, [u8; 32])]) -> Result<Vec<[u8; 64]>, KeyError> {
        jobs.iter()
            .map(|(id, digest)| self.sign_digest(id, digest))
            .collect()
    }

    /// Whether signing with key `id` waits for a touch on the device (a
    /// YubiKey touch policy), so callers can tell the user before they sign.
    fn needs_touch(&self, _id: &str) -> bool {
        false
    }

    /// What a person calls the device, as (kind, serial), for prompts such
    /// as "Touch your YubiKey (serial 12345678)". The serial may be empty.
    fn device(&self) -> (String, String) {
        (self.name().to_owned(), String::new())
    }

    /// The certificate subject (DER `Name`) this device records a key's
    /// purpose in, when it keeps a certificate per key (a YubiKey slot).
    /// A certificate made for the key with this subject, such as a Notary
    /// root certificate, can then be kept on the device by
    /// [`KeyStore::store_certificate`] without losing the key's label.
    fn certificate_subject(&self, _id: &str) -> Option<Vec<u8>> {
        None
    }

    /// Keeps `cert_der`, a certificate for key `id`, on the device. Devices
    /// without a certificate per key ignore it.
    fn store_certificate(&self, _id: &str, _cert_der: &[u8]) -> Result<(), KeyError> {
        Ok(())
    }

    /// Whether the device attests that key `id` was generated on it, and
    /// what the attestation says. Stores whose devices cannot attest answer
    /// [`Attestation::NotSupported`]; an error means the device could not
    /// be asked (or the key does not exist).
    fn attest(&self, _id: &str) -> Result<Attestation, KeyError> {
        Ok(Attestation::NotSupported {
            reason: "this token type cannot attest keys".into(),
            generated_on_token: None,
        })
    }

    /// Verifies `pin` on the device now and, when it is accepted, uses it
    /// (instead of the configured PIN source) for the configured cache time
    /// (`pin = "prompt"` tokens need this before any operation).
    ///
    /// The token's [`gate::PinGate`] decides whether the PIN reaches the
    /// device: never on a token logged in with another PIN
    /// ([`KeyError::AlreadyUnlocked`]), never a PIN rejected before, never
    /// a new PIN while the device reports few tries left unless the
    /// configuration allows it, and at most the configured number of
    /// rejected PINs per window ([`KeyError::UnlockBudget`]). A rejected PIN
    /// reports the tries left ([`KeyError::UnlockRejected`]).
    fn unlock(&self, _pin: SecretString) -> Result<(), KeyError> {
        Err(KeyError::UnlockUnsupported {
            token: self.name().to_owned(),
        })
    }
}
