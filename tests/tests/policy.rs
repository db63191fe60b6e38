//! Issue 11: who may sign what. Two real users on this machine (created
//! and removed here), one allowed by the daemon's policy and one not, run
//! the real tufctl over the real socket against a daemon with its keys on
//! SoftHSM2 and a real notary-server; the audit log records both, and its
//! chain check catches tampering. Needs root (to create users); skips
//! with a message otherwise.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tufd_tests::daemon::{CmdOutput, TestEnv, binary, token_toml};
use tufd_tests::notary::NotaryServers;
use tufd_tests::softhsm::{MODULE, PIN};
use tufd_tests::static_http::{Mode, StaticHttp};
use tufd_tests::users::{TestUser, can_create_users, open_socket_to_everyone};

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn skip_unless_root(test: &str) -> bool {
    if can_create_users() {
        return false;
    }
    eprintln!("SKIPPED {test}: creating test users needs root (CI runs as root)");
    true
}

fn token() -> String {
    token_toml(
        "dev",
        MODULE,
        tufd_tests::daemon::TOKEN_LABEL,
        "env:TUFD_PIN",
    )
}

/// The policy: `ok` signs and revokes in targets/releases and targets/ci of
/// localhost:5000/pol/*, reads, and may delete signer keys tmp* and unlock
/// tokens, and add the signer ci2 to existing repositories (not create
/// them: that is "init"); nothing else. `no` may only list keys and tokens (tufctl lists
/// before it deletes, so the refusal is the deletion's).
fn policy(ok: &TestUser, no: &TestUser) -> String {
    format!(
        r#"
[policy]
[[policy.rule]]
users = ["{ok}"]
repositories = ["localhost:5000/pol/*"]
roles = ["targets/releases", "targets/ci"]
operations = ["sign", "revoke", "read"]
[[policy.rule]]
users = ["{ok}"]
repositories = ["**"]
roles = ["targets/tmp*"]
operations = ["key-delete", "token-unlock"]
[[policy.rule]]
users = ["{no}"]
operations = ["list"]
[[policy.rule]]
users = ["{ok}"]
repositories = ["localhost:5000/pol/*"]
roles = ["targets/ci2"]
operations = ["signer-add"]
"#,
        ok = ok.name,
        no = no.name
    )
}

#[track_caller]
fn denied(out: &CmdOutput, needle: &str) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = format!("{}{}", out.stderr, out.stdout.replace("\\\"", "\""));
    assert!(
        said.contains("permission denied") && said.contains(needle),
        "expected a refusal naming {needle:?}: {out:?}"
    );
}

