//! `tufctl verify` against a hostile notary-server: crafted, validly or
//! invalidly signed metadata over HTTP on loopback. Every attack must fail
//! with the right reason and leave the daemon's trust store as it was.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use time::OffsetDateTime;
use tufd_tests::daemon::{CmdOutput, Daemon, TestEnv};
use tufd_tests::notary::TestCa;
use tufd_tests::tufrepo::{CraftedRepo, HostileNotary, Reply, SoftKey, target};
use tufd_tuf::{Key, RoleName, RoleSigner, sign_role};

const DIGEST: [u8; 32] = [0x42; 32];
const SIZE: u64 = 527;

struct World {
    env: TestEnv,
    server: HostileNotary,
    _daemon: Daemon,
}

impl World {
    /// A daemon whose only notary server is a hostile one; `extra` is more
    /// configuration (`[[verify]]`, `[verification]`).
    fn new(extra: &str) -> World {
        let env = TestEnv::new();
        let server = HostileNotary::start();
        let ca = TestCa::generate(env.path(), "unused").expect("ca");
        let config = format!(
            "{}[[remote]]\nprefix = \"\"\nurl = \"{}\"\nca = \"{}\"\n{extra}",
            env.config(),
            server.url(),
            ca.cert.display()
        );
        let daemon = env.start_with(&config);
        World {
            env,
            server,
            _daemon: daemon,
        }
    }

    fn verify(&self, args: &[&str]) -> CmdOutput {
        let mut all = vec!["verify"];
        all.extend_from_slice(args);
        self.env.tufctl_env(&all, &[("DOCKER_CONTENT_TRUST", "")])
    }

    fn store_file(&self, gun: &str) -> PathBuf {
        use sha2::Digest;
        self.env.path().join(format!(
            "state/trust/{}.trust",
            hex::encode(sha2::Sha256::digest(gun.as_bytes()))
        ))
    }

    fn stored(&self, gun: &str) -> Option<Vec<u8>> {
        std::fs::read(self.store_file(gun)).ok()
    }

    /// One role's bytes from the stored file (a magic line, a JSON header
    /// line listing each role's length, then the raw files in that order).
    fn stored_role(&self, gun: &str, role: &str) -> Option<Vec<u8>> {
        let file = self.stored(gun)?;
        let mut lines = file.splitn(3, |b| *b == b'\n');
        assert_eq!(lines.next()?, b"tufd-trust-store 2");
        let header: serde_json::Value = serde_json::from_slice(lines.next()?).ok()?;
        let mut rest = lines.next()?;
        for entry in header["files"].as_array()? {
            let len = entry[1].as_u64()? as usize;
            let (bytes, tail) = rest.split_at(len);
            if entry[0].as_str()? == role {
                return Some(bytes.to_vec());
            }
            rest = tail;
        }
        None
    }

    /// The sha256 of the stored file (short enough for assertion messages).
    fn stored_sha(&self, gun: &str) -> Option<String> {
        use sha2::Digest;
        self.stored(gun)
            .map(|b| hex::encode(sha2::Sha256::digest(&b)))
    }

    /// Publishes a repository signed at version 2 everywhere, with `v1` in
    /// targets/releases, verifies it once (trusting it), and returns it.
    fn trusted_repo(&self, gun: &str) -> CraftedRepo {
        let mut repo = CraftedRepo::new(gun);
        repo.delegation("targets/releases")
            .targets
            .insert("v1".into(), target(DIGEST, SIZE));
        repo.targets_version = 2;
        repo.snapshot_version = 2;
        repo.timestamp_version = 2;
        repo.delegation("targets/releases").version = 2;
        repo.publish(&self.server);
        let out = self.verify(&["--print-digest", &format!("{gun}:v1")]);
        assert_eq!(
            out.stdout,
            format!("{gun}@sha256:{}\n", hex::encode(DIGEST)),
            "{out:?}"
        );
        assert!(self.stored(gun).is_some(), "the first verification stores");
        repo
    }

