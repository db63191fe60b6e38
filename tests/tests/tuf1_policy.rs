//! TUF 1.0 repositories as named resources: the daemon writes only where
//! its `[tuf]` configuration allows, and the policy decides who may do what
//! to which repository. A real tufd on SoftHSM2, the real tufctl run as a
//! real local user over the socket, the audit log read back. Needs root (to
//! create users); skips with a message otherwise.

use std::path::Path;
use tufd_tests::daemon::{CmdOutput, TestEnv, token_toml};
use tufd_tests::softhsm::MODULE;
use tufd_tests::users::{TestUser, can_create_users, open_socket_to_everyone};

const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[track_caller]
fn refused(out: &CmdOutput, needle: &str) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = format!("{}{}", out.stderr, out.stdout.replace("\\\"", "\""));
    assert!(said.contains(needle), "expected {needle:?}: {out:?}");
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
    let config = env.config_with(&format!(
        r#"{token}
[policy]
[[policy.rule]]
users = ["{dev}"]
repositories = ["tuf:alpha"]
operations = ["sign", "revoke", "inspect"]
[tuf]
roots = [{roots:?}]
[[tuf.repository]]
name = "alpha"
directory = {alpha:?}
expiry = {{ timestamp = 7200 }}
[[tuf.repository]]
name = "beta"
directory = {beta:?}
"#,
        token = token_toml(
            "dev",
            MODULE,
            tufd_tests::daemon::TOKEN_LABEL,
            "env:TUFD_PIN"
        ),
        dev = dev.name,
        alpha = env.path().join("www/alpha"),
        beta = env.path().join("www/beta"),
    ));
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
