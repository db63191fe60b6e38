//! TUF 1.0 key rotations that are interrupted or race: a real tufd on a
//! SoftHSM2 token, killed at set points of a publish or driven into a
//! forced interleaving, with python-tuf's ngclient as the judge.

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use tufd_tests::daemon::TestEnv;
use tufd_tests::hooks::PausePoints;
use tufd_tests::python::ngclient;
use tufd_tests::tuf1::{sha256, status, version};

/// The key IDs root version `v` lists for `role`.
fn root_keys(repo: &Path, v: u64, role: &str) -> Value {
    let root: Value = serde_json::from_slice(
        &std::fs::read(repo.join(format!("metadata/{v}.root.json"))).unwrap(),
    )
    .unwrap();
    root["signed"]["roles"][role]["keyids"].clone()
}

#[track_caller]
fn read_ok(repo: &Path, client: &Path, expect: Value) -> Value {
    let run = ngclient(repo, client, &expect);
    assert!(
        run.ok,
        "python-tuf ngclient: {:#}\n{}",
        run.output, run.stderr
    );
    run.output["report"].clone()
}

/// Waits until the publish held at `hold` reached it.
fn wait_reached(hold: &Path) {
    let mut reached = hold.as_os_str().to_owned();
    reached.push(".reached");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !Path::new(&reached).exists() {
        assert!(
            Instant::now() < deadline,
            "the publish never reached the hold"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Rotates `role` of a repository with a publish held at `hook`
/// (`TUFD_TEST_TUF1_HOLD`: before `timestamp.json`;
/// `TUFD_TEST_TUF1_HOLD_ROOT`: before a root written after it), checks
/// what clients read there, kills the daemon, and checks that the
/// repository is whole: a client that trusted it and a fresh one read it,
/// status answers, the next add and rotation publish and verify.
fn crash_during_rotation(role: &str, hook: &str) {
    let mut env = TestEnv::new();
    let d = env.start();
    let repo = env.path().join("repo");
    let r = repo.to_str().unwrap().to_owned();
    env.tufctl(&["tuf", "init", &r]).ok();
    let a = env.path().join("a.txt");
    std::fs::write(&a, b"alpha").unwrap();
    env.tufctl(&["tuf", "add", &r, a.to_str().unwrap()]).ok();
    let trusting = env.path().join("trusting");
    let files = json!({"present": {"a.txt": sha256(b"alpha")}});
    assert_eq!(read_ok(&repo, &trusting, files.clone())["root"], 1);
    assert!(d.stop().success());

    let hold = env.path().join("hold");
    std::fs::write(&hold, b"").unwrap();
    env.daemon_env
        .push((hook.into(), hold.display().to_string()));
    let d = env.start();
    let rotating = {
        let socket = env.socket();
        let (r, role) = (r.clone(), role.to_owned());
        std::thread::spawn(move || {
            std::process::Command::new(tufd_tests::daemon::binary("tufctl"))
                .env("TUFD_SOCKET", socket)
                .args(["tuf", "rotate", &r, &role])
                .output()
                .unwrap()
        })
    };
    wait_reached(&hold);
    // Held: clients read a whole repository (the old version, or the new
    // one under the old root), before and after the crash.
    let held = env.path().join("held");
    assert_eq!(read_ok(&repo, &held, files.clone())["root"], 1);
    d.crash();
    let out = rotating.join().unwrap();
    assert!(!out.status.success(), "the rotation died with the daemon");
    assert!(
        !repo.join("metadata/2.root.json").exists(),
        "no new root before the roles it re-keys verify under it"
    );
    assert_eq!(read_ok(&repo, &trusting, files.clone())["root"], 1);
    let fresh = env.path().join("fresh");
    read_ok(&repo, &fresh, files.clone());

    std::fs::remove_file(&hold).unwrap();
    env.daemon_env.retain(|(k, _)| k != hook);
    let _d = env.start();
    assert_eq!(version(&status(&env, &repo), "root"), 1);
    let b = env.path().join("b.txt");
    std::fs::write(&b, b"beta").unwrap();
    env.tufctl(&["tuf", "add", &r, b.to_str().unwrap()]).ok();
    let files = json!({"present": {"a.txt": sha256(b"alpha"), "b.txt": sha256(b"beta")}});
    read_ok(&repo, &trusting, files.clone());
    read_ok(&repo, &env.path().join("fresh2"), files.clone());
    // The rotation, tried again, is done with a key of its own (the
    // interrupted one's key is never reused).
    let s = env
        .tufctl(&["-o", "json", "tuf", "rotate", &r, role])
        .json();
    assert_eq!(version(&s, "root"), 2);
    assert_ne!(root_keys(&repo, 1, role), root_keys(&repo, 2, role));
    assert_eq!(read_ok(&repo, &trusting, files.clone())["root"], 2);
    assert_eq!(read_ok(&repo, &fresh, files)["root"], 2);
}

#[test]
fn a_crash_before_the_timestamp_of_a_snapshot_rotation_leaves_a_whole_repository() {
    crash_during_rotation("snapshot", "TUFD_TEST_TUF1_HOLD");
}

#[test]
fn a_crash_before_the_timestamp_of_a_targets_rotation_leaves_a_whole_repository() {
    crash_during_rotation("targets", "TUFD_TEST_TUF1_HOLD");
}

#[test]
fn a_crash_before_the_new_root_of_a_timestamp_rotation_leaves_a_whole_repository() {
    crash_during_rotation("timestamp", "TUFD_TEST_TUF1_HOLD_ROOT");
}

#[test]
fn a_crash_before_the_new_root_of_a_snapshot_rotation_leaves_a_whole_repository() {
    crash_during_rotation("snapshot", "TUFD_TEST_TUF1_HOLD_ROOT");
}

/// Two rotations of one role at once: the second waits for the first
/// (held at `tuf1-opened`, its new key made, nothing published) and then
/// reads the root the first published: two new keys, two root versions.
/// Before, the second named its key from the root it read before waiting,
/// found that name taken by the first's key, reused it and said
/// "rotated" with the role's key unchanged.
#[test]
fn concurrent_rotations_of_one_role_each_make_a_new_key() {
    let mut env = TestEnv::new();
    let hooks = PausePoints::arm(&mut env, "tuf1-opened");
    let d = env.start();
    let repo = env.path().join("repo");
    let r = repo.to_str().unwrap().to_owned();
    env.tufctl(&["tuf", "init", &r]).ok();
    let rotate = || {
        let socket = env.socket();
        let r = r.clone();
        std::thread::spawn(move || {
            std::process::Command::new(tufd_tests::daemon::binary("tufctl"))
                .env("TUFD_SOCKET", socket)
                .args(["tuf", "rotate", &r, "timestamp"])
                .output()
                .unwrap()
        })
    };
    let first = rotate();
    hooks.wait("tuf1-opened", &d);
    let second = rotate();
    // The second is in the daemon, waiting for the repository.
    std::thread::sleep(Duration::from_millis(1500));
    hooks.release("tuf1-opened");
    for out in [first.join().unwrap(), second.join().unwrap()] {
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("rotated the timestamp keys"));
    }
    let (k1, k2, k3) = (
        root_keys(&repo, 1, "timestamp"),
        root_keys(&repo, 2, "timestamp"),
        root_keys(&repo, 3, "timestamp"),
    );
    assert_ne!(k1, k2);
    assert_ne!(k2, k3, "the second rotation changed the key");
    assert_ne!(k1, k3);
    assert_eq!(version(&status(&env, &repo), "root"), 3);
    let client = env.path().join("client");
    assert_eq!(read_ok(&repo, &client, json!({}))["root"], 3);
}

/// A staged root that expired while its signatures were collected is
/// refused, never published (clients would reject it): before, `publish`
/// said "published the staged root" and python-tuf failed with
/// ExpiredMetadataError.
#[test]
fn an_expired_staged_root_is_not_published() {
    let env = TestEnv::new();
    let _d = env.start();
    let repo = env.path().join("repo");
    let r = repo.to_str().unwrap();
    env.tufctl(&["tuf", "init", r, "--expires", "root=5s"]).ok();
    let staged = env.path().join("staged.json");
    let s = env
        .tufctl(&[
            "-o",
            "json",
            "tuf",
            "stage",
            r,
            "-f",
            staged.to_str().unwrap(),
        ])
        .json();
    assert_eq!(s["ready"], true, "{s:#}");
    std::thread::sleep(Duration::from_secs(6));
    let out = env.tufctl(&["tuf", "publish", r, staged.to_str().unwrap()]);
    out.fails_with(1, "expired at");
    assert!(out.stderr.contains("stage the change again"), "{out:?}");
    assert!(!repo.join("metadata/2.root.json").exists());
    assert_eq!(version(&status(&env, &repo), "root"), 1);
}
