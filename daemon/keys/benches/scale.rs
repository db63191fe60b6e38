//! Start-up with many keys on a token: builds SoftHSM2 tokens holding
//! 1 000 and 10 000 tufd keys (created in bulk with cryptoki), then, in
//! the same run, times `pkcs11-tool --list-objects --login` on each token
//! and tufd's key index (a fresh process opening the token and listing
//! its keys, as a starting daemon does), with that process's peak RSS
//! from /proc. Run with `cargo bench -p tufd-keys --bench scale`.
//!
//! `TUFD_SCALE_KEYS` changes the token sizes (comma-separated, default
//! `1000,10000`). Not run by scripts/test.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use p256::SecretKey;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tufd_keys::KeyLabel;
use tufd_keys::pin::PinSource;
use tufd_keys::pkcs11::{Modules, Pkcs11Config, Pkcs11Store, TokenSelector};

// The test support's key objects (only `create_pair`; this bench makes
// its own token directories).
#[path = "../tests/support/mod.rs"]
mod support;
use support::{MODULE, PIN};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The child: opens the token as a starting daemon does and lists its keys.
fn index(label: &str) {
    let start = Instant::now();
    let store = Pkcs11Store::new(
        Pkcs11Config {
            name: "scale".into(),
            module: MODULE.into(),
            selector: TokenSelector::Label(label.into()),
            pin: PinSource::Env("TUFD_SCALE_PIN".into()),
            max_sessions: 1,
        },
        Arc::new(Modules::new()),
        tufd_tuf::keyid::ecdsa_key_id,
    );
    let keys = tufd_keys::KeyStore::list(&store).expect("listing keys");
    println!(
        "{} {} {}",
        keys.len(),
        start.elapsed().as_secs_f64(),
        peak_rss_kib()
    );
}

/// Creates `n` tufd keys (imported, P-256, IDs as tufd writes them).
fn fill(ctx: &Pkcs11, label: &str, n: usize) {
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim() == label)
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::from(PIN.to_owned())))
        .unwrap();
    for i in 0..n {
        let seed: [u8; 32] = Sha256::digest(format!("{label}-{i}")).into();
        let secret = SecretKey::from_slice(&seed).expect("a valid scalar");
        let name = KeyLabel::new(&format!("key{i}"), &format!("example.com/r{}", i / 2)).unwrap();
        support::create_pair(&session, &name, &secret, &secret.public_key());
    }
}

fn timed(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd.output().expect("runs");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--index") {
        index(&args[pos + 1]);
        return;
    }
    let sizes: Vec<usize> = std::env::var("TUFD_SCALE_KEYS")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("TUFD_SCALE_KEYS: numbers"))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let tokens = tmp.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = tmp.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let labels: Vec<String> = sizes.iter().map(|n| format!("scale{n}")).collect();
    for label in &labels {
        timed(
            Command::new("softhsm2-util")
                .env("SOFTHSM2_CONF", &conf)
                .args(["--init-token", "--free", "--label", label])
                .args(["--pin", PIN, "--so-pin", "5678"]),
        );
    }
    // SAFETY: set before the module is loaded, no other threads yet.
    unsafe {
        std::env::set_var("SOFTHSM2_CONF", &conf);
        std::env::set_var("TUFD_SCALE_PIN", PIN);
    }
    let ctx = Pkcs11::new(Path::new(MODULE)).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    println!("SoftHSM2 (file store) tokens, one run each, {} cores", {
        std::thread::available_parallelism().map_or(0, |n| n.get())
    });
    println!(
        "{:>7} {:>10} {:>14} {:>14} {:>7} {:>14}",
        "keys", "build s", "pkcs11-tool s", "tufd index s", "ratio", "tufd peak RSS"
    );
    for (n, label) in sizes.iter().zip(&labels) {
        let start = Instant::now();
        fill(&ctx, label, *n);
        let build = start.elapsed();
        let tool = timed(
            Command::new("pkcs11-tool")
                .args(["--module", MODULE, "--token-label", label])
                .args(["--login", "--pin", PIN, "--list-objects"]),
        );
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--index", label])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout);
        let mut f = line.split_whitespace();
        let found: usize = f.next().unwrap().parse().unwrap();
        let secs: f64 = f.next().unwrap().parse().unwrap();
        let rss: u64 = f.next().unwrap().parse().unwrap();
        assert_eq!(found, *n, "tufd found every key");
        println!(
            "{:>7} {:>10.1} {:>14.3} {:>14.3} {:>6.2}x {:>10} MiB",
            n,
            build.as_secs_f64(),
            tool.as_secs_f64(),
            secs,
            secs / tool.as_secs_f64(),
            rss / 1024
        );
    }
}
