//! tufctl as a docker user and a CI author meet it: the JSON envelope for
//! usage errors, completions that bash loads, help with exit codes and
//! variables, man pages and completions installed, docker's flags and
//! variables meaning what they mean in docker (checked against the docker
//! CLI itself where it runs without an engine), and the example
//! configuration `tufd --check-config` accepts.

use std::process::{Command, Stdio};
use tufd_tests::daemon::{CmdOutput, TestEnv, binary};
use tufd_tests::notary::NotaryServers;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/docker");
const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// Runs a binary with `args` and stdin closed.
fn run(bin: &str, args: &[&str]) -> CmdOutput {
    let out = Command::new(binary(bin))
        .args(args)
        .env_remove("TUFD_SOCKET")
        .env_remove("DOCKER_CONTENT_TRUST_SERVER")
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    CmdOutput::from(out)
}

#[test]
fn usage_errors_are_one_envelope_under_output_json() {
    for args in [
        &["-o", "json", "sign"][..],
        &["--output=json", "key", "frobnicate"],
        &["signer", "remove", "alice", "-ojson"],
    ] {
        let out = run("tufctl", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let doc = out.envelope();
        assert_eq!(doc["ok"], false, "{doc}");
        assert_eq!(doc["verb"], serde_json::Value::Null);
        assert_eq!(doc["error"]["code"], "usage");
        assert!(
            doc["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Usage:")),
            "{doc}"
        );
        assert!(out.stderr.is_empty(), "{out:?}");
    }
    // As text: clap's message on stderr, the same exit code, nothing on stdout.
    let text = run("tufctl", &["sign"]);
    assert_eq!(text.status.code(), Some(2));
    assert!(text.stdout.is_empty() && text.stderr.contains("Usage: tufctl sign"));
    // The usage line never presents --socket as required.
    assert!(!text.stderr.contains("--socket <SOCKET>"), "{text:?}");
    // --pretty (docker's table) and -o json (docker's JSON) exclude each other.
    let both = run("tufctl", &["-o", "json", "inspect", "--pretty", "reg/app"]);
    assert_eq!(both.status.code(), Some(2), "{both:?}");
    assert_eq!(both.envelope()["error"]["code"], "input");
    // A daemon that cannot be reached: exit 3, the envelope names the verb.
    let down = run(
        "tufctl",
        &["-o", "json", "--socket", "/nonexistent/s", "key", "list"],
    );
    assert_eq!(down.status.code(), Some(3));
    let doc = down.envelope();
    assert_eq!(
        (doc["verb"].as_str(), doc["error"]["code"].as_str()),
        (Some("key list"), Some("connect"))
    );
}

#[test]
fn completions_load_in_bash_and_generate_for_zsh_and_fish() {
    let tufctl = binary("tufctl");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <('{}' completion bash) && complete -p tufctl",
            tufctl.display()
        ))
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("complete") && stdout.contains("tufctl"),
        "{stdout}"
    );
    // The completion function offers the verbs.
    let words = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <('{}' completion bash); COMP_WORDS=(tufctl si); COMP_CWORD=1; COMP_LINE='tufctl si'; COMP_POINT=9; _tufctl tufctl si tufctl; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            tufctl.display()
        ))
        .output()
        .expect("bash");
    let offered = String::from_utf8_lossy(&words.stdout);
    assert!(
        offered.lines().any(|w| w == "signer"),
        "{offered} {words:?}"
    );
    assert!(offered.lines().any(|w| w == "sign"), "{offered}");
    for shell in ["zsh", "fish"] {
        let out = run("tufctl", &["completion", shell]);
        assert!(out.ok().contains("signer"), "{shell}: {out:?}");
    }
    // The script alone, even with -o json.
    let script = run("tufctl", &["-o", "json", "completion", "bash"]);
    assert!(!script.ok().contains("\"schema\""), "{script:?}");
}

#[test]
fn help_shows_exit_codes_and_environment() {
    let help = run("tufctl", &["--help"]);
    let text = help.ok();
    for needle in [
        "Exit codes:",
        "3  the daemon cannot be reached",
        "TUFCTL_KEY_PASSPHRASE",
        "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE",
        "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
        "TUFD_SOCKET",
    ] {
        assert!(
            text.contains(needle),
            "{needle} missing from --help:\n{text}"
        );
    }
    let tufd = run("tufd", &["--help"]);
    assert!(tufd.ok().contains("Exit codes:") && tufd.stdout.contains("tufd.toml(5)"));
}

#[test]
fn the_example_configuration_passes_check_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let example = run("tufd", &["--print-example-config"]);
    let path = dir.path().join("tufd.toml");
    std::fs::write(&path, example.ok()).expect("write");
    let path = path.to_str().expect("utf-8");
    let checked = run("tufd", &["--check-config", "--config", path]);
    assert!(checked.ok().contains("ok (1 token(s))"), "{checked:?}");
    // Every section of the reference appears in it.
    for section in [
        "[[token]]",
        "[[remote]]",
        "[expiry]",
        "[audit]",
        "[policy]",
        "[registry]",
    ] {
        assert!(example.stdout.contains(section), "{section}");
    }
}

