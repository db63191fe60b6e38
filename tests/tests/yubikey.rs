//! The native YubiKey backend end to end: a real tufd process drives the
//! virtual PIV card (`tufd_tests::vcard`) through PC/SC with the `yubikey`
//! crate, and the real tufctl talks to it. Independent PIV clients
//! (yubico-piv-tool, ykcs11) check what tufd left on the card.
//!
//! Needs root, pcscd, vsmartcard-vpcd, yubico-piv-tool, ykcs11 and opensc
//! (see `tufd_tests::vcard`). Run with
//! `cargo test -p tufd-tests --test yubikey`.
//!
//! What the virtual card cannot show (attestation, touch, PIN and touch
//! policies) is checked by the tests at the end against a real YubiKey when
//! `TUFD_TEST_YUBIKEY_SERIAL` is set (PIN in `TUFD_TEST_YUBIKEY_PIN`,
//! default 123456); without it they say so and pass.

use std::process::{Command, Output};
use tufd_tests::daemon::{Daemon, TestEnv};
use tufd_tests::vcard::{SOCKET_ENV, VirtualCard};

/// The card's PIN, as the daemon gets it.
const PIN_VAR: &str = "TUFD_YK_PIN";
/// The factory-default 3DES management key.
const DEFAULT_MGM: &str = "010203040506070801020304050607080102030405060708";

/// Runs a PC/SC tool against `card`.
fn tool(card: &VirtualCard, program: &str, args: &[&str]) -> Output {
    let mut command = Command::new(program);
    card.configure(&mut command).args(args);
    command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {program}: {err}"))
}

