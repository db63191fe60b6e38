//! `tufctl status`, `token …` and `key …`.

use crate::cli::{KeyArg, KeyCommand};
use crate::output::{self, Failure, Output};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use tonic::transport::Channel;
use tufd_proto::v1::{self, keys_client::KeysClient, system_client::SystemClient};
use zeroize::Zeroizing;

/// Key files larger than this are not key files.
const MAX_KEY_FILE: u64 = 64 * 1024;

pub async fn status(channel: Channel, out: &Output) -> Result<(), Failure> {
    let h = SystemClient::new(channel)
        .health(v1::HealthRequest {})
        .await?
        .into_inner();
    if out.json() {
        out.print_json(&json!({
            "version": h.version,
            "uptime_seconds": h.uptime_seconds,
            "tokens": h.tokens.iter().map(output::token_json).collect::<Vec<_>>(),
        }));
    } else {
        println!("tufd {} (up {} s)", h.version, h.uptime_seconds);
        print_tokens(&h.tokens);
    }
    Ok(())
}

fn print_tokens(tokens: &[v1::TokenInfo]) {
    output::table(
        output::TOKEN_HEADER,
        &tokens.iter().map(output::token_row).collect::<Vec<_>>(),
    );
    for t in tokens.iter().filter(|t| !t.detail.is_empty()) {
        println!("\n{}: {}", t.name, t.detail);
    }
}

pub async fn token_list(channel: Channel, out: &Output) -> Result<(), Failure> {
    let tokens = KeysClient::new(channel)
        .list_tokens(v1::ListTokensRequest {})
        .await?
        .into_inner()
        .tokens;
    if out.json() {
        out.print_json(&json!({
            "tokens": tokens.iter().map(output::token_json).collect::<Vec<_>>()
        }));
    } else {
        print_tokens(&tokens);
    }
    Ok(())
}

