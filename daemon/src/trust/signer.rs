//! Token keys as TUF signers.

use std::sync::Arc;
use tufd_keys::{KeyRecord, KeyStore};
use tufd_tuf::{DigestSigner, SignError};

/// A key on a token, usable wherever the TUF layer needs a [`DigestSigner`].
/// Signing blocks: call it on a blocking thread.
#[derive(Clone)]
pub struct TokenSigner {
    store: Arc<dyn KeyStore>,
    key: KeyRecord,
}

impl TokenSigner {
    pub fn new(store: Arc<dyn KeyStore>, key: KeyRecord) -> Self {
        Self { store, key }
    }

    /// The key's record (ID, name, token).
    pub fn record(&self) -> &KeyRecord {
        &self.key
    }
}

impl DigestSigner for TokenSigner {
    fn spki_der(&self) -> Vec<u8> {
        self.key.spki_der.clone()
    }

    fn sign_sha256(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignError> {
        self.store
            .sign_digest(&self.key.id, digest)
            .map_err(SignError::new)
    }

    /// `KeyStore::sign_digest` verifies every signature with p256 against
    /// this key before returning it.
    fn checks_own_signatures(&self) -> bool {
        true
    }

    fn certificate_subject(&self) -> Option<Vec<u8>> {
        self.store.certificate_subject(&self.key.id)
    }
}