/// Like [`tool`], failing the test when the tool fails.
fn tool_ok(card: &VirtualCard, program: &str, args: &[&str]) -> String {
    let out = tool(card, program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        card.logs()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `yubico-piv-tool -a status` (which resets the card when it disconnects,
/// as libykpiv does).
fn piv_status(card: &VirtualCard) -> String {
    tool_ok(card, "yubico-piv-tool", &["-a", "status"])
}

/// The card's serial number as yubico-piv-tool reports it.
fn serial_of(card: &VirtualCard) -> u32 {
    let status = piv_status(card);
    status
        .lines()
        .find_map(|l| l.trim().strip_prefix("Serial Number:"))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no serial number in:\n{status}"))
}

/// PIN tries left as yubico-piv-tool reports them.
fn pin_tries(card: &VirtualCard) -> u32 {
    let status = piv_status(card);
    status
        .lines()
        .find_map(|l| l.trim().strip_prefix("PIN tries left:"))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no PIN tries in:\n{status}"))
}

/// A test environment whose daemon sees `card` (and only it) with `pin`.
fn env_for(card: &VirtualCard, pin: &str) -> TestEnv {
    let mut env = TestEnv::new();
    env.daemon_env.push((
        SOCKET_ENV.into(),
        card.socket().to_string_lossy().into_owned(),
    ));
    env.daemon_env.push((PIN_VAR.into(), pin.into()));
    env
}

/// A configuration with the YubiKey token `yk` (the default token) and
/// `extra` lines in its table.
fn yk_config(env: &TestEnv, serial: u32, extra: &str) -> String {
    env.config_with(&format!(
        "[[token]]\nname = \"yk\"\nkind = \"yubikey\"\nserial = {serial}\npin = \"env:{PIN_VAR}\"\n{extra}"
    ))
}

fn keys(env: &TestEnv) -> Vec<serde_json::Value> {
    env.tufctl(&["-o", "json", "key", "list"]).json()["keys"]
        .as_array()
        .expect("keys array")
        .clone()
}

fn token(env: &TestEnv, name: &str) -> serde_json::Value {
    let list = env.tufctl(&["-o", "json", "token", "list"]).json();
    list["tokens"]
        .as_array()
        .expect("tokens array")
        .iter()
        .find(|t| t["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no token {name} in {list}"))
}

/// Generates `name` on the YubiKey token and returns its key ID.
fn generate(env: &TestEnv, name: &str) -> String {
    let out = env
        .tufctl(&["-o", "json", "key", "generate", name, "--token", "yk"])
        .json();
    assert_eq!(out["origin"], "generated", "{out}");
    out["key_id"].as_str().expect("key_id").to_owned()
}

/// `tufctl key test`: the daemon signs a fresh challenge, tufctl verifies it.
fn key_test(env: &TestEnv, name: &str, daemon: &Daemon) {
    let out = env.tufctl(&["-o", "json", "key", "test", name]);
    assert!(
        out.status.success() && out.json()["verified"] == true,
        "key test {name}: {out:?}\n{}",
        daemon.log()
    );
}

fn start_card() -> VirtualCard {
    VirtualCard::start().expect("start the virtual card")
}

/// Generate on the card, list, sign; set-up replaced the factory-default
/// management key by a PIN-protected one, the slot certificate records the
/// label, and yubico-piv-tool sees it all.
#[test]
fn generates_on_the_card_signs_and_replaces_the_default_management_key() {
    let card = start_card();
    let serial = serial_of(&card);
    let env = env_for(&card, "123456");
    let daemon = env.start_with(&yk_config(&env, serial, ""));

    let yk = token(&env, "yk");
    assert_eq!(yk["state"], "ready", "{yk}\n{}", daemon.log());
    assert_eq!(yk["serial"], serial.to_string(), "{yk}");

    let id = generate(&env, "alice");
    let listed = keys(&env);
    let alice = listed
        .iter()
        .find(|k| k["name"] == "alice")
        .unwrap_or_else(|| panic!("alice not listed: {listed:?}"));
    assert_eq!(alice["key_id"], id);
    assert_eq!(alice["token"], "yk");
    assert_eq!(alice["extractable"], false);
    key_test(&env, "alice", &daemon);

    // alice.pub hashes to the key ID, as for PKCS#11 keys.
    let text = std::fs::read_to_string(env.path().join("alice.pub")).expect("alice.pub");
    let block = pem::parse(&text).expect("PEM");
    assert_eq!(tufd_tuf::keyid::ecdsa_key_id(block.contents()), id);

    // The first free slot, 9c, holds the key and a certificate naming it.
    let cert = tool_ok(
        &card,
        "yubico-piv-tool",
        &["-a", "read-certificate", "-s", "9c"],
    );
    let der = pem::parse(cert.trim()).expect("certificate PEM");
    let parsed = <x509_cert::Certificate as x509_cert::der::Decode>::from_der(der.contents())
        .expect("X.509 certificate");
    let subject = parsed.tbs_certificate().subject().to_string();
    assert!(subject.contains("OU=tufd:alice:"), "{subject}");
    assert!(subject.contains("touch=always"), "{subject}");
    let spki = x509_cert::der::Encode::to_der(parsed.tbs_certificate().subject_public_key_info())
        .expect("SPKI");
    assert_eq!(tufd_tuf::keyid::ecdsa_key_id(&spki), id);

    // Set-up: the factory-default management key no longer works; the new
    // one is stored PIN-protected (yubico-piv-tool finds it with the PIN).
    let with_default = tool(
        &card,
        "yubico-piv-tool",
        &["-k", DEFAULT_MGM, "-a", "delete-certificate", "-s", "9a"],
    );
    assert!(
        !with_default.status.success(),
        "the default management key still authenticates: {with_default:?}"
    );
    assert!(
        daemon
            .log()
            .contains("replaced the factory-default PIV management key"),
        "{}",
        daemon.log()
    );

    // A name is unique; a second key goes to the next free slot (9e).
    std::fs::create_dir(env.path().join("again")).expect("mkdir");
    env.tufctl(&[
        "key", "generate", "alice", "--token", "yk", "--dir", "again",
    ])
    .fails_with(1, "already exists");
    let bob = generate(&env, "bob");
    assert_ne!(bob, id);
    let cert = tool_ok(
        &card,
        "yubico-piv-tool",
        &["-a", "read-certificate", "-s", "9e"],
    );
    assert!(cert.contains("BEGIN CERTIFICATE"), "{cert}");
    key_test(&env, "bob", &daemon);

    // Deleting overwrites the key and removes the certificate.
    env.tufctl(&["key", "rm", "bob", "--yes"]).ok();
    let names: Vec<_> = keys(&env).iter().map(|k| k["name"].clone()).collect();
    assert_eq!(names, vec![serde_json::json!("alice")]);
    let gone = tool(
        &card,
        "yubico-piv-tool",
        &["-a", "read-certificate", "-s", "9e"],
    );
    assert!(
        !gone.status.success() || !String::from_utf8_lossy(&gone.stdout).contains("BEGIN"),
        "the 9e certificate is gone: {gone:?}"
    );
    key_test(&env, "alice", &daemon);
}
