//! `tufctl key …`: signing keys on the daemon's tokens (modelled on
//! `docker trust key`).

mod generate;
mod list;
mod load;
mod rm;
mod rotate;
mod test;

use crate::cmd::Ctx;
use crate::output::Failure;
use clap::{Args, Subcommand};
use tufd_proto::v1;

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Generate a key pair on a token and write NAME.pub.
    ///
    /// The private key is created on the token as sensitive and
    /// non-extractable. NAME.pub is a PEM public key with a `role: NAME`
    /// header, like `docker trust key generate` writes, ready for
    /// `signer add --key NAME.pub`.
    Generate(generate::GenerateArgs),
    /// Import a private key file into a token.
    ///
    /// Accepts PKCS#8, SEC1 and encrypted PKCS#8 PEM files, including the
    /// key files docker and notary write (~/.docker/trust/private/*.key).
    /// The key is created on the token as sensitive and non-extractable;
    /// afterwards you can delete the file.
    ///
    /// The passphrase of an encrypted key comes from --passphrase-file, else
    /// the TUFCTL_KEY_PASSPHRASE environment variable, else docker's
    /// variable as docker reads it (DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE for
    /// a key whose `role:` is root, DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE
    /// for any other), else a prompt on a terminal.
    Load(load::LoadArgs),
    /// List the keys on the daemon's tokens.
    List(list::ListArgs),
    /// Destroy a key on its token. There is no undo.
    #[command(alias = "remove")]
    Rm(rm::RmArgs),
    /// Check that the daemon can sign with a key: it signs a random
    /// challenge on the token and tufctl verifies the signature.
    Test(test::TestArgs),
    /// Rotate a repository key: root, targets, snapshot or timestamp.
    #[command(long_about = rotate::ABOUT)]
    Rotate(rotate::RotateArgs),
}

impl KeyCommand {
    /// Checks the input before connecting.
    pub fn precheck(&self) -> Result<(), Failure> {
        match self {
            KeyCommand::Rotate(a) => a.precheck(),
            _ => Ok(()),
        }
    }

    /// Whether the command may wait for a touch or a device (no deadline).
    pub fn unbounded(&self) -> bool {
        !matches!(self, KeyCommand::List(_) | KeyCommand::Rm(_))
    }

    /// Runs the subcommand.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        match self {
            KeyCommand::Generate(a) => a.run(ctx).await,
            KeyCommand::Load(a) => a.run(ctx).await,
            KeyCommand::List(a) => a.run(ctx).await,
            KeyCommand::Rm(a) => a.run(ctx).await,
            KeyCommand::Test(a) => a.run(ctx).await,
            KeyCommand::Rotate(a) => a.run(ctx).await,
        }
    }
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

impl KeyArg {
    /// A KEY argument as a selector: hex of 8+ digits is an ID, else a name.
    pub fn selector(&self) -> v1::KeySelector {
        use v1::key_selector::Selector;
        let looks_like_id = self.gun.is_none()
            && self.key.len() >= 8
            && self.key.chars().all(|c| c.is_ascii_hexdigit());
        v1::KeySelector {
            selector: Some(if looks_like_id {
                Selector::KeyId(self.key.clone())
            } else {
                Selector::Name(v1::KeyName {
                    name: self.key.clone(),
                    gun: self.gun.clone().unwrap_or_default(),
                })
            }),
        }
    }
}
