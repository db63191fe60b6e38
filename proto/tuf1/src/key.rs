//! TUF 1.0 key objects, key IDs and signature checks.

use std::collections::BTreeMap;

use p256::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::Tuf1Error;
use super::json;

/// The key type and scheme tufd's token keys have.
pub const ECDSA: &str = "ecdsa";
/// The signature scheme of P-256 ECDSA keys.
pub const ECDSA_SCHEME: &str = "ecdsa-sha2-nistp256";

/// A public key as metadata lists it: `{"keytype","scheme","keyval"}` plus
/// any other fields, kept as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    /// `ecdsa`, `ed25519`, `rsa`, or the legacy `ecdsa-sha2-nistp256`.
    pub keytype: String,
    /// `ecdsa-sha2-nistp256`, `ed25519`, `rsassa-pss-sha256`, …
    pub scheme: String,
    /// The public value, `{"public": …}`.
    pub keyval: BTreeMap<String, Value>,
    /// Fields this version does not know, preserved.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl Key {
    /// The metadata key of a P-256 public key (DER SubjectPublicKeyInfo),
    /// with the PEM securesystemslib writes (64-column lines, LF, final LF).
    pub fn ecdsa_p256(spki_der: &[u8]) -> Result<Key, Tuf1Error> {
        let vk = p256::ecdsa::VerifyingKey::from_public_key_der(spki_der)
            .map_err(|e| Tuf1Error::InvalidKey(format!("not a P-256 public key: {e}")))?;
        let pem = vk
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| Tuf1Error::InvalidKey(format!("cannot write PEM: {e}")))?;
        Ok(Key {
            keytype: ECDSA.into(),
            scheme: ECDSA_SCHEME.into(),
            keyval: BTreeMap::from([("public".to_owned(), Value::String(pem))]),
            unrecognized: BTreeMap::new(),
        })
    }

    /// The key ID securesystemslib computes: hex SHA-256 of the canonical
    /// JSON of `{keytype, scheme, keyval}` (other fields left out).
    pub fn key_id(&self) -> String {
        let object = serde_json::json!({
            "keytype": self.keytype,
            "scheme": self.scheme,
            "keyval": self.keyval,
        });
        let bytes = json::canonical(&object).expect("key objects hold strings only");
        hex::encode(Sha256::digest(bytes))
    }

    /// The DER SubjectPublicKeyInfo of a P-256 ECDSA key; `None` for other
    /// kinds of key.
    pub fn p256_spki_der(&self) -> Option<Vec<u8>> {
        self.p256_verifying_key()
            .and_then(|vk| vk.to_public_key_der().ok())
            .map(|d| d.as_bytes().to_vec())
    }

    fn p256_verifying_key(&self) -> Option<p256::ecdsa::VerifyingKey> {
        let ecdsa =
            (self.keytype == ECDSA || self.keytype == ECDSA_SCHEME) && self.scheme == ECDSA_SCHEME;
        if !ecdsa {
            return None;
        }
        let pem = self.keyval.get("public")?.as_str()?;
        p256::ecdsa::VerifyingKey::from_public_key_pem(pem).ok()
    }

    /// A value that is the same for two key objects holding the same public
    /// key, so a key listed under two IDs counts once toward a threshold.
    pub fn identity(&self) -> String {
        match self.p256_spki_der() {
            Some(der) => format!("p256:{}", hex::encode(der)),
            None => {
                let public = self.keyval.get("public").map(Value::to_string);
                format!("{}:{}", self.scheme, public.unwrap_or_default())
            }
        }
    }

    /// Whether `sig` (hex, as in metadata) is this key's signature over
    /// `message`. Keys of a type tufd cannot check never verify.
    pub fn verify(&self, message: &[u8], sig_hex: &str) -> bool {
        let Ok(sig) = hex::decode(sig_hex) else {
            return false;
        };
        if let Some(vk) = self.p256_verifying_key() {
            use p256::ecdsa::signature::Verifier;
            return p256::ecdsa::DerSignature::from_bytes(&sig)
                .ok()
                .and_then(|der| p256::ecdsa::Signature::from_der(der.as_bytes()).ok())
                .is_some_and(|s| vk.verify(message, &s).is_ok());
        }
        if self.keytype == "ed25519" && self.scheme == "ed25519" {
            let public = self
                .keyval
                .get("public")
                .and_then(Value::as_str)
                .and_then(|h| hex::decode(h).ok())
                .and_then(|b| <[u8; 32]>::try_from(b).ok());
            let (Some(public), Ok(sig)) = (public, <[u8; 64]>::try_from(sig)) else {
                return false;
            };
            return ed25519_dalek::VerifyingKey::from_bytes(&public).is_ok_and(|vk| {
                vk.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig))
                    .is_ok()
            });
        }
        false
    }
}

/// Converts a token's raw `r ‖ s` P-256 signature to the ASN.1 DER form TUF
/// 1.0 metadata carries (hex-encoded by the caller).
pub fn raw_to_der(raw: &[u8; 64]) -> Result<Vec<u8>, Tuf1Error> {
    let sig = p256::ecdsa::Signature::from_slice(raw)
        .map_err(|e| Tuf1Error::InvalidKey(format!("token returned an invalid signature: {e}")))?;
    Ok(sig.to_der().as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::hazmat::PrehashSigner;

    #[test]
    fn der_signature_from_raw_verifies() {
        let sk = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let der = sk.verifying_key().to_public_key_der().unwrap();
        let key = Key::ecdsa_p256(der.as_bytes()).unwrap();
        let msg = b"hello";
        let digest: [u8; 32] = Sha256::digest(msg).into();
        let raw: p256::ecdsa::Signature = sk.sign_prehash(&digest).unwrap();
        let raw: [u8; 64] = raw.to_bytes().into();
        let sig = hex::encode(raw_to_der(&raw).unwrap());
        assert!(sig.starts_with("30"));
        assert!(key.verify(msg, &sig));
        assert!(!key.verify(b"other", &sig));
        assert!(!key.verify(msg, &hex::encode(raw)), "raw r||s is not DER");
        let pem = key.keyval["public"].as_str().unwrap();
        assert!(
            pem.starts_with("-----BEGIN PUBLIC KEY-----\n")
                && pem.ends_with("-----END PUBLIC KEY-----\n")
        );
        assert_eq!(key.p256_spki_der().unwrap(), der.as_bytes());
    }

    #[test]
    fn key_id_ignores_unrecognized_fields() {
        let sk = SigningKey::from_slice(&[9u8; 32]).unwrap();
        let mut key =
            Key::ecdsa_p256(sk.verifying_key().to_public_key_der().unwrap().as_bytes()).unwrap();
        let id = key.key_id();
        key.unrecognized.insert("x-extra".into(), Value::Bool(true));
        assert_eq!(key.key_id(), id);
        assert_eq!(id.len(), 64);
    }
}
