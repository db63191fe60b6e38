//! The checks the TUF 1.0 client workflow makes on each metadata file, as
//! pure functions: parsing (spec_version, one signature per key ID),
//! thresholds of distinct keys, lengths and hashes, expiry, and the shape
//! of delegations.

use std::collections::{BTreeMap, HashSet};

use sha2::{Digest, Sha256, Sha512};
use time::OffsetDateTime;
use tufd_tuf1::metadata::canonical_signed_of_bytes;
use tufd_tuf1::{Key, MetaFile, Metadata, Role, Root, Targets, verify};

use super::updater::{UpdateError, invalid};

/// A role's metadata with its bytes.
pub(super) struct Trusted<T> {
    pub(super) md: Metadata<T>,
    pub(super) bytes: Vec<u8>,
}

pub(super) fn parse<T: Role>(role: &str, bytes: &[u8]) -> Result<Trusted<T>, UpdateError> {
    let md = Metadata::<T>::from_bytes(bytes).map_err(|e| invalid(role, e.to_string()))?;
    // Metadata of another major version of the specification is refused
    // (as python-tuf does): its fields may mean something else.
    let spec = &md.signed.common().spec_version;
    let parts: Vec<&str> = spec.split('.').collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !(2..=3).contains(&parts.len()) || !numeric || parts[0] != "1" {
        return Err(invalid(
            role,
            format!("spec_version {spec:?}: this client reads TUF 1.x"),
        ));
    }
    // The specification: a key ID appears at most once among signatures.
    let mut keyids = HashSet::new();
    if let Some(dup) = md.signatures.iter().find(|s| !keyids.insert(&s.keyid)) {
        return Err(invalid(
            role,
            format!("two signatures with key ID {}", dup.keyid),
        ));
    }
    Ok(Trusted {
        md,
        bytes: bytes.to_vec(),
    })
}

/// Checks a targets role's delegations the way python-tuf does when it
/// parses them: roles or hash bins (not both), each role with paths or
/// hash prefixes (exactly one), unique names that are not top-level roles.
pub(super) fn check_delegations(role: &str, t: &Targets) -> Result<(), UpdateError> {
    let Some(d) = &t.delegations else {
        return Ok(());
    };
    let bad = |why: String| Err(invalid(role, format!("delegations: {why}")));
    if d.roles.is_some() == d.succinct_roles.is_some() {
        return bad("exactly one of roles and succinct_roles must be set".into());
    }
    if let Some(s) = &d.succinct_roles
        && !(1..=32).contains(&s.bit_length)
    {
        return bad(format!("bit_length {} is not 1 to 32", s.bit_length));
    }
    let mut names = HashSet::new();
    for r in d.roles.iter().flatten() {
        if r.paths.is_some() == r.path_hash_prefixes.is_some() {
            return bad(format!(
                "{}: exactly one of paths and path_hash_prefixes must be set",
                r.name
            ));
        }
        if ["root", "targets", "snapshot", "timestamp"].contains(&r.name.as_str()) {
            return bad(format!("{}: a top-level role name", r.name));
        }
        if !names.insert(r.name.as_str()) {
            return bad(format!("{} is delegated twice", r.name));
        }
    }
    Ok(())
}

/// Checks that `threshold` distinct keys among `keyids` signed `bytes`.
pub(super) fn check_sigs(
    role: &str,
    bytes: &[u8],
    signatures: &[tufd_tuf1::Signature],
    keys: &BTreeMap<String, Key>,
    keyids: &[String],
    threshold: u64,
) -> Result<(), UpdateError> {
    let message = canonical_signed_of_bytes(bytes).map_err(|e| invalid(role, e.to_string()))?;
    verify::check_threshold(role, &message, signatures, keys, keyids, threshold)
        .map_err(|e| invalid(role, e.to_string()))
}

pub(super) fn check_by_root<T: Role>(
    root: &Root,
    role: &str,
    t: &Trusted<T>,
) -> Result<(), UpdateError> {
    let r = root
        .roles
        .get(role)
        .ok_or_else(|| invalid(role, "root lists no such role"))?;
    check_sigs(
        role,
        &t.bytes,
        &t.md.signatures,
        &root.keys,
        &r.keyids,
        r.threshold,
    )
}

pub(super) fn check_meta(role: &str, bytes: &[u8], meta: &MetaFile) -> Result<(), UpdateError> {
    if let Some(len) = meta.length
        && bytes.len() as u64 != len
    {
        return Err(invalid(
            role,
            format!("{} bytes, the referring metadata says {len}", bytes.len()),
        ));
    }
    check_hashes(role, bytes, meta.hashes.as_ref())
}

pub(super) fn check_hashes(
    what: &str,
    bytes: &[u8],
    hashes: Option<&BTreeMap<String, String>>,
) -> Result<(), UpdateError> {
    // Every listed hash must match: one this client cannot compute fails
    // (as python-tuf does) rather than being skipped.
    for (alg, want) in hashes.into_iter().flatten() {
        let got = match alg.as_str() {
            "sha256" => hex::encode(Sha256::digest(bytes)),
            "sha512" => hex::encode(Sha512::digest(bytes)),
            _ => return Err(invalid(what, format!("unsupported hash algorithm {alg:?}"))),
        };
        if !got.eq_ignore_ascii_case(want) {
            return Err(invalid(what, format!("{alg} mismatch")));
        }
    }
    Ok(())
}

