//! TUF 1.0 repositories as named resources: the daemon writes only where
//! its `[tuf]` configuration allows, and the policy decides who may do what
//! to which repository. A real tufd on SoftHSM2, the real tufctl run as a
//! real local user over the socket, the audit log read back. Needs root (to
//! create users); skips with a message otherwise.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use tufd_tests::daemon::{CmdOutput, Daemon, TestEnv, token_toml};
use tufd_tests::hooks::PausePoints;
use tufd_tests::softhsm::MODULE;
use tufd_tests::users::{TestUser, can_create_users, open_socket_to_everyone};

const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[track_caller]
fn refused(out: &CmdOutput, needle: &str) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = format!("{}{}", out.stderr, out.stdout.replace("\\\"", "\""));
    assert!(said.contains(needle), "expected {needle:?}: {out:?}");
}

/// A daemon configuration: the test token, one policy rule giving `user`
/// `operations` on `repositories` (TOML lists), and the `[tuf]` section.
fn config(
    env: &TestEnv,
    user: &TestUser,
    repositories: &str,
    operations: &str,
    tuf: &str,
) -> String {
    let token = token_toml(
        "dev",
        MODULE,
        tufd_tests::daemon::TOKEN_LABEL,
        "env:TUFD_PIN",
    );
    env.config_with(&format!(
        "{token}\n[policy]\n[[policy.rule]]\nusers = [\"{}\"]\nrepositories = {repositories}\noperations = {operations}\n{tuf}",
        user.name
    ))
}

