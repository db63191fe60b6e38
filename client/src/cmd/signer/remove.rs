//! `tufctl signer remove` (`docker trust signer remove`).

use super::SignerCommand;
use crate::cmd::Ctx;
use crate::input::check_signer_name;
use crate::output::Failure;
use clap::Args;
use tufd_proto::v1::{self, trust_client::TrustClient};

pub const ABOUT: &str = "\
Remove a signer from repositories (`docker trust signer remove`).

The signer's keys leave targets/NAME and targets/releases. Removing the
last key of targets/releases leaves the repository without pullable signed
tags; the daemon refuses that unless --force.

Examples:
  tufctl signer remove alice registry.example.com/team/app
  tufctl signer remove alice reg/app --force";

/// `signer remove` arguments.
#[derive(Args)]
pub struct RemoveArgs {
    /// Signer name (the role targets/NAME).
    pub name: String,
    /// Repositories (GUNs).
    #[arg(required = true, value_name = "REPO")]
    pub repos: Vec<String>,
    /// Allow removing the last key of targets/releases.
    #[arg(long, short = 'f')]
    pub force: bool,
}

impl RemoveArgs {
    /// Checks the input before connecting.
    pub fn precheck(&self) -> Result<(), Failure> {
        check_signer_name(&self.name)?;
        SignerCommand::repositories(&self.repos).map(drop)
    }

    /// Runs `tufctl signer remove`.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        check_signer_name(&self.name)?;
        let repositories = SignerCommand::repositories(&self.repos)?;
        let stream = TrustClient::new(ctx.channel.clone())
            .remove_signer(v1::RemoveSignerRequest {
                signer: self.name,
                repositories,
                force: self.force,
            })
            .await?;
        crate::events::follow(stream.into_inner(), &mut ctx.term, &ctx.out).await
    }
}
