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
/// The RSA signature scheme TUF 1.0 lists (PSS, SHA-256).
pub const RSA_PSS_SCHEME: &str = "rsassa-pss-sha256";

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
        if self.keytype == "rsa" && self.scheme == RSA_PSS_SCHEME {
            return self.verify_rsa_pss(message, &sig);
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

impl Key {
    /// RSASSA-PSS with SHA-256 and MGF1-SHA-256, any salt length (as
    /// securesystemslib verifies); the key is a PEM SubjectPublicKeyInfo of
    /// at most 4096 bits (the `rsa` crate's limit bounds the work).
    fn verify_rsa_pss(&self, message: &[u8], sig: &[u8]) -> bool {
        use rsa::pkcs8::DecodePublicKey as _;
        use rsa::signature::Verifier as _;
        let Some(pem) = self.keyval.get("public").and_then(Value::as_str) else {
            return false;
        };
        let Ok(public) = rsa::RsaPublicKey::from_public_key_pem(pem) else {
            return false;
        };
        let Ok(sig) = rsa::pss::Signature::try_from(sig) else {
            return false;
        };
        rsa::pss::VerifyingKey::<rsa::sha2::Sha256>::new_with_auto_salt_len(public)
            .verify(message, &sig)
            .is_ok()
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

    /// An RSA-2048 key and RSASSA-PSS-SHA256 signatures of `RSA_MESSAGE`
    /// made by python's `cryptography` (salt of the digest's length, and
    /// of the maximum length).
    const RSA_PEM: &str = concat!(
        "-----BEGIN PUBLIC KEY-----\n",
        "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA6j25AT1VuiMUOdP40Cua\n",
        "CczdMzS1DihYVFis54STQvmg8D7a9KFO+FzsgGWs12w9MwR7kHfzW5aHhZ0NLG7E\n",
        "yd1koH/NXP997HSux6/+JW4orwC1t+oF9LJgtJ9aoBWCWi4JJ6WgziGviw0se4ug\n",
        "A1OIyl1YZS99GcPn+L7w1G0i9yd6Y8JoPbKtx+nlQToNNRxqqhT1irZzn6Iyc/WD\n",
        "w1fjzZ8LJMik9VUUOJYZ5cP2ja/EEum8hLZDRROIcmnQb1cVwTIC2ewQnNAGqzHP\n",
        "TEOp9hwgcIB9Uo6a5b8qfXR2cjjVJWCHEkU4XvCowQKxj+GNMXPWsl+zpzDhNXSJ\n",
        "rwIDAQAB\n",
        "-----END PUBLIC KEY-----\n",
    );
    const RSA_MESSAGE: &[u8] = b"tufd rsa-pss fixture";
    const RSA_SIG_DIGEST_SALT: &str = concat!(
        "7aa9ec5d01a2f11cdbec44727c787d81fa83455e35a0c791e3a7fafabe9e205049c2d51b6a2e2ee9",
        "4f5380abfbe7bf318048702e441b2fc5112a8710898d66bbc4bd4033e7d187fa427897b8c8e718df",
        "b2f4d1563e1bf4ec987313e6723070d75a9de5724f336ff3c1771f15fa4850b88f7ecb33af93cf10",
        "b5001e702f37d04b47fc60cc0ee2b250d8aaeee79e5553b262f69562dcf2496057ede8ec716d87f0",
        "81c2634b7ba21b1f0a264cc1b59e4e3896e7765893f05559b8ca896420989325b38ec7b5e1e6e517",
        "069eb0fb5680e35e27036ca3956cee31a69c9d7ad19cfc324d41a89e7a48fe2739e9a3e07e2c29f5",
        "af8b829f44f4304bb6fd9a43b8980dc6",
    );
    const RSA_SIG_MAX_SALT: &str = concat!(
        "7eaac26e08e5f0c216eb2e68637adfe289656a67d638c15bd104717764c628f6e0cd29220d4edd29",
        "b792d13811cc5925124464c0a9ebf53e04c2335ea48638786c85908dab336636912df9fd1b117e0a",
        "a70d8b6a83a3459c159a5091864fc8ff9671cb21aafc7082f0fcf09d4b97287c3e9192dac5eeb3b3",
        "8b7b4aa36d185304b8aa204e1b4f833f0d2e9139245b98b14c6f385adf01b28d6d957edf3f1b94df",
        "f3005bbd5ca8312e631d870c48995f3f8c14991f0dab6c437aef957a010ba8904f153138aef70ce1",
        "802266375992315c5325056cac70a9e130ba9eddeb8204ac388c047b48b48c8df0464dbacf483bad",
        "be103ca68b3f59b4f1668edbd7d460bb",
    );

    #[test]
    fn rsa_pss_signatures_verify_with_any_salt_length() {
        let key = Key {
            keytype: "rsa".into(),
            scheme: RSA_PSS_SCHEME.into(),
            keyval: BTreeMap::from([("public".to_owned(), Value::String(RSA_PEM.into()))]),
            unrecognized: BTreeMap::new(),
        };
        assert!(key.verify(RSA_MESSAGE, RSA_SIG_DIGEST_SALT));
        assert!(key.verify(RSA_MESSAGE, RSA_SIG_MAX_SALT));
        assert!(!key.verify(b"another message", RSA_SIG_DIGEST_SALT));
        let mut flipped = RSA_SIG_DIGEST_SALT.to_owned();
        flipped.replace_range(
            0..2,
            if flipped.starts_with("00") {
                "01"
            } else {
                "00"
            },
        );
        assert!(!key.verify(RSA_MESSAGE, &flipped));
        let pkcs1v15 = Key {
            scheme: "rsa-pkcs1v15-sha256".into(),
            ..key
        };
        assert!(
            !pkcs1v15.verify(RSA_MESSAGE, RSA_SIG_DIGEST_SALT),
            "only the PSS scheme"
        );
    }
}