    /// Runs `attack` on a trusted repository and checks that verify refuses
    /// with `reason` and the store did not change.
    fn refuses(
        &self,
        gun: &str,
        reason: &str,
        attack: impl FnOnce(&mut CraftedRepo, &HostileNotary),
    ) {
        let mut repo = self.trusted_repo(gun);
        let before = self.stored_sha(gun);
        attack(&mut repo, &self.server);
        let out = self.verify(&[&format!("{gun}:v1")]);
        assert_eq!(out.status.code(), Some(1), "{gun}: {out:?}");
        assert!(
            out.stderr.contains(reason),
            "{gun}: expected {reason:?} in {out:?}"
        );
        assert!(out.stdout.is_empty(), "{gun}: no digest printed: {out:?}");
        assert_eq!(self.stored_sha(gun), before, "{gun}: the store changed");
    }
}

/// Newer snapshot and timestamp around whatever the attack changed.
fn bump(repo: &mut CraftedRepo) {
    repo.snapshot_version += 1;
    repo.timestamp_version += 1;
}

fn past() -> OffsetDateTime {
    OffsetDateTime::now_utc() - time::Duration::days(1)
}

#[test]
fn rollback_freeze_and_mix_and_match_are_refused() {
    let w = World::new("");
    let g = |s: &str| format!("localhost:5000/hostile/{s}");
    w.refuses(
        &g("rollback-targets"),
        "targets: version 1 is not acceptable",
        |r, s| {
            r.targets_version = 1;
            bump(r);
            r.publish(s);
        },
    );
    w.refuses(
        &g("rollback-releases"),
        "targets/releases: version 1 is not acceptable",
        |r, s| {
            r.delegation("targets/releases").version = 1;
            bump(r);
            r.publish(s);
        },
    );
    w.refuses(
        &g("rollback-snapshot"),
        "snapshot: version 1 is not acceptable",
        |r, s| {
            r.snapshot_version = 1;
            r.timestamp_version += 1;
            r.publish(s);
        },
    );
    w.refuses(
        &g("rollback-timestamp"),
        "timestamp: version 1 is not acceptable",
        |r, s| {
            r.timestamp_version = 1;
            r.targets.insert("new".into(), target([1; 32], 1));
            r.snapshot_version += 1;
            r.publish(s);
        },
    );
    for role in ["timestamp", "snapshot", "targets", "targets/releases"] {
        let reason = format!("{role} expired at");
        w.refuses(
            &g(&format!("freeze-{}", role.replace('/', "-"))),
            &reason,
            |r, s| {
                match role {
                    "timestamp" => r.timestamp_expires = past(),
                    "snapshot" => r.snapshot_expires = past(),
                    "targets" => r.targets_expires = past(),
                    _ => r.delegation("targets/releases").expires = past(),
                }
                bump(r);
                r.publish(s);
            },
        );
    }
    // Mix and match: the new timestamp names a new snapshot; the server
    // hands out the old snapshot for it.
    w.refuses(&g("mix-and-match"), "checksum mismatch", |r, s| {
        let old = r.sign();
        r.targets.insert("new".into(), target([1; 32], 1));
        r.targets_version += 1;
        bump(r);
        let new = r.publish(s);
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&new.snapshot));
        s.set(
            &r.gun,
            &format!("snapshot.{sha}.json"),
            Reply::Bytes(old.snapshot),
        );
    });
}