#[test]
fn install_puts_binaries_man_pages_and_completions_in_place() {
    let dest = tempfile::tempdir().expect("tempdir");
    let bin_dir = binary("tufctl").parent().expect("bin dir").to_owned();
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/install"))
        .env("DESTDIR", dest.path())
        .env("BIN_DIR", &bin_dir)
        .output()
        .expect("scripts/install");
    assert!(out.status.success(), "{out:?}");
    let usr = dest.path().join("usr");
    for (file, start) in [
        ("share/man/man1/tufctl.1", ".TH TUFCTL 1"),
        (
            "share/man/man1/tufctl-signer-remove.1",
            ".TH TUFCTL-SIGNER-REMOVE 1",
        ),
        ("share/man/man8/tufd.8", ".TH tufd 8"),
        ("share/man/man5/tufd.toml.5", ".TH TUFD.TOML 5"),
        ("share/bash-completion/completions/tufctl", ""),
        ("share/zsh/vendor-completions/_tufctl", "#compdef tufctl"),
        ("share/fish/vendor_completions.d/tufctl.fish", ""),
        ("lib/systemd/system/tufd.service", ""),
        ("share/doc/tufd/tufctl-v1.schema.json", "{"),
    ] {
        let text =
            std::fs::read_to_string(usr.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            text.contains(start) && !text.is_empty(),
            "{file}: {}",
            &text[..text.len().min(200)]
        );
    }
    let page = std::fs::read_to_string(usr.join("share/man/man5/tufd.toml.5")).expect("page");
    assert!(page.contains("[[remote]]") && page.contains("pin_cache_seconds"));
    assert!(dest.path().join("etc/tufd/tufd.toml").exists());
}

