//! What tufd writes into a slot's certificate so that it can rebuild its
//! index from the device alone.
//!
//! The subject of the slot's self-signed certificate is
//!
//! ```text
//! CN = <repository, or the key name for signer keys>
//! OU = tufd:<name>:<repository>          (the label, as CKA_LABEL on PKCS#11)
//! OU = tufd-key:pin=<p> touch=<t> origin=<generated|imported>
//! O  = tufd
//! ```
//!
//! all as UTF8String. `yubico-piv-tool -a status` and `ykman piv info` show
//! it; ykcs11 shows the key with the certificate.
//!
//! A slot tufd freed (it deleted its key there, or could not finish making
//! one) holds a throwaway key and the "free slot" certificate
//!
//! ```text
//! CN = free PIV slot
//! OU = tufd-free-slot
//! O  = tufd
//! ```
//!
//! so that tufd can use the slot again: a YubiKey before firmware 5.7 cannot
//! delete a key, and one with GET METADATA shows the throwaway key, which
//! without this mark looks like another application's key.

use super::policy::{KeyPinPolicy, KeyTouchPolicy};
use crate::{KeyLabel, KeyOrigin};
use der::asn1::Any;
use der::oid::ObjectIdentifier;
use der::{Decode, Encode, Tag, Tagged};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

const CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const OU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.11");
const O: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
const POLICY_PREFIX: &str = "tufd-key:";
/// The OU of the certificate marking a slot tufd freed.
const FREED_OU: &str = "tufd-free-slot";

/// What a slot's certificate says about the key in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotRecord {
    pub label: KeyLabel,
    pub pin_policy: KeyPinPolicy,
    pub touch_policy: KeyTouchPolicy,
    pub origin: KeyOrigin,
}

fn rdn(oid: ObjectIdentifier, value: &str) -> der::Result<RelativeDistinguishedName> {
    let atv = AttributeTypeAndValue {
        oid,
        value: Any::new(Tag::Utf8String, value.as_bytes())?,
    };
    let mut rdn = RelativeDistinguishedName::default();
    rdn.insert(atv)?;
    Ok(rdn)
}

/// The certificate subject recording `record`.
pub(crate) fn subject(record: &SlotRecord) -> der::Result<Name> {
    let label = &record.label;
    let cn = if label.gun().is_empty() {
        label.name()
    } else {
        label.gun()
    };
    let origin = match record.origin {
        KeyOrigin::Generated => "generated",
        KeyOrigin::Imported => "imported",
    };
    let policy = format!(
        "{POLICY_PREFIX}pin={} touch={} origin={origin}",
        record.pin_policy.as_str(),
        record.touch_policy.as_str()
    );
    let mut seq = RdnSequence::default();
    // RDNSequence order is most significant first: O, OU, OU, CN.
    seq.push(rdn(O, "tufd")?);
    seq.push(rdn(OU, &policy)?);
    seq.push(rdn(OU, &label.to_token_label())?);
    seq.push(rdn(CN, cn)?);
    Name::from_der(&seq.to_der()?)
}

/// The subject of the certificate marking a slot tufd freed.
pub(crate) fn freed_subject() -> der::Result<Name> {
    let mut seq = RdnSequence::default();
    seq.push(rdn(O, "tufd")?);
    seq.push(rdn(OU, FREED_OU)?);
    seq.push(rdn(CN, "free PIV slot")?);
    Name::from_der(&seq.to_der()?)
}

/// Whether `name` is the subject of tufd's "free slot" certificate.
pub(crate) fn is_freed(name: &Name) -> bool {
    let (mut org, mut freed) = (false, false);
    for rdn in name.as_ref().iter() {
        for atv in rdn.iter() {
            match (atv.oid, text(&atv.value).as_deref()) {
                (oid, Some("tufd")) if oid == O => org = true,
                (oid, Some(FREED_OU)) if oid == OU => freed = true,
                _ => {}
            }
        }
    }
    org && freed
}

/// The DER "free slot" certificate for a slot whose (throwaway) key is
/// `spki`. It is signed by a key made for it in memory and dropped at
/// once, not by the slot's key: writing it needs no PIN and no touch, so it
/// can mark a slot whose key was never certified because nobody touched the
/// device. Nothing verifies it; tufd only reads its subject.
pub(crate) fn freed_certificate(
    spki: x509_cert::spki::SubjectPublicKeyInfoOwned,
) -> Result<Vec<u8>, String> {
    use x509_cert::builder::profile::BuilderProfile;
    use x509_cert::builder::{Builder, CertificateBuilder};

    struct Freed(Name);
    impl BuilderProfile for Freed {
        fn get_issuer(&self, _subject: &Name) -> Name {
            self.0.clone()
        }
        fn get_subject(&self) -> Name {
            self.0.clone()
        }
        fn build_extensions(
            &self,
            _spk: x509_cert::spki::SubjectPublicKeyInfoRef<'_>,
            _issuer_spk: x509_cert::spki::SubjectPublicKeyInfoRef<'_>,
            _tbs: &x509_cert::TbsCertificate,
        ) -> x509_cert::builder::Result<Vec<x509_cert::ext::Extension>> {
            Ok(Vec::new())
        }
    }

    let signer = p256::ecdsa::SigningKey::from_slice(&rand::random::<[u8; 32]>())
        .map_err(|e| format!("cannot make the marker's signing key: {e}"))?;
    let validity =
        x509_cert::time::Validity::from_now(std::time::Duration::from_secs(20 * 365 * 24 * 3600))
            .map_err(|e| e.to_string())?;
    let builder = CertificateBuilder::new(
        Freed(freed_subject().map_err(|e| e.to_string())?),
        x509_cert::serial_number::SerialNumber::from(1u32),
        validity,
        spki,
    )
    .map_err(|e| e.to_string())?;
    builder
        .build::<_, p256::ecdsa::DerSignature>(&signer)
        .map_err(|e| e.to_string())?
        .to_der()
        .map_err(|e| e.to_string())
}

