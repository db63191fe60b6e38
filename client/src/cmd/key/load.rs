//! `tufctl key load` (`docker trust key load`).

use super::TokenArg;
use crate::cmd::Ctx;
use crate::output::{self, Failure};
use clap::Args;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use tufd_proto::v1::{self, keys_client::KeysClient};
use zeroize::Zeroizing;

/// Key files larger than this are not key files.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// `key load` arguments.
#[derive(Args)]
pub struct LoadArgs {
    /// The private key file.
    pub file: PathBuf,
    /// Key name; defaults to the file's `role:` header.
    #[arg(long)]
    pub name: Option<String>,
    /// File holding the passphrase (first line).
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
    #[command(flatten)]
    pub target: TokenArg,
}

impl LoadArgs {
    /// Runs `tufctl key load`.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        let LoadArgs {
            file,
            name,
            passphrase_file,
            target,
        } = self;
        let (file, token) = (file.as_path(), target.token);
        let out = &ctx.out;
        let client = &mut KeysClient::new(ctx.channel.clone());
        let meta = std::fs::metadata(file)
            .map_err(|e| Failure::input(format!("cannot read {}: {e}", file.display())))?;
        if meta.len() > MAX_KEY_FILE {
            return Err(Failure::input(format!(
                "{} is {} bytes: too large for a key file",
                file.display(),
                meta.len()
            )));
        }
        let pem = Zeroizing::new(
            std::fs::read_to_string(file)
                .map_err(|e| Failure::input(format!("cannot read {}: {e}", file.display())))?,
        );
        let passphrase = if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            read_passphrase(passphrase_file, file, &pem)?
        } else {
            Zeroizing::new(String::new())
        };
        let req = v1::LoadKeyRequest {
            name: name.unwrap_or_default(),
            gun: String::new(),
            token: token.unwrap_or_default(),
            pem: pem.to_string(),
            passphrase: passphrase.to_string(),
        };
        let key = client
            .load_key(req)
            .await?
            .into_inner()
            .key
            .ok_or_else(|| Failure::input("the daemon returned no key"))?;
        if out.json() {
            out.print_json(&output::key_json(&key));
        } else {
            println!(
                "Loaded key {} (ID {}) into token '{}'. The token holds it as non-extractable; {} can now be deleted.",
                key.name,
                key.key_id,
                key.token,
                file.display()
            );
        }
        Ok(())
    }
}

/// docker's passphrase variables, as docker's (notary's) passphrase
/// retriever reads them: the root key's passphrase for a key whose role is
/// root, the repository passphrase for every other key. Empty means unset.
const DOCKER_ROOT_PASSPHRASE: &str = "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE";
const DOCKER_REPOSITORY_PASSPHRASE: &str = "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE";

/// The `role:` header of a PEM key file as docker and notary write it.
fn role_header(pem: &str) -> Option<&str> {
    pem.lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| l.strip_prefix("role:"))
        .map(str::trim)
}

/// The docker variable that holds the passphrase of a key with `role`.
fn docker_passphrase_variable(role: Option<&str>) -> &'static str {
    if role == Some("root") {
        DOCKER_ROOT_PASSPHRASE
    } else {
        DOCKER_REPOSITORY_PASSPHRASE
    }
}

/// The passphrase of an encrypted key file: --passphrase-file, else
/// TUFCTL_KEY_PASSPHRASE, else docker's variable for the key's role
/// ([`docker_passphrase_variable`]), else a prompt on a terminal.
fn read_passphrase(
    file: Option<PathBuf>,
    key_path: &Path,
    pem: &str,
) -> Result<Zeroizing<String>, Failure> {
    if let Some(f) = file {
        let text = Zeroizing::new(std::fs::read_to_string(&f).map_err(|e| {
            Failure::input(format!(
                "cannot read the passphrase file {}: {e}",
                f.display()
            ))
        })?);
        return Ok(Zeroizing::new(
            text.lines().next().unwrap_or_default().to_owned(),
        ));
    }
    if let Ok(p) = std::env::var("TUFCTL_KEY_PASSPHRASE") {
        return Ok(Zeroizing::new(p));
    }
    let docker = docker_passphrase_variable(role_header(pem));
    if let Some(p) = std::env::var(docker).ok().filter(|p| !p.is_empty()) {
        return Ok(Zeroizing::new(p));
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::input(format!(
            "{} is encrypted: give --passphrase-file or set TUFCTL_KEY_PASSPHRASE (or docker's {docker})",
            key_path.display()
        )));
    }
    rpassword::prompt_password(format!("Passphrase for {}: ", key_path.display()))
        .map(Zeroizing::new)
        .map_err(|e| Failure::input(format!("cannot read the passphrase: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_passphrase_variable_follows_the_key_role() {
        let pem = |role: &str| {
            format!(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\n{role}\nMIHu\n-----END ENCRYPTED PRIVATE KEY-----\n"
            )
        };
        let root = pem("role: root\ngun: reg/app\n");
        assert_eq!(role_header(&root), Some("root"));
        assert_eq!(
            docker_passphrase_variable(role_header(&root)),
            DOCKER_ROOT_PASSPHRASE
        );
        for other in [pem("role: alice\n"), pem("role: targets\n"), pem("")] {
            assert_eq!(
                docker_passphrase_variable(role_header(&other)),
                DOCKER_REPOSITORY_PASSPHRASE,
                "{other}"
            );
        }
    }
}
