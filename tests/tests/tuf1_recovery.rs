//! TUF 1.0 repositories after a crash: an init killed halfway is reported
//! as interrupted and finished by running init again, and temporary files
//! killed writers left are swept when the daemon starts. A real tufd on a
//! SoftHSM2 token, the real tufctl, python-tuf's ngclient as the reader.

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use tufd_tests::daemon::TestEnv;
use tufd_tests::python::ngclient;
use tufd_tests::tuf1::sha256;

#[track_caller]
fn python_reads(repo: &Path, client: &Path, expect: Value) {
    let run = ngclient(repo, client, &expect);
    assert!(run.ok, "python-tuf: {:#}\n{}", run.output, run.stderr);
}

/// The key IDs `N.root.json` lists for `role`.
fn root_keyids(repo: &Path, role: &str) -> Value {
    let root: Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/1.root.json")).unwrap()).unwrap();
    root["signed"]["roles"][role]["keyids"].clone()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The daemon is killed while `tuf init` (with hash bins) has written
/// every file but `timestamp.json`. After a restart the directory is
/// reported as a creation that was interrupted, with the command that
/// finishes it; that command reuses the keys and publishes a repository
/// python-tuf accepts and that takes targets. Temporary files left in the
/// repository are swept at the start.
#[test]
fn an_init_killed_halfway_is_reported_and_finished_by_init() {
    let mut env = TestEnv::new();
    let hold = env.path().join("hold");
    std::fs::write(&hold, b"").unwrap();
    env.daemon_env
        .push(("TUFD_TEST_TUF1_HOLD".into(), hold.display().to_string()));
    let d = env.start();
    let repo = env.path().join("repo");
    let r = repo.to_str().unwrap().to_owned();
    let init = {
        let socket = env.socket();
        let r = r.clone();
        std::thread::spawn(move || {
            std::process::Command::new(tufd_tests::daemon::binary("tufctl"))
                .env("TUFD_SOCKET", socket)
                .args(["tuf", "init", &r, "--hash-bins", "16"])
                .output()
                .unwrap()
        })
    };
    let reached = env.path().join("hold.reached");
    wait_for("the init reaches the hold", || reached.exists());
    assert!(repo.join("metadata/1.root.json").exists());
    assert!(!repo.join("metadata/timestamp.json").exists());
    let root_keys = root_keyids(&repo, "root");
    let targets_keys = root_keyids(&repo, "targets");
    d.crash();
    let out = init.join().unwrap();
    assert!(!out.status.success(), "the init died with the daemon");

    // What a killed writer leaves: temporary files, one a partial copy of
    // a target in a served folder. Files that only look alike stay.
    std::fs::create_dir_all(repo.join("targets/big")).unwrap();
    let leftovers = ["metadata/.tufd-4242-0-17", "targets/big/.tufd-4242-1-99"];
    for f in leftovers {
        std::fs::write(repo.join(f), b"partial").unwrap();
    }
    std::fs::write(repo.join("targets/big/.tufd-notes"), b"mine").unwrap();

    std::fs::remove_file(&hold).unwrap();
    env.daemon_env.retain(|(k, _)| k != "TUFD_TEST_TUF1_HOLD");
    let d = env.start();
    wait_for("the leftovers are swept", || {
        leftovers.iter().all(|f| !repo.join(f).exists())
    });
    assert!(repo.join("targets/big/.tufd-notes").exists());
    // Logged once the sweep is done, which may be just after the files go.
    wait_for("the sweep is logged", || {
        d.log()
            .contains("removed temporary files left by an interrupted write")
    });

    let interrupted = format!("finish it with `tufctl tuf init {r}`");
    env.tufctl(&["tuf", "status", &r])
        .fails_with(1, "was interrupted before it finished");
    env.tufctl(&["tuf", "status", &r])
        .fails_with(1, &interrupted);
    env.tufctl(&["tuf", "refresh", &r])
        .fails_with(1, &interrupted);
    let a = env.path().join("a.txt");
    std::fs::write(&a, b"alpha").unwrap();
    let a = a.to_str().unwrap().to_owned();
    env.tufctl(&["tuf", "add", &r, &a])
        .fails_with(1, &interrupted);

    let done = env.tufctl(&["tuf", "init", &r, "--hash-bins", "16"]);
    assert!(
        done.ok().contains("finished the interrupted creation"),
        "{done:?}"
    );
    // The keys the first init made were found by their labels.
    assert_eq!(root_keyids(&repo, "root"), root_keys);
    assert_eq!(root_keyids(&repo, "targets"), targets_keys);
    env.tufctl(&["tuf", "init", &r])
        .fails_with(1, "already holds a TUF repository");

    let client = env.path().join("client");
    python_reads(&repo, &client, json!({"absent": ["a.txt"]}));
    env.tufctl(&["tuf", "add", &r, &a]).ok();
    python_reads(
        &repo,
        &client,
        json!({"present": {"a.txt": sha256(b"alpha")}}),
    );
    let status = env.tufctl(&["-o", "json", "tuf", "status", &r]).json();
    assert_eq!(status["target_count"], 0, "a.txt went to its bin: {status}");
    drop(d);
}

/// The daemon is killed after init published version 1 whole but before
/// it recorded the repository as created: init again keeps that version
/// (clients may hold it) and records it.
#[test]
fn an_init_killed_after_publishing_keeps_what_it_published() {
    let env = TestEnv::new();
    let repo = env.path().join("repo");
    let r = repo.to_str().unwrap().to_owned();
    {
        let _d = env.start();
        env.tufctl(&["tuf", "init", &r]).ok();
    }
    let timestamp = std::fs::read(repo.join("metadata/timestamp.json")).unwrap();
    // The registry as a crash just before the last step leaves it.
    let registry = env.path().join("state/tuf1/repositories.json");
    let mut reg: Value = serde_json::from_slice(&std::fs::read(&registry).unwrap()).unwrap();
    let recorded = reg["repositories"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .next()
        .unwrap();
    assert_eq!(recorded["state"], "created");
    recorded["state"] = json!("creating");
    std::fs::write(&registry, serde_json::to_vec(&reg).unwrap()).unwrap();

    let _d = env.start();
    env.tufctl(&["tuf", "status", &r])
        .fails_with(1, "was interrupted before it finished");
    let done = env.tufctl(&["tuf", "init", &r]);
    assert!(done.ok().contains("is kept as it was"), "{done:?}");
    assert_eq!(
        std::fs::read(repo.join("metadata/timestamp.json")).unwrap(),
        timestamp
    );
    python_reads(&repo, &env.path().join("client"), json!({}));
}
