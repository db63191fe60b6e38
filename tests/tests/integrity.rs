//! A repository is never left broken: signer removal racing a sign (the
//! interleaving forced with the daemon's test pause points), kill -9 at set
//! points, repair. Real tufd/tufctl processes, real notary-server, the real
//! `notary` client (and `docker trust inspect`) as the judge.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tufd_tests::daemon::{CmdOutput, Daemon, TestEnv};
use tufd_tests::hooks::PausePoints;
use tufd_tests::notary::NotaryServers;

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn trust_config(env: &TestEnv, servers: &NotaryServers) -> String {
    servers.daemon_config(env, "")
}

/// Starts a daemon, generates key alice and makes her the signer of `gun`
/// (which initializes it); the daemon is returned running.
fn with_signer_alice(env: &TestEnv, servers: &NotaryServers, gun: &str) -> Daemon {
    let d = env.start_with(&trust_config(env, servers));
    env.tufctl(&["key", "generate", "alice"]).ok();
    env.tufctl(&["signer", "add", "alice", gun, "--key", "alice.pub"])
        .ok();
    d
}

/// Tags a fresh `notary list` shows (the notary client verifies first).
fn notary_tags(servers: &NotaryServers, gun: &str) -> Vec<String> {
    let out = servers.cli().run_ok(["list", gun]);
    out.stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4 && f[1].len() == 64).then(|| f[0].to_owned())
        })
        .collect()
}

/// Tags `docker trust inspect` shows, when the docker CLI is installed.
fn docker_tags(env: &TestEnv, servers: &NotaryServers, gun: &str) -> Option<Vec<String>> {
    let out = servers
        .docker(&env.path().join("docker"))
        .unwrap()
        .args(["trust", "inspect", gun])
        .output()
        .ok()?;
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Some(
        v[0]["SignedTags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| t["SignedTag"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default(),
    )
}

/// Every tag told "success" is listed by a fresh notary client and by
/// docker, and both daemons read the repository.
fn assert_all_listed(servers: &NotaryServers, envs: &[&TestEnv], gun: &str, told_success: &[&str]) {
    let tags = notary_tags(servers, gun);
    for t in told_success {
        assert!(
            tags.iter().any(|x| x == t),
            "{t} was reported signed but `notary list` does not show it: {tags:?}"
        );
    }
    if let Some(mut d) = docker_tags(envs[0], servers, gun) {
        d.sort();
        for t in told_success {
            assert!(d.iter().any(|x| x == t), "{t} missing for docker: {d:?}");
        }
        assert_eq!(
            d,
            inspect_tags(envs[0], gun),
            "docker and tufctl inspect agree"
        );
    }
    for env in envs {
        let out = env.tufctl(&["inspect", gun]);
        assert!(out.status.success(), "tufctl inspect: {out:?}");
    }
}

fn openssl_key(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    key
}

fn public_of(key: &Path) -> PathBuf {
    let public = key.with_extension("pub");
    let out = Command::new("openssl")
        .args(["ec", "-pubout", "-in"])
        .arg(key)
        .arg("-out")
        .arg(&public)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    public
}

fn sign(env: &TestEnv, gun: &str, tag: &str, digest: &str) -> CmdOutput {
    env.tufctl(&[
        "sign",
        &format!("{gun}:{tag}"),
        "--digest",
        digest,
        "--size",
        "1",
    ])
}

fn load(env: &TestEnv, key: &Path, name: &str) {
    env.tufctl(&["key", "load", key.to_str().unwrap(), "--name", name])
        .ok();
}

/// Two daemons on one notary-server: an admin holding the root and targets
/// keys of `gun`, and bob's CI daemon holding bob's key; alice and bob are
/// signers. With `admin_holds_releases_key`, alice's key is on the admin's
/// token and targets/releases has no file yet. Otherwise alice's key (on the
/// CI daemon for a moment, then removed from it) signed `base`, so
/// targets/releases exists signed by alice, and the admin holds no
/// releases key.
struct World {
    servers: NotaryServers,
    admin: TestEnv,
    ci: TestEnv,
}

impl World {
    /// Starts the admin's and the CI daemon, both on the world's server.
    fn start(&self) -> (Daemon, Daemon) {
        (
            self.admin
                .start_with(&trust_config(&self.admin, &self.servers)),
            self.ci.start_with(&trust_config(&self.ci, &self.servers)),
        )
    }
}

fn world(gun: &str, admin_holds_releases_key: bool) -> World {
    let servers = NotaryServers::start();
    let admin = TestEnv::new();
    let ci = TestEnv::new();
    let alice = openssl_key(admin.path(), "alice");
    let bob = openssl_key(admin.path(), "bob");
    {
        let _da = admin.start_with(&trust_config(&admin, &servers));
        let _dc = ci.start_with(&trust_config(&ci, &servers));
        if admin_holds_releases_key {
            load(&admin, &alice, "alice");
        } else {
            load(&ci, &alice, "alice");
        }
        for (name, key) in [("alice", &alice), ("bob", &bob)] {
            let public = public_of(key);
            admin
                .tufctl(&[
                    "signer",
                    "add",
                    name,
                    gun,
                    "--key",
                    public.to_str().unwrap(),
                ])
                .ok();
        }
        if !admin_holds_releases_key {
            sign(&ci, gun, "base", D1).ok();
            ci.tufctl(&["key", "rm", "alice", "--yes"]).ok();
        }
        load(&ci, &bob, "bob");
    }
    World { servers, admin, ci }
}

/// A daemon starts its next change from its own last read-back only while
/// the server still serves that state: after another daemon re-signed a tag
/// with a new digest, the first daemon's sign of the old digest must see
/// that and publish again (its last read-back says the old digest is
/// already in place, which would answer "nothing to do").
#[test]
fn a_sign_after_another_daemons_change_starts_from_that_change() {
    let gun = "localhost:5000/integrity/recent";
    // Two daemons holding alice's key (both sign targets/releases and
    // targets/alice); the first also holds the root and targets keys.
    let w = World {
        servers: NotaryServers::start(),
        admin: TestEnv::new(),
        ci: TestEnv::new(),
    };
    let alice = openssl_key(w.admin.path(), "alice");
    let (_da, _dc) = w.start();
    load(&w.admin, &alice, "alice");
    load(&w.ci, &alice, "alice");
    let public = public_of(&alice);
    w.admin
        .tufctl(&[
            "signer",
            "add",
            "alice",
            gun,
            "--key",
            public.to_str().unwrap(),
        ])
        .ok();
    let releases = |w: &World| -> Vec<(String, String)> {
        let out = w
            .servers
            .cli()
            .run_ok(["list", gun, "--roles", "targets/releases"]);
        out.stdout
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 4 && f[1].len() == 64).then(|| (f[0].to_owned(), f[1].to_owned()))
            })
            .collect()
    };
    let hex = |d: &str| d.trim_start_matches("sha256:").to_owned();
    sign(&w.admin, gun, "a", D1).ok();
    sign(&w.ci, gun, "a", D2).ok();
    assert_eq!(releases(&w), [("a".to_owned(), hex(D2))]);
    let again = sign(&w.admin, gun, "a", D1);
    again.ok();
    assert!(
        !again.stdout.contains("already") && !again.stderr.contains("already"),
        "the admin's sign must publish: {again:?}"
    );
    assert_eq!(releases(&w), [("a".to_owned(), hex(D1))]);
    // And a second change right after starts from the first one's state.
    sign(&w.admin, gun, "b", D2).ok();
    assert_eq!(
        releases(&w),
        [("a".to_owned(), hex(D1)), ("b".to_owned(), hex(D2))]
    );
}

