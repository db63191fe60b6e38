//! Tests against metadata written by the real tools: notary 0.7.0 CLI,
//! notary-server 0.7.0 (ecdsa and ed25519 server keys) and docker CLI 28
//! (`docker trust signer add`). See `fixtures/README.md` for how they were made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::macros::datetime;
use tufd_tuf::canonical::canonicalize;
use tufd_tuf::pem::certificate_pem;
use tufd_tuf::repo::{RepositoryFiles, verify_repository};
use tufd_tuf::verify::{check_key_ids, verify_signature, verify_threshold};
use tufd_tuf::{Error, Key, KeyType, Metadata, Root, Signed, Snapshot, Targets, Timestamp};

/// A time at which every fixture is valid (they were made 2026-11-25 ~16:05 UTC;
/// the timestamps expire 2026-12-09).
const NOW: OffsetDateTime = datetime!(2026-11-26 00:00 UTC);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fx(rel: &str) -> bytes::Bytes {
    std::fs::read(fixtures().join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .into()
}

fn all_fixture_files() -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(
                    path.strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(&fixtures(), &fixtures(), &mut out);
    out.sort();
    assert!(out.len() >= 30, "fixtures missing: {out:?}");
    out
}

fn type_of(bytes: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    v["signed"]["_type"].as_str().unwrap().to_owned()
}

/// Parses a file as its type and returns (canonical bytes, re-emitted envelope, signatures).
fn parse_any(bytes: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<tufd_tuf::Signature>) {
    fn go<T: Metadata>(b: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<tufd_tuf::Signature>) {
        let s = Signed::<T>::from_bytes(b).unwrap();
        assert_eq!(s.bytes(), b);
        (
            s.canonical_bytes().to_vec(),
            s.to_envelope(),
            s.signatures().to_vec(),
        )
    }
    match type_of(bytes).as_str() {
        "Root" => go::<Root>(bytes),
        "Targets" => go::<Targets>(bytes),
        "Snapshot" => go::<Snapshot>(bytes),
        "Timestamp" => go::<Timestamp>(bytes),
        t => panic!("unknown _type {t}"),
    }
}

/// Every key of every root and delegation map in the fixtures, by listed ID.
fn all_keys() -> BTreeMap<String, Key> {
    let mut keys = BTreeMap::new();
    for f in all_fixture_files() {
        let bytes = fx(&f);
        match type_of(&bytes).as_str() {
            "Root" => keys.extend(
                Signed::<Root>::from_bytes(&bytes)
                    .unwrap()
                    .into_signed()
                    .keys,
            ),
            "Targets" => keys.extend(
                Signed::<Targets>::from_bytes(&bytes)
                    .unwrap()
                    .into_signed()
                    .delegations
                    .keys,
            ),
            _ => {}
        }
    }
    keys
}

#[test]
fn every_file_reemits_byte_for_byte() {
    for f in all_fixture_files() {
        let bytes = fx(&f);
        let (_, envelope, _) = parse_any(&bytes);
        assert_eq!(
            String::from_utf8_lossy(&envelope),
            String::from_utf8_lossy(&bytes),
            "{f} does not re-emit byte for byte"
        );
    }
}

#[test]
fn typed_model_reencodes_to_the_signed_bytes() {
    // The typed structs must encode to exactly the canonical form notary signed,
    // otherwise metadata we build from them would differ from notary's.
    fn check<T: Metadata>(f: &str, bytes: &[u8]) {
        let s = Signed::<T>::from_bytes(bytes).unwrap();
        let re = canonicalize(&s.signed().to_json_value().unwrap()).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&re),
            String::from_utf8_lossy(s.canonical_bytes()),
            "{f}"
        );
    }
    for f in all_fixture_files() {
        let bytes = fx(&f);
        match type_of(&bytes).as_str() {
            "Root" => check::<Root>(&f, &bytes),
            "Targets" => check::<Targets>(&f, &bytes),
            "Snapshot" => check::<Snapshot>(&f, &bytes),
            _ => check::<Timestamp>(&f, &bytes),
        }
    }
}

