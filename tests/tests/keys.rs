//! Key management end to end: a real tufd process on a real SoftHSM2 token,
//! driven through the real tufctl binary over the Unix socket.

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use tufd_tests::daemon::{TestEnv, token_toml};
use tufd_tests::softhsm::{MODULE, PIN};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/docker");
/// docker names key files by the canonical key ID: tufd must compute the same.
const DOCKER_ALICE_ID: &str = "412b5a0480f7500669321bcb78325150929a23509aaed59afd5367d09035333a";

/// Asks the token directly (not through tufd) about a private key.
fn probe(env: &TestEnv, id: &str) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pkcs11-probe"))
        .env("SOFTHSM2_CONF", env.hsm.conf())
        .args([MODULE, tufd_tests::daemon::TOKEN_LABEL, PIN, id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn keys(env: &TestEnv) -> Vec<serde_json::Value> {
    env.tufctl(&["-o", "json", "key", "list"]).json()["keys"]
        .as_array()
        .expect("keys array")
        .clone()
}

#[test]
fn generated_key_is_on_the_token_and_cannot_be_read() {
    let env = TestEnv::new();
    let _d = env.start();
    let out = env
        .tufctl(&["-o", "json", "key", "generate", "alice"])
        .json();
    let id = out["key_id"].as_str().unwrap().to_owned();
    assert_eq!(out["origin"], "generated");
    assert_eq!(out["sensitive"], true);
    assert_eq!(out["extractable"], false);

    // alice.pub is what docker writes: PUBLIC KEY with a role header, and
    // it hashes to the key ID.
    let text = std::fs::read_to_string(env.path().join("alice.pub")).unwrap();
    let block = pem::parse(&text).unwrap();
    assert_eq!(block.tag(), "PUBLIC KEY");
    assert_eq!(block.headers().get("role"), Some("alice"));
    assert_eq!(tufd_tuf::keyid::ecdsa_key_id(block.contents()), id);

    // An independent PKCS#11 client sees the key, and cannot read its value.
    let list = env
        .hsm
        .pkcs11_tool(&["--login", "--pin", PIN, "--list-objects"]);
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(listing.contains("tufd:alice:"), "{listing}");
    assert!(listing.contains(&id), "CKA_ID is the key ID: {listing}");
    let probe = probe(&env, &id);
    assert_eq!(probe["found"], true);
    assert_eq!(
        probe["value"], "sensitive",
        "CKA_VALUE must be unreadable: {probe}"
    );
    assert_eq!(probe["sensitive"], true);
    assert_eq!(probe["extractable"], false);
    assert_eq!(probe["always_sensitive"], true);
    assert_eq!(probe["never_extractable"], true);
    assert_eq!(probe["local"], true, "generated on the token");

    // The key signs (proof verified by tufctl against the returned key).
    let proof = env.tufctl(&["-o", "json", "key", "test", "alice"]).json();
    assert_eq!(proof["verified"], true);
}

#[test]
fn docker_key_file_loads_and_signs_under_its_original_public_key() {
    let env = TestEnv::new();
    let _d = env.start();
    let key_file = format!("{FIXTURES}/alice.key");
    let out = env
        .tufctl_env(
            &["-o", "json", "key", "load", &key_file],
            &[("TUFCTL_KEY_PASSPHRASE", "secretpass")],
        )
        .json();
    assert_eq!(out["name"], "alice", "name comes from the role header");
    assert_eq!(out["key_id"], DOCKER_ALICE_ID);
    assert_eq!(out["origin"], "imported");
    assert_eq!(out["extractable"], false);
    let p = probe(&env, DOCKER_ALICE_ID);
    assert_eq!(p["value"], "sensitive", "{p}");
    assert_eq!(p["extractable"], false);
    assert_eq!(p["local"], false, "imported, not generated");

    let proof = env
        .tufctl(&["-o", "json", "key", "test", DOCKER_ALICE_ID])
        .json();
    let hex_field = |f: &str| hex::decode(proof["proof"][f].as_str().unwrap()).unwrap();
    let digest = Sha256::new()
        .chain_update(tufd_proto_context())
        .chain_update(hex_field("challenge"))
        .finalize();
    let original = std::fs::read_to_string(format!("{FIXTURES}/alice.pub")).unwrap();
    let original =
        p256::PublicKey::from_public_key_der(pem::parse(original).unwrap().contents()).unwrap();
    let sig = p256::ecdsa::Signature::from_slice(&hex_field("signature")).unwrap();
    p256::ecdsa::VerifyingKey::from(&original)
        .verify_prehash(&digest, &sig)
        .expect("signature verifies under docker's alice.pub");

    // The same key again, under another name, is refused.
    env.tufctl_env(
        &["key", "load", &key_file, "--name", "alice2"],
        &[("TUFCTL_KEY_PASSPHRASE", "secretpass")],
    )
    .fails_with(1, "already exists");
}

fn tufd_proto_context() -> &'static [u8] {
    b"tufd-key-proof-v1\0"
}

#[test]
fn key_files_that_cannot_be_imported_give_their_reason() {
    let env = TestEnv::new();
    let _d = env.start();
    let key_file = format!("{FIXTURES}/alice.key");
    env.tufctl_env(
        &["key", "load", &key_file],
        &[("TUFCTL_KEY_PASSPHRASE", "wrong")],
    )
    .fails_with(1, "passphrase does not decrypt");
    env.tufctl(&["key", "load", &key_file]).fails_with(
        2,
        "is encrypted: give --passphrase-file or set TUFCTL_KEY_PASSPHRASE",
    );

    let junk = env.path().join("junk.pem");
    std::fs::write(&junk, "this is not a key\n").unwrap();
    env.tufctl(&["key", "load", junk.to_str().unwrap(), "--name", "x"])
        .fails_with(1, "not PEM");
    let cert = env.path().join("cert.pem");
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    env.tufctl(&["key", "load", cert.to_str().unwrap(), "--name", "x"])
        .fails_with(1, "CERTIFICATE");
    env.tufctl(&["key", "load", "/nonexistent.key", "--name", "x"])
        .fails_with(2, "cannot read /nonexistent.key");

    // Passphrase from a file works.
    let pass = env.path().join("pass");
    std::fs::write(&pass, "secretpass\n").unwrap();
    env.tufctl(&[
        "key",
        "load",
        &key_file,
        "--passphrase-file",
        pass.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(keys(&env).len(), 1, "only the good import created a key");
}

#[test]
fn wrong_pin_is_reported_and_not_retried() {
    let env = TestEnv {
        daemon_env: vec![("TUFD_PIN".into(), "0000".into())],
        ..TestEnv::new()
    };
    let d = env.start();
    let tokens = env.tufctl(&["-o", "json", "token", "list"]).json();
    assert_eq!(tokens["tokens"][0]["state"], "pin-rejected");
    assert!(
        tokens["tokens"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("rejected the configured PIN"),
        "{tokens}"
    );
    env.tufctl(&["key", "generate", "alice"])
        .fails_with(1, "rejected the configured PIN");
    // Only one login attempt reached the token, however many requests came.
    let log = d.log();
    assert_eq!(
        log.matches("the device rejected the PIN").count(),
        1,
        "{log}"
    );
}

#[test]
fn missing_module_and_unknown_label_are_named() {
    let env = TestEnv::new();
    let config = env.config_with(&format!(
        "{}{}",
        token_toml("hsm", "/usr/lib/nonexistent-pkcs11.so", "x", "env:TUFD_PIN"),
        token_toml("dev", MODULE, "no-such-label", "env:TUFD_PIN"),
    ));
    let _d = env.start_with(&config);
    let tokens = env.tufctl(&["-o", "json", "token", "list"]).json();
    let t = tokens["tokens"].as_array().unwrap();
    assert_eq!(t[0]["state"], "unavailable");
    // Its keys are not counted: null, not 0.
    assert_eq!(t[0]["key_count"], serde_json::Value::Null, "{tokens}");
    assert!(
        t[0]["detail"]
            .as_str()
            .unwrap()
            .contains("/usr/lib/nonexistent-pkcs11.so"),
        "{tokens}"
    );
    assert_eq!(t[1]["state"], "unavailable");
    assert!(
        t[1]["detail"]
            .as_str()
            .unwrap()
            .contains("no token with label 'no-such-label'"),
        "{tokens}"
    );
    env.tufctl(&["key", "generate", "alice"]).fails_with(
        1,
        "cannot load PKCS#11 module '/usr/lib/nonexistent-pkcs11.so'",
    );
    env.tufctl(&["key", "generate", "alice", "--token", "dev"])
        .fails_with(1, "no token with label 'no-such-label'");
    env.tufctl(&["key", "generate", "alice", "--token", "nope"])
        .fails_with(1, "no token named 'nope' is configured");
    assert!(
        !env.path().join("alice.pub").exists(),
        "nothing half-written"
    );
}

#[test]
fn parallel_clients() {
    let env = TestEnv::new();
    let _d = env.start();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let env = &env;
                s.spawn(move || {
                    let name = format!("ci{i}");
                    env.tufctl(&["key", "generate", &name]).ok();
                    for _ in 0..3 {
                        let p = env.tufctl(&["-o", "json", "key", "test", &name]).json();
                        assert_eq!(p["verified"], true);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    let mut names: Vec<String> = keys(&env)
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["ci0", "ci1", "ci2", "ci3", "ci4", "ci5"]);
    // The same name from two clients at once: exactly one wins.
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|i| {
                let env = &env;
                s.spawn(move || {
                    let dir = env.path().join(format!("d{i}"));
                    std::fs::create_dir(&dir).unwrap();
                    env.tufctl(&["key", "generate", "dup", "--dir", dir.to_str().unwrap()])
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|r| r.status.success()).count(),
        1,
        "{results:?}"
    );
    assert_eq!(keys(&env).len(), 7);
}

#[test]
fn restart_finds_keys_and_handles_the_socket() {
    let env = TestEnv::new();
    let d = env.start();
    let id = env
        .tufctl(&["-o", "json", "key", "generate", "alice"])
        .json()["key_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Socket 0660 in a 0750 directory.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.socket()), 0o660);
    assert_eq!(mode(env.socket().parent().unwrap()), 0o750);

    // A second daemon on the same socket and state is refused.
    let second = std::process::Command::new(tufd_tests::daemon::binary("tufd"))
        .arg("--config")
        .arg(env.path().join("tufd.toml"))
        .env("SOFTHSM2_CONF", env.hsm.conf())
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another tufd"),
        "{second:?}"
    );

    // SIGTERM: clean exit, socket removed.
    assert!(d.stop().success());
    assert!(!env.socket().exists(), "socket removed on shutdown");

    // Restart: the key is found on the token alone.
    let d = env.start();
    let listed = keys(&env);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["key_id"], id.as_str());
    assert_eq!(
        env.tufctl(&["-o", "json", "key", "test", "alice"]).json()["verified"],
        true
    );

    // A crash leaves a stale socket; the next start replaces it.
    d.crash();
    assert!(env.socket().exists());
    let _d = env.start();
    assert_eq!(keys(&env).len(), 1);
}

#[test]
fn removal_needs_confirmation_and_generate_never_overwrites() {
    let env = TestEnv::new();
    let _d = env.start();
    env.tufctl(&["key", "generate", "alice"]).ok();
    env.tufctl(&["key", "rm", "alice"])
        .fails_with(2, "without confirmation: pass --yes");
    assert_eq!(keys(&env).len(), 1);

    // alice.pub exists: refused before any key is made.
    env.tufctl(&["key", "generate", "alice"])
        .fails_with(2, "already exists");
    std::fs::rename(env.path().join("alice.pub"), env.path().join("old.pub")).unwrap();
    // The name is taken on the token: refused, no file written.
    env.tufctl(&["key", "generate", "alice"])
        .fails_with(1, "already exists");
    assert!(!env.path().join("alice.pub").exists());

    let out = env
        .tufctl(&["-o", "json", "key", "rm", "alice", "--yes"])
        .json();
    assert_eq!(out["name"], "alice");
    assert!(keys(&env).is_empty());
    env.tufctl(&["key", "test", "alice"])
        .fails_with(1, "no key named 'alice'");
    let list = env
        .hsm
        .pkcs11_tool(&["--login", "--pin", PIN, "--list-objects"]);
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains("tufd:alice:"),
        "both halves destroyed"
    );
}

/// Names are unique across tokens: while a configured token cannot be
/// read, a new key's name cannot be shown free, and the refusal names that
/// token, why it cannot be read and what to do.
#[test]
fn generate_is_refused_while_a_token_cannot_be_read() {
    let env = TestEnv::new();
    let config = env.config_with(&format!(
        "{}{}",
        token_toml(
            "main",
            MODULE,
            tufd_tests::daemon::TOKEN_LABEL,
            "env:TUFD_PIN"
        ),
        token_toml("dev", MODULE, "no-such-label", "env:TUFD_PIN"),
    ));
    let _d = env.start_with(&config);
    let out = env.tufctl(&["key", "generate", "alice", "--token", "main"]);
    out.fails_with(
        1,
        "a key of that name could be on a token that could not be read: dev (",
    );
    for part in ["no token with label 'no-such-label'", "tufctl token unlock"] {
        assert!(out.stderr.contains(part), "{part}: {out:?}");
    }
    let listed = env
        .tufctl(&["-o", "json", "key", "list", "--token", "main"])
        .json();
    assert_eq!(listed["keys"], serde_json::json!([]), "nothing generated");
    assert!(!env.path().join("alice.pub").exists());
}

#[test]
fn tufctl_without_a_daemon_says_so() {
    let env = TestEnv::new();
    let out = env.tufctl(&["key", "list"]);
    out.fails_with(3, "is tufd running?");
    let json = env.tufctl(&["-o", "json", "status"]);
    assert_eq!(json.status.code(), Some(3));
    let v = json.envelope();
    assert_eq!(
        (v["ok"].as_bool(), v["verb"].as_str()),
        (Some(false), Some("status"))
    );
    assert_eq!(v["error"]["code"], "connect");
}

#[test]
fn bad_configuration_is_refused_at_start() {
    let env = TestEnv::new();
    let config = env.path().join("bad.toml");
    std::fs::write(&config, env.config().replace("env:TUFD_PIN", "1234")).unwrap();
    let out = std::process::Command::new(tufd_tests::daemon::binary("tufd"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("literal PIN"),
        "{out:?}"
    );
}

#[test]
fn a_key_file_for_a_short_repository_name_is_stored_under_the_normalized_name() {
    use p256::pkcs8::EncodePrivateKey;
    let env = TestEnv::new();
    let _d = env.start();
    let secret = p256::SecretKey::from_slice(&[0x42; 32]).unwrap();
    let mut block = pem::Pem::new(
        "PRIVATE KEY",
        secret.to_pkcs8_der().unwrap().as_bytes().to_vec(),
    );
    block.headers_mut().add("role", "targets").unwrap();
    block.headers_mut().add("gun", "alpine").unwrap();
    let file = env.path().join("alpine-targets.key");
    std::fs::write(&file, pem::encode(&block)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = env
        .tufctl(&["-o", "json", "key", "load", file.to_str().unwrap()])
        .json();
    assert_eq!(out["name"], "targets");
    assert_eq!(out["gun"], "docker.io/library/alpine", "{out}");
    // Found by the repository name in either spelling, as trust
    // operations look it up.
    for gun in ["alpine", "docker.io/library/alpine"] {
        let proof = env
            .tufctl(&["-o", "json", "key", "test", "targets", "--gun", gun])
            .json();
        assert_eq!(proof["verified"], true, "{gun}: {proof}");
    }
    // An invalid repository in the header is refused, naming it.
    let mut bad = pem::Pem::new("PRIVATE KEY", block.contents().to_vec());
    bad.headers_mut().add("role", "snapshot").unwrap();
    bad.headers_mut().add("gun", "UPPER/Case").unwrap();
    std::fs::write(&file, pem::encode(&bad)).unwrap();
    env.tufctl(&["key", "load", file.to_str().unwrap()])
        .fails_with(1, "the key file's `gun:` header");
}

#[test]
fn a_name_taken_with_pkcs11_tool_is_refused_and_its_key_left_unchanged() {
    let env = TestEnv::new();
    let _d = env.start();
    // The daemon has read the token (its index is current).
    env.tufctl(&["key", "generate", "alice"]).ok();
    assert_eq!(keys(&env).len(), 1);
    let made = env.hsm.pkcs11_tool(&[
        "--login",
        "--pin",
        PIN,
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--label",
        "tufd:bob:",
        "--id",
        "0102",
    ]);
    assert!(made.status.success(), "{made:?}");
    env.tufctl(&["key", "generate", "bob"])
        .fails_with(1, "already exists");
    let listing = env.tufctl(&["-o", "json", "key", "list"]).json();
    let bobs = listing["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["name"] == "bob")
        .count();
    assert_eq!(bobs, 1, "pkcs11-tool's key is listed, once: {listing}");
    // Its CKA_ID is what pkcs11-tool wrote.
    let list = env
        .hsm
        .pkcs11_tool(&["--login", "--pin", PIN, "--list-objects"]);
    let objects = String::from_utf8_lossy(&list.stdout);
    // Both halves keep it (pkcs11-tool prints one object per block of
    // indented lines).
    let ids = objects
        .lines()
        .filter(|l| l.trim_start().starts_with("ID:"))
        .filter(|l| l.trim_end().ends_with(" 0102"))
        .count();
    assert_eq!(ids, 2, "{objects}");
}
