//! Signing role metadata through a token-backed signer.
//!
//! The token signs a SHA-256 digest with a P-256 key and returns raw r‖s.
//! Every signature is verified with `p256` right after it is made, so a
//! misbehaving token can never produce metadata that fails to verify.

use std::fmt;

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::key::{Key, KeyType};
use crate::metadata::Metadata;
use crate::signed::{Signature, Signed, canonical_bytes_of};

/// Error returned by a [`DigestSigner`]: wraps whatever the backend reports
/// (PKCS#11 return value, PIV status word, lost device, locked PIN, …).
/// The original error is available through `source()` / [`SignError::into_inner`].
pub struct SignError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl SignError {
    /// Wraps a backend error (or a message: `SignError::new("PIN locked")`).
    pub fn new(err: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        SignError(err.into())
    }

    /// The backend error, e.g. to downcast it.
    pub fn into_inner(self) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self.0
    }
}

impl fmt::Debug for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for SignError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// A P-256 key that signs SHA-256 digests, typically on a hardware token.
///
/// Calls block (the token does the work) and may fail; callers on an async
/// runtime run them on a blocking thread. Implementations need not verify
/// their output: [`sign_role`] and the certificate builder do.
pub trait DigestSigner {
    /// DER SubjectPublicKeyInfo of the P-256 public key.
    fn spki_der(&self) -> Vec<u8>;

    /// Signs a SHA-256 digest; returns raw `r ‖ s`, each 32 bytes big-endian.
    fn sign_sha256(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignError>;

    /// Whether every signature this signer returns was already checked with
    /// `p256` against [`DigestSigner::spki_der`] (tufd's token keys do that),
    /// so [`sign_role`] need not check it a second time. It still checks that
    /// the key is the one the metadata lists.
    fn checks_own_signatures(&self) -> bool {
        false
    }

    /// A certificate subject (DER `Name`) the key's device wants in
    /// certificates for the key; its common name must be the GUN. `None`:
    /// the plain `CN=<gun>` notary makes.
    fn certificate_subject(&self) -> Option<Vec<u8>> {
        None
    }
}

/// Smart pointers and references to a signer are signers.
macro_rules! forward_digest_signer {
    ($($ptr:ty),*) => {$(
        impl<S: DigestSigner + ?Sized> DigestSigner for $ptr {
            fn spki_der(&self) -> Vec<u8> {
                (**self).spki_der()
            }
            fn sign_sha256(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignError> {
                (**self).sign_sha256(digest)
            }
            fn checks_own_signatures(&self) -> bool {
                (**self).checks_own_signatures()
            }
            fn certificate_subject(&self) -> Option<Vec<u8>> {
                (**self).certificate_subject()
            }
        }
    )*};
}

forward_digest_signer!(&S, Box<S>, std::sync::Arc<S>);

/// A key as listed in metadata together with the signer holding its
/// private half. The metadata key decides the key ID (cert id for root's
/// `ecdsa-x509` keys); the signer must hold the same public key.
#[derive(Clone, Copy)]
pub struct RoleSigner<'a> {
    /// The public key object as it appears in (or will go into) metadata.
    pub key: &'a Key,
    /// The signer holding the private key.
    pub signer: &'a dyn DigestSigner,
}

impl<'a> RoleSigner<'a> {
    /// Pairs a metadata key with its signer.
    pub fn new(key: &'a Key, signer: &'a dyn DigestSigner) -> Self {
        RoleSigner { key, signer }
    }
}

/// Signs a role's contents with every given key and builds its file.
///
/// `role` names the role in error messages. The signature covers the
/// canonical bytes of `signed`; each is checked with `p256` before use.
/// For a root rotation pass both the old and the new root key.
pub fn sign_role<T: Metadata>(
    role: &str,
    signed: T,
    signers: &[RoleSigner<'_>],
) -> Result<Signed<T>> {
    if signers.is_empty() {
        return Err(Error::NoSigners(role.to_owned()));
    }
    let canonical = canonical_bytes_of(&signed)?;
    let signatures = signers
        .iter()
        .map(|s| sign_bytes(role, &canonical, s))
        .collect::<Result<Vec<_>>>()?;
    Ok(Signed::assemble(signed, canonical, signatures))
}

/// Signs arbitrary canonical bytes with one key: SHA-256, token signature,
/// immediate verification. Returns the `{"keyid","method":"ecdsa","sig"}` object.
pub fn sign_bytes(role: &str, message: &[u8], signer: &RoleSigner<'_>) -> Result<Signature> {
    let keyid = signer.key.id();
    if !matches!(signer.key.keytype(), KeyType::Ecdsa | KeyType::EcdsaX509) {
        return Err(Error::key(
            keyid,
            format!(
                "tufd signs with P-256 ECDSA keys only, not {}",
                signer.key.keytype()
            ),
        ));
    }
    let spki = signer.signer.spki_der();
    if signer.key.spki_der()? != spki {
        return Err(Error::SignerKeyMismatch { keyid });
    }
    let verifying_key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).map_err(|e| {
        Error::key(
            keyid.clone(),
            format!("signer's key is not a P-256 key: {e}"),
        )
    })?;
    let digest: [u8; 32] = Sha256::digest(message).into();
    let raw = signer
        .signer
        .sign_sha256(&digest)
        .map_err(|source| Error::Sign {
            role: role.to_owned(),
            keyid: keyid.clone(),
            source,
        })?;
    let ok = signer.signer.checks_own_signatures()
        || p256::ecdsa::Signature::from_slice(&raw)
            .ok()
            .is_some_and(|sig| verifying_key.verify_prehash(&digest, &sig).is_ok());
    if !ok {
        return Err(Error::SelfCheckFailed {
            role: role.to_owned(),
            keyid,
        });
    }
    let signature = Signature {
        keyid,
        method: "ecdsa".to_owned(),
        sig: raw.to_vec(),
    };
    // Just checked: a read-back of the published file need not check it
    // again (see [`crate::sigcache`]).
    crate::sigcache::remember(
        crate::sigcache::entry(signer.key, &signature, &digest),
        spki,
    );
    Ok(signature)
}
