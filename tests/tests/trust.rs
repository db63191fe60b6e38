//! Docker Content Trust end to end: tufd and tufctl as processes, keys on a
//! SoftHSM2 token, a real notary-server and notary-signer on loopback, and
//! the real `notary` and `docker` clients reading what tufd publishes.

use std::process::Command;
use tufd_tests::daemon::TestEnv;
use tufd_tests::notary::NotaryServers;

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

/// A daemon configuration with one SoftHSM2 token and `servers` as the
/// notary server for every repository.
fn trust_config(env: &TestEnv, servers: &NotaryServers) -> String {
    servers.daemon_config(env, "")
}

/// Generates key `name` on the daemon's token and adds it as a signer of
/// `gun` (initializing the repository if it is new).
fn signer(env: &TestEnv, name: &str, gun: &str) {
    env.tufctl(&["key", "generate", name]).ok();
    let public = format!("{name}.pub");
    env.tufctl(&["signer", "add", name, gun, "--key", &public])
        .ok();
}

/// `notary list GUN [--roles R]` rows as (name, hex digest, size, role).
fn notary_list(
    servers: &NotaryServers,
    gun: &str,
    role: Option<&str>,
) -> Vec<(String, String, u64, String)> {
    let cli = servers.cli();
    let mut args = vec!["list", gun];
    if let Some(r) = role {
        args.extend(["--roles", r]);
    }
    let out = cli.run_ok(args);
    out.stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4 && f[1].len() == 64).then(|| {
                (
                    f[0].to_owned(),
                    f[1].to_owned(),
                    f[2].parse().unwrap_or(0),
                    f[3].to_owned(),
                )
            })
        })
        .collect()
}

fn hex_of(digest: &str) -> String {
    digest.trim_start_matches("sha256:").to_owned()
}

#[test]
fn tufd_repository_is_read_by_the_real_notary_client() {
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let _d = env.start_with(&trust_config(&env, &servers));
    let gun = "localhost:5000/tufd/app";

    env.tufctl(&["key", "generate", "alice"]).ok();
    env.tufctl(&["key", "generate", "bob"]).ok();
    let added = env
        .tufctl(&[
            "-o",
            "json",
            "signer",
            "add",
            "alice",
            gun,
            "--key",
            "alice.pub",
        ])
        .json();
    assert_eq!(added["changes"][0]["initialized"], true, "{added}");
    env.tufctl(&["signer", "add", "bob", gun, "--key", "bob.pub"])
        .ok();

    // Root and targets keys were generated on the token, named for the repository.
    let keys = env.tufctl(&["-o", "json", "key", "list"]).json();
    let names: Vec<String> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            format!(
                "{}@{}",
                k["name"].as_str().unwrap(),
                k["gun"].as_str().unwrap()
            )
        })
        .collect();
    assert!(names.contains(&format!("root@{gun}")), "{names:?}");
    assert!(names.contains(&format!("targets@{gun}")), "{names:?}");

    env.tufctl(&[
        "sign",
        &format!("{gun}:v1"),
        "--digest",
        D1,
        "--size",
        "1234",
    ])
    .ok();
    // Several tags, one transaction.
    env.tufctl(&[
        "sign",
        &format!("{gun}:v2"),
        &format!("{gun}:_Rc-1.x"),
        "--digest",
        D2,
        "--size",
        "99",
    ])
    .ok();

    // As docker does, the tag went into targets/releases and into the
    // signers' own roles.
    let releases = notary_list(&servers, gun, Some("targets/releases"));
    let v1 = releases
        .iter()
        .find(|r| r.0 == "v1")
        .unwrap_or_else(|| panic!("{releases:?}"));
    assert_eq!(
        (v1.1.as_str(), v1.2, v1.3.as_str()),
        (hex_of(D1).as_str(), 1234, "targets/releases")
    );
    let rows = notary_list(&servers, gun, None);
    let find = |name: &str| rows.iter().find(|r| r.0 == name).cloned();
    assert!(
        find("v1").is_some_and(|r| r.1 == hex_of(D1) && r.2 == 1234),
        "{rows:?}"
    );
    let v2 = find("v2").unwrap();
    assert_eq!((v2.1.as_str(), v2.2), (hex_of(D2).as_str(), 99));
    assert!(find("_Rc-1.x").is_some(), "{rows:?}");
    assert_eq!(rows.len(), 3, "exactly the signed tags: {rows:?}");

    // The signers' delegations are what docker makes.
    let out = servers.cli().run_ok(["delegation", "list", gun]);
    assert!(out.stdout.contains("targets/alice"), "{out}");
    assert!(out.stdout.contains("targets/bob"), "{out}");
    assert!(out.stdout.contains("targets/releases"), "{out}");

    // Tags outside docker's grammar are refused before anything is signed.
    for bad in ["bad\ttag", "a<b>&c-ü€", "../../x"] {
        env.tufctl(&[
            "sign",
            &format!("{gun}:{bad}"),
            "--digest",
            D3,
            "--size",
            "1",
        ])
        .fails_with(2, "invalid");
    }

    // tufctl inspect agrees with notary.
    let inspect = env.tufctl(&["-o", "json", "inspect", gun]).json();
    let tags: Vec<&str> = inspect[0]["SignedTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["SignedTag"].as_str().unwrap())
        .collect();
    assert_eq!(tags.len(), 3, "{inspect}");
    assert!(tags.contains(&"v1") && tags.contains(&"v2"));
}

