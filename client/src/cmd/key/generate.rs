//! `tufctl key generate` (`docker trust key generate`).

use super::TokenArg;
use crate::cmd::Ctx;
use crate::output::{self, Failure};
use clap::Args;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use tufd_proto::v1::{self, keys_client::KeysClient};

/// `key generate` arguments.
#[derive(Args)]
pub struct GenerateArgs {
    /// Key name (letters, digits, '.', '_', '-').
    pub name: String,
    /// Directory to write NAME.pub into.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub target: TokenArg,
}

impl GenerateArgs {
    /// Runs `tufctl key generate`.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        let GenerateArgs { name, dir, target } = self;
        let (dir, token) = (dir.as_path(), target.token);
        let out = &ctx.out;
        let client = &mut KeysClient::new(ctx.channel.clone());
        tufd_proto::names::check_key_name(&name).map_err(|e| Failure::input(e.to_string()))?;
        let path = dir.join(format!("{name}.pub"));
        if !dir.is_dir() {
            return Err(Failure::input(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        if path.exists() {
            return Err(Failure::input(format!(
                "{} already exists; move it away or choose another --dir (no key was generated)",
                path.display()
            )));
        }
        // The file is prepared before the key exists: a directory tufctl
        // cannot write to stops here, not after the key is on the token.
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| {
            Failure::input(format!(
                "cannot write to {}: {e} (no key was generated)",
                dir.display()
            ))
        })?;
        if !out.json() {
            eprintln!("Generating key {name} on the token...");
        }
        let key = client
            .generate_key(v1::GenerateKeyRequest {
                name: name.clone(),
                gun: String::new(),
                token: token.unwrap_or_default(),
            })
            .await?
            .into_inner()
            .key
            .ok_or_else(|| Failure::input("the daemon returned no key"))?;
        let written = docker_public_pem(&key.public_key_pem, &name)
            .map_err(|e| std::io::Error::other(e.message))
            .and_then(|text| persist_new_file(tmp, &path, text.as_bytes()));
        if let Err(e) = written {
            // Not orphaned: a key nobody has the public half of is deleted.
            let deleted = client
                .delete_key(v1::DeleteKeyRequest {
                    key: Some(v1::KeySelector {
                        selector: Some(v1::key_selector::Selector::KeyId(key.key_id.clone())),
                    }),
                })
                .await;
            let outcome = match deleted {
                Ok(_) => "the key was deleted again".to_owned(),
                Err(d) => format!(
                    "deleting the key failed too ({}); delete it with `tufctl key delete {}`",
                    d.message(),
                    key.key_id
                ),
            };
            return Err(Failure::input(format!(
                "writing {} failed: {e}; {outcome}",
                path.display()
            )));
        }
        if out.json() {
            let mut v = output::key_json(&key);
            v["public_key_file"] = json!(path.display().to_string());
            out.print_json(&v);
        } else {
            println!(
                "Generated key {name} (ID {}) on token '{}'.\nPublic key written to {}",
                key.key_id,
                key.token,
                path.display()
            );
        }
        Ok(())
    }
}

/// The PEM docker writes as NAME.pub: a PUBLIC KEY block with `role: NAME`.
fn docker_public_pem(public_key_pem: &str, role: &str) -> Result<String, Failure> {
    let parsed = pem::parse(public_key_pem)
        .map_err(|e| Failure::input(format!("the daemon sent an unreadable public key: {e}")))?;
    let mut block = pem::Pem::new("PUBLIC KEY", parsed.contents());
    block
        .headers_mut()
        .add("role", role)
        .map_err(|e| Failure::input(format!("cannot write the role header: {e}")))?;
    Ok(pem::encode_config(
        &block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    ))
}

/// Completes a file prepared with [`tempfile::NamedTempFile::new_in`]:
/// writes, fsyncs, renames without replacing an existing one, fsyncs the
/// directory.
fn persist_new_file(
    mut tmp: tempfile::NamedTempFile,
    path: &Path,
    bytes: &[u8],
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}