/// A docker CLI configured for `servers` (its CA, its URL), with `env`.
fn docker(
    home: &std::path::Path,
    servers: &NotaryServers,
    args: &[&str],
    env: &[(&str, &str)],
) -> CmdOutput {
    let mut cmd = servers.docker(home).expect("docker config");
    cmd.args(args)
        .env_remove("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE")
        .env_remove("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    CmdOutput::from(cmd.output().expect("docker CLI"))
}

/// The signers `inspect` lists (docker's JSON).
fn signers(env: &TestEnv, gun: &str) -> usize {
    env.tufctl(&["-o", "json", "inspect", gun]).json()[0]["Signers"]
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn docker_passphrase_variables_and_signer_remove_force_mean_what_docker_means() {
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let _d = env.start_with(&servers.daemon_config(&env, ""));
    let home = env.path().join("docker");
    // docker refuses key files others may read.
    let key_path = env.path().join("alice.key");
    std::fs::copy(format!("{FIXTURES}/alice.key"), &key_path).expect("copy");
    std::fs::set_permissions(
        &key_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let key = key_path.to_str().expect("utf-8").to_owned();
    let (repo_pass, root_pass) = (
        ("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "secretpass"),
        ("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "rootpass"),
    );

    // alice.key (a docker signer key, role: alice) is decrypted with the
    // repository passphrase, by docker and by tufctl; the root passphrase
    // alone does not open it, for either.
    let d = docker(
        &home,
        &servers,
        &["trust", "key", "load", &key, "--name", "alice"],
        &[root_pass],
    );
    assert!(
        !d.status.success() && d.stderr.contains("could not decrypt key"),
        "docker: {d:?}"
    );
    env.tufctl_env(&["key", "load", &key], &[root_pass])
        .fails_with(2, "or docker's DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE");
    let d = docker(
        &home,
        &servers,
        &["trust", "key", "load", &key, "--name", "alice"],
        &[repo_pass],
    );
    assert!(d.status.success(), "docker: {d:?}");
    let loaded = env
        .tufctl_env(&["-o", "json", "key", "load", &key], &[repo_pass])
        .json();
    assert_eq!(loaded["name"], "alice", "{loaded}");

    // alice is the only signer of a repository docker made and of one tufd made.
    let pubkey = format!("{FIXTURES}/alice.pub");
    let docker_gun = "localhost:5000/cli/docker";
    let d = docker(
        &home,
        &servers,
        &[
            "trust", "signer", "add", "--key", &pubkey, "alice", docker_gun,
        ],
        &[repo_pass, root_pass],
    );
    assert!(d.status.success(), "docker: {d:?}");
    // docker encrypted the repository's new root key with the root
    // passphrase: tufctl reads that variable for it, not the other.
    let private = home.join("trust/private");
    let root_key = std::fs::read_dir(&private)
        .expect("docker's keys")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("role: root")))
        .expect("docker wrote a root key");
    let root_key = root_key.to_str().expect("utf-8");
    env.tufctl_env(&["key", "load", root_key], &[repo_pass])
        .fails_with(2, "or docker's DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE");
    let root = env
        .tufctl_env(&["-o", "json", "key", "load", root_key], &[root_pass])
        .json();
    assert_eq!(root["name"], "root", "{root}");

    let gun = "localhost:5000/cli/tufd";
    env.tufctl(&["signer", "add", "alice", gun, "--key", &pubkey])
        .ok();
    // A signed tag in each (docker asks only when alice signed the last
    // release); tufd signs docker's repository with the key it loaded.
    env.tufctl(&["sign", &format!("{gun}:v1@{D1}:10")]).ok();
    env.tufctl(&["sign", &format!("{docker_gun}:v1@{D1}:10")])
        .ok();

    // Without -f, in a script: docker asks before removing the last signer,
    // reads no answer, and keeps it; so does tufctl (given
    // --allow-last-signer, it asks the same question on stdin).
    let d = docker(
        &home,
        &servers,
        &["trust", "signer", "remove", "alice", docker_gun],
        &[repo_pass, root_pass],
    );
    assert!(
        d.stdout.contains("Are you sure") || d.stderr.contains("Are you sure"),
        "docker: {d:?}"
    );
    assert_eq!(signers(&env, docker_gun), 1, "docker kept alice");
    env.tufctl(&["signer", "remove", "alice", gun])
        .fails_with(1, "pass --allow-last-signer");
    env.tufctl(&["signer", "remove", "alice", gun, "--allow-last-signer"])
        .fails_with(2, "not confirmed; no signer was removed");
    assert_eq!(signers(&env, gun), 1, "tufctl kept alice");

    // -f skips the question: docker goes ahead; tufctl removes once the
    // last-signer override is given explicitly (-f alone is not it).
    let d = docker(
        &home,
        &servers,
        &["trust", "signer", "remove", "-f", "alice", docker_gun],
        &[repo_pass, root_pass],
    );
    // (docker then leaves the role targets/alice in place, without asking)
    assert!(
        d.status.success() && !d.stdout.contains("Are you sure"),
        "docker: {d:?}"
    );
    env.tufctl(&["signer", "remove", "-f", "alice", gun])
        .fails_with(1, "pass --allow-last-signer");
    env.tufctl(&[
        "signer",
        "remove",
        "-f",
        "--allow-last-signer",
        "alice",
        gun,
    ])
    .ok();
    assert_eq!(signers(&env, gun), 0, "tufctl removed alice");
}

#[test]
fn docker_content_trust_server_of_the_caller_is_checked_never_followed() {
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    // A second configured server, for other repositories.
    let other = "https://127.0.0.1:9";
    let extra = format!("[[remote]]\nprefix = \"localhost:5000/other\"\nurl = \"{other}\"\n");
    let _d = env.start_with(&servers.daemon_config(&env, &extra));
    let gun = "localhost:5000/cli/server";
    env.tufctl(&["key", "generate", "alice"]).ok();
    env.tufctl(&["signer", "add", "alice", gun, "--key", "alice.pub"])
        .ok();
    // The daemon's server for the repository, as docker users export it
    // (a trailing `/` is the same server): honoured.
    let same = format!("{}/", servers.url());
    env.tufctl_env(
        &["sign", &format!("{gun}:v1@{D1}:10")],
        &[("DOCKER_CONTENT_TRUST_SERVER", &same)],
    )
    .ok();
    let listed = env
        .tufctl_env(
            &["-o", "json", "inspect", gun],
            &[("DOCKER_CONTENT_TRUST_SERVER", servers.url())],
        )
        .json();
    assert_eq!(listed[0]["SignedTags"][0]["SignedTag"], "v1", "{listed}");
    // Another server, from the environment or --server: refused before
    // anything is read or signed, naming the daemon's servers.
    let elsewhere = "https://notary.elsewhere.example:4443";
    let refused = env.tufctl_env(
        &["sign", &format!("{gun}:v2@{D1}:10")],
        &[("DOCKER_CONTENT_TRUST_SERVER", elsewhere)],
    );
    refused.fails_with(
        1,
        &format!(
            "is not one of tufd's; its servers: {other}, {}",
            servers.url()
        ),
    );
    env.tufctl(&["--server", elsewhere, "inspect", gun])
        .fails_with(1, "not one of tufd's");
    let doc = env
        .tufctl(&[
            "-o",
            "json",
            "--server",
            elsewhere,
            "revoke",
            &format!("{gun}:v1"),
        ])
        .envelope();
    assert_eq!(doc["error"]["code"], "InvalidArgument", "{doc}");
    // A configured server that does not serve this repository: refused too.
    env.tufctl(&["--server", other, "inspect", gun]).fails_with(
        1,
        &format!("tufd serves {gun} from {}, not from {other}", servers.url()),
    );
    // --progress: lines on stderr even without a terminal; stdout stays
    // one envelope.
    let two = env.tufctl(&["--progress", "-o", "json", "inspect", gun, gun]);
    assert!(
        two.stderr.contains(&format!("inspecting {gun} (2 of 2)")),
        "{two:?}"
    );
    assert_eq!(two.json().as_array().map(Vec::len), Some(2));
    assert!(
        !env.tufctl(&["inspect", gun, gun])
            .stderr
            .contains("inspecting")
    );
    // Nothing was signed or revoked.
    let tags = env.tufctl(&["-o", "json", "inspect", gun]).json()[0]["SignedTags"].clone();
    assert_eq!(tags.as_array().map(Vec::len), Some(1), "{tags}");
}
