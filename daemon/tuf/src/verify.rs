//! Signature and threshold checks (notary `tuf/signed/verify.go`,
//! `verifiers.go`).
//!
//! Supported: `ecdsa` over P-256 with raw r‖s (DER is rejected, as notary
//! rejects it) and `eddsa` (ed25519, which notary-server may use for its
//! keys), and RSA (`rsapss`, `rsapkcs1v15`) for delegations made from RSA
//! certificates.
//!
//! ECDSA signatures of fetched metadata are checked with `ring` (already
//! linked for TLS): a read verifies a dozen signatures, and ring's P-256 is
//! about six times faster than `p256`'s here. Signatures tufd makes are still
//! checked with `p256` right after they are made ([`crate::sign`]).

use std::collections::{BTreeMap, BTreeSet};

use p256::ecdsa::signature::Verifier;
use p256::pkcs8::DecodePublicKey;

use crate::error::{Error, Result};
use crate::key::{Key, KeyType};
use crate::metadata::Metadata;
use crate::sigcache;
use crate::signed::{Signature, Signed};
use sha2::Digest;

/// Checks one signature over `message` with `key`.
pub fn verify_signature(key: &Key, sig: &Signature, message: &[u8]) -> Result<()> {
    let bad = |reason: String| Error::BadSignature {
        keyid: sig.keyid.clone(),
        reason,
    };
    match (sig.method.to_ascii_lowercase().as_str(), key.keytype()) {
        ("ecdsa", KeyType::Ecdsa | KeyType::EcdsaX509) => {
            let spki = key.spki_der()?;
            let point =
                p256_point(&spki).ok_or_else(|| bad("key is not a P-256 ECDSA key".to_owned()))?;
            if sig.sig.len() != 64 {
                return Err(bad(format!(
                    "ECDSA signature is {} bytes; notary requires raw r||s of 64 bytes (DER is not accepted)",
                    sig.sig.len()
                )));
            }
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point,
            )
            .verify(message, &sig.sig)
            .map_err(|_| bad("ECDSA signature does not match the message".to_owned()))
        }
        ("eddsa", KeyType::Ed25519) => {
            let public: [u8; 32] = key
                .public()
                .try_into()
                .map_err(|_| bad("ed25519 key is not 32 bytes".to_owned()))?;
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&public)
                .map_err(|e| bad(format!("invalid ed25519 key ({e})")))?;
            let raw: [u8; 64] = sig.sig.as_slice().try_into().map_err(|_| {
                bad(format!(
                    "ed25519 signature is {} bytes, expected 64",
                    sig.sig.len()
                ))
            })?;
            let s = ed25519_dalek::Signature::from_bytes(&raw);
            vk.verify(message, &s)
                .map_err(|_| bad("ed25519 signature does not match the message".to_owned()))
        }
        (method @ ("rsapss" | "rsapkcs1v15"), KeyType::Rsa | KeyType::RsaX509) => {
            verify_rsa(method == "rsapss", key, &sig.sig, message).map_err(bad)
        }
        (method, keytype) => Err(bad(format!(
            "method {method:?} cannot be used with a {keytype} key"
        ))),
    }
}

/// The uncompressed point of a P-256 SubjectPublicKeyInfo (ring validates
/// the point itself when it verifies).
fn p256_point(spki: &[u8]) -> Option<&[u8]> {
    use p256::pkcs8::spki::SubjectPublicKeyInfoRef;
    const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
    const PRIME256V1: &str = "1.2.840.10045.3.1.7";
    let info = SubjectPublicKeyInfoRef::try_from(spki).ok()?;
    let params = info.algorithm.parameters_oid().ok()?;
    (info.algorithm.oid.to_string() == EC_PUBLIC_KEY && params.to_string() == PRIME256V1)
        .then(|| info.subject_public_key.as_bytes())
        .flatten()
        .filter(|p| p.len() == 65 && p[0] == 0x04)
}

