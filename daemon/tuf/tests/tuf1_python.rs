//! TUF 1.0 metadata tufd writes, checked by python-tuf (PyPI `tuf`, in the
//! project venv `target/py` that `scripts/setup` makes): the same bytes
//! from python-tuf's serializer and securesystemslib's canonical encoder,
//! the same key IDs, valid signatures; and python-tuf's files read back
//! and re-serialized by tufd byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::EncodePublicKey;
use serde_json::{Value, json};
use tufd_tuf::tuf1::sign::sign_metadata;
use tufd_tuf::tuf1::{
    Common, DelegatedRole, Delegations, Expires, Key, MetaFile, Metadata, Role, RoleKeys, Root,
    Snapshot, SuccinctRoles, TargetFile, Targets, Timestamp, Unrecognized,
};
use tufd_tuf::{DigestSigner, SignError};

struct SoftKey(SigningKey);

impl DigestSigner for SoftKey {
    fn spki_der(&self) -> Vec<u8> {
        self.0
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec()
    }
    fn sign_sha256(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignError> {
        let sig: p256::ecdsa::Signature = self.0.sign_prehash(digest).map_err(SignError::new)?;
        Ok(sig.to_bytes().into())
    }
}

fn soft(seed: u8) -> (SoftKey, Key) {
    let s = SoftKey(SigningKey::from_slice(&[seed; 32]).unwrap());
    let k = Key::ecdsa_p256(&s.spki_der()).unwrap();
    (s, k)
}

/// The project's python with python-tuf (`scripts/setup` makes it).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("TUFD_PYTHON") {
        return p.into();
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/py/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup (it installs python-tuf into target/py)",
        p.display()
    );
    p
}

fn write<T: Role>(dir: &Path, name: &str, md: &Metadata<T>) {
    std::fs::write(dir.join(format!("{name}.json")), md.to_bytes().unwrap()).unwrap();
    std::fs::write(
        dir.join(format!("{name}.canonical")),
        md.canonical_signed().unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{name}.pretty")),
        md.to_pretty_bytes().unwrap(),
    )
    .unwrap();
}

fn expires() -> Expires {
    Expires::at(time::macros::datetime!(2031-01-02 03:04:05 UTC))
}