#[test]
fn bad_signatures_keys_and_roots_are_refused() {
    let w = World::new("");
    let g = |s: &str| format!("localhost:5000/hostile/{s}");
    // targets.json signed with the snapshot key.
    w.refuses(
        &g("wrong-role-key"),
        "targets: 0 valid signature(s)",
        |r, s| {
            r.targets_version += 1;
            bump(r);
            let mut files = r.sign();
            let sk = r.snapshot_key.public();
            files.targets = sign_role(
                "targets",
                r.targets_body(),
                &[RoleSigner::new(&sk, &r.snapshot_key)],
            )
            .unwrap()
            .bytes()
            .to_vec();
            let files = r.seal(files.root, files.targets, files.delegations);
            r.serve_files(s, &files);
        },
    );
    // Threshold 2 met by one key listed twice (as ecdsa and inside a
    // certificate): one holder, one signature that counts.
    w.refuses(
        &g("one-key-twice"),
        "targets: 1 valid signature(s) from its keys, threshold is 2",
        |r, s| {
            let files = r.sign();
            r.old_roots.insert(1, files.root.clone());
            r.root_version += 1;
            r.targets_version += 1;
            bump(r);
            let twice = r.targets_key.root_key(
                "anything",
                OffsetDateTime::now_utc() - time::Duration::hours(1),
            );
            let once = r.targets_key.public();
            let mut body = r.root_body();
            body.set_role_keys(&RoleName::Targets, &[once.clone(), twice.clone()])
                .unwrap();
            body.roles.get_mut("targets").unwrap().threshold = 2;
            let root =
                sign_role("root", body, &[RoleSigner::new(&r.root_cert, &r.root_key)]).unwrap();
            let targets = sign_role(
                "targets",
                r.targets_body(),
                &[
                    RoleSigner::new(&once, &r.targets_key),
                    RoleSigner::new(&twice, &r.targets_key),
                ],
            )
            .unwrap();
            let files = r.seal(
                root.bytes().to_vec(),
                targets.bytes().to_vec(),
                files.delegations,
            );
            r.serve_files(s, &files);
        },
    );
    // A root rotation signed by the new key only.
    w.refuses(
        &g("rotation-not-signed-by-old"),
        "signatures by the previous root keys",
        |r, s| {
            r.rotate_root(false);
            bump(r);
            r.publish(s);
        },
    );
    // Lengths that do not match what snapshot lists.
    w.refuses(&g("length-mismatch"), "snapshot says", |r, s| {
        r.targets_version += 1;
        bump(r);
        let files = r.sign();
        let mut meta = BTreeMap::new();
        meta.insert("root".into(), tufd_tuf::FileMeta::of(&files.root));
        let mut tm = tufd_tuf::FileMeta::of(&files.targets);
        tm.length += 10;
        meta.insert("targets".into(), tm);
        for (n, b) in &files.delegations {
            meta.insert(n.clone(), tufd_tuf::FileMeta::of(b));
        }
        let snapshot = r.snapshot_over(meta);
        let timestamp = r.timestamp_over(&snapshot);
        let files = tufd_tests::tufrepo::SignedFiles {
            snapshot,
            timestamp,
            ..files
        };
        r.serve_files(s, &files);
    });
    // Malformed JSON at every level, each correctly listed by its parent.
    for (level, reason) in [
        ("timestamp", "timestamp metadata is not valid"),
        ("snapshot", "snapshot metadata is not valid"),
        ("root", "root metadata is not valid"),
        ("targets", "targets metadata is not valid"),
        (
            "targets/releases",
            "needs targets/releases, which did not verify",
        ),
    ] {
        let gun = g(&format!("malformed-{}", level.replace('/', "-")));
        w.refuses(&gun, reason, |r, s| {
            let garbage = br#"{"signed": {"_type": "Targets", "version": "#.to_vec();
            r.targets_version += 1;
            bump(r);
            let mut files = r.sign();
            match level {
                "timestamp" => files.timestamp = garbage,
                "snapshot" => {
                    files.snapshot = garbage;
                    files.timestamp = r.timestamp_over(&files.snapshot);
                }
                "root" => files = r.seal(garbage, files.targets, files.delegations),
                "targets" => files = r.seal(files.root, garbage, files.delegations),
                _ => {
                    files.delegations.insert(level.into(), garbage);
                    files = r.seal(files.root, files.targets, files.delegations);
                }
            }
            r.serve_files(s, &files);
        });
    }
}

#[test]
fn limits_deadline_and_root_certificates() {
    let w = World::new("[verification]\ndeadline_seconds = 2\nmax_bytes = 1048576\n");
    let g = |s: &str| format!("localhost:5000/hostile/{s}");
    w.refuses(&g("endless"), "exceeds the limit", |r, s| {
        bump(r);
        r.publish(s);
        s.set(&r.gun, "timestamp.json", Reply::Endless);
    });
    w.refuses(&g("slow"), "deadline of 2 s", |r, s| {
        r.targets_version += 1;
        bump(r);
        let files = r.publish(s);
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&files.targets));
        s.set(
            &r.gun,
            &format!("targets.{sha}.json"),
            Reply::Slow(Duration::from_secs(8), files.targets),
        );
    });
    // First use of a root whose certificate names another repository, or
    // has expired.
    for (name, cn, not_before, reason) in [
        (
            "wrong-cn",
            "localhost:5000/other",
            OffsetDateTime::now_utc(),
            "does not match",
        ),
        (
            "expired-cert",
            "",
            OffsetDateTime::now_utc() - time::Duration::days(3700),
            "expired",
        ),
    ] {
        let gun = g(name);
        let mut repo = CraftedRepo::new(&gun);
        let cn = if cn.is_empty() {
            gun.clone()
        } else {
            cn.to_owned()
        };
        repo.root_cert = repo.root_key.root_key(&cn, not_before);
        repo.delegation("targets/releases")
            .targets
            .insert("v1".into(), target(DIGEST, SIZE));
        repo.publish(&w.server);
        let out = w.verify(&[&format!("{gun}:v1")]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(out.stderr.contains(reason), "{name}: {out:?}");
        assert!(w.stored(&gun).is_none(), "{name}: nothing stored");
    }
}

