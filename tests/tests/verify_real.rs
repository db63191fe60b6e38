//! `tufctl verify` with real peers: a notary-server and notary-signer, the
//! `notary` and `docker` clients, and a local docker-registry from which
//! the verified digest is pulled by an engine-less client (the registry's
//! HTTP API).

use std::process::Command;
use tufd_tests::daemon::TestEnv;
use tufd_tests::notary::NotaryServers;
use tufd_tests::registry::TestRegistry;

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn trust_config(env: &TestEnv, servers: &NotaryServers, extra: &str) -> String {
    servers.daemon_config(env, extra)
}

fn signer(env: &TestEnv, name: &str, gun: &str) {
    env.tufctl(&["key", "generate", name]).ok();
    env.tufctl(&["signer", "add", name, gun, "--key", &format!("{name}.pub")])
        .ok();
}

fn verify_json(env: &TestEnv, refs: &[&str]) -> serde_json::Value {
    let mut args = vec!["verify", "--output", "json"];
    args.extend_from_slice(refs);
    let out = env.tufctl_env(&args, &[("DOCKER_CONTENT_TRUST", "")]);
    out.envelope()["data"].take()
}

#[test]
fn verify_agrees_with_docker_and_notary() {
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let d = env.start_with(&trust_config(&env, &servers, ""));
    let gun = "localhost:5000/tufd/verified";
    signer(&env, "alice", gun);
    env.tufctl(&["sign", &format!("{gun}:v1"), "--digest", D1, "--size", "10"])
        .ok();
    env.tufctl(&["sign", &format!("{gun}:v2"), "--digest", D2, "--size", "20"])
        .ok();

    let v = verify_json(&env, &[&format!("{gun}:v1"), &format!("{gun}:v2")]);
    assert_eq!(v[0]["status"], "trusted", "{v}");
    assert_eq!(v[0]["role"], "targets/releases");
    assert_eq!(v[0]["digest"], D1);
    assert_eq!(v[0]["size"], 10);
    assert_eq!(v[0]["signers"], serde_json::json!(["alice"]));
    assert_eq!(v[1]["digest"], D2);

    // The same answer as `docker trust inspect`.
    let out = servers
        .docker(&env.path().join("docker"))
        .unwrap()
        .args(["trust", "inspect", &format!("{gun}:v1")])
        .output()
        .expect("docker CLI");
    assert!(out.status.success(), "{out:?}");
    let docker: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tag = &docker[0]["SignedTags"][0];
    assert_eq!(format!("sha256:{}", tag["Digest"].as_str().unwrap()), D1);
    assert_eq!(tag["Signers"], serde_json::json!(["alice"]));

    // A root rotation by tufd is followed from the warm store, and a cold
    // daemon trusts the rotated repository on first use.
    env.tufctl(&["key", "rotate", gun, "root"]).ok();
    let v = verify_json(&env, &[&format!("{gun}:v1")]);
    assert_eq!(v[0]["status"], "trusted", "{v}");
    drop(d);
    std::fs::remove_dir_all(env.path().join("state/trust")).unwrap();
    let _d = env.start_with(&trust_config(&env, &servers, ""));
    let v = verify_json(&env, &[&format!("{gun}:v1")]);
    assert_eq!(v[0]["status"], "trusted", "{v}");

    // Revoked: refused.
    env.tufctl(&["revoke", &format!("{gun}:v2")]).ok();
    let out = env.tufctl(&["verify", &format!("{gun}:v2")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("no trust data for this tag"), "{out:?}");

    // A repository made by the notary client, target in targets.
    let made = "localhost:5000/notary/verified";
    let cli = servers.cli();
    cli.run_ok(["init", made, "-p"]);
    let payload = env.path().join("payload");
    std::fs::write(&payload, b"hello from notary").unwrap();
    cli.run_ok(["add", made, "latest", payload.to_str().unwrap()]);
    cli.run_ok(["publish", made]);
    let lookup = cli.run_ok(["lookup", made, "latest"]);
    let v = verify_json(&env, &[&format!("{made}:latest")]);
    assert_eq!(v[0]["status"], "trusted", "{v}");
    assert_eq!(v[0]["role"], "targets");
    let hex = v[0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    assert!(
        lookup.stdout.contains(hex),
        "notary lookup agrees: {lookup}"
    );
    assert_eq!(v[0]["size"], 17);
}

#[test]
fn a_ci_pipeline_pulls_only_what_verifies() {
    let servers = NotaryServers::start();
    let registry = TestRegistry::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let signed = rt.block_on(registry.push_image("team/app", "v1"));
    let unsigned = rt.block_on(registry.push_image("team/app", "v2"));
    let gun = format!("{}/team/app", registry.host());
    let env = TestEnv::new();
    let _d = env.start_with(&trust_config(
        &env,
        &servers,
        &format!(
            "[[verify]]\nprefix = \"{}/\"\nmode = \"enforced\"\n",
            registry.host()
        ),
    ));
    signer(&env, "alice", &gun);
    env.tufctl(&["sign", &format!("{gun}:v1")]).ok();

    // The CI step: pull by the printed digest.
    let pipeline = |tag: &str, mode: Option<&str>| {
        let tufctl = tufd_tests::daemon::binary("tufctl");
        let mode = mode.map(|m| format!("--mode {m}")).unwrap_or_default();
        let script = format!(
            "set -e\nref=$('{}' verify {mode} --print-digest '{gun}:{tag}')\necho \"pull $ref\"\n",
            tufctl.display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .env("TUFD_SOCKET", env.socket())
            .env_remove("DOCKER_CONTENT_TRUST")
            .output()
            .unwrap()
    };
    let out = pipeline("v1", None);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reference = stdout.trim().strip_prefix("pull ").unwrap().to_owned();
    assert_eq!(reference, format!("{gun}@{}", signed.digest_string()));
    let digest = reference.rsplit_once('@').unwrap().1;
    let (status, bytes) = rt.block_on(registry.pull_manifest("team/app", digest));
    assert_eq!(status, 200);
    assert_eq!(bytes, signed.bytes, "the pulled manifest is the signed one");

    // An unsigned tag stops the pipeline before anything is pulled.
    let out = pipeline("v2", None);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("pull"),
        "{out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no trust data for this tag"),
        "{out:?}"
    );
    // Passive: warned, the registry's digest answered.
    let out = pipeline("v2", Some("passive"));
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&unsigned.digest_string()),
        "{out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warning"),
        "{out:?}"
    );
    // Disabled: said so, the registry's digest answered.
    let out = pipeline("v2", Some("disabled"));
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verification is disabled"),
        "{out:?}"
    );
    // No trust data at all for another repository: enforced refuses,
    // passive answers.
    rt.block_on(registry.push_image("team/other", "v1"));
    let other = format!("{}/team/other:v1", registry.host());
    let out = env.tufctl(&["verify", &other]);
    assert!(
        out.stderr.contains("remote trust data does not exist for"),
        "{out:?}"
    );
    let out = env.tufctl(&["verify", "--mode", "passive", "--print-digest", &other]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.contains("remote trust data does not exist"),
        "{out:?}"
    );
}
