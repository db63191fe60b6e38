//! What the benchmark binaries share: their `main`, knobs from the
//! environment and medians.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

/// Runs a benchmark's `run`, printing `NAME bench FAILED: …` and exiting
/// non-zero when it fails.
pub fn main(name: &str, run: impl FnOnce() -> Result<(), String>) -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\n{name} bench FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The environment variable `name` as a number, `default` when unset or
/// not a number.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median (upper middle) of `v`, which must not be empty.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `TUFD_BIN`/`TUFCTL_BIN`, or fresh release builds of both as installed
/// (`scripts/build-release`: tufctl linked statically on GNU/Linux).
pub fn binaries() -> Result<(PathBuf, PathBuf), String> {
    if let (Some(d), Some(c)) = (std::env::var_os("TUFD_BIN"), std::env::var_os("TUFCTL_BIN")) {
        let (d, c) = (PathBuf::from(d), PathBuf::from(c));
        for p in [&d, &c] {
            if !p.is_file() {
                return Err(format!("{} does not exist", p.display()));
            }
        }
        return Ok((d, c));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("building release binaries: scripts/build-release");
    let status = Command::new(root.join("scripts/build-release"))
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("running scripts/build-release: {e}"))?;
    if !status.success() {
        return Err(format!("scripts/build-release failed ({status})"));
    }
    let dist = root.join("target/dist");
    let (d, c) = (dist.join("tufd"), dist.join("tufctl"));
    for p in [&d, &c] {
        if !p.is_file() {
            return Err(format!("scripts/build-release left no {}", p.display()));
        }
    }
    // SAFETY: no other thread runs yet (the notary spawner thread and the
    // daemons start later); the harness reads these to find the binaries.
    unsafe {
        std::env::set_var("TUFD_BIN", &d);
        std::env::set_var("TUFCTL_BIN", &c);
    }
    Ok((d, c))
}

/// The binary's path, its profile and its age, for a bench's header.
pub fn describe_binary(p: &Path) -> String {
    let profile = if p.components().any(|c| c.as_os_str() == "release") {
        "release"
    } else if p.components().any(|c| c.as_os_str() == "debug") {
        "DEBUG BUILD: not representative"
    } else {
        "profile unknown"
    };
    let age = std::fs::metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or_else(String::new, |a| format!(", built {}s ago", a.as_secs()));
    format!("{} ({profile}{age})", p.display())
}