fn text(value: &Any) -> Option<String> {
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
            String::from_utf8(value.value().to_vec()).ok()
        }
        _ => None,
    }
}

/// Reads the record back; `None` for certificates tufd did not write.
pub(crate) fn parse_subject(name: &Name) -> Option<SlotRecord> {
    let mut label = None;
    let mut pin_policy = KeyPinPolicy::Default;
    let mut touch_policy = KeyTouchPolicy::Default;
    let mut origin = KeyOrigin::Generated;
    for rdn in name.as_ref().iter() {
        for atv in rdn.iter() {
            if atv.oid != OU {
                continue;
            }
            let Some(value) = text(&atv.value) else {
                continue;
            };
            if let Some(policy) = value.strip_prefix(POLICY_PREFIX) {
                for item in policy.split_whitespace() {
                    match item.split_once('=') {
                        Some(("pin", p)) => pin_policy = p.parse().unwrap_or(pin_policy),
                        Some(("touch", t)) => touch_policy = t.parse().unwrap_or(touch_policy),
                        Some(("origin", "imported")) => origin = KeyOrigin::Imported,
                        _ => {}
                    }
                }
            } else if let Some(l) = KeyLabel::from_token_label(&value) {
                label = Some(l);
            }
        }
    }
    Some(SlotRecord {
        label: label?,
        pin_policy,
        touch_policy,
        origin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn subject_round_trips_labels_with_special_characters() {
        for (name, gun) in [
            ("root", "localhost:5000/library/app"),
            ("alice", ""),
            ("targets", "odd,gun=with+\"quotes\";and\\slashes"),
        ] {
            let record = SlotRecord {
                label: KeyLabel::new(name, gun).unwrap(),
                pin_policy: KeyPinPolicy::Once,
                touch_policy: KeyTouchPolicy::Always,
                origin: KeyOrigin::Imported,
            };
            let subject = subject(&record).unwrap();
            assert_eq!(parse_subject(&subject), Some(record.clone()), "{subject}");
            // Survives DER encoding, as it does on the device.
            let back = Name::from_der(&subject.to_der().unwrap()).unwrap();
            assert_eq!(parse_subject(&back), Some(record));
        }
    }

    #[test]
    fn subject_names_the_repository() {
        let record = SlotRecord {
            label: KeyLabel::new("root", "example.com/app").unwrap(),
            pin_policy: KeyPinPolicy::Default,
            touch_policy: KeyTouchPolicy::Never,
            origin: KeyOrigin::Generated,
        };
        let s = subject(&record).unwrap().to_string();
        assert!(s.starts_with("CN=example.com/app,"), "{s}");
        assert!(s.contains("OU=tufd:root:example.com/app"), "{s}");
        assert!(
            s.contains("OU=tufd-key:pin=default touch=never origin=generated"),
            "{s}"
        );
    }

    #[test]
    fn freed_marker_is_recognized_and_is_no_key() {
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let spki =
            x509_cert::spki::SubjectPublicKeyInfoOwned::from_key(key.verifying_key()).unwrap();
        let der = freed_certificate(spki.clone()).unwrap();
        let cert = x509_cert::Certificate::from_der(&der).unwrap();
        let tbs = cert.tbs_certificate();
        assert!(is_freed(tbs.subject()), "{}", tbs.subject());
        assert_eq!(parse_subject(tbs.subject()), None, "not a tufd key");
        assert_eq!(tbs.subject_public_key_info(), &spki, "the slot's key");
        // Look-alikes are not markers; tufd keys are not either.
        for other in ["CN=x,OU=tufd-free-slot,O=someone", "CN=x,OU=free,O=tufd"] {
            assert!(!is_freed(&Name::from_str(other).unwrap()), "{other}");
        }
        let record = SlotRecord {
            label: KeyLabel::new("root", "example.com/app").unwrap(),
            pin_policy: KeyPinPolicy::Once,
            touch_policy: KeyTouchPolicy::Never,
            origin: KeyOrigin::Generated,
        };
        assert!(!is_freed(&subject(&record).unwrap()));
    }

    #[test]
    fn foreign_certificates_are_not_tufd_keys() {
        let foreign = Name::from_str("CN=SSH key,OU=tufd-key:pin=once,O=someone").unwrap();
        assert_eq!(parse_subject(&foreign), None);
        // Policies default when a tufd label carries none.
        let bare = Name::from_str("CN=x,OU=tufd:alice:").unwrap();
        let r = parse_subject(&bare).unwrap();
        assert_eq!(r.label, KeyLabel::new("alice", "").unwrap());
        assert_eq!(r.touch_policy, KeyTouchPolicy::Default);
    }
}