/// A sign prepared on the daemon's last read-back (confirmed as still
/// served) is overtaken before its publish by another daemon's sign into the
/// same role: notary-server refuses the stale version, and the sign is done
/// again from a fresh read, keeping both tags.
#[test]
fn a_confirmed_sign_overtaken_before_its_publish_is_redone_from_a_fresh_read() {
    let gun = "localhost:5000/integrity/recent-overtaken";
    let mut w = world(gun, true);
    let hooks = PausePoints::arm(&mut w.ci, "confirmed");
    let (_da, dc) = w.start();
    // The CI daemon's first sign reads afresh (nothing recent yet).
    sign(&w.ci, gun, "x1", D1).ok();
    let ci = &w.ci;
    let late = std::thread::scope(|s| {
        let late = s.spawn(|| sign(ci, gun, "x2", D1));
        hooks.wait("confirmed", &dc);
        sign(&w.admin, gun, "y", D2).ok();
        hooks.release("confirmed");
        late.join().unwrap()
    });
    late.ok();
    assert!(
        dc.log().contains("lost a publish race"),
        "the stale publish was refused and retried:\n{}",
        dc.log()
    );
    assert_all_listed(&w.servers, &[&w.admin, &w.ci], gun, &["x1", "x2", "y"]);
}

/// The seed race, forced: the admin's `signer remove bob` reads the
/// repository, then bob's daemon signs and is answered, then the admin
/// publishes its removal built on the stale read.
fn removal_read_before_a_sign(gun: &str, admin_holds_releases_key: bool) -> (World, CmdOutput) {
    let mut w = world(gun, admin_holds_releases_key);
    let hooks = PausePoints::arm(&mut w.admin, "after-read");
    let (da, _dc) = w.start();
    let admin = &w.admin;
    let removal = std::thread::scope(|s| {
        let removal = s.spawn(|| admin.tufctl(&["signer", "remove", "bob", gun]));
        hooks.wait("after-read", &da);
        let signed = sign(&w.ci, gun, "v1", D2);
        assert!(signed.status.success(), "bob's sign: {signed:?}");
        hooks.release("after-read");
        removal.join().unwrap()
    });
    let mut told = vec!["v1"];
    if !admin_holds_releases_key {
        told.push("base");
    }
    assert_all_listed(&w.servers, &[&w.admin, &w.ci], gun, &told);
    drop(da);
    PausePoints::disarm(&mut w.admin);
    (w, removal)
}

#[test]
fn removal_without_a_releases_key_racing_a_sign_is_undone_and_explained() {
    let gun = "localhost:5000/integrity/race-compensate";
    let (_w, removal) = removal_read_before_a_sign(gun, false);
    // The admin cannot re-sign targets/releases: its removal was undone (bob's
    // key restored) so bob's tag keeps verifying, and the retry from a fresh
    // read refuses, saying why.
    eprintln!("removal: {removal:?}");
    removal.fails_with(1, "the removal was undone");
    assert!(
        removal.stderr.contains("signed only by bob's key"),
        "{removal:?}"
    );
}

#[test]
fn removal_with_a_releases_key_racing_the_first_sign_keeps_the_tag() {
    let gun = "localhost:5000/integrity/race-first-sign";
    let (w, removal) = removal_read_before_a_sign(gun, true);
    // The admin republished targets/releases (v1, as it had no file): that
    // conflicted with bob's v1; the retry re-signed bob's tag with alice's key.
    eprintln!("removal: {removal:?}");
    assert!(removal.status.success(), "{removal:?}");
    let delegations = w.servers.cli().run_ok(["delegation", "list", gun]);
    assert!(!delegations.stdout.contains("targets/bob"), "{delegations}");
}

#[test]
fn a_sign_read_before_a_removal_is_refused_with_a_reason() {
    let gun = "localhost:5000/integrity/race-late-sign";
    let mut w = world(gun, false);
    let hooks = PausePoints::arm(&mut w.ci, "after-read");
    let (_da, dc) = w.start();
    let ci = &w.ci;
    let signed = std::thread::scope(|s| {
        let signed = s.spawn(|| sign(ci, gun, "late", D2));
        hooks.wait("after-read", &dc);
        w.admin.tufctl(&["signer", "remove", "bob", gun]).ok();
        hooks.release("after-read");
        signed.join().unwrap()
    });
    // The server rejects bob's delegation update (his key left the
    // delegation); the fresh read then tells him why.
    signed.fails_with(1, "holds no key of targets/releases");
    assert_all_listed(&w.servers, &[&w.admin, &w.ci], gun, &["base"]);
}