#[test]
fn docker_trust_inspect_reads_a_tufd_repository() {
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let _d = env.start_with(&trust_config(&env, &servers));
    let gun = "localhost:5000/tufd/docker";
    signer(&env, "alice", gun);
    env.tufctl(&["sign", &format!("{gun}:v1"), "--digest", D1, "--size", "10"])
        .ok();

    let out = servers
        .docker(&env.path().join("docker"))
        .unwrap()
        .args(["trust", "inspect", gun])
        .output()
        .expect("docker CLI");
    assert!(out.status.success(), "{out:?}");
    let docker: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours = env.tufctl(&["-o", "json", "inspect", gun]).json();
    assert_eq!(
        docker, ours,
        "docker trust inspect and tufctl inspect differ"
    );
    assert_eq!(docker[0]["SignedTags"][0]["SignedTag"], "v1");
    assert_eq!(docker[0]["SignedTags"][0]["Digest"], hex_of(D1));
    assert_eq!(docker[0]["SignedTags"][0]["Signers"][0], "alice");
}

#[test]
fn tufd_signs_into_a_repository_the_notary_client_made() {
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let gun = "localhost:5000/notary/made";
    let dir = env.path();

    // A releases key made outside, as a CI team would have it.
    let run = |cmd: &mut Command| {
        let out = cmd.current_dir(dir).output().unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    run(Command::new("openssl").args([
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "rel.key",
    ]));
    run(Command::new("openssl").args([
        "req",
        "-new",
        "-x509",
        "-key",
        "rel.key",
        "-out",
        "rel.crt",
        "-days",
        "30",
        "-subj",
        "/CN=releases",
    ]));

    let cli = servers.cli();
    cli.run_ok(["init", gun, "-p"]);
    cli.run_ok(["key", "rotate", gun, "snapshot", "-r"]);
    cli.run_ok([
        "delegation",
        "add",
        gun,
        "targets/releases",
        dir.join("rel.crt").to_str().unwrap(),
        "--all-paths",
    ]);
    std::fs::write(dir.join("payload"), b"hello from notary").unwrap();
    cli.run_ok([
        "add",
        gun,
        "from-notary",
        dir.join("payload").to_str().unwrap(),
    ]);
    cli.run_ok(["publish", gun]);

    let _d = env.start_with(&trust_config(&env, &servers));
    let before = env.tufctl(&["-o", "json", "inspect", gun]).json();
    let tags = before[0]["SignedTags"].as_array().unwrap();
    assert_eq!(tags.len(), 1, "{before}");
    assert_eq!(tags[0]["SignedTag"], "from-notary");
    assert_eq!(tags[0]["Signers"][0], "Repo Admin");

    // Without the releases key, tufd says what is missing.
    env.tufctl(&["sign", &format!("{gun}:v1"), "--digest", D1, "--size", "5"])
        .fails_with(1, "holds no key of targets/releases");
    env.tufctl(&[
        "key",
        "load",
        dir.join("rel.key").to_str().unwrap(),
        "--name",
        "releaser",
    ])
    .ok();
    env.tufctl(&["sign", &format!("{gun}:v1"), "--digest", D1, "--size", "5"])
        .ok();

    let rows = notary_list(&servers, gun, None);
    assert!(
        rows.iter()
            .any(|r| r.0 == "from-notary" && r.3 == "targets"),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.0 == "v1" && r.1 == hex_of(D1) && r.3 == "targets/releases"),
        "{rows:?}"
    );
}

