//! What the daemon checks before it serves, shared by start-up and
//! `tufd --check-config`: directory modes, remote URLs and CA files, the
//! registry client, PKCS#11 modules, PIN sources. Nothing here logs into a
//! token or presents a PIN.

use crate::config::{Config, TokenConfig};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The umask the daemon sets for itself: directories 0750, files 0640 at
/// most, whatever the caller's umask (group members reach the socket
/// through its 0750 directory; others get nothing).
pub const UMASK: u32 = 0o027;

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

/// Every problem the daemon would meet at start or on first use of its
/// configuration, without touching a token's PIN counter. Empty: fine.
pub fn check(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = directory_mode("state directory", &config.state_dir) {
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
