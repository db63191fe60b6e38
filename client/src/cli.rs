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
#[command(
    name = "tufctl",
    version,
    about = "Command-line client of tufd, the hardware-token signing daemon",
    long_about,
    after_help = AFTER_HELP
)]
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

    /// Show progress of long calls on stderr even when it is not a
    /// terminal (on a terminal it is always shown). stdout is unaffected.
    #[arg(long, global = true, env = "TUFCTL_PROGRESS")]
    pub progress: bool,

    /// The notary server the trust verbs must use, as docker's
    /// DOCKER_CONTENT_TRUST_SERVER: the daemon checks it is the configured
    /// server it serves each repository from, and refuses otherwise (it
    /// never talks to a server it is not configured for).
    #[arg(
        long,
        global = true,
        env = "DOCKER_CONTENT_TRUST_SERVER",
        value_name = "URL",
        hide_env_values = true
    )]
    pub server: Option<String>,

    #[command(subcommand)]
    pub command: crate::cmd::Command,
}

/// Exit codes and environment variables, at the end of `tufctl --help`.
const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  the daemon refused or failed the request (or a verified tag was refused)
  2  bad input or usage, found before asking the daemon
  3  the daemon cannot be reached

Environment:
  TUFD_SOCKET              the daemon's socket (--socket)
  TUFCTL_TIMEOUT           seconds to wait for an answer (--timeout)
  TUFCTL_PROGRESS          true: progress on stderr without a terminal (--progress)
  TUFCTL_PIN               PIN for `token unlock` (else --pin-file, else a prompt)
  TUFCTL_KEY_PASSPHRASE    passphrase of an encrypted key file for `key load`
  DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE
                           `key load` of a root key file (as docker reads it)
  DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE
                           `key load` of any other key file (as docker reads it)
  DOCKER_CONTENT_TRUST     1: `verify` enforces (as docker's content trust)
  DOCKER_CONTENT_TRUST_SERVER
                           the notary server the trust verbs must use (--server);
                           checked against the daemon's configured servers

With -o json every verb prints one JSON envelope (schema tufctl/v1; see
docs/json-output.md). Shell completions: `tufctl completion bash|zsh|fish`.";

/// Output formats.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}
