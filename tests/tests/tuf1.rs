//! TUF 1.0 repositories end to end: a real tufd on a SoftHSM2 token,
//! driven by the real tufctl, publishing to a directory that python-tuf's
//! ngclient reads over loopback HTTP.

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use tufd_tests::daemon::TestEnv;
use tufd_tests::python::ngclient;
use tufd_tests::tuf1::{sha256, status, version};

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

#[test]
fn python_tuf_reads_every_version_tufd_publishes() {
    let env = TestEnv::new();
    let _d = env.start();
    let repo = env.path().join("repo");
    let r = repo.to_str().unwrap();

    // Root with three keys on the token, two of which must sign.
    let init = env
        .tufctl(&[
            "-o",
            "json",
            "tuf",
            "init",
            r,
            "--root-key-count",
            "3",
            "--root-threshold",
            "2",
        ])
        .json();
    assert_eq!(init["summary"], "created");
    let root = &init["roles"][0];
    assert_eq!(root["role"], "root");
    assert_eq!(root["threshold"], 2);
    assert_eq!(root["key_ids"].as_array().unwrap().len(), 3);

    // Version 1: no targets yet; python-tuf trusts it.
    let client = env.path().join("client");
    let rep = read_ok(&repo, &client, json!({"absent": ["a.txt"]}));
    assert_eq!(rep["timestamp"], 1);

    // Files hashed and published by the daemon; one under a path name; one
    // by hash and length with custom metadata.
    let a = env.path().join("a.txt");
    std::fs::write(&a, b"alpha\n").unwrap();
    let b = env.path().join("b.bin");
    std::fs::write(&b, (0..=255u8).cycle().take(70_000).collect::<Vec<_>>()).unwrap();
    env.tufctl(&["tuf", "add", r, a.to_str().unwrap()]).ok();
    env.tufctl(&[
        "tuf",
        "add",
        r,
        b.to_str().unwrap(),
        "--name",
        "dir/sub/b.bin",
    ])
    .ok();
    let elsewhere = sha256(b"served elsewhere");
    let added = env
        .tufctl(&[
            "-o",
            "json",
            "tuf",
            "add",
            r,
            "--name",
            "ext/ü.tgz",
            "--hash",
            &elsewhere,
            "--length",
            "16",
            "--custom",
            r#"{"build":{"id":7,"note":"línea\nnueva"}}"#,
        ])
        .json();
    assert_eq!(added["target_count"], 3);
    assert!(
        repo.join(format!("targets/{}.a.txt", sha256(b"alpha\n")))
            .exists()
    );
    let b_sha = sha256(&std::fs::read(&b).unwrap());
    assert!(
        repo.join(format!("targets/dir/sub/{b_sha}.b.bin")).exists(),
        "consistent target path"
    );

    let rep = read_ok(
        &repo,
        &client,
        json!({"present": {
            "a.txt": sha256(b"alpha\n"),
            "dir/sub/b.bin": b_sha,
            "ext/ü.tgz": null,
        }}),
    );
    assert_eq!(rep["targets"], 4, "one targets version per change");
    assert_eq!(rep["timestamp"], 4);
    assert_eq!(
        rep["custom"]["ext/ü.tgz"],
        json!({"build": {"id": 7, "note": "línea\nnueva"}})
    );

    // A removal and an addition: the same client (trusted metadata
    // carried over) sees both.
    env.tufctl(&["tuf", "remove", r, "a.txt"]).ok();
    let c = env.path().join("c.txt");
    std::fs::write(&c, b"gamma").unwrap();
    env.tufctl(&["tuf", "add", r, c.to_str().unwrap()]).ok();
    let rep = read_ok(
        &repo,
        &client,
        json!({"present": {"c.txt": sha256(b"gamma"), "dir/sub/b.bin": b_sha},
               "absent": ["a.txt"]}),
    );
    assert_eq!(rep["targets"], 6);
    // A fresh client from 1.root.json reads the same.
    read_ok(
        &repo,
        &env.path().join("client2"),
        json!({"present": {"c.txt": sha256(b"gamma")}, "absent": ["a.txt"]}),
    );

    // Every version stays published (consistent snapshots); timestamp.json
    // is the only unversioned file.
    for v in 1..=6 {
        assert!(repo.join(format!("metadata/{v}.targets.json")).exists());
        assert!(repo.join(format!("metadata/{v}.snapshot.json")).exists());
    }
    assert!(repo.join("metadata/timestamp.json").exists());
    assert!(!repo.join("metadata/targets.json").exists());

    let s = status(&env, &repo);
    assert_eq!(version(&s, "targets"), 6);
    assert_eq!(s["target_count"], 3);
    assert_eq!(s["last_refresh"], Value::Null, "no timer refresh yet");
}