#[test]
fn concurrent_signers_and_a_racing_removal_leave_a_verifiable_repository() {
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let config = trust_config(&env, &servers);
    let _d = env.start_with(&config);
    let gun = "localhost:5000/tufd/race";
    env.tufctl(&["key", "generate", "alice"]).ok();
    env.tufctl(&["key", "generate", "bob"]).ok();
    env.tufctl(&["signer", "add", "alice", gun, "--key", "alice.pub"])
        .ok();
    env.tufctl(&["signer", "add", "bob", gun, "--key", "bob.pub"])
        .ok();

    // Two clients sign different tags at the same time.
    std::thread::scope(|s| {
        let a =
            s.spawn(|| env.tufctl(&["sign", &format!("{gun}:one"), "--digest", D1, "--size", "1"]));
        let b =
            s.spawn(|| env.tufctl(&["sign", &format!("{gun}:two"), "--digest", D2, "--size", "2"]));
        a.join().unwrap().ok();
        b.join().unwrap().ok();
    });
    let rows = notary_list(&servers, gun, None);
    assert!(
        rows.iter().any(|r| r.0 == "one") && rows.iter().any(|r| r.0 == "two"),
        "{rows:?}"
    );

    // A signer removal racing a sign: both answer accurately and the
    // repository verifies afterwards.
    let (sign, remove) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            env.tufctl(&[
                "sign",
                &format!("{gun}:three"),
                "--digest",
                D3,
                "--size",
                "3",
            ])
        });
        let b = s.spawn(|| env.tufctl(&["signer", "remove", "alice", gun]));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(sign.status.success(), "{sign:?}");
    assert!(remove.status.success(), "{remove:?}");
    let rows = notary_list(&servers, gun, None);
    for t in ["one", "two", "three"] {
        assert!(
            rows.iter().any(|r| r.0 == t),
            "{t} missing after the race: {rows:?}"
        );
    }
    let delegations = servers.cli().run_ok(["delegation", "list", gun]);
    assert!(
        !delegations.stdout.contains("targets/alice"),
        "{delegations}"
    );

    // Removing the last signer is refused unless forced.
    env.tufctl(&["signer", "remove", "bob", gun])
        .fails_with(1, "last key of targets/releases");
    assert!(notary_list(&servers, gun, None).len() == 3);
    // Forced: the keyless targets/releases is skipped by readers (notary,
    // docker, tufd) instead of breaking the repository.
    env.tufctl(&["signer", "remove", "bob", gun, "--allow-last-signer", "-f"])
        .ok();
    let inspect = env.tufctl(&["-o", "json", "inspect", gun]).json();
    assert_eq!(
        inspect[0]["Signers"].as_array().map(Vec::len),
        Some(0),
        "{inspect}"
    );
    notary_list(&servers, gun, None);
}

#[test]
fn revoke_and_rotations_keep_the_repository_valid() {
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let _d = env.start_with(&trust_config(&env, &servers));
    let gun = "localhost:5000/tufd/rotate";
    signer(&env, "alice", gun);
    env.tufctl(&[
        "sign",
        &format!("{gun}:v1"),
        &format!("{gun}:v2"),
        "--digest",
        D1,
        "--size",
        "1",
    ])
    .ok();

    env.tufctl(&["revoke", &format!("{gun}:v1")]).ok();
    let rows = notary_list(&servers, gun, None);
    assert_eq!(
        rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["v2"],
        "{rows:?}"
    );
    env.tufctl(&["revoke", &format!("{gun}:nope")])
        .fails_with(1, "no tag nope is signed");

    for role in ["targets", "snapshot", "timestamp", "root"] {
        let out = env.tufctl(&["key", "rotate", gun, role]);
        assert!(out.status.success(), "rotate {role}: {out:?}");
        // A fresh notary client (trust on first use) and one that cached the
        // old root both accept the repository.
        let rows = notary_list(&servers, gun, None);
        assert_eq!(rows.len(), 1, "after rotating {role}: {rows:?}");
    }
    // Still signable after all rotations.
    env.tufctl(&["sign", &format!("{gun}:v3"), "--digest", D3, "--size", "3"])
        .ok();
    assert_eq!(notary_list(&servers, gun, None).len(), 2);
}