#[test]
fn resolution_follows_docker() {
    let w = World::new("");
    let gun = "localhost:5000/hostile/resolution";
    let mut repo = CraftedRepo::new(gun);
    let d = |b: u8| target([b; 32], 10 + u64::from(b));
    repo.delegation("targets/releases").paths = vec!["v".into()];
    {
        let rel = repo.delegation("targets/releases");
        rel.targets.insert("v1".into(), d(1));
        // Outside its delegated paths: ignored.
        rel.targets.insert("outside".into(), d(2));
    }
    repo.targets.insert("v1".into(), d(3)); // releases wins
    repo.targets.insert("admin".into(), d(4));
    repo.add_delegation("targets/alice", &[""]);
    repo.delegation("targets/alice")
        .targets
        .insert("v1".into(), d(1));
    repo.delegation("targets/alice")
        .targets
        .insert("alice-only".into(), d(5));
    // A broken delegation resolution does not need: skipped.
    repo.add_delegation("targets/stale", &["stale"]);
    repo.delegation("targets/stale").expires = past();
    // A file snapshot lists that no role delegates to: never fetched.
    let mut files = repo.sign();
    files
        .delegations
        .insert("targets/orphan".into(), b"{}".to_vec());
    let files = repo.seal(files.root, files.targets, files.delegations);
    repo.serve_files(&w.server, &files);

    let out = w.verify(&[
        "--output",
        "json",
        &format!("{gun}:v1"),
        &format!("{gun}:admin"),
    ]);
    assert!(out.status.success(), "{out:?}");
    let v = out.json();
    assert_eq!(v[0]["status"], "trusted");
    assert_eq!(v[0]["role"], "targets/releases");
    assert_eq!(v[0]["digest"], format!("sha256:{}", hex::encode([1u8; 32])));
    assert_eq!(v[0]["size"], 11);
    assert_eq!(v[0]["signers"], serde_json::json!(["alice"]));
    assert_eq!(v[1]["role"], "targets");
    assert_eq!(v[1]["size"], 14);
    // The expired delegation it did not need: a warning, as docker gives.
    assert!(
        out.stderr.contains("warning") && out.stderr.contains("targets/stale was skipped"),
        "{out:?}"
    );
    let warning = v[0]["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning.starts_with(&format!(
            "{gun}: targets/stale was skipped: targets/stale expired at"
        )),
        "{v}"
    );

    for (tag, reason) in [
        ("outside", "no trust data for this tag"),
        ("alice-only", "signed only in targets/alice"),
        ("stale-1", "needs targets/stale"),
        ("never", "no trust data for this tag"),
    ] {
        let out = w.verify(&[&format!("{gun}:{tag}")]);
        assert_eq!(out.status.code(), Some(1), "{tag}: {out:?}");
        assert!(out.stderr.contains(reason), "{tag}: {out:?}");
    }
    // Passive: the reason is a warning; without a registry there is no
    // digest to answer, which is an error of its own.
    let out = w.verify(&["--mode", "passive", &format!("{gun}:never")]);
    assert!(
        out.stderr.contains("warning") && out.stderr.contains("passive"),
        "{out:?}"
    );
    // Only roles reachable from targets were fetched.
    let requested = w.server.requests.lock().unwrap().clone();
    assert!(
        !requested.iter().any(|p| p.contains("targets/orphan")),
        "{requested:?}"
    );
}

