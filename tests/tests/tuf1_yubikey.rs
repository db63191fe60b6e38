//! A YubiKey (the virtual PIV card, `tufd_tests::vcard`) as one of two
//! root key holders of a TUF 1.0 repository: the staged root change is
//! signed on the card through the holder's own tufd (tufctl relaying its
//! touch request), and python-tuf's
//! ngclient follows the published root. Needs what the yubikey tests need
//! (root, pcscd, vsmartcard-vpcd, yubico-piv-tool).

use serde_json::json;
use std::process::Command;
use tufd_tests::daemon::TestEnv;
use tufd_tests::python::ngclient;
use tufd_tests::vcard::{SOCKET_ENV, VirtualCard};

const PIN_VAR: &str = "TUFD_YK_PIN";

fn serial_of(card: &VirtualCard) -> u32 {
    let mut cmd = Command::new("yubico-piv-tool");
    card.configure(&mut cmd).args(["-a", "status"]);
    let out = cmd.output().expect("yubico-piv-tool runs");
    let status = String::from_utf8_lossy(&out.stdout).into_owned();
    status
        .lines()
        .find_map(|l| l.trim().strip_prefix("Serial Number:"))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no serial number in:\n{status}"))
}

#[test]
fn yubikey_holder_signs_a_staged_root() {
    let card = VirtualCard::start().expect("start the virtual card");
    let serial = serial_of(&card);
    let mut yk = TestEnv::new();
    yk.daemon_env.push((
        SOCKET_ENV.into(),
        card.socket().to_string_lossy().into_owned(),
    ));
    yk.daemon_env.push((PIN_VAR.into(), "123456".into()));
    let _ykd = yk.start_with(&yk.config_with(&format!(
        "[[token]]\nname = \"yk\"\nkind = \"yubikey\"\nserial = {serial}\npin = \"env:{PIN_VAR}\"\ntouch_policy = \"always\"\nslots = [\"9c\", \"9e\"]\n"
    )));
    yk.tufctl(&["key", "generate", "holder", "--token", "yk"])
        .ok();

    let hsm = TestEnv::new();
    let _hsmd = hsm.start();
    hsm.tufctl(&["key", "generate", "holder"]).ok();

    let repo_env = TestEnv::new();
    let _repod = repo_env.start();
    let repo = repo_env.path().join("repo");
    let r = repo.to_str().unwrap();
    repo_env.tufctl(&["tuf", "init", r]).ok();
    let yk_pub = repo_env.path().join("yk.pub");
    let hsm_pub = repo_env.path().join("hsm.pub");
    std::fs::copy(yk.path().join("holder.pub"), &yk_pub).unwrap();
    std::fs::copy(hsm.path().join("holder.pub"), &hsm_pub).unwrap();
    let staged = repo_env.path().join("staged.json");
    repo_env
        .tufctl(&[
            "tuf",
            "stage",
            r,
            "-f",
            staged.to_str().unwrap(),
            "--root-key-file",
            yk_pub.to_str().unwrap(),
            "--root-key-file",
            hsm_pub.to_str().unwrap(),
            "--root-threshold",
            "2",
        ])
        .ok();
    for holder in [&yk, &hsm] {
        let f = holder.path().join("staged.json");
        std::fs::copy(&staged, &f).unwrap();
        let signed = holder.tufctl(&["-o", "json", "tuf", "sign", f.to_str().unwrap()]);
        let s = signed.json();
        assert_eq!(s["signed_key_ids"].as_array().unwrap().len(), 1, "{s:#}");
        // The card's key has touch policy "always" (the virtual card does
        // not wait): tufctl relays the daemon's touch request as it comes.
        let prompt = format!("Touch your YubiKey (serial {serial}) to sign root");
        assert_eq!(
            signed.stderr.contains(&prompt),
            std::ptr::eq(holder, &yk),
            "{signed:?}"
        );
        std::fs::copy(&f, &staged).unwrap();
    }
    let st = repo_env
        .tufctl(&["-o", "json", "tuf", "publish", r, staged.to_str().unwrap()])
        .json();
    assert_eq!(st["roles"][0]["version"], 2);
    let run = ngclient(&repo, &repo_env.path().join("client"), &json!({}));
    assert!(run.ok, "{:#}\n{}", run.output, run.stderr);
    assert_eq!(run.output["report"]["root"], 2);
}
