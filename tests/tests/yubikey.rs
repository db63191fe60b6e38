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
//! policies, P-256 import) is checked against a real YubiKey when
//! `TUFD_TEST_YUBIKEY_SERIAL` is set (PIN in `TUFD_TEST_YUBIKEY_PIN`,
//! default 123456): through tufd by `real_yubikey_through_tufd` below, and
//! in-process by the `real_device` tests of tufd-keys
//! (daemon/keys/src/yubikey/real_device.rs). Without the variable they say
//! so and pass. The crate-level checks of attestation chains, policies and
//! certificate records run everywhere (`cargo test -p tufd-keys yubikey`).

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

/// PIN tries left after a card reset: while tufd's connection has the PIN
/// verified, the card answers "verified" (yubico-piv-tool prints -1) rather
/// than a count; yubico-piv-tool resets the card when it disconnects.
fn pin_tries_after_reset(card: &VirtualCard) -> u32 {
    piv_status(card);
    pin_tries(card)
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

/// The card's slots in tufd's default order, listed explicitly: the
/// virtual card has no GET METADATA, so without `slots` tufd would use only
/// slots it freed itself (see `slots_need_listing_without_metadata`).
const ALL_SLOTS: &str = "slots = [\"9c\", \"9e\", \"9d\", \"9a\", \"82\", \"83\", \"84\", \"85\", \"86\", \"87\", \"88\", \"89\", \"8a\", \"8b\", \"8c\", \"8d\", \"8e\", \"8f\", \"90\", \"91\", \"92\", \"93\", \"94\", \"95\"]\n";

/// A configuration with the YubiKey token `yk` (the default token) and
/// `extra` lines in its table; [`ALL_SLOTS`] unless `extra` names slots.
fn yk_config(env: &TestEnv, serial: u32, extra: &str) -> String {
    let slots = if extra.contains("slots =") {
        ""
    } else {
        ALL_SLOTS
    };
    env.config_with(&format!(
        "[[token]]\nname = \"yk\"\nkind = \"yubikey\"\nserial = {serial}\npin = \"env:{PIN_VAR}\"\n{slots}{extra}"
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
    // one is stored PIN-protected on the card (read back by the daemon
    // tests below after restarts).
    let with_default = tool(
        &card,
        "yubico-piv-tool",
        &[
            &format!("--key={DEFAULT_MGM}"),
            "-a",
            "delete-certificate",
            "-s",
            "9a",
        ],
    );
    assert!(
        !with_default.status.success()
            && String::from_utf8_lossy(&with_default.stderr).contains("authentication"),
        "the default management key must fail to authenticate: {with_default:?}"
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

    // Deleting overwrites the key and replaces its certificate by tufd's
    // "free slot" marker, so the slot is used again.
    env.tufctl(&["key", "rm", "bob", "--yes"]).ok();
    let names: Vec<_> = keys(&env).iter().map(|k| k["name"].clone()).collect();
    assert_eq!(names, vec![serde_json::json!("alice")]);
    let marker = tool_ok(
        &card,
        "yubico-piv-tool",
        &["-a", "read-certificate", "-s", "9e"],
    );
    let der = pem::parse(marker.trim()).expect("certificate PEM");
    let parsed = <x509_cert::Certificate as x509_cert::der::Decode>::from_der(der.contents())
        .expect("X.509 certificate");
    let subject = parsed.tbs_certificate().subject().to_string();
    assert!(
        subject.contains("OU=tufd-free-slot") && !subject.contains("bob"),
        "{subject}"
    );
    key_test(&env, "alice", &daemon);
    let carol = generate(&env, "carol");
    let cert = tool_ok(
        &card,
        "yubico-piv-tool",
        &["-a", "read-certificate", "-s", "9e"],
    );
    assert!(cert != marker, "carol's certificate replaced the marker");
    env.tufctl(&["key", "rm", "carol", "--yes"]).ok();
    assert_ne!(carol, bob);
}

/// Without GET METADATA (the virtual card has none, like firmware before
/// 5.3) and without `slots`, tufd does not guess: a slot without a
/// certificate may hold another application's key.
#[test]
fn slots_need_listing_without_metadata() {
    let card = start_card();
    let serial = serial_of(&card);
    let env = env_for(&card, "123456");
    let daemon = env.start_with(&env.config_with(&format!(
        "[[token]]\nname = \"yk\"\nkind = \"yubikey\"\nserial = {serial}\npin = \"env:{PIN_VAR}\"\n"
    )));
    let out = env.tufctl(&["key", "generate", "alice", "--token", "yk"]);
    assert!(!out.status.success(), "{out:?}\n{}", daemon.log());
    assert!(
        out.stderr
            .contains("cannot tell whether slots 9c, 9e, 9d, 9a")
            && out.stderr.contains("`slots = ["),
        "{out:?}"
    );
    // Nothing was written to the card.
    let status = piv_status(&card);
    assert!(!status.contains("Slot 9c"), "{status}");
}

/// A wrong PIN is reported with the card's count of tries left, and tufd
/// never presents it again: the count stays where the first attempt left it.
#[test]
fn wrong_pin_reports_tries_left_and_is_never_retried() {
    let card = start_card();
    let serial = serial_of(&card);
    let env = env_for(&card, "654321");
    let daemon = env.start_with(&yk_config(&env, serial, ""));

    let yk = token(&env, "yk");
    assert_eq!(yk["state"], "pin-rejected", "{yk}\n{}", daemon.log());
    let detail = yk["detail"].as_str().unwrap_or_default().to_owned();
    assert!(detail.contains("2 tries left"), "{detail}");

    // Asking again, listing and generating do not spend another try.
    assert_eq!(token(&env, "yk")["state"], "pin-rejected");
    env.tufctl(&["key", "generate", "alice", "--token", "yk"])
        .fails_with(1, "2 tries left");
    assert_eq!(pin_tries(&card), 2, "one try spent, not more");
    // After the card was reset by yubico-piv-tool, tufd reconnects and
    // still does not present the rejected PIN.
    assert_eq!(token(&env, "yk")["state"], "pin-rejected");
    assert_eq!(pin_tries(&card), 2, "still one try spent");
    assert!(
        !daemon.log().contains("123456") && !daemon.log().contains("654321"),
        "no PIN in the log:\n{}",
        daemon.log()
    );
}

/// With one PIN try left, tufd refuses to use it, even with the right PIN,
/// until the administrator allows it in the configuration
/// (`allow_last_pin_try = true`).
#[test]
fn refuses_to_spend_the_last_pin_try() {
    let card = start_card();
    let serial = serial_of(&card);
    for _ in 0..2 {
        let out = tool(
            &card,
            "yubico-piv-tool",
            &["-a", "verify-pin", "-P", "000000"],
        );
        assert!(!out.status.success(), "a wrong PIN is refused");
    }
    assert_eq!(pin_tries(&card), 1);
    let env = env_for(&card, "123456");
    let daemon = env.start_with(&yk_config(&env, serial, ""));
    let yk = token(&env, "yk");
    let detail = yk["detail"].as_str().unwrap_or_default().to_owned();
    assert_eq!(yk["state"], "unavailable", "{yk}\n{}", daemon.log());
    assert!(detail.contains("allow_last_pin_try"), "{detail}");
    env.tufctl(&["key", "generate", "alice", "--token", "yk"])
        .fails_with(1, "allow_last_pin_try");
    // No caller can decide otherwise: an unlock is refused the same way.
    env.tufctl_env(&["token", "unlock", "yk"], &[("TUFCTL_PIN", "123456")])
        .fails_with(1, "allow_last_pin_try");
    assert_eq!(pin_tries(&card), 1, "tufd did not use the last try");
    daemon.stop();
    // The administrator's decision: the configured PIN is presented.
    let daemon = env.start_with(&yk_config(&env, serial, "allow_last_pin_try = true\n"));
    generate(&env, "alice");
    key_test(&env, "alice", &daemon);
    daemon.stop();
    assert_eq!(pin_tries_after_reset(&card), 3);
}

/// `tufctl key list --attestation`: the virtual card cannot attest (it
/// answers 6A81/6A88), which is said plainly, with exit code 0; PKCS#11 keys
/// report what CKA_LOCAL claims. The JSON shape is what scripts read.
#[test]
fn key_list_with_attestation_says_plainly_what_is_not_attested() {
    use tufd_tests::daemon::{TOKEN_LABEL, token_toml};
    let card = start_card();
    let serial = serial_of(&card);
    let env = env_for(&card, "123456");
    let config = env.config_with(&format!(
        "[[token]]\nname = \"yk\"\nkind = \"yubikey\"\nserial = {serial}\npin = \"env:{PIN_VAR}\"\n{ALL_SLOTS}{}",
        token_toml(
            "dev",
            tufd_tests::softhsm::MODULE,
            TOKEN_LABEL,
            "env:TUFD_PIN"
        )
    ));
    let daemon = env.start_with(&config);
    generate(&env, "alice");
    env.tufctl(&["key", "generate", "bob", "--token", "dev"])
        .ok();
    let key_file = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/docker/alice.key");
    env.tufctl_env(
        &["key", "load", key_file, "--name", "carol", "--token", "dev"],
        &[("TUFCTL_KEY_PASSPHRASE", "secretpass")],
    )
    .ok();

    let text = env.tufctl(&["key", "list", "--attestation"]);
    let stdout = text.ok();
    assert!(
        stdout.contains("alice (token 'yk'): this device cannot attest (")
            && stdout.contains("cannot attest the key in slot 9c"),
        "{text:?}\n{}",
        daemon.log()
    );
    assert!(
        stdout.contains(
            "bob (token 'dev'): not supported by this token type (CKA_LOCAL=true says generated on token: yes)"
        ) && stdout.contains(
            "carol (token 'dev'): not supported by this token type (CKA_LOCAL=false says generated on token: no)"
        ),
        "{text:?}"
    );

    let listed = env
        .tufctl(&["-o", "json", "key", "list", "--attestation"])
        .json();
    let key = |name: &str| {
        listed["keys"]
            .as_array()
            .expect("keys array")
            .iter()
            .find(|k| k["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no key {name}: {listed}"))
    };
    let alice = key("alice")["attestation"].clone();
    assert_eq!(alice["state"], "cannot-attest", "{alice}");
    assert_eq!(alice["generated_on_device"], false, "{alice}");
    assert!(
        alice["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&format!("YubiKey serial {serial} cannot attest"))),
        "{alice}"
    );
    assert!(alice.get("device_serial").is_none(), "{alice}");
    let bob = key("bob")["attestation"].clone();
    assert_eq!(bob["state"], "not-supported", "{bob}");
    assert_eq!(bob["generated_on_device"], true, "{bob}");
    let carol = key("carol")["attestation"].clone();
    assert_eq!(carol["state"], "not-supported", "{carol}");
    assert_eq!(carol["generated_on_device"], false, "{carol}");
    // Without --attestation the devices are not asked.
    assert!(
        keys(&env).iter().all(|k| k.get("attestation").is_none()),
        "{:?}",
        keys(&env)
    );
    // The card still works after being asked.
    key_test(&env, "alice", &daemon);
}

/// `pin = "prompt"`: the token is locked until `tufctl token unlock`; a
/// wrong PIN reports the tries left and is not presented twice; the right
/// one restores the tries and is kept (also across a card reset by another
/// program) until pin_cache_seconds run out. No PIN reaches the log.
#[test]
fn prompt_pin_token_is_locked_until_unlocked_from_the_cli() {
    let card = start_card();
    let serial = serial_of(&card);
    let env = env_for(&card, "unused");
    let config = yk_config(&env, serial, "").replace(&format!("env:{PIN_VAR}"), "prompt");
    let daemon = env.start_with(&config);

    let yk = token(&env, "yk");
    assert_eq!(yk["state"], "locked", "{yk}\n{}", daemon.log());
    let locked = "locked: run `tufctl token unlock yk`";
    assert!(
        yk["detail"].as_str().is_some_and(|d| d.contains(locked)),
        "{yk}"
    );
    env.tufctl(&["key", "generate", "alice", "--token", "yk"])
        .fails_with(1, locked);
    env.tufctl(&["key", "list", "--token", "yk"])
        .fails_with(1, locked);

    // A wrong PIN: tries left reported, nothing cached; the same wrong PIN
    // again is not presented to the card.
    let unlock = |pin: &str, extra: &[&str]| {
        let mut args = vec!["token", "unlock", "yk"];
        args.extend_from_slice(extra);
        env.tufctl_env(&args, &[("TUFCTL_PIN", pin)])
    };
    unlock("654321", &[]).fails_with(1, "wrong PIN (2 tries left)");
    assert_eq!(pin_tries(&card), 2);
    unlock("654321", &[]).fails_with(1, "wrong PIN (2 tries left)");
    assert_eq!(pin_tries(&card), 2, "a rejected PIN is not presented again");
    assert_eq!(token(&env, "yk")["state"], "locked");

    // Without a PIN source and without a terminal: an input error (2).
    env.tufctl(&["token", "unlock", "yk"])
        .fails_with(2, "TUFCTL_PIN");

    // The right PIN from a file: unlocked, tries restored.
    let pin_file = env.path().join("pin");
    std::fs::write(&pin_file, "123456\n").expect("pin file");
    let out = env.tufctl(&[
        "-o",
        "json",
        "token",
        "unlock",
        "yk",
        "--pin-file",
        pin_file.to_str().expect("utf-8 path"),
    ]);
    let answer = out.json();
    assert_eq!(
        answer["token"]["state"],
        "ready",
        "{answer}\n{}",
        daemon.log()
    );
    assert_eq!(answer["cache_seconds"], 900, "{answer}");
    assert_eq!(
        pin_tries_after_reset(&card),
        3,
        "a correct PIN restores the tries"
    );
    generate(&env, "alice");
    key_test(&env, "alice", &daemon);
    // yubico-piv-tool reset the card (pin_tries): the cached PIN is
    // verified again after the reconnect.
    piv_status(&card);
    key_test(&env, "alice", &daemon);
    let log = daemon.log();
    assert!(
        !log.contains("123456") && !log.contains("654321"),
        "no PIN in the log:\n{log}"
    );
    assert!(log.contains("token unlocked"), "{log}");
    daemon.stop();

    // A short cache: the token locks again when it runs out.
    let daemon = env.start_with(&config.replace(
        "pin = \"prompt\"\n",
        "pin = \"prompt\"\npin_cache_seconds = 2\n",
    ));
    let out = unlock("123456", &[]);
    assert!(
        out.ok().contains("the daemon keeps it for 2 s"),
        "{out:?}\n{}",
        daemon.log()
    );
    key_test(&env, "alice", &daemon);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    env.tufctl(&["key", "test", "alice"]).fails_with(1, locked);
    assert_eq!(token(&env, "yk")["state"], "locked");
}

/// With one PIN try left, `tufctl token unlock` is refused and the card's
/// counter is unchanged; once the administrator sets
/// `allow_last_pin_try = true`, the PIN is presented and the correct PIN
/// restores the tries.
#[test]
fn unlock_with_the_last_try_left_needs_the_administrator() {
    let card = start_card();
    let serial = serial_of(&card);
    for _ in 0..2 {
        let out = tool(
            &card,
            "yubico-piv-tool",
            &["-a", "verify-pin", "-P", "000000"],
        );
        assert!(!out.status.success(), "a wrong PIN is refused");
    }
    assert_eq!(pin_tries(&card), 1);
    let env = env_for(&card, "unused");
    let config =
        |extra| yk_config(&env, serial, extra).replace(&format!("env:{PIN_VAR}"), "prompt");
    let daemon = env.start_with(&config(""));
    let pin = [("TUFCTL_PIN", "123456")];

    let refused = env.tufctl_env(&["token", "unlock", "yk"], &pin);
    refused.fails_with(1, "allow_last_pin_try = true");
    assert_eq!(pin_tries(&card), 1, "the counter is unchanged");
    daemon.stop();

    let daemon = env.start_with(&config("allow_last_pin_try = true\n"));
    let unlocked = env.tufctl_env(&["token", "unlock", "yk"], &pin);
    assert!(unlocked.status.success(), "{unlocked:?}\n{}", daemon.log());
    assert!(
        daemon.log().contains("allow_last_pin_try permits"),
        "the daemon says why it used the last try:\n{}",
        daemon.log()
    );
    assert_eq!(
        pin_tries_after_reset(&card),
        3,
        "the correct PIN reset the counter"
    );
    generate(&env, "alice");
    key_test(&env, "alice", &daemon);
}

/// Another program resets the card between two signatures (libykpiv resets
/// it when it disconnects): tufd reconnects, verifies the PIN again and
/// signs.
/// A wrong `tufctl token unlock` on a YubiKey in use is refused without
/// reaching the device: its keys keep signing and no try is spent.
#[test]
fn a_wrong_unlock_on_a_ready_yubikey_reaches_nothing() {
    let card = start_card();
    let serial = serial_of(&card);
    let env = env_for(&card, "123456");
    let daemon = env.start_with(&yk_config(&env, serial, ""));
    generate(&env, "alice");
    key_test(&env, "alice", &daemon);
    env.tufctl_env(&["token", "unlock", "yk"], &[("TUFCTL_PIN", "000000")])
        .fails_with(1, "already unlocked");
    key_test(&env, "alice", &daemon);
    assert!(
        !daemon.log().contains("rejected the PIN"),
        "{}",
        daemon.log()
    );
    daemon.stop();
    assert_eq!(pin_tries_after_reset(&card), 3, "no try spent");
}

#[test]
fn recovers_when_another_program_resets_the_card() {
    let card = start_card();
    let serial = serial_of(&card);
    let env = env_for(&card, "123456");
    // 9a: PIN once per session, so the PIN state lost in the reset matters.
    let daemon = env.start_with(&yk_config(&env, serial, "slots = [\"9a\", \"9d\"]\n"));
    generate(&env, "alice");
    key_test(&env, "alice", &daemon);
    for round in 0..3 {
        let status = piv_status(&card);
        assert!(status.contains("Slot 9a"), "round {round}: {status}");
        key_test(&env, "alice", &daemon);
    }
    let log = daemon.log();
    assert!(
        log.contains("YubiKey connection lost"),
        "tufd noticed the reset:\n{log}"
    );
    // A second PC/SC connection that resets the card while tufd is idle,
    // then a generation (which needs PIN and management key again).
    piv_status(&card);
    generate(&env, "bob");
    key_test(&env, "bob", &daemon);
}

/// A restarted daemon rebuilds its index from the card alone, and so does
/// one started after the card itself was restarted from its flash.
#[test]
fn restart_rebuilds_the_index_from_the_card() {
    let state = tempfile::tempdir().expect("tempdir");
    let card = VirtualCard::builder()
        .state_dir(state.path())
        .start()
        .expect("start the virtual card");
    let serial = serial_of(&card);
    let env = env_for(&card, "123456");
    let config = yk_config(&env, serial, "");
    let daemon = env.start_with(&config);
    let alice = generate(&env, "alice");
    let bob = generate(&env, "bob");
    let before = keys(&env);
    daemon.stop();

    let daemon = env.start_with(&config);
    assert_eq!(keys(&env), before, "same keys after a daemon restart");
    key_test(&env, "alice", &daemon);
    daemon.stop();
    drop(card);

    let card = VirtualCard::builder()
        .state_dir(state.path())
        .start()
        .expect("restart the virtual card");
    let mut env2 = env_for(&card, "123456");
    env2.daemon_env.retain(|(k, _)| k != "TUFD_PIN");
    let daemon = env2.start_with(&yk_config(&env2, serial, ""));
    let after = keys(&env2);
    let ids: Vec<_> = after.iter().map(|k| k["key_id"].clone()).collect();
    assert!(
        ids.contains(&serde_json::json!(alice)) && ids.contains(&serde_json::json!(bob)),
        "{after:?}"
    );
    key_test(&env2, "bob", &daemon);
    // Set-up happened once, on the first daemon: the card keeps its
    // PIN-protected management key, the new daemon uses it.
    generate(&env2, "carol");
    assert!(
        !daemon
            .log()
            .contains("replaced the factory-default PIV management key"),
        "{}",
        daemon.log()
    );
}

/// `key load` into a YubiKey: the virtual card implements PIV key import
/// for RSA only, so tufd must refuse clearly and leave nothing behind (the
/// import itself is checked on a real YubiKey by tufd-keys'
/// `real_yubikey_imports_a_p256_key`).
#[test]
fn import_refused_by_the_device_is_a_clear_error() {
    let card = start_card();
    let serial = serial_of(&card);
    let env = env_for(&card, "123456");
    let _daemon = env.start_with(&yk_config(&env, serial, ""));
    let key_file = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/docker/alice.key");
    env.tufctl_env(
        &["key", "load", key_file, "--token", "yk"],
        &[("TUFCTL_KEY_PASSPHRASE", "secretpass")],
    )
    .fails_with(1, "refused to import a P-256 key into slot 9c");
    assert!(keys(&env).is_empty(), "no key left behind");
    let cert = tool(
        &card,
        "yubico-piv-tool",
        &["-a", "read-certificate", "-s", "9c"],
    );
    assert!(
        !String::from_utf8_lossy(&cert.stdout).contains("BEGIN"),
        "no certificate written: {cert:?}"
    );
    // The device stays usable.
    generate(&env, "alice");
}

/// ykcs11, from `dpkg -L ykcs11`.
fn ykcs11() -> String {
    let listed = Command::new("dpkg")
        .args(["-L", "ykcs11"])
        .output()
        .expect("dpkg -L ykcs11");
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .find(|l| l.ends_with("/libykcs11.so"))
        .unwrap_or("/usr/lib/x86_64-linux-gnu/libykcs11.so")
        .to_owned()
}

/// Keys tufd made on the YubiKey, used through Yubico's ykcs11 by tufd's
/// PKCS#11 backend: listed under the same names and key IDs (the label
/// comes from the slot certificate), and they sign, the 9c key with a
/// context-specific login before each signature.
#[test]
fn keys_made_natively_sign_through_ykcs11() {
    let card = start_card();
    let serial = serial_of(&card);
    let env = env_for(&card, "123456");
    let daemon = env.start_with(&yk_config(&env, serial, ""));
    let alice = generate(&env, "alice"); // 9c
    let bob = generate(&env, "bob"); // 9e
    let native = keys(&env);
    daemon.stop();

    let config = env.config_with(&format!(
        "[[token]]\nname = \"ykp\"\nkind = \"pkcs11\"\nmodule = \"{}\"\nserial = \"{serial}\"\npin = \"env:{PIN_VAR}\"\nsessions = 1\n",
        ykcs11()
    ));
    let daemon = env.start_with(&config);
    let ykp = token(&env, "ykp");
    assert_eq!(ykp["state"], "ready", "{ykp}\n{}", daemon.log());
    let through_ykcs11 = keys(&env);
    for (name, id) in [("alice", &alice), ("bob", &bob)] {
        let k = through_ykcs11
            .iter()
            .find(|k| k["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed through ykcs11: {through_ykcs11:?}"));
        assert_eq!(k["key_id"], id.as_str(), "same key ID through ykcs11");
        assert_eq!(k["token"], "ykp");
        let n = native.iter().find(|k| k["name"] == name).expect("native");
        assert_eq!(k["public_key_pem"], n["public_key_pem"]);
    }
    // Two signatures each: the 9c key needs the PIN before every one.
    for _ in 0..2 {
        key_test(&env, "alice", &daemon);
        key_test(&env, "bob", &daemon);
    }
    // ... given by the context-specific login, not by recovering from a
    // refused signature with a fresh session and login.
    assert!(
        !daemon.log().contains("recovering"),
        "signatures needed recovery:\n{}",
        daemon.log()
    );
}

/// The PKCS#11 backend through ykcs11: `pin = "prompt"` locks the token
/// until `tufctl token unlock`; with one try left ykcs11 reports
/// CKF_USER_PIN_FINAL_TRY and no PIN (not even the configured one) is
/// presented until the administrator sets `allow_last_pin_try = true`.
#[test]
fn pkcs11_token_unlocks_and_respects_the_final_try_flag() {
    let card = start_card();
    let serial = serial_of(&card);
    let env = env_for(&card, "123456");
    let daemon = env.start_with(&yk_config(&env, serial, ""));
    generate(&env, "alice"); // 9c
    daemon.stop();

    let ykp_with = |pin: &str, extra: &str| {
        env.config_with(&format!(
            "[[token]]\nname = \"ykp\"\nkind = \"pkcs11\"\nmodule = \"{}\"\nserial = \"{serial}\"\npin = \"{pin}\"\nsessions = 1\n{extra}",
            ykcs11()
        ))
    };
    let ykp = |pin: &str| ykp_with(pin, "");
    let daemon = env.start_with(&ykp("prompt"));
    let locked = "locked: run `tufctl token unlock ykp`";
    assert_eq!(token(&env, "ykp")["state"], "locked", "{}", daemon.log());
    env.tufctl(&["key", "test", "alice"]).fails_with(1, locked);
    env.tufctl_env(&["token", "unlock", "ykp"], &[("TUFCTL_PIN", "654321")])
        .fails_with(1, "wrong PIN");
    assert_eq!(token(&env, "ykp")["state"], "locked");
    env.tufctl_env(&["token", "unlock", "ykp"], &[("TUFCTL_PIN", "123456")])
        .ok();
    assert_eq!(token(&env, "ykp")["state"], "ready", "{}", daemon.log());
    key_test(&env, "alice", &daemon);
    key_test(&env, "alice", &daemon);
    daemon.stop();

    piv_status(&card);
    for _ in 0..2 {
        let out = tool(
            &card,
            "yubico-piv-tool",
            &["-a", "verify-pin", "-P", "000000"],
        );
        assert!(!out.status.success(), "a wrong PIN is refused");
    }
    assert_eq!(pin_tries(&card), 1);
    let daemon = env.start_with(&ykp(&format!("env:{PIN_VAR}")));
    let state = token(&env, "ykp");
    assert!(
        state["detail"]
            .as_str()
            .is_some_and(|d| d.contains("allow_last_pin_try")),
        "{state}\n{}",
        daemon.log()
    );
    assert_eq!(pin_tries(&card), 1, "the last try was not used");
    env.tufctl_env(&["token", "unlock", "ykp"], &[("TUFCTL_PIN", "123456")])
        .fails_with(1, "allow_last_pin_try");
    assert_eq!(pin_tries(&card), 1, "the last try was not used");
    daemon.stop();
    let daemon = env.start_with(&ykp_with(
        &format!("env:{PIN_VAR}"),
        "allow_last_pin_try = true\n",
    ));
    key_test(&env, "alice", &daemon);
    daemon.stop();
    assert_eq!(
        pin_tries_after_reset(&card),
        3,
        "the correct PIN reset the counter"
    );
}

/// A Docker Content Trust repository whose root and targets keys are on the
/// YubiKey (the default token) and whose signer key is on SoftHSM2: the
/// real notary client reads what tufd published, tufctl asked for touches
/// (the keys have touch policy "always"; the virtual card does not wait).
#[test]
fn notary_repository_with_root_and_targets_keys_on_the_yubikey() {
    use tufd_tests::daemon::{TOKEN_LABEL, token_toml};
    use tufd_tests::notary::NotaryServers;
    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    let card = start_card();
    let serial = serial_of(&card);
    let servers = NotaryServers::start();
    let env = env_for(&card, "123456");
    let config = env.config_with(&format!(
        "[[token]]\nname = \"yk\"\nkind = \"yubikey\"\nserial = {serial}\npin = \"env:{PIN_VAR}\"\n{ALL_SLOTS}{}[[remote]]\nprefix = \"\"\nurl = \"{}\"\nca = \"{}\"\n",
        token_toml(
            "dev",
            tufd_tests::softhsm::MODULE,
            TOKEN_LABEL,
            "env:TUFD_PIN"
        ),
        servers.url(),
        servers.ca_path().display()
    ));
    let daemon = env.start_with(&config);
    let gun = "localhost:5000/tufd/yubikey";

    env.tufctl(&["key", "generate", "alice", "--token", "dev"])
        .ok();
    let added = env.tufctl(&[
        "-o",
        "json",
        "signer",
        "add",
        "alice",
        gun,
        "--key",
        "alice.pub",
    ]);
    assert!(added.status.success(), "{added:?}\n{}", daemon.log());
    assert_eq!(added.json()["changes"][0]["initialized"], true, "{added:?}");
    assert!(
        added.stderr.contains(&format!(
            "Touch your YubiKey (serial {serial}) to sign root for {gun}"
        )) && added.stderr.contains(&format!(
            "Touch your YubiKey (serial {serial}) to sign targets for {gun}"
        )),
        "tufctl relays the touch requests: {added:?}"
    );

    let listed = keys(&env);
    let token_of = |name: &str, g: &str| {
        listed
            .iter()
            .find(|k| k["name"] == name && k["gun"] == g)
            .map(|k| k["token"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("no key {name}@{g}: {listed:?}"))
    };
    assert_eq!(token_of("root", gun), "yk");
    assert_eq!(token_of("targets", gun), "yk");
    assert_eq!(token_of("alice", ""), "dev");

    let signed = env.tufctl(&[
        "sign",
        &format!("{gun}:v1"),
        "--digest",
        D1,
        "--size",
        "1234",
    ]);
    assert!(signed.status.success(), "{signed:?}\n{}", daemon.log());
    let cli = servers.cli();
    let out = cli.run_ok(["list", gun]);
    assert!(
        out.stdout.contains("v1") && out.stdout.contains(D1.trim_start_matches("sha256:")),
        "notary list: {out}"
    );

    // The root key's slot holds the repository's root certificate itself:
    // the certificate root.json lists (as the notary client cached it).
    let root_json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            cli.trust_dir()
                .join(format!("tuf/{gun}/metadata/root.json")),
        )
        .expect("notary cached root.json"),
    )
    .unwrap();
    let root_id = root_json["signed"]["roles"]["root"]["keyids"][0]
        .as_str()
        .unwrap();
    use base64::Engine;
    let root_pem = base64::engine::general_purpose::STANDARD
        .decode(
            root_json["signed"]["keys"][root_id]["keyval"]["public"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let root_der = pem::parse(&root_pem)
        .expect("root certificate PEM")
        .into_contents();
    let cert = tool_ok(
        &card,
        "yubico-piv-tool",
        &["-a", "read-certificate", "-s", "9c"],
    );
    let der = pem::parse(cert.trim()).expect("certificate PEM");
    assert_eq!(
        der.contents(),
        root_der.as_slice(),
        "slot 9c holds the root certificate of root.json"
    );
    let parsed = <x509_cert::Certificate as x509_cert::der::Decode>::from_der(der.contents())
        .expect("X.509 certificate");
    let subject = parsed.tbs_certificate().subject().to_string();
    assert!(subject.contains(&format!("CN={gun}")), "{subject}");

    // Restarted, the daemon still knows the key from that certificate.
    assert!(daemon.stop().success());
    let _daemon = env.start_with(&config);
    assert_eq!(token_of("root", gun), "yk");
}

/// On a real YubiKey (`TUFD_TEST_YUBIKEY_SERIAL`), through tufd and the
/// system pcscd: a key generated in retired slot 95 with touch policy
/// "never", signed with, deleted. Skipped (with a message) otherwise.
#[test]
fn real_yubikey_through_tufd() {
    let Some(serial) = std::env::var("TUFD_TEST_YUBIKEY_SERIAL")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        eprintln!("skipped: set TUFD_TEST_YUBIKEY_SERIAL to run this test on a real YubiKey");
        return;
    };
    let pin = std::env::var("TUFD_TEST_YUBIKEY_PIN").unwrap_or_else(|_| "123456".into());
    let mut env = TestEnv::new();
    env.daemon_env.push((PIN_VAR.into(), pin));
    let daemon = env.start_with(&yk_config(
        &env,
        serial,
        "slots = [\"95\"]\ntouch_policy = \"never\"\n",
    ));
    let yk = token(&env, "yk");
    assert_eq!(yk["state"], "ready", "{yk}\n{}", daemon.log());
    let name = format!("tufd-e2e-{}", std::process::id());
    generate(&env, &name);
    key_test(&env, &name, &daemon);
    env.tufctl(&["key", "rm", &name, "--yes"]).ok();
}

/// `management_key = "env:…"`: set-up puts the configured key on a device
/// that still has the factory default; other PIV tools then need that key;
/// a daemon configured with another key is refused with a clear error.
#[test]
fn configured_management_key_replaces_the_default() {
    const MGM: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978";
    let card = start_card();
    let serial = serial_of(&card);
    // A fresh card takes the factory-default key (the check below is real).
    tool_ok(
        &card,
        "yubico-piv-tool",
        &[
            &format!("--key={DEFAULT_MGM}"),
            "-a",
            "delete-certificate",
            "-s",
            "9d",
        ],
    );
    let mut env = env_for(&card, "123456");
    env.daemon_env.push(("TUFD_YK_MGM".into(), MGM.into()));
    let config = yk_config(&env, serial, "management_key = \"env:TUFD_YK_MGM\"\n");
    let daemon = env.start_with(&config);
    generate(&env, "alice");
    key_test(&env, "alice", &daemon);
    assert!(
        daemon
            .log()
            .contains("replaced the factory-default PIV management key by the configured one"),
        "{}",
        daemon.log()
    );
    daemon.stop();
    // yubico-piv-tool authenticates with the configured key, not the default.
    let default = tool(
        &card,
        "yubico-piv-tool",
        &[
            &format!("--key={DEFAULT_MGM}"),
            "-a",
            "delete-certificate",
            "-s",
            "9d",
        ],
    );
    assert!(
        !default.status.success()
            && String::from_utf8_lossy(&default.stderr).contains("authentication"),
        "{default:?}"
    );
    tool_ok(
        &card,
        "yubico-piv-tool",
        &[
            &format!("--key={MGM}"),
            "-a",
            "delete-certificate",
            "-s",
            "9d",
        ],
    );

    // Another configured key does not authenticate: refused, nothing changed.
    env.daemon_env.retain(|(k, _)| k != "TUFD_YK_MGM");
    env.daemon_env.push(("TUFD_YK_MGM".into(), "11".repeat(24)));
    let daemon = env.start_with(&config);
    env.tufctl(&["key", "generate", "bob", "--token", "yk", "--dir", "."])
        .fails_with(1, "is not the management key");
    key_test(&env, "alice", &daemon);
}

/// Concurrent requests for one YubiKey are serialized by the store (one
/// command at a time on the device), also while another program resets the
/// card in the middle.
#[test]
fn concurrent_signatures_are_serialized_on_the_device() {
    let card = start_card();
    let serial = serial_of(&card);
    let env = env_for(&card, "123456");
    let daemon = env.start_with(&yk_config(&env, serial, ""));
    generate(&env, "alice"); // 9c: PIN before each signature on the card
    generate(&env, "bob"); // 9e
    std::thread::scope(|s| {
        for worker in 0..4 {
            let (env, daemon) = (&env, &daemon);
            s.spawn(move || {
                let name = if worker % 2 == 0 { "alice" } else { "bob" };
                for _ in 0..5 {
                    key_test(env, name, daemon);
                }
            });
        }
        s.spawn(|| {
            for _ in 0..3 {
                piv_status(&card);
            }
        });
    });
    key_test(&env, "alice", &daemon);
}

/// A signer key that waits for a touch (on the YubiKey) is touched once per
/// role it signs, also when another daemon changed the repository since
/// this daemon's last read-back: the draft is signed after the confirming
/// read, not beside it and again on the fresh read.
#[test]
fn a_repository_changed_by_another_writer_costs_no_second_touch() {
    use tufd_tests::notary::NotaryServers;
    let card = start_card();
    let serial = serial_of(&card);
    let servers = NotaryServers::start();
    // This daemon: root and targets keys on SoftHSM2 (the default token),
    // bob's key on the YubiKey. The other daemon: carol's key on its own.
    let env = env_for(&card, "123456");
    let yk = format!(
        "[[token]]\nname = \"yk\"\nkind = \"yubikey\"\nserial = {serial}\npin = \"env:{PIN_VAR}\"\n{ALL_SLOTS}"
    );
    let daemon = env.start_with(&servers.daemon_config(&env, &yk));
    let other = TestEnv::new();
    let _other_daemon = other.start_with(&servers.daemon_config(&other, ""));
    let gun = "localhost:5000/tufd/touch-once";
    let digest = |n: u8| format!("sha256:{}", hex::encode([n; 32]));
    let touches = |out: &tufd_tests::daemon::CmdOutput| {
        assert!(out.status.success(), "{out:?}\n{}", daemon.log());
        out.stderr.matches("Touch your YubiKey").count()
    };

    generate(&env, "bob");
    other.tufctl(&["key", "generate", "carol"]).ok();
    let carol = other.path().join("carol.pub");
    for (name, key) in [
        ("bob", env.path().join("bob.pub")),
        ("carol", carol.clone()),
    ] {
        env.tufctl(&["signer", "add", name, gun, "--key", key.to_str().unwrap()])
            .ok();
    }
    let sign = |t: &TestEnv, tag: &str, n: u8| {
        t.tufctl(&[
            "sign",
            &format!("{gun}:{tag}"),
            "--digest",
            &digest(n),
            "--size",
            "7",
        ])
    };
    // On this daemon's own read-back: one touch per role bob signs.
    let first = touches(&sign(&env, "b1", 1));
    assert!(first >= 1, "bob's key asks for a touch");
    // The other daemon publishes; this daemon's read-back is now stale.
    sign(&other, "c1", 2).ok();
    let after_change = touches(&sign(&env, "b2", 3));
    assert_eq!(
        after_change, first,
        "a changed repository must not cost a second touch"
    );
    let listed = servers.cli().run_ok(["list", gun]);
    for tag in ["b1", "c1", "b2"] {
        assert!(listed.stdout.contains(tag), "notary list: {listed}");
    }
}
