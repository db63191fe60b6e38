//! Issue 13, repositories at scale: tufd next to notary and docker on
//! Notary v1 repositories of 1 000, 10 000 and 100 000 tags, all on one
//! local notary-server, in the same run.
//!
//! For each size the bench builds the repository with one `tufctl sign
//! --tags-from` call (timed: the big sign), then prints:
//! - adding one tag: `tufctl sign REPO:TAG` (end to end: the answer comes
//!   after the read-back) next to `notary add` + `notary publish` of one tag
//!   into the same repository (notary holds a key of `targets/releases`,
//!   added as a signer by tufd);
//! - reading every tag: `tufctl inspect` next to `notary list` and, when
//!   the docker CLI is installed, `docker trust inspect`;
//! - the daemon's peak RSS (`VmHWM`, reset before each phase through
//!   `/proc/PID/clear_refs`) and its RSS after each phase.
//!
//! Then, unless `SCALE_BENCH_KEYS=off`, the token start-up part
//! (`cargo bench -p tufd-keys --bench scale`: 1 000 and 10 000 keys next to
//! `pkcs11-tool --list-objects --login`).
//!
//! ```text
//! cargo bench -p tufd-tests --bench scale
//! SCALE_BENCH_SIZES=1000,10000 SCALE_BENCH_RUNS=3 cargo bench -p tufd-tests --bench scale
//! ```
//!
//! Knobs: `SCALE_BENCH_SIZES` (`1000,10000,100000`), `SCALE_BENCH_RUNS`
//! (5: repetitions of each timed step, medians printed),
//! `SCALE_BENCH_SKIP_NOTARY=1`, `SCALE_BENCH_KEYS=off`,
//! `SCALE_BENCH_TIMELINE=1` (the daemon's debug log of the last add of each
//! size). Binaries:
//! `TUFD_BIN` and `TUFCTL_BIN`, else a release build (as the trust bench).
//! Not run by scripts/test.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use tufd_tests::bench::{env_usize, median};
use tufd_tests::daemon::{Daemon, TestEnv, binary};
use tufd_tests::notary::{NotaryCli, NotaryServers, TestCa};

type Result<T, E = String> = std::result::Result<T, E>;

fn main() -> ExitCode {
    tufd_tests::bench::main("scale", run)
}

/// One repository size's figures.
struct Row {
    tags: usize,
    build: Duration,
    build_peak_mb: f64,
    add_one: Duration,
    add_peak_mb: f64,
    add_after_mb: f64,
    notary_add: Option<Duration>,
    inspect: Duration,
    inspect_peak_mb: f64,
    notary_list: Option<Duration>,
    docker_inspect: Option<Duration>,
    idle_after_mb: f64,
}

