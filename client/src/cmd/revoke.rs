//! `tufctl revoke` (`docker trust revoke`).

use crate::cmd::Ctx;
use crate::input::check_reference;
use crate::output::Failure;
use clap::Args;
use std::io::IsTerminal;
use tufd_proto::v1;

pub const ABOUT: &str = "\
Remove the signature of a tag, or of every tag (`docker trust revoke`).

REPO:TAG removes TAG from every role that lists it (targets/releases,
signer roles, targets), so `docker pull` with content trust refuses it.
REPO alone removes every signed tag of the repository; that asks for
confirmation on a terminal and needs --yes otherwise.

Examples:
  tufctl revoke registry.example.com/team/app:v1.2
  tufctl revoke registry.example.com/team/app --yes";

/// `revoke` arguments.
#[derive(Args)]
pub struct RevokeArgs {
    /// REPO:TAG to revoke one tag, REPO to revoke every tag.
    #[arg(value_name = "REPO[:TAG]")]
    pub reference: String,
    /// Do not ask for confirmation when revoking every tag (required when
    /// stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

impl RevokeArgs {
    /// Checks the reference before connecting.
    pub fn precheck(&self) -> Result<(), Failure> {
        check_reference(&self.reference).map(drop)
    }

    /// Runs `tufctl revoke`.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        let args = self;
        let (repo, tag) = check_reference(&args.reference)?;
        if tag.is_none() && !args.yes {
            if !std::io::stdin().is_terminal() {
                return Err(Failure::input(format!(
                    "revoking every signed tag of {repo} needs confirmation: pass --yes"
                )));
            }
            ctx.term.prompt(&format!(
                "Confirm you would like to delete all signature data for {repo}? [y/N] "
            ));
            let mut answer = String::new();
            std::io::stdin()
                .read_line(&mut answer)
                .map_err(|e| Failure::input(format!("cannot read the answer: {e}")))?;
            if !matches!(answer.trim(), "y" | "Y" | "yes") {
                return Err(Failure::input("not confirmed; nothing was revoked"));
            }
        }
        let stream = ctx
            .trust()
            .revoke(v1::RevokeRequest {
                repository: repo,
                tag: tag.unwrap_or_default(),
            })
            .await?;
        crate::events::follow(stream.into_inner(), &mut ctx.term, &ctx.out).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Format;
    use crate::testing::*;
    use tonic::Status;

    #[tokio::test]
    async fn daemon_error_mid_stream_is_exit_1() {
        let fake = Fake {
            script: vec![
                progress("reg/app", "signing"),
                Err(Status::permission_denied("no key for targets/releases")),
            ],
            ..Default::default()
        };
        let (channel, _dir) = serve(fake).await;
        let (t, _, _) = term(false);
        let fmt = Format::Text;
        let err = RevokeArgs {
            reference: "reg/app:v1".into(),
            yes: false,
        }
        .run(&mut ctx(channel, t, fmt))
        .await
        .expect_err("denied");
        assert_eq!(
            (err.exit_code(), err.code.as_str()),
            (1, "PermissionDenied")
        );
        assert_eq!(err.message, "no key for targets/releases");
    }
}
