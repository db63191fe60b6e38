//! `tufctl key rotate` (`notary key rotate`).

use crate::cmd::Ctx;
use crate::input::check_untagged;
use crate::output::Failure;
use clap::{Args, ValueEnum};
use tufd_proto::v1;

pub const ABOUT: &str = "\
Rotate a key of a repository (`notary key rotate`).

- root: a new root key and certificate on a token; the new root is signed
  by the old and the new key, so clients that trust the old root accept it.
- targets: a new repository key on a token (--token).
- snapshot: hand the snapshot key to the notary server (--server-managed),
  or a new key on a token.
- timestamp: the notary server makes a new timestamp key (always
  server-managed).

Examples:
  tufctl key rotate registry.example.com/team/app targets --token yubihsm
  tufctl key rotate reg/app snapshot --server-managed
  tufctl key rotate reg/app root";

/// Repository roles whose keys can be rotated.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum RotateRole {
    Root,
    Targets,
    Snapshot,
    Timestamp,
}

impl RotateRole {
    /// The role name the daemon expects.
    pub fn as_str(self) -> &'static str {
        match self {
            RotateRole::Root => "root",
            RotateRole::Targets => "targets",
            RotateRole::Snapshot => "snapshot",
            RotateRole::Timestamp => "timestamp",
        }
    }
}

/// `key rotate` arguments.
#[derive(Args)]
pub struct RotateArgs {
    /// Repository (GUN).
    #[arg(value_name = "REPO")]
    pub repo: String,
    /// The role whose key is replaced.
    #[arg(value_enum)]
    pub role: RotateRole,
    /// Token for the new key (default: the daemon's default token).
    #[arg(long)]
    pub token: Option<String>,
    /// Let the notary server hold the new key (snapshot; implied for
    /// timestamp).
    #[arg(long)]
    pub server_managed: bool,
}

impl RotateArgs {
    /// Checks the input before connecting.
    pub fn precheck(&self) -> Result<(), Failure> {
        check_untagged(&self.repo)?;
        rotation_server_managed(self.role, self.token.is_some(), self.server_managed).map(drop)
    }

    /// Runs `tufctl key rotate`.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        let RotateArgs {
            repo,
            role,
            token,
            server_managed,
        } = self;
        let repo = check_untagged(&repo)?;
        let server_managed = rotation_server_managed(role, token.is_some(), server_managed)?;
        let stream = ctx
            .trust()
            .rotate_key(v1::RotateKeyRequest {
                repository: repo,
                role: role.as_str().to_owned(),
                server_managed,
                token: token.unwrap_or_default(),
            })
            .await?;
        crate::events::follow(stream.into_inner(), &mut ctx.term, &ctx.out).await
    }
}

/// Whether the new key is server-managed: always for timestamp, on request
/// for snapshot, never for root and targets.
fn rotation_server_managed(
    role: RotateRole,
    token: bool,
    server_managed: bool,
) -> Result<bool, Failure> {
    let managed = match role {
        RotateRole::Timestamp => true,
        RotateRole::Snapshot => server_managed,
        RotateRole::Root | RotateRole::Targets if server_managed => {
            return Err(Failure::input(format!(
                "--server-managed applies to snapshot and timestamp keys; {} keys stay on a token",
                role.as_str()
            )));
        }
        RotateRole::Root | RotateRole::Targets => false,
    };
    if managed && token {
        return Err(Failure::input(
            "--token and --server-managed exclude each other: a server-managed key is not on a token",
        ));
    }
    Ok(managed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_flags() {
        assert_eq!(
            rotation_server_managed(RotateRole::Timestamp, false, false).ok(),
            Some(true)
        );
        assert_eq!(
            rotation_server_managed(RotateRole::Snapshot, false, true).ok(),
            Some(true)
        );
        assert_eq!(
            rotation_server_managed(RotateRole::Snapshot, true, false).ok(),
            Some(false)
        );
        assert!(rotation_server_managed(RotateRole::Root, false, true).is_err());
        assert!(rotation_server_managed(RotateRole::Snapshot, true, true).is_err());
        assert!(rotation_server_managed(RotateRole::Timestamp, true, false).is_err());
    }
}
