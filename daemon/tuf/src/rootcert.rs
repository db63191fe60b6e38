//! Root certificate validation as notary applies it to every root
//! (`trustpinning/certs.go: ValidateRoot`, `utils.ValidateCertificate`).
//!
//! Of the root role's keys, notary trusts those whose PEM bundle starts with
//! the one leaf (non-CA) certificate, whose CN equals the GUN (or is a `*`
//! wildcard prefix of it), with a sane validity window (checked against the
//! clock only for the root being accepted, not for the previously trusted
//! root) and no SHA-1 signature. It rebuilds each key from the parsed
//! certificates in Go's PEM layout and verifies root signatures with those.

use std::collections::BTreeMap;

use der::Encode;
use der::asn1::ObjectIdentifier;
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::ext::pkix::BasicConstraints;

use crate::error::{Error, Result};
use crate::key::{Key, KeyType};
use crate::metadata::Root;
use crate::pem::certificate_pem;

const SHA1_SIGNATURE_OIDS: [ObjectIdentifier; 3] = [
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5"), // sha1WithRSAEncryption
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.1"),    // ecdsa-with-SHA1
    ObjectIdentifier::new_unwrap("1.2.840.10040.4.3"),    // dsa-with-sha1
];
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// Whether a certificate CN names `gun`: equal, or ending in `*` and a prefix of it.
pub fn cn_matches_gun(cn: &str, gun: &str) -> bool {
    match cn.strip_suffix('*') {
        Some(prefix) => gun.starts_with(prefix),
        None => cn == gun,
    }
}

/// The subject CN of a certificate, if it has one.
pub fn common_name(cert: &Certificate) -> Option<String> {
    cert.tbs_certificate()
        .subject()
        .common_name()
        .ok()
        .flatten()
        .map(String::from)
}

/// Whether the certificate is a CA (BasicConstraints CA:TRUE).
pub fn is_ca(cert: &Certificate) -> bool {
    matches!(
        cert.tbs_certificate().get_extension::<BasicConstraints>(),
        Ok(Some((_, bc))) if bc.ca
    )
}

/// Checks one leaf root certificate for `gun`; with `now`, also that it is
/// valid at `now` (one day of leeway on NotBefore, as notary allows).
pub fn check_root_certificate(
    cert: &Certificate,
    gun: &str,
    now: Option<OffsetDateTime>,
) -> Result<()> {
    let cn = common_name(cert).unwrap_or_default();
    if !cn_matches_gun(&cn, gun) {
        return Err(Error::InvalidRoot(format!(
            "root certificate CN {cn:?} does not match the repository name {gun:?}"
        )));
    }
    if is_ca(cert) {
        return Err(Error::InvalidRoot(format!(
            "root certificate for {cn:?} is a CA certificate; notary needs a leaf certificate first"
        )));
    }
    let validity = cert.tbs_certificate().validity();
    let not_after = validity.not_after.to_unix_duration().as_secs() as i64;
    let not_before = validity.not_before.to_unix_duration().as_secs() as i64;
    if not_before > not_after {
        return Err(Error::InvalidRoot(format!(
            "root certificate for {cn:?} has an invalid validity window"
        )));
    }
    if SHA1_SIGNATURE_OIDS.contains(&cert.signature_algorithm().oid) {
        return Err(Error::InvalidRoot(format!(
            "root certificate for {cn:?} is signed with SHA-1, which notary rejects"
        )));
    }
    if let Some(now) = now {
        if now.unix_timestamp() > not_after {
            return Err(Error::InvalidRoot(format!(
                "root certificate for {cn:?} expired at {}; rotate the root key",
                validity.not_after
            )));
        }
        if not_before > now.unix_timestamp() + 86_400 {
            return Err(Error::InvalidRoot(format!(
                "root certificate for {cn:?} is not valid before {}",
                validity.not_before
            )));
        }
    }
    Ok(())
}

/// Rebuilds an x509 key object from certificates exactly as notary does
/// (`utils.CertsToKeys`): leaf then intermediates, Go PEM layout.
pub fn key_from_certificates(leaf: &Certificate, intermediates: &[&Certificate]) -> Result<Key> {
    let keytype = match leaf
        .tbs_certificate()
        .subject_public_key_info()
        .algorithm
        .oid
    {
        oid if oid == OID_EC_PUBLIC_KEY => KeyType::EcdsaX509,
        oid if oid == OID_RSA => KeyType::RsaX509,
        oid => {
            return Err(Error::Certificate(format!(
                "unsupported certificate key algorithm {oid}"
            )));
        }
    };
    let mut pem = String::new();
    for cert in std::iter::once(leaf).chain(intermediates.iter().copied()) {
        let der = cert
            .to_der()
            .map_err(|e| Error::Certificate(e.to_string()))?;
        pem.push_str(&certificate_pem(&der));
    }
    Ok(Key::new(keytype, pem.into_bytes()))
}

/// The root-role keys notary would trust in `root` for `gun`, keyed by the
/// ID of the rebuilt key (which root signatures must carry). `now` enables
/// the expiry check (omit it for the previously trusted root during a
/// rotation). Fails when no root key qualifies, listing why.
pub fn trusted_root_keys(
    root: &Root,
    gun: &str,
    now: Option<OffsetDateTime>,
) -> Result<BTreeMap<String, Key>> {
    let entry = root
        .roles
        .get("root")
        .ok_or_else(|| Error::InvalidRoot("no root role in root.roles".into()))?;
    let mut trusted = BTreeMap::new();
    let mut problems = Vec::new();
    for keyid in &entry.keyids {
        let Some(key) = root.keys.get(keyid) else {
            problems.push(format!("{keyid}: not in root.keys"));
            continue;
        };
        if !key.keytype().is_x509() {
            problems.push(format!(
                "{keyid}: a {} key, not a certificate",
                key.keytype()
            ));
            continue;
        }
        let certs = match key.certificates() {
            Ok(c) => c,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        let leaves: Vec<&Certificate> = certs.iter().filter(|c| !is_ca(c)).collect();
        if leaves.len() != 1 || certs.first().is_none_or(is_ca) {
            problems.push(format!(
                "{keyid}: the bundle must start with exactly one leaf certificate"
            ));
            continue;
        }
        let leaf = leaves[0];
        if let Err(e) = check_root_certificate(leaf, gun, now) {
            let reason = match e {
                Error::InvalidRoot(msg) => msg,
                other => other.to_string(),
            };
            problems.push(format!("key {keyid}: {reason}"));
            continue;
        }
        let intermediates: Vec<&Certificate> = certs.iter().filter(|c| is_ca(c)).collect();
        match key_from_certificates(leaf, &intermediates) {
            Ok(rebuilt) => {
                trusted.insert(rebuilt.id(), rebuilt);
            }
            Err(e) => problems.push(format!("{keyid}: {e}")),
        }
    }
    if trusted.is_empty() {
        return Err(Error::InvalidRoot(format!(
            "no root key has a valid certificate for {gun:?} ({})",
            problems.join("; ")
        )));
    }
    Ok(trusted)
}

/// Checks that at least one root-role key has a certificate valid for `gun` at `now`.
pub fn check_root_certificates(root: &Root, gun: &str, now: OffsetDateTime) -> Result<()> {
    trusted_root_keys(root, gun, Some(now)).map(|_| ())
}
