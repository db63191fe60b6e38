//! Root certificate validation as notary applies it to every root
//! (`trustpinning/certs.go: ValidateRoot`, `utils.ValidateCertificate`):
//! leaf first and not a CA, CN equal to the GUN (or a `*` wildcard prefix),
//! within its validity window, no SHA-1 signature.

use der::asn1::ObjectIdentifier;
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::ext::pkix::BasicConstraints;

use crate::error::{Error, Result};
use crate::metadata::Root;
use crate::role::RoleName;

const SHA1_SIGNATURE_OIDS: [ObjectIdentifier; 3] = [
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5"), // sha1WithRSAEncryption
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.1"),    // ecdsa-with-SHA1
    ObjectIdentifier::new_unwrap("1.2.840.10040.4.3"),    // dsa-with-sha1
];

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

/// Checks one root certificate (the leaf of a root key) for `gun` at `now`.
pub fn check_root_certificate(cert: &Certificate, gun: &str, now: OffsetDateTime) -> Result<()> {
    let cn = common_name(cert).unwrap_or_default();
    if !cn_matches_gun(&cn, gun) {
        return Err(Error::InvalidRoot(format!(
            "root certificate CN {cn:?} does not match the repository name {gun:?}"
        )));
    }
    let tbs = cert.tbs_certificate();
    if let Ok(Some((_, bc))) = tbs.get_extension::<BasicConstraints>()
        && bc.ca
    {
        return Err(Error::InvalidRoot(format!(
            "root certificate for {cn:?} is a CA certificate; notary needs a leaf certificate first"
        )));
    }
    let validity = tbs.validity();
    let not_after = validity.not_after.to_unix_duration().as_secs() as i64;
    let not_before = validity.not_before.to_unix_duration().as_secs() as i64;
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
    if SHA1_SIGNATURE_OIDS.contains(&cert.signature_algorithm().oid) {
        return Err(Error::InvalidRoot(format!(
            "root certificate for {cn:?} is signed with SHA-1, which notary rejects"
        )));
    }
    Ok(())
}

/// Checks the certificates of every key of the root role.
pub fn check_root_certificates(root: &Root, gun: &str, now: OffsetDateTime) -> Result<()> {
    let (keys, _) = root.role_keys(&RoleName::Root)?;
    for (keyid, key) in &keys {
        if !key.keytype().is_x509() {
            return Err(Error::InvalidRoot(format!(
                "root key {keyid} is a {} key; notary root keys must be x509 certificates",
                key.keytype()
            )));
        }
        let certs = key.certificates()?;
        let leaf = certs
            .first()
            .ok_or_else(|| Error::InvalidRoot(format!("root key {keyid} holds no certificate")))?;
        check_root_certificate(leaf, gun, now)?;
    }
    Ok(())
}