#[test]
fn a_repository_tufd_does_not_know_is_reported_clearly() {
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let _d = env.start_with(&trust_config(&env, &servers));
    env.tufctl(&["inspect", "localhost:5000/none/here"])
        .fails_with(1, "has no trust data on the server");
    env.tufctl(&[
        "sign",
        "localhost:5000/none/here:v1",
        "--digest",
        D1,
        "--size",
        "1",
    ])
    .fails_with(1, "`tufctl signer add` initializes it");
    env.tufctl(&[
        "sign",
        "localhost:5000/none/here:v1",
        "--digest",
        "sha256:xyz",
        "--size",
        "1",
    ])
    .fails_with(2, "64 lowercase hex digits");
}

#[test]
fn sign_without_a_digest_reads_the_manifest_from_the_registry() {
    let servers = NotaryServers::start();
    let registry = tufd_tests::registry::TestRegistry::start();
    let pushed = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(registry.push_image("team/app", "v1"));
    let env = TestEnv::new();
    let _d = env.start_with(&trust_config(&env, &servers));
    let gun = format!("{}/team/app", registry.host());
    signer(&env, "alice", &gun);

    let out = env.tufctl(&["sign", &format!("{gun}:v1")]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.contains("from the registry"),
        "progress shown: {out:?}"
    );
    let rows = notary_list(&servers, &gun, Some("targets/releases"));
    let v1 = rows
        .iter()
        .find(|r| r.0 == "v1")
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert_eq!(format!("sha256:{}", v1.1), pushed.digest_string());
    assert_eq!(v1.2, pushed.size());

    env.tufctl(&["sign", &format!("{gun}:nope")])
        .fails_with(1, "no tag nope");
    assert_eq!(
        notary_list(&servers, &gun, None).len(),
        1,
        "nothing signed for a missing tag"
    );
}