pub(super) fn check_fresh<T: Role>(
    role: &str,
    t: &Trusted<T>,
    now: OffsetDateTime,
) -> Result<(), UpdateError> {
    if t.md.signed.common().expires.is_expired(now) {
        return Err(invalid(
            role,
            format!(
                "expired at {} (a freeze attack or stale repository)",
                t.md.signed.common().expires
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tufd_tuf1::Timestamp;
    /// An unsigned, empty timestamp.
    fn timestamp() -> Metadata<Timestamp> {
        Metadata::new(Timestamp {
            common: tufd_tuf1::metadata::Common::new(
                "timestamp",
                tufd_tuf1::metadata::Expires::at(OffsetDateTime::UNIX_EPOCH),
            ),
            meta: BTreeMap::new(),
            unrecognized: Default::default(),
        })
    }

    #[test]
    fn a_key_id_signing_twice_is_refused() {
        let md = timestamp();
        let sig = tufd_tuf1::Signature {
            keyid: "ab".repeat(32),
            sig: "00".into(),
            unrecognized: Default::default(),
        };
        let mut once = md.clone();
        once.signatures = vec![sig.clone()];
        assert!(parse::<Timestamp>("timestamp", &once.to_bytes().unwrap()).is_ok());
        let mut twice = md;
        twice.signatures = vec![sig.clone(), sig];
        let err = parse::<Timestamp>("timestamp", &twice.to_bytes().unwrap())
            .err()
            .expect("refused");
        assert!(err.to_string().contains("two signatures"), "{err}");
    }

    #[test]
    fn other_major_spec_versions_are_refused() {
        let bytes = |spec: &str| {
            let mut md = timestamp();
            md.signed.common.spec_version = spec.to_owned();
            md.to_bytes().unwrap()
        };
        for ok in ["1.0.31", "1.0", "1.99.0"] {
            assert!(parse::<Timestamp>("timestamp", &bytes(ok)).is_ok(), "{ok}");
        }
        for bad in ["2.0.0", "1", "1.0.0.0", "1.x.0", "", "v1.0.0"] {
            let err = parse::<Timestamp>("timestamp", &bytes(bad))
                .err()
                .expect(bad);
            assert!(err.to_string().contains("reads TUF 1.x"), "{bad}: {err}");
        }
    }

    #[test]
    fn malformed_delegations_are_refused() {
        let role = |name: &str, paths: bool, prefixes: bool| {
            serde_json::json!({
                "name": name, "keyids": [], "threshold": 1, "terminating": false,
            })
            .as_object()
            .cloned()
            .map(|mut o| {
                if paths {
                    o.insert("paths".into(), serde_json::json!(["a/*"]));
                }
                if prefixes {
                    o.insert("path_hash_prefixes".into(), serde_json::json!(["ab"]));
                }
                serde_json::Value::Object(o)
            })
            .unwrap()
        };
        let targets = |delegations: serde_json::Value| -> Targets {
            serde_json::from_value(serde_json::json!({
                "_type": "targets", "spec_version": "1.0.31", "version": 1,
                "expires": "2030-01-01T00:00:00Z", "targets": {},
                "delegations": delegations,
            }))
            .unwrap()
        };
        let bins = serde_json::json!({
            "bit_length": 4, "name_prefix": "bins", "keyids": [], "threshold": 1,
        });
        let good = targets(serde_json::json!({"keys": {}, "roles": [role("a", true, false)]}));
        assert!(check_delegations("targets", &good).is_ok());
        let good_bins = targets(serde_json::json!({"keys": {}, "succinct_roles": bins}));
        assert!(check_delegations("targets", &good_bins).is_ok());
        for (d, why) in [
            (serde_json::json!({"keys": {}}), "exactly one of roles"),
            (
                serde_json::json!({"keys": {}, "roles": [], "succinct_roles": bins}),
                "exactly one of roles",
            ),
            (
                serde_json::json!({"keys": {}, "roles": [role("a", true, true)]}),
                "exactly one of paths",
            ),
            (
                serde_json::json!({"keys": {}, "roles": [role("a", false, false)]}),
                "exactly one of paths",
            ),
            (
                serde_json::json!({"keys": {}, "roles": [role("snapshot", true, false)]}),
                "top-level role name",
            ),
            (
                serde_json::json!({"keys": {}, "roles": [role("a", true, false), role("a", false, true)]}),
                "delegated twice",
            ),
        ] {
            let err = check_delegations("targets", &targets(d.clone())).unwrap_err();
            assert!(err.to_string().contains(why), "{d}: {err}");
        }
    }

    #[test]
    fn every_listed_hash_must_be_computable_and_match() {
        let data = b"target";
        let sha256 = hex::encode(Sha256::digest(data));
        let hashes = |alg: &str, h: &str| BTreeMap::from([(alg.to_owned(), h.to_owned())]);
        assert!(check_hashes("t", data, Some(&hashes("sha256", &sha256))).is_ok());
        assert!(check_hashes("t", b"other", Some(&hashes("sha256", &sha256))).is_err());
        let err = check_hashes("t", data, Some(&hashes("unknown-hash", &sha256))).unwrap_err();
        assert!(
            err.to_string().contains("unsupported hash algorithm"),
            "{err}"
        );
    }
}