#[test]
fn python_tuf_reads_what_tufd_writes_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (root_a, root_a_key) = soft(1);
    let (root_b, root_b_key) = soft(2);
    let (_root_c, root_c_key) = soft(3);
    let (targets_s, targets_key) = soft(4);
    let (snap_s, snap_key) = soft(5);
    let (ts_s, ts_key) = soft(6);
    let (team_s, team_key) = soft(7);

    let mut keys = BTreeMap::new();
    let mut roles = BTreeMap::new();
    for (role, ks, threshold) in [
        ("root", vec![&root_a_key, &root_b_key, &root_c_key], 2),
        ("targets", vec![&targets_key], 1),
        ("snapshot", vec![&snap_key], 1),
        ("timestamp", vec![&ts_key], 1),
    ] {
        for k in &ks {
            keys.insert(k.key_id(), (*k).clone());
        }
        roles.insert(
            role.to_owned(),
            RoleKeys {
                keyids: ks.iter().map(|k| k.key_id()).collect(),
                threshold,
                unrecognized: Unrecognized::new(),
            },
        );
    }
    let mut root_unknown = Unrecognized::new();
    root_unknown.insert(
        "x-tufd".into(),
        json!({"raw": "tab\there \"q\" \\ é 😀 \u{1}\u{7f}", "n": -3}),
    );
    let mut root = Metadata::new(Root {
        common: Common::new("root", expires()),
        consistent_snapshot: Some(true),
        keys: keys.clone(),
        roles,
        unrecognized: root_unknown,
    });
    sign_metadata(&mut root, &root_a_key, &root_a).unwrap();
    sign_metadata(&mut root, &root_b_key, &root_b).unwrap();
    write(d, "root", &root);

    let mut custom = Unrecognized::new();
    custom.insert(
        "custom".into(),
        json!({"build": {"id": 42, "ok": true, "note": "línea\nnueva"}}),
    );
    let mut targets = Metadata::new(Targets {
        common: Common::new("targets", expires()),
        targets: BTreeMap::from([
            (
                "a.txt".to_owned(),
                TargetFile {
                    length: 3,
                    hashes: BTreeMap::from([("sha256".to_owned(), "00".repeat(32))]),
                    unrecognized: Unrecognized::new(),
                },
            ),
            (
                "dir/ü ñ.bin".to_owned(),
                TargetFile {
                    length: 123_456_789_012,
                    hashes: BTreeMap::from([
                        ("sha256".to_owned(), "ab".repeat(32)),
                        ("sha512".to_owned(), "cd".repeat(64)),
                    ]),
                    unrecognized: custom,
                },
            ),
        ]),
        delegations: Some(Delegations {
            keys: BTreeMap::from([(team_key.key_id(), team_key.clone())]),
            roles: Some(vec![DelegatedRole {
                name: "team".into(),
                keyids: vec![team_key.key_id()],
                threshold: 1,
                terminating: true,
                paths: Some(vec!["team/*".into(), "*.tgz".into()]),
                path_hash_prefixes: None,
                unrecognized: Unrecognized::new(),
            }]),
            succinct_roles: None,
            unrecognized: Unrecognized::new(),
        }),
        unrecognized: Unrecognized::new(),
    });
    sign_metadata(&mut targets, &targets_key, &targets_s).unwrap();
    write(d, "targets", &targets);

    let mut team = Metadata::new(Targets {
        common: Common::new("targets", expires()),
        targets: BTreeMap::new(),
        delegations: Some(Delegations {
            keys: BTreeMap::from([(team_key.key_id(), team_key.clone())]),
            roles: None,
            succinct_roles: Some(SuccinctRoles {
                bit_length: 10,
                name_prefix: "team-bins".into(),
                keyids: vec![team_key.key_id()],
                threshold: 1,
                unrecognized: Unrecognized::new(),
            }),
            unrecognized: Unrecognized::new(),
        }),
        unrecognized: Unrecognized::new(),
    });
    sign_metadata(&mut team, &team_key, &team_s).unwrap();
    write(d, "team", &team);

    let mut snapshot = Metadata::new(Snapshot {
        common: Common::new("snapshot", expires()),
        meta: BTreeMap::from([
            (
                "targets.json".to_owned(),
                MetaFile {
                    version: 1,
                    length: None,
                    hashes: None,
                    unrecognized: Unrecognized::new(),
                },
            ),
            (
                "team.json".to_owned(),
                MetaFile {
                    version: 1,
                    length: Some(99),
                    hashes: Some(BTreeMap::from([("sha256".to_owned(), "ee".repeat(32))])),
                    unrecognized: Unrecognized::new(),
                },
            ),
        ]),
        unrecognized: Unrecognized::new(),
    });
    sign_metadata(&mut snapshot, &snap_key, &snap_s).unwrap();
    write(d, "snapshot", &snapshot);

    let snapshot_bytes = snapshot.to_bytes().unwrap();
    let mut timestamp = Metadata::new(Timestamp {
        common: Common::new("timestamp", expires()),
        meta: BTreeMap::from([(
            "snapshot.json".to_owned(),
            MetaFile {
                version: 1,
                length: Some(snapshot_bytes.len() as u64),
                hashes: Some(BTreeMap::from([(
                    "sha256".to_owned(),
                    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&snapshot_bytes)),
                )])),
                unrecognized: Unrecognized::new(),
            },
        )]),
        unrecognized: Unrecognized::new(),
    });
    sign_metadata(&mut timestamp, &ts_key, &ts_s).unwrap();
    write(d, "timestamp", &timestamp);

    let key_pems: BTreeMap<String, Value> = keys
        .values()
        .chain([&team_key])
        .map(|k| (k.key_id(), k.keyval["public"].clone()))
        .collect();
    std::fs::write(d.join("keys.json"), serde_json::to_vec(&key_pems).unwrap()).unwrap();

    let out = std::process::Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/check_tuf1.py"))
        .arg(d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python-tuf check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // python-tuf's files: tufd parses and re-serializes them byte for byte
    // and computes the same canonical bytes; its signatures verify.
    let py = d.join("py");
    fn same<T: Role>(py: &Path, name: &str) -> Metadata<T> {
        let bytes = std::fs::read(py.join(format!("{name}.json"))).unwrap();
        let md = Metadata::<T>::from_bytes(&bytes).unwrap();
        assert_eq!(
            String::from_utf8(md.to_bytes().unwrap()).unwrap(),
            String::from_utf8(bytes).unwrap(),
            "{name}"
        );
        let canonical = std::fs::read(py.join(format!("{name}.canonical"))).unwrap();
        assert_eq!(
            md.canonical_signed().unwrap(),
            canonical,
            "{name} canonical"
        );
        md
    }
    let root = same::<Root>(&py, "root");
    same::<Targets>(&py, "targets");
    let bins = same::<Targets>(&py, "bins");
    same::<Snapshot>(&py, "snapshot");
    same::<Timestamp>(&py, "timestamp");
    let sig = &root.signatures[0];
    let key = &root.signed.keys[&sig.keyid];
    assert_eq!(key.key_id(), sig.keyid);
    assert!(key.verify(&root.canonical_signed().unwrap(), &sig.sig));
    let succinct = bins.signed.delegations.unwrap().succinct_roles.unwrap();
    assert_eq!(succinct.bin_name(255), "bin-ff");
}
