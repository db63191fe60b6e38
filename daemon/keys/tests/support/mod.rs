//! A SoftHSM2 token directory for this test process.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` and its token directory once, at
//! `C_Initialize`: tokens created later are not seen by this process. So a
//! test process uses one token directory whose tokens (one per test, named
//! in [`TOKENS`]) all exist before the module is loaded.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use tufd_keys::pin::PinSource;
use tufd_keys::pkcs11::{Modules, Pkcs11Config, Pkcs11Store, TokenSelector};

pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub const PIN: &str = "1234";

struct Dir {
    _tmp: tempfile::TempDir,
    conf: PathBuf,
}

fn dir() -> &'static Dir {
    static DIR: OnceLock<Dir> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("temp dir");
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
        for name in TOKENS {
            init_token(&conf, &label_for(name));
        }
        // SAFETY: set once, before any thread loads the module.
        unsafe {
            std::env::set_var("SOFTHSM2_CONF", &conf);
            std::env::set_var("TUFD_KEYS_TEST_PIN", PIN);
        }
        Dir { _tmp: tmp, conf }
    })
}

pub fn conf() -> &'static Path {
    &dir().conf
}

/// The tokens a test process may use, one per test.
pub const TOKENS: &[&str] = &["gen", "sens", "imp", "pin", "other", "par", "bench"];

fn label_for(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

fn init_token(conf: &Path, label: &str) {
    let out = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--pin",
            PIN,
            "--so-pin",
            "5678",
        ])
        .output()
        .expect("softhsm2-util is installed (scripts/setup)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The label of this process's token `name` (one of [`TOKENS`]).
pub fn new_token(name: &str) -> String {
    assert!(TOKENS.contains(&name), "add {name:?} to TOKENS");
    dir();
    label_for(name)
}

pub fn modules() -> Arc<Modules> {
    static M: OnceLock<Arc<Modules>> = OnceLock::new();
    dir();
    M.get_or_init(|| Arc::new(Modules::new())).clone()
}

pub fn store(label: &str, pin: PinSource, sessions: usize) -> Pkcs11Store {
    dir();
    Pkcs11Store::new(
        Pkcs11Config {
            name: "test".into(),
            module: MODULE.into(),
            selector: TokenSelector::Label(label.into()),
            pin,
            max_sessions: sessions,
        },
        modules(),
        tufd_tuf::keyid::ecdsa_key_id,
    )
}

pub fn env_pin() -> PinSource {
    dir();
    PinSource::Env("TUFD_KEYS_TEST_PIN".into())
}
