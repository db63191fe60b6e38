//! PIV attestation: proof that a key was generated on a YubiKey.
//!
//! The device signs a certificate for a slot's public key (the attestation
//! statement, `ykman piv keys attest`) with its attestation key in slot f9;
//! the f9 certificate is issued by Yubico's PIV CA. [`verify`] checks the
//! statement against the f9 certificate and the slot's key, and, when given
//! Yubico's roots, the f9 certificate against them. Yubico's extensions
//! (OID arc 1.3.6.1.4.1.41482.3) carry the firmware version, the serial
//! number, the PIN and touch policies and the form factor.

use super::policy::{KeyPinPolicy, KeyTouchPolicy};
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use x509_cert::Certificate;

const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const YK_FIRMWARE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.3");
const YK_SERIAL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.7");
const YK_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.8");
const YK_FORM_FACTOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.9");

/// Why an attestation does not hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AttestationError {
    /// A certificate does not parse.
    #[error("the {0} is not an X.509 certificate")]
    Malformed(&'static str),
    /// The statement is not for this key.
    #[error("the attestation certifies another public key than the slot's key")]
    WrongKey,
    /// The statement's issuer is not the f9 certificate's subject.
    #[error(
        "the attestation was not issued by the device's attestation certificate (issuer {issuer}, f9 subject {subject})"
    )]
    WrongIssuer { issuer: String, subject: String },
    /// A signature in the chain does not verify.
    #[error("the signature on the {0} does not verify")]
    BadSignature(&'static str),
    /// The signature algorithm is not one YubiKeys use.
    #[error("the {what} is signed with {oid}, which tufd does not verify")]
    UnsupportedAlgorithm { what: &'static str, oid: String },
    /// Roots were given and none issued the f9 certificate.
    #[error("the device's attestation certificate (f9) was not issued by a trusted Yubico root")]
    UntrustedIntermediate,
}

/// A verified attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    /// The attestation statement (DER), as `ykman piv keys attest` writes it.
    pub statement_der: Vec<u8>,
    /// The device's attestation certificate from slot f9 (DER).
    pub intermediate_der: Vec<u8>,
    /// Whether the f9 certificate was checked against Yubico roots.
    pub chain_to_root: bool,
    /// Serial number of the device, from the statement.
    pub serial: Option<u32>,
    /// Firmware version, from the statement.
    pub firmware: Option<(u8, u8, u8)>,
    /// PIN policy the device enforces for the key.
    pub pin_policy: Option<KeyPinPolicy>,
    /// Touch policy the device enforces for the key.
    pub touch_policy: Option<KeyTouchPolicy>,
    /// Form factor byte (0x01 USB-A keychain, 0x03 USB-C keychain, …).
    pub form_factor: Option<u8>,
}

/// Reads the Yubico attestation root certificates (PEM, one or more
/// `CERTIFICATE` blocks, as Yubico publishes them) for [`verify`]'s `roots`.
pub fn parse_roots_pem(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let blocks = pem::parse_many(text).map_err(|e| format!("not PEM: {e}"))?;
    let mut roots = Vec::new();
    for block in blocks.iter().filter(|b| b.tag() == "CERTIFICATE") {
        Certificate::from_der(block.contents())
            .map_err(|e| format!("a CERTIFICATE block is not an X.509 certificate: {e}"))?;
        roots.push(block.contents().to_vec());
    }
    if roots.is_empty() {
        return Err(
            "no CERTIFICATE block found (expected Yubico's PIV attestation root CA in PEM)".into(),
        );
    }
    Ok(roots)
}

