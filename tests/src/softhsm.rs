//! A private SoftHSM2 token directory for one test.
//!
//! Each test gets its own directory and `SOFTHSM2_CONF`, passed to the
//! processes it starts (never set in the test process itself), so tests run
//! in parallel without sharing a token.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The SoftHSM2 PKCS#11 module (Debian `softhsm2`).
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The user PIN of tokens made by [`SoftHsm::init_token`].
pub const PIN: &str = "1234";
/// The security officer PIN.
pub const SO_PIN: &str = "5678";

/// A SoftHSM2 configuration and token directory, removed on drop.
pub struct SoftHsm {
    _dir: tempfile::TempDir,
    conf: PathBuf,
}

impl SoftHsm {
    /// Creates an empty token directory.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tufd-hsm-")
            .tempdir()
            .expect("temp dir");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).expect("token dir");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("softhsm2.conf");
        Self { _dir: dir, conf }
    }

    /// The `SOFTHSM2_CONF` for processes using these tokens.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// Initializes a token with `label` and the user PIN [`PIN`].
    pub fn init_token(&self, label: &str) {
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &self.conf)
            .args(["--init-token", "--free", "--label", label])
            .args(["--pin", PIN, "--so-pin", SO_PIN])
            .output()
            .expect("softhsm2-util runs (install it with scripts/setup)");
        assert!(
            out.status.success(),
            "softhsm2-util --init-token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `pkcs11-tool` (OpenSC) on these tokens: an independent PKCS#11
    /// client to check what tufd left on a token.
    pub fn pkcs11_tool(&self, args: &[&str]) -> std::process::Output {
        Command::new("pkcs11-tool")
            .env("SOFTHSM2_CONF", &self.conf)
            .arg("--module")
            .arg(MODULE)
            .args(args)
            .output()
            .expect("pkcs11-tool runs (install opensc with scripts/setup)")
    }
}

impl Default for SoftHsm {
    fn default() -> Self {
        Self::new()
    }
}
