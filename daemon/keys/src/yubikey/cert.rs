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
