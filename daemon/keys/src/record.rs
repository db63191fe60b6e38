//! What the key layer reports about keys and tokens.

use crate::{KeyLabel, TriesLeft};

/// How a key came to be on its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Generated on the device (PKCS#11 `CKA_LOCAL`).
    Generated,
    /// Imported from outside.
    Imported,
}

/// One key on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Identifier from the [`crate::IdScheme`] (tufd: the TUF key ID).
    pub id: String,
    /// Name and repository.
    pub label: KeyLabel,
    /// Name of the store holding it.
    pub token: String,
    /// DER SubjectPublicKeyInfo of the public key.
    pub spki_der: Vec<u8>,
    /// Where the key came from.
    pub origin: KeyOrigin,
    /// The device's `CKA_SENSITIVE` for the private key.
    pub sensitive: bool,
    /// The device's `CKA_EXTRACTABLE` for the private key.
    pub extractable: bool,
}

/// What the device says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenDescription {
    pub label: String,
    pub serial: String,
    pub manufacturer: String,
    pub model: String,
}

impl TokenStatus {
    /// The status a store reports after trying to open the device and count
    /// its keys: the PIN states are told apart from other failures.
    pub fn from_probe(probe: Result<(TokenDescription, usize), crate::KeyError>) -> Self {
        use crate::KeyError;
        match probe {
            Ok((description, key_count)) => TokenStatus::Ready {
                description,
                key_count,
            },
            Err(e @ KeyError::PinRejected { tries, .. }) => TokenStatus::PinRejected {
                reason: e.to_string(),
                tries,
            },
            Err(e @ KeyError::PinLocked { .. }) => TokenStatus::PinLocked {
                reason: e.to_string(),
            },
            Err(e @ KeyError::Locked { .. }) => TokenStatus::Locked {
                reason: e.to_string(),
            },
            Err(e) => TokenStatus::Unavailable {
                reason: e.to_string(),
            },
        }
    }
}

/// State of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenStatus {
    /// Open and logged in.
    Ready {
        description: TokenDescription,
        key_count: usize,
    },
    /// Open, and still reading its objects to find tufd's keys (a token
    /// with many objects, or a slow one); the reason is a full sentence.
    Scanning {
        description: TokenDescription,
        reason: String,
    },
    /// Cannot be opened now; the reason is a full sentence.
    Unavailable { reason: String },
    /// The configured PIN was rejected and will not be tried again.
    PinRejected { reason: String, tries: TriesLeft },
    /// The user PIN is locked.
    PinLocked { reason: String },
    /// Waiting for `tufctl token unlock` (no PIN yet, or it expired).
    Locked { reason: String },
}

/// What a device says about where a key was made (see [`crate::KeyStore::attest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attestation {
    /// The device attested the key and tufd verified the attestation chain
    /// (a YubiKey: slot attestation signed by the device's f9 key).
    Verified(crate::yubikey::attest::Attestation),
    /// The device cannot attest this key; `reason` is a full sentence.
    Unavailable { reason: String },
    /// The device answered with an attestation that does not verify.
    Invalid { reason: String },
    /// This token type has no attestation. `generated_on_token` is what the
    /// token itself claims (PKCS#11 `CKA_LOCAL`), when it says.
    NotSupported {
        reason: String,
        generated_on_token: Option<bool>,
    },
}
