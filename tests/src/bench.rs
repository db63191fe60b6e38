//! What the benchmark binaries share: their `main`, knobs from the
//! environment and medians.

use std::process::ExitCode;
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
