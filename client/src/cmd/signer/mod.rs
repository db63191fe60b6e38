//! `tufctl signer add|remove` (`docker trust signer`).

mod add;
mod remove;

use crate::cmd::Ctx;
use crate::output::Failure;
use clap::Subcommand;

/// `signer` subcommands.
#[derive(Subcommand)]
pub enum SignerCommand {
    /// Add a signer (its public key) to repositories.
    #[command(long_about = add::ABOUT)]
    Add(add::AddArgs),
    /// Remove a signer from repositories.
    #[command(long_about = remove::ABOUT)]
    Remove(remove::RemoveArgs),
}

impl SignerCommand {
    /// Checks the input before connecting.
    pub fn precheck(&self) -> Result<(), Failure> {
        match self {
            SignerCommand::Add(a) => a.precheck(),
            SignerCommand::Remove(a) => a.precheck(),
        }
    }

    /// Runs the subcommand.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        match self {
            SignerCommand::Add(a) => a.run(ctx).await,
            SignerCommand::Remove(a) => a.run(ctx).await,
        }
    }

    /// Checks the repositories: each untagged, normalized.
    fn repositories(repos: &[String]) -> Result<Vec<String>, Failure> {
        repos
            .iter()
            .map(|r| crate::input::check_untagged(r))
            .collect()
    }
}
