//! `tufctl signer add` (`docker trust signer add`).

use super::SignerCommand;
use crate::cmd::Ctx;
use crate::input::check_signer_name;
use crate::output::Failure;
use clap::Args;
use std::path::{Path, PathBuf};
use tufd_proto::v1;

/// Public key files larger than this are not public key files.
const MAX_PUBLIC_KEY_FILE: u64 = 256 * 1024;

pub const ABOUT: &str = "\
Add a signer to repositories (`docker trust signer add`).

The public key (a NAME.pub written by `tufctl key generate` or `docker trust
key generate`, or an X.509 certificate) is added as the role targets/NAME
and to targets/releases, both for all tags, so the signer's signatures
make tags pullable with content trust. A repository that does not exist
yet is initialized first: its root and repository (targets) keys are
generated on a token (--token), and the notary server keeps the snapshot
key unless --client-snapshot.

Examples:
  tufctl key generate alice
  tufctl signer add alice registry.example.com/team/app --key alice.pub
  tufctl signer add ci reg/app reg/other --key ci.pub --token yubihsm";

/// `signer add` arguments.
#[derive(Args)]
pub struct AddArgs {
    /// Signer name: lowercase letters, digits, '-' and '_' (not
    /// "releases"); the role becomes targets/NAME.
    pub name: String,
    /// Repositories (GUNs), e.g. registry.example.com/team/app.
    #[arg(required = true, value_name = "REPO")]
    pub repos: Vec<String>,
    /// The signer's public key: NAME.pub (PEM PUBLIC KEY) or a PEM certificate.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Token for the root and repository keys of repositories this
    /// call initializes (default: the daemon's default token).
    #[arg(long)]
    pub token: Option<String>,
    /// When initializing, keep the snapshot key on the token instead of
    /// letting the notary server manage it.
    #[arg(long)]
    pub client_snapshot: bool,
}

impl AddArgs {
    /// Checks the input before connecting.
    pub fn precheck(&self) -> Result<(), Failure> {
        check_signer_name(&self.name)?;
        SignerCommand::repositories(&self.repos)?;
        read_public_key(&self.key).map(drop)
    }

    /// Runs `tufctl signer add`.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        check_signer_name(&self.name)?;
        let repositories = SignerCommand::repositories(&self.repos)?;
        let public_key_pem = read_public_key(&self.key)?;
        let stream = ctx
            .trust()
            .add_signer(v1::AddSignerRequest {
                signer: self.name,
                repositories,
                public_key_pem,
                token: self.token.unwrap_or_default(),
                client_snapshot: self.client_snapshot,
            })
            .await?;
        crate::events::follow(stream.into_inner(), &mut ctx.term, &ctx.out).await
    }
}

/// Reads a signer's public key file: PEM `PUBLIC KEY` (as `key generate`
/// writes, `role:` header allowed) or `CERTIFICATE`. A private key is
/// refused, so it never leaves the machine by mistake.
fn read_public_key(path: &Path) -> Result<String, Failure> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Failure::input(format!("cannot read {}: {e}", path.display())))?;
    if meta.len() > MAX_PUBLIC_KEY_FILE {
        return Err(Failure::input(format!(
            "{} is {} bytes: too large for a public key file",
            path.display(),
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::input(format!("cannot read {}: {e}", path.display())))?;
    if text.contains("PRIVATE KEY-----") {
        return Err(Failure::input(format!(
            "{} holds a private key; give the public key (NAME.pub from `tufctl key generate` or `docker trust key generate`)",
            path.display()
        )));
    }
    let blocks = pem::parse_many(&text)
        .map_err(|e| Failure::input(format!("{} is not a PEM file: {e}", path.display())))?;
    match blocks.first().map(|b| b.tag()) {
        Some("PUBLIC KEY") | Some("CERTIFICATE") => Ok(text),
        Some(other) => Err(Failure::input(format!(
            "{} holds a PEM {other}; expected PUBLIC KEY or CERTIFICATE",
            path.display()
        ))),
        None => Err(Failure::input(format!(
            "{} holds no PEM block; expected PUBLIC KEY or CERTIFICATE",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write");
            p
        };
        let key = write(
            "alice.pub",
            "-----BEGIN PUBLIC KEY-----\nrole: alice\n\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n",
        );
        assert!(read_public_key(&key).is_ok());
        let private = write(
            "alice.key",
            "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n",
        );
        let err = read_public_key(&private).expect_err("private key");
        assert!(err.message.contains("private key"), "{}", err.message);
        assert!(read_public_key(&write("x.pub", "not pem")).is_err());
        assert!(read_public_key(&dir.path().join("absent.pub")).is_err());
    }
}
