//! Issue 11, "Measured, not assumed": what the policy check and the audit
//! log cost.
//!
//! (a) In process, per call (caller lookup, policy check, audit append):
//!     `cargo bench -p tufd --bench policy`.
//! (b) End to end, per request, daemon with the audit log on and off in
//!     the same run: `tufctl key test` (audited: a begin and an end record)
//!     and `tufctl key list` (an unaudited read), each a fresh tufctl
//!     process over the socket.
//! (c) One `tufctl sign` of 1000 tags (one transaction, one publish to a
//!     real notary-server), audit on vs off, alternating.
//!
//! ```text
//! cargo bench -p tufd-tests --bench audit --profile dev   # the bench only drives processes
//! ```
//!
//! Binaries: `TUFD_BIN`/`TUFCTL_BIN` (e.g. target/release/…), else the
//! debug builds next to the bench. Knobs: `AUDIT_BENCH_REQUESTS` (200),
//! `AUDIT_BENCH_TAGS` (1000), `AUDIT_BENCH_RUNS` (3).

use std::time::{Duration, Instant};
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

use tufd_tests::bench::median;

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
        // Alternate which goes first, so an order effect cancels.
        let mut pair = [(&on, &mut t_on), (&off, &mut t_off)];
        if run % 2 == 1 {
            pair.reverse();
        }
        for (e, out) in pair {
            let refs: Vec<String> = (0..tags).map(|i| format!("{}:t{i}", gun(e))).collect();
            let mut args: Vec<&str> = vec!["sign"];
            args.extend(refs.iter().map(String::as_str));
            args.extend(["--digest", digest.as_str(), "--size", "527"]);
            let start = Instant::now();
            e.tufctl(&args).ok();
            out.push(start.elapsed());
        }
    }
    // Paired: each on run next to its off run, so load drifts cancel.
    let mut diffs: Vec<f64> = t_on
        .iter()
        .zip(&t_off)
        .map(|(a, b)| a.as_secs_f64() - b.as_secs_f64())
        .collect();
    diffs.sort_by(f64::total_cmp);
    let paired = diffs[diffs.len() / 2];
    let (min_on, min_off) = (*t_on.iter().min().unwrap(), *t_off.iter().min().unwrap());
    let (a, b) = (median(t_on), median(t_off));
    println!("(c) one sign of {tags} tags, {runs} runs each, alternating:");
    println!("               median      min");
    println!(
        "    audit on   {:>7.3} s  {:>7.3} s",
        a.as_secs_f64(),
        min_on.as_secs_f64()
    );
    println!(
        "    audit off  {:>7.3} s  {:>7.3} s",
        b.as_secs_f64(),
        min_off.as_secs_f64()
    );
    println!(
        "    on/off     {:>7.3}    {:>7.3}",
        a.as_secs_f64() / b.as_secs_f64(),
        min_on.as_secs_f64() / min_off.as_secs_f64()
    );
    println!(
        "    median of paired differences (on - off): {:+.1} ms = {:+.1} % of the median off run",
        paired * 1e3,
        paired / b.as_secs_f64() * 100.0
    );
    let lines = std::fs::read_to_string(on.path().join("state/audit.log")).unwrap();
    let last = lines.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["result"], "ok", "the last sign succeeded");
    assert_eq!(v["tags"].as_array().unwrap().len(), tags);
    println!(
        "    last audit line: {} bytes, {} tags, published {}",
        last.len(),
        tags,
        v["published"]
    );
}

fn main() {
    end_to_end();
    batch();
}