pub async fn run(cmd: KeyCommand, channel: Channel, out: &Output) -> Result<(), Failure> {
    let mut client = KeysClient::new(channel.clone());
    match cmd {
        KeyCommand::Generate { name, dir, target } => {
            generate(&mut client, out, name, &dir, target.token).await
        }
        KeyCommand::Load {
            file,
            name,
            passphrase_file,
            target,
        } => load(&mut client, out, &file, name, passphrase_file, target.token).await,
        KeyCommand::List { token, attestation } => list(&mut client, out, token, attestation).await,
        KeyCommand::Rm { key, yes } => remove(&mut client, out, key, yes).await,
        KeyCommand::Test { key } => prove(&mut client, out, key).await,
        KeyCommand::Rotate {
            repo,
            role,
            token,
            server_managed,
        } => {
            let mut term = crate::trust::Term::stdio();
            crate::trust::rotate(repo, role, token, server_managed, channel, &mut term, out).await
        }
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

async fn generate(
    client: &mut KeysClient<Channel>,
    out: &Output,
    name: String,
    dir: &Path,
    token: Option<String>,
) -> Result<(), Failure> {
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

fn read_passphrase(file: Option<PathBuf>, key_path: &Path) -> Result<Zeroizing<String>, Failure> {
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
    if !std::io::stdin().is_terminal() {
        return Err(Failure::input(format!(
            "{} is encrypted: give --passphrase-file or set TUFCTL_KEY_PASSPHRASE",
            key_path.display()
        )));
    }
    rpassword::prompt_password(format!("Passphrase for {}: ", key_path.display()))
        .map(Zeroizing::new)
        .map_err(|e| Failure::input(format!("cannot read the passphrase: {e}")))
}

async fn load(
    client: &mut KeysClient<Channel>,
    out: &Output,
    file: &Path,
    name: Option<String>,
    passphrase_file: Option<PathBuf>,
    token: Option<String>,
) -> Result<(), Failure> {
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
        read_passphrase(passphrase_file, file)?
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

async fn list(
    client: &mut KeysClient<Channel>,
    out: &Output,
    token: Option<String>,
    attestation: bool,
) -> Result<(), Failure> {
    let r = client
        .list_keys(v1::ListKeysRequest {
            token: token.unwrap_or_default(),
            attestation,
        })
        .await?
        .into_inner();
    if out.json() {
        out.print_json(&json!({
            "keys": r.keys.iter().map(output::key_json).collect::<Vec<_>>(),
            "unavailable_tokens": r.unavailable_tokens.iter().map(output::token_json).collect::<Vec<_>>(),
        }));
    } else {
        if r.keys.is_empty() {
            println!("No keys.");
        } else {
            output::table(
                output::KEY_HEADER,
                &r.keys.iter().map(output::key_row).collect::<Vec<_>>(),
            );
        }
        if attestation && !r.keys.is_empty() {
            println!("\nAttestation:");
            for k in &r.keys {
                let text = k
                    .attestation
                    .as_ref()
                    .map(output::attestation_text)
                    .unwrap_or_else(|| "the daemon sent no attestation".into());
                let name = if k.gun.is_empty() {
                    k.name.clone()
                } else {
                    format!("{}@{}", k.name, k.gun)
                };
                println!("  {name} (token '{}'): {text}", k.token);
            }
        }
    }
    if !r.unavailable_tokens.is_empty() {
        // The listing is incomplete: a script must not take it for all keys.
        let tokens: Vec<String> = r
            .unavailable_tokens
            .iter()
            .map(|t| format!("'{}' ({})", t.name, t.detail))
            .collect();
        return Err(Failure::daemon(
            "Unavailable",
            format!(
                "the listing is incomplete: token(s) could not be read: {}",
                tokens.join("; ")
            ),
        ));
    }
    Ok(())
}

/// The PIN for `token unlock`: --pin-file, else TUFCTL_PIN, else a prompt.
fn read_pin(file: Option<PathBuf>, token: &str) -> Result<Zeroizing<String>, Failure> {
    let pin = if let Some(f) = file {
        let text = Zeroizing::new(std::fs::read_to_string(&f).map_err(|e| {
            Failure::input(format!("cannot read the PIN file {}: {e}", f.display()))
        })?);
        Zeroizing::new(text.lines().next().unwrap_or_default().to_owned())
    } else if let Ok(p) = std::env::var("TUFCTL_PIN") {
        Zeroizing::new(p)
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("PIN for token '{token}': "))
            .map(Zeroizing::new)
            .map_err(|e| Failure::input(format!("cannot read the PIN: {e}")))?
    } else {
        return Err(Failure::input(
            "no PIN: give --pin-file, set TUFCTL_PIN, or run on a terminal to be asked",
        ));
    };
    if pin.is_empty() {
        return Err(Failure::input("the PIN is empty; nothing was sent"));
    }
    Ok(pin)
}

/// `tufctl token unlock NAME`.
pub async fn token_unlock(
    channel: Channel,
    out: &Output,
    name: String,
    pin_file: Option<PathBuf>,
) -> Result<(), Failure> {
    let mut pin = read_pin(pin_file, &name)?;
    let r = KeysClient::new(channel)
        .unlock_token(v1::UnlockTokenRequest {
            token: name.clone(),
            pin: std::mem::take(&mut *pin),
            confirm_last_try: false,
        })
        .await?
        .into_inner();
    let token = r
        .token
        .ok_or_else(|| Failure::input("the daemon returned no token"))?;
    if out.json() {
        out.print_json(&json!({
            "token": output::token_json(&token),
            "cache_seconds": r.cache_seconds,
        }));
    } else {
        let until = if r.cache_seconds == 0 {
            "until it stops".to_owned()
        } else {
            format!("for {} s", r.cache_seconds)
        };
        println!(
            "Token '{}' unlocked: the PIN was verified on the device; the daemon keeps it {until}.",
            token.name
        );
        if !token.detail.is_empty() {
            println!("{}: {}", token.name, token.detail);
        }
    }
    Ok(())
}

/// A KEY argument as a selector: hex of 8+ digits is an ID, else a name.
fn selector(k: &KeyArg) -> v1::KeySelector {
    use v1::key_selector::Selector;
    let looks_like_id =
        k.gun.is_none() && k.key.len() >= 8 && k.key.chars().all(|c| c.is_ascii_hexdigit());
    v1::KeySelector {
        selector: Some(if looks_like_id {
            Selector::KeyId(k.key.clone())
        } else {
            Selector::Name(v1::KeyName {
                name: k.key.clone(),
                gun: k.gun.clone().unwrap_or_default(),
            })
        }),
    }
}

async fn remove(
    client: &mut KeysClient<Channel>,
    out: &Output,
    key: KeyArg,
    yes: bool,
) -> Result<(), Failure> {
    // Resolve first (the daemon proves it exists by signing nothing: a
    // listing), so the confirmation names exactly what will be destroyed.
    let all = client
        .list_keys(v1::ListKeysRequest::default())
        .await?
        .into_inner()
        .keys;
    let sel = selector(&key);
    let target = all.iter().find(|k| match &sel.selector {
        Some(v1::key_selector::Selector::KeyId(id)) => k.key_id.starts_with(&id.to_lowercase()),
        Some(v1::key_selector::Selector::Name(n)) => k.name == n.name && k.gun == n.gun,
        None => false,
    });
    let Some(target) = target else {
        return Err(Failure::from(tonic::Status::not_found(format!(
            "no key '{}'; `tufctl key list` shows the keys tufd holds",
            key.key
        ))));
    };
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::input(
                "refusing to destroy a key without confirmation: pass --yes",
            ));
        }
        eprint!(
            "Destroy key {} (ID {}) on token '{}'? This cannot be undone. [y/N] ",
            target.name, target.key_id, target.token
        );
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|e| Failure::input(format!("cannot read the answer: {e}")))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(Failure::input("not confirmed; nothing was deleted"));
        }
    }
    let deleted = client
        .delete_key(v1::DeleteKeyRequest {
            key: Some(v1::KeySelector {
                selector: Some(v1::key_selector::Selector::KeyId(target.key_id.clone())),
            }),
        })
        .await?
        .into_inner()
        .key
        .ok_or_else(|| Failure::input("the daemon returned no key"))?;
    if out.json() {
        out.print_json(&output::key_json(&deleted));
    } else {
        println!(
            "Destroyed key {} (ID {}) on token '{}'.",
            deleted.name, deleted.key_id, deleted.token
        );
    }
    Ok(())
}

