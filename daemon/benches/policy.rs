//! Issue 11, "Measured, not assumed", in process and per call: the caller
//! lookup (`SO_PEERCRED` completed from /proc and the user database), the
//! policy decision over 20 rules, and one audit append (write + fdatasync
//! of the line, in-place write of the head) in a temporary directory
//! (`TMPDIR`: put it on the filesystem the state directory uses).
//!
//! ```text
//! cargo bench -p tufd --bench policy
//! ```
//!
//! End to end (requests through the daemon, and a 1000-tag sign with the
//! audit log on and off): `cargo bench -p tufd-tests --bench audit`.

use std::time::{Duration, Instant};
use tufd::audit::{AuditConfig, AuditLog, CallerRecord, Entry, Phase, TagRecord};
use tufd::policy::{Action, Caller, Operation, RawPolicy};

fn per_call(n: usize, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed() / n as u32
}

fn main() {
    let n = 10_000;
    let me = std::process::id() as i32;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // The user database answer is kept (a minute): per request, /proc and
    // the cache.
    let lookup = per_call(n / 10, || {
        std::hint::black_box(
            rt.block_on(Caller::from_peer(0, 0, Some(me), Some(&[])))
                .expect("the groups are given"),
        );
    });
    let mut rules = String::new();
    for i in 0..20 {
        rules.push_str(&format!(
            "[[rule]]\nusers = [\"{}\"]\nrepositories = [\"registry.example.com/team{i}/*\"]\nroles = [\"targets/releases\", \"targets/ci\"]\noperations = [\"sign\", \"revoke\", \"read\"]\n",
            60_000 + i
        ));
    }
    let raw: RawPolicy = toml::from_str(&format!("admin_group = \"0\"\n{rules}")).unwrap();
    let policy = raw.into_policy().unwrap();
    let caller = Caller {
        uid: 60_019,
        gid: 60_019,
        groups: vec![],
        pid: None,
        exe: None,
        comm: None,
        user_name: None,
    };
    let action = Action::on(Operation::Sign, "registry.example.com/team19/app")
        .roles(["targets/releases".to_owned()]);
    let check = per_call(n, || {
        std::hint::black_box(policy.check(&caller, &action));
    });
    let dir = tempfile::Builder::new()
        .prefix("tufd-audit-bench-")
        .tempdir()
        .unwrap();
    let log = AuditLog::open(AuditConfig {
        path: dir.path().join("audit.log"),
        rotate_bytes: 0,
    })
    .unwrap();
    let entry = Entry {
        phase: Phase::End,
        caller: CallerRecord {
            uid: Some(1000),
            gid: Some(1000),
            pid: Some(4242),
            exe: Some("/usr/bin/tufctl".into()),
            comm: Some("tufctl".into()),
            user: Some("ci".into()),
            address: None,
        },
        operation: "sign".into(),
        repositories: vec!["registry.example.com/team/app".into()],
        roles: vec![],
        key_ids: vec![],
        tags: vec![TagRecord {
            repository: "registry.example.com/team/app".into(),
            tag: "v1".into(),
            digest: format!("sha256:{}", "ab".repeat(32)),
        }],
        published: vec![],
        detail: String::new(),
        result: "ok".into(),
    };
    let append = per_call(500, || {
        log.append(&entry).unwrap();
    });
    let mut big = entry.clone();
    big.tags = (0..1000)
        .map(|i| TagRecord {
            repository: "registry.example.com/team/app".into(),
            tag: format!("t{i}"),
            digest: format!("sha256:{}", "ab".repeat(32)),
        })
        .collect();
    let append_big = per_call(50, || {
        log.append(&big).unwrap();
    });
    println!("(a) in process, per call:");
    println!(
        "    caller lookup (/proc + kept user db answer) {:>4.1} µs",
        lookup.as_secs_f64() * 1e6
    );
    println!(
        "    policy check (20 rules)           {:>10.3} µs",
        check.as_secs_f64() * 1e6
    );
    println!(
        "    audit append (1 fdatasync)        {:>10.1} µs",
        append.as_secs_f64() * 1e6
    );
    println!(
        "    audit append, 1000-tag record     {:>10.1} µs",
        append_big.as_secs_f64() * 1e6
    );
}
