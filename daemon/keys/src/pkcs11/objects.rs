//! PKCS#11 object templates and reading tufd's keys back from a token.

use crate::KeyLabel;
use cryptoki::error::Error as CkError;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use p256::pkcs8::EncodePublicKey;
use p256::{PublicKey, SecretKey};

/// DER of the named curve OID for P-256 (prime256v1), the `CKA_EC_PARAMS`.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// DER SubjectPublicKeyInfo of a P-256 public key.
pub(super) fn spki_der(key: &PublicKey) -> Vec<u8> {
    key.to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .expect("a valid P-256 point always encodes")
}

/// `CKA_EC_POINT`: the uncompressed point wrapped in a DER OCTET STRING.
fn ec_point(key: &PublicKey) -> Vec<u8> {
    let point = key.to_sec1_bytes();
    let mut out = Vec::with_capacity(point.len() + 2);
    out.push(0x04);
    out.push(point.len() as u8);
    out.extend_from_slice(&point);
    out
}

/// Parses `CKA_EC_POINT`, DER-wrapped (as the standard says) or raw (as
/// some tokens return it).
fn parse_ec_point(raw: &[u8]) -> Option<PublicKey> {
    let point = match raw {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
        _ => raw,
    };
    PublicKey::from_sec1_bytes(point).ok()
}

fn common(label: &KeyLabel, id: &[u8]) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::KeyType(KeyType::EC),
        Attribute::Label(label.to_token_label().into_bytes()),
        Attribute::Id(id.to_vec()),
    ]
}

fn private_policy() -> [Attribute; 5] {
    [
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Derive(false),
    ]
}

/// Public and private templates for `C_GenerateKeyPair`.
pub(super) fn p256_template_parts(label: &KeyLabel, id: &[u8]) -> (Vec<Attribute>, Vec<Attribute>) {
    let mut public = common(label, id);
    public.extend([
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::EcParams(P256_PARAMS.to_vec()),
    ]);
    let mut private = common(label, id);
    private.extend(private_policy());
    (public, private)
}

/// Template creating the public half of an imported key.
pub(super) fn public_import_template(
    label: &KeyLabel,
    id: &[u8],
    key: &PublicKey,
) -> Vec<Attribute> {
    let mut t = common(label, id);
    t.extend([
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::EcParams(P256_PARAMS.to_vec()),
        Attribute::EcPoint(ec_point(key)),
    ]);
    t
}

/// Template creating the private half of an imported key. It holds the
/// secret scalar: the caller zeroizes the `Value` after use.
pub(super) fn private_import_template(
    label: &KeyLabel,
    id: &[u8],
    key: &SecretKey,
) -> Vec<Attribute> {
    let mut t = common(label, id);
    t.push(Attribute::Class(ObjectClass::PRIVATE_KEY));
    t.extend(private_policy());
    t.extend([
        Attribute::EcParams(P256_PARAMS.to_vec()),
        Attribute::Value(key.to_bytes().to_vec()),
    ]);
    t
}

/// One key pair as read from the token.
pub(super) struct Scanned {
    pub label: KeyLabel,
    pub ck_id: Vec<u8>,
    pub private: ObjectHandle,
    pub public: ObjectHandle,
    pub public_key: PublicKey,
    pub local: bool,
    pub sensitive: bool,
    pub extractable: bool,
    /// The token wants a context-specific login before each signature
    /// (`CKA_ALWAYS_AUTHENTICATE`, as ykcs11 marks PIV slot 9c keys).
    pub always_authenticate: bool,
    /// The label came from the certificate with the key's `CKA_ID` (PIV
    /// tokens through ykcs11, whose key labels are fixed); such tokens
    /// cannot take tufd's `CKA_ID` either.
    pub label_from_certificate: bool,
}

fn bool_attr(attrs: &[Attribute], ty: AttributeType) -> Option<bool> {
    attrs.iter().find_map(|a| match (a, ty) {
        (Attribute::Local(v), AttributeType::Local)
        | (Attribute::AlwaysAuthenticate(v), AttributeType::AlwaysAuthenticate)
        | (Attribute::Sensitive(v), AttributeType::Sensitive)
        | (Attribute::Extractable(v), AttributeType::Extractable) => Some(*v),
        _ => None,
    })
}

fn bytes_attr(attrs: &[Attribute], ty: AttributeType) -> Option<Vec<u8>> {
    attrs.iter().find_map(|a| match (a, ty) {
        (Attribute::Label(v), AttributeType::Label)
        | (Attribute::Id(v), AttributeType::Id)
        | (Attribute::EcPoint(v), AttributeType::EcPoint) => Some(v.clone()),
        _ => None,
    })
}