#[test]
fn no_trust_data_rotation_and_pinning() {
    let pinned_root = SoftKey::random();
    let gun_ok = "localhost:5000/pin/ok";
    let pinned_cert: Key =
        pinned_root.root_key(gun_ok, OffsetDateTime::now_utc() - time::Duration::hours(1));
    let w = World::new(&format!(
        "[[verify]]\nprefix = \"localhost:5000/pin/\"\nmode = \"enforced\"\npinned_root_keys = [\"{}\"]\ntofu = false\n\
         [[verify]]\nprefix = \"localhost:5000/notofu/\"\nmode = \"enforced\"\ntofu = false\n\
         [[verify]]\nprefix = \"localhost:5000/lax/\"\nmode = \"disabled\"\n",
        pinned_cert.id()
    ));
    // No trust data: enforced refuses with docker's words.
    let out = w.verify(&["localhost:5000/nothing/here:v1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("remote trust data does not exist for localhost:5000/nothing/here"),
        "{out:?}"
    );
    // DOCKER_CONTENT_TRUST=1 makes a disabled repository enforced.
    let out = w.env.tufctl_env(
        &["verify", "localhost:5000/lax/app:v1"],
        &[("DOCKER_CONTENT_TRUST", "1")],
    );
    assert!(
        out.stderr.contains("remote trust data does not exist"),
        "{out:?}"
    );
    let out = w.verify(&["localhost:5000/lax/app:v1"]);
    assert!(out.stderr.contains("verification is disabled"), "{out:?}");

    // A rotated root (signed by the old and the new key) is followed.
    let gun = "localhost:5000/hostile/rotated";
    let mut repo = w.trusted_repo(gun);
    repo.rotate_root(true);
    bump(&mut repo);
    repo.publish(&w.server);
    let out = w.verify(&["--print-digest", &format!("{gun}:v1")]);
    assert!(out.status.success(), "{out:?}");
    let root = w.stored_role(gun, "root").expect("root stored");
    let root = tufd_tuf::Signed::<tufd_tuf::Root>::from_role_bytes("root", &root).unwrap();
    assert_eq!(root.signed().version, 2, "the store follows the rotation");

    // Pinned root key: the right root is accepted with TOFU off...
    let mut ok = CraftedRepo::new(gun_ok);
    ok.root_key = pinned_root;
    ok.root_cert = pinned_cert;
    ok.delegation("targets/releases")
        .targets
        .insert("v1".into(), target(DIGEST, SIZE));
    ok.publish(&w.server);
    let out = w.verify(&[&format!("{gun_ok}:v1")]);
    assert!(out.status.success(), "{out:?}");
    // ...a substituted one is refused.
    let bad = "localhost:5000/pin/substituted";
    let mut sub = CraftedRepo::new(bad);
    sub.delegation("targets/releases")
        .targets
        .insert("v1".into(), target(DIGEST, SIZE));
    sub.publish(&w.server);
    let out = w.verify(&[&format!("{bad}:v1")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("none of them pinned"), "{out:?}");
    assert!(w.stored(bad).is_none());
    // TOFU off without pins: refused.
    let none = "localhost:5000/notofu/app";
    let mut r = CraftedRepo::new(none);
    r.delegation("targets/releases")
        .targets
        .insert("v1".into(), target(DIGEST, SIZE));
    r.publish(&w.server);
    let out = w.verify(&[&format!("{none}:v1")]);
    assert!(out.stderr.contains("trust on first use is off"), "{out:?}");
}

/// Runs openssl in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A P-256 key and a certificate for it with CN = `cn` (self-signed with
/// `digest`, or issued by `ca.{key,crt}` in `dir`), as a root key.
fn openssl_root(
    dir: &std::path::Path,
    name: &str,
    cn: &str,
    digest: &str,
    ca: bool,
) -> (SoftKey, Key) {
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &format!("{name}.key"),
        ],
    );
    let subj = format!("/CN={}", cn.replace('/', "\\/"));
    let (csr, key, crt) = (
        format!("{name}.csr"),
        format!("{name}.key"),
        format!("{name}.crt"),
    );
    openssl(
        dir,
        &["req", "-new", "-key", &key, "-subj", &subj, "-out", &csr],
    );
    // `x509 -req` adds no extensions: a leaf, as notary wants.
    let digest = format!("-{digest}");
    let mut args = vec![
        "x509", "-req", "-in", &csr, "-days", "30", &digest, "-out", &crt,
    ];
    if ca {
        args.extend(["-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"]);
    } else {
        args.extend(["-signkey", key.as_str()]);
    }
    openssl(dir, &args);
    let pem = std::fs::read_to_string(dir.join(format!("{name}.crt"))).unwrap();
    let key = Key::ecdsa_x509(::pem::parse(&pem).unwrap().contents());
    (
        SoftKey::from_pem_file(&dir.join(format!("{name}.key"))),
        key,
    )
}

