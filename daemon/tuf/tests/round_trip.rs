//! Metadata built and signed by this crate (software P-256 test keys standing
//! in for tokens) verifies, re-parses byte for byte, and fails the right way.

use std::cell::Cell;
use std::collections::BTreeMap;

use der::{Decode, Encode};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use time::OffsetDateTime;
use time::macros::datetime;
use tufd_tuf::expiry::{ROOT_EXPIRY, SNAPSHOT_EXPIRY, TARGETS_EXPIRY, TIMESTAMP_EXPIRY};
use tufd_tuf::repo::{RepositoryFiles, VerifiedRepository, verify_repository};
use tufd_tuf::rootcert::check_root_certificate;
use tufd_tuf::{
    DelegationRole, DigestSigner, Error, Key, Metadata, RoleName, RoleSigner, Root, SignError,
    Signed, Snapshot, TargetMeta, Targets, Timestamp, build_root_certificate, build_root_key,
    sign_role,
};
use x509_cert::Certificate;

const GUN: &str = "example.com/tufd/roundtrip";
const NOW: OffsetDateTime = datetime!(2026-11-25 12:00:00.123456789 UTC);

/// Software stand-in for a token key (tests only).
struct SoftKey {
    key: p256::ecdsa::SigningKey,
    calls: Cell<u32>,
}

impl SoftKey {
    fn new(seed: u8) -> Self {
        let mut bytes = [0x11u8; 32];
        bytes[31] = seed;
        SoftKey {
            key: p256::ecdsa::SigningKey::from_slice(&bytes).unwrap(),
            calls: Cell::new(0),
        }
    }
    fn public(&self) -> Key {
        Key::ecdsa(self.spki_der())
    }
}

impl DigestSigner for SoftKey {
    fn spki_der(&self) -> Vec<u8> {
        self.key
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .into_vec()
    }
    fn sign_sha256(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignError> {
        self.calls.set(self.calls.get() + 1);
        let sig: p256::ecdsa::Signature = self.key.sign_prehash(digest).map_err(SignError::new)?;
        Ok(sig.to_bytes().into())
    }
}

struct Keys {
    root: SoftKey,
    targets: SoftKey,
    snapshot: SoftKey,
    timestamp: SoftKey,
    releases: SoftKey,
}

fn keys() -> Keys {
    Keys {
        root: SoftKey::new(1),
        targets: SoftKey::new(2),
        snapshot: SoftKey::new(3),
        timestamp: SoftKey::new(4),
        releases: SoftKey::new(5),
    }
}

struct Built {
    root: Signed<Root>,
    files: RepositoryFiles,
    root_key: Key,
}

fn target_names() -> Vec<&'static str> {
    vec![
        "plain",
        "a<b>&c",
        "ü-umlaut",
        "€-euro",
        "line\u{2028}sep",
        "quote\"back\\slash",
        "/abs/path",
    ]
}

fn build(k: &Keys, targets_expires: OffsetDateTime) -> Built {
    let root_key = build_root_key(GUN, &k.root, NOW).unwrap();
    let mut root = Root::new(NOW + ROOT_EXPIRY);
    root.set_role_keys(&RoleName::Root, std::slice::from_ref(&root_key))
        .unwrap();
    root.set_role_keys(&RoleName::Targets, &[k.targets.public()])
        .unwrap();
    root.set_role_keys(&RoleName::Snapshot, &[k.snapshot.public()])
        .unwrap();
    root.set_role_keys(&RoleName::Timestamp, &[k.timestamp.public()])
        .unwrap();
    let root = sign_role("root", root, &[RoleSigner::new(&root_key, &k.root)]).unwrap();

    let mut targets = Targets::new(targets_expires);
    for name in target_names() {
        targets
            .targets
            .insert(name.to_owned(), TargetMeta::of(name.as_bytes()));
    }
    let mut custom = TargetMeta::sha256_only([7; 32], 1234);
    custom.custom = Some(
        serde_json::value::RawValue::from_string(r#"{"z": 1, "a": [true, null]}"#.into()).unwrap(),
    );
    targets.targets.insert("with-custom".into(), custom);
    let rel_key = k.releases.public();
    targets
        .delegations
        .keys
        .insert(rel_key.id(), rel_key.clone());
    targets.delegations.roles.push(DelegationRole {
        keyids: vec![rel_key.id()],
        name: "targets/releases".into(),
        paths: vec![String::new()],
        threshold: 1,
    });
    let tkey = k.targets.public();
    let targets = sign_role("targets", targets, &[RoleSigner::new(&tkey, &k.targets)]).unwrap();

    let mut releases = Targets::new(NOW + TARGETS_EXPIRY);
    releases
        .targets
        .insert("v1.0".into(), TargetMeta::sha256_only([9; 32], 527));
    let releases = sign_role(
        "targets/releases",
        releases,
        &[RoleSigner::new(&rel_key, &k.releases)],
    )
    .unwrap();

    let mut snapshot = Snapshot::new(NOW + SNAPSHOT_EXPIRY);
    snapshot.meta.insert("root".into(), root.file_meta());
    snapshot.meta.insert("targets".into(), targets.file_meta());
    snapshot
        .meta
        .insert("targets/releases".into(), releases.file_meta());
    let skey = k.snapshot.public();
    let snapshot = sign_role("snapshot", snapshot, &[RoleSigner::new(&skey, &k.snapshot)]).unwrap();

    let mut timestamp = Timestamp::new(NOW + TIMESTAMP_EXPIRY);
    timestamp
        .meta
        .insert("snapshot".into(), snapshot.file_meta());
    let tskey = k.timestamp.public();
    let timestamp = sign_role(
        "timestamp",
        timestamp,
        &[RoleSigner::new(&tskey, &k.timestamp)],
    )
    .unwrap();

    let mut delegations = BTreeMap::new();
    delegations.insert("targets/releases".to_owned(), releases.file());
    Built {
        files: RepositoryFiles {
            root_chain: vec![],
            timestamp: timestamp.file(),
            snapshot: snapshot.file(),
            targets: targets.file(),
            delegations,
            parsed: BTreeMap::new(),
        },
        root,
        root_key,
    }
}

fn verify(b: &Built, now: OffsetDateTime) -> Result<VerifiedRepository, Error> {
    verify_repository(&b.root, &b.files, GUN, now)
}

fn reparse<T: Metadata + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    let s = Signed::<T>::from_bytes(bytes).unwrap();
    assert_eq!(s.to_envelope(), bytes);
    let again = Signed::from_parts(s.signed().clone(), s.signatures().to_vec()).unwrap();
    assert_eq!(again.bytes(), bytes);
    assert_eq!(again.signed(), s.signed());
}