/// The seed race unforced, looped: three daemons (admin with root and
/// targets keys, alice's, bob's) on one server; each iteration a fresh
/// repository where alice signed `base`, then `signer remove bob` and bob's
/// sign run at the same time. Counts iterations, broken repositories (a
/// fresh `notary list` fails or a daemon cannot inspect), and tags told
/// "success" that a fresh `notary list` does not show. Iterations:
/// `TUFD_RACE_ITERATIONS` (default 4).
#[test]
fn removal_racing_a_sign_unforced_loop() {
    let iterations: usize = std::env::var("TUFD_RACE_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let servers = NotaryServers::start();
    let (admin, alice_env, bob_env) = (TestEnv::new(), TestEnv::new(), TestEnv::new());
    let alice = openssl_key(admin.path(), "alice");
    let bob = openssl_key(admin.path(), "bob");
    let (alice_pub, bob_pub) = (public_of(&alice), public_of(&bob));
    let _da = admin.start_with(&trust_config(&admin, &servers));
    let _dl = alice_env.start_with(&trust_config(&alice_env, &servers));
    let _db = bob_env.start_with(&trust_config(&bob_env, &servers));
    load(&alice_env, &alice, "alice");
    load(&bob_env, &bob, "bob");
    let (mut broken, mut missing, mut removed, mut signed) = (0, 0, 0, 0);
    let mut server_rollbacks = 0;
    for i in 0..iterations {
        let gun = format!("localhost:5000/integrity/loop-{i}");
        for (name, public) in [("alice", &alice_pub), ("bob", &bob_pub)] {
            admin
                .tufctl(&[
                    "signer",
                    "add",
                    name,
                    &gun,
                    "--key",
                    public.to_str().unwrap(),
                ])
                .ok();
        }
        sign(&alice_env, &gun, "base", D1).ok();
        let (removal, sign_out) = std::thread::scope(|s| {
            let r = s.spawn(|| admin.tufctl(&["signer", "remove", "bob", &gun]));
            let b = s.spawn(|| sign(&bob_env, &gun, "v1", D2));
            (r.join().unwrap(), b.join().unwrap())
        });
        removed += usize::from(removal.status.success());
        signed += usize::from(sign_out.status.success());
        let listed = servers.cli().run(["list", &gun]);
        let mut readable = true;
        for (who, e) in [("admin", &admin), ("alice", &alice_env), ("bob", &bob_env)] {
            let out = e.tufctl(&["inspect", &gun]);
            if out.stderr.contains("the server rolled targets back") {
                // notary-server's own race (its snapshot built from a
                // targets read before a concurrent commit): the server
                // dropped the removal, and tufd refuses the rollback.
                server_rollbacks += 1;
                eprintln!(
                    "iteration {i}: {who}'s daemon refuses a targets rollback by the server: {}",
                    out.stderr
                );
            } else if !out.status.success() {
                readable = false;
                eprintln!(
                    "iteration {i}: {who}'s daemon cannot inspect: {}",
                    out.stderr
                );
            }
        }
        if !listed.success() || !readable {
            broken += 1;
            eprintln!(
                "iteration {i}: broken (a daemon cannot inspect it, or notary list fails): {listed}\nremoval: {removal:?}\nsign: {sign_out:?}"
            );
        }
        let mut told = vec!["base"];
        if sign_out.status.success() {
            told.push("v1");
        }
        for t in told {
            if !listed.success()
                || !listed
                    .stdout
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(t))
            {
                missing += 1;
                eprintln!(
                    "iteration {i}: {t} told success but not listed: {listed}\nremoval: {removal:?}\nsign: {sign_out:?}"
                );
            }
        }
    }
    eprintln!(
        "race loop: iterations {iterations}, broken {broken}, told-success-but-missing {missing} (removals that succeeded {removed}, signs that succeeded {signed}; targets rollbacks by notary-server refused {server_rollbacks})"
    );
    assert_eq!((broken, missing), (0, 0));
}

/// kill -9 after the POST, during the read-back (the caller is told the
/// outcome is unknown) and during the store write (after the caller was
/// told success): after a restart no temporary file is left, the store
/// verifies (inspect reads it), and the change that the server accepted is
/// there for tufd and for the notary client.
#[test]
fn kill_at_set_points_leaves_a_verifying_repository_and_a_clean_store() {
    let servers = NotaryServers::start();
    let mut env = TestEnv::new();
    let gun = "localhost:5000/integrity/kill";
    {
        let _d = with_signer_alice(&env, &servers, gun);
        sign(&env, gun, "v0", D1).ok();
    }
    let trust_dir = env.path().join("state/trust");
    let mut expected = vec!["v0".to_owned()];
    for point in ["after-publish", "read-back", "store-write"] {
        let hooks = PausePoints::arm(&mut env, point);
        let d = env.start_with(&trust_config(&env, &servers));
        let tag = format!("t-{point}");
        let out = std::thread::scope(|s| {
            let t = s.spawn(|| sign(&env, gun, &tag, D2));
            hooks.wait(point, &d);
            if point == "store-write" {
                // Answered once verified; the store write runs after.
                let out = t.join().unwrap();
                let temps: Vec<_> = std::fs::read_dir(&trust_dir)
                    .unwrap()
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
                    .collect();
                assert_eq!(temps.len(), 1, "a temporary file is being written");
                d.crash();
                out
            } else {
                d.crash();
                t.join().unwrap()
            }
        });
        if point == "store-write" {
            assert!(out.status.success(), "{out:?}");
        } else {
            out.fails_with(1, "the outcome is unknown");
            assert!(out.stderr.contains("tufctl inspect"), "{out:?}");
        }
        PausePoints::disarm(&mut env);
        let _d = env.start_with(&trust_config(&env, &servers));
        let left: Vec<String> = std::fs::read_dir(&trust_dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".trust"))
            .collect();
        assert!(left.is_empty(), "left in the store after {point}: {left:?}");
        expected.push(tag);
        let inspect = env.tufctl(&["-o", "json", "inspect", gun]).json();
        let tags: Vec<&str> = inspect[0]["SignedTags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["SignedTag"].as_str().unwrap())
            .collect();
        for t in &expected {
            assert!(tags.contains(&t.as_str()), "{t} after {point}: {inspect}");
        }
        let listed = notary_tags(&servers, gun);
        assert_eq!(listed.len(), expected.len(), "{listed:?}");
    }
}

