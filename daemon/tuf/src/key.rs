//! Public key objects as they appear in `keys` maps (format notes §3).

use std::fmt;

use base64::Engine;
use der::{Decode, Encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use x509_cert::Certificate;

use crate::error::{Error, Result};
use crate::keyid::key_id;
use crate::pem::{certificate_pem, decode_certificates};

/// OID of id-ecPublicKey.
const OID_EC_PUBLIC_KEY: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// OID of rsaEncryption.
const OID_RSA: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// The `keytype` of a key object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyType {
    /// `ecdsa`: public is a DER SubjectPublicKeyInfo.
    Ecdsa,
    /// `ecdsa-x509`: public is a PEM certificate (root and delegation keys).
    EcdsaX509,
    /// `ed25519`: public is the raw 32-byte key.
    Ed25519,
    /// `rsa`: public is a DER SubjectPublicKeyInfo.
    Rsa,
    /// `rsa-x509`: public is a PEM certificate.
    RsaX509,
}

impl KeyType {
    /// The name used in metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ecdsa => "ecdsa",
            KeyType::EcdsaX509 => "ecdsa-x509",
            KeyType::Ed25519 => "ed25519",
            KeyType::Rsa => "rsa",
            KeyType::RsaX509 => "rsa-x509",
        }
    }

    /// Parses a metadata key type name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ecdsa" => KeyType::Ecdsa,
            "ecdsa-x509" => KeyType::EcdsaX509,
            "ed25519" => KeyType::Ed25519,
            "rsa" => KeyType::Rsa,
            "rsa-x509" => KeyType::RsaX509,
            _ => return None,
        })
    }

    /// Whether `public` holds a PEM certificate.
    pub fn is_x509(self) -> bool {
        matches!(self, KeyType::EcdsaX509 | KeyType::RsaX509)
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A public key object: `{"keytype":…,"keyval":{"private":null,"public":…}}`.
///
/// `private` is always `null` in metadata; parsing rejects anything else.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    keytype: KeyType,
    public: Vec<u8>,
}

impl Key {
    /// A key from its type and raw `public` bytes (before base64).
    pub fn new(keytype: KeyType, public: Vec<u8>) -> Self {
        Key { keytype, public }
    }

    /// A plain `ecdsa` key from a DER SubjectPublicKeyInfo.
    pub fn ecdsa(spki_der: Vec<u8>) -> Self {
        Key::new(KeyType::Ecdsa, spki_der)
    }

    /// An `ecdsa-x509` key from a DER certificate, stored as Go-layout PEM
    /// (so its ID is the one notary recomputes).
    pub fn ecdsa_x509(cert_der: &[u8]) -> Self {
        Key::new(KeyType::EcdsaX509, certificate_pem(cert_der).into_bytes())
    }

    /// An `ed25519` key from its 32 raw bytes.
    pub fn ed25519(public: [u8; 32]) -> Self {
        Key::new(KeyType::Ed25519, public.to_vec())
    }

    /// The key type.
    pub fn keytype(&self) -> KeyType {
        self.keytype
    }

    /// The raw `public` bytes (DER SPKI, PEM text or raw key).
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// The key ID used everywhere in metadata (the *cert id* for x509 keys).
    pub fn id(&self) -> String {
        key_id(self.keytype.as_str(), &self.public)
    }

    /// The *canonical* key ID: for x509 keys the ID of the plain `ecdsa`/`rsa`
    /// key holding the certificate's SPKI (what `notary key list` prints and
    /// what names key files); for other keys the same as [`Key::id`].
    pub fn canonical_id(&self) -> Result<String> {
        match self.keytype {
            KeyType::EcdsaX509 => Ok(key_id("ecdsa", &self.spki_der()?)),
            KeyType::RsaX509 => Ok(key_id("rsa", &self.spki_der()?)),
            _ => Ok(self.id()),
        }
    }

    /// The certificates of an x509 key, leaf first.
    pub fn certificates(&self) -> Result<Vec<Certificate>> {
        if !self.keytype.is_x509() {
            return Err(Error::key(
                self.id(),
                format!("a {} key has no certificate", self.keytype),
            ));
        }
        let ders = decode_certificates(&self.public).map_err(|e| Error::key(self.id(), e))?;
        ders.iter()
            .map(|der| {
                Certificate::from_der(der)
                    .map_err(|e| Error::key(self.id(), format!("certificate does not parse: {e}")))
            })
            .collect()
    }

    /// DER SubjectPublicKeyInfo of an `ecdsa`/`rsa` key or of an x509 key's
    /// leaf certificate.
    pub fn spki_der(&self) -> Result<Vec<u8>> {
        match self.keytype {
            KeyType::Ecdsa | KeyType::Rsa => Ok(self.public.clone()),
            KeyType::EcdsaX509 | KeyType::RsaX509 => {
                let certs = self.certificates()?;
                let leaf = certs
                    .first()
                    .ok_or_else(|| Error::key(self.id(), "no certificate"))?;
                let spki = &leaf.tbs_certificate().subject_public_key_info();
                let expected = if self.keytype == KeyType::EcdsaX509 {
                    OID_EC_PUBLIC_KEY
                } else {
                    OID_RSA
                };
                if spki.algorithm.oid != expected {
                    return Err(Error::key(
                        self.id(),
                        format!(
                            "certificate key algorithm {} does not match keytype {}",
                            spki.algorithm.oid, self.keytype
                        ),
                    ));
                }
                spki.to_der().map_err(|e| {
                    Error::key(self.id(), format!("cannot encode certificate SPKI: {e}"))
                })
            }
            KeyType::Ed25519 => Err(Error::key(
                self.id(),
                "ed25519 keys have no SPKI in notary metadata",
            )),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct KeyWire {
    keytype: String,
    keyval: KeyValWire,
}

#[derive(Serialize, Deserialize)]
struct KeyValWire {
    #[serde(default)]
    private: Option<serde_json::Value>,
    public: String,
}

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        KeyWire {
            keytype: self.keytype.as_str().to_owned(),
            keyval: KeyValWire {
                private: None,
                public: base64::engine::general_purpose::STANDARD.encode(&self.public),
            },
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let wire = KeyWire::deserialize(d)?;
        let keytype = KeyType::parse(&wire.keytype).ok_or_else(|| {
            D::Error::custom(format!(
                "unsupported keytype {:?} (expected ecdsa, ecdsa-x509, ed25519, rsa or rsa-x509)",
                wire.keytype
            ))
        })?;
        if wire.keyval.private.as_ref().is_some_and(|p| !p.is_null()) {
            return Err(D::Error::custom(
                "key object carries a private key; metadata must hold public keys only",
            ));
        }
        let public = base64::engine::general_purpose::STANDARD
            .decode(wire.keyval.public.as_bytes())
            .map_err(|e| D::Error::custom(format!("key public value is not base64: {e}")))?;
        Ok(Key { keytype, public })
    }
}
