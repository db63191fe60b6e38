//! Command-line syntax.

use clap::{Args, Parser, Subcommand, ValueEnum};
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

    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Show the daemon's version and the state of its tokens.
    Status,
    /// Inspect the daemon's tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage signing keys (modelled on `docker trust key`).
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// List tokens: state, label, serial and how many tufd keys each holds.
    List,
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Generate a key pair on a token and write NAME.pub.
    ///
    /// The private key is created on the token as sensitive and
    /// non-extractable. NAME.pub is a PEM public key with a `role: NAME`
    /// header, like `docker trust key generate` writes, ready for
    /// `signer add --key NAME.pub`.
    Generate {
        /// Key name (letters, digits, '.', '_', '-').
        name: String,
        /// Directory to write NAME.pub into.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        #[command(flatten)]
        target: TokenArg,
    },
    /// Import a private key file into a token.
    ///
    /// Accepts PKCS#8, SEC1 and encrypted PKCS#8 PEM files, including the
    /// key files docker and notary write (~/.docker/trust/private/*.key).
    /// The key is created on the token as sensitive and non-extractable;
    /// afterwards you can delete the file.
    ///
    /// The passphrase of an encrypted key comes from --passphrase-file, else
    /// the TUFCTL_KEY_PASSPHRASE environment variable, else a prompt.
    Load {
        /// The private key file.
        file: PathBuf,
        /// Key name; defaults to the file's `role:` header.
        #[arg(long)]
        name: Option<String>,
        /// File holding the passphrase (first line).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        #[command(flatten)]
        target: TokenArg,
    },
    /// List the keys on the daemon's tokens.
    List {
        /// Only keys on this token.
        #[arg(long)]
        token: Option<String>,
    },
    /// Destroy a key on its token. There is no undo.
    #[command(alias = "remove")]
    Rm {
        #[command(flatten)]
        key: KeyArg,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Check that the daemon can sign with a key: it signs a random
    /// challenge on the token and tufctl verifies the signature.
    Test {
        #[command(flatten)]
        key: KeyArg,
    },
}

/// Which token to use.
#[derive(Args)]
pub struct TokenArg {
    /// Token name from the daemon configuration (default: its default token).
    #[arg(long)]
    pub token: Option<String>,
}

/// Which key to act on.
#[derive(Args)]
pub struct KeyArg {
    /// Key name, or key ID (at least 8 hex digits).
    pub key: String,
    /// Repository (GUN) of a role key, such as root or targets.
    #[arg(long)]
    pub gun: Option<String>,
}
