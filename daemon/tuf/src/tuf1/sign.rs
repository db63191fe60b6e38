//! Signing TUF 1.0 metadata on tokens: SHA-256 of the canonical form,
//! raw `r ‖ s` from the token, checked, converted to DER hex.

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};

use crate::sign::DigestSigner;
use tufd_tuf1::key::raw_to_der;
use tufd_tuf1::{Key, Metadata, Role, Signature, Tuf1Error, Unrecognized};

/// Signs `message` with `signer`, which must hold `key`'s private half.
pub fn sign_message(
    role: &str,
    message: &[u8],
    key: &Key,
    signer: &dyn DigestSigner,
) -> Result<Signature, Tuf1Error> {
    let keyid = key.key_id();
    let spki = signer.spki_der();
    if key.p256_spki_der().as_deref() != Some(spki.as_slice()) {
        return Err(Tuf1Error::SignerKeyMismatch { keyid });
    }
    let digest: [u8; 32] = Sha256::digest(message).into();
    let raw = signer
        .sign_sha256(&digest)
        .map_err(|source| Tuf1Error::Sign {
            role: role.to_owned(),
            keyid: keyid.clone(),
            source: Box::new(source),
        })?;
    let ok = signer.checks_own_signatures()
        || p256::ecdsa::VerifyingKey::from_public_key_der(&spki)
            .ok()
            .zip(p256::ecdsa::Signature::from_slice(&raw).ok())
            .is_some_and(|(vk, sig)| vk.verify_prehash(&digest, &sig).is_ok());
    if !ok {
        return Err(Tuf1Error::SelfCheckFailed {
            role: role.to_owned(),
            keyid,
        });
    }
    Ok(Signature {
        keyid,
        sig: hex::encode(raw_to_der(&raw)?),
        unrecognized: Unrecognized::new(),
    })
}

/// Adds (or replaces) `key`'s signature over `md`'s current content.
pub fn sign_metadata<T: Role>(
    md: &mut Metadata<T>,
    key: &Key,
    signer: &dyn DigestSigner,
) -> Result<(), Tuf1Error> {
    let message = md.canonical_signed()?;
    let sig = sign_message(T::TYPE, &message, key, signer)?;
    md.signatures.retain(|s| s.keyid != sig.keyid);
    md.signatures.push(sig);
    Ok(())
}