async fn prove(client: &mut KeysClient<Channel>, out: &Output, key: KeyArg) -> Result<(), Failure> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use p256::pkcs8::DecodePublicKey;
    use sha2::{Digest, Sha256};
    let challenge: [u8; 32] = rand::random();
    let r = client
        .prove_key(v1::ProveKeyRequest {
            key: Some(selector(&key)),
            challenge: challenge.to_vec(),
        })
        .await?
        .into_inner();
    let info = r
        .key
        .ok_or_else(|| Failure::input("the daemon returned no key"))?;
    let digest = Sha256::new()
        .chain_update(tufd_proto::KEY_PROOF_CONTEXT)
        .chain_update(challenge)
        .finalize();
    let verified = p256::PublicKey::from_public_key_pem(&info.public_key_pem)
        .ok()
        .zip(p256::ecdsa::Signature::from_slice(&r.signature).ok())
        .is_some_and(|(pk, sig)| {
            p256::ecdsa::VerifyingKey::from(&pk)
                .verify_prehash(&digest, &sig)
                .is_ok()
        });
    if out.json() {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let mut v = output::key_json(&info);
        v["verified"] = json!(verified);
        v["proof"] = json!({
            "context": String::from_utf8_lossy(
                tufd_proto::KEY_PROOF_CONTEXT.strip_suffix(b"\0").unwrap_or_default()
            ),
            "challenge": hex(&challenge),
            "signature": hex(&r.signature),
        });
        out.print_json(&v);
    }
    if !verified {
        return Err(Failure::from(tonic::Status::data_loss(format!(
            "key {} (ID {}) on token '{}' produced a signature that does not verify",
            info.name, info.key_id, info.token
        ))));
    }
    if !out.json() {
        println!(
            "Key {} (ID {}) on token '{}' signs: signature verified.",
            info.name, info.key_id, info.token
        );
    }
    Ok(())
}