fn audit_lines(env: &TestEnv) -> Vec<serde_json::Value> {
    std::fs::read_to_string(env.path().join("state/audit.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn audit_verify(log: &Path) -> CmdOutput {
    let out = Command::new(binary("tufd"))
        .arg("--audit-verify")
        .arg(log)
        .output()
        .unwrap();
    CmdOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn one_user_allowed_one_refused_for_every_operation_and_both_audited() {
    if skip_unless_root("one_user_allowed_one_refused_for_every_operation_and_both_audited") {
        return;
    }
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let ok = TestUser::create(&env, "ok");
    let no = TestUser::create(&env, "no");
    let config = env.config_with(&format!(
        "{}[[remote]]\nprefix = \"\"\nurl = \"{}\"\nca = \"{}\"\n{}",
        token(),
        servers.url(),
        servers.ca_path().display(),
        policy(&ok, &no)
    ));
    let _d = env.start_with(&config);
    open_socket_to_everyone(&env);
    let gun = "localhost:5000/pol/app";
    let v1 = format!("{gun}:v1");

    // Root administers: keys and signers (ci and alice, both held by tufd).
    for k in ["ci", "alice", "tmp1"] {
        env.tufctl(&["key", "generate", k]).ok();
    }
    env.tufctl(&["signer", "add", "ci", gun, "--key", "ci.pub"])
        .ok();
    env.tufctl(&["signer", "add", "alice", gun, "--key", "alice.pub"])
        .ok();

    // Reads.
    for args in [&["key", "list"][..], &["token", "list"]] {
        ok.tufctl(&env, args, &[]).ok();
        no.tufctl(&env, args, &[]).ok();
    }
    ok.tufctl(&env, &["inspect", gun], &[]).ok();
    denied(
        &no.tufctl(&env, &["inspect", gun], &[]),
        "\"inspect\" on localhost:5000/pol/app",
    );

    // Sign: `ok` signs into its roles only (not targets/alice).
    let sign = [
        "-o",
        "json",
        "sign",
        v1.as_str(),
        "--digest",
        D1,
        "--size",
        "1",
    ];
    denied(&no.tufctl(&env, &sign, &[]), "\"sign\"");
    let signed = ok.tufctl(&env, &sign, &[]).json();
    let published: Vec<String> = signed["changes"][0]["published"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["role"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        published.contains(&"targets/releases".to_owned()),
        "{signed}"
    );
    assert!(published.contains(&"targets/ci".to_owned()), "{signed}");
    assert!(
        !published.contains(&"targets/alice".to_owned()),
        "policy keeps ok out of alice's role: {signed}"
    );
    // Verify is a read: `ok` may, `no` may not.
    let verified = ok.tufctl(&env, &["verify", "--print-digest", &v1], &[]);
    assert_eq!(
        verified.stdout.trim(),
        format!("{gun}@{D1}"),
        "{verified:?}"
    );
    denied(
        &no.tufctl(&env, &["verify", &v1], &[]),
        "\"verify\" on localhost:5000/pol/app",
    );
    // Another team's repository is refused, even for `ok`.
    denied(
        &ok.tufctl(
            &env,
            &[
                "sign",
                "localhost:5000/other/app:v1",
                "--digest",
                D1,
                "--size",
                "1",
            ],
            &[],
        ),
        "localhost:5000/other/app",
    );

    // Key test: its own signer key yes, alice's no.
    ok.tufctl(&env, &["key", "test", "ci"], &[]).ok();
    denied(
        &ok.tufctl(&env, &["key", "test", "alice"], &[]),
        "targets/alice",
    );
    denied(
        &no.tufctl(&env, &["key", "test", "ci"], &[]),
        "\"key-test\"",
    );

    // Revoke: v1 (releases, ci) yes; v2, also in alice's role (root signed
    // it), is refused as a whole.
    env.tufctl(&["sign", &format!("{gun}:v2"), "--digest", D2, "--size", "2"])
        .ok();
    denied(&no.tufctl(&env, &["revoke", &v1], &[]), "\"revoke\"");
    ok.tufctl(&env, &["revoke", &v1], &[]).ok();
    let refused = ok.tufctl(&env, &["revoke", &format!("{gun}:v2")], &[]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains("targets/alice") && refused.stderr.contains("policy"),
        "{refused:?}"
    );

    // Key deletion: tmp* for ok only; never alice's key.
    denied(
        &no.tufctl(&env, &["key", "rm", "tmp1", "--yes"], &[]),
        "\"key-delete\"",
    );
    denied(
        &ok.tufctl(&env, &["key", "rm", "alice", "--yes"], &[]),
        "targets/alice",
    );
    ok.tufctl(&env, &["key", "rm", "tmp1", "--yes"], &[]).ok();
    let names = env.tufctl(&["-o", "json", "key", "list"]).json();
    assert!(!names.to_string().contains("\"tmp1\""), "{names}");
    assert!(names.to_string().contains("\"alice\""), "{names}");

    // Token unlock.
    denied(
        &no.tufctl(&env, &["token", "unlock", "dev"], &[("TUFCTL_PIN", PIN)]),
        "\"token-unlock\"",
    );
    ok.tufctl(&env, &["token", "unlock", "dev"], &[("TUFCTL_PIN", PIN)])
        .ok();

    // Administrative operations are separate: refused to both.
    for u in [&ok, &no] {
        denied(
            &u.tufctl(&env, &["key", "generate", "mine"], &[]),
            "\"key-generate\"",
        );
        std::fs::copy(env.path().join("ci.pub"), u.home.join("ci.pub")).unwrap();
        std::os::unix::fs::chown(u.home.join("ci.pub"), Some(u.uid), Some(u.gid)).unwrap();
        denied(
            &u.tufctl(&env, &["signer", "add", "ci", gun, "--key", "ci.pub"], &[]),
            "\"signer-add\"",
        );
        denied(
            &u.tufctl(&env, &["signer", "remove", "alice", gun], &[]),
            "\"signer-remove\"",
        );
        denied(
            &u.tufctl(&env, &["key", "rotate", gun, "targets"], &[]),
            "\"rotate\"",
        );
    }

    // Signer add as a granted operation; a new repository also needs init.
    env.tufctl(&["key", "generate", "ci2"]).ok();
    for u in [&ok, &no] {
        std::fs::copy(env.path().join("ci2.pub"), u.home.join("ci2.pub")).unwrap();
        std::os::unix::fs::chown(u.home.join("ci2.pub"), Some(u.uid), Some(u.gid)).unwrap();
    }
    denied(
        &ok.tufctl(
            &env,
            &[
                "signer",
                "add",
                "ci2",
                "localhost:5000/pol/new",
                "--key",
                "ci2.pub",
            ],
            &[],
        ),
        "\"init\" on localhost:5000/pol/new",
    );
    denied(
        &no.tufctl(
            &env,
            &["signer", "add", "ci2", gun, "--key", "ci2.pub"],
            &[],
        ),
        "\"signer-add\"",
    );
    ok.tufctl(
        &env,
        &["signer", "add", "ci2", gun, "--key", "ci2.pub"],
        &[],
    )
    .ok();

    // policy check explains without doing anything.
    let why = env.tufctl(&[
        "policy",
        "check",
        "--user",
        &ok.name,
        "sign",
        gun,
        "--role",
        "targets/releases",
    ]);
    assert!(why.ok().contains("allowed: policy rule #1"), "{why:?}");
    let why = env.tufctl(&["policy", "check", "--user", &no.name, "sign", gun]);
    assert_eq!(why.status.code(), Some(1), "{why:?}");
    assert!(
        why.stdout.contains("denied:") && why.stdout.contains("\"sign\""),
        "{why:?}"
    );
    ok.tufctl(&env, &["policy", "check", "revoke", gun], &[])
        .ok();
    denied(
        &ok.tufctl(
            &env,
            &["policy", "check", "--user", &no.name, "sign", gun],
            &[],
        ),
        "\"policy-check\"",
    );

    // The audit log has both sides, with callers the kernel reported.
    let lines = audit_lines(&env);
    let find = |uid: u32, op: &str, phase: &str| {
        lines
            .iter()
            .filter(|l| l["caller"]["uid"] == uid && l["operation"] == op && l["phase"] == phase)
            .cloned()
            .collect::<Vec<_>>()
    };
    for op in [
        "sign",
        "revoke",
        "key-delete",
        "token-unlock",
        "key-test",
        "inspect",
    ] {
        assert!(
            !find(no.uid, op, "denied").is_empty(),
            "no refused {op} audited"
        );
    }
    let sign_end = find(ok.uid, "sign", "end");
    assert_eq!(sign_end.len(), 1, "{sign_end:?}");
    assert_eq!(sign_end[0]["result"], "ok");
    assert_eq!(sign_end[0]["tags"][0]["digest"], D1);
    assert!(
        sign_end[0]["published"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["role"] == "targets/ci" && p["version"].as_u64().is_some())
    );
    assert!(
        sign_end[0]["caller"]["exe"]
            .as_str()
            .unwrap()
            .ends_with("tufctl"),
        "{sign_end:?}"
    );
    assert!(sign_end[0]["caller"]["pid"].as_i64().is_some());
    assert_eq!(sign_end[0]["caller"]["comm"], "tufctl");
    assert_eq!(find(ok.uid, "key-delete", "end")[0]["result"], "ok");
    assert_eq!(find(ok.uid, "token-unlock", "end")[0]["result"], "ok");
    assert!(
        find(ok.uid, "key-delete", "end")[0]["key_ids"][0]
            .as_str()
            .is_some()
    );
    assert!(!find(0, "signer-add", "end").is_empty());
    // Allowed reads are not recorded; refused ones are.
    assert!(find(ok.uid, "inspect", "begin").is_empty());

    // The chain verifies, through the daemon (admins only) and offline.
    env.tufctl(&["audit", "verify"]).ok();
    denied(&no.tufctl(&env, &["audit", "verify"], &[]), "audit log");
    let out = audit_verify(&env.path().join("state/audit.log"));
    assert!(
        out.status.success() && out.stdout.contains("intact"),
        "{out:?}"
    );
}

/// Edits, deletions and truncation of a real daemon's audit log are caught
/// by `tufd --audit-verify`.
#[test]
fn audit_chain_detects_edited_deleted_and_truncated_lines() {
    let env = TestEnv::new();
    let d = env.start();
    for k in ["a1", "a2", "a3"] {
        env.tufctl(&["key", "generate", k]).ok();
    }
    d.stop();
    let log = env.path().join("state/audit.log");
    let head = env.path().join("state/audit.log.head");
    let good = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    assert_eq!(lines.len(), 6, "begin and end per key: {good}");
    assert!(audit_verify(&log).status.success());
    let check = |text: String, want: &str| {
        std::fs::write(&log, text).unwrap();
        let out = audit_verify(&log);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(out.stderr.contains(want), "{want:?}: {out:?}");
    };
    let join = |v: Vec<&str>| v.iter().map(|l| format!("{l}\n")).collect::<String>();
    // Edited: a2 becomes zz in seq 3.
    let mut edited = lines.clone();
    let changed = edited[2].replace("\"phase\":\"begin\"", "\"phase\":\"end\"");
    assert_ne!(changed, edited[2]);
    edited[2] = &changed;
    check(join(edited), "edited");
    // Deleted.
    let mut deleted = lines.clone();
    deleted.remove(3);
    check(join(deleted), "deleted");
    // Truncated tail.
    check(join(lines[..4].to_vec()), "truncated");
    // The daemon does not start on a truncated log.
    let _ = head;
    let started = tufd_tests::daemon::Daemon::try_start(&env, &env.config());
    let err = started.err().expect("refused to start");
    assert!(err.contains("truncated"), "{err}");
    std::fs::write(&log, &good).unwrap();
    assert!(audit_verify(&log).status.success());
}

/// Threads of process `pid`.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A slow audit disk holds one thread, not one per audited request. The
/// first sync of the log is held (pause point `audit-sync`, as a disk that
/// does not answer): 24 audited requests wait for their `begin` lines to
/// be durable, the daemon's thread count stays put, `status` answers; once
/// the sync goes on, every request is answered and every line is durable.
/// (Each waiting request used to park a blocking thread on the sync: 24
/// more threads here, and the blocking pool that token signing uses
/// would run dry under enough of them.)
#[test]
fn a_held_audit_sync_parks_no_thread_per_request() {
    const REQUESTS: usize = 24;
    let mut env = TestEnv::new();
    let points = tufd_tests::hooks::PausePoints::arm(&mut env, "audit-sync");
    let d = env.start();
    env.tufctl(&["key", "list"]).ok();
    let before = threads(d.pid());
    std::thread::scope(|s| {
        let calls: Vec<_> = (0..REQUESTS)
            .map(|i| {
                let env = &env;
                // Audited (a begin and an end line) and quick: the token
                // does not exist, so no token work takes a thread either.
                s.spawn(move || {
                    env.tufctl_env(
                        &["token", "unlock", &format!("missing-{i}")],
                        &[("TUFCTL_PIN", "1234")],
                    )
                })
            })
            .collect();
        points.wait("audit-sync", &d);
        let log = env.path().join("state/audit.log");
        let begun = || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("\"phase\":\"begin\""))
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while begun() < REQUESTS {
            assert!(Instant::now() < deadline, "only {} begin lines", begun());
            std::thread::sleep(Duration::from_millis(20));
        }
        // Every request now waits for the held sync.
        std::thread::sleep(Duration::from_millis(300));
        let during = threads(d.pid());
        eprintln!(
            "MEASURE {REQUESTS} requests waiting for a held audit sync: tufd threads {before} -> {during}"
        );
        let status = env.tufctl(&["status"]);
        assert!(status.status.success(), "{status:?}");
        assert!(
            during < before + 6,
            "{REQUESTS} requests waiting for one held sync took {} threads ({before} -> {during})",
            during.saturating_sub(before)
        );
        points.release("audit-sync");
        for c in calls {
            let out = c.join().expect("tufctl thread");
            assert_eq!(out.status.code(), Some(1), "{out:?}");
            assert!(out.stderr.contains("missing-"), "{out:?}");
        }
    });
    d.stop();
    let lines = audit_lines(&env);
    assert_eq!(lines.len(), 2 * REQUESTS, "a begin and an end line each");
    let out = audit_verify(&env.path().join("state/audit.log"));
    assert!(out.status.success(), "{out:?}");
}

/// An operation takes no effect before its `begin` line is on disk: with
/// the audit log's fdatasync held (a disk that does not answer), a key
/// generation waits before it makes the key (before, the sync ran beside
/// the operation: the key was made while its record could still be lost
/// to a crash); once the sync is released it completes.
#[test]
fn an_operation_takes_no_effect_before_its_begin_line_is_durable() {
    let mut env = TestEnv::new();
    let points = tufd_tests::hooks::PausePoints::arm(&mut env, "audit-sync");
    let d = env.start();
    let listed = |env: &TestEnv| env.tufctl(&["key", "list"]).ok().contains("early");
    std::thread::scope(|s| {
        let generate = s.spawn(|| env.tufctl(&["key", "generate", "early"]));
        points.wait("audit-sync", &d);
        std::thread::sleep(Duration::from_millis(500));
        let made_early = listed(&env);
        // Released before asserting: a failure must not leave the
        // generate waiting for the held sync forever.
        points.release("audit-sync");
        let out = generate.join().expect("tufctl thread");
        assert!(
            !made_early,
            "the key was made while its begin line was not yet durable"
        );
        assert!(out.status.success(), "{out:?}");
    });
    assert!(listed(&env), "made once the record was durable");
    d.stop();
    let out = audit_verify(&env.path().join("state/audit.log"));
    assert!(out.status.success(), "{out:?}");
}

/// An audit log that cannot be written refuses the operation.
#[test]
fn an_unwritable_audit_log_refuses_the_operation() {
    let env = TestEnv::new();
    let log = env.path().join("audit.log");
    std::os::unix::fs::symlink("/dev/full", &log).unwrap();
    let config = format!("{}[audit]\npath = \"{}\"\n", env.config(), log.display());
    let _d = env.start_with(&config);
    let out = env.tufctl(&["key", "generate", "k"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("audit log cannot be written"),
        "{out:?}"
    );
    let keys = env.tufctl(&["-o", "json", "key", "list"]).json();
    assert_eq!(
        keys["keys"].as_array().unwrap().len(),
        0,
        "no key was made: {keys}"
    );
}

/// SIGHUP: a new policy applies to new requests; a bad one is refused and
/// the old one kept, and the daemon keeps serving.
#[test]
fn sighup_reloads_the_policy_and_keeps_the_old_one_when_the_new_is_bad() {
    if skip_unless_root("sighup_reloads_the_policy_and_keeps_the_old_one_when_the_new_is_bad") {
        return;
    }
    let env = TestEnv::new();
    let user = TestUser::create(&env, "hup");
    let d = env.start();
    open_socket_to_everyone(&env);
    denied(&user.tufctl(&env, &["key", "list"], &[]), "\"list\"");

    let config_path = env.path().join("tufd.toml");
    let grant = format!(
        "{}[policy]\n[[policy.rule]]\nusers = [\"{}\"]\noperations = [\"list\"]\n",
        env.config(),
        user.name
    );
    let hup = |expect_in_log: &str, count: usize| {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while d.log().matches(expect_in_log).count() < count {
            assert!(
                Instant::now() < deadline,
                "no {expect_in_log:?} in {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    std::fs::write(&config_path, &grant).unwrap();
    hup("policy reloaded", 1);
    user.tufctl(&env, &["key", "list"], &[]).ok();
    // Every reload says which admin group it resolved.
    let reloaded = d.log();
    let line = reloaded
        .lines()
        .find(|l| l.contains("policy reloaded"))
        .unwrap();
    assert!(line.contains("admin_group="), "{line}");

    std::fs::write(&config_path, grant.replace("\"list\"", "\"fly\"")).unwrap();
    hup("configuration refused", 1);
    user.tufctl(&env, &["key", "list"], &[]).ok();

    std::fs::write(&config_path, env.config()).unwrap();
    hup("policy reloaded", 2);
    denied(&user.tufctl(&env, &["key", "list"], &[]), "\"list\"");
}

/// A notary-server stand-in (plain HTTP) whose first answer is a 503 and
/// which knows no repository afterwards (404), though it hands out server
/// keys for `gun`, so that initializing it would get as far as generating
/// keys and publishing.
fn flaky_empty_notary(env: &TestEnv, gun: &str) -> StaticHttp {
    use base64::Engine;
    use p256::pkcs8::EncodePublicKey;
    let root = env.path().join("flaky-notary");
    let tuf = root.join(format!("v2/{gun}/_trust/tuf"));
    std::fs::create_dir_all(&tuf).unwrap();
    for (i, role) in ["timestamp", "snapshot"].into_iter().enumerate() {
        let key = p256::SecretKey::from_slice(&[i as u8 + 7; 32]).unwrap();
        let der = key.public_key().to_public_key_der().unwrap();
        let public = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
        std::fs::write(
            tuf.join(format!("{role}.key")),
            format!(r#"{{"keytype":"ecdsa","keyval":{{"public":"{public}","private":null}}}}"#),
        )
        .unwrap();
    }
    let server = StaticHttp::start(root);
    server.set_mode(Mode::FailFirst(503));
    server
}

#[test]
fn signer_add_without_init_creates_nothing_when_the_first_read_fails() {
    if skip_unless_root("signer_add_without_init_creates_nothing_when_the_first_read_fails") {
        return;
    }
    let env = TestEnv::new();
    let gun = "localhost:5000/flaky/new";
    let server = flaky_empty_notary(&env, gun);
    let ci = TestUser::create(&env, "ci");
    let config = env.config_with(&format!(
        "{}[[remote]]\nprefix = \"\"\nurl = \"{}\"\n\n[policy]\n[[policy.rule]]\nusers = [\"{}\"]\nrepositories = [\"localhost:5000/flaky/*\"]\nroles = [\"targets/ci\"]\noperations = [\"signer-add\"]\n",
        token(),
        server.url(),
        ci.name
    ));
    let _d = env.start_with(&config);
    open_socket_to_everyone(&env);
    env.tufctl(&["key", "generate", "ci"]).ok();
    std::fs::copy(env.path().join("ci.pub"), ci.home.join("ci.pub")).unwrap();
    std::os::unix::fs::chown(ci.home.join("ci.pub"), Some(ci.uid), Some(ci.gid)).unwrap();
    let keys_before = env.tufctl(&["-o", "json", "key", "list"]).json();

    // The daemon's first read of the repository gets the 503, the next
    // ones 404: the repository does not exist, and creating it is "init",
    // which ci lacks, whichever read saw the error.
    let refused = ci.tufctl(&env, &["signer", "add", "ci", gun, "--key", "ci.pub"], &[]);
    denied(&refused, "\"init\" on localhost:5000/flaky/new");
    assert!(
        refused.stderr.contains("nothing was created"),
        "refused by the transaction, which found no repository: {refused:?}"
    );
    let requests = server.requests();
    assert!(
        requests.first().is_some_and(|r| r.starts_with("GET ")),
        "the stand-in's 503 went to a read: {requests:?}"
    );
    assert!(
        requests.iter().all(|r| r.starts_with("GET ")),
        "nothing may be published: {requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.ends_with(".key")),
        "no server key asked for: {requests:?}"
    );
    let keys_after = env.tufctl(&["-o", "json", "key", "list"]).json();
    assert_eq!(keys_after, keys_before, "no key generated on the token");
    let audit = audit_lines(&env);
    assert!(
        audit.iter().any(|e| e["operation"] == "signer-add"
            && e["result"]
                .as_str()
                .is_some_and(|r| r.contains("permission denied"))),
        "the refusal is audited: {audit:?}"
    );
}
