//! Issue 14, "Measured, not assumed": the verifying registry mirror against
//! direct pulls from the same local docker-registry, in the same run.
//!
//! (a) manifest pull by tag: `GET /v2/bench/app/manifests/v1` direct from
//!     the registry vs through tufd's mirror (enforced; the tag signed with
//!     tufctl), with warm trust data (the daemon verified the repository
//!     before) and cold (its trust store removed before each pull). One new
//!     HTTP/1.1 connection per pull on both sides.
//! (b) blob throughput: one `BLOB_MIB` MiB blob, direct vs through the
//!     mirror (streamed and hashed).
//!
//! Every pull must answer 200 and the expected bytes, or the bench fails.
//!
//! ```text
//! scripts/build-release
//! TUFD_BIN=target/dist/tufd TUFCTL_BIN=target/dist/tufctl \
//!     cargo bench -p tufd-tests --bench mirror
//! ```
//!
//! Knobs: `MIRROR_BENCH_RUNS` (20), `MIRROR_BENCH_BLOB_MIB` (256).

use sha2::Digest;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tufd_tests::bench::{env_usize, median};
use tufd_tests::daemon::{TOKEN_LABEL, TestEnv, binary, token_toml};
use tufd_tests::notary::NotaryServers;
use tufd_tests::process::free_port;
use tufd_tests::registry::TestRegistry;
use tufd_tests::softhsm::MODULE;

type Result<T, E = String> = std::result::Result<T, E>;

fn main() -> ExitCode {
    tufd_tests::bench::main("mirror", run)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// One GET on a new connection; the time until the whole body is read.
fn get(addr: &str, path: &str, expect: &[u8]) -> Result<Duration> {
    let start = Instant::now();
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {ACCEPT}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut all = Vec::with_capacity(expect.len() + 1024);
    s.read_to_end(&mut all).map_err(|e| e.to_string())?;
    let took = start.elapsed();
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no HTTP header")?;
    let head = String::from_utf8_lossy(&all[..split]);
    if !head.starts_with("HTTP/1.1 200") || &all[split + 4..] != expect {
        return Err(format!(
            "GET {addr}{path}: {head}\n{}",
            String::from_utf8_lossy(&all[split + 4..all.len().min(split + 600)])
        ));
    }
    Ok(took)
}

fn run() -> Result<()> {
    let runs = env_usize("MIRROR_BENCH_RUNS", 20);
    let blob_mib = env_usize("MIRROR_BENCH_BLOB_MIB", 256);
    println!("tufd: {}", binary("tufd").display());
    let servers = NotaryServers::start();
    let registry = TestRegistry::start();
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let image = rt.block_on(registry.push_image("bench/app", "v1"));
    let blob: Vec<u8> = (0..blob_mib << 20)
        .map(|i| (i * 7 + i / 4096) as u8)
        .collect();
    let blob_digest = rt.block_on(registry.push_blob("bench/app", &blob));
    assert_eq!(
        blob_digest,
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&blob)))
    );
    let host = registry.host().to_owned();
    let gun = format!("{host}/bench/app");
    let env = TestEnv::new();
    let port = free_port().map_err(|e| e.to_string())?;
    let mirror = format!("127.0.0.1:{port}");
    let _d = env.start_with(&env.config_with(&format!(
        "{}[[remote]]\nprefix = \"\"\nurl = \"{}\"\nca = \"{}\"\n[[verify]]\nprefix = \"\"\nmode = \"enforced\"\n[mirror]\nlisten = \"{mirror}\"\nupstream = \"{host}\"\n",
        token_toml("dev", MODULE, TOKEN_LABEL, "env:TUFD_PIN"),
        servers.url(),
        servers.ca_path().display()
    )));
    env.tufctl(&["key", "generate", "alice"]).ok();
    env.tufctl(&["signer", "add", "alice", &gun, "--key", "alice.pub"])
        .ok();
    env.tufctl(&["sign", &format!("{gun}:v1")]).ok();

    let direct = host.replace("localhost", "127.0.0.1");
    let path = "/v2/bench/app/manifests/v1";
    let store_dir = env.path().join("state/trust");
    // Warm-up: connections, the daemon's first verification.
    get(&direct, path, &image.bytes)?;
    get(&mirror, path, &image.bytes)?;
    let (mut d, mut warm, mut cold) = (vec![], vec![], vec![]);
    for _ in 0..runs {
        d.push(get(&direct, path, &image.bytes)?);
        warm.push(get(&mirror, path, &image.bytes)?);
        let _ = std::fs::remove_dir_all(&store_dir);
        std::fs::create_dir_all(&store_dir).map_err(|e| e.to_string())?;
        cold.push(get(&mirror, path, &image.bytes)?);
    }
    let (d, warm, cold) = (median(d), median(warm), median(cold));
    println!("\n(a) manifest by tag, median of {runs} (one connection per pull)");
    println!("  direct from the registry      : {}", ms(d));
    println!(
        "  mirror, warm trust data       : {} (+{})",
        ms(warm),
        ms(warm.saturating_sub(d))
    );
    println!(
        "  mirror, cold trust data       : {} (+{})",
        ms(cold),
        ms(cold.saturating_sub(d))
    );

    let bpath = format!("/v2/bench/app/blobs/{blob_digest}");
    let blob_runs = runs.clamp(1, 5);
    let (mut bd, mut bm) = (vec![], vec![]);
    for _ in 0..blob_runs {
        bd.push(get(&direct, &bpath, &blob)?);
        bm.push(get(&mirror, &bpath, &blob)?);
    }
    let mibs = |t: Duration| blob_mib as f64 / t.as_secs_f64();
    let (bd, bm) = (median(bd), median(bm));
    println!("\n(b) one {blob_mib} MiB blob, median of {blob_runs}");
    println!("  direct : {} ({:.0} MiB/s)", ms(bd), mibs(bd));
    println!("  mirror : {} ({:.0} MiB/s)", ms(bm), mibs(bm));
    Ok(())
}
