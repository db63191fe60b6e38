//! python-tuf, the TUF 1.0 reference, from the project venv `target/py`
//! that `scripts/setup` makes (or `TUFD_PYTHON`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The venv's python (with `tuf` and `cryptography`).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("TUFD_PYTHON") {
        return p.into();
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/py/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup (it installs python-tuf into target/py)",
        p.display()
    );
    p
}

/// A script under `tests/py/`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py").join(name)
}

/// What python-tuf's ngclient saw (see `tests/py/ngclient.py`).
#[derive(Debug)]
pub struct NgClientRun {
    /// Whether every check passed.
    pub ok: bool,
    /// `{"report": {root, timestamp, snapshot, targets, custom}, "failures": [..]}`.
    pub output: serde_json::Value,
    /// The script's stderr.
    pub stderr: String,
}

/// Runs python-tuf's ngclient against the repository directory `repo`
/// (served over loopback HTTP), keeping its trusted metadata in `client`.
pub fn ngclient(repo: &Path, client: &Path, expect: &serde_json::Value) -> NgClientRun {
    let out = Command::new(python())
        .arg(script("ngclient.py"))
        .arg(repo)
        .arg(client)
        .arg(expect.to_string())
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    NgClientRun {
        ok: out.status.success(),
        output: serde_json::from_str(&stdout).unwrap_or(serde_json::Value::String(stdout.into())),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
