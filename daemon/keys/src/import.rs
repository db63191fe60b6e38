//! Reading private key files for `key load`.
//!
//! Accepts PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) and encrypted
//! PKCS#8 (`ENCRYPTED PRIVATE KEY`), with or without the RFC 1421 headers
//! (`role: alice`, `gun: …`) docker and notary write. Decrypted bytes are
//! zeroized as soon as the key is parsed.

use p256::SecretKey;
use p256::pkcs8::DecodePrivateKey;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// Why a key file cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the key file is not PEM: {0}")]
    NotPem(String),
    #[error(
        "the key file holds a {0:?} block; expected PRIVATE KEY, EC PRIVATE KEY or ENCRYPTED PRIVATE KEY"
    )]
    UnsupportedBlock(String),
    #[error("the key file is encrypted: give its passphrase")]
    PassphraseRequired,
    #[error("the passphrase does not decrypt the key file (wrong passphrase?)")]
    WrongPassphrase,
    #[error("the key file is not encrypted, but a passphrase was given")]
    UnexpectedPassphrase,
    #[error(
        "the key is not an EC P-256 key ({0}); tufd keys are ECDSA P-256, as docker and notary use"
    )]
    UnsupportedKey(String),
    #[error("the key file is malformed: {0}")]
    Malformed(String),
}

/// A parsed key file: the secret key and the headers it carried.
pub struct KeyFile {
    /// The private key (zeroized on drop).
    pub key: SecretKey,
    /// The `role:` header, if any (docker/notary key files carry one).
    pub role: Option<String>,
    /// The `gun:` header, if any.
    pub gun: Option<String>,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile")
            .field("key", &"<redacted>")
            .field("role", &self.role)
            .field("gun", &self.gun)
            .finish()
    }
}

/// Parses a private key file, decrypting it with `passphrase` if encrypted.
pub fn parse_key_file(
    text: &str,
    passphrase: Option<&SecretString>,
) -> Result<KeyFile, ImportError> {
    let block = pem::parse(text.trim_start()).map_err(|e| ImportError::NotPem(e.to_string()))?;
    let header = |name: &str| block.headers().get(name).map(str::to_owned);
    let role = header("role");
    let gun = header("gun");
    let der = Zeroizing::new(block.contents().to_vec());
    let key = match block.tag() {
        "ENCRYPTED PRIVATE KEY" => {
            let passphrase = passphrase
                .filter(|p| !p.expose_secret().is_empty())
                .ok_or(ImportError::PassphraseRequired)?;
            let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
                .map_err(|e| ImportError::Malformed(e.to_string()))?;
            let doc = info
                .decrypt(passphrase.expose_secret().as_bytes())
                .map_err(|_| ImportError::WrongPassphrase)?;
            pkcs8_key(doc.as_bytes()).or_else(|e| {
                notary_pkcs8_as_v1(doc.as_bytes())
                    .and_then(|v1| SecretKey::from_pkcs8_der(&v1).ok())
                    .ok_or(e)
            })?
        }
        tag @ ("PRIVATE KEY" | "EC PRIVATE KEY") => {
            if passphrase.is_some_and(|p| !p.expose_secret().is_empty()) {
                return Err(ImportError::UnexpectedPassphrase);
            }
            if tag == "PRIVATE KEY" {
                pkcs8_key(&der)?
            } else {
                SecretKey::from_sec1_der(&der).map_err(|e| sec1_error(&der, e))?
            }
        }
        other => return Err(ImportError::UnsupportedBlock(other.to_owned())),
    };
    Ok(KeyFile { key, role, gun })
}

/// notary (and so docker) writes PKCS#8 with version 1 (the v2
/// "OneAsymmetricKey" version) but without the `publicKey` field v2
/// requires, which strict parsers reject. Returns a copy marked version 0
/// (v1, where the field is absent), or `None` if `der` is not that shape.
fn notary_pkcs8_as_v1(der: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let header = match der {
        [0x30, n, ..] if *n < 0x80 => 2,
        [0x30, 0x81, ..] => 3,
        [0x30, 0x82, ..] => 4,
        _ => return None,
    };
    if der.get(header..header + 3)? != [0x02, 0x01, 0x01] {
        return None;
    }
    let mut fixed = Zeroizing::new(der.to_vec());
    fixed[header + 2] = 0x00;
    Some(fixed)
}

fn pkcs8_key(der: &[u8]) -> Result<SecretKey, ImportError> {
    SecretKey::from_pkcs8_der(der).map_err(|e| match pkcs8::PrivateKeyInfoRef::try_from(der) {
        Ok(info) => ImportError::UnsupportedKey(format!(
            "algorithm {}{}",
            info.algorithm.oid,
            info.algorithm
                .parameters_oid()
                .map(|p| format!(", parameters {p}"))
                .unwrap_or_default()
        )),
        Err(_) => ImportError::Malformed(e.to_string()),
    })
}

fn sec1_error(der: &[u8], e: impl std::fmt::Display) -> ImportError {
    match sec1::EcPrivateKey::try_from(der) {
        Ok(k) => ImportError::UnsupportedKey(format!(
            "curve {}",
            k.parameters
                .and_then(|p| p.named_curve())
                .map(|c| c.to_string())
                .unwrap_or_else(|| "unnamed".into())
        )),
        Err(_) => ImportError::Malformed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::EncodePrivateKey;

    fn key() -> SecretKey {
        SecretKey::from_slice(&[7u8; 32]).unwrap()
    }

    #[test]
    fn reads_pkcs8_and_sec1() {
        let k = key();
        let pkcs8 = k.to_pkcs8_pem(Default::default()).unwrap();
        assert_eq!(parse_key_file(&pkcs8, None).unwrap().key, k);
        let sec1 = k.to_sec1_pem(Default::default()).unwrap();
        assert_eq!(parse_key_file(&sec1, None).unwrap().key, k);
    }

    #[test]
    fn rejects_garbage_and_other_blocks() {
        assert!(matches!(
            parse_key_file("hello", None),
            Err(ImportError::NotPem(_))
        ));
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            parse_key_file(cert, None),
            Err(ImportError::UnsupportedBlock(_))
        ));
        let bad = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(matches!(
            parse_key_file(bad, None),
            Err(ImportError::Malformed(_))
        ));
    }
}