/// Reads the attributes tufd needs from a private/public pair.
pub(super) fn read_pair(
    session: &Session,
    private: ObjectHandle,
    public: ObjectHandle,
) -> Result<Scanned, CkError> {
    read_pair_labelled(session, private, public, None)
}

/// [`read_pair`], with the label given when the key objects do not carry
/// it (see [`certificate_label`]).
fn read_pair_labelled(
    session: &Session,
    private: ObjectHandle,
    public: ObjectHandle,
    given: Option<KeyLabel>,
) -> Result<Scanned, CkError> {
    let p = session.get_attributes(
        private,
        &[
            AttributeType::Label,
            AttributeType::Id,
            AttributeType::Local,
            AttributeType::Sensitive,
            AttributeType::Extractable,
            AttributeType::AlwaysAuthenticate,
        ],
    )?;
    let q = session.get_attributes(public, &[AttributeType::EcPoint])?;
    let label_from_certificate = given.is_some();
    let label = match given {
        Some(l) => l,
        None => bytes_attr(&p, AttributeType::Label)
            .and_then(|l| String::from_utf8(l).ok())
            .and_then(|l| KeyLabel::from_token_label(&l))
            .ok_or(CkError::InvalidValue)?,
    };
    let public_key = bytes_attr(&q, AttributeType::EcPoint)
        .and_then(|raw| parse_ec_point(&raw))
        .ok_or(CkError::InvalidValue)?;
    Ok(Scanned {
        label,
        ck_id: bytes_attr(&p, AttributeType::Id).unwrap_or_default(),
        private,
        public,
        public_key,
        local: bool_attr(&p, AttributeType::Local).unwrap_or(false),
        // A token that will not say is treated as the unsafe answer.
        sensitive: bool_attr(&p, AttributeType::Sensitive).unwrap_or(false),
        extractable: bool_attr(&p, AttributeType::Extractable).unwrap_or(true),
        always_authenticate: bool_attr(&p, AttributeType::AlwaysAuthenticate).unwrap_or(false),
        label_from_certificate,
    })
}

/// The tufd label recorded in the subject of the certificate with CKA_ID
/// `id`, as the YubiKey store writes it into PIV slots (ykcs11 shows a
/// slot's certificate with the slot's key ID).
fn certificate_label(session: &Session, id: &[u8]) -> Result<Option<KeyLabel>, CkError> {
    let certs = session.find_objects(&[
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::Id(id.to_vec()),
    ])?;
    for cert in certs {
        let attrs = session.get_attributes(cert, &[AttributeType::Subject])?;
        let subject = attrs.iter().find_map(|a| match a {
            Attribute::Subject(v) => Some(v.clone()),
            _ => None,
        });
        if let Some(label) = subject.and_then(|der| crate::yubikey::label_in_subject(&der)) {
            return Ok(Some(label));
        }
    }
    Ok(None)
}

/// Every tufd key pair on the token: private EC keys labelled `tufd:…`
/// with a public key object carrying the same `CKA_ID`. Objects of other
/// applications, and private keys without a public half, are skipped.
pub(super) fn scan(session: &Session) -> Result<Vec<Scanned>, CkError> {
    let privates = session.find_objects(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC),
    ])?;
    let mut out = Vec::new();
    for private in privates {
        let attrs = session.get_attributes(private, &[AttributeType::Label, AttributeType::Id])?;
        let id = bytes_attr(&attrs, AttributeType::Id).unwrap_or_default();
        let own = bytes_attr(&attrs, AttributeType::Label)
            .and_then(|l| String::from_utf8(l).ok())
            .and_then(|l| KeyLabel::from_token_label(&l));
        let (label, given) = match own {
            Some(label) => (label, None),
            None => match certificate_label(session, &id)? {
                Some(label) => (label.clone(), Some(label)),
                None => continue,
            },
        };
        let publics = session.find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Id(id),
        ])?;
        let Some(&public) = publics.first() else {
            tracing::warn!(key = %label, "skipping a tufd private key without its public key object");
            continue;
        };
        match read_pair_labelled(session, private, public, given) {
            Ok(s) => out.push(s),
            Err(CkError::InvalidValue) => {
                tracing::warn!(key = %label, "skipping a tufd key whose public key is not P-256")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_point_round_trips_wrapped_and_raw() {
        let key = SecretKey::from_slice(&[9u8; 32]).unwrap().public_key();
        let wrapped = ec_point(&key);
        assert_eq!(wrapped.len(), 67);
        assert_eq!(parse_ec_point(&wrapped), Some(key));
        assert_eq!(parse_ec_point(&key.to_sec1_bytes()), Some(key));
        assert_eq!(parse_ec_point(&[1, 2, 3]), None);
    }
}
