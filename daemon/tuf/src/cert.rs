//! Self-signed root certificates for Notary root keys (format notes §4),
//! built with the `x509-cert` builder and signed through a [`DigestSigner`].
//!
//! Template (notary `utils.NewCertificate`): subject and issuer CN = GUN
//! only, P-256 / ecdsa-with-SHA256, random serial < 2^128, NotBefore now,
//! NotAfter + 3650 days, KeyUsage critical {digitalSignature,
//! keyEncipherment}, ExtKeyUsage {codeSigning}, BasicConstraints critical
//! CA:FALSE.

use std::cell::RefCell;

use der::asn1::{Any, ObjectIdentifier};
use der::{Decode, Encode, Tag};
use p256::ecdsa::signature::Verifier;
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};
use signature::{Keypair, Signer};
use spki::{AlgorithmIdentifier, SignatureAlgorithmIdentifier, SubjectPublicKeyInfoOwned};
use time::OffsetDateTime;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::error::{Error, Result};
use crate::expiry::ROOT_EXPIRY;
use crate::key::Key;
use crate::sign::{DigestSigner, SignError};

const OID_COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const OID_KP_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");

/// Adapts a [`DigestSigner`] to the `signature::Signer` + `Keypair` pair the
/// `x509-cert` builder needs. Every signature is verified before it is
/// returned; a signer error is kept so the caller sees the original cause.
pub struct CertSigner<'a> {
    signer: &'a dyn DigestSigner,
    verifying_key: p256::ecdsa::VerifyingKey,
    last_error: RefCell<Option<SignError>>,
}

impl<'a> CertSigner<'a> {
    /// Wraps a signer; fails if its key is not P-256.
    pub fn new(signer: &'a dyn DigestSigner) -> Result<Self> {
        let verifying_key = p256::ecdsa::VerifyingKey::from_public_key_der(&signer.spki_der())
            .map_err(|e| Error::Certificate(format!("signer's key is not a P-256 key: {e}")))?;
        Ok(CertSigner {
            signer,
            verifying_key,
            last_error: RefCell::new(None),
        })
    }

    /// The error of the last failed signing call, if any.
    pub fn take_error(&self) -> Option<SignError> {
        self.last_error.borrow_mut().take()
    }
}

impl Keypair for CertSigner<'_> {
    type VerifyingKey = p256::ecdsa::VerifyingKey;
    fn verifying_key(&self) -> Self::VerifyingKey {
        self.verifying_key
    }
}

impl SignatureAlgorithmIdentifier for CertSigner<'_> {
    type Params = der::AnyRef<'static>;
    const SIGNATURE_ALGORITHM_IDENTIFIER: AlgorithmIdentifier<Self::Params> =
        <p256::ecdsa::VerifyingKey as SignatureAlgorithmIdentifier>::SIGNATURE_ALGORITHM_IDENTIFIER;
}

impl Signer<p256::ecdsa::DerSignature> for CertSigner<'_> {
    fn try_sign(
        &self,
        msg: &[u8],
    ) -> std::result::Result<p256::ecdsa::DerSignature, signature::Error> {
        let digest: [u8; 32] = Sha256::digest(msg).into();
        let raw = match self.signer.sign_sha256(&digest) {
            Ok(raw) => raw,
            Err(e) => {
                *self.last_error.borrow_mut() = Some(e);
                return Err(signature::Error::new());
            }
        };
        let sig = p256::ecdsa::Signature::from_slice(&raw).map_err(|_| signature::Error::new())?;
        self.verifying_key.verify(msg, &sig)?;
        Ok(sig.to_der())
    }
}

/// Builder profile for notary's root certificate template.
struct NotaryRootProfile {
    subject: Name,
}

impl BuilderProfile for NotaryRootProfile {
    fn get_issuer(&self, subject: &Name) -> Name {
        subject.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        _spk: spki::SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: spki::SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        use x509_cert::ext::ToExtension;
        let subject = tbs.subject();
        let mut exts: Vec<Extension> = Vec::new();
        let key_usage = KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment);
        exts.push((&key_usage).to_extension(subject, &exts)?);
        let eku = ExtendedKeyUsage(vec![OID_KP_CODE_SIGNING]);
        exts.push((&eku).to_extension(subject, &exts)?);
        let bc = BasicConstraints {
            ca: false,
            path_len_constraint: None,
        };
        exts.push((&bc).to_extension(subject, &exts)?);
        Ok(exts)
    }
}