/// A transaction answers before its verified result is stored, and the
/// store write no longer holds the repository's writer lock: with the
/// store write held at its pause point, the next sign into the repository
/// goes ahead (from the kept read-back) and is answered, while `trust
/// forget`, which a store landing after it would undo, waits for the
/// write. Afterwards nothing of the repository is left in the store.
#[test]
fn a_pending_store_holds_up_forget_but_not_the_next_sign() {
    let servers = NotaryServers::start();
    let mut env = TestEnv::new();
    let gun = "localhost:5000/integrity/pending-store";
    drop(with_signer_alice(&env, &servers, gun));
    let hooks = PausePoints::arm(&mut env, "store-write");
    let d = env.start_with(&trust_config(&env, &servers));
    sign(&env, gun, "v1", D1).ok();
    hooks.wait("store-write", &d);
    let trust_dir = env.path().join("state/trust");
    let env = &env;
    std::thread::scope(|s| {
        let next = s.spawn(|| sign(env, gun, "v2", D2));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !next.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !next.is_finished() {
            hooks.release("store-write");
            panic!(
                "the next sign waited for the last one's store:\n{}",
                d.log()
            );
        }
        next.join().unwrap().ok();
        let forget = s.spawn(|| env.tufctl(&["-o", "json", "trust", "forget", gun]));
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            !forget.is_finished(),
            "trust forget went ahead of a store still being written"
        );
        hooks.release("store-write");
        let out = forget.join().unwrap().json();
        assert_eq!(out["forgotten"], true, "{out}");
    });
    let left: Vec<String> = std::fs::read_dir(&trust_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "left in the store after forget: {left:?}");
    // Both signs were published and verify for the notary client.
    assert_eq!(notary_tags(&servers, gun), ["v1", "v2"]);
}

