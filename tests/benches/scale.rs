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
//!   `/proc/PID/clear_refs`) and its RSS before and after each phase;
//! - the add's split, from the daemon's transaction timeline (its debug
//!   log of `tufd::trust::txn`, always on here): `POST` is notary-server's
//!   handling of the publish as the daemon saw it (the phase `published`
//!   minus `signed and checked`), `tufd` the rest of the end-to-end time
//!   (tufctl, the daemon's reads, signing, the read-back).
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
//! size), `SCALE_BENCH_PERF=DIR` (`perf record -g` of the daemon during the
//! last add and the last inspect of each size, and of that inspect's
//! tufctl, into DIR). Binaries:
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
    /// notary-server's handling of the publish POST, as the daemon timed it.
    add_post: Option<Duration>,
    add_before_mb: f64,
    add_peak_mb: f64,
    /// RSS when the add answered (the store write may still run).
    add_answered_mb: f64,
    /// RSS once settled after the adds.
    add_after_mb: f64,
    notary_add: Option<Duration>,
    inspect: Duration,
    inspect_before_mb: f64,
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
    // The transaction timeline is always logged: the add's POST share is
    // read from it.
    let filter = if timeline {
        "info,tufd=debug,tufd_remote=debug"
    } else {
        "info,tufd::trust::txn=debug"
    };
    env.daemon_env.push(("TUFD_LOG".into(), filter.into()));
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
        let mut posts = Vec::new();
        let mut add_peak: f64 = 0.0;
        let add_before = bench.settled_rss_mb();
        let log = env.path().join("tufd.log");
        let mut log_start = 0;
        for r in 0..runs {
            log_start = std::fs::metadata(&log).map_or(0, |m| m.len());
            let reference = format!("{gun}:extra{r}");
            let digest = format!("sha256:{:064x}", 0xE000 + r);
            let perf = (r + 1 == runs).then(|| format!("add-{tags}"));
            let (t, peak) = bench.perf(perf.as_deref(), || {
                bench.phase(|| {
                    bench.tufctl(&["sign", &reference, "--digest", &digest, "--size", "9"])
                })
            })?;
            adds.push(t);
            add_peak = add_peak.max(peak);
            let text = std::fs::read(&log).unwrap_or_default();
            posts.extend(post_time(&String::from_utf8_lossy(
                &text[log_start as usize..],
            )));
        }
        let add_answered = bench.rss_mb("VmRSS");
        let add_after = bench.settled_rss_mb();
        if timeline {
            let text = std::fs::read(&log).unwrap_or_default();
            println!("daemon log of the last add:");
            print!("{}", String::from_utf8_lossy(&text[log_start as usize..]));
        }

        let mut inspects = Vec::new();
        let mut inspect_peak: f64 = 0.0;
        let inspect_before = bench.settled_rss_mb();
        for r in 0..runs {
            let perf = (r + 1 == runs).then(|| format!("inspect-{tags}"));
            let (t, peak) = bench.perf(perf.as_deref(), || {
                bench.phase(|| {
                    let out = bench.tufctl(&["-o", "json", "inspect", &gun])?;
                    let expected = tags + runs;
                    let seen = out.matches("\"SignedTag\"").count();
                    if seen != expected {
                        return Err(format!("tufctl inspect listed {seen} tags, not {expected}"));
                    }
                    Ok(out)
                })
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
            add_post: (posts.len() == adds.len()).then(|| median(posts)),
            add_one: median(adds),
            add_before_mb: add_before,
            add_peak_mb: add_peak,
            add_answered_mb: add_answered,
            add_after_mb: add_after,
            notary_add,
            inspect: median(inspects),
            inspect_before_mb: inspect_before,
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

thread_local! {
    /// `perf record … -- tufctl` while [`Bench::perf`] runs.
    static TUFCTL_PREFIX: std::cell::RefCell<Option<Vec<std::ffi::OsString>>> =
        const { std::cell::RefCell::new(None) };
}

struct Bench<'a> {
    env: &'a TestEnv,
    daemon: &'a Daemon,
}

impl Bench<'_> {
    /// Runs `f` under `perf record -g` of the daemon (and of tufctl) when
    /// `SCALE_BENCH_PERF` names a directory and `name` is given.
    fn perf<T>(&self, name: Option<&str>, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let (Some(name), Some(dir)) = (name, std::env::var_os("SCALE_BENCH_PERF")) else {
            return f();
        };
        let dir = PathBuf::from(dir);
        let mut perf = Command::new("perf")
            .args([
                "record",
                "-q",
                "-g",
                "-p",
                &self.daemon.pid().to_string(),
                "-o",
            ])
            .arg(dir.join(format!("{name}-tufd.data")))
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("perf: {e}"))?;
        std::thread::sleep(Duration::from_millis(300));
        let wrapped = [
            "record".into(),
            "-q".into(),
            "-g".into(),
            "-o".into(),
            dir.join(format!("{name}-tufctl.data")).into_os_string(),
            "--".into(),
            binary("tufctl").into_os_string(),
        ];
        let out = TUFCTL_PREFIX.with(|p| {
            *p.borrow_mut() = Some(wrapped.to_vec());
            let out = f();
            *p.borrow_mut() = None;
            out
        });
        // SAFETY: signals only the perf child started above.
        unsafe {
            libc::kill(perf.id() as libc::pid_t, libc::SIGINT);
        }
        let _ = perf.wait();
        out
    }

    fn tufctl(&self, args: &[&str]) -> Result<String> {
        let mut command = match TUFCTL_PREFIX.with(|p| p.borrow().clone()) {
            Some(prefix) => {
                let mut c = Command::new("perf");
                c.args(prefix);
                c
            }
            None => Command::new(binary("tufctl")),
        };
        let out = command
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

    /// The daemon's RSS once it has settled (two reads 300 ms apart within
    /// 1 MB; at most 10 s): work the daemon finishes after answering (the
    /// store write after a change) is over.
    fn settled_rss_mb(&self) -> f64 {
        let mut last = self.rss_mb("VmRSS");
        for _ in 0..33 {
            std::thread::sleep(Duration::from_millis(300));
            let now = self.rss_mb("VmRSS");
            if (now - last).abs() < 1.0 {
                return now;
            }
            last = now;
        }
        last
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

/// notary-server's share of one add, from the daemon's transaction
/// timeline in `log` (the log of that add only): the `published` phase
/// minus `signed and checked` of the last attempt.
fn post_time(log: &str) -> Option<Duration> {
    let at = |phase: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("phase=\"{phase}\"")))
            .filter_map(|l| {
                l.split(" us=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .next_back()
    };
    let (signed, published) = (at("signed and checked")?, at("published")?);
    published.checked_sub(signed).map(Duration::from_micros)
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
    println!("\n== results (medians of {runs})");
    println!(
        "{:>7} | {:>9} | {:>9} {:>9} {:>9} {:>9} {:>6} {:>9} | {:>9} {:>9} {:>9}",
        "tags",
        "big sign",
        "add one",
        "POST",
        "tufd own",
        "notary",
        "ratio",
        "vs 1k add",
        "inspect",
        "notary ls",
        "docker",
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
        let own = r.add_post.map(|p| r.add_one.saturating_sub(p));
        println!(
            "{:>7} | {:>9} | {:>9} {:>9} {:>9} {:>9} {:>6} {:>9} | {:>9} {:>9} {:>9}",
            r.tags,
            secs(r.build),
            secs(r.add_one),
            opt(r.add_post),
            opt(own),
            opt(r.notary_add),
            ratio,
            vs_1k,
            secs(r.inspect),
            opt(r.notary_list),
            opt(r.docker_inspect),
        );
    }
    println!(
        "(add one: tufctl sign of one tag, answered after the read-back; POST: notary-server's handling of the publish as the daemon timed it; tufd own: add one minus POST; notary: notary add + notary publish of one tag into the same repository)"
    );
    println!(
        "\n== daemon RSS in MB (before: settled VmRSS; peak: VmHWM during; answered: VmRSS when the add answered; after: settled VmRSS)"
    );
    println!(
        "{:>7} | {:>9} | {:>14} {:>12} | {:>10} {:>8} {:>14} {:>9} | {:>10}",
        "tags",
        "sign peak",
        "inspect before",
        "inspect peak",
        "add before",
        "add peak",
        "add answered",
        "add after",
        "idle after"
    );
    for r in rows {
        println!(
            "{:>7} | {:>9.0} | {:>14.0} {:>12.0} | {:>10.0} {:>8.0} {:>14.0} {:>9.0} | {:>10.0}",
            r.tags,
            r.build_peak_mb,
            r.inspect_before_mb,
            r.inspect_peak_mb,
            r.add_before_mb,
            r.add_peak_mb,
            r.add_answered_mb,
            r.add_after_mb,
            r.idle_after_mb,
        );
    }
    println!(
        "targets: add one at 100 000 tags <= 3x the 1 000-tag time; inspect of 100 000 <= 1 s; peak <= 200 MB and no growth kept"
    );
}