/// Verifies `signed`'s signature with `issuer`'s public key.
fn check_signature(
    what: &'static str,
    signed: &Certificate,
    issuer: &Certificate,
) -> Result<(), AttestationError> {
    let tbs = signed
        .tbs_certificate()
        .to_der()
        .map_err(|_| AttestationError::Malformed(what))?;
    let sig = signed
        .signature()
        .as_bytes()
        .ok_or(AttestationError::BadSignature(what))?;
    let spki = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|_| AttestationError::Malformed(what))?;
    let bad = || AttestationError::BadSignature(what);
    let oid = signed.signature_algorithm().oid;
    if oid == ECDSA_SHA256 {
        use p256::ecdsa::signature::Verifier;
        use p256::pkcs8::DecodePublicKey;
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).map_err(|_| bad())?;
        let sig = p256::ecdsa::Signature::from_der(sig).map_err(|_| bad())?;
        key.verify(&tbs, &sig).map_err(|_| bad())
    } else if oid == ECDSA_SHA384 {
        use p384::ecdsa::signature::Verifier;
        use p384::pkcs8::DecodePublicKey;
        let key = p384::ecdsa::VerifyingKey::from_public_key_der(&spki).map_err(|_| bad())?;
        let sig = p384::ecdsa::Signature::from_der(sig).map_err(|_| bad())?;
        key.verify(&tbs, &sig).map_err(|_| bad())
    } else if oid == RSA_SHA256 {
        use rsa::pkcs8::DecodePublicKey;
        use rsa::signature::Verifier;
        let key = rsa::RsaPublicKey::from_public_key_der(&spki).map_err(|_| bad())?;
        let key = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key);
        let sig = rsa::pkcs1v15::Signature::try_from(sig).map_err(|_| bad())?;
        key.verify(&tbs, &sig).map_err(|_| bad())
    } else {
        Err(AttestationError::UnsupportedAlgorithm {
            what,
            oid: oid.to_string(),
        })
    }
}

fn extension<'a>(cert: &'a Certificate, oid: &ObjectIdentifier) -> Option<&'a [u8]> {
    cert.tbs_certificate()
        .extensions()?
        .iter()
        .find(|e| e.extn_id == *oid)
        .map(|e| e.extn_value.as_bytes())
}