fn run() -> Result<()> {
    let sizes: Vec<usize> = std::env::var("SCALE_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|e| format!("SCALE_BENCH_SIZES {s:?}: {e}"))
        })
        .collect::<Result<_>>()?;
    let runs = env_usize("SCALE_BENCH_RUNS", 5).max(1);
    let with_notary = std::env::var("SCALE_BENCH_SKIP_NOTARY").is_err();
    let (tufd, tufctl) = tufd_tests::bench::binaries()?;
    println!("tufd:   {}", tufd_tests::bench::describe_binary(&tufd));
    println!("tufctl: {}", tufd_tests::bench::describe_binary(&tufctl));

    let servers = NotaryServers::start();
    println!("notary-server: {}", servers.url());
    let mut env = TestEnv::new();
    let timeline = std::env::var("SCALE_BENCH_TIMELINE").is_ok();
    if timeline {
        env.daemon_env.push((
            "TUFD_LOG".into(),
            "info,tufd=debug,tufd_remote=debug".into(),
        ));
    }
    let daemon = env.start_with(&servers.daemon_config(&env, ""));
    println!("tufd pid {} in {}", daemon.pid(), env.path().display());
    let bench = Bench {
        env: &env,
        daemon: &daemon,
    };
    bench.tufctl(&["key", "generate", "alice"])?;
    // notary's signing key: a certificate tufd adds as signer `bob`, whose
    // key `notary key import` gives the notary client for targets/releases.
    let ca = TestCa::generate(env.path(), "bob-ca").map_err(|e| format!("CA: {e}"))?;
    let bob = ca
        .issue_leaf(env.path(), "bob")
        .map_err(|e| format!("leaf: {e}"))?;
    let notary = servers.cli();
    if with_notary {
        notary_ok(
            &notary,
            &[
                "key".as_ref(),
                "import".as_ref(),
                bob.key.as_os_str(),
                "--role".as_ref(),
                "targets/releases".as_ref(),
            ],
        )?;
    }
    let payload = env.path().join("manifest.json");
    std::fs::write(&payload, b"{\"schemaVersion\":2}").map_err(|e| e.to_string())?;

    let mut rows = Vec::new();
    for &tags in &sizes {
        let gun = format!("localhost:5000/scale/r{tags}");
        println!("\n== {tags} tags: {gun}");
        bench.tufctl(&["signer", "add", "alice", &gun, "--key", "alice.pub"])?;
        let bob_cert = bob.cert.to_str().ok_or("non-UTF-8 path")?;
        bench.tufctl(&["signer", "add", "bob", &gun, "--key", bob_cert])?;

        let list: String = (0..tags)
            .map(|n| format!("{gun}:t{n}@sha256:{n:064x}:{}\n", n + 1))
            .collect();
        let file = env.path().join("tags.txt");
        std::fs::write(&file, list).map_err(|e| e.to_string())?;
        let file = file.to_str().ok_or("non-UTF-8 path")?;
        let (build, build_peak) = bench.phase(|| bench.tufctl(&["sign", "--tags-from", file]))?;
        println!(
            "built with one sign call: {} (peak RSS {build_peak:.0} MB)",
            secs(build)
        );

        let mut adds = Vec::new();
        let mut add_peak: f64 = 0.0;
        let log = env.path().join("tufd.log");
        let mut log_start = 0;
        for r in 0..runs {
            log_start = std::fs::metadata(&log).map_or(0, |m| m.len());
            let reference = format!("{gun}:extra{r}");
            let digest = format!("sha256:{:064x}", 0xE000 + r);
            let (t, peak) = bench.phase(|| {
                bench.tufctl(&["sign", &reference, "--digest", &digest, "--size", "9"])
            })?;
            adds.push(t);
            add_peak = add_peak.max(peak);
        }
        let add_after = bench.rss_mb("VmRSS");
        if timeline {
            let text = std::fs::read(&log).unwrap_or_default();
            println!("daemon log of the last add:");
            print!("{}", String::from_utf8_lossy(&text[log_start as usize..]));
        }

        let mut inspects = Vec::new();
        let mut inspect_peak: f64 = 0.0;
        for _ in 0..runs {
            let (t, peak) = bench.phase(|| {
                let out = bench.tufctl(&["-o", "json", "inspect", &gun])?;
                let expected = tags + runs;
                let seen = out.matches("\"SignedTag\"").count();
                if seen != expected {
                    return Err(format!("tufctl inspect listed {seen} tags, not {expected}"));
                }
                Ok(out)
            })?;
            inspects.push(t);
            inspect_peak = inspect_peak.max(peak);
        }

        let (notary_list, notary_add, docker_inspect) = if with_notary {
            let list = timed(runs, || {
                let out = notary_ok(&notary, &["list".as_ref(), gun.as_ref()])?;
                let rows = out.lines().filter(|l| l.contains(" targets/")).count();
                if rows < tags {
                    return Err(format!("notary list showed {rows} tags, not {tags}+"));
                }
                Ok(())
            })?;
            let mut n = 0;
            let add = timed(runs, || {
                n += 1;
                let tag = format!("notary{n}");
                notary_ok(
                    &notary,
                    &[
                        "add".as_ref(),
                        gun.as_ref(),
                        tag.as_ref(),
                        payload.as_os_str(),
                        "--roles".as_ref(),
                        "targets/releases".as_ref(),
                    ],
                )?;
                notary_ok(&notary, &["publish".as_ref(), gun.as_ref()]).map(drop)
            })?;
            let docker = docker_inspect(&servers, env.path(), &gun, runs)?;
            (Some(list), Some(add), docker)
        } else {
            (None, None, None)
        };
        std::thread::sleep(Duration::from_secs(1));
        rows.push(Row {
            tags,
            build,
            build_peak_mb: build_peak,
            add_one: median(adds),
            add_peak_mb: add_peak,
            add_after_mb: add_after,
            notary_add,
            inspect: median(inspects),
            inspect_peak_mb: inspect_peak,
            notary_list,
            docker_inspect,
            idle_after_mb: bench.rss_mb("VmRSS"),
        });
    }
    report(&rows, runs);

    if std::env::var("SCALE_BENCH_KEYS").as_deref() != Ok("off") {
        println!("\n== token start-up: cargo bench -p tufd-keys --bench scale");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let status = Command::new(cargo)
            .args([
                "bench",
                "-p",
                "tufd-keys",
                "--bench",
                "scale",
                "--manifest-path",
            ])
            .arg(manifest)
            .status()
            .map_err(|e| format!("running cargo bench: {e}"))?;
        if !status.success() {
            return Err(format!("the tufd-keys scale bench failed ({status})"));
        }
    }
    Ok(())
}

