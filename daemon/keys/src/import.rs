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
    #[error(
        "the key file's {parameter} is {value}, above tufd's limit of {limit} (docker, notary and OpenSSL write {default}); re-encrypt it with default settings (`openssl pkcs8 -topk8 -v2 aes-256-cbc`) and load it again"
    )]
    KdfTooCostly {
        parameter: &'static str,
        value: u64,
        limit: u64,
        default: &'static str,
    },
    #[error("the key file holds {0} PEM blocks; give a file with exactly one private key")]
    SeveralBlocks(usize),
}

/// The most PBKDF2 iterations a key file may ask for. docker and notary
/// write 2,048 (PBKDF2-HMAC-SHA1), as does OpenSSL's `pkcs8 -topk8` and
/// `genpkey`; 100,000 leaves room for tools with higher defaults while one
/// derivation stays under ~0.1 s of a core.
pub const MAX_PBKDF2_ITERATIONS: u32 = 100_000;
/// The largest scrypt cost N (OpenSSL's default is 2^14 = 16384). With
/// r = 8 this is 32 MiB, the most OpenSSL itself lets scrypt use by
/// default (`maxmem`): a larger file was not written with its defaults.
pub const MAX_SCRYPT_N: u64 = 1 << 15;
/// The largest scrypt block size r (OpenSSL's default is 8).
pub const MAX_SCRYPT_R: u64 = 8;
/// The largest scrypt parallelization p (OpenSSL's default is 1).
pub const MAX_SCRYPT_P: u64 = 2;

/// Refuses key-derivation parameters that would cost more than the limits
/// above, before any derivation runs: a crafted file cannot make the
/// daemon allocate gigabytes or spin for minutes.
fn check_kdf_cost(scheme: &pkcs8::pkcs5::EncryptionScheme) -> Result<(), ImportError> {
    use pkcs8::pkcs5::pbes2::Kdf;
    let too_costly = |parameter, value: u64, limit: u64, default| {
        if value > limit {
            Err(ImportError::KdfTooCostly {
                parameter,
                value,
                limit,
                default,
            })
        } else {
            Ok(())
        }
    };
    if let Some(pbes1) = scheme.pbes1() {
        return too_costly(
            "PBES1 iteration count",
            pbes1.parameters.iteration_count.into(),
            MAX_PBKDF2_ITERATIONS.into(),
            "2048",
        );
    }
    match scheme.pbes2().map(|p| &p.kdf) {
        Some(Kdf::Pbkdf2(p)) => too_costly(
            "PBKDF2 iteration count",
            p.iteration_count.into(),
            MAX_PBKDF2_ITERATIONS.into(),
            "2048",
        ),
        Some(Kdf::Scrypt(p)) => {
            too_costly("scrypt cost N", p.cost_parameter, MAX_SCRYPT_N, "16384")?;
            too_costly(
                "scrypt block size r",
                p.block_size.into(),
                MAX_SCRYPT_R,
                "8",
            )?;
            too_costly(
                "scrypt parallelization p",
                p.parallelization.into(),
                MAX_SCRYPT_P,
                "1",
            )
        }
        _ => Ok(()),
    }
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
    let mut blocks =
        pem::parse_many(text.trim_start()).map_err(|e| ImportError::NotPem(e.to_string()))?;
    let block = match blocks.len() {
        0 => return Err(ImportError::NotPem("no PEM block found".into())),
        1 => blocks.remove(0),
        n => return Err(ImportError::SeveralBlocks(n)),
    };
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
            check_kdf_cost(&info.encryption_algorithm)?;
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

    /// An `ENCRYPTED PRIVATE KEY` file whose KDF is `kdf` (the ciphertext
    /// is junk: the cost check comes before any derivation).
    fn crafted(kdf: pkcs8::pkcs5::pbes2::Kdf) -> String {
        use der::Encode;
        use pkcs8::pkcs5::pbes2::{EncryptionScheme, Parameters};
        let info = pkcs8::EncryptedPrivateKeyInfoRef {
            encryption_algorithm: Parameters {
                kdf,
                encryption: EncryptionScheme::Aes256Cbc { iv: [1; 16] },
            }
            .into(),
            encrypted_data: der::asn1::OctetStringRef::new(&[0u8; 48]).unwrap(),
        };
        pem::encode(&pem::Pem::new(
            "ENCRYPTED PRIVATE KEY",
            info.to_der().unwrap(),
        ))
    }

    fn scrypt(n: u64, r: u16, p: u16) -> String {
        crafted(
            pkcs8::pkcs5::pbes2::ScryptParams {
                salt: [2u8; 16].as_slice().try_into().unwrap(),
                cost_parameter: n,
                block_size: r,
                parallelization: p,
                key_length: Some(32),
            }
            .into(),
        )
    }

    fn pbkdf2(iterations: u32) -> String {
        let mut params = pkcs8::pkcs5::pbes2::Pbkdf2Params::hmac_sha256(1, &[3u8; 16]).unwrap();
        params.iteration_count = iterations;
        crafted(params.into())
    }

    #[test]
    fn refuses_costly_kdf_parameters_before_deriving() {
        let pass = SecretString::from("secretpass");
        let start = std::time::Instant::now();
        for (file, parameter) in [
            (scrypt(1 << 40, 8, 1), "scrypt cost N"),
            (scrypt(1 << 20, 8, 1), "scrypt cost N"),
            (scrypt(1 << 14, 1024, 1), "scrypt block size r"),
            (scrypt(1 << 14, 8, 16), "scrypt parallelization p"),
            (pbkdf2(u32::MAX), "PBKDF2 iteration count"),
            (pbkdf2(MAX_PBKDF2_ITERATIONS + 1), "PBKDF2 iteration count"),
        ] {
            match parse_key_file(&file, Some(&pass)) {
                Err(e @ ImportError::KdfTooCostly { .. }) => {
                    assert!(e.to_string().contains(parameter), "{e}")
                }
                other => panic!("{parameter}: {other:?}"),
            }
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        // Within the limits the file is decrypted (and here, being junk,
        // refused as a wrong passphrase).
        for file in [scrypt(1 << 14, 8, 1), pbkdf2(2048)] {
            assert!(matches!(
                parse_key_file(&file, Some(&pass)),
                Err(ImportError::WrongPassphrase)
            ));
        }
    }

    #[test]
    fn refuses_a_second_key_block() {
        let one = key().to_pkcs8_pem(Default::default()).unwrap();
        let other = SecretKey::from_slice(&[9u8; 32])
            .unwrap()
            .to_pkcs8_pem(Default::default())
            .unwrap();
        let two = format!("{}{}", one.as_str(), other.as_str());
        assert!(matches!(
            parse_key_file(&two, None),
            Err(ImportError::SeveralBlocks(2))
        ));
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
