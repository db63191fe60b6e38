//! The state directory is the daemon's alone: what tufd keeps there (lock,
//! audit log, trust store, TUF 1.0 registry) is 0600 in 0700 directories,
//! and a state directory of an earlier version (0750, lock 0640) is made
//! private when tufd starts. A user in the daemon's group cannot open
//! `tufd.lock` (so cannot hold its lock and keep tufd from starting) nor
//! read the audit log. What tufd publishes in a TUF 1.0 repository stays
//! as it was (files 0644, directories 0750). The user half needs root; it skips with a message
//! otherwise.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use tufd_tests::daemon::TestEnv;
use tufd_tests::users::{TestUser, can_create_users};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Every directory below `dir` (itself included) and every file, with
/// its mode.
fn walk(dir: &Path, out: &mut Vec<(std::path::PathBuf, bool, u32)>) {
    out.push((dir.to_owned(), true, mode(dir)));
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push((path.clone(), false, mode(&path)));
        }
    }
}

#[test]
fn the_state_directory_is_private_to_the_daemon() {
    let env = TestEnv::new();
    // What an earlier tufd (umask 027) left.
    let state = env.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::write(state.join("tufd.lock"), b"").unwrap();
    std::fs::set_permissions(
        state.join("tufd.lock"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();

    let d = env.start();
    env.tufctl(&["key", "generate", "alice"]).ok();
    let repo = env.path().join("repo");
    env.tufctl(&["tuf", "init", repo.to_str().unwrap()]).ok();

    let mut seen = Vec::new();
    walk(&state, &mut seen);
    for name in ["tufd.lock", "audit.log", "trust", "tuf1/repositories.json"] {
        assert!(
            seen.iter().any(|(p, _, _)| p == &state.join(name)),
            "{name} in the state directory: {seen:?}"
        );
    }
    for (path, is_dir, m) in &seen {
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*m, want, "{} is {m:04o}", path.display());
    }
    // Published files are for everyone still.
    let mut published = Vec::new();
    walk(&repo, &mut published);
    // (Not the repository's lock file: 0600, nobody else's to lock.)
    let published: Vec<_> = published
        .iter()
        .filter(|(p, _, _)| !p.ends_with(".tufd.lock"))
        .collect();
    assert!(published.iter().any(|(_, d, _)| !d), "{published:?}");
    for (path, is_dir, m) in published {
        let want = if *is_dir { 0o750 } else { 0o644 };
        assert_eq!(*m, want, "{} is {m:04o}", path.display());
    }

    if !can_create_users() {
        eprintln!("SKIPPED the other-user half: creating a test user needs root (CI runs as root)");
        return;
    }
    // A user in the daemon's own group (as the socket's clients were).
    let user = TestUser::create(&env, "s");
    let group = nix_getegid();
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let as_user = |args: &[&str]| {
        Command::new("setpriv")
            .arg(format!("--reuid={}", user.uid))
            .arg(format!("--regid={}", user.gid))
            .arg(format!("--groups={group}"))
            .arg("--")
            .args(args)
            .output()
            .expect("setpriv runs")
    };
    let lock = state.join("tufd.lock");
    let out = as_user(&["flock", "-n", "-x", lock.to_str().unwrap(), "true"]);
    assert!(!out.status.success(), "the lock could be taken: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
    let out = as_user(&["cat", state.join("audit.log").to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "the audit log could be read: {out:?}"
    );
    // The daemon still serves.
    env.tufctl(&["status"]).ok();
    drop(d);
}

fn nix_getegid() -> u32 {
    // SAFETY: getegid(2) has no preconditions.
    unsafe { libc::getegid() }
}
