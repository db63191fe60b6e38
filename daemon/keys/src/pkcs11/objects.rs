//! PKCS#11 object templates and reading tufd's keys back from a token.

use crate::KeyLabel;
use cryptoki::error::Error as CkError;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use p256::pkcs8::EncodePublicKey;
use p256::{PublicKey, SecretKey};
use std::collections::HashMap;
use std::num::NonZeroUsize;

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

/// The start of the `CKA_ID` a key pair carries while tufd generates it
/// (the key's ID depends on its public key, known only once the pair
/// exists). Only objects whose `CKA_ID` starts so are ever updated by a
/// scan: those are tufd's own, left by an interrupted generate.
pub(super) const PENDING_ID_PREFIX: &[u8] = b"tufd-pending:";

/// A placeholder `CKA_ID` for a key pair being generated:
/// [`PENDING_ID_PREFIX`] and 16 random bytes.
pub(super) fn pending_id() -> Vec<u8> {
    let random: [u8; 16] = rand::random();
    [PENDING_ID_PREFIX, &random].concat()
}

/// Whether `ck_id` is a placeholder of [`pending_id`].
pub(super) fn is_pending(ck_id: &[u8]) -> bool {
    ck_id.starts_with(PENDING_ID_PREFIX)
}

/// The protection a private key lacks, as in "not kept {…}" (`None`: it
/// is sensitive and not extractable).
pub(super) fn unprotected(sensitive: bool, extractable: bool) -> Option<&'static str> {
    match (sensitive, extractable) {
        (true, false) => None,
        (false, true) => Some("sensitive and non-extractable"),
        (false, false) => Some("sensitive"),
        (true, true) => Some("non-extractable"),
    }
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

/// The private key attributes tufd reads, in one request per key.
const PRIVATE_ATTRIBUTES: &[AttributeType] = &[
    AttributeType::Label,
    AttributeType::Id,
    AttributeType::Local,
    AttributeType::Sensitive,
    AttributeType::Extractable,
    AttributeType::AlwaysAuthenticate,
];

/// Reads the attributes tufd needs from a private/public pair whose
/// private key carries a tufd label.
pub(super) fn read_pair(
    session: &Session,
    private: ObjectHandle,
    public: ObjectHandle,
) -> Result<Scanned, CkError> {
    let p = session.get_attributes(private, PRIVATE_ATTRIBUTES)?;
    let q = session.get_attributes(public, &[AttributeType::EcPoint])?;
    let label = bytes_attr(&p, AttributeType::Label)
        .and_then(|l| String::from_utf8(l).ok())
        .and_then(|l| KeyLabel::from_token_label(&l))
        .ok_or(CkError::InvalidValue)?;
    let public_key = bytes_attr(&q, AttributeType::EcPoint)
        .and_then(|raw| parse_ec_point(&raw))
        .ok_or(CkError::InvalidValue)?;
    Ok(scanned(&p, label, false, private, public, public_key))
}

/// A [`Scanned`] from the private key's [`PRIVATE_ATTRIBUTES`].
fn scanned(
    p: &[Attribute],
    label: KeyLabel,
    label_from_certificate: bool,
    private: ObjectHandle,
    public: ObjectHandle,
    public_key: PublicKey,
) -> Scanned {
    Scanned {
        label,
        ck_id: bytes_attr(p, AttributeType::Id).unwrap_or_default(),
        private,
        public,
        public_key,
        local: bool_attr(p, AttributeType::Local).unwrap_or(false),
        // A token that will not say is treated as the unsafe answer.
        sensitive: bool_attr(p, AttributeType::Sensitive).unwrap_or(false),
        extractable: bool_attr(p, AttributeType::Extractable).unwrap_or(true),
        always_authenticate: bool_attr(p, AttributeType::AlwaysAuthenticate).unwrap_or(false),
        label_from_certificate,
    }
}

/// Object handles fetched per `C_FindObjects` call while indexing: large,
/// so a token with thousands of objects is listed in a few calls.
const FIND_BATCH: NonZeroUsize = NonZeroUsize::new(1024).expect("non-zero");

/// Every object matching `template`, found in one search with large batches.
fn find_all(session: &Session, template: &[Attribute]) -> Result<Vec<ObjectHandle>, CkError> {
    session
        .iter_objects_with_cache_size(template, FIND_BATCH)?
        .collect()
}