#[test]
fn requests_that_cannot_be_carried_out_are_refused() {
    let env = TestEnv::new();
    let _d = env.start();
    let repo = env.path().join("repo");
    let r = repo.to_str().unwrap();
    env.tufctl(&["tuf", "init", r]).ok();
    env.tufctl(&["tuf", "init", r])
        .fails_with(1, "already holds a TUF repository");
    env.tufctl(&["tuf", "status", env.path().join("nope").to_str().unwrap()])
        .fails_with(1, "does not manage a repository");
    env.tufctl(&["tuf", "remove", r, "missing"])
        .fails_with(1, "no target \"missing\"");
    let hash = sha256(b"x");
    env.tufctl(&[
        "tuf",
        "add",
        r,
        "--name",
        "../escape",
        "--hash",
        &hash,
        "--length",
        "1",
    ])
    .fails_with(1, "target name");
    env.tufctl(&[
        "tuf", "add", r, "--name", "x", "--hash", &hash, "--length", "1", "--custom", "[1]",
    ])
    .fails_with(1, "must be a JSON object");
    env.tufctl(&[
        "tuf",
        "init",
        env.path().join("r2").to_str().unwrap(),
        "--root-threshold",
        "2",
    ])
    .fails_with(1, "root threshold 2");
    env.tufctl(&["tuf", "add", r])
        .fails_with(2, "give files to add");
    // Nothing was published by the refused requests.
    let s = status(&env, &repo);
    assert_eq!(version(&s, "targets"), 1);
    assert_eq!(version(&s, "timestamp"), 1);
}

