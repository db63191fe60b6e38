//! `tufctl repair`: make a repository whose signer role does not verify
//! verify again.

use crate::cmd::Ctx;
use crate::input::check_untagged;
use crate::output::Failure;
use clap::Args;
use tufd_proto::v1;

pub const ABOUT: &str = "\
Make a repository whose signer role does not verify verify again.

A signer role (such as targets/releases) signed by a key its delegation no
longer lists hides every tag it holds from `docker pull` and `notary list`
(a signer removal that raced a sign with an older tufd, docker or notary
can leave a repository so). With a key the role still lists, the daemon
re-signs the role with its last verified content; without one, the targets
key stops delegating the role (add its signers again afterwards with
`tufctl signer add`). Tags in the broken file are never re-signed as they
are. The answer names every tag dropped and why.

Example:
  tufctl repair registry.example.com/team/app";

/// `repair` arguments.
#[derive(Args)]
pub struct RepairArgs {
    /// The repository (GUN).
    #[arg(value_name = "REPO")]
    pub repo: String,
}

impl RepairArgs {
    /// Checks the repository before connecting.
    pub fn precheck(&self) -> Result<(), Failure> {
        check_untagged(&self.repo).map(drop)
    }

    /// Runs `tufctl repair`.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        check_untagged(&self.repo)?;
        let stream = ctx
            .trust()
            .repair(v1::RepairRequest {
                repository: self.repo,
            })
            .await?;
        crate::events::follow(stream.into_inner(), &mut ctx.term, &ctx.out).await
    }
}