/// Verifies an attestation statement for the key `spki_der` (DER
/// SubjectPublicKeyInfo) against the device's f9 certificate and, if
/// `roots` (DER) is not empty, the f9 certificate against those roots.
pub fn verify(
    statement_der: &[u8],
    intermediate_der: &[u8],
    spki_der: &[u8],
    roots: &[Vec<u8>],
) -> Result<Attestation, AttestationError> {
    let statement = Certificate::from_der(statement_der)
        .map_err(|_| AttestationError::Malformed("attestation statement"))?;
    let intermediate = Certificate::from_der(intermediate_der)
        .map_err(|_| AttestationError::Malformed("attestation certificate (f9)"))?;
    let attested = statement
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|_| AttestationError::Malformed("attestation statement"))?;
    // Compare keys, not encodings: parameters may be encoded differently.
    let same_key = match (
        <p256::PublicKey as p256::pkcs8::DecodePublicKey>::from_public_key_der(&attested),
        <p256::PublicKey as p256::pkcs8::DecodePublicKey>::from_public_key_der(spki_der),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => attested == spki_der,
    };
    if !same_key {
        return Err(AttestationError::WrongKey);
    }
    let issuer = statement.tbs_certificate().issuer();
    let subject = intermediate.tbs_certificate().subject();
    if issuer != subject {
        return Err(AttestationError::WrongIssuer {
            issuer: issuer.to_string(),
            subject: subject.to_string(),
        });
    }
    check_signature("attestation statement", &statement, &intermediate)?;
    let chain_to_root = !roots.is_empty();
    if chain_to_root {
        let trusted = roots.iter().any(|root| {
            Certificate::from_der(root).is_ok_and(|root| {
                root.tbs_certificate().subject() == intermediate.tbs_certificate().issuer()
                    && check_signature("attestation certificate (f9)", &intermediate, &root).is_ok()
            })
        });
        if !trusted {
            return Err(AttestationError::UntrustedIntermediate);
        }
    }
    let firmware = extension(&statement, &YK_FIRMWARE)
        .and_then(|v| <[u8; 3]>::try_from(v).ok())
        .map(|[a, b, c]| (a, b, c));
    let serial = extension(&statement, &YK_SERIAL)
        .and_then(|v| der::asn1::Uint::from_der(v).ok())
        .and_then(|u| {
            let bytes = u.as_bytes();
            (bytes.len() <= 4).then(|| bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
        });
    let (pin_policy, touch_policy) = match extension(&statement, &YK_POLICY) {
        Some(&[p, t, ..]) => (
            yubikey::PinPolicy::try_from(p)
                .ok()
                .map(KeyPinPolicy::from_yubikey),
            yubikey::TouchPolicy::try_from(t)
                .ok()
                .map(KeyTouchPolicy::from_yubikey),
        ),
        _ => (None, None),
    };
    let form_factor = extension(&statement, &YK_FORM_FACTOR).and_then(|v| v.first().copied());
    Ok(Attestation {
        statement_der: statement_der.to_vec(),
        intermediate_der: intermediate_der.to_vec(),
        chain_to_root,
        serial,
        firmware,
        pin_policy,
        touch_policy,
        form_factor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::{DerSignature, SigningKey};
    use p256::pkcs8::EncodePublicKey;
    use std::str::FromStr;
    use std::time::Duration;
    use x509_cert::builder::profile::BuilderProfile;
    use x509_cert::builder::{Builder, CertificateBuilder};
    use x509_cert::ext::Extension;
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
    use x509_cert::time::Validity;

    /// A profile issuing `subject` by `issuer` with Yubico's extensions.
    struct Profile {
        subject: Name,
        issuer: Name,
        extensions: Vec<Extension>,
    }

    impl BuilderProfile for Profile {
        fn get_issuer(&self, _subject: &Name) -> Name {
            self.issuer.clone()
        }
        fn get_subject(&self) -> Name {
            self.subject.clone()
        }
        fn build_extensions(
            &self,
            _spk: SubjectPublicKeyInfoRef<'_>,
            _issuer_spk: SubjectPublicKeyInfoRef<'_>,
            _tbs: &x509_cert::TbsCertificate,
        ) -> x509_cert::builder::Result<Vec<Extension>> {
            Ok(self.extensions.clone())
        }
    }

    fn ext(oid: ObjectIdentifier, value: &[u8]) -> Extension {
        Extension {
            extn_id: oid,
            critical: false,
            extn_value: der::asn1::OctetString::new(value).unwrap(),
        }
    }

    fn issue(
        subject: &str,
        issuer: &str,
        key: &SubjectPublicKeyInfoOwned,
        signer: &SigningKey,
        extensions: Vec<Extension>,
    ) -> Vec<u8> {
        let profile = Profile {
            subject: Name::from_str(subject).unwrap(),
            issuer: Name::from_str(issuer).unwrap(),
            extensions,
        };
        let builder = CertificateBuilder::new(
            profile,
            SerialNumber::from(1u32),
            Validity::from_now(Duration::from_secs(3600)).unwrap(),
            key.clone(),
        )
        .unwrap();
        builder
            .build::<_, DerSignature>(signer)
            .unwrap()
            .to_der()
            .unwrap()
    }

    fn spki(key: &SigningKey) -> SubjectPublicKeyInfoOwned {
        SubjectPublicKeyInfoOwned::from_key(key.verifying_key()).unwrap()
    }

    /// A chain shaped like a YubiKey's: root → f9 → statement for a slot key.
    fn chain() -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>, SigningKey) {
        let root = SigningKey::from_slice(&[1u8; 32]).unwrap();
        let f9 = SigningKey::from_slice(&[2u8; 32]).unwrap();
        let slot = SigningKey::from_slice(&[3u8; 32]).unwrap();
        let root_der = issue(
            "CN=Test PIV Root CA",
            "CN=Test PIV Root CA",
            &spki(&root),
            &root,
            vec![],
        );
        let f9_der = issue(
            "CN=Test PIV Attestation",
            "CN=Test PIV Root CA",
            &spki(&f9),
            &root,
            vec![],
        );
        let serial = der::asn1::Uint::new(&12_345_678u32.to_be_bytes())
            .unwrap()
            .to_der()
            .unwrap();
        let statement = issue(
            "CN=YubiKey PIV Attestation 9c",
            "CN=Test PIV Attestation",
            &spki(&slot),
            &f9,
            vec![
                ext(YK_FIRMWARE, &[5, 4, 3]),
                ext(YK_SERIAL, &serial),
                ext(YK_POLICY, &[2, 2]),
                ext(YK_FORM_FACTOR, &[3]),
            ],
        );
        let slot_spki = slot
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec();
        (root_der, f9_der, statement, slot_spki, slot)
    }

    #[test]
    fn verifies_a_chain_and_reads_yubico_extensions() {
        let (root, f9, statement, slot_spki, _) = chain();
        let a = verify(&statement, &f9, &slot_spki, &[]).unwrap();
        assert!(!a.chain_to_root);
        assert_eq!(a.serial, Some(12_345_678));
        assert_eq!(a.firmware, Some((5, 4, 3)));
        assert_eq!(a.pin_policy, Some(KeyPinPolicy::Once));
        assert_eq!(a.touch_policy, Some(KeyTouchPolicy::Always));
        assert_eq!(a.form_factor, Some(3));
        let a = verify(&statement, &f9, &slot_spki, &[root]).unwrap();
        assert!(a.chain_to_root);
    }

    #[test]
    fn reads_roots_from_pem() {
        let (root, ..) = chain();
        let text = pem::encode(&pem::Pem::new("CERTIFICATE", root.clone()));
        assert_eq!(parse_roots_pem(&text), Ok(vec![root]));
        assert!(parse_roots_pem("junk").is_err());
        let key = pem::encode(&pem::Pem::new("PUBLIC KEY", vec![1, 2, 3]));
        assert!(
            parse_roots_pem(&key)
                .unwrap_err()
                .contains("no CERTIFICATE")
        );
        let bad = pem::encode(&pem::Pem::new("CERTIFICATE", vec![1, 2, 3]));
        assert!(parse_roots_pem(&bad).is_err());
    }

    #[test]
    fn rejects_what_does_not_chain() {
        let (root, f9, statement, slot_spki, _) = chain();
        let other = SigningKey::from_slice(&[4u8; 32]).unwrap();
        let other_spki = other
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec();
        assert_eq!(
            verify(&statement, &f9, &other_spki, &[]),
            Err(AttestationError::WrongKey)
        );
        // An f9 certificate with the right name but another key.
        let fake_f9 = issue(
            "CN=Test PIV Attestation",
            "CN=Test PIV Root CA",
            &spki(&other),
            &other,
            vec![],
        );
        assert_eq!(
            verify(&statement, &fake_f9, &slot_spki, &[]),
            Err(AttestationError::BadSignature("attestation statement"))
        );
        // A statement from another device's f9.
        let wrong_issuer = issue(
            "CN=Other Attestation",
            "CN=Test PIV Root CA",
            &spki(&other),
            &other,
            vec![],
        );
        assert!(matches!(
            verify(&statement, &wrong_issuer, &slot_spki, &[]),
            Err(AttestationError::WrongIssuer { .. })
        ));
        // The f9 certificate is not from the given root.
        assert_eq!(
            verify(&statement, &f9, &slot_spki, std::slice::from_ref(&fake_f9)),
            Err(AttestationError::UntrustedIntermediate)
        );
        assert_eq!(
            verify(b"junk", &f9, &slot_spki, &[root]),
            Err(AttestationError::Malformed("attestation statement"))
        );
    }
}
