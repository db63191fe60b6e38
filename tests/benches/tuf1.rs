//! Issue 12, "Measured, not assumed": TUF 1.0 repositories of 100 000
//! targets, tufd (keys on SoftHSM2, every operation read + verified from
//! disk, signed on the token, published atomically) against python-tuf's
//! Metadata API (software keys, `tests/py/bench_repo.py`) in the same run.
//!
//! - time to add one target, flat (all in targets.json) and with 1 024
//!   succinct hash bins (median of `TUF1_BENCH_RUNS`, default 5; tufd timed
//!   as a `tufctl tuf add --hash` round trip, process start included);
//! - the daemon's RSS (VmRSS and peak VmHWM) after each repository, next
//!   to python-tuf's peak RSS (one process building and editing both);
//! - the time of a timestamp refresh (`tufctl tuf refresh --force`).
//!
//! ```text
//! cargo bench -p tufd-tests --bench tuf1
//! ```
//!
//! Binaries: `TUFD_BIN` and `TUFCTL_BIN` when set; otherwise
//! `target/dist/{tufd,tufctl}`, built first with `scripts/build-release`.
//! `TUF1_BENCH_TARGETS` changes the repository size (100 000);
//! `TUF1_BENCH_ARENA_MAX=N` runs the daemon
//! with glibc's `MALLOC_ARENA_MAX=N` (fewer per-thread heaps holding on to
//! freed memory).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;
use tufd_tests::daemon::TestEnv;
use tufd_tests::python;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn tufctl(env: &TestEnv, args: &[&str]) -> Result<f64, String> {
    let start = Instant::now();
    let out = env.tufctl(args);
    let elapsed = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!("tufctl {args:?}: {}", out.stderr));
    }
    Ok(elapsed)
}

fn kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

struct Figures {
    build: f64,
    add: f64,
    refresh: f64,
    targets_json: u64,
}

fn tufd_repo(
    env: &TestEnv,
    dir: &Path,
    targets: usize,
    bins: usize,
    runs: usize,
) -> Result<Figures, String> {
    let d = dir.to_str().unwrap();
    let mut init = vec!["tuf", "init", d];
    let bins_arg = bins.to_string();
    if bins > 0 {
        init.extend(["--hash-bins", &bins_arg]);
    }
    tufctl(env, &init)?;
    let build = Instant::now();
    let batch = 10_000;
    for start in (0..targets).step_by(batch) {
        let map: serde_json::Map<String, serde_json::Value> = (start..(start + batch).min(targets))
            .map(|i| {
                (
                    format!("file-{i}.tgz"),
                    serde_json::json!({"length": 1000 + i, "hashes": {"sha256": format!("{i:064x}")}}),
                )
            })
            .collect();
        let f = env.path().join("batch.json");
        std::fs::write(&f, serde_json::to_vec(&map).unwrap()).map_err(|e| e.to_string())?;
        tufctl(env, &["tuf", "add", d, "--batch", f.to_str().unwrap()])?;
    }
    let build = build.elapsed().as_secs_f64();
    let mut adds = Vec::new();
    for i in 0..runs {
        let name = format!("extra-{i}.tgz");
        let hash = format!("{:064x}", targets + i);
        adds.push(tufctl(
            env,
            &[
                "tuf", "add", d, "--name", &name, "--hash", &hash, "--length", "1",
            ],
        )?);
    }
    let mut refreshes = Vec::new();
    for _ in 0..runs {
        refreshes.push(tufctl(env, &["tuf", "refresh", d, "--force"])?);
    }
    let status = env.tufctl(&["-o", "json", "tuf", "status", d]).json();
    let targets_version = status["roles"][1]["version"].as_u64().unwrap_or(0);
    let targets_json =
        std::fs::metadata(dir.join(format!("metadata/{targets_version}.targets.json")))
            .map(|m| m.len())
            .unwrap_or(0);
    Ok(Figures {
        build,
        add: median(adds),
        refresh: median(refreshes),
        targets_json,
    })
}

fn run() -> Result<(), String> {
    tufd_tests::bench::binaries()?;
    let targets = env_num("TUF1_BENCH_TARGETS", 100_000);
    let runs = env_num("TUF1_BENCH_RUNS", 5);
    let mut env = TestEnv::new();
    if let Ok(n) = std::env::var("TUF1_BENCH_ARENA_MAX") {
        env.daemon_env.push(("MALLOC_ARENA_MAX".into(), n));
    }
    let daemon = env.start();
    let rss_start = kib(daemon.pid(), "VmRSS:");
    let flat = tufd_repo(&env, &env.path().join("flat"), targets, 0, runs)?;
    let rss_flat = kib(daemon.pid(), "VmRSS:");
    let hwm_flat = kib(daemon.pid(), "VmHWM:");
    let bins = tufd_repo(&env, &env.path().join("bins"), targets, 1024, runs)?;
    let rss_both = kib(daemon.pid(), "VmRSS:");
    let hwm = kib(daemon.pid(), "VmHWM:");

    // python-tuf on the same workload, same machine, same run.
    let py_dir: PathBuf = env.path().join("python-tuf");
    let out = Command::new(python::python())
        .arg(python::script("bench_repo.py"))
        .arg(&py_dir)
        .arg(targets.to_string())
        .arg("1024")
        .arg(runs.to_string())
        .output()
        .map_err(|e| format!("python: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "bench_repo.py: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let py: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bench_repo.py output: {e}"))?;

    println!("TUF 1.0, {targets} targets, median of {runs}");
    println!("{:<40} {:>12} {:>12}", "", "tufd", "python-tuf");
    println!(
        "{:<40} {:>11.3}s {:>11.3}s",
        "add one target, flat targets.json",
        flat.add,
        py["flat"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "{:<40} {:>11.3}s {:>11.3}s",
        "add one target, 1024 hash bins",
        bins.add,
        py["bins"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "{:<40} {:>11.3}s",
        "timestamp refresh (flat repository)", flat.refresh
    );
    println!(
        "{:<40} {:>11.3}s",
        "timestamp refresh (1024 bins)", bins.refresh
    );
    println!(
        "{:<40} {:>10.1}s / {:.1}s",
        "building: flat / bins (10k per version)", flat.build, bins.build
    );
    println!(
        "{:<40} {:>9} B {:>10} B",
        "targets.json size, flat",
        flat.targets_json,
        py["flat_targets_json_bytes"].as_u64().unwrap_or(0)
    );
    println!(
        "{:<40} {:>8} KiB {:>8} KiB",
        "peak RSS after the flat repository",
        hwm_flat,
        py["flat_peak_rss_kib"].as_u64().unwrap_or(0)
    );
    println!(
        "{:<40} {:>8} KiB {:>8} KiB",
        "peak RSS after both repositories",
        hwm,
        py["bins_peak_rss_kib"].as_u64().unwrap_or(0)
    );
    println!(
        "daemon RSS: {} KiB at start, {} KiB with the flat repository, {} KiB with both",
        rss_start, rss_flat, rss_both
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}
