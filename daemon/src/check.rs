//! What the daemon checks before it serves, shared by start-up and
//! `tufd --check-config`: directory modes, remote URLs and CA files, the
//! registry client, PKCS#11 modules, PIN sources. Nothing here logs into a
//! token or presents a PIN.

use crate::config::{Config, TokenConfig};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The umask the daemon sets for itself: what it makes is 0700/0600
/// (its state directory, lock, trust store, audit log, TUF 1.0 registry)
/// unless given a mode explicitly (the socket 0660 in its 0750 directory,
/// for the socket's group; files in served TUF 1.0 repositories 0644 in
/// 0750 directories), whatever the caller's umask.
pub const UMASK: u32 = 0o077;

/// The mode of the state directory: the daemon's alone. Whoever could
/// read it could read the audit log and the trust store, and hold the
/// lock file's lock (flock works on a read-only descriptor) to keep the
/// daemon from starting.
pub const STATE_DIR_MODE: u32 = 0o700;

/// Sets [`UMASK`] for the process.
pub fn set_umask() {
    // SAFETY: umask(2) only changes the process's file-creation mask.
    unsafe {
        libc::umask(UMASK as libc::mode_t);
    }
}

/// A directory the daemon did not create must not be writable by others:
/// anyone could then replace the socket or the state. Returns the
/// complaint, if any; a missing directory is fine (the daemon creates it).
pub fn directory_mode(what: &str, dir: &Path) -> Result<(), String> {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{what} {}: {e}", dir.display())),
    };
    if !meta.is_dir() {
        return Err(format!("{what} {} is not a directory", dir.display()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o002 != 0 {
        return Err(format!(
            "{what} {} has mode {:04o}: others may write to it (and replace what tufd keeps there); run `chmod o-w {}` or configure another directory",
            dir.display(),
            mode & 0o7777,
            dir.display()
        ));
    }
    if mode & 0o020 != 0 {
        tracing::warn!(directory = %dir.display(), mode = format!("{:04o}", mode),
            "{what} is writable by its group");
    }
    Ok(())
}

/// The state directory must be the daemon's alone ([`STATE_DIR_MODE`]).
/// One that others may enter is fine when the daemon owns it (start-up
/// makes it 0700); one it does not own and cannot tighten is refused.
pub fn state_directory_mode(dir: &Path) -> Result<(), String> {
    directory_mode("state directory", dir)?;
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("state directory {}: {e}", dir.display())),
    };
    let mode = meta.permissions().mode() & 0o7777;
    // SAFETY: geteuid(2) has no preconditions.
    let me = unsafe { libc::geteuid() };
    if mode & 0o077 != 0 && std::os::unix::fs::MetadataExt::uid(&meta) != me {
        return Err(format!(
            "state directory {} has mode {mode:04o} and belongs to another user than tufd's (uid {me}): its group or others could read the audit log and the trust store and lock tufd out; run `chown {me} {}` (tufd then makes it 0700) or `chmod 0700 {}`",
            dir.display(),
            dir.display(),
            dir.display()
        ));
    }
    Ok(())
}

/// Every problem the daemon would meet at start or on first use of its
/// configuration, without touching a token's PIN counter. Empty: fine.
pub fn check(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = state_directory_mode(&config.state_dir) {
        problems.push(e);
    }
    if let Some(parent) = config.socket.parent().filter(|p| !p.as_os_str().is_empty())
        && let Err(e) = directory_mode("socket directory", parent)
    {
        problems.push(e);
    }
    for route in &config.remotes {
        if let Err(e) = tufd_remote::NotaryClient::new(&route.config) {
            problems.push(format!("remote {:?}: {e}", route.config.url));
        }
    }
    if let Err(e) = tufd_remote::RegistryClient::new(&config.registry) {
        problems.push(format!("registry: {e}"));
    }
    let modules = tufd_keys::pkcs11::Modules::new();
    for token in &config.tokens {
        let (name, pin) = match token {
            TokenConfig::Pkcs11(c) => {
                if let Err(e) = modules.get(&c.module) {
                    problems.push(format!(
                        "token '{}': PKCS#11 module {}: {e}",
                        c.name,
                        c.module.display()
                    ));
                }
                (&c.name, &c.pin)
            }
            TokenConfig::YubiKey(c) => (&c.name, &c.pin),
        };
        if *pin != tufd_keys::pin::PinSource::Prompt
            && let Err(e) = pin.read()
        {
            problems.push(format!("token '{name}': PIN source {pin}: {e}"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_state_directory_is_refused_only_when_tufd_cannot_close_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert!(
            state_directory_mode(&state).is_ok(),
            "missing: created 0700"
        );
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).unwrap();
        assert!(
            state_directory_mode(&state).is_ok(),
            "ours: start-up makes it 0700"
        );
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o757)).unwrap();
        assert!(state_directory_mode(&state).is_err(), "others may write");
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).unwrap();
            std::os::unix::fs::chown(&state, Some(4242), None).unwrap();
            let e = state_directory_mode(&state).unwrap_err();
            assert!(e.contains("chmod 0700"), "{e}");
            std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
            assert!(
                state_directory_mode(&state).is_ok(),
                "private, whoever owns it"
            );
        }
    }
}