struct Bench<'a> {
    env: &'a TestEnv,
    daemon: &'a Daemon,
}

impl Bench<'_> {
    fn tufctl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(binary("tufctl"))
            .env("TUFD_SOCKET", self.env.socket())
            .current_dir(self.env.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running tufctl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "tufctl {} failed ({}): {}",
                args.first().unwrap_or(&""),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8(out.stdout).map_err(|e| e.to_string())
    }

    /// A `/proc/PID/status` field of the daemon in MB.
    fn rss_mb(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.daemon.pid()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// Times `f` with the daemon's peak RSS reset before (clear_refs 5) and
    /// read after.
    fn phase<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<(Duration, f64)> {
        let clear = format!("/proc/{}/clear_refs", self.daemon.pid());
        std::fs::write(&clear, "5").map_err(|e| format!("{clear}: {e}"))?;
        let start = Instant::now();
        f()?;
        Ok((start.elapsed(), self.rss_mb("VmHWM")))
    }
}

/// The median of `runs` timed calls of `f`.
fn timed(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed());
    }
    Ok(median(times))
}

fn notary_ok(cli: &NotaryCli, args: &[&std::ffi::OsStr]) -> Result<String> {
    let out = cli.run(args);
    if !out.success() {
        return Err(format!("notary {args:?} failed: {out}"));
    }
    Ok(out.stdout)
}

/// `docker trust inspect GUN`, timed, when the docker CLI is installed.
fn docker_inspect(
    servers: &NotaryServers,
    dir: &Path,
    gun: &str,
    runs: usize,
) -> Result<Option<Duration>> {
    let config: PathBuf = dir.join("docker");
    if Command::new("docker").arg("--version").output().is_err() {
        return Ok(None);
    }
    timed(runs, || {
        let out = servers
            .docker(&config)
            .map_err(|e| e.to_string())?
            .args(["trust", "inspect", gun])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("docker: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "docker trust inspect failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    })
    .map(Some)
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn opt(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), secs)
}

fn report(rows: &[Row], runs: usize) {
    println!("\n== results (medians of {runs}; RSS of the daemon in MB)");
    println!(
        "{:>7} | {:>9} {:>6} | {:>9} {:>9} {:>6} | {:>9} {:>9} {:>9} {:>6} | {:>6} {:>6} | {:>9}",
        "tags",
        "big sign",
        "peak",
        "add one",
        "notary",
        "ratio",
        "inspect",
        "notary ls",
        "docker",
        "peak",
        "peak+1",
        "after",
        "vs 1k add"
    );
    let base = rows.iter().find(|r| r.tags == 1000).map(|r| r.add_one);
    for r in rows {
        let ratio = r.notary_add.map_or_else(
            || "-".into(),
            |n| format!("{:.2}", r.add_one.as_secs_f64() / n.as_secs_f64()),
        );
        let vs_1k = base.map_or_else(
            || "-".into(),
            |b| format!("{:.2}x", r.add_one.as_secs_f64() / b.as_secs_f64()),
        );
        println!(
            "{:>7} | {:>9} {:>6.0} | {:>9} {:>9} {:>6} | {:>9} {:>9} {:>9} {:>6.0} | {:>6.0} {:>6.0} | {:>9}",
            r.tags,
            secs(r.build),
            r.build_peak_mb,
            secs(r.add_one),
            opt(r.notary_add),
            ratio,
            secs(r.inspect),
            opt(r.notary_list),
            opt(r.docker_inspect),
            r.inspect_peak_mb,
            r.add_peak_mb,
            r.add_after_mb.max(r.idle_after_mb),
            vs_1k
        );
    }
    println!(
        "(add one: tufctl sign of one tag, answered after the read-back; notary: notary add + notary publish of one tag into the same repository; peak: VmHWM during the big sign / inspect / add one; after: VmRSS after the phase)"
    );
    println!(
        "targets: add one at 100 000 tags <= 3x the 1 000-tag time; inspect of 100 000 <= 1 s; peak <= 200 MB and no growth kept"
    );
}
