//! `tufctl trust forget`: the daemon's local trust store.

use crate::cmd::Ctx;
use crate::input::check_untagged;
use crate::output::Failure;
use clap::Subcommand;
use serde_json::json;
use tufd_proto::v1;

/// `trust` subcommands.
#[derive(Subcommand)]
pub enum TrustCommand {
    /// Remove a repository from the daemon's trust store: the next operation
    /// trusts the root the server serves then (trust on first use). For a
    /// repository whose server copy was deleted or re-created on purpose.
    Forget {
        /// The repository (GUN).
        #[arg(value_name = "REPO")]
        repo: String,
    },
}

impl TrustCommand {
    /// Checks the repository before connecting.
    pub fn precheck(&self) -> Result<(), Failure> {
        let TrustCommand::Forget { repo } = self;
        check_untagged(repo).map(drop)
    }

    /// Runs `tufctl trust forget`.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        let TrustCommand::Forget { repo } = self;
        let out = &ctx.out;
        check_untagged(&repo)?;
        let r = ctx
            .trust()
            .forget(v1::ForgetRequest {
                repository: repo.clone(),
            })
            .await?
            .into_inner();
        if out.json() {
            out.print_json(&json!({ "repository": repo, "forgotten": r.forgotten }));
        } else if r.forgotten {
            println!(
                "{repo}: removed from the trust store; the next operation trusts the root the server serves then"
            );
        } else {
            println!("{repo}: not in the trust store; nothing to forget");
        }
        Ok(())
    }
}