#[test]
fn roles_near_expiry_are_resigned_on_the_next_write() {
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let short = format!(
        "{}[expiry]\ntargets_days = 30\n",
        trust_config(&env, &servers)
    );
    let d = env.start_with(&short);
    let gun = "localhost:5000/tufd/expiry";
    env.tufctl(&["key", "generate", "alice"]).ok();
    env.tufctl(&["key", "generate", "bob"]).ok();
    env.tufctl(&["signer", "add", "alice", gun, "--key", "alice.pub"])
        .ok();
    env.tufctl(&["sign", &format!("{gun}:v1"), "--digest", D1, "--size", "1"])
        .ok();
    let warned = env.tufctl(&["inspect", gun]);
    assert!(warned.status.success(), "{warned:?}");
    assert!(
        warned.stderr.contains("targets/releases"),
        "expiry warning: {warned:?}"
    );
    assert!(d.stop().success());

    // Default expiries now; an unrelated change re-signs the short-lived roles.
    let _d = env.start_with(&trust_config(&env, &servers));
    let out = env.tufctl(&["signer", "add", "bob", gun, "--key", "bob.pub"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.contains("targets/releases v"),
        "releases re-signed: {out:?}"
    );
    assert!(
        out.stderr.contains("targets/alice v"),
        "alice's role re-signed: {out:?}"
    );
    let clean = env.tufctl(&["inspect", gun]);
    assert!(clean.status.success(), "{clean:?}");
    assert!(
        !clean.stderr.contains("targets/"),
        "no more warnings: {clean:?}"
    );
    assert_eq!(notary_list(&servers, gun, None).len(), 1);
}

/// A second daemon with its own token and state, for the same servers.
fn second_env(servers: &NotaryServers) -> (TestEnv, String) {
    let env = TestEnv::new();
    let config = trust_config(&env, servers);
    (env, config)
}

#[test]
fn two_daemons_racing_on_one_repository_both_land() {
    let servers = NotaryServers::start();
    let (a, config_a) = second_env(&servers);
    let (b, config_b) = second_env(&servers);
    let _da = a.start_with(&config_a);
    let _db = b.start_with(&config_b);
    let gun = "localhost:5000/tufd/two-daemons";

    // One signer key, loaded into both daemons' tokens (a CI key on two runners).
    let out = Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ci.key",
        ])
        .current_dir(a.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let key = a.path().join("ci.key");
    a.tufctl(&[
        "-o",
        "json",
        "key",
        "load",
        key.to_str().unwrap(),
        "--name",
        "ci",
    ])
    .ok();
    b.tufctl(&["key", "load", key.to_str().unwrap(), "--name", "ci"])
        .ok();
    let public = a.tufctl(&["-o", "json", "key", "list"]).json()["keys"][0]["public_key_pem"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(a.path().join("ci.pub"), public).unwrap();
    a.tufctl(&["signer", "add", "ci", gun, "--key", "ci.pub"])
        .ok();

    // Rounds of simultaneous signs from the two daemons: every publish that
    // loses the race is retried from a fresh read, so every tag lands.
    let mut expected = Vec::new();
    let mut retries = 0;
    for round in 0..4 {
        let (ta, tb) = (format!("a{round}"), format!("b{round}"));
        let (ra, rb) = std::thread::scope(|s| {
            let x = s.spawn(|| {
                a.tufctl(&[
                    "-o",
                    "json",
                    "sign",
                    &format!("{gun}:{ta}"),
                    "--digest",
                    D1,
                    "--size",
                    "1",
                ])
            });
            let y = s.spawn(|| {
                b.tufctl(&[
                    "-o",
                    "json",
                    "sign",
                    &format!("{gun}:{tb}"),
                    "--digest",
                    D2,
                    "--size",
                    "2",
                ])
            });
            (x.join().unwrap(), y.join().unwrap())
        });
        for r in [&ra, &rb] {
            retries += r.json()["changes"][0]["attempts"].as_u64().unwrap_or(1) - 1;
        }
        expected.extend([ta, tb]);
    }
    let rows = notary_list(&servers, gun, Some("targets/releases"));
    for t in &expected {
        assert!(rows.iter().any(|r| &r.0 == t), "{t} lost: {rows:?}");
    }
    assert_eq!(rows.len(), expected.len());
    eprintln!("publish races lost and retried: {retries}");
}

#[test]
fn client_held_snapshot_and_revoking_every_tag() {
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let config = trust_config(&env, &servers);
    let _d = env.start_with(&config);
    let gun = "localhost:5000/tufd/client-snapshot";
    env.tufctl(&["key", "generate", "alice"]).ok();
    env.tufctl(&[
        "signer",
        "add",
        "alice",
        gun,
        "--key",
        "alice.pub",
        "--client-snapshot",
    ])
    .ok();
    let keys = env.tufctl(&["-o", "json", "key", "list"]).json();
    assert!(
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == "snapshot" && k["gun"] == gun),
        "snapshot key on the token: {keys}"
    );
    let out = env.tufctl(&[
        "sign",
        &format!("{gun}:v1"),
        &format!("{gun}:v2"),
        "--digest",
        D1,
        "--size",
        "1",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.contains("snapshot v"),
        "tufd signed the snapshot: {out:?}"
    );
    assert_eq!(notary_list(&servers, gun, None).len(), 2);

    env.tufctl(&["revoke", gun]).fails_with(2, "--yes");
    env.tufctl(&["revoke", gun, "--yes"]).ok();
    assert!(notary_list(&servers, gun, None).is_empty());
}

#[test]
fn docker_content_trust_server_is_the_default_server() {
    let servers = NotaryServers::start();
    let mut env = TestEnv::new();
    // No [[remote]]: the daemon takes the server from its environment, as
    // docker does, and trusts it through the system roots (SSL_CERT_FILE).
    env.daemon_env.extend([
        (
            "DOCKER_CONTENT_TRUST_SERVER".to_owned(),
            servers.url().to_owned(),
        ),
        (
            "SSL_CERT_FILE".to_owned(),
            servers.ca_path().display().to_string(),
        ),
    ]);
    let _d = env.start();
    let gun = "localhost:5000/tufd/from-env";
    signer(&env, "alice", gun);
    env.tufctl(&["sign", &format!("{gun}:v1"), "--digest", D1, "--size", "1"])
        .ok();
    assert_eq!(notary_list(&servers, gun, None).len(), 1);
}
