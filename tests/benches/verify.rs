//! Issue 10, "Measured, not assumed": `tufctl verify` against a local
//! notary-server, next to `notary lookup` for the same tag in the same run,
//! and verification of a repository with 10 000 tags.
//!
//! (a) one tag of a repository the notary client published: `tufctl verify
//!     REPO:TAG` with a warm local store (the daemon trusted the repository
//!     before) and a cold one (its store file removed before each run), vs
//!     `notary lookup REPO TAG` with a warm and a cold trust directory.
//! (b) a crafted repository with `TAGS` (10 000) tags in targets/releases,
//!     served by the in-process test server: one tag, cold and warm, and
//!     every tag in one call.
//!
//! Every timed command must exit 0 and print the expected digest, or the
//! bench fails.
//!
//! ```text
//! scripts/build-release
//! TUFD_BIN=target/dist/tufd TUFCTL_BIN=target/dist/tufctl \
//!     cargo bench -p tufd-tests --bench verify
//! ```
//!
//! Knobs: `VERIFY_BENCH_RUNS` (10), `VERIFY_BENCH_TAGS` (10000).

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use tufd_tests::bench::{env_usize, median};
use tufd_tests::daemon::{TOKEN_LABEL, TestEnv, binary, token_toml};
use tufd_tests::notary::NotaryServers;
use tufd_tests::softhsm::MODULE;
use tufd_tests::tufrepo::{CraftedRepo, HostileNotary, target};

type Result<T, E = String> = std::result::Result<T, E>;

fn main() -> ExitCode {
    tufd_tests::bench::main("verify", run)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn timed(mut cmd: Command, expect: &str) -> Result<Duration> {
    let start = Instant::now();
    let out = cmd.output().map_err(|e| e.to_string())?;
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.contains(expect) {
        return Err(format!(
            "{cmd:?}: {}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(took)
}

fn run() -> Result<()> {
    let runs = env_usize("VERIFY_BENCH_RUNS", 10);
    let tags = env_usize("VERIFY_BENCH_TAGS", 10_000);
    let tufctl = binary("tufctl");
    println!(
        "tufd: {}\ntufctl: {}",
        binary("tufd").display(),
        tufctl.display()
    );

    // (a) one tag, notary-published.
    let servers = NotaryServers::start();
    let hostile = HostileNotary::start();
    let env = TestEnv::new();
    let config = env.config_with(&format!(
        "{}[[remote]]\nprefix = \"localhost:5000/bench/\"\nurl = \"{}\"\nca = \"{}\"\n\
         [[remote]]\nprefix = \"localhost:5000/crafted/\"\nurl = \"{}\"\nca = \"{}\"\n",
        token_toml("dev", MODULE, TOKEN_LABEL, "env:TUFD_PIN"),
        servers.url(),
        servers.ca_path().display(),
        hostile.url(),
        servers.ca_path().display(),
    ));
    let _daemon = env.start_with(&config);
    let gun = "localhost:5000/bench/app";
    let cli = servers.cli();
    cli.run_ok(["init", gun, "-p"]);
    let payload = env.path().join("payload");
    std::fs::write(&payload, b"a manifest, as far as notary knows").unwrap();
    cli.run_ok(["add", gun, "v1", payload.to_str().unwrap()]);
    cli.run_ok(["publish", gun]);
    let lookup = cli.run_ok(["lookup", gun, "v1"]);
    let hex = lookup
        .stdout
        .split_whitespace()
        .nth(1)
        .ok_or("notary lookup printed no digest")?
        .to_owned();

    let verify = |reference: &str| {
        let mut c = Command::new(&tufctl);
        c.args(["verify", "--print-digest", reference])
            .env("TUFD_SOCKET", env.socket());
        c
    };
    let store_dir = env.path().join("state/trust");
    let (mut cold, mut warm, mut n_cold, mut n_warm) = (vec![], vec![], vec![], vec![]);
    for i in 0..runs {
        let _ = std::fs::remove_dir_all(&store_dir);
        std::fs::create_dir_all(&store_dir).map_err(|e| e.to_string())?;
        cold.push(timed(verify(&format!("{gun}:v1")), &hex)?);
        warm.push(timed(verify(&format!("{gun}:v1")), &hex)?);
        let fresh = env.path().join(format!("notary-cold-{i}"));
        let c = tufd_tests::notary::NotaryCli::new(servers.url(), servers.ca_path(), fresh);
        n_cold.push(timed(c.command(["lookup", gun, "v1"]), &hex)?);
        n_warm.push(timed(cli.command(["lookup", gun, "v1"]), &hex)?);
    }
    let (cold, warm, n_cold, n_warm) = (median(cold), median(warm), median(n_cold), median(n_warm));
    println!("\n(a) one tag, {runs} runs, medians");
    println!("  tufctl verify, warm store : {}", ms(warm));
    println!("  tufctl verify, cold store : {}", ms(cold));
    println!("  notary lookup, warm cache : {}", ms(n_warm));
    println!("  notary lookup, cold cache : {}", ms(n_cold));
    println!(
        "  warm ratio tufd/notary    : {:.2} (target <= 0.50)",
        warm.as_secs_f64() / n_warm.as_secs_f64()
    );

    // (b) 10 000 tags.
    let crafted = "localhost:5000/crafted/big";
    let mut repo = CraftedRepo::new(crafted);
    for i in 0..tags {
        let mut d = [0u8; 32];
        d[..8].copy_from_slice(&(i as u64).to_be_bytes());
        repo.delegation("targets/releases")
            .targets
            .insert(format!("t{i}"), target(d, 1000 + i as u64));
    }
    let files = repo.publish(&hostile);
    println!(
        "\n(b) {tags} tags in targets/releases ({} bytes)",
        files.delegations["targets/releases"].len()
    );
    let last = format!("{crafted}:t{}", tags - 1);
    let expect = format!("{:016x}", (tags - 1) as u64);
    let (mut cold, mut warm) = (vec![], vec![]);
    for _ in 0..runs.min(5) {
        let _ = std::fs::remove_dir_all(&store_dir);
        std::fs::create_dir_all(&store_dir).map_err(|e| e.to_string())?;
        cold.push(timed(verify(&last), &expect)?);
        warm.push(timed(verify(&last), &expect)?);
    }
    println!("  one tag, cold store : {}", ms(median(cold)));
    println!("  one tag, warm store : {}", ms(median(warm)));
    let mut all = Command::new(&tufctl);
    all.arg("verify")
        .arg("--print-digest")
        .args((0..tags).map(|i| format!("{crafted}:t{i}")))
        .env("TUFD_SOCKET", env.socket());
    let took = timed(all, &expect)?;
    println!("  all {tags} tags in one call (warm): {}", ms(took));
    Ok(())
}