/// The tufd labels recorded in the subjects of the token's certificates,
/// by `CKA_ID`, as the YubiKey store writes them into PIV slots (ykcs11
/// shows a slot's certificate with the slot's key ID). The first
/// certificate with a tufd label wins for an ID.
fn certificate_labels(session: &Session) -> Result<HashMap<Vec<u8>, KeyLabel>, CkError> {
    let mut out = HashMap::new();
    for cert in find_all(session, &[Attribute::Class(ObjectClass::CERTIFICATE)])? {
        let attrs = session.get_attributes(cert, &[AttributeType::Id, AttributeType::Subject])?;
        let id = bytes_attr(&attrs, AttributeType::Id).unwrap_or_default();
        if out.contains_key(&id) {
            continue;
        }
        let subject = attrs.iter().find_map(|a| match a {
            Attribute::Subject(v) => Some(v.as_slice()),
            _ => None,
        });
        if let Some(label) = subject.and_then(crate::yubikey::label_in_subject) {
            out.insert(id, label);
        }
    }
    Ok(out)
}

/// Every tufd key pair on the token: private EC keys labelled `tufd:…`
/// with a public key object carrying the same `CKA_ID`. Objects of other
/// applications, and private keys without a public half, are skipped.
///
/// The token is searched once per object class (private keys, public
/// keys, and certificates only if some private key lacks a tufd label),
/// each search fetching handles in large batches, and each object's
/// attributes are read in one request: the cost grows with the number of
/// objects, not with its square (SoftHSM2 re-reads its object files on
/// every search).
pub(super) fn scan(session: &Session) -> Result<Vec<Scanned>, CkError> {
    let privates = find_all(
        session,
        &[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
        ],
    )?;
    let publics = find_all(
        session,
        &[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC),
        ],
    )?;
    // The first public key object found with an ID is that ID's public half.
    let mut public_by_id: HashMap<Vec<u8>, (ObjectHandle, Option<Vec<u8>>)> =
        HashMap::with_capacity(publics.len());
    for public in publics {
        let attrs = session.get_attributes(public, &[AttributeType::Id, AttributeType::EcPoint])?;
        let id = bytes_attr(&attrs, AttributeType::Id).unwrap_or_default();
        public_by_id
            .entry(id)
            .or_insert_with(|| (public, bytes_attr(&attrs, AttributeType::EcPoint)));
    }
    let mut certificates: Option<HashMap<Vec<u8>, KeyLabel>> = None;
    let mut out = Vec::new();
    for private in privates {
        let p = session.get_attributes(private, PRIVATE_ATTRIBUTES)?;
        let id = bytes_attr(&p, AttributeType::Id).unwrap_or_default();
        let own = bytes_attr(&p, AttributeType::Label)
            .and_then(|l| String::from_utf8(l).ok())
            .and_then(|l| KeyLabel::from_token_label(&l));
        let (label, label_from_certificate) = match own {
            Some(label) => (label, false),
            None => {
                if certificates.is_none() {
                    certificates = Some(certificate_labels(session)?);
                }
                match certificates.as_ref().and_then(|c| c.get(&id)) {
                    Some(label) => (label.clone(), true),
                    None => continue,
                }
            }
        };
        let Some((public, point)) = public_by_id.get(&id) else {
            tracing::warn!(key = %label, "skipping a tufd private key without its public key object");
            continue;
        };
        let Some(public_key) = point.as_deref().and_then(parse_ec_point) else {
            tracing::warn!(key = %label, "skipping a tufd key whose public key is not P-256");
            continue;
        };
        out.push(scanned(
            &p,
            label,
            label_from_certificate,
            private,
            *public,
            public_key,
        ));
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

    #[test]
    fn only_placeholder_ids_are_pending() {
        assert!(is_pending(&pending_id()));
        assert_ne!(pending_id(), pending_id());
        // Another program's IDs, including 16 random bytes as tufd used
        // to write, are never taken for tufd's.
        assert!(!is_pending(&[0u8; 16]));
        assert!(!is_pending(b"\x01\x02"));
        assert!(!is_pending(&[0xab; 32]));
    }

    #[test]
    fn only_sensitive_non_extractable_keys_are_protected() {
        assert_eq!(unprotected(true, false), None);
        assert!(unprotected(true, true).is_some());
        assert!(unprotected(false, false).is_some());
        assert!(unprotected(false, true).is_some());
    }
}
