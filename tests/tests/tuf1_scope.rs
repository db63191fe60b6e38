//! Whose keys sign a staged root change, and what a caller learns about
//! paths: a caller allowed one TUF 1.0 repository gets no signature by
//! another repository's keys, and learns nothing of paths outside the
//! configured roots. A real tufd on SoftHSM2, the real tufctl run as a
//! real local user over the socket. Needs root (to create users); skips
//! with a message otherwise.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{Value, json};
use tufd_tests::daemon::{CmdOutput, TestEnv, token_toml};
use tufd_tests::softhsm::MODULE;
use tufd_tests::users::{TestUser, can_create_users, open_socket_to_everyone};

/// `mine` and `prod` configured, a root for paths, and one rule giving
/// `dev` `rotate` and `inspect` on `tuf:mine` only.
fn start(env: &TestEnv, dev: &TestUser) -> tufd_tests::daemon::Daemon {
    let roots = env.path().join("roots");
    std::fs::create_dir_all(&roots).unwrap();
    std::fs::create_dir_all(env.path().join("www")).unwrap();
    let token = token_toml(
        "dev",
        MODULE,
        tufd_tests::daemon::TOKEN_LABEL,
        "env:TUFD_PIN",
    );
    let config = env.config_with(&format!(
        r#"{token}
[policy]
[[policy.rule]]
users = ["{user}"]
repositories = ["tuf:mine"]
operations = ["rotate", "inspect"]
[tuf]
roots = [{roots:?}]
[[tuf.repository]]
name = "mine"
directory = {mine:?}
[[tuf.repository]]
name = "prod"
directory = {prod:?}
"#,
        user = dev.name,
        mine = env.path().join("www/mine"),
        prod = env.path().join("www/prod"),
    ));
    let d = env.start_with(&config);
    open_socket_to_everyone(env);
    d
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The published root 1 of a configured repository and its root key ID.
fn root_of(env: &TestEnv, name: &str) -> (Value, String) {
    let root = read_json(&env.path().join(format!("www/{name}/metadata/1.root.json")));
    let id = root["signed"]["roles"]["root"]["keyids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    (root, id)
}

/// Writes `v` as a file of `user`'s (tufctl, run as them, writes it back).
fn write_as(user: &TestUser, name: &str, v: &Value) -> std::path::PathBuf {
    let p = user.home.join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    std::os::unix::fs::chown(&p, Some(user.uid), Some(user.gid)).unwrap();
    p
}

fn signers_of(staged: &Path) -> Vec<String> {
    read_json(staged)["metadata"]["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["keyid"].as_str().unwrap().to_owned())
        .collect()
}

/// A caller allowed to rotate only `tuf:mine` hands the daemon a staged
/// change whose current root is prod's and whose next root lists prod's
/// root key beside mine's: prod's key never signs it. Named as mine's
/// change, mine's key signs and the answer names prod's key as not used;
/// named as a repository the daemon does not manage, nothing signs.
#[test]
fn a_staged_change_is_never_signed_by_another_repositorys_keys() {
    if !can_create_users() {
        eprintln!("SKIPPED: creating test users needs root (CI runs as root)");
        return;
    }
    let env = TestEnv::new();
    let dev = TestUser::create(&env, "stg");
    let _d = start(&env, &dev);
    env.tufctl(&["tuf", "init", "mine"]).ok();
    env.tufctl(&["tuf", "init", "prod"]).ok();
    let (prod, prod_key) = root_of(&env, "prod");
    let (mine, mine_key) = root_of(&env, "mine");

    // Prod's root with mine's root key added as a root key: the next root
    // the caller would like prod's key to sign.
    let mut next = prod["signed"].clone();
    next["version"] = json!(2);
    next["keys"][&mine_key] = mine["signed"]["keys"][&mine_key].clone();
    next["roles"]["root"]["keyids"] = json!([prod_key, mine_key]);
    let change = |repository: &str| {
        json!({
            "tufd_staged_change": 1,
            "repository": repository,
            "previous": prod,
            "metadata": {"signed": next, "signatures": []},
        })
    };
    let mine_dir = std::fs::canonicalize(env.path().join("www/mine")).unwrap();

    // Named as mine's change: allowed, signed by mine's key only; the
    // answer says prod's key was not used, and why.
    let file = write_as(&dev, "as-mine.json", &change(mine_dir.to_str().unwrap()));
    let out = dev.tufctl(
        &env,
        &["-o", "json", "tuf", "sign", file.to_str().unwrap()],
        &[],
    );
    let s = out.json();
    assert_eq!(s["signed_key_ids"], json!([mine_key]), "{out:?}");
    let unused = &s["unused_keys"];
    assert_eq!(unused[0]["key_id"], json!(prod_key), "{s:#}");
    assert!(
        unused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("another TUF 1.0 repository"),
        "{s:#}"
    );
    assert_eq!(s["thresholds"][0]["met"], false, "prod's threshold: {s:#}");
    assert!(
        !signers_of(&file).contains(&prod_key),
        "signed by prod's key"
    );
    // The audit log names the repository whose change it was.
    let audit = std::fs::read_to_string(env.path().join("state/audit.log")).unwrap();
    let end = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["phase"] == "end" && l["caller"]["uid"] == dev.uid)
        .expect("the sign's end record");
    assert_eq!(end["repositories"], json!(["tuf:mine"]), "{end:#}");
    assert_eq!(end["key_ids"], json!([mine_key]), "{end:#}");

    // Named as prod's: the caller may not rotate prod's root.
    let prod_dir = std::fs::canonicalize(env.path().join("www/prod")).unwrap();
    let file = write_as(&dev, "as-prod.json", &change(prod_dir.to_str().unwrap()));
    let before = std::fs::read(&file).unwrap();
    let out = dev.tufctl(&env, &["tuf", "sign", file.to_str().unwrap()], &[]);
    out.fails_with(1, "\"rotate\" on tuf:prod");
    assert_eq!(std::fs::read(&file).unwrap(), before);

    // Named as a repository this daemon does not manage: no repository's
    // key signs; the refusal names the keys not used.
    let file = write_as(&dev, "elsewhere.json", &change("/srv/elsewhere"));
    let before = std::fs::read(&file).unwrap();
    let out = dev.tufctl(&env, &["tuf", "sign", file.to_str().unwrap()], &[]);
    out.fails_with(1, "may not use here");
    assert!(out.stderr.contains(&prod_key[..12]), "{out:?}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    assert!(!signers_of(&file).contains(&prod_key));
}

/// The same caller rotates mine's root offline: staged on the
/// repository's daemon with a holder's key, signed on the holder's daemon
/// (which manages no repository: the holder's key signs, the policy
/// allowing the caller), published.
#[test]
fn a_caller_signs_and_publishes_a_staged_change_of_their_repository() {
    if !can_create_users() {
        eprintln!("SKIPPED: creating test users needs root (CI runs as root)");
        return;
    }
    let env = TestEnv::new();
    let dev = TestUser::create(&env, "leg");
    let _d = start(&env, &dev);
    let holder_env = TestEnv::new();
    let _h = start(&holder_env, &dev);
    env.tufctl(&["tuf", "init", "mine"]).ok();
    holder_env.tufctl(&["key", "generate", "holder"]).ok();
    let holder = dev.home.join("holder.pub");
    std::fs::copy(holder_env.path().join("holder.pub"), &holder).unwrap();
    std::fs::set_permissions(&holder, std::fs::Permissions::from_mode(0o644)).unwrap();

    let staged = dev.home.join("staged.json");
    let (staged_s, holder_s) = (staged.to_str().unwrap(), holder.to_str().unwrap());
    let stage = [
        "-o",
        "json",
        "tuf",
        "stage",
        "mine",
        "-f",
        staged_s,
        "--root-key-file",
        holder_s,
    ];
    let s = dev.tufctl(&env, &stage, &[]).json();
    assert_eq!(s["thresholds"][0]["met"], true, "{s:#}");
    assert_eq!(s["thresholds"][1]["met"], false, "{s:#}");
    let s = dev
        .tufctl(&holder_env, &["-o", "json", "tuf", "sign", staged_s], &[])
        .json();
    assert_eq!(s["signed_key_ids"].as_array().unwrap().len(), 1, "{s:#}");
    assert_eq!(s["ready"], true, "{s:#}");
    assert_eq!(s["unused_keys"], json!([]), "{s:#}");
    let st = dev
        .tufctl(
            &env,
            &["-o", "json", "tuf", "publish", "mine", staged_s],
            &[],
        )
        .json();
    assert_eq!(st["roles"][0]["version"], 2, "{st:#}");
}

/// What the caller sees, their own path replaced by `PATH`.
fn said(out: &CmdOutput, given: &Path) -> String {
    format!("{} {}", out.stderr, out.stdout).replace(given.to_str().unwrap(), "PATH")
}

/// A caller asking about paths outside the roots gets one answer whether
/// the path exists or not, is a link or a file it cannot read: nothing of
/// what lies there or what it resolves to.
#[test]
fn paths_outside_the_roots_are_refused_alike_whether_they_exist_or_not() {
    if !can_create_users() {
        eprintln!("SKIPPED: creating test users needs root (CI runs as root)");
        return;
    }
    let env = TestEnv::new();
    let dev = TestUser::create(&env, "prb");
    let _d = start(&env, &dev);
    env.tufctl(&["tuf", "init", "mine"]).ok();
    let outside = env.path().join("outside");
    let private = outside.join("private");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::write(private.join("secret"), b"x").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&private, outside.join("link")).unwrap();
    // And inside the root, a directory of no repository the caller may use.
    let team = env.path().join("roots/team");
    std::fs::create_dir_all(&team).unwrap();

    let probe = |args: &dyn Fn(&str) -> Vec<String>, p: &Path| {
        let a = args(p.to_str().unwrap());
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = dev.tufctl(&env, &a, &[]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        said(&out, p)
    };
    let status = |p: &str| vec!["tuf".into(), "status".into(), p.to_owned()];
    let add = |p: &str| vec!["tuf".into(), "add".into(), "mine".into(), p.to_owned()];
    for (what, args) in [
        ("tuf status", &status as &dyn Fn(&str) -> Vec<String>),
        ("tuf add", &add),
    ] {
        let missing = probe(args, &outside.join("missing"));
        for p in [
            private.clone(),
            private.join("secret"),
            private.join("nothing"),
            outside.join("link"),
            outside.join("link/secret"),
            Path::new("/etc/passwd").to_owned(),
        ] {
            assert_eq!(probe(args, &p), missing, "{what} {}", p.display());
        }
        assert!(!missing.contains("resolved to"), "{missing}");
        assert!(!missing.contains("os error"), "{missing}");
        // Below the root, where the caller may do nothing: refused by the
        // policy before anything on disk is looked at.
        let absent = probe(args, &team.join("nothing/x"));
        assert_eq!(probe(args, &team.join("x")), absent, "{what}");
        assert!(absent.contains("permission denied"), "{absent}");
    }
    // The first answer for an allowed caller still says where to look.
    let out = env.tufctl(&["tuf", "status", outside.join("x").to_str().unwrap()]);
    out.fails_with(1, "outside the configured TUF roots");
}