/// Two daemons sharing one signer key, 16 concurrent signs each into one
/// repository, several rounds: lost publish races are retried with jittered
/// backoff under a deadline, so no call gives up and every tag lands.
/// Rounds: `TUFD_CONTENTION_ROUNDS` (default 5, about 15 s; 10 measured).
#[test]
fn two_daemons_sixteen_concurrent_signs_each_never_give_up() {
    let rounds: usize = std::env::var("TUFD_CONTENTION_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let servers = NotaryServers::start();
    let (a, b) = (TestEnv::new(), TestEnv::new());
    let ci = openssl_key(a.path(), "ci");
    let _da = a.start_with(&trust_config(&a, &servers));
    let _db = b.start_with(&trust_config(&b, &servers));
    load(&a, &ci, "ci");
    load(&b, &ci, "ci");
    let gun = "localhost:5000/integrity/contention";
    let public = public_of(&ci);
    a.tufctl(&[
        "signer",
        "add",
        "ci",
        gun,
        "--key",
        public.to_str().unwrap(),
    ])
    .ok();
    let started = Instant::now();
    let (mut gave_up, mut retries) = (0, 0u64);
    let mut expected = Vec::new();
    for round in 0..rounds {
        let outs: Vec<(String, CmdOutput)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .flat_map(|i| [(&a, format!("a{round}-{i}")), (&b, format!("b{round}-{i}"))])
                .map(|(env, tag)| {
                    s.spawn(move || {
                        let out = env.tufctl(&[
                            "-o",
                            "json",
                            "sign",
                            &format!("{gun}:{tag}"),
                            "--digest",
                            D1,
                            "--size",
                            "1",
                        ]);
                        (tag, out)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (tag, out) in outs {
            if out.status.success() {
                retries += out.json()["changes"][0]["attempts"].as_u64().unwrap_or(1) - 1;
                expected.push(tag);
            } else {
                gave_up += 1;
                eprintln!("{tag}: {out:?}");
            }
        }
    }
    let listed = notary_tags(&servers, gun);
    eprintln!(
        "contention: {rounds} rounds × 2 daemons × 16 signs in {:?}: {gave_up} gave up, {retries} lost races retried",
        started.elapsed()
    );
    assert_eq!(gave_up, 0);
    for t in &expected {
        assert!(listed.contains(t), "{t} lost");
    }
    assert_eq!(listed.len(), expected.len());
}

/// Breaks a repository on purpose: bob signed last (targets/releases signed
/// by bob only), then the admin removes bob with `--force`. The answer says
/// which tags clients no longer see.
fn broken_on_purpose(gun: &str) -> (World, Daemon, Daemon) {
    let w = world(gun, false);
    let (da, dc) = w.start();
    sign(&w.ci, gun, "v1", D2).ok();
    w.admin
        .tufctl(&["signer", "remove", "bob", gun])
        .fails_with(1, "signed only by bob's key");
    let forced = w
        .admin
        .tufctl(&["signer", "remove", "bob", gun, "--allow-last-signer", "-f"]);
    assert!(forced.status.success(), "{forced:?}");
    assert!(
        forced
            .stdout
            .contains("targets/releases no longer verifies")
            && forced.stdout.contains("tufctl repair"),
        "{forced:?}"
    );
    // targets/alice still lists base; nothing lists v1 for a client now.
    assert_eq!(notary_tags(&w.servers, gun), ["base"]);
    w.admin
        .tufctl(&["inspect", gun])
        .fails_with(1, &format!("tufctl repair {gun}"));
    (w, da, dc)
}

/// Tags `tufctl inspect` shows.
fn inspect_tags(env: &TestEnv, gun: &str) -> Vec<String> {
    let v = env.tufctl(&["-o", "json", "inspect", gun]).json();
    let mut tags: Vec<String> = v[0]["SignedTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["SignedTag"].as_str().unwrap().to_owned())
        .collect();
    tags.sort();
    tags
}

#[test]
fn repair_with_the_targets_key_undelegates_the_broken_role_and_names_dropped_tags() {
    let gun = "localhost:5000/integrity/repair-admin";
    let (w, _da, _dc) = broken_on_purpose(gun);
    let out = w.admin.tufctl(&["repair", gun]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout
            .contains("targets/releases is no longer delegated")
            && out.stdout.contains("dropped tags base, v1"),
        "{out:?}"
    );
    // notary lists alice's own role; docker (and tufctl inspect, which
    // shows what docker shows) list targets/releases, now undelegated.
    assert_eq!(notary_tags(&w.servers, gun), ["base"]);
    assert!(inspect_tags(&w.admin, gun).is_empty());
    assert!(inspect_tags(&w.ci, gun).is_empty());
    if let Some(d) = docker_tags(&w.admin, &w.servers, gun) {
        assert!(d.is_empty(), "{d:?}");
    }
    // Repaired: the next repair has nothing to do.
    let again = w.admin.tufctl(&["repair", gun]);
    assert!(again.stdout.contains("nothing to repair"), "{again:?}");
}

#[test]
fn repair_with_a_key_the_role_lists_resigns_its_last_verified_content() {
    let gun = "localhost:5000/integrity/repair-signer";
    let (w, _da, _dc) = broken_on_purpose(gun);
    // alice's key (still listed by targets/releases) on the CI daemon, whose
    // store holds the last verified targets/releases (base and v1, signed by
    // bob while he was a signer).
    load(&w.ci, &w.admin.path().join("alice.key"), "alice");
    let out = w.ci.tufctl(&["repair", gun]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout
            .contains("re-signed targets/releases with its last verified content")
            && out.stdout.contains("dropped no tags"),
        "{out:?}"
    );
    let listed = notary_tags(&w.servers, gun);
    assert_eq!(listed, ["base", "v1"]);
    assert_eq!(inspect_tags(&w.admin, gun), listed);
    assert_eq!(inspect_tags(&w.ci, gun), listed);
    if let Some(d) = docker_tags(&w.admin, &w.servers, gun) {
        assert_eq!(d, listed);
    }
}

#[test]
fn forget_removes_a_repository_from_the_trust_store_explicitly() {
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let _d = env.start_with(&trust_config(&env, &servers));
    let gun = "localhost:5000/integrity/forget";
    env.tufctl(&["key", "generate", "alice"]).ok();
    env.tufctl(&["signer", "add", "alice", gun, "--key", "alice.pub"])
        .ok();
    // The server loses the repository: tufd refuses to silently re-trust.
    servers.cli().run_ok(["delete", gun, "--remote"]);
    env.tufctl(&["inspect", gun])
        .fails_with(1, &format!("tufctl trust forget {gun}"));
    let out = env.tufctl(&["-o", "json", "trust", "forget", gun]).json();
    assert_eq!(out["forgotten"], true, "{out}");
    env.tufctl(&["inspect", gun])
        .fails_with(1, "has no trust data on the server");
    let again = env.tufctl(&["trust", "forget", gun]);
    assert!(again.stdout.contains("nothing to forget"), "{again:?}");
    // A new repository under the same name is trusted on first use.
    env.tufctl(&["signer", "add", "alice", gun, "--key", "alice.pub"])
        .ok();
    sign(&env, gun, "v1", D1).ok();
    assert_eq!(notary_tags(&servers, gun), ["v1"]);
}

/// The server itself rolls a role back: it loses the repository and is fed
/// older files (valid, signed by the repository's keys), then serves a fresh
/// timestamp and snapshot (its own keys, versions above what tufd trusted)
/// over an older targets or targets/releases. tufd refuses it on inspect and
/// on sign, naming the role, and its store stays as it was.
#[test]
fn a_server_rolling_back_targets_or_a_delegation_is_refused_on_inspect_and_sign() {
    use tufd_remote::{Bytes, Gun, NotaryClient, RemoteConfig, RoleName};
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let _d = env.start_with(&trust_config(&env, &servers));
    let gun_name = "localhost:5000/integrity/rollback";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client =
        NotaryClient::new(&RemoteConfig::new(servers.url()).with_ca_file(servers.ca_path()))
            .unwrap();
    let g = Gun::new(gun_name).unwrap();
    let role = |r: &str| RoleName::new(r.to_owned()).unwrap();
    let current = |r: &str| rt.block_on(client.get_role(&g, &role(r))).unwrap();

    env.tufctl(&["key", "generate", "alice"]).ok();
    env.tufctl(&["key", "generate", "bob"]).ok();
    env.tufctl(&["signer", "add", "alice", gun_name, "--key", "alice.pub"])
        .ok();
    let (root, targets_v1) = (current("root"), current("targets"));
    env.tufctl(&["signer", "add", "bob", gun_name, "--key", "bob.pub"])
        .ok();
    let targets_v2 = current("targets");
    sign(&env, gun_name, "revoked", D1).ok();
    let (releases_v1, alice_v1) = (current("targets/releases"), current("targets/alice"));
    env.tufctl(&["revoke", &format!("{gun_name}:revoked")]).ok();
    let (releases_v2, alice_v2) = (current("targets/releases"), current("targets/alice"));
    sign(&env, gun_name, "kept", D2).ok();
    let (releases_v3, alice_v3) = (current("targets/releases"), current("targets/alice"));
    assert_eq!(inspect_tags(&env, gun_name), ["kept"]);

    let store_dir = env.path().join("state/trust");
    let snapshot_of_store = || -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(&store_dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = snapshot_of_store();
    // Replays `posts` on an emptied repository: one publish each, so the
    // server's timestamp and snapshot versions climb past the trusted ones.
    let replay = |posts: Vec<Vec<(&str, &Bytes)>>| {
        rt.block_on(client.delete(&g)).unwrap();
        for files in posts {
            let files: Vec<(RoleName, Bytes)> = files
                .into_iter()
                .map(|(r, b)| (role(r), b.clone()))
                .collect();
            rt.block_on(client.publish(&g, &files)).unwrap();
        }
    };

    // targets/releases back at v1, with the revoked tag in it.
    replay(vec![
        vec![("root", &root), ("targets", &targets_v1)],
        vec![("targets", &targets_v2)],
        vec![("targets/alice", &alice_v1)],
        vec![("targets/alice", &alice_v2)],
        vec![("targets/alice", &alice_v3)],
        vec![("targets/releases", &releases_v1)],
    ]);
    let fresh = notary_tags(&servers, gun_name);
    assert!(
        fresh.contains(&"revoked".to_owned()),
        "a fresh client is fooled: {fresh:?}"
    );
    env.tufctl(&["inspect", gun_name])
        .fails_with(1, "rolled targets/releases back");
    sign(&env, gun_name, "new", D2).fails_with(1, "rolled targets/releases back");
    assert!(snapshot_of_store() == before, "the store did not change");

    // targets back at v1 (bob's delegation gone again).
    replay(vec![
        vec![("root", &root), ("targets", &targets_v1)],
        vec![("targets/alice", &alice_v1)],
        vec![("targets/alice", &alice_v2)],
        vec![("targets/alice", &alice_v3)],
        vec![("targets/releases", &releases_v3)],
    ]);
    env.tufctl(&["inspect", gun_name])
        .fails_with(1, "rolled targets back");
    sign(&env, gun_name, "new", D2).fails_with(1, "rolled targets back");
    assert!(snapshot_of_store() == before, "the store did not change");

    // targets/releases hidden: still delegated (current targets), but the
    // server's snapshot no longer lists it. Accepting that would make it
    // "never published" and drop its floor, so that an older releases
    // could be listed again later.
    replay(vec![
        vec![("root", &root), ("targets", &targets_v1)],
        vec![("targets", &targets_v2)],
        vec![("targets/alice", &alice_v1)],
        vec![("targets/alice", &alice_v2)],
        vec![("targets/alice", &alice_v3)],
    ]);
    // (targets/bob, which signed the same tags, is hidden the same way.)
    let hidden = "tufd verified version 3 of it before, and it is still delegated, but the snapshot no longer lists it";
    env.tufctl(&["inspect", gun_name]).fails_with(1, hidden);
    sign(&env, gun_name, "new", D2).fails_with(1, hidden);
    let verify = env.tufctl(&["verify", &format!("{gun_name}:kept")]);
    assert!(
        !verify.status.success() && format!("{}{}", verify.stdout, verify.stderr).contains(hidden),
        "pull-time verification refuses it too: {verify:?}"
    );
    assert!(snapshot_of_store() == before, "the store did not change");
    let _ = releases_v2;
}

/// The repository `gun` as `server` serves it, copied into `dir` in
/// notary-server's URL layout (for a static server to serve), with the
/// snapshot's root meta pointing at `root` (written as `root.json`) and
/// the timestamp's snapshot meta at the changed snapshot. Their
/// signatures no longer match: what is checked here must be refused
/// before any signature is.
fn forged_root_layout(servers: &NotaryServers, gun: &str, dir: &Path, root: &[u8]) {
    use base64::Engine as _;
    use sha2::Digest as _;
    let client = tufd_remote::NotaryClient::new(
        &tufd_remote::RemoteConfig::new(servers.url()).with_ca_file(servers.ca_path()),
    )
    .unwrap();
    let g = tufd_remote::Gun::new(gun).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let get = |r: &str| -> serde_json::Value {
        let b = rt
            .block_on(client.get_role(&g, &tufd_remote::RoleName::new(r.to_owned()).unwrap()))
            .unwrap();
        serde_json::from_slice(&b).unwrap()
    };
    let meta = |bytes: &[u8]| {
        serde_json::json!({
            "hashes": {
                "sha256": base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes)),
                "sha512": base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(bytes)),
            },
            "length": bytes.len(),
        })
    };
    let mut snapshot = get("snapshot");
    snapshot["signed"]["meta"]["root"] = meta(root);
    let snapshot = serde_json::to_vec(&snapshot).unwrap();
    let mut timestamp = get("timestamp");
    timestamp["signed"]["meta"]["snapshot"] = meta(&snapshot);
    let at = dir.join("v2").join(gun).join("_trust/tuf");
    std::fs::create_dir_all(&at).unwrap();
    std::fs::write(at.join("snapshot.json"), &snapshot).unwrap();
    let by_checksum = format!(
        "snapshot.{}.json",
        hex::encode(sha2::Sha256::digest(&snapshot))
    );
    std::fs::write(at.join(by_checksum), &snapshot).unwrap();
    std::fs::write(
        at.join("timestamp.json"),
        serde_json::to_vec(&timestamp).unwrap(),
    )
    .unwrap();
    std::fs::write(at.join("root.json"), root).unwrap();
}

/// The root `gun` has on `servers`, its version set to `version` (its
/// signatures then no longer verify).
fn root_claiming(servers: &NotaryServers, gun: &str, version: u64) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sf", "--cacert"])
        .arg(servers.ca_path())
        .arg(format!("{}/v2/{gun}/_trust/tuf/root.json", servers.url()))
        .output()
        .unwrap();
    assert!(out.status.success(), "fetching root.json");
    let mut root: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    root["signed"]["version"] = version.into();
    serde_json::to_vec(&root).unwrap()
}

/// A hostile server claims a root far newer than the one tufd trusts.
/// The version to reach is the server's unverified word: tufd does not
/// follow more than 256 rotations in one read (before: it requested every
/// version up to the claim, 17 000 requests and gigabytes in 40 s for a
/// claim of 1 000 000), and it checks each newer root as it arrives, so a
/// server without the root keys is refused at its first forged file
/// instead of being asked for all of them.
#[test]
fn a_server_claiming_newer_roots_is_checked_root_by_root() {
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let gun = "localhost:5000/integrity/roots";
    {
        let _d = with_signer_alice(&env, &servers, gun);
        sign(&env, gun, "v1", D1).ok();
    }
    let dir = tempfile::tempdir().unwrap();
    let http = tufd_tests::static_http::StaticHttp::start(dir.path().to_path_buf());
    let _d = env.start_with(&tufd_tests::notary::remote_config(
        &env,
        &format!("url = \"{}\"\n", http.url()),
        "",
    ));
    let chain_requests = |http: &tufd_tests::static_http::StaticHttp| -> Vec<String> {
        http.requests()
            .into_iter()
            .filter_map(|p| p.rsplit('/').next().map(str::to_owned))
            .filter(|f| f.ends_with(".root.json"))
            .collect()
    };

    // Version 1 000 000: refused before any of the chain is requested.
    forged_root_layout(
        &servers,
        gun,
        dir.path(),
        &root_claiming(&servers, gun, 1_000_000),
    );
    let started = Instant::now();
    env.tufctl(&["inspect", gun])
        .fails_with(1, "tufd follows at most 256 root rotations in one read");
    sign(&env, gun, "v2", D2).fails_with(1, "at most 256 root rotations");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "answered promptly"
    );
    assert_eq!(
        chain_requests(&http),
        Vec::<String>::new(),
        "no root of the chain requested"
    );

    // Version 5, with forged 2..4: refused at 2.root.json, 3 and 4 never asked for.
    let dir5 = tempfile::tempdir().unwrap();
    forged_root_layout(&servers, gun, dir5.path(), &root_claiming(&servers, gun, 5));
    let at = dir5.path().join("v2").join(gun).join("_trust/tuf");
    for v in 2..5u64 {
        std::fs::write(
            at.join(format!("{v}.root.json")),
            root_claiming(&servers, gun, v),
        )
        .unwrap();
    }
    http.set_root(dir5.path().to_path_buf());
    let out = env.tufctl(&["inspect", gun]);
    assert!(
        !out.status.success(),
        "a forged root chain is refused: {out:?}"
    );
    assert!(
        out.stderr
            .contains("root (signatures by the previous root keys)"),
        "refused for the previous root's signatures: {out:?}"
    );
    let asked = chain_requests(&http);
    assert!(
        !asked.is_empty() && asked.iter().all(|f| f == "2.root.json"),
        "stopped at the first forged root, 3 and 4 never asked for: {asked:?}"
    );
}

/// A read of a repository fetches at most `[verification] max_bytes` in
/// all, on the trust path too (inspect, the read before a change): a
/// server cannot make a read hold more by listing many or large files.
#[test]
fn a_read_fetches_at_most_the_configured_bytes() {
    let servers = NotaryServers::start();
    let gun = "localhost:5000/integrity/budget";
    let env = TestEnv::new();
    let _d = with_signer_alice(&env, &servers, gun);
    let tags: Vec<String> = (0..40).map(|i| format!("{gun}:tag-{i}")).collect();
    let mut args = vec!["sign"];
    args.extend(tags.iter().map(String::as_str));
    args.extend(["--digest", D1, "--size", "1"]);
    env.tufctl(&args).ok();

    // A second daemon that trusts nothing yet reads it all from the server.
    let small = TestEnv::new();
    let _s = small.start_with(&servers.daemon_config(&small, "[verification]\nmax_bytes = 8192\n"));
    small.tufctl(&["inspect", gun]).fails_with(
        1,
        "would exceed the memory budget of 8192 bytes per read of a repository",
    );
    let roomy = TestEnv::new();
    let _r = roomy.start_with(&servers.daemon_config(&roomy, ""));
    let out = roomy.tufctl(&["inspect", gun]);
    assert!(out.ok().contains("tag-39"), "{out:?}");
}

/// A sign publishes nothing before its audit `begin` line is durable. The
/// line's fdatasync runs beside the read and the signing (they have no
/// effect) and is awaited right before the publish: with the sync held (a
/// disk that does not answer), notary-server gets no publish until it is
/// released, and then the tag is there.
#[test]
fn a_sign_publishes_nothing_before_its_begin_line_is_durable() {
    let servers = NotaryServers::start();
    let mut env = TestEnv::new();
    let gun = "localhost:5000/integrity/audit-first";
    drop(with_signer_alice(&env, &servers, gun));
    let points = PausePoints::arm(&mut env, "audit-sync");
    let d = env.start_with(&trust_config(&env, &servers));
    std::thread::scope(|s| {
        let t = s.spawn(|| sign(&env, gun, "v1", D1));
        points.wait("audit-sync", &d);
        std::thread::sleep(Duration::from_millis(1500));
        let early = notary_tags(&servers, gun);
        // Released before asserting, so a failure cannot hang the sign.
        points.release("audit-sync");
        let out = t.join().expect("sign thread");
        assert!(
            early.is_empty(),
            "published while its begin line was not durable: {early:?}"
        );
        out.ok();
    });
    assert_eq!(notary_tags(&servers, gun), ["v1"]);
}

/// SIGTERM while a sign is between its publish and its read-back: the
/// daemon finishes the read-back and the store before it exits.
#[test]
fn sigterm_waits_for_the_read_back_and_the_store() {
    let servers = NotaryServers::start();
    let mut env = TestEnv::new();
    let gun = "localhost:5000/integrity/sigterm";
    {
        let _d = env.start_with(&trust_config(&env, &servers));
        env.tufctl(&["key", "generate", "alice"]).ok();
        env.tufctl(&["signer", "add", "alice", gun, "--key", "alice.pub"])
            .ok();
        // Stored in the background after the answer; inspect waits for it.
        env.tufctl(&["inspect", gun]).ok();
    }
    let hooks = PausePoints::arm(&mut env, "after-publish");
    let d = env.start_with(&trust_config(&env, &servers));
    let store_file = || {
        std::fs::read_dir(env.path().join("state/trust"))
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect::<Vec<_>>()
    };
    let before = store_file();
    let out = std::thread::scope(|s| {
        let t = s.spawn(|| sign(&env, gun, "v1", D1));
        hooks.wait("after-publish", &d);
        // SAFETY: kill(2) on the daemon this test started.
        unsafe {
            libc::kill(d.pid() as i32, libc::SIGTERM);
        }
        std::thread::sleep(Duration::from_millis(200));
        hooks.release("after-publish");
        t.join().unwrap()
    });
    // The answer itself: success, unless the shutdown closed the client's
    // connection first (then tufctl dies on the closed socket); the
    // repository and the store are what this test is about.
    assert!(
        out.status.success() || out.status.code().is_none(),
        "{out:?}\n{}",
        d.log()
    );
    assert!(d.stop().success());
    assert_ne!(store_file(), before, "the verified result was stored");
    PausePoints::disarm(&mut env);
    let _d = env.start_with(&trust_config(&env, &servers));
    assert_eq!(inspect_tags(&env, gun), ["v1"]);
}

/// The seed race with bob's read-back forced into the window between the
/// admin's publish and its compensation: bob's daemon sees targets/releases
/// below threshold, waits (bounded) for the admin to restore his key, and
/// only then answers "success"; the admin's removal is undone and explained.
#[test]
fn a_signer_reading_back_a_broken_repository_waits_for_the_compensation() {
    let gun = "localhost:5000/integrity/race-wait";
    let mut w = world(gun, false);
    let admin_hooks = PausePoints::arm(&mut w.admin, "after-read,read-back");
    let ci_hooks = PausePoints::arm(&mut w.ci, "after-publish");
    let (da, dc) = w.start();
    let (admin, ci) = (&w.admin, &w.ci);
    let (removal, signed) = std::thread::scope(|s| {
        let removal = s.spawn(|| admin.tufctl(&["signer", "remove", "bob", gun]));
        admin_hooks.wait("after-read", &da);
        let signed = s.spawn(|| sign(ci, gun, "v1", D2));
        ci_hooks.wait("after-publish", &dc);
        // bob's sign is on the server; the admin publishes over its stale
        // read and stops right after reading back (before compensating).
        admin_hooks.release("after-read");
        admin_hooks.wait("read-back", &da);
        ci_hooks.release("after-publish");
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            !signed.is_finished(),
            "bob answered while the repository was broken"
        );
        admin_hooks.release("read-back");
        (removal.join().unwrap(), signed.join().unwrap())
    });
    assert!(signed.status.success(), "{signed:?}");
    assert!(
        signed.stderr.contains("waiting for the other writer"),
        "{signed:?}"
    );
    removal.fails_with(1, "the removal was undone");
    assert_all_listed(&w.servers, &[&w.admin, &w.ci], gun, &["base", "v1"]);
}

/// The server serves a different root.json at the version tufd trusts (the
/// repository was deleted and initialized again with the same root key, so
/// the new root is validly signed): refused, naming that reason and
/// `tufctl trust forget`.
#[test]
fn a_different_root_at_the_trusted_version_is_refused_with_that_reason() {
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let gun = "localhost:5000/integrity/same-root-version";
    let store_dir = env.path().join("state/trust");
    let saved = {
        let _d = env.start_with(&trust_config(&env, &servers));
        env.tufctl(&["key", "generate", "alice"]).ok();
        env.tufctl(&["signer", "add", "alice", gun, "--key", "alice.pub"])
            .ok();
        // Stored in the background after the answer; inspect waits for it.
        env.tufctl(&["inspect", gun]).ok();
        let saved: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&store_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
            .collect();
        // Deleted on the server and made again: root v1 again, new bytes.
        servers.cli().run_ok(["delete", gun, "--remote"]);
        env.tufctl(&["trust", "forget", gun]).ok();
        std::thread::sleep(Duration::from_millis(1100));
        env.tufctl(&["signer", "add", "alice", gun, "--key", "alice.pub"])
            .ok();
        saved
    };
    // The daemon trusts the first root again.
    for (path, bytes) in &saved {
        std::fs::write(path, bytes).unwrap();
    }
    let _d = env.start_with(&trust_config(&env, &servers));
    env.tufctl(&["inspect", gun]).fails_with(
        1,
        "serves a root.json at version 1 whose bytes differ from the root tufd trusts",
    );
    sign(&env, gun, "v1", D1).fails_with(1, &format!("tufctl trust forget {gun}"));
}

/// A sign held longer than the socket's idle timeout keeps its connection:
/// tufctl pings while its request is out, so the daemon does not close the
/// connection as idle, and the caller is told the outcome (signed), not
/// that the connection broke.
#[test]
fn a_sign_held_longer_than_the_idle_timeout_keeps_its_connection() {
    let servers = NotaryServers::start();
    let mut env = TestEnv::new();
    let gun = "localhost:5000/tufd/held-long";
    drop(with_signer_alice(&env, &servers, gun));
    let hooks = PausePoints::arm(&mut env, "after-read");
    env.daemon_env
        .push(("TUFD_TEST_IDLE_TIMEOUT_MS".into(), "12000".into()));
    let d = env.start_with(&trust_config(&env, &servers));
    let signed = std::thread::scope(|s| {
        let signed = s.spawn(|| sign(&env, gun, "v1", D1));
        hooks.wait("after-read", &d);
        // Past the idle timeout, with nothing to say meanwhile.
        std::thread::sleep(Duration::from_secs(15));
        hooks.release("after-read");
        signed.join().unwrap()
    });
    assert!(signed.status.success(), "{signed:?}\n{}", d.log());
    assert_eq!(notary_tags(&servers, gun), vec!["v1".to_owned()]);
}
