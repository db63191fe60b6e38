//! Nested delegations in TUF 1.0 repositories tufd manages (targets → A →
//! B), and the daemon's timer re-signing delegated roles whose keys it
//! can use alone: a real tufd on SoftHSM2 tokens, the real tufctl, and
//! python-tuf's ngclient (which also parses every file and re-serializes
//! it byte for byte) and `tufctl tuf client` as readers.

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use tufd_tests::daemon::{TOKEN_LABEL, TestEnv, token_toml};
use tufd_tests::python::ngclient;
use tufd_tests::softhsm::{MODULE, PIN};
use tufd_tests::tuf1::sha256;

/// The status entry of `role`.
fn role(env: &TestEnv, repo: &Path, name: &str) -> Value {
    let s = env
        .tufctl(&["-o", "json", "tuf", "status", repo.to_str().unwrap()])
        .json();
    s["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in {s:#}"))
}

/// python-tuf's ngclient refreshes with the trusted metadata in `client`
/// and finds (downloads, checks) every present target.
#[track_caller]
fn python_reads(repo: &Path, client: &Path, expect: Value) {
    let run = ngclient(repo, client, &expect);
    assert!(run.ok, "python-tuf: {:#}\n{}", run.output, run.stderr);
}

fn write(env: &TestEnv, name: &str, body: &[u8]) -> String {
    let f = env.path().join(name);
    std::fs::write(&f, body).unwrap();
    f.to_str().unwrap().to_owned()
}

