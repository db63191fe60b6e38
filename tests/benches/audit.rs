//! Issue 11, "Measured, not assumed": what the policy check and the audit
//! log cost.
//!
//! (a) In process, per call: the caller lookup (`SO_PEERCRED` completed
//!     from /proc and the user database), the policy decision over 20
//!     rules, and one audit append (write + fsync of the line + in-place
//!     write + fsync of the head) in a directory on the same filesystem as
//!     the tests' state.
//! (b) End to end, per request, daemon with the audit log on and off in
//!     the same run: `tufctl key test` (audited: a begin and an end record)
//!     and `tufctl key list` (an unaudited read), each a fresh tufctl
//!     process over the socket.
//! (c) One `tufctl sign` of 1000 tags (one transaction, one publish to a
//!     real notary-server), audit on vs off, alternating.
//!
//! ```text
//! cargo bench -p tufd-tests --bench audit
//! ```
//!
//! Binaries: `TUFD_BIN`/`TUFCTL_BIN` (e.g. target/release/…), else the
//! debug builds next to the bench. Knobs: `AUDIT_BENCH_REQUESTS` (200),
//! `AUDIT_BENCH_TAGS` (1000), `AUDIT_BENCH_RUNS` (3).

use std::time::{Duration, Instant};
use tufd::audit::{AuditConfig, AuditLog, CallerRecord, Entry, Phase, TagRecord};
use tufd::policy::{Action, Caller, Operation, RawPolicy};
use tufd_tests::daemon::{TestEnv, token_toml};
use tufd_tests::notary::NotaryServers;
use tufd_tests::softhsm::MODULE;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn per_call(n: usize, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed() / n as u32
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn in_process() {
    let n = 10_000;
    let me = std::process::id() as i32;
    let lookup = per_call(n / 10, || {
        std::hint::black_box(Caller::from_peer(0, 0, Some(me)));
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
            uid: 1000,
            gid: 1000,
            pid: Some(4242),
            exe: Some("/usr/bin/tufctl".into()),
            user: Some("ci".into()),
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
    println!("(a) in process, per call:");
    println!(
        "    caller lookup (/proc + user db)   {:>10.1} µs",
        lookup.as_secs_f64() * 1e6
    );
    println!(
        "    policy check (20 rules)           {:>10.3} µs",
        check.as_secs_f64() * 1e6
    );
    println!(
        "    audit append (2 fsyncs)           {:>10.1} µs",
        append.as_secs_f64() * 1e6
    );
}

fn config(env: &TestEnv, audit: bool, remote: Option<&NotaryServers>) -> String {
    let mut c = env.config_with(&token_toml(
        "dev",
        MODULE,
        tufd_tests::daemon::TOKEN_LABEL,
        "env:TUFD_PIN",
    ));
    if let Some(s) = remote {
        c.push_str(&format!(
            "[[remote]]\nprefix = \"\"\nurl = \"{}\"\nca = \"{}\"\n",
            s.url(),
            s.ca_path().display()
        ));
    }
    if !audit {
        c.push_str("[audit]\nenabled = false\n");
    }
    c
}

fn end_to_end() {
    let n = knob("AUDIT_BENCH_REQUESTS", 200);
    let on = TestEnv::new();
    let off = TestEnv::new();
    let _don = on.start_with(&config(&on, true, None));
    let _doff = off.start_with(&config(&off, false, None));
    for e in [&on, &off] {
        e.tufctl(&["key", "generate", "k"]).ok();
    }
    let time = |e: &TestEnv, args: &[&str]| {
        per_call(n, || {
            e.tufctl(args).ok();
        })
    };
    // Interleave to share the machine's noise.
    let mut rows = vec![
        (Vec::new(), "key test, audit on"),
        (Vec::new(), "key test, audit off"),
        (Vec::new(), "key list (unaudited read), audit on"),
    ];
    for _ in 0..3 {
        rows[0].0.push(time(&on, &["key", "test", "k"]));
        rows[1].0.push(time(&off, &["key", "test", "k"]));
        rows[2].0.push(time(&on, &["key", "list"]));
    }
    println!("(b) end to end, per request ({n} tufctl runs x 3, median of the 3 means):");
    for (v, what) in rows {
        println!("    {what:<38} {:>8.2} ms", median(v).as_secs_f64() * 1e3);
    }
}

fn batch() {
    let tags = knob("AUDIT_BENCH_TAGS", 1000);
    let runs = knob("AUDIT_BENCH_RUNS", 3);
    let servers = NotaryServers::start();
    let on = TestEnv::new();
    let off = TestEnv::new();
    let _don = on.start_with(&config(&on, true, Some(&servers)));
    let _doff = off.start_with(&config(&off, false, Some(&servers)));
    let gun = |e: &TestEnv| {
        if std::ptr::eq(e, &on) {
            "localhost:5000/bench/on"
        } else {
            "localhost:5000/bench/off"
        }
    };
    for e in [&on, &off] {
        e.tufctl(&["key", "generate", "ci"]).ok();
        e.tufctl(&["signer", "add", "ci", gun(e), "--key", "ci.pub"])
            .ok();
    }
    let mut t_on = Vec::new();
    let mut t_off = Vec::new();
    for run in 0..runs {
        let digest = format!("sha256:{:064x}", run + 1);
        for (e, out) in [(&on, &mut t_on), (&off, &mut t_off)] {
            let refs: Vec<String> = (0..tags).map(|i| format!("{}:t{i}", gun(e))).collect();
            let mut args: Vec<&str> = vec!["sign"];
            args.extend(refs.iter().map(String::as_str));
            args.extend(["--digest", digest.as_str(), "--size", "527"]);
            let start = Instant::now();
            e.tufctl(&args).ok();
            out.push(start.elapsed());
        }
    }
    let (a, b) = (median(t_on), median(t_off));
    println!("(c) one sign of {tags} tags, median of {runs} runs:");
    println!("    audit on   {:>8.3} s", a.as_secs_f64());
    println!("    audit off  {:>8.3} s", b.as_secs_f64());
    println!("    on/off     {:>8.3}", a.as_secs_f64() / b.as_secs_f64());
    let lines = std::fs::read_to_string(on.path().join("state/audit.log")).unwrap();
    let last = lines.lines().last().unwrap();
    println!("    last audit line: {} bytes", last.len());
}

fn main() {
    in_process();
    end_to_end();
    batch();
}