/// RSA as notary's `RSAPSSVerifier` / `RSAPKCS1v15Verifier`: SHA-256,
/// PSS with MGF1-SHA256 and a 32-byte salt, keys of at least 2048 bits.
fn verify_rsa(pss: bool, key: &Key, sig: &[u8], message: &[u8]) -> std::result::Result<(), String> {
    use rsa::traits::PublicKeyParts;
    let spki = key.spki_der().map_err(|e| e.to_string())?;
    let public = rsa::RsaPublicKey::from_public_key_der(&spki)
        .map_err(|e| format!("key is not an RSA key ({e})"))?;
    if public.size() < 256 {
        return Err(format!(
            "RSA key is {} bits; notary requires at least 2048",
            public.size() * 8
        ));
    }
    if sig.len() < 256 {
        return Err(format!(
            "RSA signature is {} bytes, shorter than 2048 bits",
            sig.len()
        ));
    }
    let ok = if pss {
        let vk = rsa::pss::VerifyingKey::<sha2::Sha256>::new_with_salt_len(public, 32);
        rsa::pss::Signature::try_from(sig)
            .ok()
            .is_some_and(|s| vk.verify(message, &s).is_ok())
    } else {
        let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(public);
        rsa::pkcs1v15::Signature::try_from(sig)
            .ok()
            .is_some_and(|s| vk.verify(message, &s).is_ok())
    };
    if ok {
        Ok(())
    } else {
        Err("RSA signature does not match the message".to_owned())
    }
}

/// Counts valid signatures of `signed` by distinct keys of `keys` (key ID →
/// key) and checks the count against `threshold`. Signatures by other keys
/// are ignored, as notary ignores them. A public key listed under two key
/// IDs (say as `ecdsa` and inside an `ecdsa-x509` certificate) counts once:
/// one holder cannot meet a threshold of two alone. Returns the valid key IDs.
pub fn verify_threshold<T: Metadata>(
    role: &str,
    signed: &Signed<T>,
    keys: &BTreeMap<String, Key>,
    threshold: u32,
) -> Result<BTreeSet<String>> {
    if threshold < 1 {
        return Err(Error::BadThreshold {
            role: role.to_owned(),
            threshold,
            keys: keys.len(),
        });
    }
    let mut valid = BTreeSet::new();
    let mut holders = BTreeSet::new();
    let message_sha256: [u8; 32] = sha2::Sha256::digest(signed.canonical_bytes()).into();
    for sig in signed.signatures() {
        let Some(key) = keys.get(&sig.keyid) else {
            continue;
        };
        // notary fails outright when a key is listed under a foreign ID.
        let computed = key.id();
        if computed != sig.keyid {
            return Err(Error::KeyIdMismatch {
                listed: sig.keyid.clone(),
                computed,
            });
        }
        // A check that succeeded before is not repeated (see
        // [`crate::sigcache`]); everything else here runs every time.
        let entry = sigcache::entry(key, sig, &message_sha256);
        let holder = match sigcache::lookup(&entry) {
            Some(holder) => holder,
            None => {
                if verify_signature(key, sig, signed.canonical_bytes()).is_err() {
                    continue;
                }
                let holder = key.spki_der().unwrap_or_else(|_| key.public().to_vec());
                sigcache::remember(entry, holder.clone());
                holder
            }
        };
        if holders.insert(holder) {
            valid.insert(sig.keyid.clone());
        }
    }
    if valid.len() < threshold as usize {
        return Err(Error::ThresholdNotMet {
            role: role.to_owned(),
            valid: valid.len(),
            threshold,
            present: signed.signatures().len(),
        });
    }
    Ok(valid)
}

/// Checks that every key in a `keys` map is listed under its own ID.
pub fn check_key_ids(keys: &BTreeMap<String, Key>) -> Result<()> {
    for (listed, key) in keys {
        let computed = key.id();
        if &computed != listed {
            return Err(Error::KeyIdMismatch {
                listed: listed.clone(),
                computed,
            });
        }
    }
    Ok(())
}