#[test]
fn every_signature_verifies_and_every_key_id_recomputes() {
    let keys = all_keys();
    check_key_ids(&keys).unwrap();
    let mut methods = BTreeMap::new();
    let mut count = 0;
    for f in all_fixture_files() {
        let bytes = fx(&f);
        let (canonical, _, sigs) = parse_any(&bytes);
        assert!(!sigs.is_empty(), "{f} has no signatures");
        for sig in sigs {
            let key = keys
                .get(&sig.keyid)
                .unwrap_or_else(|| panic!("{f}: no key {}", sig.keyid));
            verify_signature(key, &sig, &canonical).unwrap_or_else(|e| panic!("{f}: {e}"));
            *methods.entry(sig.method.clone()).or_insert(0) += 1;
            count += 1;
            // The escaped file bytes are NOT what was signed when they differ.
            let start = bytes
                .windows(10)
                .position(|w| w == b"\"signed\":{")
                .unwrap()
                + 9;
            let escaped = &bytes[start..start + canonical.len()];
            if escaped != canonical.as_slice() {
                assert!(verify_signature(key, &sig, escaped).is_err());
            }
        }
    }
    assert!(count >= 35, "only {count} signatures");
    assert!(
        methods.contains_key("ecdsa") && methods.contains_key("eddsa"),
        "{methods:?}"
    );
}

