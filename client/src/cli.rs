//! Command-line syntax: the global flags. Each verb's arguments live in
//! its own file under `cmd/`.

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

/// Talk to tufd, the hardware-token signing daemon for TUF and Docker
/// Content Trust.
///
/// Keys live on the daemon's tokens (PKCS#11 HSMs, SoftHSM2, YubiKeys);
/// tufctl sends intents and never sees private key material.
#[derive(Parser)]
#[command(name = "tufctl", version, about, long_about)]
pub struct Cli {
    /// The daemon's Unix socket.
    #[arg(
        long,
        global = true,
        env = "TUFD_SOCKET",
        default_value = "/run/tufd/tufd.sock"
    )]
    pub socket: PathBuf,

    /// Output format: text for people, json for scripts.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,

    /// Seconds to wait for the daemon's answer (0: no limit). Commands that
    /// may wait for a touch or a long batch (sign, revoke, signer, key
    /// generate/load/test/rotate) have no limit.
    #[arg(long, global = true, env = "TUFCTL_TIMEOUT", default_value_t = 120)]
    pub timeout: u64,

    #[command(subcommand)]
    pub command: crate::cmd::Command,
}

/// Output formats.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}