#[test]
fn built_repository_verifies_and_reparses_byte_for_byte() {
    let k = keys();
    let b = build(&k, NOW + TARGETS_EXPIRY);
    let repo = verify(&b, NOW + time::Duration::seconds(1)).unwrap();
    let names: Vec<String> = repo
        .resolved_targets()
        .into_iter()
        .map(|t| t.name)
        .collect();
    for n in target_names() {
        assert!(names.contains(&n.to_owned()), "{n}");
    }
    assert!(names.contains(&"v1.0".to_owned()));

    // what the daemon checks before publishing (the server makes the timestamp)
    let mut unpublished = b.files.clone();
    unpublished.timestamp.clear();
    let pre = tufd_tuf::verify_unpublished(&b.root, &unpublished, GUN, NOW).unwrap();
    assert!(pre.timestamp.is_none());
    assert_eq!(pre.resolved_targets(), repo.resolved_targets());

    reparse::<Root>(b.root.bytes());
    reparse::<Targets>(&b.files.targets);
    reparse::<Targets>(&b.files.delegations["targets/releases"]);
    reparse::<Snapshot>(&b.files.snapshot);
    reparse::<Timestamp>(&b.files.timestamp);

    let text = String::from_utf8(b.files.targets.to_vec()).unwrap();
    assert!(text.starts_with(r#"{"signed":{"_type":"Targets","delegations":{"keys":{"#));
    assert!(
        text.contains(r#""a\u003cb\u003e\u0026c""#),
        "HTML escaping in the file"
    );
    assert!(text.contains(r#""line\u2028sep""#));
    assert!(text.contains(r#""quote\"back\\slash""#));
    assert!(text.contains("ü-umlaut") && text.contains("€-euro"));
    assert!(
        text.contains(r#""custom":{"a":[true,null],"z":1}"#),
        "custom canonicalized: {text}"
    );
    let ts = String::from_utf8(b.files.timestamp.to_vec()).unwrap();
    assert!(
        ts.contains(r#""expires":"2026-12-09T12:00:00.123456789Z""#),
        "{ts}"
    );
    assert!(
        ts.ends_with(r#""}]}"#) && ts.contains(r#"],"signatures":[{"keyid":""#)
            || ts.contains(r#"},"signatures":[{"keyid":""#)
    );
}

/// A role parsed before (a change just signed it, or the last read) stands
/// in for parsing its file only for exactly the bytes it was parsed from:
/// reused, the verified role shares that parse; for other bytes (the
/// server serves another file under the name) the file is parsed, and it
/// is the file's content that verifies and resolves, not the stale parse.
#[test]
fn a_kept_parse_stands_in_only_for_its_own_bytes() {
    let k = keys();
    let b = build(&k, NOW + TARGETS_EXPIRY);
    let now = NOW + time::Duration::seconds(1);
    let first = verify(&b, now).unwrap();
    let releases_of = |repo: &VerifiedRepository| {
        repo.delegations
            .iter()
            .find(|(n, _)| n == "targets/releases")
            .map(|(_, d)| d.file.clone())
            .expect("releases verified")
    };
    let kept = releases_of(&first);

    // The same bytes (a copy, not the same buffer): the parse is shared.
    let mut same = b.files.clone();
    same.delegations.insert(
        "targets/releases".into(),
        bytes::Bytes::copy_from_slice(kept.bytes()),
    );
    same.parsed.insert("targets/releases".into(), kept.clone());
    let repo = verify_repository(&b.root, &same, GUN, now).unwrap();
    assert!(std::ptr::eq(releases_of(&repo).signed(), kept.signed()));

    // A parse of other bytes under that name: not used. The stale parse
    // lists a tag the file does not; the result is the file's.
    let mut stale_targets = kept.signed().clone();
    stale_targets
        .targets
        .insert("stale".into(), TargetMeta::sha256_only([1; 32], 1));
    let rel_key = k.releases.public();
    let stale = sign_role(
        "targets/releases",
        stale_targets,
        &[RoleSigner::new(&rel_key, &k.releases)],
    )
    .unwrap();
    let mut other = b.files.clone();
    other
        .parsed
        .insert("targets/releases".into(), stale.clone());
    let repo = verify_repository(&b.root, &other, GUN, now).unwrap();
    let releases = releases_of(&repo);
    assert!(!std::ptr::eq(releases.signed(), stale.signed()));
    assert!(!releases.signed().targets.contains_key("stale"));
    assert!(repo.resolve("stale").is_none());
    assert!(repo.resolve("v1.0").is_some());
}

/// A verified role keeps the fetched file itself, not a copy: a delegation
/// of 100 000 tags is 8.6 MB, and the daemon holds the fetched files and
/// the parsed roles at once (issue 13's memory bound).
#[test]
fn verified_roles_share_the_fetched_bytes() {
    let k = keys();
    let b = build(&k, NOW + TARGETS_EXPIRY);
    let repo = verify(&b, NOW + time::Duration::seconds(1)).unwrap();
    assert_eq!(repo.targets.bytes().as_ptr(), b.files.targets.as_ptr());
    let (name, releases) = repo
        .delegations
        .iter()
        .find(|(n, _)| n == "targets/releases")
        .expect("releases verified");
    assert_eq!(
        releases.file.bytes().as_ptr(),
        b.files.delegations[name].as_ptr()
    );
    assert_eq!(
        repo.snapshot.bytes().as_ptr(),
        b.files.snapshot.as_ptr(),
        "snapshot"
    );
}

#[test]
fn root_certificate_matches_notary_template() {
    let k = keys();
    let der = build_root_certificate(GUN, &k.root, NOW).unwrap();
    let cert = Certificate::from_der(&der).unwrap();
    let tbs = cert.tbs_certificate();
    assert_eq!(tbs.subject(), tbs.issuer());
    assert_eq!(tbs.subject().to_string(), format!("CN={GUN}"));
    // positive and below 2^128: at most 16 magnitude bytes after a sign byte
    let serial = tbs.serial_number().as_bytes();
    let magnitude = serial.strip_prefix(&[0u8]).unwrap_or(serial);
    assert!(magnitude.len() <= 16, "{serial:02x?}");
    let v = tbs.validity();
    assert_eq!(
        v.not_before.to_unix_duration().as_secs() as i64,
        NOW.unix_timestamp()
    );
    assert_eq!(
        (v.not_after.to_unix_duration() - v.not_before.to_unix_duration()).as_secs(),
        3650 * 86_400
    );
    assert_eq!(
        cert.signature_algorithm().oid.to_string(),
        "1.2.840.10045.4.3.2"
    );
    assert!(cert.signature_algorithm().parameters.is_none());
    let exts = tbs.extensions().unwrap();
    let summary: Vec<(String, bool)> = exts
        .iter()
        .map(|e| (e.extn_id.to_string(), e.critical))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("2.5.29.15".to_owned(), true),  // KeyUsage
            ("2.5.29.37".to_owned(), false), // ExtKeyUsage
            ("2.5.29.19".to_owned(), true),  // BasicConstraints
        ]
    );
    // KeyUsage bits: digitalSignature (0) + keyEncipherment (2); EKU codeSigning; CA:FALSE
    assert_eq!(exts[0].extn_value.as_bytes(), &[0x03, 0x02, 0x05, 0xa0]);
    assert_eq!(
        exts[1].extn_value.as_bytes(),
        &[
            0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03
        ]
    );
    assert_eq!(exts[2].extn_value.as_bytes(), &[0x30, 0x00]);
    // signature over the TBS by the signer's key
    let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&k.root.spki_der()).unwrap();
    let sig = p256::ecdsa::DerSignature::from_bytes(cert.signature().raw_bytes()).unwrap();
    vk.verify(&tbs.to_der().unwrap(), &sig).unwrap();
    // SPKI is the signer's; canonical id is the plain ecdsa id of the signer
    let key = Key::ecdsa_x509(&der);
    assert_eq!(key.spki_der().unwrap(), k.root.spki_der());
    assert_eq!(key.canonical_id().unwrap(), k.root.public().id());
    assert_ne!(key.id(), key.canonical_id().unwrap());
    check_root_certificate(&cert, GUN, Some(NOW)).unwrap();
    check_root_certificate(&cert, "example.com/tufd/*", Some(NOW)).unwrap_err();
    assert!(tufd_tuf::rootcert::cn_matches_gun(
        "example.com/tufd/*",
        GUN
    ));
    // two certificates for the same key differ (random serial)
    assert_ne!(der, build_root_certificate(GUN, &k.root, NOW).unwrap());
}

/// notary-server agrees: the same rotation signed by only the new key was refused
/// with `ErrBadRoot "could not rotate trust to a new trusted root: failed to validate
/// data with current trusted certificates"`, signed by only the old key with
/// `ErrBadRoot "… failed to validate integrity of roots"` (see `export_for_notary_server`).
#[test]
fn root_rotation_needs_old_and_new_keys() {
    let k = keys();
    let b = build(&k, NOW + TARGETS_EXPIRY);
    let new_signer = SoftKey::new(6);
    let new_key = build_root_key(GUN, &new_signer, NOW).unwrap();
    let mut r2 = b.root.signed().clone();
    r2.version = 2;
    r2.set_role_keys(&RoleName::Root, std::slice::from_ref(&new_key))
        .unwrap();
    assert!(
        r2.keys.contains_key(&b.root_key.id()),
        "old root key stays in keys"
    );

    let both = sign_role(
        "root",
        r2.clone(),
        &[
            RoleSigner::new(&new_key, &new_signer),
            RoleSigner::new(&b.root_key, &k.root),
        ],
    )
    .unwrap();
    assert_eq!(both.signatures().len(), 2);
    let only_new = sign_role(
        "root",
        r2.clone(),
        &[RoleSigner::new(&new_key, &new_signer)],
    )
    .unwrap();
    let only_old = sign_role("root", r2, &[RoleSigner::new(&b.root_key, &k.root)]).unwrap();

    // snapshot must list the new root; rebuild snapshot + timestamp for it
    let rebuild = |root: &Signed<Root>| -> RepositoryFiles {
        let mut files = b.files.clone();
        let snap = Signed::<Snapshot>::from_bytes(&files.snapshot).unwrap();
        let mut s = snap.signed().clone();
        s.meta.insert("root".into(), root.file_meta());
        s.version += 1;
        let skey = k.snapshot.public();
        let snap = sign_role("snapshot", s, &[RoleSigner::new(&skey, &k.snapshot)]).unwrap();
        let mut t = Timestamp::new(NOW + TIMESTAMP_EXPIRY);
        t.meta.insert("snapshot".into(), snap.file_meta());
        let tkey = k.timestamp.public();
        let ts = sign_role("timestamp", t, &[RoleSigner::new(&tkey, &k.timestamp)]).unwrap();
        files.snapshot = snap.file();
        files.timestamp = ts.file();
        files.root_chain = vec![root.file()];
        files
    };
    verify_repository(&b.root, &rebuild(&both), GUN, NOW).unwrap();
    match verify_repository(&b.root, &rebuild(&only_new), GUN, NOW).unwrap_err() {
        Error::ThresholdNotMet { role, .. } => assert!(role.contains("previous root keys")),
        e => panic!("{e}"),
    }
    match verify_repository(&b.root, &rebuild(&only_old), GUN, NOW).unwrap_err() {
        Error::ThresholdNotMet { role, .. } => assert_eq!(role, "root"),
        e => panic!("{e}"),
    }
}

#[test]
fn expired_targets_and_tampered_delegation_are_rejected() {
    let k = keys();
    let b = build(&k, NOW + time::Duration::hours(1));
    verify(&b, NOW).unwrap();
    match verify(&b, NOW + time::Duration::hours(2)).unwrap_err() {
        Error::Expired { role, .. } => assert_eq!(role, "targets"),
        e => panic!("{e}"),
    }
    let mut b = build(&k, NOW + TARGETS_EXPIRY);
    let d = b.files.delegations.get_mut("targets/releases").unwrap();
    let mut v = d.to_vec();
    let pos = v.windows(4).position(|w| w == b"v1.0").unwrap();
    v[pos + 3] = b'1';
    *d = v.into();
    match verify(&b, NOW).unwrap_err() {
        Error::HashMismatch { role, .. } => assert_eq!(role, "targets/releases"),
        e => panic!("{e}"),
    }
}

#[test]
fn control_characters_cannot_be_signed() {
    let k = keys();
    let mut t = Targets::new(NOW + TARGETS_EXPIRY);
    t.targets.insert("tab\there".into(), TargetMeta::of(b"x"));
    let key = k.targets.public();
    match sign_role("targets", t, &[RoleSigner::new(&key, &k.targets)]).unwrap_err() {
        e @ Error::Canonical { .. } => assert!(e.to_string().contains("U+0009"), "{e}"),
        e => panic!("{e}"),
    }
    assert_eq!(k.targets.calls.get(), 0, "nothing reached the token");
}

struct Failing;
impl DigestSigner for Failing {
    fn spki_der(&self) -> Vec<u8> {
        SoftKey::new(2).spki_der()
    }
    fn sign_sha256(&self, _: &[u8; 32]) -> Result<[u8; 64], SignError> {
        Err(SignError::new(std::io::Error::other("CKR_DEVICE_REMOVED")))
    }
}

struct Garbage;
impl DigestSigner for Garbage {
    fn spki_der(&self) -> Vec<u8> {
        SoftKey::new(2).spki_der()
    }
    fn sign_sha256(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignError> {
        // a valid signature, but by another key
        SoftKey::new(9).sign_sha256(digest)
    }
}

#[test]
fn signer_failures_are_reported() {
    let key = SoftKey::new(2).public();
    let t = Targets::new(NOW + TARGETS_EXPIRY);
    match sign_role("targets", t.clone(), &[RoleSigner::new(&key, &Failing)]).unwrap_err() {
        Error::Sign {
            role,
            keyid,
            source,
        } => {
            assert_eq!((role.as_str(), keyid), ("targets", key.id()));
            assert_eq!(source.to_string(), "CKR_DEVICE_REMOVED");
            assert!(source.into_inner().downcast::<std::io::Error>().is_ok());
        }
        e => panic!("{e}"),
    }
    assert!(matches!(
        sign_role("targets", t.clone(), &[RoleSigner::new(&key, &Garbage)]).unwrap_err(),
        Error::SelfCheckFailed { .. }
    ));
    let other = SoftKey::new(7);
    assert!(matches!(
        sign_role("targets", t.clone(), &[RoleSigner::new(&key, &other)]).unwrap_err(),
        Error::SignerKeyMismatch { .. }
    ));
    assert!(matches!(
        sign_role("targets", t, &[]).unwrap_err(),
        Error::NoSigners(_)
    ));
    match build_root_certificate(GUN, &Failing, NOW).unwrap_err() {
        Error::Sign { source, .. } => assert_eq!(source.to_string(), "CKR_DEVICE_REMOVED"),
        e => panic!("{e}"),
    }
    assert!(build_root_certificate(GUN, &Garbage, NOW).is_err());
}

/// Writes a repository signed with test keys for publishing to a real
/// notary-server (see the crate's test notes). Run by hand:
/// `TUFD_TUF_EXPORT=dir TUFD_TUF_GUN=… TUFD_TUF_TIMESTAMP_KEY=key.json cargo test -p tufd-tuf --test round_trip export -- --ignored`
#[test]
#[ignore = "fixture generator, not a check: needs TUFD_TUF_EXPORT, TUFD_TUF_GUN and a notary-server timestamp key; its output was published by hand and is kept in tests/fixtures (checked by real_metadata.rs)"]
fn export_for_notary_server() {
    let dir = std::path::PathBuf::from(std::env::var("TUFD_TUF_EXPORT").expect("TUFD_TUF_EXPORT"));
    let gun = std::env::var("TUFD_TUF_GUN").expect("TUFD_TUF_GUN");
    let ts_key: Key = serde_json::from_slice(
        &std::fs::read(std::env::var("TUFD_TUF_TIMESTAMP_KEY").unwrap()).unwrap(),
    )
    .unwrap();
    let now = OffsetDateTime::now_utc();
    let k = keys();
    let root_key = build_root_key(&gun, &k.root, now).unwrap();
    let mut root = Root::new(now + ROOT_EXPIRY);
    root.set_role_keys(&RoleName::Root, std::slice::from_ref(&root_key))
        .unwrap();
    root.set_role_keys(&RoleName::Targets, &[k.targets.public()])
        .unwrap();
    root.set_role_keys(&RoleName::Snapshot, &[k.snapshot.public()])
        .unwrap();
    root.set_role_keys(&RoleName::Timestamp, &[ts_key]).unwrap();
    let root = sign_role("root", root, &[RoleSigner::new(&root_key, &k.root)]).unwrap();
    let mut targets = Targets::new(now + TARGETS_EXPIRY);
    for name in [
        "plain",
        "a<b>&c",
        "ü-umlaut",
        "€-euro",
        "line\u{2028}sep",
        "quote\"back\\slash",
    ] {
        targets
            .targets
            .insert(name.to_owned(), TargetMeta::of(name.as_bytes()));
    }
    let rel_key = k.releases.public();
    targets
        .delegations
        .keys
        .insert(rel_key.id(), rel_key.clone());
    targets.delegations.roles.push(DelegationRole {
        keyids: vec![rel_key.id()],
        name: "targets/releases".into(),
        paths: vec![String::new()],
        threshold: 1,
    });
    let tkey = k.targets.public();
    let targets = sign_role("targets", targets, &[RoleSigner::new(&tkey, &k.targets)]).unwrap();
    let mut releases = Targets::new(now + TARGETS_EXPIRY);
    releases
        .targets
        .insert("v1.0".into(), TargetMeta::sha256_only([9; 32], 527));
    let releases = sign_role(
        "targets/releases",
        releases,
        &[RoleSigner::new(&rel_key, &k.releases)],
    )
    .unwrap();
    let mut snapshot = Snapshot::new(now + SNAPSHOT_EXPIRY);
    snapshot.meta.insert("root".into(), root.file_meta());
    snapshot.meta.insert("targets".into(), targets.file_meta());
    snapshot
        .meta
        .insert("targets/releases".into(), releases.file_meta());
    let skey = k.snapshot.public();
    let snapshot = sign_role("snapshot", snapshot, &[RoleSigner::new(&skey, &k.snapshot)]).unwrap();
    std::fs::create_dir_all(dir.join("targets")).unwrap();
    std::fs::write(dir.join("root.json"), root.bytes()).unwrap();
    std::fs::write(dir.join("targets.json"), targets.bytes()).unwrap();
    std::fs::write(dir.join("targets/releases.json"), releases.bytes()).unwrap();
    std::fs::write(dir.join("snapshot.json"), snapshot.bytes()).unwrap();

    // Root rotation: v2 with a new certificate/key, signed by old and new root keys,
    // and snapshot v2 listing it.
    let new_signer = SoftKey::new(6);
    let new_root_key = build_root_key(&gun, &new_signer, now).unwrap();
    let mut r2 = root.signed().clone();
    r2.version = 2;
    r2.set_role_keys(&RoleName::Root, std::slice::from_ref(&new_root_key))
        .unwrap();
    let r2 = sign_role(
        "root",
        r2,
        &[
            RoleSigner::new(&new_root_key, &new_signer),
            RoleSigner::new(&root_key, &k.root),
        ],
    )
    .unwrap();
    let mut s2 = snapshot.signed().clone();
    s2.version = 2;
    s2.meta.insert("root".into(), r2.file_meta());
    let s2 = sign_role("snapshot", s2, &[RoleSigner::new(&skey, &k.snapshot)]).unwrap();
    // Negative controls: the same rotation signed by only one of the two root keys.
    for (sub, signer) in [
        (
            "rotated-only-new",
            RoleSigner::new(&new_root_key, &new_signer),
        ),
        ("rotated-only-old", RoleSigner::new(&root_key, &k.root)),
    ] {
        let bad = sign_role("root", r2.signed().clone(), &[signer]).unwrap();
        let mut s = snapshot.signed().clone();
        s.version = 2;
        s.meta.insert("root".into(), bad.file_meta());
        let s = sign_role("snapshot", s, &[RoleSigner::new(&skey, &k.snapshot)]).unwrap();
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        std::fs::write(dir.join(sub).join("root.json"), bad.bytes()).unwrap();
        std::fs::write(dir.join(sub).join("snapshot.json"), s.bytes()).unwrap();
    }
    std::fs::create_dir_all(dir.join("rotated")).unwrap();
    std::fs::write(dir.join("rotated/root.json"), r2.bytes()).unwrap();
    std::fs::write(dir.join("rotated/snapshot.json"), s2.bytes()).unwrap();
}

#[test]
fn rollback_is_detected() {
    let k = keys();
    let b = build(&k, NOW + TARGETS_EXPIRY);
    let repo1 = verify(&b, NOW).unwrap();
    let mut t = repo1.timestamp.as_ref().unwrap().signed().clone();
    t.version = 2;
    let tkey = k.timestamp.public();
    let t2 = sign_role("timestamp", t, &[RoleSigner::new(&tkey, &k.timestamp)]).unwrap();
    let mut files = b.files.clone();
    files.timestamp = t2.file();
    let repo2 = verify_repository(&b.root, &files, GUN, NOW).unwrap();
    tufd_tuf::repo::check_no_rollback(&repo1, &repo2).unwrap();
    match tufd_tuf::repo::check_no_rollback(&repo2, &repo1).unwrap_err() {
        Error::BadVersion { role, found, .. } => {
            assert_eq!((role.as_str(), found), ("timestamp", 1))
        }
        e => panic!("{e}"),
    }
}

/// A root built around a given root key object, with the usual other keys.
fn root_with(k: &Keys, root_key: &Key) -> Root {
    let mut root = Root::new(NOW + ROOT_EXPIRY);
    root.set_role_keys(&RoleName::Root, std::slice::from_ref(root_key))
        .unwrap();
    root.set_role_keys(&RoleName::Targets, &[k.targets.public()])
        .unwrap();
    root.set_role_keys(&RoleName::Snapshot, &[k.snapshot.public()])
        .unwrap();
    root.set_role_keys(&RoleName::Timestamp, &[k.timestamp.public()])
        .unwrap();
    root
}

#[test]
fn root_key_pem_must_be_in_go_layout() {
    // notary rebuilds the key from the parsed certificate in Go's PEM layout and
    // looks the signature up by that ID; a 76-column PEM gives another ID.
    let k = keys();
    let der = build_root_certificate(GUN, &k.root, NOW).unwrap();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(76) {
        pem.push_str(std::str::from_utf8(chunk).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    let odd = Key::new(tufd_tuf::KeyType::EcdsaX509, pem.into_bytes());
    assert_ne!(odd.id(), Key::ecdsa_x509(&der).id());
    let root = sign_role(
        "root",
        root_with(&k, &odd),
        &[RoleSigner::new(&odd, &k.root)],
    )
    .unwrap();
    match tufd_tuf::repo::verify_root_rotation(&root, &root, GUN, NOW).unwrap_err() {
        Error::BadVersion { .. } => {}
        e => panic!("{e}"),
    }
    let b = build(&k, NOW + TARGETS_EXPIRY);
    match verify_repository(&root, &b.files, GUN, NOW).unwrap_err() {
        Error::ThresholdNotMet { role, valid: 0, .. } => assert_eq!(role, "root"),
        e => panic!("{e}"),
    }
}

#[test]
fn expired_root_certificate_is_rejected_but_may_be_rotated_away() {
    let k = keys();
    let old_key =
        build_root_key(GUN, &k.root, NOW - ROOT_EXPIRY - time::Duration::days(1)).unwrap();
    let old_root = sign_role(
        "root",
        root_with(&k, &old_key),
        &[RoleSigner::new(&old_key, &k.root)],
    )
    .unwrap();
    let b = build(&k, NOW + TARGETS_EXPIRY);
    match verify_repository(&old_root, &b.files, GUN, NOW).unwrap_err() {
        Error::InvalidRoot(msg) => assert!(msg.contains("expired"), "{msg}"),
        e => panic!("{e}"),
    }
    // rotate to a fresh certificate, signed by the old (expired) and the new key
    let new_signer = SoftKey::new(6);
    let new_key = build_root_key(GUN, &new_signer, NOW).unwrap();
    let mut r2 = root_with(&k, &new_key);
    r2.keys.insert(old_key.id(), old_key.clone());
    r2.version = 2;
    let r2 = sign_role(
        "root",
        r2,
        &[
            RoleSigner::new(&old_key, &k.root),
            RoleSigner::new(&new_key, &new_signer),
        ],
    )
    .unwrap();
    tufd_tuf::repo::verify_root_rotation(&old_root, &r2, GUN, NOW).unwrap();
}

#[test]
fn targets_outside_delegated_paths_are_ignored() {
    // As notary's client (client/reader.go): a delegation's targets outside its
    // paths are skipped, not an error; nested paths are cut to the parent's.
    let k = keys();
    let rel_key = k.releases.public();
    let sub_signer = SoftKey::new(8);
    let sub_key = sub_signer.public();

    let mut targets = Targets::new(NOW + TARGETS_EXPIRY);
    targets
        .delegations
        .add_to_role(
            &RoleName::parse("targets/releases").unwrap(),
            std::slice::from_ref(&rel_key),
            &["rel/".to_owned()],
        )
        .unwrap();
    let tkey = k.targets.public();
    let targets = sign_role("targets", targets, &[RoleSigner::new(&tkey, &k.targets)]).unwrap();

    let mut releases = Targets::new(NOW + TARGETS_EXPIRY);
    releases
        .targets
        .insert("rel/ok".into(), TargetMeta::of(b"1"));
    releases
        .targets
        .insert("elsewhere".into(), TargetMeta::of(b"2"));
    releases
        .delegations
        .add_to_role(
            &RoleName::parse("targets/releases/sub").unwrap(),
            std::slice::from_ref(&sub_key),
            &["rel/sub/".to_owned(), "other/".to_owned()],
        )
        .unwrap();
    let releases = sign_role(
        "targets/releases",
        releases,
        &[RoleSigner::new(&rel_key, &k.releases)],
    )
    .unwrap();

    let mut sub = Targets::new(NOW + TARGETS_EXPIRY);
    sub.targets.insert("rel/sub/x".into(), TargetMeta::of(b"3"));
    sub.targets.insert("other/y".into(), TargetMeta::of(b"4"));
    let sub = sign_role(
        "targets/releases/sub",
        sub,
        &[RoleSigner::new(&sub_key, &sub_signer)],
    )
    .unwrap();

    let b = build(&k, NOW + TARGETS_EXPIRY);
    let mut snapshot = Snapshot::new(NOW + SNAPSHOT_EXPIRY);
    snapshot.meta.insert("root".into(), b.root.file_meta());
    snapshot.meta.insert("targets".into(), targets.file_meta());
    snapshot
        .meta
        .insert("targets/releases".into(), releases.file_meta());
    snapshot
        .meta
        .insert("targets/releases/sub".into(), sub.file_meta());
    let skey = k.snapshot.public();
    let snapshot = sign_role("snapshot", snapshot, &[RoleSigner::new(&skey, &k.snapshot)]).unwrap();
    let mut files = RepositoryFiles {
        snapshot: snapshot.file(),
        targets: targets.file(),
        ..Default::default()
    };
    files
        .delegations
        .insert("targets/releases".into(), releases.file());
    files
        .delegations
        .insert("targets/releases/sub".into(), sub.file());
    let repo = tufd_tuf::verify_unpublished(&b.root, &files, GUN, NOW).unwrap();
    let resolved: Vec<(String, String)> = repo
        .resolved_targets()
        .into_iter()
        .map(|t| (t.name, t.role))
        .collect();
    assert_eq!(
        resolved,
        vec![
            ("rel/ok".to_owned(), "targets/releases".to_owned()),
            ("rel/sub/x".to_owned(), "targets/releases/sub".to_owned()),
        ]
    );
    let (_, d) = repo
        .delegations
        .iter()
        .find(|(n, _)| n == "targets/releases/sub")
        .unwrap();
    assert_eq!(d.role.paths, vec!["rel/sub/".to_owned()]);
}

/// A device that wants its own certificate subject (as a YubiKey slot does).
struct WithSubject {
    key: SoftKey,
    subject: Vec<u8>,
}

impl DigestSigner for WithSubject {
    fn spki_der(&self) -> Vec<u8> {
        self.key.spki_der()
    }
    fn sign_sha256(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignError> {
        self.key.sign_sha256(digest)
    }
    fn certificate_subject(&self) -> Option<Vec<u8>> {
        Some(self.subject.clone())
    }
}

#[test]
fn root_certificate_takes_the_devices_subject_only_with_the_gun_as_cn() {
    use std::str::FromStr;
    use x509_cert::der::{Decode, Encode};
    let gun = "localhost:5000/app";
    let subject = |s: &str| {
        x509_cert::name::Name::from_str(s)
            .unwrap()
            .to_der()
            .unwrap()
    };
    let signer = WithSubject {
        key: SoftKey::new(5),
        subject: subject(&format!("CN={gun},OU=tufd:root:{gun},O=tufd")),
    };
    let der =
        tufd_tuf::build_root_certificate(gun, &signer, time::OffsetDateTime::now_utc()).unwrap();
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let name = cert.tbs_certificate().subject().to_string();
    assert!(
        name.contains(&format!("CN={gun}")) && name.contains("OU=tufd:root:"),
        "{name}"
    );

    for bad in [
        "CN=localhost:5000/other,O=tufd".to_owned(),
        format!("CN={gun},CN=second"),
        "O=tufd".to_owned(),
    ] {
        let signer = WithSubject {
            key: SoftKey::new(5),
            subject: subject(&bad),
        };
        let err = tufd_tuf::build_root_certificate(gun, &signer, time::OffsetDateTime::now_utc())
            .unwrap_err();
        assert!(
            err.to_string().contains("needs exactly CN="),
            "{bad}: {err}"
        );
    }
}

#[test]
fn client_update_skips_broken_delegations_and_resolves_like_docker() {
    use tufd_tuf::client::{Unresolved, check_no_rollback_from, resolve_tag};
    let k = keys();
    let b = build(&k, NOW + TARGETS_EXPIRY);
    // Complete: v1.0 from targets/releases; a targets-only name from targets.
    let (repo, skipped) = tufd_tuf::verify_client_update(&b.root, &b.files, GUN, NOW).unwrap();
    assert!(skipped.is_empty());
    let t = resolve_tag(&repo, &skipped, "v1.0").unwrap();
    assert_eq!((t.role.as_str(), t.meta.length), ("targets/releases", 527));
    assert_eq!(
        resolve_tag(&repo, &skipped, "plain").unwrap().role,
        "targets"
    );
    assert_eq!(
        resolve_tag(&repo, &skipped, "nope"),
        Err(Unresolved::NotSigned)
    );
    // Same bytes: no rollback.
    check_no_rollback_from(b.root.bytes(), &b.files, &repo).unwrap();

    // The releases file missing: reported as not fetched, not an error;
    // resolution that needs it fails, one that does not still answers.
    let mut files = b.files.clone();
    files.delegations.clear();
    let (repo, skipped) = tufd_tuf::verify_client_update(&b.root, &files, GUN, NOW).unwrap();
    assert_eq!(skipped.len(), 1);
    assert!(matches!(
        skipped[0].reason,
        tufd_tuf::SkipReason::NotFetched
    ));
    assert!(matches!(
        resolve_tag(&repo, &skipped, "v1.0"),
        Err(Unresolved::Broken { role, .. }) if role == "targets/releases"
    ));
    // Tampered releases: failed, the rest verified.
    let mut files = b.files.clone();
    let d = files.delegations.get_mut("targets/releases").unwrap();
    let mut v = d.to_vec();
    let pos = v.windows(4).position(|w| w == b"v1.0").unwrap();
    v[pos + 3] = b'1';
    *d = v.into();
    let (repo, skipped) = tufd_tuf::verify_client_update(&b.root, &files, GUN, NOW).unwrap();
    assert!(matches!(
        &skipped[0].reason,
        tufd_tuf::SkipReason::Failed(e) if matches!(**e, Error::HashMismatch { .. })
    ));
    assert!(repo.delegations.is_empty());
    // The strict verification still refuses it.
    assert!(verify_repository(&b.root, &files, GUN, NOW).is_err());
}