#[test]
fn html_escaping_in_the_file_but_not_in_the_signed_bytes() {
    let bytes = fx("notary/targets.json");
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.contains(r#""a\u003cb\u003e\u0026c""#));
    assert!(text.contains("ümlaut-€uro"));
    let s = Signed::<Targets>::from_bytes(&bytes).unwrap();
    let canonical = String::from_utf8(s.canonical_bytes().to_vec()).unwrap();
    assert!(canonical.contains(r#""a<b>&c""#));
    assert!(s.signed().targets.contains_key("a<b>&c"));
    assert!(s.signed().targets.contains_key("ümlaut-€uro"));
    // addhash --sha256 writes only sha256; add writes sha256 and sha512
    assert_eq!(s.signed().targets["only-sha256"].hashes.len(), 1);
    assert_eq!(s.signed().targets["hello"].hashes.len(), 2);
    assert_eq!(
        s.signed().targets["hello"].hashes,
        tufd_tuf::Hashes::of(b"hello\n")
    );
}

#[test]
fn key_ids_match_what_the_tools_print() {
    // Canonical IDs printed by `notary key list` / `notary delegation add`,
    // cert IDs printed by `docker trust inspect` (see fixtures/README.md).
    let root2 = Signed::<Root>::from_bytes(&fx("notary/2.root.json"))
        .unwrap()
        .into_signed();
    let canonical: Vec<String> = root2
        .keys
        .values()
        .filter(|k| k.keytype() == KeyType::EcdsaX509)
        .map(|k| k.canonical_id().unwrap())
        .collect();
    assert!(
        canonical
            .contains(&"955354123cd5a5a8109537477f13d80dc1fa1a008e4b785419e2c932779ff27c".into())
    );
    assert!(
        canonical
            .contains(&"9b1712a0f83af00ec506b4c99af8e86f6b65e7568f38486fb7d9d430d0651ce7".into())
    );

    let targets = Signed::<Targets>::from_bytes(&fx("notary/targets.json"))
        .unwrap()
        .into_signed();
    let rel = targets.delegations.role("targets/releases").unwrap();
    let qa = targets.delegations.role("targets/qa").unwrap();
    assert_eq!(rel.paths, vec![String::new()]);
    assert_eq!(qa.paths, vec!["qa/".to_owned(), "test/".to_owned()]);
    let rel_key = &targets.delegations.keys[&rel.keyids[0]];
    assert_eq!(rel_key.keytype(), KeyType::EcdsaX509);
    assert_eq!(
        rel_key.canonical_id().unwrap(),
        "57b5054317d0509d2c5e1e73e87585d61b9a7d798e3c3a46ba642e07ee7ad00a"
    );
    let qa_key = &targets.delegations.keys[&qa.keyids[0]];
    assert_eq!(
        qa_key.canonical_id().unwrap(),
        "ff9ba14616faa8089323d6d4bd6fa48e10d10107fc7c9fa9efab39e4364d4480"
    );

    let droot = Signed::<Root>::from_bytes(&fx("docker/root.json"))
        .unwrap()
        .into_signed();
    let root_id = &droot.roles["root"].keyids[0];
    assert_eq!(
        root_id,
        "e082f1256b17d1a8f7ef6911092794995e4c26591b860d0ce3e4e9bf974cff59"
    );
    assert_eq!(
        droot.keys[root_id].canonical_id().unwrap(),
        "3e14e517d03bc72c51fb5929d0bbd0bf67415b903305e4c3e2aceff5c3c22334"
    );
    assert_eq!(
        droot.roles["targets"].keyids[0],
        "9cd8371cf17bead6f6c39a8c0972876980bcad421e80e91e86b09794d9b3d43a"
    );
    // docker signer keys are plain ecdsa: id == ecdsa_key_id(spki)
    let dt = Signed::<Targets>::from_bytes(&fx("docker/targets.json"))
        .unwrap()
        .into_signed();
    let alice =
        &dt.delegations.keys["984fa19f22f0fac6d95acc69c26632a5074662fff4771ffa5c6e0600e9fbedab"];
    assert_eq!(alice.keytype(), KeyType::Ecdsa);
    assert_eq!(tufd_tuf::keyid::ecdsa_key_id(alice.public()), alice.id());
}

#[test]
fn certificate_pems_are_in_go_layout() {
    let mut n = 0;
    for (id, key) in all_keys() {
        if key.keytype().is_x509() {
            let certs = key.certificates().unwrap();
            let der = der::Encode::to_der(&certs[0]).unwrap();
            assert_eq!(certificate_pem(&der).as_bytes(), key.public(), "{id}");
            assert_eq!(
                Key::new(key.keytype(), certificate_pem(&der).into_bytes()).id(),
                id
            );
            let rebuilt = tufd_tuf::rootcert::key_from_certificates(&certs[0], &[]).unwrap();
            assert_eq!(rebuilt.id(), id);
            n += 1;
        }
    }
    assert!(n >= 5, "{n}");
}

fn notary_repo() -> (Signed<Root>, RepositoryFiles) {
    let trusted = Signed::<Root>::from_bytes(&fx("history/1.root.json")).unwrap();
    let mut delegations = BTreeMap::new();
    delegations.insert(
        "targets/releases".to_owned(),
        fx("notary/targets/releases.json"),
    );
    delegations.insert("targets/qa".to_owned(), fx("notary/targets/qa.json"));
    let files = RepositoryFiles {
        root_chain: vec![fx("history/2.root.json"), fx("history/3.root.json")],
        timestamp: fx("notary/timestamp.json"),
        snapshot: fx("notary/snapshot.json"),
        targets: fx("notary/targets.json"),
        delegations,
        parsed: Default::default(),
    };
    (trusted, files)
}

const GUN: &str = "example.com/tufd/app";

#[test]
fn notary_repository_verifies_with_root_rotations() {
    let (trusted, files) = notary_repo();
    let repo = verify_repository(&trusted, &files, GUN, NOW).unwrap();
    assert_eq!(repo.root.signed().version, 3);
    assert_eq!(repo.root.bytes(), &fx("notary/root.json")[..]);
    let resolved: BTreeMap<String, String> = repo
        .resolved_targets()
        .into_iter()
        .map(|t| (t.name, t.role))
        .collect();
    let expected: BTreeMap<String, String> = [
        ("a<b>&c", "targets"),
        ("after-rotate", "targets"),
        ("hello", "targets"),
        ("only-sha256", "targets"),
        ("qa/build-1", "targets/qa"),
        ("v1.0", "targets/releases"),
        ("ümlaut-€uro", "targets"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    // identical to `notary list` output in fixtures/README.md
    assert_eq!(resolved, expected);
    // One by one, the same roles and metas.
    for t in repo.resolved_targets() {
        assert_eq!(repo.resolve(&t.name), Some((t.role.as_str(), &t.meta)));
    }
    assert_eq!(repo.resolve("not-signed"), None);

    // The current root alone is also a valid trust anchor.
    let current = Signed::<Root>::from_bytes(&fx("notary/root.json")).unwrap();
    let files2 = RepositoryFiles {
        root_chain: vec![],
        ..files
    };
    verify_repository(&current, &files2, GUN, NOW).unwrap();
}

#[test]
fn docker_and_ed25519_repositories_verify() {
    let root = Signed::<Root>::from_bytes(&fx("docker/root.json")).unwrap();
    let mut delegations = BTreeMap::new();
    delegations.insert(
        "targets/releases".to_owned(),
        fx("docker/targets/releases.json"),
    );
    let files = RepositoryFiles {
        root_chain: vec![],
        timestamp: fx("docker/timestamp.json"),
        snapshot: fx("docker/snapshot.json"),
        targets: fx("docker/targets.json"),
        delegations,
        parsed: Default::default(),
    };
    let repo = verify_repository(&root, &files, "localhost:5000/library/app", NOW).unwrap();
    let v1 = repo
        .resolved_targets()
        .into_iter()
        .find(|t| t.name == "v1")
        .unwrap();
    assert_eq!(v1.role, "targets/releases");
    assert_eq!(v1.meta.length, 527);
    assert_eq!(
        hex::encode(v1.meta.hashes.get("sha256").unwrap()),
        "0f8b2d4e2a1c5b6e7d8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d"
    );

    let root = Signed::<Root>::from_bytes(&fx("ed25519/root.json")).unwrap();
    let files = RepositoryFiles {
        root_chain: vec![],
        timestamp: fx("ed25519/timestamp.json"),
        snapshot: fx("ed25519/snapshot.json"),
        targets: fx("ed25519/targets.json"),
        delegations: BTreeMap::new(),
        parsed: Default::default(),
    };
    let repo = verify_repository(&root, &files, "example.com/tufd/ed", NOW).unwrap();
    let ts_key = &repo.root.signed().roles["timestamp"].keyids[0];
    assert_eq!(repo.root.signed().keys[ts_key].keytype(), KeyType::Ed25519);
}

// ---- tampering ---------------------------------------------------------------

fn verify_err(trusted: &Signed<Root>, files: &RepositoryFiles) -> Error {
    verify_repository(trusted, files, GUN, NOW).expect_err("tampered repository verified")
}

#[test]
fn one_flipped_byte_in_targets_is_caught_by_the_snapshot_hash() {
    let (trusted, mut files) = notary_repo();
    let pos = files
        .targets
        .windows(5)
        .position(|w| w == b"hello")
        .unwrap();
    let mut v = files.targets.to_vec();
    v[pos] = b'j';
    files.targets = v.into();
    match verify_err(&trusted, &files) {
        Error::HashMismatch { role, .. } => assert_eq!(role, "targets"),
        e => panic!("unexpected: {e}"),
    }
}

#[test]
fn every_single_byte_flip_in_the_timestamp_is_caught() {
    let root = Signed::<Root>::from_bytes(&fx("notary/root.json")).unwrap();
    let (keys, threshold) = root
        .signed()
        .role_keys(&tufd_tuf::RoleName::Timestamp)
        .unwrap();
    let original = fx("notary/timestamp.json");
    let orig = Signed::<Timestamp>::from_bytes(&original).unwrap();
    verify_threshold("timestamp", &orig, &keys, threshold).unwrap();
    let mut caught = 0;
    for i in 0..original.len() {
        let mut bytes = original.to_vec();
        bytes[i] ^= 0x01;
        let Ok(new) = Signed::<Timestamp>::from_bytes(&bytes) else {
            caught += 1;
            continue;
        };
        if verify_threshold("timestamp", &new, &keys, threshold).is_ok() {
            // Only flips that leave the signed content and signature intact may pass
            // (e.g. the last base64 padding bits of a signature).
            assert_eq!(orig.canonical_bytes(), new.canonical_bytes(), "byte {i}");
            assert_eq!(orig.signatures(), new.signatures(), "byte {i}");
        } else {
            caught += 1;
        }
    }
    assert!(
        caught > original.len() - 8,
        "{caught} of {}",
        original.len()
    );
}

#[test]
fn swapped_hash_is_caught() {
    // An older, validly signed targets.json in place of the current one.
    let (trusted, mut files) = notary_repo();
    files.targets = fx("history/3.targets.json");
    assert!(matches!(
        verify_err(&trusted, &files),
        Error::HashMismatch { .. } | Error::LengthMismatch { .. }
    ));

    // Swap the snapshot's hash for targets with the one for root: caught by
    // the snapshot signature, before any hash is compared.
    let (trusted, mut files) = notary_repo();
    let snap = Signed::<Snapshot>::from_bytes(&files.snapshot).unwrap();
    let mut s = snap.signed().clone();
    let root_meta = s.meta["root"].clone();
    s.meta.insert("targets".into(), root_meta);
    let forged = Signed::from_parts(s, snap.signatures().to_vec()).unwrap();
    files.snapshot = forged.file();
    match verify_err(&trusted, &files) {
        // timestamp's hash of snapshot no longer matches
        Error::HashMismatch {
            role, listed_in, ..
        }
        | Error::LengthMismatch {
            role, listed_in, ..
        } => {
            assert_eq!(
                (role.as_str(), listed_in.as_str()),
                ("snapshot", "timestamp")
            )
        }
        e => panic!("unexpected: {e}"),
    }
}

#[test]
fn expired_roles_are_rejected() {
    let (trusted, files) = notary_repo();
    let later = datetime!(2026-12-10 00:00 UTC);
    match verify_repository(&trusted, &files, GUN, later).unwrap_err() {
        Error::Expired { role, expires } => {
            assert_eq!(role, "timestamp");
            assert!(expires.starts_with("2026-12-09T"), "{expires}");
        }
        e => panic!("unexpected: {e}"),
    }
    let much_later = datetime!(2037-01-01 00:00 UTC);
    // root metadata and its certificate expire at the same second
    match verify_repository(&trusted, &files, GUN, much_later).unwrap_err() {
        Error::Expired { role, .. } => assert_eq!(role, "root"),
        Error::InvalidRoot(msg) => assert!(msg.contains("expired at 2036-11-22"), "{msg}"),
        e => panic!("unexpected: {e}"),
    }
}

#[test]
fn dropped_or_corrupted_signatures_are_rejected() {
    // timestamp without its signature
    let (trusted, mut files) = notary_repo();
    let ts = Signed::<Timestamp>::from_bytes(&files.timestamp).unwrap();
    files.timestamp = Signed::from_parts(ts.signed().clone(), vec![])
        .unwrap()
        .file();
    match verify_err(&trusted, &files) {
        Error::ThresholdNotMet {
            role,
            valid,
            present,
            ..
        } => {
            assert_eq!((role.as_str(), valid, present), ("timestamp", 0, 0))
        }
        e => panic!("unexpected: {e}"),
    }

    // root rotation with the old root key's signature dropped
    let (trusted, mut files) = notary_repo();
    let r2 = Signed::<Root>::from_bytes(&files.root_chain[0]).unwrap();
    assert_eq!(r2.signatures().len(), 2);
    let old_ids = &trusted.signed().roles["root"].keyids;
    let kept: Vec<_> = r2
        .signatures()
        .iter()
        .filter(|s| !old_ids.contains(&s.keyid))
        .cloned()
        .collect();
    assert_eq!(kept.len(), 1);
    files.root_chain[0] = Signed::from_parts(r2.signed().clone(), kept)
        .unwrap()
        .file();
    match verify_err(&trusted, &files) {
        Error::ThresholdNotMet { role, .. } => {
            assert!(role.contains("previous root keys"), "{role}")
        }
        e => panic!("unexpected: {e}"),
    }

    // a DER-encoded (but otherwise valid) signature is rejected, as notary does
    let (trusted, mut files) = notary_repo();
    let ts = Signed::<Timestamp>::from_bytes(&files.timestamp).unwrap();
    let mut sigs = ts.signatures().to_vec();
    let raw = p256::ecdsa::Signature::from_slice(&sigs[0].sig).unwrap();
    sigs[0].sig = raw.to_der().as_bytes().to_vec();
    files.timestamp = Signed::from_parts(ts.signed().clone(), sigs)
        .unwrap()
        .file();
    assert!(matches!(
        verify_err(&trusted, &files),
        Error::ThresholdNotMet { .. }
    ));

    // delegation signed by the wrong key: swap releases.json's signature for qa's
    let (trusted, mut files) = notary_repo();
    let rel = Signed::<Targets>::from_bytes(&files.delegations["targets/releases"]).unwrap();
    let qa = Signed::<Targets>::from_bytes(&files.delegations["targets/qa"]).unwrap();
    let forged = Signed::from_parts(rel.signed().clone(), qa.signatures().to_vec()).unwrap();
    files
        .delegations
        .insert("targets/releases".into(), forged.file());
    assert!(matches!(
        verify_err(&trusted, &files),
        Error::HashMismatch { .. } | Error::LengthMismatch { .. } | Error::ThresholdNotMet { .. }
    ));
}

#[test]
fn root_chain_rules() {
    // skipping a version
    let (trusted, mut files) = notary_repo();
    files.root_chain.remove(0);
    match verify_err(&trusted, &files) {
        Error::BadVersion {
            role,
            found,
            expected,
        } => {
            assert_eq!((role.as_str(), found, expected.as_str()), ("root", 3, "2"))
        }
        e => panic!("unexpected: {e}"),
    }
    // a stale trusted root without the chain: snapshot lists the newer root
    let (trusted, mut files) = notary_repo();
    files.root_chain.clear();
    assert!(verify_repository(&trusted, &files, GUN, NOW).is_err());
    // wrong repository name
    let (trusted, files) = notary_repo();
    match verify_repository(&trusted, &files, "example.com/other", NOW).unwrap_err() {
        Error::InvalidRoot(msg) => assert!(msg.contains("CN"), "{msg}"),
        e => panic!("unexpected: {e}"),
    }
}

#[test]
fn missing_or_unknown_delegation_files() {
    let (trusted, mut files) = notary_repo();
    files.delegations.remove("targets/qa");
    assert!(
        matches!(verify_err(&trusted, &files), Error::MissingFile { role } if role == "targets/qa")
    );
    let (trusted, mut files) = notary_repo();
    files
        .delegations
        .insert("targets/nobody".into(), fx("notary/targets/qa.json"));
    assert!(matches!(
        verify_err(&trusted, &files),
        Error::UnknownDelegation { .. }
    ));
}

#[test]
fn tufd_made_repository_as_served_by_notary_server_verifies() {
    // Made by this crate (round_trip.rs export_for_notary_server), accepted by
    // notary-server 0.7.0 (HTTP 200), listed by `notary list` and `docker trust
    // inspect`; timestamp.json was generated by the server.
    let root = Signed::<Root>::from_bytes(&fx("tufd-published/root.json")).unwrap();
    let mut delegations = BTreeMap::new();
    delegations.insert(
        "targets/releases".to_owned(),
        fx("tufd-published/targets/releases.json"),
    );
    let files = RepositoryFiles {
        root_chain: vec![],
        timestamp: fx("tufd-published/timestamp.json"),
        snapshot: fx("tufd-published/snapshot.json"),
        targets: fx("tufd-published/targets.json"),
        delegations,
        parsed: Default::default(),
    };
    let repo = verify_repository(&root, &files, "localhost:5000/tufd/rt2", NOW).unwrap();
    let names: Vec<String> = repo
        .resolved_targets()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(names.contains(&"a<b>&c".to_owned()) && names.contains(&"line\u{2028}sep".to_owned()));
}

#[test]
fn tufd_made_root_rotation_accepted_by_notary_server_verifies() {
    // Root v2 (new certificate, signed by old and new root key) and snapshot v2
    // made by this crate, accepted by notary-server; `notary list` with v1 cached
    // moved to v2 and `docker trust inspect` showed the new root key.
    let trusted = Signed::<Root>::from_bytes(&fx("tufd-rotated/1.root.json")).unwrap();
    let mut delegations = BTreeMap::new();
    delegations.insert(
        "targets/releases".to_owned(),
        fx("tufd-rotated/targets/releases.json"),
    );
    let files = RepositoryFiles {
        root_chain: vec![fx("tufd-rotated/root.json")],
        timestamp: fx("tufd-rotated/timestamp.json"),
        snapshot: fx("tufd-rotated/snapshot.json"),
        targets: fx("tufd-rotated/targets.json"),
        delegations,
        parsed: Default::default(),
    };
    let repo = verify_repository(&trusted, &files, "localhost:5000/tufd/rt3", NOW).unwrap();
    assert_eq!(repo.root.signed().version, 2);
    assert_eq!(repo.root.signatures().len(), 2);
}

#[test]
fn rsa_delegation_verifies() {
    // `notary delegation add … targets/rsa rsa.crt --paths rsa/` with an openssl
    // RSA-2048 certificate, then `notary add rsa/one --roles targets/rsa`.
    let trusted = Signed::<Root>::from_bytes(&fx("notary-rsa/root.json")).unwrap();
    let mut delegations = BTreeMap::new();
    for d in ["releases", "qa", "rsa"] {
        delegations.insert(
            format!("targets/{d}"),
            fx(&format!("notary-rsa/targets/{d}.json")),
        );
    }
    let files = RepositoryFiles {
        root_chain: vec![],
        timestamp: fx("notary-rsa/timestamp.json"),
        snapshot: fx("notary-rsa/snapshot.json"),
        targets: fx("notary-rsa/targets.json"),
        delegations,
        parsed: Default::default(),
    };
    let repo = verify_repository(&trusted, &files, GUN, NOW).unwrap();
    let one = repo
        .resolved_targets()
        .into_iter()
        .find(|t| t.name == "rsa/one")
        .unwrap();
    assert_eq!(one.role, "targets/rsa");

    let (_, rsa) = repo
        .delegations
        .iter()
        .find(|(n, _)| n == "targets/rsa")
        .unwrap();
    assert_eq!(rsa.file.signatures()[0].method, "rsapss");
    assert_eq!(rsa.file.signatures()[0].sig.len(), 256);
    let targets = repo.targets.signed();
    let key = &targets.delegations.keys[&rsa.role.keyids[0]];
    assert_eq!(key.keytype(), KeyType::RsaX509);
    // canonical id printed by `notary delegation add`
    assert_eq!(
        key.canonical_id().unwrap(),
        "10818e03614d8f1fd69a8a5fa9b037d6e0a842fec495dc82ca6f2ec83a390c6d"
    );

    // a corrupted RSA signature does not count
    let mut sigs = rsa.file.signatures().to_vec();
    sigs[0].sig[100] ^= 1;
    let forged = Signed::from_parts(rsa.file.signed().clone(), sigs).unwrap();
    let keys: BTreeMap<String, Key> = [(key.id(), key.clone())].into();
    assert!(verify_threshold("targets/rsa", &forged, &keys, 1).is_err());
    verify_threshold("targets/rsa", &rsa.file, &keys, 1).unwrap();
}

#[test]
fn nested_delegation_verifies() {
    // `notary delegation add … targets/releases/nightly qa.crt --paths nightly/`,
    // `notary add nightly/2026-11-25 --roles targets/releases/nightly`, signed by
    // the targets/releases key.
    let trusted = Signed::<Root>::from_bytes(&fx("notary-nested/root.json")).unwrap();
    let mut delegations = BTreeMap::new();
    for d in ["releases", "qa", "rsa", "releases/nightly"] {
        delegations.insert(
            format!("targets/{d}"),
            fx(&format!("notary-nested/targets/{d}.json")),
        );
    }
    let files = RepositoryFiles {
        root_chain: vec![],
        timestamp: fx("notary-nested/timestamp.json"),
        snapshot: fx("notary-nested/snapshot.json"),
        targets: fx("notary-nested/targets.json"),
        delegations,
        parsed: Default::default(),
    };
    let repo = verify_repository(&trusted, &files, GUN, NOW).unwrap();
    let names: Vec<&str> = repo.delegations.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "targets/releases",
            "targets/qa",
            "targets/rsa",
            "targets/releases/nightly"
        ]
    );
    let nightly = repo
        .resolved_targets()
        .into_iter()
        .find(|t| t.name == "nightly/2026-11-25")
        .unwrap();
    assert_eq!(nightly.role, "targets/releases/nightly");

    // The nested role's keys come from targets/releases, not from targets.
    let mut bad = files.clone();
    bad.delegations.remove("targets/releases");
    assert!(matches!(
        verify_repository(&trusted, &bad, GUN, NOW).unwrap_err(),
        Error::MissingFile { role } if role == "targets/releases"
    ));
}