#[test]
fn sha1_and_ca_pinned_root_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ca.key",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            "ca.key",
            "-subj",
            "/CN=tufd test root CA",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-out",
            "ca.crt",
        ],
    );
    let w = World::new(&format!(
        "[[verify]]\nprefix = \"localhost:5000/ca/\"\nmode = \"enforced\"\nca = \"{}\"\ntofu = false\n",
        d.join("ca.crt").display()
    ));
    let publish = |gun: &str, root: (SoftKey, Key)| {
        let mut repo = CraftedRepo::new(gun);
        repo.root_key = root.0;
        repo.root_cert = root.1;
        repo.delegation("targets/releases")
            .targets
            .insert("v1".into(), target(DIGEST, SIZE));
        repo.publish(&w.server);
    };
    // Issued by the pinned CA: trusted with TOFU off.
    let ok = "localhost:5000/ca/issued";
    publish(ok, openssl_root(d, "issued", ok, "sha256", true));
    let out = w.verify(&[&format!("{ok}:v1")]);
    assert!(out.status.success(), "{out:?}");
    // Self-signed (a substituted root): refused.
    let sub = "localhost:5000/ca/substituted";
    publish(sub, openssl_root(d, "sub", sub, "sha256", false));
    let out = w.verify(&[&format!("{sub}:v1")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("issued by the CA pinned"), "{out:?}");
    assert!(w.stored(sub).is_none());
    // A root certificate signed with SHA-1: refused as notary does.
    let sha1 = "localhost:5000/hostile/sha1";
    publish(sha1, openssl_root(d, "sha1", sha1, "sha1", false));
    let out = w.verify(&[&format!("{sha1}:v1")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("SHA-1"), "{out:?}");
    assert!(w.stored(sha1).is_none());
}

#[test]
fn concurrent_verifications_share_one_byte_budget() {
    // 64 KiB for all verifications together: one timestamp's limit. A
    // verification whose timestamp stalls holds all of it.
    let w = World::new("[verification]\ndeadline_seconds = 4\nmax_total_bytes = 65536\n");
    let g = |s: &str| format!("localhost:5000/budget/{s}");
    let stalled = CraftedRepo::new(&g("stalled"));
    let files = stalled.publish(&w.server);
    w.server.set(
        &stalled.gun,
        "timestamp.json",
        Reply::Slow(Duration::from_secs(6), files.timestamp.clone()),
    );
    let mut other = CraftedRepo::new(&g("other"));
    other
        .delegation("targets/releases")
        .targets
        .insert("v1".into(), target(DIGEST, SIZE));
    other.publish(&w.server);

    std::thread::scope(|s| {
        let first = s.spawn(|| w.verify(&[&format!("{}:v1", stalled.gun)]));
        let asked = format!("/v2/{}/_trust/tuf/timestamp.json", stalled.gun);
        let start = std::time::Instant::now();
        while !w.server.requests.lock().unwrap().contains(&asked) {
            assert!(start.elapsed() < Duration::from_secs(10), "never asked");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The other repository waits a quarter of the deadline, then is
        // refused as busy: not verified, nothing stored.
        let start = std::time::Instant::now();
        let out = w.verify(&["--print-digest", &format!("{}:v1", other.gun)]);
        let took = start.elapsed();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            out.stderr.contains("busy") && out.stderr.contains("max_total_bytes"),
            "{out:?}"
        );
        assert!(out.stdout.is_empty(), "{out:?}");
        assert!(w.stored(&other.gun).is_none());
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "{took:?}"
        );
        // The daemon keeps answering meanwhile.
        let status = w.env.tufctl(&["status"]);
        assert!(status.status.success(), "{status:?}");
        let first = first.join().unwrap();
        assert_eq!(first.status.code(), Some(1), "{first:?}");
        assert!(first.stderr.contains("deadline"), "{first:?}");
    });
    // The stalled verification gave its bytes back.
    let out = w.verify(&["--print-digest", &format!("{}:v1", other.gun)]);
    assert_eq!(
        out.stdout,
        format!("{}@sha256:{}\n", other.gun, hex::encode(DIGEST)),
        "{out:?}"
    );
}
