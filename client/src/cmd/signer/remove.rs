//! `tufctl signer remove` (`docker trust signer remove`).

use super::SignerCommand;
use crate::cmd::Ctx;
use crate::input::check_signer_name;
use crate::output::Failure;
use clap::Args;
use std::io::IsTerminal;
use tufd_proto::v1;

pub const ABOUT: &str = "\
Remove a signer from repositories (`docker trust signer remove`).

The signer's keys leave targets/NAME and targets/releases.

As in docker, -f/--force skips the confirmation: without it tufctl asks
before removing when stdin is a terminal, and also, reading the answer from
stdin as docker does, before removing the last signer (no answer is no).

Removing the last key of targets/releases leaves the repository without
pullable signed tags: the daemon refuses that unless --allow-last-signer.
In a script (no terminal) that removal takes both flags.

Examples:
  tufctl signer remove alice registry.example.com/team/app
  tufctl signer remove alice reg/app --force
  tufctl signer remove alice reg/app --allow-last-signer --force";

/// `signer remove` arguments.
#[derive(Args)]
pub struct RemoveArgs {
    /// Signer name (the role targets/NAME).
    pub name: String,
    /// Repositories (GUNs).
    #[arg(required = true, value_name = "REPO")]
    pub repos: Vec<String>,
    /// Do not prompt for confirmation (docker's -f).
    #[arg(long, short = 'f')]
    pub force: bool,
    /// Allow removing the last key of targets/releases (the repository's
    /// signed tags stop being pullable with content trust).
    #[arg(long)]
    pub allow_last_signer: bool,
}

impl RemoveArgs {
    /// Checks the input before connecting.
    pub fn precheck(&self) -> Result<(), Failure> {
        check_signer_name(&self.name)?;
        SignerCommand::repositories(&self.repos).map(drop)
    }

    /// The confirmation to ask for, if any: none with --force; on a
    /// terminal, always; otherwise only for the last signer (as docker).
    fn question(&self, repositories: &[String], terminal: bool) -> Option<String> {
        if self.force {
            return None;
        }
        let repos = repositories.join(", ");
        if self.allow_last_signer {
            Some(format!(
                "Remove signer \"{}\" from {repos}, even if it holds the last key of targets/releases (signed tags then stop being pullable with content trust)? [y/N] ",
                self.name
            ))
        } else if terminal {
            Some(format!(
                "Remove signer \"{}\" from {repos}? [y/N] ",
                self.name
            ))
        } else {
            None
        }
    }

    /// Runs `tufctl signer remove`.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        check_signer_name(&self.name)?;
        let repositories = SignerCommand::repositories(&self.repos)?;
        if let Some(question) = self.question(&repositories, std::io::stdin().is_terminal())
            && !ctx.term.confirm(&question)?
        {
            return Err(Failure::input("not confirmed; no signer was removed"));
        }
        let stream = ctx
            .trust()
            .remove_signer(v1::RemoveSignerRequest {
                signer: self.name,
                repositories,
                force: self.allow_last_signer,
            })
            .await?;
        crate::events::follow(stream.into_inner(), &mut ctx.term, &ctx.out).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn force_skips_the_prompt_and_the_last_signer_has_its_own_flag() {
        let args = |force, allow_last_signer| RemoveArgs {
            name: "alice".into(),
            repos: vec!["reg/app".into()],
            force,
            allow_last_signer,
        };
        let repos = ["reg/app".to_owned()];
        // A terminal asks; a script is not asked for an ordinary removal.
        assert!(args(false, false).question(&repos, true).is_some());
        assert!(args(false, false).question(&repos, false).is_none());
        // The last signer is asked about even without a terminal, as docker.
        let q = args(false, true).question(&repos, false).expect("asked");
        assert!(q.contains("last key of targets/releases"), "{q}");
        // -f never asks.
        assert!(args(true, true).question(&repos, true).is_none());
        assert!(args(true, false).question(&repos, true).is_none());
    }
}
