//! Where a token's PIN comes from.
//!
//! A PIN is read when it is needed, held in a [`SecretString`] (zeroized on
//! drop, redacted in `Debug`) and never logged.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// A configured PIN source: `env:NAME`, `file:PATH` or `prompt`.
#[derive(Clone, PartialEq, Eq)]
pub enum PinSource {
    /// No PIN until an administrator gives it with `tufctl token unlock`
    /// (the daemon keeps it for the token's `pin_cache_seconds`).
    Prompt,
    /// The value of an environment variable of the daemon.
    Env(String),
    /// The contents of a file (such as a systemd credential), without the
    /// trailing newline.
    File(PathBuf),
}

impl std::fmt::Debug for PinSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for PinSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PinSource::Prompt => f.write_str("prompt"),
            PinSource::Env(name) => write!(f, "env:{name}"),
            PinSource::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl std::str::FromStr for PinSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "prompt" {
            Ok(PinSource::Prompt)
        } else if let Some(name) = s.strip_prefix("env:") {
            if name.is_empty() {
                return Err("`env:` needs a variable name, as in env:TUFD_PIN".into());
            }
            Ok(PinSource::Env(name.to_owned()))
        } else if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err(
                    "`file:` needs a path, as in file:/run/credentials/tufd.service/pin".into(),
                );
            }
            Ok(PinSource::File(PathBuf::from(path)))
        } else {
            // The value may be a literal PIN or password: never repeated.
            Err(
                "not a secret source: use env:NAME, file:PATH or prompt (a literal PIN or password is not accepted in the configuration; the value is not shown)"
                    .into(),
            )
        }
    }
}

impl PinSource {
    /// Reads the PIN now. `prompt` has no PIN to read: the store uses the
    /// PIN given with `tufctl token unlock` instead.
    pub fn read(&self) -> Result<SecretString, String> {
        match self {
            PinSource::Prompt => {
                Err("\"prompt\" has no value to read: only a token's `pin` may be \"prompt\" (the PIN then comes from `tufctl token unlock`)".into())
            }
            PinSource::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(SecretString::from(v)),
                Ok(_) => Err(format!("environment variable {name} is empty")),
                Err(_) => Err(format!("environment variable {name} is not set")),
            },
            PinSource::File(path) => {
                check_file_mode(path)?;
                let raw = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let mut raw = zeroize::Zeroizing::new(raw);
                let pin = raw.trim_end_matches(['\n', '\r']).to_owned();
                raw.clear();
                if pin.is_empty() {
                    return Err(format!("{} is empty", path.display()));
                }
                Ok(SecretString::from(pin))
            }
        }
    }
}

/// Refuses a secret file that others than its owner (and, read-only, its
/// group) may read or write: broader than 0640. A warning would let the
/// daemon run with a PIN every local user can read; a refusal is fixed
/// with one `chmod 600`.
pub fn check_file_mode(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & !0o640 != 0 {
        return Err(format!(
            "{} has mode {mode:04o}: a secret file must not be readable by others nor writable by its group (0600 or 0640); run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

/// A salted fingerprint of a PIN, kept after the token rejected it so the
/// same PIN is never presented again (only a changed PIN source is tried).
#[derive(Clone, PartialEq, Eq)]
pub struct PinFingerprint([u8; 32]);

impl std::fmt::Debug for PinFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinFingerprint(<redacted>)")
    }
}

impl PinFingerprint {
    /// The fingerprint of `pin` under this gate's `salt`.
    pub fn of(pin: &SecretString, salt: &[u8; 16]) -> Self {
        let mut h = Sha256::new();
        h.update(salt);
        h.update(pin.expose_secret().as_bytes());
        Self(h.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources_and_refuses_literals() {
        assert_eq!("env:X".parse::<PinSource>(), Ok(PinSource::Env("X".into())));
        assert_eq!(
            "file:/a/b".parse::<PinSource>(),
            Ok(PinSource::File("/a/b".into()))
        );
        assert_eq!("prompt".parse::<PinSource>(), Ok(PinSource::Prompt));
        assert_eq!(PinSource::Prompt.to_string(), "prompt");
        assert!(PinSource::Prompt.read().is_err());
        let refusal = "1234".parse::<PinSource>().unwrap_err();
        assert!(!refusal.contains("1234"), "{refusal}");
        assert!("env:".parse::<PinSource>().is_err());
    }

    #[test]
    fn file_pin_drops_the_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pin");
        std::fs::write(&p, "1234\n").unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let pin = PinSource::File(p.clone()).read().unwrap();
        assert_eq!(pin.expose_secret(), "1234");
        for (mode, ok) in [
            (0o640, true),
            (0o644, false),
            (0o660, false),
            (0o666, false),
        ] {
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .unwrap();
            let r = PinSource::File(p.clone()).read();
            assert_eq!(r.is_ok(), ok, "{mode:o}");
            if let Err(e) = r {
                assert!(e.contains("chmod 600"), "{e}");
            }
        }
    }
}