#[test]
fn daemon_resigns_online_roles_before_they_expire() {
    let env = TestEnv::new();
    let _d = env.start();
    let repo = env.path().join("repo");
    let r = repo.to_str().unwrap();
    let started = Instant::now();
    env.tufctl(&[
        "tuf",
        "init",
        r,
        "--expires",
        "timestamp=6s",
        "--expires",
        "snapshot=8s",
    ])
    .ok();
    let client = env.path().join("client");
    read_ok(&repo, &client, json!({}));

    // With nobody calling, the daemon's timer re-signs timestamp (due at
    // half its period) and snapshot.
    let deadline = Instant::now() + Duration::from_secs(20);
    let s = loop {
        let s = status(&env, &repo);
        if version(&s, "snapshot") >= 2 && version(&s, "timestamp") >= 3 {
            break s;
        }
        assert!(Instant::now() < deadline, "no refresh in time: {s:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(s["last_refresh"]["at"].is_string(), "{s:#}");
    let detail = s["last_refresh"]["detail"].as_str().unwrap();
    assert!(detail.starts_with("timestamp v"), "{detail}");
    assert!(s["next_refresh"].is_string());
    assert_eq!(s["last_error"], Value::Null);
    let text = env.tufctl(&["tuf", "status", r]);
    assert!(
        text.ok()
            .contains("online roles last re-signed by the daemon: 20"),
        "{}",
        text.stdout
    );

    // Past version 1's expiry, a client still updates: what it reads was
    // re-signed by the timer.
    let wait = Duration::from_secs(7).saturating_sub(started.elapsed());
    std::thread::sleep(wait);
    let rep = read_ok(&repo, &client, json!({}));
    assert!(rep["timestamp"].as_u64().unwrap() >= 3, "{rep}");
    assert!(rep["snapshot"].as_u64().unwrap() >= 2, "{rep}");
}

/// A publish is held (test hook) after its new files are written and
/// before `timestamp.json` switches: clients still read the old version;
/// a crash there leaves the old version published, and the next change
/// publishes over the orphaned files.
#[test]
fn a_crash_before_the_timestamp_switch_leaves_the_old_version() {
    let mut env = TestEnv::new();
    let d = env.start();
    let repo = env.path().join("repo");
    let r = repo.to_str().unwrap().to_owned();
    env.tufctl(&["tuf", "init", &r]).ok();
    let a = env.path().join("a.txt");
    std::fs::write(&a, b"alpha").unwrap();
    env.tufctl(&["tuf", "add", &r, a.to_str().unwrap()]).ok();
    let client = env.path().join("client");
    read_ok(
        &repo,
        &client,
        json!({"present": {"a.txt": sha256(b"alpha")}}),
    );
    assert!(d.stop().success());

    let hold = env.path().join("hold");
    std::fs::write(&hold, b"").unwrap();
    env.daemon_env
        .push(("TUFD_TEST_TUF1_HOLD".into(), hold.display().to_string()));
    let d = env.start();
    let b = env.path().join("b.txt");
    std::fs::write(&b, b"beta").unwrap();
    let adding = {
        let socket = env.socket();
        let b = b.clone();
        let r = r.clone();
        std::thread::spawn(move || {
            std::process::Command::new(tufd_tests::daemon::binary("tufctl"))
                .env("TUFD_SOCKET", socket)
                .args(["tuf", "add", &r, b.to_str().unwrap()])
                .output()
                .unwrap()
        })
    };
    let reached = env.path().join("hold.reached");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reached.exists() {
        assert!(
            Instant::now() < deadline,
            "the publish never reached the hold"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // New files are there, the switch is not: clients see version 2.
    assert!(repo.join("metadata/3.targets.json").exists());
    assert!(repo.join("metadata/3.snapshot.json").exists());
    assert!(
        repo.join(format!("targets/{}.b.txt", sha256(b"beta")))
            .exists()
    );
    let rep = read_ok(
        &repo,
        &client,
        json!({"present": {"a.txt": sha256(b"alpha")}, "absent": ["b.txt"]}),
    );
    assert_eq!(rep["targets"], 2);

    d.crash();
    let out = adding.join().unwrap();
    assert!(!out.status.success(), "the add died with the daemon");

    // Restarted without the hold: the old version is what is published,
    // and the next change publishes over the orphaned version-3 files.
    std::fs::remove_file(&hold).unwrap();
    env.daemon_env.retain(|(k, _)| k != "TUFD_TEST_TUF1_HOLD");
    let _d = env.start();
    assert_eq!(version(&status(&env, &repo), "targets"), 2);
    read_ok(&repo, &client, json!({"absent": ["b.txt"]}));
    env.tufctl(&["tuf", "add", &r, b.to_str().unwrap()]).ok();
    let rep = read_ok(
        &repo,
        &client,
        json!({"present": {"a.txt": sha256(b"alpha"), "b.txt": sha256(b"beta")}}),
    );
    assert_eq!(rep["targets"], 3);
}

#[test]
fn python_tuf_follows_delegations_and_key_rotation_of_every_role() {
    let env = TestEnv::new();
    let _d = env.start();
    let repo = env.path().join("repo");
    let r = repo.to_str().unwrap();
    env.tufctl(&[
        "tuf",
        "init",
        r,
        "--root-key-count",
        "3",
        "--root-threshold",
        "2",
    ])
    .ok();
    env.tufctl(&[
        "tuf",
        "delegate",
        r,
        "team",
        "--path",
        "team/*",
        "--terminating",
        "--expires",
        "2d",
    ])
    .ok();
    let x = env.path().join("x.txt");
    std::fs::write(&x, b"team file").unwrap();
    let top = env.path().join("top.txt");
    std::fs::write(&top, b"top file").unwrap();
    env.tufctl(&[
        "tuf",
        "add",
        r,
        x.to_str().unwrap(),
        "--name",
        "team/x.txt",
        "--role",
        "team",
    ])
    .ok();
    env.tufctl(&["tuf", "add", r, top.to_str().unwrap()]).ok();
    env.tufctl(&[
        "tuf",
        "add",
        r,
        x.to_str().unwrap(),
        "--name",
        "other/x.txt",
        "--role",
        "team",
    ])
    .fails_with(1, "outside the paths delegated to team");
    env.tufctl(&[
        "tuf",
        "add",
        r,
        x.to_str().unwrap(),
        "--name",
        "team/x.txt",
        "--role",
        "nobody",
    ])
    .fails_with(1, "delegates no role \"nobody\"");
    assert!(repo.join("metadata/2.team.json").exists());

    // The delegation's own expiry (two days, not the targets period), in
    // the status beside the top-level roles.
    let s = status(&env, &repo);
    let team = s["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "team")
        .unwrap_or_else(|| panic!("no team in {s}"));
    assert_eq!(team["version"], 2);
    let expires = time::OffsetDateTime::parse(
        team["expires"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = (expires - time::OffsetDateTime::now_utc()).whole_hours();
    assert!((47..=48).contains(&left), "team expires in {left} h");

    let client = env.path().join("client");
    let files =
        json!({"present": {"team/x.txt": sha256(b"team file"), "top.txt": sha256(b"top file")}});
    let rep = read_ok(&repo, &client, files.clone());
    assert_eq!(rep["root"], 1);

    // Each role's keys replaced in turn; the same client follows every
    // root version and the re-signed roles.
    for (i, role) in ["timestamp", "snapshot", "targets"].iter().enumerate() {
        let s = env.tufctl(&["-o", "json", "tuf", "rotate", r, role]).json();
        assert_eq!(version(&s, "root"), i as u64 + 2);
        let rep = read_ok(&repo, &client, files.clone());
        assert_eq!(rep["root"], i as u64 + 2, "after rotating {role}");
    }
    // The delegated role's key: targets lists the new key, the role is
    // re-signed with it, and the client follows.
    let team_key = |repo: &Path| -> Value {
        let v = version(&status(&env, repo), "targets");
        let t: Value = serde_json::from_slice(
            &std::fs::read(repo.join(format!("metadata/{v}.targets.json"))).unwrap(),
        )
        .unwrap();
        t["signed"]["delegations"]["roles"][0]["keyids"].clone()
    };
    let old_team = team_key(&repo);
    env.tufctl(&["tuf", "rotate", r, "team"]).ok();
    let new_team = team_key(&repo);
    assert_ne!(old_team, new_team);
    let team3: Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/3.team.json")).unwrap()).unwrap();
    assert_eq!(team3["signatures"][0]["keyid"], new_team[0]);
    let rep = read_ok(&repo, &client, files.clone());
    assert_eq!(rep["root"], 4, "a delegated rotation leaves root alone");
    env.tufctl(&["tuf", "rotate", r, "nobody"])
        .fails_with(1, "delegates no role \"nobody\"");

    // Root: three keys (2 of 3) replaced by two new keys (2 of 2); version
    // 5 carries signatures of old and new keys.
    let before: Vec<Value> = status(&env, &repo)["roles"][0]["key_ids"]
        .as_array()
        .unwrap()
        .clone();
    let s = env
        .tufctl(&[
            "-o",
            "json",
            "tuf",
            "rotate",
            r,
            "root",
            "--key-count",
            "2",
            "--threshold",
            "2",
        ])
        .json();
    assert_eq!(version(&s, "root"), 5);
    let after = s["roles"][0]["key_ids"].as_array().unwrap().clone();
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|k| !before.contains(k)));
    let root5: Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/5.root.json")).unwrap()).unwrap();
    let signers: Vec<&str> = root5["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["keyid"].as_str().unwrap())
        .collect();
    assert_eq!(signers.len(), 5, "3 old + 2 new root keys: {signers:?}");
    let rep = read_ok(&repo, &client, files);
    assert_eq!(rep["root"], 5);
    // A new client walks 1 → 5 from the first root.
    read_ok(
        &repo,
        &env.path().join("client2"),
        json!({"present": {"team/x.txt": sha256(b"team file")}}),
    );

    env.tufctl(&["tuf", "remove", r, "team/x.txt"]).ok();
    read_ok(
        &repo,
        &client,
        json!({"absent": ["team/x.txt"], "present": {"top.txt": null}}),
    );
}

#[test]
fn python_tuf_reads_targets_in_hash_bins() {
    let env = TestEnv::new();
    let _d = env.start();
    let repo = env.path().join("repo");
    let r = repo.to_str().unwrap();
    env.tufctl(&["tuf", "init", r, "--hash-bins", "16"]).ok();
    for n in 0..16 {
        assert!(repo.join(format!("metadata/1.bins-{n:x}.json")).exists());
    }
    env.tufctl(&[
        "tuf",
        "init",
        env.path().join("r2").to_str().unwrap(),
        "--hash-bins",
        "12",
    ])
    .fails_with(1, "power of two");
    let mut present = serde_json::Map::new();
    for name in ["a.txt", "b.txt", "c/d.txt"] {
        let f = env.path().join(name.replace('/', "_"));
        std::fs::write(&f, name.as_bytes()).unwrap();
        env.tufctl(&["tuf", "add", r, f.to_str().unwrap(), "--name", name])
            .ok();
        present.insert(name.into(), json!(sha256(name.as_bytes())));
    }
    let top: Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/1.targets.json")).unwrap())
            .unwrap();
    assert_eq!(top["signed"]["targets"], json!({}), "targets live in bins");
    assert_eq!(
        top["signed"]["delegations"]["succinct_roles"]["bit_length"],
        4
    );
    let s = status(&env, &repo);
    assert_eq!(
        version(&s, "targets"),
        1,
        "adding to a bin leaves targets alone"
    );
    assert!(
        version(&s, "bins-*") >= 2,
        "the newest bin version, in the status: {s}"
    );
    let client = env.path().join("client");
    read_ok(&repo, &client, json!({"present": present}));

    // tufd's own client reads it too (bins found by the path's hash).
    let md = env.path().join("tufctl-client");
    let dl = env.path().join("dl");
    tufd_tests::tufctl_client::download(&env, &repo, &md, &dl, &["c/d.txt", "a.txt"]).ok();
    assert_eq!(std::fs::read(dl.join("c%2Fd.txt")).unwrap(), b"c/d.txt");
    let bin = std::fs::read_dir(&md)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("bins-"))
        .count();
    assert!(bin >= 1, "bins cached under non-versioned names");

    // The bins' key rotated: targets lists it, every bin is re-signed.
    env.tufctl(&["tuf", "rotate", r, "bins"]).ok();
    let top: Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/2.targets.json")).unwrap())
            .unwrap();
    let bins_key = &top["signed"]["delegations"]["succinct_roles"]["keyids"][0];
    assert_eq!(
        top["signed"]["delegations"]["keys"]
            .as_object()
            .unwrap()
            .len(),
        1,
        "the old bins key is gone"
    );
    for n in 0..16 {
        let bin = format!("bins-{n:x}");
        let v = s_version(&repo, &bin);
        let md: Value = serde_json::from_slice(
            &std::fs::read(repo.join(format!("metadata/{v}.{bin}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(&md["signatures"][0]["keyid"], bins_key, "{bin}");
    }
    read_ok(&repo, &client, json!({"present": present}));

    env.tufctl(&["tuf", "remove", r, "b.txt"]).ok();
    read_ok(
        &repo,
        &client,
        json!({"absent": ["b.txt"], "present": {"a.txt": null}}),
    );
}

/// The version of `role` the published snapshot lists.
fn s_version(repo: &Path, role: &str) -> u64 {
    let ts: Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/timestamp.json")).unwrap())
            .unwrap();
    let v = ts["signed"]["meta"]["snapshot.json"]["version"]
        .as_u64()
        .unwrap();
    let snap: Value = serde_json::from_slice(
        &std::fs::read(repo.join(format!("metadata/{v}.snapshot.json"))).unwrap(),
    )
    .unwrap();
    snap["signed"]["meta"][format!("{role}.json")]["version"]
        .as_u64()
        .unwrap()
}

/// Root signed offline, k of n: three key holders, each with their own
/// tufd and SoftHSM2 token; the staged change file travels between them.
#[test]
fn staged_root_change_collects_two_of_three_holders() {
    let repo_env = TestEnv::new();
    let _a = repo_env.start();
    let repo = repo_env.path().join("repo");
    let r = repo.to_str().unwrap();
    repo_env.tufctl(&["tuf", "init", r]).ok();

    let holders: Vec<TestEnv> = (0..3).map(|_| TestEnv::new()).collect();
    let mut daemons: Vec<_> = holders.iter().map(TestEnv::start).collect();
    let mut pubs = Vec::new();
    for (i, h) in holders.iter().enumerate() {
        h.tufctl(&["key", "generate", "holder"]).ok();
        let dest = repo_env.path().join(format!("holder{i}.pub"));
        std::fs::copy(h.path().join("holder.pub"), &dest).unwrap();
        pubs.push(dest);
    }
    // Stage root v2 = the three holders, 2 of 3; the repository's tufd
    // signs with the current root key it holds.
    let staged = repo_env.path().join("staged.json");
    let mut stage = vec![
        "-o",
        "json",
        "tuf",
        "stage",
        r,
        "-f",
        staged.to_str().unwrap(),
    ];
    for p in &pubs {
        stage.extend(["--root-key-file", p.to_str().unwrap()]);
    }
    stage.extend(["--root-threshold", "2"]);
    let s = repo_env.tufctl(&stage).json();
    assert_eq!(s["thresholds"][0]["met"], true, "{s:#}");
    assert_eq!(s["thresholds"][1]["valid"], 0);
    assert_eq!(s["ready"], false);
    repo_env
        .tufctl(&["tuf", "publish", r, staged.to_str().unwrap()])
        .fails_with(1, "new root: 0 of 2 signatures");

    // The file travels: holder 0 signs.
    let carry = |from: &Path, to: &TestEnv| {
        let dest = to.path().join("staged.json");
        std::fs::copy(from, &dest).unwrap();
        dest
    };
    let f0 = carry(&staged, &holders[0]);
    let s = holders[0]
        .tufctl(&["-o", "json", "tuf", "sign", f0.to_str().unwrap()])
        .json();
    assert_eq!(s["thresholds"][1]["valid"], 1, "{s:#}");
    assert_eq!(s["signed_key_ids"].as_array().unwrap().len(), 1);
    let text = holders[0].tufctl(&["tuf", "sign", f0.to_str().unwrap()]);
    assert!(!text.status.success(), "nothing more to sign: {text:?}");

    // Holder 2's token is missing: its tufd cannot sign, the change waits
    // and says so; the file is unchanged.
    drop(daemons.pop());
    let absent = holders[2].config_with(&tufd_tests::daemon::token_toml(
        "dev",
        tufd_tests::softhsm::MODULE,
        "no-such-token",
        "env:TUFD_PIN",
    ));
    let _h2 = holders[2].start_with(&absent);
    let f2 = carry(&f0, &holders[2]);
    let before = std::fs::read(&f2).unwrap();
    let out = holders[2].tufctl(&["tuf", "sign", f2.to_str().unwrap()]);
    out.fails_with(1, "tokens that could not be read: dev");
    assert!(
        out.stderr.contains("new root: 1 of 2 signatures"),
        "{out:?}"
    );
    assert_eq!(std::fs::read(&f2).unwrap(), before);

    // A change to the signed content voids the signatures made over it.
    let mut tampered: Value = serde_json::from_slice(&before).unwrap();
    tampered["metadata"]["signed"]["expires"] = json!("2099-01-01T00:00:00Z");
    let t1 = holders[1].path().join("tampered.json");
    std::fs::write(&t1, serde_json::to_vec(&tampered).unwrap()).unwrap();
    let s = holders[1]
        .tufctl(&["-o", "json", "tuf", "sign", t1.to_str().unwrap()])
        .json();
    assert_eq!(s["thresholds"][1]["valid"], 1, "only holder 1's: {s:#}");
    assert_eq!(s["thresholds"][0]["met"], false);

    // Holder 1 signs the real one: both thresholds met; published.
    let f1 = carry(&f0, &holders[1]);
    let s = holders[1]
        .tufctl(&["-o", "json", "tuf", "sign", f1.to_str().unwrap()])
        .json();
    assert_eq!(s["ready"], true, "{s:#}");
    std::fs::copy(&f1, &staged).unwrap();
    let st = repo_env
        .tufctl(&["-o", "json", "tuf", "publish", r, staged.to_str().unwrap()])
        .json();
    assert_eq!(version(&st, "root"), 2);
    assert_eq!(st["roles"][0]["threshold"], 2);
    let client = repo_env.path().join("client");
    let rep = read_ok(&repo, &client, json!({}));
    assert_eq!(rep["root"], 2);
    repo_env
        .tufctl(&["tuf", "publish", r, staged.to_str().unwrap()])
        .fails_with(1, "stage it again");

    // Root v3 (same keys, renewed): the repository's tufd holds no root
    // key now; two holders sign for the old and the new threshold at once.
    let s = repo_env
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
    assert_eq!(s["thresholds"][0]["valid"], 0, "{s:#}");
    for h in [&holders[0], &holders[1]] {
        let f = carry(&staged, h);
        h.tufctl(&["tuf", "sign", f.to_str().unwrap()]).ok();
        std::fs::copy(&f, &staged).unwrap();
    }
    let st = repo_env
        .tufctl(&["-o", "json", "tuf", "publish", r, staged.to_str().unwrap()])
        .json();
    assert_eq!(version(&st, "root"), 3);
    let rep = read_ok(&repo, &client, json!({}));
    assert_eq!(rep["root"], 3);
    drop(daemons);
}

/// A refresh the token cannot make (its PIN cache ran out) shows in
/// `tuf status` with the reason, and is retried until it succeeds.
#[test]
fn a_failed_timer_refresh_is_reported_and_retried() {
    let env = TestEnv::new();
    let config = env.config_with(&format!(
        "{}pin_cache_seconds = 2\n",
        tufd_tests::daemon::token_toml(
            "dev",
            tufd_tests::softhsm::MODULE,
            tufd_tests::daemon::TOKEN_LABEL,
            "prompt"
        )
    ));
    let d = env.start_with(&config);
    let unlock = || {
        env.tufctl_env(
            &["token", "unlock", "dev"],
            &[("TUFCTL_PIN", tufd_tests::softhsm::PIN)],
        )
        .ok();
    };
    unlock();
    let repo = env.path().join("repo");
    let r = repo.to_str().unwrap();
    env.tufctl(&["tuf", "init", r, "--expires", "timestamp=6s"])
        .ok();

    // The PIN is forgotten after 2 s; the refresh due at 3 s fails.
    let deadline = Instant::now() + Duration::from_secs(20);
    let s = loop {
        let s = status(&env, &repo);
        if s["last_error"].is_string() {
            break s;
        }
        assert!(Instant::now() < deadline, "no failure reported: {s:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        s["last_error"]
            .as_str()
            .unwrap()
            .contains("tufctl token unlock dev"),
        "{s:#}"
    );
    assert_eq!(version(&s, "timestamp"), 1);
    let text = env.tufctl(&["tuf", "status", r]);
    assert!(
        text.ok().contains("last refresh failed:"),
        "{}",
        text.stdout
    );

    // The timer keeps trying (every few seconds, logged).
    let deadline = Instant::now() + Duration::from_secs(20);
    while d
        .log()
        .matches("refreshing the online roles failed")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "not retried:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(200));
    }

    // Unlocked again: a refresh succeeds and clears the error.
    unlock();
    let s = env.tufctl(&["-o", "json", "tuf", "refresh", r]).json();
    assert!(version(&s, "timestamp") >= 2, "{s:#}");
    assert_eq!(s["last_error"], Value::Null, "{s:#}");
}