#[test]
fn a_target_in_a_nested_role_is_found_by_python_tuf_and_tufctl() {
    let env = TestEnv::new();
    let _d = env.start();
    let repo = env.path().join("repo");
    let r = repo.to_str().unwrap();
    env.tufctl(&["tuf", "init", r]).ok();
    env.tufctl(&[
        "tuf", "delegate", r, "A", "--path", "a/*", "--path", "a/b/*",
    ])
    .ok();
    env.tufctl(&[
        "tuf",
        "delegate",
        r,
        "B",
        "--parent",
        "A",
        "--path",
        "a/b/*",
        "--terminating",
    ])
    .ok();
    env.tufctl(&[
        "tuf", "delegate", r, "C", "--parent", "nobody", "--path", "x",
    ])
    .fails_with(1, "delegates no role \"nobody\"");
    env.tufctl(&["tuf", "delegate", r, "B", "--path", "b/*"])
        .fails_with(1, "already has a role B (delegated by A)");

    let x = write(&env, "x.txt", b"in B");
    let y = write(&env, "y.txt", b"in A");
    env.tufctl(&["tuf", "add", r, &x, "--name", "a/b/x.txt", "--role", "B"])
        .ok();
    env.tufctl(&["tuf", "add", r, &y, "--name", "a/y.txt", "--role", "B"])
        .fails_with(1, "outside the paths delegated to B");
    env.tufctl(&["tuf", "add", r, &y, "--name", "a/y.txt", "--role", "A"])
        .ok();

    // Status lists the nested role under the one that delegates it, with
    // its expiry and when the daemon re-signs it (its key is online).
    let b = role(&env, &repo, "B");
    assert_eq!(b["delegated_by"], "A", "{b:#}");
    assert_eq!(b["version"], 2, "{b:#}");
    assert_eq!(b["needs_holder"], false, "{b:#}");
    assert!(b["next_refresh"].is_string(), "{b:#}");
    assert_eq!(role(&env, &repo, "A")["delegated_by"], "targets");
    // Snapshot lists every role's version.
    let snap_version = role(&env, &repo, "snapshot")["version"].as_u64().unwrap();
    let snap: Value = serde_json::from_slice(
        &std::fs::read(repo.join(format!("metadata/{snap_version}.snapshot.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(snap["signed"]["meta"]["B.json"]["version"], 2, "{snap:#}");
    assert_eq!(snap["signed"]["meta"]["A.json"]["version"], 3, "{snap:#}");

    let client = env.path().join("client");
    let files = json!({"present": {"a/b/x.txt": sha256(b"in B"), "a/y.txt": sha256(b"in A")}});
    python_reads(&repo, &client, files.clone());

    // tufd's own client walks targets → A → B too.
    let md = env.path().join("tufctl-client");
    let dl = env.path().join("dl");
    tufd_tests::tufctl_client::download(&env, &repo, &md, &dl, &["a/b/x.txt"]).ok();
    assert_eq!(std::fs::read(dl.join("a%2Fb%2Fx.txt")).unwrap(), b"in B");

    // B's key rotated: A lists the new key (A is re-signed), B is signed
    // with it; the same client follows.
    let a_before = role(&env, &repo, "A")["version"].as_u64().unwrap();
    let old_key = role(&env, &repo, "B")["key_ids"].clone();
    env.tufctl(&["tuf", "rotate", r, "B"]).ok();
    let b = role(&env, &repo, "B");
    assert_ne!(b["key_ids"], old_key);
    assert_eq!(role(&env, &repo, "A")["version"], a_before + 1);
    let b_file: Value = serde_json::from_slice(
        &std::fs::read(repo.join(format!("metadata/{}.B.json", b["version"]))).unwrap(),
    )
    .unwrap();
    assert_eq!(b_file["signatures"][0]["keyid"], b["key_ids"][0]);
    python_reads(&repo, &client, files);

    // A target removed by name is found in B; A delegating to B cannot be
    // removed before B.
    env.tufctl(&["tuf", "remove", r, "a/b/x.txt"]).ok();
    python_reads(
        &repo,
        &client,
        json!({"absent": ["a/b/x.txt"], "present": {"a/y.txt": null}}),
    );
    env.tufctl(&["tuf", "undelegate", r, "A"])
        .fails_with(1, "A delegates to B: remove those roles first");
    env.tufctl(&["tuf", "undelegate", r, "B"]).ok();
    env.tufctl(&["tuf", "undelegate", r, "A"]).ok();
    let s = env.tufctl(&["-o", "json", "tuf", "status", r]).json();
    let names: Vec<&str> = s["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["root", "targets", "snapshot", "timestamp"]);
    // Clients that trusted A and B still update (snapshot keeps listing
    // them); the targets are gone.
    python_reads(&repo, &client, json!({"absent": ["a/y.txt", "a/b/x.txt"]}));
}

/// A nested role with a short expiry is re-signed by the daemon's timer
/// (its key is online), with snapshot and timestamp, in one version; a
/// client still reads the target past the role's first expiry.
#[test]
fn the_timer_resigns_a_nested_role_before_it_expires() {
    let env = TestEnv::new();
    let d = env.start();
    // A second repository: every hash bin valid for 6 s.
    let bins = env.path().join("bins");
    let bn = bins.to_str().unwrap();
    env.tufctl(&[
        "tuf",
        "init",
        bn,
        "--hash-bins",
        "4",
        "--expires",
        "bins=6s",
    ])
    .ok();
    let y = write(&env, "y.txt", b"in a bin");
    env.tufctl(&["tuf", "add", bn, &y]).ok();
    let bins_client = env.path().join("bins-client");
    let bin_files = json!({"present": {"y.txt": sha256(b"in a bin")}});
    python_reads(&bins, &bins_client, bin_files.clone());
    let bins_first = role(&env, &bins, "bins-*");

    let repo = env.path().join("repo");
    let r = repo.to_str().unwrap();
    env.tufctl(&["tuf", "init", r]).ok();
    env.tufctl(&["tuf", "delegate", r, "A", "--path", "a/*"])
        .ok();
    env.tufctl(&[
        "tuf",
        "delegate",
        r,
        "B",
        "--parent",
        "A",
        "--path",
        "a/*",
        "--expires",
        "6s",
    ])
    .ok();
    let x = write(&env, "x.txt", b"kept fresh");
    env.tufctl(&["tuf", "add", r, &x, "--name", "a/x.txt", "--role", "B"])
        .ok();
    let started = Instant::now();
    let client = env.path().join("client");
    let files = json!({"present": {"a/x.txt": sha256(b"kept fresh")}});
    python_reads(&repo, &client, files.clone());
    let first = role(&env, &repo, "B");
    assert_eq!(first["version"], 2);

    // Nobody calls: the timer re-signs B (due at half its period).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let b = role(&env, &repo, "B");
        if b["version"].as_u64().unwrap() >= 3 {
            assert!(b["expires"].as_str() > first["expires"].as_str(), "{b:#}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B not re-signed: {b:#}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let s = env.tufctl(&["-o", "json", "tuf", "status", r]).json();
    let detail = s["last_refresh"]["detail"].as_str().unwrap();
    assert!(detail.contains("re-signed B v"), "{detail}");
    assert_eq!(role(&env, &repo, "A")["version"], 2, "A was not due");
    // The bins were re-signed too: the earliest expiry moved on.
    loop {
        let b = role(&env, &bins, "bins-*");
        if b["expires"].as_str() > bins_first["expires"].as_str() {
            break;
        }
        assert!(Instant::now() < deadline, "bins not re-signed: {b:#}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Past the first expiry of B and of the bins the same clients still
    // update and download.
    std::thread::sleep(Duration::from_secs(7).saturating_sub(started.elapsed()));
    python_reads(&repo, &client, files);
    python_reads(&bins, &bins_client, bin_files);
}

/// A role whose key is on a token the daemon cannot use alone (its PIN
/// is given by a person and no longer cached) is not signed by the
/// timer: status says it needs its holder, the log warns when it comes
/// due, and the holder re-signs it with `tuf refresh --role`.
#[test]
fn a_role_whose_key_needs_its_holder_waits_for_the_holder() {
    let env = TestEnv::new();
    env.hsm.init_token("tufd-holder");
    let config = env.config_with(&format!(
        "{}{}pin_cache_seconds = 5\n",
        token_toml("dev", MODULE, TOKEN_LABEL, "env:TUFD_PIN"),
        token_toml("holder", MODULE, "tufd-holder", "prompt"),
    ));
    let d = env.start_with(&config);
    let unlock = || {
        env.tufctl_env(&["token", "unlock", "holder"], &[("TUFCTL_PIN", PIN)])
            .ok();
    };
    let repo = env.path().join("repo");
    let r = repo.to_str().unwrap();
    // Every token must be readable while keys are named.
    unlock();
    env.tufctl(&["tuf", "init", r]).ok();
    unlock();
    env.tufctl(&[
        "tuf",
        "delegate",
        r,
        "team",
        "--path",
        "team/*",
        "--token",
        "holder",
        "--expires",
        "14s",
    ])
    .ok();

    // The PIN is forgotten after 5 s (before team is due: a PIN still
    // cached then would let the daemon sign alone): team needs its holder.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = role(&env, &repo, "team");
        if t["needs_holder"] == true {
            assert_eq!(t["next_refresh"], Value::Null, "{t:#}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "team never needed its holder: {t:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = env.tufctl(&["tuf", "status", r]);
    assert!(
        text.ok().contains("team expires at ") && text.stdout.contains("needs its key holder"),
        "{}",
        text.stdout
    );
    // Due at 7 s: the daemon warns, and does not sign it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.log().contains("role team expires at") {
        assert!(Instant::now() < deadline, "no warning:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(role(&env, &repo, "team")["version"], 1);

    // The holder comes: unlocked, the role is re-signed on request.
    unlock();
    env.tufctl(&["tuf", "refresh", r, "--role", "team"]).ok();
    assert_eq!(role(&env, &repo, "team")["version"], 2);
    python_reads(&repo, &env.path().join("client"), json!({}));
}

/// A target is added only where a client's search (pre-order, depth
/// first, in listed order, stopping at a matching terminating delegation,
/// first listing wins) finds it: the reviewer's case, a terminating A
/// before B, is refused naming A; a placement clients reach is published
/// and python-tuf downloads it.
#[test]
fn a_target_is_added_only_where_clients_search_finds_it() {
    let env = TestEnv::new();
    let _d = env.start();
    let repo = env.path().join("repo");
    let r = repo.to_str().unwrap();
    env.tufctl(&["tuf", "init", r]).ok();
    env.tufctl(&[
        "tuf",
        "delegate",
        r,
        "A",
        "--path",
        "app/*",
        "--terminating",
    ])
    .ok();
    env.tufctl(&["tuf", "delegate", r, "B", "--path", "app/*"])
        .ok();
    let x = write(&env, "x.txt", b"app file");
    let client = env.path().join("client");
    env.tufctl(&["tuf", "add", r, &x, "--name", "app/x.txt", "--role", "B"])
        .fails_with(
            1,
            "clients would never find \"app/x.txt\" in B: their search for it stops at A, a terminating delegation from targets",
        );
    python_reads(&repo, &client, json!({"absent": ["app/x.txt"]}));
    env.tufctl(&["tuf", "add", r, &x, "--name", "app/x.txt", "--role", "A"])
        .ok();
    python_reads(
        &repo,
        &client,
        json!({"present": {"app/x.txt": sha256(b"app file")}}),
    );

    // Non-terminating C before D: D is searched after C, unless C lists
    // the name already.
    env.tufctl(&["tuf", "delegate", r, "C", "--path", "lib/*"])
        .ok();
    env.tufctl(&["tuf", "delegate", r, "D", "--path", "lib/*"])
        .ok();
    let y = write(&env, "y.txt", b"in C");
    let z = write(&env, "z.txt", b"in D");
    env.tufctl(&["tuf", "add", r, &y, "--name", "lib/y.txt", "--role", "C"])
        .ok();
    env.tufctl(&["tuf", "add", r, &z, "--name", "lib/y.txt", "--role", "D"])
        .fails_with(1, "reaches C first, which already lists it");
    env.tufctl(&["tuf", "add", r, &z, "--name", "lib/z.txt", "--role", "D"])
        .ok();
    python_reads(
        &repo,
        &client,
        json!({"present": {
            "app/x.txt": sha256(b"app file"),
            "lib/y.txt": sha256(b"in C"),
            "lib/z.txt": sha256(b"in D"),
        }}),
    );
}