fn audit(env: &TestEnv) -> Vec<serde_json::Value> {
    std::fs::read_to_string(env.path().join("state/audit.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn add(name: &str) -> Vec<String> {
    ["tuf", "add", name, "--name", "app.tgz", "--hash", HASH]
        .into_iter()
        .map(String::from)
        .chain(["--length".into(), "10".into()])
        .collect()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn repositories_are_named_resources_checked_by_the_policy_and_the_roots() {
    if !can_create_users() {
        eprintln!("SKIPPED: creating test users needs root (CI runs as root)");
        return;
    }
    let env = TestEnv::new();
    let dev = TestUser::create(&env, "dev");
    let roots = env.path().join("roots");
    let outside = env.path().join("outside");
    std::fs::create_dir_all(&roots).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, roots.join("escape")).unwrap();
    let tuf = format!(
        r#"[tuf]
roots = [{roots:?}]
[[tuf.repository]]
name = "alpha"
directory = {alpha:?}
expiry = {{ timestamp = 7200 }}
[[tuf.repository]]
name = "beta"
directory = {beta:?}
"#,
        alpha = env.path().join("www/alpha"),
        beta = env.path().join("www/beta"),
    );
    let config = config(
        &env,
        &dev,
        r#"["tuf:alpha"]"#,
        r#"["sign", "revoke", "inspect"]"#,
        &tuf,
    );
    std::fs::create_dir_all(env.path().join("www")).unwrap();
    let _d = env.start_with(&config);
    open_socket_to_everyone(&env);

    // The administrator creates both configured repositories by name; the
    // configured expiry default applies.
    let alpha = env.tufctl(&["-o", "json", "tuf", "init", "alpha"]).json();
    let ts = alpha["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "timestamp")
        .unwrap()["expires"]
        .as_str()
        .unwrap()
        .to_owned();
    let expires =
        time::OffsetDateTime::parse(&ts, &time::format_description::well_known::Rfc3339).unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(
        left.whole_minutes() > 100 && left.whole_minutes() <= 120,
        "{ts}"
    );
    env.tufctl(&["tuf", "init", "beta"]).ok();
    // A path inside a root is allowed too, for the administrator.
    let inside = roots.join("gamma");
    env.tufctl(&["tuf", "init", inside.to_str().unwrap()]).ok();

    // The developer may add to alpha, by name or by its path, and read it...
    dev.tufctl(&env, &args(&add("alpha")), &[]).ok();
    let by_path = env.path().join("www/alpha");
    let status = dev
        .tufctl(
            &env,
            &["-o", "json", "tuf", "status", by_path.to_str().unwrap()],
            &[],
        )
        .json();
    assert_eq!(status["target_count"], 1);
    // ...but nothing in beta, and nothing administrative in alpha.
    refused(
        &dev.tufctl(&env, &args(&add("beta")), &[]),
        "\"sign\" on tuf:beta",
    );
    refused(
        &dev.tufctl(&env, &["tuf", "rotate", "alpha", "targets"], &[]),
        "\"rotate\" on tuf:alpha",
    );
    assert!(!env.path().join("www/beta/metadata/2.targets.json").exists());

    // Paths outside the roots, and a symbolic link from a root to outside,
    // are refused even to the administrator; nothing is written there.
    for dir in [outside.join("r"), roots.join("escape/r"), roots.clone()] {
        refused(
            &env.tufctl(&["tuf", "init", dir.to_str().unwrap()]),
            "outside the configured TUF roots",
        );
    }
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    refused(
        &env.tufctl(&["tuf", "init", "nosuch"]),
        "no TUF repository is named",
    );
    // Target files are read only from inside the configured places.
    let secret = outside.join("secret");
    std::fs::write(&secret, b"not for publishing").unwrap();
    refused(
        &env.tufctl(&["tuf", "add", "alpha", secret.to_str().unwrap()]),
        "reads target files only from inside",
    );
    let via_link = roots.join("escape/secret");
    refused(
        &env.tufctl(&["tuf", "add", "alpha", via_link.to_str().unwrap()]),
        "reads target files only from inside",
    );
    assert!(!Path::new(&env.path().join("www/alpha/targets")).exists());

    // The audit log: the developer's add (begin and end), the refusal.
    let lines = audit(&env);
    let of = |phase: &str, repo: &str| {
        lines.iter().any(|l| {
            l["phase"] == phase
                && l["caller"]["uid"] == dev.uid
                && l["operation"] == "sign"
                && l["repositories"][0] == repo
        })
    };
    assert!(
        of("begin", "tuf:alpha") && of("end", "tuf:alpha"),
        "{lines:#?}"
    );
    assert!(of("denied", "tuf:beta"), "{lines:#?}");
}

/// Every file below `dir` (links as links, not followed) with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_owned();
            if meta.is_dir() {
                todo.push(p);
            } else if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    std::fs::read_link(&p).unwrap().into_os_string().into_vec(),
                );
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Runs tufctl `cmd` as `user`; while the daemon is held at `point`,
/// replaces `path` by a symbolic link to `to` (what a member who can write
/// in its parent can do), then lets the daemon go on. The original is put
/// back once tufctl has answered.
#[allow(clippy::too_many_arguments)]
fn swapped_while_held(
    env: &TestEnv,
    daemon: &Daemon,
    hooks: &PausePoints,
    point: &str,
    user: &TestUser,
    cmd: &[&str],
    path: &Path,
    to: &Path,
) -> CmdOutput {
    let mut moved = path.as_os_str().to_owned();
    moved.push(".moved");
    let moved = PathBuf::from(moved);
    std::thread::scope(|s| {
        let run = s.spawn(|| user.tufctl(env, cmd, &[]));
        // A tufctl that answers without reaching the pause (refused, or
        // not connected) is reported with what it said, not as a hang.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !hooks.is_paused(point) {
            if run.is_finished() {
                let out = run.join().unwrap();
                panic!(
                    "tufctl answered before the daemon paused at {point}: {out:?}\n{}",
                    daemon.log()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon never paused at {point}:\n{}",
                daemon.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::fs::rename(path, &moved).unwrap();
        std::os::unix::fs::symlink(to, path).unwrap();
        hooks.release(point);
        let out = run.join().unwrap();
        std::fs::remove_file(path).unwrap();
        std::fs::rename(&moved, path).unwrap();
        out
    })
}

/// Checks that `out` refuses `rel` below `root` as a symbolic link.
#[track_caller]
fn refused_link(out: &CmdOutput, root: &Path, rel: &str) {
    let want = format!(
        "{}: a symbolic link below {}",
        root.join(rel).display(),
        root.display()
    );
    refused(out, &want);
}

/// Two teams' directories below one root (`ROOT/team-a`, `ROOT/team-b`)
/// and `other` beside the root; a developer whose policy grants `sign` and
/// `inspect` on `tuf:ROOT/team-a/**` only. Returns the developer, the
/// root as configured and canonical, and the daemon configuration (with
/// `sources` as `tuf.sources` when given).
fn two_teams(
    env: &TestEnv,
    other: &Path,
    sources: Option<&Path>,
) -> (TestUser, PathBuf, PathBuf, String) {
    let dev = TestUser::create(env, "team");
    let roots = env.path().join("roots");
    for d in [roots.join("team-a"), roots.join("team-b"), other.to_owned()] {
        std::fs::create_dir_all(d).unwrap();
    }
    let canonical = std::fs::canonicalize(&roots).unwrap();
    let team_a = format!(r#"["tuf:{}/**"]"#, canonical.join("team-a").display());
    let mut tuf = format!("[tuf]\nroots = [{roots:?}]\n");
    if let Some(s) = sources {
        tuf.push_str(&format!("sources = [{s:?}]\n"));
    }
    let config = config(env, &dev, &team_a, r#"["sign", "inspect"]"#, &tuf);
    (dev, roots, canonical, config)
}

#[test]
fn a_repository_or_target_swapped_for_a_link_after_the_check_is_refused() {
    if !can_create_users() {
        eprintln!("SKIPPED: creating test users needs root (CI runs as root)");
        return;
    }
    let mut env = TestEnv::new();
    let outside = env.path().join("outside");
    let (dev, roots, canonical, config) = two_teams(&env, &outside, None);
    let (a, b) = (roots.join("team-a/repo"), roots.join("team-b/repo"));
    let d = env.start_with(&config);
    for r in [&a, &b] {
        env.tufctl(&["tuf", "init", r.to_str().unwrap()]).ok();
    }
    d.stop();

    // The same daemon again, held after the policy check of the next
    // request (before its repository is opened) and after the next change
    // opened its repository (before anything is written).
    let hooks = PausePoints::arm(&mut env, "tuf1-checked,tuf1-opened");
    let d = env.start_with(&config);
    open_socket_to_everyone(&env);
    let (before_a, before_b) = (files(&a), files(&b));

    // 1. The developer adds to team-a's repository; between the check and
    // the open, team-a/repo becomes a link to team-b's.
    let cmd = add(a.to_str().unwrap());
    let out = swapped_while_held(&env, &d, &hooks, "tuf1-checked", &dev, &args(&cmd), &a, &b);
    refused_link(&out, &canonical, "team-a/repo");
    assert_eq!(files(&b), before_b, "team-b's repository was written");
    assert_eq!(files(&a), before_a);

    // 2. The developer adds a file of their own; after it was checked and
    // hashed, it becomes a link to a file they may not publish.
    let own = roots.join("team-a/app.tgz");
    let secret = outside.join("secret");
    std::fs::write(&own, b"the release").unwrap();
    std::fs::write(&secret, b"the release").unwrap();
    let cmd = ["tuf", "add", a.to_str().unwrap(), own.to_str().unwrap()];
    let out = swapped_while_held(&env, &d, &hooks, "tuf1-opened", &dev, &cmd, &own, &secret);
    refused_link(&out, &canonical, "team-a/app.tgz");
    assert_eq!(files(&a), before_a, "nothing published, no file left");
    assert_eq!(files(&b), before_b);

    // 3. Once a change has opened its repository, a swap no longer matters:
    // every write goes into the directory opened (team-a's, wherever it
    // has been moved), none through the link.
    d.stop();
    let hooks = PausePoints::arm(&mut env, "tuf1-opened");
    let d = env.start_with(&config);
    open_socket_to_everyone(&env);
    let cmd = add(a.to_str().unwrap());
    let out = swapped_while_held(&env, &d, &hooks, "tuf1-opened", &dev, &args(&cmd), &a, &b);
    out.ok();
    assert_eq!(files(&b), before_b, "team-b's repository was written");
    assert!(a.join("metadata/2.targets.json").exists());
    let status = dev.tufctl(
        &env,
        &["-o", "json", "tuf", "status", a.to_str().unwrap()],
        &[],
    );
    assert_eq!(status.json()["target_count"], 1);
}

/// A target file is read for a caller only from the repository changed, a
/// `tuf.sources` directory, or a place the caller may sign: a developer
/// allowed team-a's repositories cannot publish (and so read) a file of
/// team-b's, although it lies below the same root.
#[test]
fn a_target_file_is_read_only_where_the_caller_may_sign() {
    if !can_create_users() {
        eprintln!("SKIPPED: creating test users needs root (CI runs as root)");
        return;
    }
    let env = TestEnv::new();
    let shared = env.path().join("incoming");
    let (dev, roots, _, config) = two_teams(&env, &shared, Some(&shared));
    let repo = roots.join("team-a/repo");
    let _d = env.start_with(&config);
    env.tufctl(&["tuf", "init", repo.to_str().unwrap()]).ok();
    open_socket_to_everyone(&env);
    let (secret, own, drop) = (
        roots.join("team-b/secret.txt"),
        roots.join("team-a/app.tgz"),
        shared.join("shared.tgz"),
    );
    std::fs::write(&secret, b"team-b's secret").unwrap();
    std::fs::write(&own, b"team-a's release").unwrap();
    std::fs::write(&drop, b"a shared drop").unwrap();
    let before = files(&repo);

    let out = dev.tufctl(
        &env,
        &[
            "tuf",
            "add",
            repo.to_str().unwrap(),
            secret.to_str().unwrap(),
        ],
        &[],
    );
    refused(&out, "team-b/secret.txt");
    refused(&out, "tuf.sources directory, or a place you may sign");
    assert_eq!(
        files(&repo),
        before,
        "nothing of team-b's file was published"
    );
    let denied = audit(&env).into_iter().any(|e| {
        e["phase"] == "denied"
            && e["repositories"][0]
                .as_str()
                .is_some_and(|r| r.ends_with("team-b/secret.txt"))
    });
    assert!(denied, "the refusal is in the audit log");

    // Team-a's own file and a file of the shared drop are read.
    for file in [&own, &drop] {
        dev.tufctl(
            &env,
            &["tuf", "add", repo.to_str().unwrap(), file.to_str().unwrap()],
            &[],
        )
        .ok();
    }
    let status = dev.tufctl(
        &env,
        &["-o", "json", "tuf", "status", repo.to_str().unwrap()],
        &[],
    );
    assert_eq!(status.json()["target_count"], 2, "{status:?}");
    let copied: Vec<Vec<u8>> = std::fs::read_dir(repo.join("targets"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        copied.contains(&b"team-a's release".to_vec())
            && copied.contains(&b"a shared drop".to_vec()),
        "the two files are published under targets/"
    );
}
