//! The verbs: one file per command (its arguments, checks and `run`), one
//! module per noun (`key`, `token`, `signer`).

pub mod audit;
pub mod completion;
pub mod inspect;
pub mod key;
pub mod man;
pub mod policy;
pub mod repair;
pub mod revoke;
pub mod sign;
pub mod signer;
pub mod status;
pub mod token;
pub mod trust;
pub mod verify;

use crate::connect::{ServerChoice, Trust};
use crate::lazy::Lazy;
use crate::output::{Failure, Output};
use crate::term::Term;
use clap::Subcommand;
use tonic::transport::Channel;
use tufd_proto::v1::trust_client::TrustClient;

/// What a verb runs with: the daemon's channel, where to write, and how.
pub struct Ctx {
    pub channel: Channel,
    pub term: Term,
    pub out: Output,
    /// The caller's notary server (--server, DOCKER_CONTENT_TRUST_SERVER),
    /// sent with every trust request for the daemon to check.
    pub server: Option<String>,
}

impl Ctx {
    /// A client of the daemon's Trust service carrying the server choice.
    pub fn trust(&self) -> Trust {
        let value = self.server.as_deref();
        TrustClient::with_interceptor(self.channel.clone(), ServerChoice::new(value))
    }
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Show the daemon's version and the state of its tokens.
    Status(Lazy<status::StatusArgs>),
    /// Inspect the daemon's tokens.
    Token {
        #[command(subcommand)]
        command: Lazy<token::TokenCommand>,
    },
    /// Manage signing keys (modelled on `docker trust key`).
    Key {
        #[command(subcommand)]
        command: Lazy<key::KeyCommand>,
    },
    /// Add or remove signers of repositories (`docker trust signer`).
    Signer {
        #[command(subcommand)]
        command: Lazy<signer::SignerCommand>,
    },
    /// Sign tags of images with a key the daemon holds (`docker trust sign`).
    #[command(long_about = sign::ABOUT)]
    Sign(Lazy<sign::SignArgs>),
    /// Remove the signature of a tag, or of every tag (`docker trust revoke`).
    #[command(long_about = revoke::ABOUT)]
    Revoke(Lazy<revoke::RevokeArgs>),
    /// Show the signed tags, signers and keys of repositories
    /// (`docker trust inspect`).
    #[command(long_about = inspect::ABOUT)]
    Inspect(Lazy<inspect::InspectArgs>),
    /// Verify tags before a pull and print their signed digests (what
    /// docker's content trust checked): enforced, passive or disabled.
    Verify(Lazy<verify::VerifyArgs>),
    /// Make a repository whose signer role does not verify verify again;
    /// says which tags were dropped and why.
    #[command(long_about = repair::ABOUT)]
    Repair(Lazy<repair::RepairArgs>),
    /// The daemon's local trust store (the repositories it verified before).
    Trust {
        #[command(subcommand)]
        command: Lazy<trust::TrustCommand>,
    },
    /// Ask the daemon's policy who may do what (nothing is done).
    Policy {
        #[command(subcommand)]
        command: Lazy<policy::PolicyCommand>,
    },
    /// Check the daemon's audit log.
    Audit {
        #[command(subcommand)]
        command: Lazy<audit::AuditCommand>,
    },
    /// TUF 1.0 repositories on a directory, every key on the tokens
    /// (python-tuf compatible).
    Tuf(Lazy<crate::tuf1::TufArgs>),
    /// Print the completion script for bash, zsh or fish.
    #[command(long_about = completion::ABOUT)]
    Completion(Lazy<completion::CompletionArgs>),
    /// Write the manual pages into a directory (for packaging).
    #[command(hide = true)]
    Man(Lazy<man::ManArgs>),
}

impl Command {
    /// Checks the input before connecting, so bad input exits with code 2
    /// whether or not the daemon runs. The verbs check again.
    pub fn precheck(&self, out: &Output) -> Result<(), Failure> {
        match self {
            Command::Signer { command } => command.precheck(),
            Command::Sign(args) => args.request().map(drop),
            Command::Verify(args) => args
                .request(std::env::var("DOCKER_CONTENT_TRUST").ok().as_deref())
                .map(drop),
            Command::Revoke(args) => args.precheck(),
            Command::Inspect(args) => args.precheck(out),
            Command::Repair(args) => args.precheck(),
            Command::Trust { command } => command.precheck(),
            Command::Key { command } => command.precheck(),
            Command::Tuf(t) => crate::tuf1::precheck(t),
            Command::Status(_) | Command::Token { .. } | Command::Policy { .. } => Ok(()),
            Command::Audit { .. } | Command::Completion(_) | Command::Man(_) => Ok(()),
        }
    }

    /// Whether the command may wait for a touch (signing, a YubiKey key's
    /// certificate) or run a long batch: such commands get no deadline,
    /// the others --timeout.
    pub fn unbounded(&self) -> bool {
        match self {
            Command::Sign(_) | Command::Revoke(_) | Command::Signer { .. } => true,
            Command::Key { command } => command.unbounded(),
            // Signing may wait for a touch and a batch may be large: only
            // status and refresh get --timeout.
            Command::Tuf(t) => !crate::tuf1::is_quick(t),
            _ => false,
        }
    }

    /// Whether the command runs without the daemon ([`Command::run_local`]).
    pub fn is_local(&self) -> bool {
        matches!(self, Command::Completion(_) | Command::Man(_))
    }

    /// Runs a command that needs no daemon.
    pub fn run_local(self) -> Result<(), Failure> {
        match self {
            Command::Completion(args) => args.0.run(),
            Command::Man(args) => args.0.run(),
            _ => Err(Failure::input("this command needs the daemon")),
        }
    }

    /// Runs the command against the daemon.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        match self {
            Command::Status(args) => args.0.run(ctx).await,
            Command::Token { command } => command.0.run(ctx).await,
            Command::Key { command } => command.0.run(ctx).await,
            Command::Signer { command } => command.0.run(ctx).await,
            Command::Sign(args) => args.0.run(ctx).await,
            Command::Revoke(args) => args.0.run(ctx).await,
            Command::Inspect(args) => args.0.run(ctx).await,
            Command::Verify(args) => args.0.run(ctx).await,
            Command::Repair(args) => args.0.run(ctx).await,
            Command::Trust { command } => command.0.run(ctx).await,
            Command::Policy { command } => command.0.run(ctx).await,
            Command::Audit { command } => command.0.run(ctx).await,
            Command::Tuf(t) => crate::tuf1::run(t.0, ctx.channel.clone(), &ctx.out).await,
            Command::Completion(_) | Command::Man(_) => unreachable!("run without the daemon"),
        }
    }
}