/// `CN=<gun>` and nothing else; PrintableString when Go would choose it,
/// UTF8String otherwise.
fn common_name(gun: &str) -> Result<Name> {
    let printable = gun
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b));
    let tag = if printable {
        Tag::PrintableString
    } else {
        Tag::Utf8String
    };
    let value = Any::new(tag, gun.as_bytes())
        .map_err(|e| Error::Certificate(format!("CN {gun:?}: {e}")))?;
    let mut rdn = RelativeDistinguishedName::default();
    rdn.insert(AttributeTypeAndValue {
        oid: OID_COMMON_NAME,
        value,
    })
    .map_err(|e| Error::Certificate(format!("CN {gun:?}: {e}")))?;
    let mut seq = RdnSequence::default();
    seq.push(rdn);
    let der = seq
        .to_der()
        .map_err(|e| Error::Certificate(e.to_string()))?;
    Name::from_der(&der).map_err(|e| Error::Certificate(e.to_string()))
}

/// A subject the signer's device asked for: accepted when its common name
/// is exactly `gun` (all notary checks), other attributes kept.
fn device_subject(gun: &str, der: &[u8]) -> Result<Name> {
    const CN: &str = "2.5.4.3";
    let name = Name::from_der(der)
        .map_err(|e| Error::Certificate(format!("the device's subject does not parse: {e}")))?;
    let cns: Vec<String> = name
        .iter()
        .filter(|atv| atv.oid.to_string() == CN)
        .map(|atv| {
            der::asn1::Utf8StringRef::try_from(&atv.value)
                .map(|s| s.as_str().to_owned())
                .or_else(|_| {
                    der::asn1::PrintableStringRef::try_from(&atv.value)
                        .map(|s| s.as_str().to_owned())
                })
                .unwrap_or_default()
        })
        .collect();
    if cns != [gun] {
        return Err(Error::Certificate(format!(
            "the device's subject has common name(s) {cns:?}; a root certificate needs exactly CN={gun:?}"
        )));
    }
    Ok(name)
}

fn x509_time(t: OffsetDateTime) -> Result<Time> {
    let secs = u64::try_from(t.unix_timestamp())
        .map_err(|_| Error::Certificate(format!("time {t} is before 1970")))?;
    let st = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    Time::try_from(st).map_err(|e| Error::Certificate(format!("time {t}: {e}")))
}

/// Builds the self-signed root certificate for `gun`, valid from `now` for
/// [`ROOT_EXPIRY`], signed by `signer`. Returns the DER certificate; wrap it
/// with [`Key::ecdsa_x509`] to get the root key object.
pub fn build_root_certificate(
    gun: &str,
    signer: &dyn DigestSigner,
    now: OffsetDateTime,
) -> Result<Vec<u8>> {
    if gun.is_empty() {
        return Err(Error::Certificate(
            "the GUN (certificate CN) must not be empty".into(),
        ));
    }
    let cert_signer = CertSigner::new(signer)?;
    let spki = SubjectPublicKeyInfoOwned::from_der(&signer.spki_der())
        .map_err(|e| Error::Certificate(format!("signer's SPKI does not parse: {e}")))?;
    // 16 random bytes: uniformly below 2^128, like notary's rand.Int(2^128).
    let mut serial = [0u8; 16];
    rand::fill(&mut serial);
    let serial = SerialNumber::new(&serial).map_err(|e| Error::Certificate(e.to_string()))?;
    let validity = Validity::new(x509_time(now)?, x509_time(now + ROOT_EXPIRY)?);
    let subject = match signer.certificate_subject() {
        Some(der) => device_subject(gun, &der)?,
        None => common_name(gun)?,
    };
    let profile = NotaryRootProfile { subject };
    let builder = CertificateBuilder::new(profile, serial, validity, spki)
        .map_err(|e| Error::Certificate(e.to_string()))?;
    let cert = builder
        .build::<_, p256::ecdsa::DerSignature>(&cert_signer)
        .map_err(|e| match cert_signer.take_error() {
            Some(source) => Error::Sign {
                role: "root certificate".into(),
                keyid: Key::ecdsa(signer.spki_der()).id(),
                source,
            },
            None => Error::Certificate(format!("building the certificate failed: {e}")),
        })?;
    cert.to_der().map_err(|e| Error::Certificate(e.to_string()))
}

/// Builds the root certificate and returns it as an `ecdsa-x509` key object.
pub fn build_root_key(gun: &str, signer: &dyn DigestSigner, now: OffsetDateTime) -> Result<Key> {
    build_root_certificate(gun, signer, now).map(|der| Key::ecdsa_x509(&der))
}
